//! `sygen doctor`: its JSON report's shape, and what it finds wrong with backend files,
//! configuration, the worker's PATH, logs and pid files, marked in colour only on a terminal.

use std::{fs, path::Path, process::Command};

use crate::support::{self, backend_copy, library, on_a_terminal, sorted_keys, Outcome, User};

/// `sygen doctor --json` with the misbehaving backend (installed and running, by its word).
fn doctor_report(user: &User, extra: &[(&str, &Path)]) -> (Outcome, serde_json::Value) {
    let mut command = user.command(&[]);
    for (key, value) in extra {
        command.env(key, value);
    }
    report_of(command)
}

/// [`doctor_report`] for `sygen`, `command`, given no arguments yet.
pub fn report_of(mut command: Command) -> (Outcome, serde_json::Value) {
    let backend = library("misbehaving_backend");
    command.args(["--backend", backend.to_str().unwrap(), "doctor", "--json"]);
    command.env("MISBEHAVE", "ok");
    let out = support::finishes(command);
    let report = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}{}", out.stdout, out.stderr));
    (out, report)
}

/// The status and message of the check `id` (the first, when there are several).
pub fn check<'a>(report: &'a serde_json::Value, id: &str) -> (&'a str, &'a str) {
    let found = check_of(report, id);
    (
        found["status"].as_str().unwrap(),
        found["message"].as_str().unwrap(),
    )
}

/// The check `id` of `report`, whole (the first, when there are several).
pub fn check_of<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {report:#}"))
}

#[test]
fn doctor_json_has_the_documented_shape() {
    let user = User::new();
    let (out, report) = doctor_report(&user, &[]);
    let keys = sorted_keys(&report);
    assert_eq!(keys, ["checks", "failed", "passed", "survival", "warnings"]);
    // The test backend does not answer what sygen outlives: it is not asked, nothing is said.
    assert!(report["survival"].is_null(), "{report:#}");
    let checks = report["checks"].as_array().unwrap();
    let mut counts = [0, 0, 0];
    for check in checks {
        let keys = sorted_keys(check);
        assert_eq!(keys, ["hint", "id", "message", "status"], "{check}");
        let index = ["pass", "warn", "fail"]
            .iter()
            .position(|s| check["status"] == *s)
            .unwrap_or_else(|| panic!("status of {check}"));
        counts[index] += 1;
        assert_eq!(
            check["hint"].is_null(),
            index == 0,
            "hints for warn and fail: {check}"
        );
    }
    assert_eq!(
        [&report["passed"], &report["warnings"], &report["failed"]],
        counts.map(serde_json::Value::from).each_ref()
    );
    assert_eq!(out.code, Some(0), "{report:#}");
    assert_eq!(check(&report, "backend").0, "pass");
    // The test backend has no checks of its own, and says it runs without a runtime.
    assert_eq!(check(&report, "backend-checks").0, "warn");
    let (status, message) = check(&report, "pid-files");
    assert_eq!(status, "warn");
    assert_eq!(
        message,
        format!(
            "the service manager reports sygen running, but no runtime holds {}",
            user.sygen_home().join("bot.pid").display()
        )
    );
}

#[test]
fn doctor_fails_a_worker_missing_from_the_service_path() {
    let user = User::new();
    let tools = user.home.path().join("my tools");
    fs::create_dir_all(&tools).unwrap();
    support::write_script(&tools.join("mytool"), "exit 0");
    fs::create_dir_all(user.sygen_home()).unwrap();
    let config = user.sygen_home().join("config.toml");
    fs::write(&config, "[agent]\ncommand = [\"mytool\", \"--serve\"]\n").unwrap();
    let shell_path = std::env::join_paths([tools.as_path(), Path::new("/usr/bin")]).unwrap();
    let (out, report) = doctor_report(&user, &[("PATH", Path::new(&shell_path))]);
    assert_eq!(out.code, Some(1));
    let (status, message) = check(&report, "worker-path");
    assert_eq!(status, "fail");
    assert_eq!(
        message,
        format!(
            "the worker `mytool` is not on the service's PATH; your shell finds it in {}",
            tools.display()
        )
    );
    assert_eq!(
        out.stderr,
        format!(
            "error: 1 of {} checks failed (hint: each failed check says how to fix it)\n",
            report["checks"].as_array().unwrap().len()
        )
    );

    fs::write(
        &config,
        format!(
            "[agent]\ncommand = [\"mytool\"]\nenv = {{ PATH = {:?} }}\n",
            tools.display().to_string()
        ),
    )
    .unwrap();
    let (out, report) = doctor_report(&user, &[]);
    assert_eq!(out.code, Some(0), "{report:#}");
    // Where a PATH of the worker's own environment finds it is not shown.
    assert_eq!(
        check(&report, "worker-path"),
        (
            "pass",
            "the worker `mytool` and its interpreter are found with the PATH [agent] env gives it"
        )
    );
}

