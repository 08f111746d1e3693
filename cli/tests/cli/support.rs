//! The real platform for the CLI's tests: one api, one docker worker and one gvisor worker,
//! started once per test binary as processes (the `api` and `worker` binaries next to `faas`)
//! on a database and queue prefix of their own, and `faas` run as a process against them.
//!
//! Every process is started under a guard shell that stops it (SIGTERM, then waits) as soon as
//! this test binary's end closes the guard's stdin, however the binary ends; the database goes
//! with the last guard.

use serde_json::Value;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The bootstrap admin key of the test api.
pub const ADMIN_KEY: &str = "cli-test-admin-key-0123456789abcdef0123456789";
const WORKER_TOKEN: &str = "cli-test-worker-token-0123456789abcdef";
/// The host's CA bundle: the package registries are reached through this machine's TLS
/// interception, which it trusts (as api/tests/api/deps.rs does).
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process that stops when its guard's stdin closes (at the latest when this binary exits).
pub struct Guarded {
    child: Child,
    stdin: Option<ChildStdin>,
    pub log: PathBuf,
}

impl Guarded {
    /// Starts `program args` with `env`, its output appended to `log`.
    pub fn start(program: &Path, args: &[&str], env: &[(&str, String)], log: &Path) -> Guarded {
        assert!(
            program.is_file(),
            "{} is missing: build it first (`cargo build -p api -p worker`)",
            program.display()
        );
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        // GUARD_AFTER (if set) runs once the process has ended.
        let script = r#""$@" </dev/null & pid=$!; cat >/dev/null; kill -TERM "$pid" 2>/dev/null; wait "$pid"; if [ -n "$GUARD_AFTER" ]; then sh -c "$GUARD_AFTER"; fi"#;
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg("guard")
            .arg(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("bash starts");
        let stdin = child.stdin.take();
        Guarded {
            child,
            stdin,
            log: log.to_owned(),
        }
    }

    /// Stops the process and waits for it.
    pub fn stop(&mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }

    /// The end of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// The shared platform.
pub struct Cluster {
    pub api_url: String,
    pub functions_url: String,
    pub database_url: String,
    pub prefix: String,
    pub dir: PathBuf,
    processes: Mutex<Vec<Guarded>>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The api and workers, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start)
}

/// The `faas` binary under test.
pub fn faas_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faas"))
}

