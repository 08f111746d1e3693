//! Dependency builds in their sandbox, on the real Docker daemon with the build network and
//! firewall scripts/setup.sh makes: a hostile package's setup.py, run by pip inside a build,
//! tries to reach this host, the metadata address, a service on Docker's bridge (where compose
//! runs the api, the broker and Postgres) and another build, and prints what it got and the
//! kernel it runs on into the build log. The package comes from a "simple" index served by a
//! container in the build network's mirror range, the only place besides the registries a build
//! may connect to.

use crate::support::config;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectNetworkOptions, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use common::{BuildJob, Language, Runtime};
use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use worker::{BuildOutcome, Builder, DepsCache};

const NETWORK: &str = "faas-build";
const TEST_LABEL: &str = "faas.test.builds";

/// The build network as setup made it: its gateway and the range where mirrors may sit.
async fn build_network(docker: &Docker) -> (Ipv4Addr, (Ipv4Addr, u32)) {
    let network = docker
        .inspect_network(NETWORK, None::<InspectNetworkOptions>)
        .await
        .unwrap_or_else(|e| panic!("the network {NETWORK} is missing (scripts/setup.sh): {e}"));
    let gateway = network.ipam.unwrap().config.unwrap()[0]
        .gateway
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    let mirrors = network.labels.unwrap()["faas.build.mirrors"].clone();
    let (base, bits) = mirrors.split_once('/').unwrap();
    (gateway, (base.parse().unwrap(), bits.parse().unwrap()))
}

/// The build network's subnet (base, prefix length) and gateway.
async fn build_subnet(docker: &Docker) -> ((Ipv4Addr, u32), Ipv4Addr) {
    let network = docker
        .inspect_network(NETWORK, None::<InspectNetworkOptions>)
        .await
        .unwrap_or_else(|e| panic!("the network {NETWORK} is missing (scripts/setup.sh): {e}"));
    let config = &network.ipam.unwrap().config.unwrap()[0];
    let subnet = config.subnet.clone().unwrap();
    let (base, bits) = subnet.split_once('/').unwrap();
    let gateway = config.gateway.clone().unwrap().parse().unwrap();
    ((base.parse().unwrap(), bits.parse().unwrap()), gateway)
}

/// Whether `peer` is an address of the build network (`gateway`'s own excepted: that is the
/// host itself).
fn on_build_network(peer: &SocketAddr, (base, bits): (Ipv4Addr, u32), gateway: Ipv4Addr) -> bool {
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    match peer.ip() {
        std::net::IpAddr::V4(ip) => ip != gateway && u32::from(ip) & mask == u32::from(base) & mask,
        std::net::IpAddr::V6(_) => false,
    }
}

/// The build network's registry pins (its label `faas.build.hosts`).
async fn registry_pins(docker: &Docker) -> String {
    let network = docker
        .inspect_network(NETWORK, None::<InspectNetworkOptions>)
        .await
        .unwrap_or_else(|e| panic!("the network {NETWORK} is missing (scripts/setup.sh): {e}"));
    network.labels.unwrap()["faas.build.hosts"].clone()
}

/// A long-running `python3 -m http.server` container (python-base, runc): on `network` at
/// `address` when given, serving `dir` when given.
async fn server(
    docker: &Docker,
    network: &str,
    address: Option<Ipv4Addr>,
    dir: Option<&Path>,
    port: u16,
) -> Result<(String, Ipv4Addr), bollard::errors::Error> {
    let mut cmd = vec![
        "-u".to_owned(),
        "-m".into(),
        "http.server".into(),
        port.to_string(),
    ];
    let mut binds = Vec::new();
    if let Some(dir) = dir {
        cmd.extend(["--directory".to_owned(), "/srv".into()]);
        binds.push(format!("{}:/srv:ro", dir.display()));
    }
    let endpoint = EndpointSettings {
        ipam_config: address.map(|a| EndpointIpamConfig {
            ipv4_address: Some(a.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some("python-base".into()),
        entrypoint: Some(vec!["python3".into()]),
        cmd: Some(cmd),
        // Port 80, as a mirror listens.
        user: Some("0:0".into()),
        labels: Some(HashMap::from([(TEST_LABEL.to_owned(), "true".to_owned())])),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_owned()),
            binds: Some(binds),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network.to_owned(), endpoint)])),
        }),
        ..Default::default()
    };
    let name = format!(
        "faas-test-index-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let id = docker.create_container(Some(options), body).await?.id;
    if let Err(error) = docker.start_container(&id, None).await {
        remove(docker, &id).await;
        return Err(error);
    }
    wait_for_log(docker, &id, "Serving HTTP").await;
    let inspected = docker.inspect_container(&id, None).await?;
    let ip = inspected.network_settings.unwrap().networks.unwrap()[network]
        .ip_address
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    Ok((id, ip))
}