#[test]
fn doctor_reports_backend_files_config_logs_and_pid_files() {
    let user = User::new();
    let home = user.sygen_home();
    let backends = home.join("backends");
    fs::create_dir_all(&backends).unwrap();
    let junk = backends.join("libsygen_junk.so");
    fs::write(&junk, b"not a library").unwrap();
    let open = backend_copy(&backends.join("libsygen_minimal.so"), 0o666);
    let config = home.join("config.toml");
    fs::write(&config, "[agent]\nheartbeat = \"1s\"\n").unwrap();
    let logs = home.join("logs");
    fs::write(&logs, "a file where the logs directory goes").unwrap();
    let bot_pid = home.join("bot.pid");
    fs::write(&bot_pid, "999999999\n").unwrap();

    let (out, report) = doctor_report(&user, &[]);
    assert_eq!(out.code, Some(1));
    for (id, expected, message) in [
        (
            "backend-file",
            "warn",
            format!(
                "{} does not load: not a loadable library (file too short)",
                junk.display()
            ),
        ),
        (
            "backend-permissions",
            "fail",
            format!(
                "{}: refusing to load it: it ({}) is writable by group or others (mode 0666)",
                open.display(),
                open.display()
            ),
        ),
        (
            "config",
            "fail",
            format!(
                "{} line 2: key `agent.heartbeat`: unknown field `heartbeat`, expected one of \
                 `command`, `env`, `env_file`, `working_dir`, `heartbeat_interval`, \
                 `stop_timeout`, `quick_restarts`, `ready`, `ready_timeout`, `watchdog`",
                config.display()
            ),
        ),
        (
            "logs-dir",
            "fail",
            format!(
                "{} is not a directory, so the logs cannot go there",
                logs.display()
            ),
        ),
        (
            "pid-files",
            "warn",
            format!(
                "{} is left from a runtime that is gone: no runtime holds it",
                bot_pid.display()
            ),
        ),
    ] {
        assert_eq!(check(&report, id), (expected, message.as_str()), "{id}");
    }
    assert_eq!(report["failed"], 3, "{report:#}");
}

#[test]
fn doctor_marks_checks_in_colour_only_on_a_terminal() {
    let user = User::new();
    let backend = library("misbehaving_backend");
    let args = format!("--backend {} doctor", backend.display());
    let coloured = on_a_terminal(&user, &args, &[]);
    assert!(
        coloured.contains("\x1b[1;32m[pass]\x1b[0m backend: misbehaving"),
        "{coloured:?}"
    );
    let plain = on_a_terminal(&user, &args, &[("NO_COLOR", "1")]);
    assert!(
        plain.contains("[pass] backend: misbehaving") && !plain.contains('\x1b'),
        "{plain:?}"
    );
    let piped = user.run(&["--backend", backend.to_str().unwrap(), "doctor"]);
    assert!(piped.stdout.contains("[warn] backend-checks: the misbehaving backend 0.1.0 has no checks of its own\n       fix: "), "{}", piped.stdout);
    assert!(!piped.stdout.contains('\x1b'));
}

#[test]
fn doctor_fails_a_home_without_room_for_logs_and_updates() {
    let user = User::new();
    let (_, report) = doctor_report(&user, &[]);
    let (status, message) = check(&report, "disk-space");
    assert_eq!(status, "pass", "{message}");
    assert!(
        message.ends_with(&format!(
            " MiB free for logs and updates in {}",
            user.home.path().display()
        )),
        "{message}"
    );

    // A home on a filesystem that is full.
    let full = user.home.path().join("full");
    let Some(_tmpfs) = support::Tmpfs::mount(&full, "1m") else {
        return;
    };
    fs::write(full.join("filler"), vec![0; 1 << 20]).unwrap_or_default();
    let home = full.join(".sygen");
    let (out, report) = doctor_report(&user, &[("SYGEN_HOME", &home)]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let (status, message) = check(&report, "disk-space");
    assert_eq!(status, "fail");
    assert_eq!(
        message,
        format!(
            "only 0 KiB free in {}: logs lose lines and updates fail without room",
            full.display()
        )
    );
}
