//! Help, completion, login and whoami, and how a wrong key or an absent api is reported.

use crate::support::{ADMIN_KEY, Scratch, cluster, free_port};
use std::os::unix::fs::PermissionsExt as _;

#[test]
fn help_reads_for_every_command_and_completion_makes_a_script() {
    let scratch = Scratch::new("help");
    let help = scratch.faas_with(&["--help"], &[], None).ok();
    for command in [
        "login",
        "whoami",
        "init",
        "deploy",
        "invoke",
        "ls",
        "get",
        "rm",
        "invocations",
        "retry",
        "build-log",
        "logs",
        "test",
        "dev",
        "keys",
        "ns",
        "completion",
    ] {
        assert!(
            help.stdout.contains(command),
            "--help lacks {command}: {}",
            help.stdout
        );
        let sub = scratch.faas_with(&[command, "--help"], &[], None).ok();
        assert!(
            sub.stdout.contains("Usage: faas"),
            "{command} --help: {}",
            sub.stdout
        );
    }
    let bash = scratch.faas_with(&["completion", "bash"], &[], None).ok();
    assert!(
        bash.stdout.contains("complete") && bash.stdout.contains("faas"),
        "{}",
        bash.stdout
    );
    assert!(bash.stdout.contains("deploy"));
    scratch
        .faas_with(&["completion", "tcsh"], &[], None)
        .fails(2);
}

#[test]
fn login_checks_the_key_saves_a_private_profile_and_whoami_uses_it() {
    let scratch = Scratch::new("login");
    let config = scratch.dir.join("config/faas/config.toml");
    // A wrong key is refused, saying how to log in, and nothing is saved.
    scratch
        .faas_with(&["login"], &[], Some("not-a-key\n"))
        .refused("faas login");
    assert!(!config.exists());

    let login = scratch
        .faas_with(&["login"], &[], Some(&format!("{ADMIN_KEY}\n")))
        .ok();
    assert!(
        login.stdout.contains("namespace default"),
        "{}",
        login.stdout
    );
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(config.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);

    // No key in the environment now: the profile's is used.
    let who = scratch
        .faas_with(&["whoami", "-o", "json"], &[], None)
        .ok()
        .json();
    assert_eq!(who["namespace"], "default");
    assert_eq!(who["scopes"][0], "admin");
    // A key given on the command line wins over the profile's.
    scratch
        .faas_with(&["whoami", "--key", "wrong"], &[], None)
        .refused("faas login");
    // A named profile that does not exist is a usage error.
    scratch
        .faas_with(&["whoami", "--profile", "nope"], &[("FAAS_URL", "")], None)
        .fails(2);
}

#[test]
fn a_missing_or_wrong_key_says_how_to_log_in_and_an_absent_api_is_named() {
    let scratch = Scratch::new("auth");
    scratch.faas_with(&["ls"], &[], None).refused("faas login");
    scratch
        .faas_with(&["ls"], &[("FAAS_KEY", "faas_wrong")], None)
        .refused("faas login");
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let run = scratch
        .faas_with(&["ls", "--url", &nobody], &[("FAAS_KEY", ADMIN_KEY)], None)
        .refused("cannot reach the api");
    assert!(run.stderr.contains(&nobody), "{run:#?}");
    let _ = cluster();
}

#[test]
fn namespaces_and_keys_are_made_listed_used_and_removed() {
    let scratch = Scratch::new("keys");
    let namespace = format!("cli-ns-{}", crate::support::unique().replace('-', ""));
    scratch.faas(&["ns", "create", &namespace]).ok();
    let listed = scratch.faas(&["ns", "ls", "-o", "json"]).ok().json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == namespace.as_str()),
        "{listed}"
    );
    assert!(scratch.faas(&["ns", "ls"]).ok().stdout.contains(&namespace));

    let created = scratch
        .faas(&[
            "keys",
            "create",
            "--scope",
            "manage",
            "--scope",
            "read",
            "--namespace",
            &namespace,
            "--description",
            "cli test",
            "-o",
            "json",
        ])
        .ok()
        .json();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let who = scratch
        .faas_with(&["whoami", "-o", "json"], &[("FAAS_KEY", &key)], None)
        .ok()
        .json();
    assert_eq!(who["namespace"], namespace.as_str());
    // The text form prints the key alone on stdout, for scripts.
    let text = scratch
        .faas(&[
            "keys",
            "create",
            "--scope",
            "invoke",
            "--namespace",
            &namespace,
        ])
        .ok();
    assert!(text.stdout.trim().starts_with("faas_"), "{text:#?}");
    let keys = scratch
        .faas(&["keys", "ls", "--namespace", &namespace])
        .ok();
    assert!(
        keys.stdout.contains(&id) && keys.stdout.contains("manage,read"),
        "{}",
        keys.stdout
    );

    scratch.faas(&["keys", "revoke", &id]).ok();
    scratch
        .faas_with(&["whoami"], &[("FAAS_KEY", &key)], None)
        .refused("faas login");
    scratch.faas(&["ns", "rm", &namespace]).ok();
    scratch.faas(&["ns", "rm", &namespace]).refused("HTTP 404");
}