/// Until container `id`'s output has `text`, or 20 s.
async fn wait_for_log(docker: &Docker, id: &str, text: &str) {
    use futures_util::StreamExt;
    for _ in 0..200 {
        let options = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut logs = docker.logs(id, Some(options));
        let mut seen = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            seen.push_str(&chunk.to_string());
        }
        if seen.contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("container {id} never wrote {text:?}");
}

/// Containers this test started, removed when it ends, passed or not.
struct Started(Vec<String>);

impl Drop for Started {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f"])
                .args(&self.0)
                .output();
        }
    }
}

async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    let _ = docker.remove_container(id, Some(options)).await;
}

/// Until `address:port` accepts from this host (the server has started), or 20 s.
fn wait_until_listening(address: SocketAddr) {
    for _ in 0..200 {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens at {address}");
}

/// This host's address on its default route (a UDP socket's connect sends nothing).
fn host_address() -> Ipv4Addr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect("203.0.113.1:9").unwrap();
    match socket.local_addr().unwrap().ip() {
        std::net::IpAddr::V4(v4) => v4,
        other => panic!("{other}"),
    }
}

/// The setup.py of the hostile package: every target tried at once (3 s each), then the kernel,
/// then what it can see of the index settings; written straight to the build's stderr (pip
/// hides a successful setup.py's output), and it lingers 3 s so that the test can inspect the
/// running container.
fn setup_py(targets: &[(String, SocketAddr)]) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|(label, address)| {
            format!(
                "({label:?}, {:?}, {})",
                address.ip().to_string(),
                address.port()
            )
        })
        .collect();
    format!(
        r#"import ctypes, os, socket, threading, time
from setuptools import setup

TARGETS = [{targets}]
lines = []
def probe(label, host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        lines.append(f"probe {{label}} {{host}}:{{port}}: CONNECTED")
    except OSError as error:
        lines.append(f"probe {{label}} {{host}}:{{port}}: failed ({{type(error).__name__}}: {{error}})")
threads = [threading.Thread(target=probe, args=t) for t in TARGETS]
for t in threads: t.start()
for t in threads: t.join()
lines.append("kernel /proc/version: " + open("/proc/version").read().strip())
lines.append("kernel uname -r: " + os.uname().release)
try:
    buf = ctypes.create_string_buffer(1 << 14)
    n = ctypes.CDLL(None).klogctl(3, buf, len(buf))
    for line in buf.raw[:max(n, 0)].decode(errors="replace").splitlines()[:4]:
        lines.append("kernel dmesg: " + line)
except Exception as error:
    lines.append(f"kernel dmesg: unreadable ({{error}})")
lines.append("env has PIP_INDEX_URL: " + str("PIP_INDEX_URL" in os.environ))
with open("/proc/1/fd/2", "w") as log:
    log.write("".join(f"[setup.py] {{line}}\n" for line in sorted(lines)))
time.sleep(3)
setup(name="faas-probe", version="0.1", py_modules=["faas_probe"])
"#,
        targets = targets.join(", ")
    )
}

