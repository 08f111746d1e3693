//! init → deploy → invoke for both languages on both runtimes, folders with modules and
//! dependencies, redeploys, async calls and the function commands.

use crate::support::{Scratch, cluster, unique};
use serde_json::{Value, json};

/// `faas init NAME --language LANGUAGE` then `faas deploy NAME -o json`: the deploy's output.
fn init_and_deploy(scratch: &Scratch, name: &str, language: &str) -> Value {
    scratch.faas(&["init", name, "--language", language]).ok();
    scratch.faas(&["deploy", name, "-o", "json"]).ok().json()
}

fn check_template_runs_on_both_runtimes(language: &str) {
    let scratch = Scratch::new(&format!("template-{language}"));
    let name = format!("hello-{language}-{}", unique());
    let deployed = init_and_deploy(&scratch, &name, language);
    assert_eq!(deployed["name"], name.as_str());
    assert_eq!(deployed["version"], 1);
    assert_eq!(deployed["changed"], true);
    let cluster = cluster();
    assert_eq!(
        deployed["urls"]["execute"],
        format!("{}/execute/{name}", cluster.api_url).as_str()
    );
    assert_eq!(
        deployed["urls"]["trigger"],
        format!("{}/{name}", cluster.functions_url).as_str()
    );
    for runtime in [&[][..], &["--gvisor"]] {
        let mut args = vec!["invoke", &name, "-d", r#"{"name": "Ada"}"#];
        args.extend_from_slice(runtime);
        let run = scratch.faas(&args).ok();
        assert_eq!(run.json(), json!({"message": "Hello, Ada!"}), "{runtime:?}");
        assert!(
            run.stderr.contains("greeting Ada"),
            "logs on stderr: {run:#?}"
        );
    }
    // The text output names the version and both URLs.
    let text = scratch.faas(&["deploy", &name]).ok();
    assert!(text.stdout.contains("version 1"), "{}", text.stdout);
    assert!(
        text.stdout.contains(&format!("/execute/{name}")),
        "{}",
        text.stdout
    );
    // The event file written by init passes against the deployed function.
    let tested = scratch.faas(&["test", &name]).ok();
    assert!(tested.stdout.contains("PASS hello"), "{}", tested.stdout);
}

#[test]
fn the_python_template_deploys_and_runs_on_docker_and_gvisor() {
    check_template_runs_on_both_runtimes("python");
}

#[test]
fn the_javascript_template_deploys_and_runs_on_docker_and_gvisor() {
    check_template_runs_on_both_runtimes("javascript");
}

#[test]
fn every_template_passes_its_own_sample_event() {
    let scratch = Scratch::new("templates");
    for language in ["python", "javascript"] {
        for template in ["http", "cron", "webhook"] {
            let name = format!("t-{template}-{language}-{}", unique());
            scratch
                .faas(&[
                    "init",
                    &name,
                    "--language",
                    language,
                    "--template",
                    template,
                ])
                .ok();
            scratch.faas(&["deploy", &name]).ok();
            let run = scratch.faas(&["test", &name]).ok();
            assert!(
                run.stdout.contains("1 of 1 events passed"),
                "{template} {language}: {run:#?}"
            );
        }
    }
}

#[test]
fn a_python_folder_with_a_helper_module_and_requirements_builds_and_runs() {
    let scratch = Scratch::new("python-deps");
    let name = format!("py-deps-{}", unique());
    let toml = format!(
        "name = \"{name}\"\nlanguage = \"python\"\nhandler = \"app.handler\"\nroute = \"/{name}\"\ntimeout = 10\n"
    );
    scratch.write(
        &name,
        &[
            ("faas.toml", &toml),
            ("app.py", "import six\nfrom helpers import shout\n\ndef handler(event, context):\n    return {\"six\": six.__version__, \"said\": shout(event[\"word\"])}\n"),
            ("helpers.py", "def shout(word):\n    return word.upper() + \"!\"\n"),
            ("requirements.txt", "six==1.16.0\n"),
        ],
    );
    let deployed = scratch.faas(&["deploy", &name, "-o", "json"]).ok().json();
    assert_eq!(deployed["build"], "ready", "{deployed}");
    let run = scratch
        .faas(&["invoke", &name, "-d", r#"{"word": "hi"}"#])
        .ok();
    assert_eq!(run.json(), json!({"six": "1.16.0", "said": "HI!"}));
    let log = scratch.faas(&["build-log", &name]).ok();
    assert!(log.stdout.to_lowercase().contains("six"), "{log:#?}");
}

#[test]
fn a_javascript_es_module_folder_with_a_dependency_builds_and_runs() {
    let scratch = Scratch::new("js-esm");
    let name = format!("js-esm-{}", unique());
    let toml = format!(
        "name = \"{name}\"\nlanguage = \"javascript\"\nhandler = \"index.handler\"\nroute = \"/{name}\"\ntimeout = 10\n"
    );
    scratch.write(
        &name,
        &[
            ("faas.toml", &toml),
            ("package.json", "{\"type\": \"module\", \"dependencies\": {\"is-number\": \"7.0.0\"}}\n"),
            ("index.js", "import isNumber from \"is-number\";\nimport { double } from \"./lib/math.js\";\n\nexport const handler = async (event) => ({ number: isNumber(event.n), doubled: double(event.n) });\n"),
            ("lib/math.js", "export const double = (n) => n * 2;\n"),
            ("node_modules/ignored/index.js", "throw new Error('never uploaded');\n"),
        ],
    );
    let deployed = scratch.faas(&["deploy", &name, "-o", "json"]).ok().json();
    assert_eq!(deployed["build"], "ready", "{deployed}");
    let run = scratch.faas(&["invoke", &name, "-d", r#"{"n": 21}"#]).ok();
    assert_eq!(run.json(), json!({"number": true, "doubled": 42}));
    let function = &cluster().functions_named(&name)[0];
    // faas.toml, package.json, index.js and lib/math.js: node_modules stays home.
    assert_eq!(function["package"]["files"], 4, "{function}");
}

#[test]
fn a_failed_build_prints_the_end_of_its_log_and_exits_1() {
    let scratch = Scratch::new("failed-build");
    let name = format!("no-pkg-{}", unique());
    let toml =
        format!("name = \"{name}\"\nlanguage = \"python\"\nroute = \"/{name}\"\ntimeout = 5\n");
    scratch.write(
        &name,
        &[
            ("faas.toml", &toml),
            ("main.py", "def handler(event, context):\n    return 1\n"),
            (
                "requirements.txt",
                "faas-cli-test-no-such-package-4711==1.0\n",
            ),
        ],
    );
    let run = scratch.faas(&["deploy", &name]).fails(1);
    assert!(
        run.stderr.contains("the dependency build failed"),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("faas-cli-test-no-such-package-4711"),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains(&format!("faas build-log {name}")),
        "{run:#?}"
    );
}

#[test]
fn redeploying_an_unchanged_folder_keeps_the_version_and_a_change_makes_the_next() {
    let scratch = Scratch::new("redeploy");
    let name = format!("same-{}", unique());
    let first = init_and_deploy(&scratch, &name, "python");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Touched files, same content: the same zip, the same version.
    let handler = scratch.dir.join(&name).join("main.py");
    let source = std::fs::read_to_string(&handler).unwrap();
    std::fs::write(&handler, &source).unwrap();
    let again = scratch.faas(&["deploy", &name, "-o", "json"]).ok().json();
    assert_eq!(again["version"], first["version"]);
    assert_eq!(again["changed"], false);
    let before = &cluster().functions_named(&name)[0];
    std::fs::write(&handler, source.replace("Hello", "Hi")).unwrap();
    let changed = scratch.faas(&["deploy", &name, "-o", "json"]).ok().json();
    assert_eq!(changed["version"], 2);
    assert_eq!(changed["changed"], true);
    let after = &cluster().functions_named(&name)[0];
    assert_ne!(before["updated_at"], after["updated_at"]);
    let run = scratch
        .faas(&["invoke", &name, "-d", r#"{"name": "Ada"}"#])
        .ok();
    assert_eq!(run.json(), json!({"message": "Hi, Ada!"}));
}

#[test]
fn async_calls_print_their_id_and_wait_follows_them_to_the_end() {
    let scratch = Scratch::new("async");
    let name = format!("async-{}", unique());
    init_and_deploy(&scratch, &name, "python");
    let queued = scratch
        .faas(&["invoke", &name, "--async", "-d", r#"{"name": "Bo"}"#])
        .ok();
    let id = queued.stdout.trim().to_owned();
    assert_eq!(id.len(), 36, "an invocation id: {queued:#?}");
    let waited = scratch
        .faas(&[
            "invoke",
            &name,
            "--async",
            "--wait",
            "-d",
            r#"{"name": "Cy"}"#,
        ])
        .ok();
    assert_eq!(waited.json(), json!({"message": "Hello, Cy!"}));
    let listed = scratch
        .faas(&["invocations", &name, "-o", "json"])
        .ok()
        .json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["invocation_id"] == id.as_str()),
        "{listed}"
    );
    let text = scratch.faas(&["invocations", &name]).ok();
    assert!(text.stdout.contains("INVOCATION_ID"), "{}", text.stdout);
}

#[test]
fn a_failing_function_exits_1_with_its_error_on_stderr() {
    let scratch = Scratch::new("failing");
    let name = format!("fails-{}", unique());
    let toml =
        format!("name = \"{name}\"\nlanguage = \"python\"\nroute = \"/{name}\"\ntimeout = 5\n");
    scratch.write(
        &name,
        &[
            ("faas.toml", &toml),
            ("main.py", "def handler(event, context):\n    print(\"about to fail\")\n    raise ValueError(\"no good\")\n"),
        ],
    );
    scratch.faas(&["deploy", &name]).ok();
    let run = scratch.faas(&["invoke", &name]).fails(1);
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert!(run.stderr.contains("about to fail"), "{run:#?}");
    assert!(run.stderr.contains("ValueError: no good"), "{run:#?}");
    let json = scratch
        .faas(&["invoke", &name, "-o", "json"])
        .fails(1)
        .json();
    assert_eq!(json["error"]["type"], "ValueError");
}

#[test]
fn ls_get_and_rm_show_and_remove_a_function() {
    let scratch = Scratch::new("crud");
    let name = format!("crud-{}", unique());
    init_and_deploy(&scratch, &name, "javascript");
    scratch.faas(&["invoke", &name]).ok();
    let listed = scratch.faas(&["ls", "-o", "json"]).ok().json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(row["language"], "javascript");
    assert_eq!(row["version"], 1);
    assert!(scratch.faas(&["ls"]).ok().stdout.contains(&name));

    let got = scratch.faas(&["get", &name, "-o", "json"]).ok().json();
    assert_eq!(got["function"]["name"], name.as_str());
    assert_eq!(got["stats"]["calls"], 1, "{got}");
    assert_eq!(got["stats"]["errors"], 0, "{got}");
    assert!(got["stats"]["p50_ms"].is_number(), "{got}");
    let text = scratch.faas(&["get", &name]).ok();
    assert!(
        text.stdout.contains("last hour:") && text.stdout.contains("1 calls"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("trigger url:"), "{}", text.stdout);

    scratch.faas(&["rm", &name]).ok();
    assert!(cluster().functions_named(&name).is_empty());
    scratch
        .faas(&["rm", &name])
        .refused(&format!("no function named \"{name}\""));
}
