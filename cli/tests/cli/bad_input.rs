//! Every bad input gets one line on stderr and exit 2, and leaves nothing on the server.

use crate::support::{Scratch, cluster, unique};

fn toml(name: &str) -> String {
    format!("name = \"{name}\"\nlanguage = \"python\"\nroute = \"/{name}\"\ntimeout = 5\n")
}

const HANDLER: &str = "def handler(event, context):\n    return 1\n";

/// Deploys folder `name` as written by `files`: refused with `text`, nothing created.
fn refused_deploy(scratch: &Scratch, name: &str, files: &[(&str, &str)], text: &str) {
    scratch.write(name, files);
    scratch.faas(&["deploy", name]).refused(text);
    assert!(
        cluster().functions_named(name).is_empty(),
        "{name} was created from a refused folder"
    );
}

#[test]
fn a_folder_without_faas_toml_or_its_handler_file_is_refused() {
    let scratch = Scratch::new("bad-folder");
    let name = format!("bad-a-{}", unique());
    refused_deploy(&scratch, &name, &[("main.py", HANDLER)], "has no faas.toml");
    let name = format!("bad-b-{}", unique());
    refused_deploy(
        &scratch,
        &name,
        &[("faas.toml", &toml(&name)), ("other.py", HANDLER)],
        "needs the file main.py or main/__init__.py",
    );
    let name = format!("bad-c-{}", unique());
    refused_deploy(
        &scratch,
        &name,
        &[
            ("faas.toml", &toml(&name)),
            ("main.py", HANDLER),
            (".faasignore", "*.py\n"),
        ],
        "needs the file main.py",
    );
    scratch
        .faas(&["deploy", "no-such-folder"])
        .refused("no-such-folder is not a folder");
}

#[test]
fn an_invalid_faas_toml_is_refused_naming_the_line_and_the_field() {
    let scratch = Scratch::new("bad-toml");
    let cases = [
        (
            "timeout = 5",
            "timeout = 9000",
            "faas.toml line 4 (timeout): timeout must be from 1 to 900",
        ),
        (
            "timeout = 5",
            "timeout = \"five\"",
            "faas.toml line 4 (timeout): invalid type",
        ),
        (
            "timeout = 5",
            "timeout = 5\nmemory = 128",
            "faas.toml line 5 (memory): unknown field `memory`",
        ),
        (
            "language = \"python\"",
            "language = \"cobol\"",
            "faas.toml line 2 (language)",
        ),
        (
            "route = ",
            "rout = ",
            "faas.toml line 3 (rout): unknown field",
        ),
    ];
    for (from, to, text) in cases {
        let name = format!("bad-toml-{}", unique());
        refused_deploy(
            &scratch,
            &name,
            &[
                ("faas.toml", &toml(&name).replace(from, to)),
                ("main.py", HANDLER),
            ],
            text,
        );
    }
    // What only the api checks is refused as well, with its code, and nothing is made.
    let name = format!("bad-api-{}", unique());
    let mut text = toml(&name);
    text.push_str("schedule = \"every day\"\n");
    refused_deploy(
        &scratch,
        &name,
        &[("faas.toml", &text), ("main.py", HANDLER)],
        "invalid_request",
    );
}

#[test]
fn a_bad_test_event_is_refused_before_anything_is_sent() {
    let scratch = Scratch::new("bad-event");
    let name = format!("bad-event-{}", unique());
    refused_deploy(
        &scratch,
        &name,
        &[
            ("faas.toml", &toml(&name)),
            ("main.py", HANDLER),
            ("events/broken.json", "{\"event\": "),
        ],
        "events/broken.json: not JSON",
    );
}

#[test]
fn a_package_over_the_limit_is_refused_before_uploading() {
    let scratch = Scratch::new("too-big");
    let name = format!("too-big-{}", unique());
    scratch.write(&name, &[("faas.toml", &toml(&name)), ("main.py", HANDLER)]);
    // 51 MiB that deflate cannot shrink.
    let mut noise = vec![0u8; 51 * 1024 * 1024];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for byte in noise.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    std::fs::write(scratch.dir.join(&name).join("blob.bin"), noise).unwrap();
    let run = scratch
        .faas(&["deploy", &name])
        .refused("over the api's limit of 50 MB");
    assert!(run.stderr.contains(".faasignore"), "{run:#?}");
    assert!(cluster().functions_named(&name).is_empty());
    std::fs::remove_file(scratch.dir.join(&name).join("blob.bin")).unwrap();
}

#[test]
fn an_unknown_function_is_refused_by_every_command_that_names_one() {
    let scratch = Scratch::new("unknown");
    let name = format!("nobody-{}", unique());
    scratch
        .faas(&["invoke", &name])
        .refused("function_not_found");
    scratch
        .faas(&["invoke", &name, "--async"])
        .refused("function_not_found");
    for command in ["get", "rm", "build-log"] {
        scratch
            .faas(&[command, &name])
            .refused(&format!("no function named \"{name}\""));
    }
    scratch
        .faas(&["logs", "--id", "not-an-id"])
        .refused("invocation_not_found");
    scratch
        .faas(&["retry", "00000000-0000-0000-0000-000000000000"])
        .refused("HTTP 404");
}

#[test]
fn bad_events_and_arguments_are_usage_errors() {
    let scratch = Scratch::new("usage");
    scratch
        .faas(&["invoke", "x", "-d", "{not json"])
        .refused("-d: the event is not JSON");
    scratch
        .faas(&["invoke", "x", "-d", "@/no/such/file"])
        .refused("/no/such/file");
    scratch
        .faas(&["logs", "--since", "yesterday"])
        .refused("--since must be");
    scratch
        .faas(&["init", "bad name"])
        .refused("a function name is");
    let name = format!("exists-{}", unique());
    scratch.write(&name, &[("keep.txt", "x")]);
    scratch
        .faas(&["init", &name])
        .refused("exists and is not empty");
    // clap's own errors exit 2 too.
    scratch.faas(&["deploy", "--no-such-flag"]).fails(2);
}