/// A "simple" index in a new directory: /simple/faas-probe/ links the sdist.
fn make_index(setup_py: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faas-index-{}", uuid::Uuid::new_v4().simple()));
    let mut sdist = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let pkg_info = "Metadata-Version: 2.1\nName: faas-probe\nVersion: 0.1\n";
    for (name, text) in [
        ("PKG-INFO", pkg_info),
        ("setup.py", setup_py),
        ("faas_probe.py", "PROBED = True\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        sdist
            .append_data(
                &mut header,
                format!("faas_probe-0.1/{name}"),
                text.as_bytes(),
            )
            .unwrap();
    }
    let bytes = sdist.into_inner().unwrap().finish().unwrap();
    let packages = dir.join("packages");
    let project = dir.join("simple/faas-probe");
    std::fs::create_dir_all(&packages).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(packages.join("faas_probe-0.1.tar.gz"), bytes).unwrap();
    let mut index = std::fs::File::create(project.join("index.html")).unwrap();
    writeln!(
        index,
        "<html><body><a href=\"../../packages/faas_probe-0.1.tar.gz\">faas_probe-0.1.tar.gz</a></body></html>"
    )
    .unwrap();
    dir
}

/// The index's container at a free address of the mirror range.
async fn start_index(docker: &Docker, dir: &Path, mirrors: (Ipv4Addr, u32)) -> (String, Ipv4Addr) {
    let (base, bits) = mirrors;
    let size = 1u32 << (32 - bits);
    let mut last = None;
    for _ in 0..8 {
        let offset = 1 + (uuid::Uuid::new_v4().as_u128() as u32) % (size - 2);
        let address = Ipv4Addr::from(u32::from(base) + offset);
        match server(docker, NETWORK, Some(address), Some(dir), 80).await {
            Ok(started) => return started,
            Err(error) => last = Some(error),
        }
    }
    panic!("cannot start the test index in {base}/{bits}: {last:?}");
}

fn builder(docker: Docker, adjust: impl FnOnce(&mut worker::DepsSettings)) -> (Builder, PathBuf) {
    let mut settings = config(Runtime::Docker).deps;
    let cache = std::env::temp_dir().join(format!(
        "faas-build-cache-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&cache).unwrap();
    settings.cache_dir = cache.clone();
    settings.worker_token = None;
    settings.build_timeout_secs = 120;
    adjust(&mut settings);
    let builder = Builder {
        docker,
        cache: Arc::new(DepsCache::open(&settings)),
        settings,
        worker_id: format!("build-test-{}", uuid::Uuid::new_v4().simple()),
        own_container: None,
    };
    (builder, cache)
}

fn job(dependencies: &str) -> BuildJob {
    BuildJob {
        key: common::hex(uuid::Uuid::new_v4().as_bytes()).repeat(2),
        attempt: uuid::Uuid::new_v4(),
        language: Language::Python,
        dependencies: dependencies.to_owned(),
        namespace: "tenant-probe".to_owned(),
    }
}

/// The build container of `key` once it exists (inspected), or `None` after 60 s.
async fn inspect_build(
    docker: &Docker,
    key: &str,
) -> Option<bollard::models::ContainerInspectResponse> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("faas.build={key}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    for _ in 0..600 {
        if let Some(found) = docker
            .list_containers(Some(options.clone()))
            .await
            .unwrap()
            .first()
        {
            return docker
                .inspect_container(found.id.as_deref().unwrap(), None)
                .await
                .ok();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn a_hostile_setup_py_reaches_nothing_but_the_index_and_runs_under_gvisor() {
    let docker = worker::preflight(&config(Runtime::Docker))
        .await
        .unwrap_or_else(|e| panic!("Docker is required for this test: {e}"));
    let (gateway, mirrors) = build_network(&docker).await;

    // Stand-ins for what a build must not reach: a service on every address of this host
    // (as an api with API_ADDR=0.0.0.0 is), one on Docker's default bridge (where compose puts
    // the api, the broker and Postgres), and another build on the build network.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Peers of every connection: only one from the build network is a breach (a process of
    // this host that happens to connect to the port, as a busy CI machine once did, is not).
    let peers = Arc::new(Mutex::new(Vec::<SocketAddr>::new()));
    std::thread::spawn({
        let peers = peers.clone();
        move || {
            for stream in listener.incoming().flatten() {
                if let Ok(peer) = stream.peer_addr() {
                    peers.lock().unwrap().push(peer);
                }
                drop(stream);
            }
        }
    });
    let mut started = Started(Vec::new());
    let (bridge_service, bridge_ip) = server(&docker, "bridge", None, None, 8000).await.unwrap();
    started.0.push(bridge_service.clone());
    let (other_build, other_build_ip) = server(&docker, NETWORK, None, None, 8000).await.unwrap();
    started.0.push(other_build);
    // This host's address on Docker's default bridge, as the service there sees it.
    let docker0 = docker
        .inspect_container(&bridge_service, None)
        .await
        .unwrap()
        .network_settings
        .unwrap()
        .networks
        .unwrap()["bridge"]
        .gateway
        .clone()
        .unwrap();
    let host = host_address();
    let targets: Vec<(String, SocketAddr)> = [
        ("host-on-build-gateway", SocketAddr::from((gateway, port))),
        ("host-on-its-address", SocketAddr::from((host, port))),
        (
            "host-on-docker0",
            SocketAddr::new(docker0.parse().unwrap(), port),
        ),
        ("metadata", "169.254.169.254:80".parse().unwrap()),
        (
            "service-on-docker-bridge",
            SocketAddr::from((bridge_ip, 8000)),
        ),
        ("another-build", SocketAddr::from((other_build_ip, 8000))),
    ]
    .into_iter()
    .map(|(label, address)| (label.to_owned(), address))
    .collect();
    // Without the sandbox they answer: this host reaches the listener and the bridge's service.
    for address in [
        SocketAddr::from((host, port)),
        SocketAddr::from((bridge_ip, 8000)),
    ] {
        wait_until_listening(address);
    }
    let before = peers.lock().unwrap().len();

    let dir = make_index(&setup_py(&targets));
    let (index, index_ip) = start_index(&docker, &dir, mirrors).await;
    started.0.push(index);
    let index_url = format!("http://{index_ip}/simple/");
    let (builder, cache) = builder(docker.clone(), |s| {
        s.pip_index_url = Some(index_url.clone())
    });
    builder.check().await.expect("this worker can build");

    let job = job("# a comment\nfaas-probe==0.1\n");
    let (run, inspected) = tokio::join!(builder.run(&job), inspect_build(&docker, &job.key));
    let (outcome, log) = run;
    drop(started);
    println!("{log}");

    // The container: gVisor, the build network, the namespace, no index URL in its environment.
    let inspected = inspected.expect("the build container was seen");
    let host_config = inspected.host_config.unwrap();
    assert_eq!(host_config.runtime.as_deref(), Some("runsc-build"));
    assert_eq!(host_config.network_mode.as_deref(), Some(NETWORK));
    let config = inspected.config.unwrap();
    assert_eq!(config.labels.unwrap()["faas.namespace"], "tenant-probe");
    let env = config.env.unwrap();
    assert!(
        env.iter().all(|v| !v.contains(&index_url)
            && !v.starts_with("PIP_INDEX_URL=")
            && !v.starts_with("NPM_CONFIG_REGISTRY=")),
        "{env:?}"
    );

    // Every connection failed; the index was reached (the package is built) and its
    // configuration deleted after the install.
    for (label, address) in &targets {
        let line = format!("[setup.py] probe {label} {address}: failed");
        assert!(log.contains(&line), "{line} is not in the log:\n{log}");
    }
    assert!(!log.contains("CONNECTED"), "{log}");
    let (subnet, gateway) = build_subnet(&docker).await;
    let from_builds: Vec<SocketAddr> = peers.lock().unwrap()[before..]
        .iter()
        .copied()
        .filter(|peer| on_build_network(peer, subnet, gateway))
        .collect();
    assert!(
        from_builds.is_empty(),
        "a build reached the host's listener from {from_builds:?}"
    );
    assert!(
        log.contains("[setup.py] env has PIP_INDEX_URL: False"),
        "{log}"
    );
    assert!(log.contains("the index configuration is deleted"), "{log}");
    let BuildOutcome::Ready {
        digest, archive, ..
    } = outcome
    else {
        panic!("the build failed:\n{log}");
    };
    assert!(cache.join(&digest).join("faas_probe.py").is_file(), "{log}");

    // The kernel is gVisor's, not this host's.
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let release_line = log
        .lines()
        .find_map(|l| l.strip_prefix("[setup.py] kernel uname -r: "))
        .unwrap_or_else(|| panic!("no kernel line:\n{log}"));
    assert_ne!(release_line.trim(), host_release.trim(), "{log}");
    assert!(log.contains("gVisor"), "no gVisor kernel message:\n{log}");

    let _ = std::fs::remove_file(archive);
    let _ = std::fs::remove_dir_all(cache);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_worker_without_the_build_runtime_or_network_takes_no_builds_and_a_build_without_the_firewall_installs_nothing()
 {
    let docker = worker::preflight(&config(Runtime::Docker))
        .await
        .unwrap_or_else(|e| panic!("Docker is required for this test: {e}"));
    let (no_runtime, cache_a) = builder(docker.clone(), |s| {
        s.build_oci_runtime = "faas-no-such-runtime".into()
    });
    let refused = no_runtime.check().await.unwrap_err();
    assert!(
        refused.contains("Docker has no runtime faas-no-such-runtime"),
        "{refused}"
    );
    let (no_network, cache_b) = builder(docker.clone(), |s| {
        s.build_network = "faas-no-such-net".into()
    });
    let refused = no_network.check().await.unwrap_err();
    assert!(
        refused.contains("the build network faas-no-such-net"),
        "{refused}"
    );
    let (outcome, log) = no_network.run(&job("six\n")).await;
    assert!(matches!(outcome, BuildOutcome::Failed), "{log}");
    assert!(log.contains("scripts/setup.sh makes it"), "{log}");

    // A network with no firewall: build.sh sees the host answer and stops before pip.
    let name = format!("faas-t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let options = bollard::models::NetworkCreateRequest {
        name: name.clone(),
        // The registries' pins as faas-build has them, so that the build gets as far as the
        // firewall's check.
        labels: Some(HashMap::from([
            (TEST_LABEL.to_owned(), "true".to_owned()),
            ("faas.build.hosts".to_owned(), registry_pins(&docker).await),
        ])),
        ..Default::default()
    };
    docker.create_network(options).await.unwrap();
    let (open, cache_c) = builder(docker.clone(), |s| s.build_network = name.clone());
    open.check()
        .await
        .expect("the runtime and the network are there");
    let (outcome, log) = open.run(&job("six\n")).await;
    let _ = docker.remove_network(&name).await;
    assert!(matches!(outcome, BuildOutcome::Failed), "{log}");
    assert!(log.contains("its firewall is missing"), "{log}");
    assert!(!log.contains("Collecting six"), "pip ran:\n{log}");
    for cache in [cache_a, cache_b, cache_c] {
        let _ = std::fs::remove_dir_all(cache);
    }
}