/// A binary of the workspace built beside `faas` (`api`, `worker`).
pub fn sibling_binary(name: &str) -> PathBuf {
    faas_binary().with_file_name(name)
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

impl Cluster {
    fn start() -> Cluster {
        let id = format!("{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("faas-cli-tests-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        // Named as test.sh's sweep of databases left by earlier runs expects.
        let database = format!("faas_test_cli_{id}");
        let admin = admin_database_url();
        block_on(async {
            let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| {
                    panic!("Postgres is not reachable at {admin} (TEST_DATABASE_URL): {e}")
                });
            tokio::spawn(connection);
            client
                .batch_execute(&format!("CREATE DATABASE {database}"))
                .await
                .unwrap();
        });
        let database_url = format!("{}/{database}", admin.rsplit_once('/').unwrap().0);
        let prefix = format!("test-cli-{id}.");
        let api_port = free_port();
        let functions_port = free_port();
        let mut processes = Vec::new();
        // Drops the database, deletes the queues and the scratch directory once this binary is
        // gone (after its processes got SIGTERM); test.sh sweeps databases a killed run left.
        processes.push(Guarded::start(
            Path::new("/bin/sleep"),
            &["infinity"],
            &[(
                "GUARD_AFTER",
                format!(
                    "sleep 3; psql '{admin}' -qc 'DROP DATABASE IF EXISTS {database} WITH (FORCE)'; \
                     command -v rabbitmqctl >/dev/null && rabbitmqctl -q list_queues name 2>/dev/null \
                     | grep -F '{prefix}' | xargs -r -n1 rabbitmqctl -q delete_queue >/dev/null 2>&1; \
                     rm -rf '{}'",
                    dir.display()
                ),
            )],
            &dir.join("drop.log"),
        ));
        let cluster = Cluster {
            api_url: format!("http://127.0.0.1:{api_port}"),
            functions_url: format!("http://127.0.0.1:{functions_port}"),
            database_url,
            prefix,
            dir,
            processes: Mutex::new(processes),
        };
        let api = cluster.start_api(api_port, functions_port, "api");
        cluster.processes.lock().unwrap().push(api);
        let cache = cluster.dir.join("deps-cache");
        for (runtime, builds) in [("docker", "true"), ("gvisor", "false")] {
            let worker = Guarded::start(
                &sibling_binary("worker"),
                &["--runtime", runtime],
                &[
                    ("WORKER_ID", format!("test-cli-{runtime}-{id}")),
                    ("QUEUE_PREFIX", cluster.prefix.clone()),
                    ("AMQP_URL", amqp_url()),
                    ("METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
                    ("WORKER_CONCURRENCY", "4".into()),
                    ("STEM_CELLS", "1".into()),
                    ("SHUTDOWN_GRACE_SECS", "10".into()),
                    ("API_URL", cluster.api_url.clone()),
                    ("WORKER_TOKEN", WORKER_TOKEN.into()),
                    ("DEPS_CACHE_DIR", cache.join(runtime).display().to_string()),
                    ("BUILDS", builds.into()),
                    ("BUILD_CA_BUNDLE", CA_BUNDLE.into()),
                    ("BUILD_TIMEOUT_SECS", "180".into()),
                    ("RUST_LOG", "warn".into()),
                ],
                &cluster.dir.join(format!("worker-{runtime}.log")),
            );
            cluster.processes.lock().unwrap().push(worker);
        }
        cluster.wait_for_workers();
        cluster
    }

    /// Starts an api on this cluster's database and queues (another replica when one runs),
    /// and waits for it to be ready.
    pub fn start_api(&self, port: u16, functions_port: u16, name: &str) -> Guarded {
        let api = Guarded::start(
            &sibling_binary("api"),
            &[],
            &[
                ("DATABASE_URL", self.database_url.clone()),
                ("AMQP_URL", amqp_url()),
                ("QUEUE_PREFIX", self.prefix.clone()),
                ("ADMIN_KEY", ADMIN_KEY.into()),
                ("WORKER_TOKEN", WORKER_TOKEN.into()),
                ("API_ADDR", format!("127.0.0.1:{port}")),
                ("FUNCTIONS_ADDR", format!("127.0.0.1:{functions_port}")),
                ("METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
                ("RUST_LOG", "warn".into()),
            ],
            &self.dir.join(format!("{name}.log")),
        );
        let url = format!("http://127.0.0.1:{port}/readyz");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = block_on(async {
                reqwest::get(&url)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            });
            if ready {
                return api;
            }
            assert!(
                Instant::now() < deadline,
                "the api on port {port} was not ready in 60 s:\n{}",
                api.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until both workers run calls: a probe function answers on each runtime.
    fn wait_for_workers(&self) {
        let (status, body) = self.api(
            "POST",
            "/functions/",
            Some(serde_json::json!({
                "name": "cli-probe", "route": "/cli-probe", "language": "python", "timeout": 5,
                "code": "def handler(event, context):\n    return 1\n"
            })),
        );
        assert_eq!(status, 201, "{body}");
        for path in ["/execute/cli-probe", "/execute_gvisor/cli-probe"] {
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let (status, body) = self.api("POST", path, Some(serde_json::json!({})));
                if status == 200 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{path} did not answer in 90 s ({status} {body}); workers:\n{}",
                    self.processes
                        .lock()
                        .unwrap()
                        .iter()
                        .map(Guarded::log_tail)
                        .collect::<Vec<_>>()
                        .join("\n---\n")
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }

    /// A request to the api as admin: its status and JSON body.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_at(&self.api_url, method, path, body)
    }

    /// As [`Cluster::api`], to the api at `base`.
    pub fn api_at(
        &self,
        base: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        block_on(async {
            let client = reqwest::Client::new();
            let mut request = client
                .request(method.parse().unwrap(), format!("{base}{path}"))
                .bearer_auth(ADMIN_KEY);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("the api answers");
            let status = response.status().as_u16();
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            (status, body)
        })
    }

    /// The functions named `name` on the server (0 or 1).
    pub fn functions_named(&self, name: &str) -> Vec<Value> {
        let (status, body) = self.api("GET", "/functions/?limit=1000", None);
        assert_eq!(status, 200, "{body}");
        body.as_array()
            .unwrap()
            .iter()
            .filter(|f| f["name"] == name)
            .cloned()
            .collect()
    }
}

/// A scratch directory of one test: its folders and its `XDG_CONFIG_HOME`.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir = cluster().dir.join(format!("{test}-{}", unique()));
        std::fs::create_dir_all(dir.join("config")).unwrap();
        Scratch { dir }
    }

    /// `faas args` in this scratch directory, as admin of the shared api.
    pub fn faas(&self, args: &[&str]) -> Run {
        self.faas_with(args, &[("FAAS_KEY", ADMIN_KEY)], None)
    }

    /// `faas args` with `env` (and no key unless `env` has one), `stdin` piped in.
    pub fn faas_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut command = self.command(args);
        command.env_remove("FAAS_KEY").envs(env.iter().copied());
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command.spawn().expect("faas starts");
        if let Some(input) = stdin {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        Run::from(child.wait_with_output().unwrap(), args)
    }

    /// The command `faas args` in this directory as admin, with nothing of the caller's faas
    /// settings.
    pub fn command(&self, args: &[&str]) -> Command {
        let cluster = cluster();
        let mut command = Command::new(faas_binary());
        command
            .args(args)
            .current_dir(&self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("FAAS_URL", &cluster.api_url)
            .env("FAAS_FUNCTIONS_URL", &cluster.functions_url)
            .env("FAAS_KEY", ADMIN_KEY)
            .env_remove("FAAS_PROFILE")
            .env_remove("FAAS_OUTPUT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Writes `files` under `folder` in this directory.
    pub fn write(&self, folder: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.dir.join(folder);
        for (name, content) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        root
    }
}

/// A unique suffix for names.
pub fn unique() -> String {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id() % 100_000,
        COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

/// A finished `faas` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: String,
}

impl Run {
    fn from(output: Output, args: &[&str]) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            args: args.join(" "),
        }
    }

    /// Asserts exit 0 and returns self.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "faas {} failed: {self:#?}", self.args);
        self
    }

    /// Asserts the exit code, and that stderr is one line when it is not 0 and 1.
    pub fn fails(self, code: i32) -> Run {
        assert_eq!(self.code, code, "faas {}: {self:#?}", self.args);
        self
    }

    /// Asserts exit 2 with exactly one line on stderr containing `text`.
    pub fn refused(self, text: &str) -> Run {
        let run = self.fails(2);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {run:#?}");
        assert!(run.stderr.contains(text), "expected {text:?}: {run:#?}");
        run
    }

    /// stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("faas {}: stdout is not JSON ({e}): {self:#?}", self.args))
    }
}

/// A `faas` process left running (`logs -f`, `dev`), its stdout read line by line.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn spawn(mut command: Command) -> Running {
        command.stdin(Stdio::null());
        let mut child = command.spawn().expect("faas starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits up to `within` for a line containing `text`; the line.
    pub fn wait_for(&mut self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let mut stderr = String::new();
                    if let Some(mut pipe) = self.child.stderr.take() {
                        use std::io::Read as _;
                        let _ = pipe.read_to_string(&mut stderr);
                    }
                    panic!(
                        "no line with {text:?} within {within:?}; saw:\n{}\nstderr:\n{stderr}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// Lines printed within `within` from now.
    pub fn drain(&mut self, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut lines = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line.clone());
            lines.push(line);
        }
        lines
    }

    /// Kills it and returns its stderr.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let output = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}
