//! Which backends sygen finds and which one it uses: `sygen service backends` (text and JSON),
//! the search path, `SYGEN_BACKEND` and `--backend`, `sygen service backend use`, and passing
//! over a default backend whose service manager does not answer.

use std::{fs, os::unix::fs::MetadataExt, path::Path};

use crate::support::{artifacts, library, sorted_keys, User};

#[test]
fn backends_lists_the_shipped_backends_and_selects_systemd() {
    let out = User::new().run(&["service", "backends"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for (name, platform) in [
        ("systemd", "linux"),
        ("openrc", "linux"),
        ("launchd", "macos"),
        ("tasksched", "windows"),
    ] {
        let row = rows
            .iter()
            .find(|r| r.contains(&name))
            .unwrap_or_else(|| panic!("{name} missing from\n{}", out.stdout));
        assert!(row.contains(&"0.1.0") && row.contains(&platform), "{row:?}");
        let file = format!("libsygen_{name}.so");
        assert!(row.last().unwrap().ends_with(&file), "{row:?}");
        assert_eq!(
            row[0] == "*",
            name == "systemd",
            "only systemd is selected: {row:?}"
        );
    }
}

#[test]
fn backends_json_has_the_documented_shape() {
    let user = User::new();
    let out = user.run(&["service", "backends", "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON");
    let searched: Vec<&str> = report["searched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let exe_dir = fs::canonicalize(artifacts()).unwrap();
    let exe_dir = exe_dir.to_str().unwrap();
    assert_eq!(
        searched,
        [
            format!("{}/backends", user.sygen_home().display()),
            format!("{exe_dir}/backends"),
            format!(
                "{}/lib/sygen/backends",
                Path::new(exe_dir).parent().unwrap().display()
            ),
            exe_dir.to_owned(),
        ]
    );
    let backends = report["backends"].as_array().unwrap();
    let mut names: Vec<&str> = backends
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["launchd", "openrc", "systemd", "tasksched"]);
    for backend in backends {
        let keys = sorted_keys(backend);
        let mut documented = [
            "path",
            "loaded",
            "name",
            "version",
            "platform",
            "description",
            "api_version",
            "available",
            "error",
            "hint",
            "selected",
            "chosen_because",
            "replaces",
        ];
        documented.sort_unstable();
        assert_eq!(keys, documented);
        assert_eq!(backend["loaded"], true);
        assert_eq!(backend["version"], "0.1.0");
        assert_eq!(backend["api_version"], "1.2.0");
        assert_eq!(backend["selected"], backend["name"] == "systemd");
    }
}

#[test]
fn sygen_backend_names_the_backend_and_the_flag_beats_it() {
    let user = User::new();
    let misbehaving = library("misbehaving_backend");
    let mut command = user.command(&["service", "install", "--no-wait"]);
    command
        .env("SYGEN_BACKEND", &misbehaving)
        .env("MISBEHAVE", "ok");
    let out = User::run_command(command);
    assert_eq!(
        out.succeeds(),
        "install_service: ok for sygen\n\
         sygen service installed (misbehaving backend, named by SYGEN_BACKEND)\n"
    );

    // Without a runtime directory, so that the systemd backend's answer is the same on every
    // machine.
    let systemd = library("sygen_systemd");
    let mut command = user.command(&["--backend", systemd.to_str().unwrap(), "service", "install"]);
    command
        .env("SYGEN_BACKEND", &misbehaving)
        .env_remove("XDG_RUNTIME_DIR");
    let uid = fs::metadata(user.home.path()).unwrap().uid();
    let line = User::run_command(command)
        .fails_with(1, "systemd backend 0.1.0")
        .to_owned();
    assert_eq!(
        line,
        format!(
            "error: systemd backend 0.1.0: cannot reach your systemd user manager: \
             XDG_RUNTIME_DIR is not set (hint: run `export XDG_RUNTIME_DIR=/run/user/{uid}` \
             (or log in to a full session), then try again)"
        )
    );

    let mut command = user.command(&["service", "install"]);
    let gone = user.home.path().join("gone.so");
    command.env("SYGEN_BACKEND", &gone);
    let line = User::run_command(command)
        .fails_with(4, "gone.so: no such file")
        .to_owned();
    assert_eq!(
        line,
        format!(
            "error: backend {}: no such file (hint: check the path of the backend file)",
            gone.display()
        )
    );
}

#[test]
fn backends_in_sygen_home_come_first_and_broken_files_are_reported() {
    let user = User::new();
    let dir = user.sygen_home().join("backends");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(library("sygen_systemd"), dir.join("libsygen_systemd.so")).unwrap();
    fs::write(dir.join("libsygen_broken.so"), b"not a library").unwrap();
    fs::write(dir.join("README.txt"), b"not a backend name").unwrap();

    let out = user.run(&["service", "backends", "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let backends = report["backends"].as_array().unwrap();
    let broken = &backends[0];
    assert_eq!(broken["loaded"], false);
    assert!(broken["path"]
        .as_str()
        .unwrap()
        .ends_with("libsygen_broken.so"));
    assert!(broken["error"]
        .as_str()
        .unwrap()
        .contains("not a loadable library"));
    assert_eq!(broken["error"], "not a loadable library (file too short)");
    let home_copy = &backends[1];
    assert_eq!(home_copy["name"], "systemd");
    assert!(home_copy["path"]
        .as_str()
        .unwrap()
        .starts_with(dir.to_str().unwrap()));
    assert_eq!(
        home_copy["selected"], true,
        "equal versions: the first found wins"
    );
    let selected = backends.iter().filter(|b| b["selected"] == true).count();
    assert_eq!(selected, 1);
    assert!(!out.stdout.contains("README.txt"));

    let text = user.run(&["service", "backends"]);
    let not_loaded = format!(
        "not loaded: {}: not a loadable library (file too short)",
        dir.join("libsygen_broken.so").display()
    );
    assert!(
        text.succeeds().lines().any(|l| l == not_loaded),
        "{}",
        text.stdout
    );
}

#[test]
fn concurrent_and_repeated_commands_agree() {
    let user = User::new();
    let children: Vec<_> = (0..8)
        .map(|_| {
            user.command(&["service", "backends", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn sygen")
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("sygen finishes"))
        .collect();
    for output in &outputs {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.stdout, outputs[0].stdout);
    }
    for _ in 0..3 {
        assert_eq!(
            user.run(&["service", "backends", "--json"])
                .stdout
                .as_bytes(),
            outputs[0].stdout
        );
    }
}

#[test]
fn backend_use_makes_a_backend_the_one_every_later_command_uses() {
    let user = User::new();
    let config = user.sygen_home().join("config.toml");
    fs::create_dir_all(user.sygen_home()).unwrap();
    fs::write(
        &config,
        "# mine\n[agent]\nheartbeat_interval = \"5s\" # fast\n",
    )
    .unwrap();

    let out = user.run(&["service", "backend", "use", "openrc"]);
    assert!(
        out.succeeds()
            .starts_with("sygen uses the openrc backend from now on ("),
        "{}",
        out.stdout
    );
    let text = fs::read_to_string(&config).unwrap();
    assert!(text.contains("backend = \"openrc\""), "{text}");
    assert!(
        text.contains("heartbeat_interval = \"5s\" # fast"),
        "the rest stays: {text}"
    );

    // Every later command, in a new process, uses it and says why.
    let report: serde_json::Value =
        serde_json::from_str(user.run(&["service", "backends", "--json"]).succeeds()).unwrap();
    let selected: Vec<&serde_json::Value> = report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["selected"] == true)
        .collect();
    assert_eq!(selected.len(), 1, "{report}");
    assert_eq!(selected[0]["name"], "openrc");
    assert_eq!(selected[0]["chosen_because"], "config");
    assert!(user
        .run(&["service", "backends"])
        .stdout
        .contains("* in use: openrc 0.1.0, chosen in config.toml"));
    assert!(user
        .run(&["doctor"])
        .stdout
        .contains("(chosen in config.toml)\n"));
    let status = user.run(&["service", "status"]);
    let line = status.fails_with(3, "openrc").to_owned();
    assert_eq!(
        line,
        "error: sygen is not installed (openrc backend) (hint: run `sygen service install`)"
    );

    // What cannot be chosen is one line, and changes nothing.
    let line = user
        .run(&["service", "backend", "use", "launchd"])
        .fails_with(4, "no launchd backend for linux was found")
        .to_owned();
    assert_eq!(
        line,
        "error: no launchd backend for linux was found (hint: `sygen service backends` lists \
         the backends found; `sygen service backend add <file>` installs one)"
    );
    let out = user.run(&["service", "backend", "use", "Not/A/Name"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "error: invalid value 'Not/A/Name' for '<NAME>': \"Not/A/Name\" is not a backend name: \
         it has characters other than lowercase letters, digits, '-' and '_' (for example: \
         systemd)\n\n\
         For more information, try '--help'.\n"
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), text);

    // A configured backend that is gone is said as such, with the way out.
    fs::write(&config, "backend = \"runit\"\n").unwrap();
    user.run(&["service", "status"]).fails_with(
        4,
        "the runit backend chosen in config.toml was not found for linux",
    );
    fs::write(&config, "backend = \"../x\"\n").unwrap();
    let out = user.run(&["doctor"]);
    let not_a_name = format!(
        "[FAIL] config: {} line 1: key `backend`: \"../x\" is not a backend name: it has \
         characters other than lowercase letters, digits, '-' and '_' (for example: systemd)",
        config.display()
    );
    assert!(
        out.stdout.lines().any(|l| l == not_a_name),
        "{}",
        out.stdout
    );
}

#[test]
fn install_passes_over_a_default_backend_whose_manager_does_not_answer_for_the_one_that_does() {
    let user = User::new();
    let report: serde_json::Value =
        serde_json::from_str(user.run(&["service", "backends", "--json"]).succeeds()).unwrap();
    let answering = report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["platform"] == "linux" && b["available"] == true);
    if answering {
        // A user manager or OpenRC answers on this machine: nothing to pass over.
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{report}");
        eprintln!("skipped: a Linux service manager answers here");
        return;
    }
    // A second Linux backend whose manager answers (`on-load` always does).
    let dir = user.sygen_home().join("backends");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(library("on_load"), dir.join("libsygen_on-load.so")).unwrap();
    let out = user.run(&["service", "install", "--no-wait"]);
    assert!(
        out.stdout.starts_with(
            "the systemd service manager does not answer here; on-load is the only other \
             backend for linux whose service manager does\nsygen uses the on-load backend from now on"
        ),
        "{}",
        out.stdout
    );
    // It cannot install (the test backend has no install), and says so as itself.
    out.fails_with(
        1,
        "on-load backend 0.1.0: install_service is not implemented",
    );
    let config = fs::read_to_string(user.sygen_home().join("config.toml")).unwrap();
    assert!(config.contains("backend = \"on-load\""), "{config}");
    assert!(user
        .run(&["service", "backends"])
        .stdout
        .contains("* in use: on-load 0.1.0, chosen in config.toml"));
}
