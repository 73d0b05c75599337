//! The service description the host builds and hands a backend: the program, its home and logs,
//! the environment, and the backend's own settings from config.toml, intact whatever the paths.

use std::{fs, process::Command};

use crate::support::{self, artifacts, library, Outcome, User};

/// The service description as the misbehaving backend prints it: `key=value` lines.
fn described(out: &Outcome) -> Vec<String> {
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout
        .lines()
        .filter(|l| l.contains('='))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_host_builds_the_service_description() {
    let user = User::new();
    fs::create_dir_all(user.home.path().join(".local/bin")).unwrap();
    let lines = described(&user.misbehaving("ok", &["service", "status"]));
    let home = user.home.path().to_str().unwrap();
    let exe = fs::canonicalize(artifacts().join("sygen")).unwrap();
    let exe_dir = exe.parent().unwrap().to_str().unwrap();
    assert_eq!(
        lines,
        [
            format!("program={}", exe.display()),
            "args=[\"run\"]".to_owned(),
            format!("home={home}/.sygen"),
            format!("logs_dir={home}/.sygen/logs"),
            format!(
                "env PATH={home}/.local/bin:{exe_dir}:/usr/local/sbin:/usr/local/bin:\
                 /usr/sbin:/usr/bin:/sbin:/bin"
            ),
            format!("env HOME={home}"),
            format!("env SYGEN_HOME={home}/.sygen"),
            "env SYGEN_SUPERVISOR=1".to_owned(),
            "settings={}".to_owned(),
        ]
    );
}

#[test]
fn awkward_paths_survive_intact() {
    let user = User::new();
    let awkward = user.home.path().join("my dir 'q' \"dq\" 100% $HOME ü");
    fs::create_dir_all(&awkward).unwrap();
    let program = awkward.join("sygen");
    support::copy_executable(&artifacts().join("sygen"), &program);
    let backend = awkward.join("misbehaving backend %$ü.so");
    fs::copy(library("misbehaving_backend"), &backend).unwrap();
    let sygen_home = awkward.join("state $X %h");

    let mut command = Command::new(&program);
    command.args(["--backend", backend.to_str().unwrap(), "service", "status"]);
    support::in_home(&mut command, user.home.path())
        .env("SYGEN_HOME", &sygen_home)
        .env("MISBEHAVE", "ok");
    let lines = described(&User::run_command(command));
    let program = fs::canonicalize(&program).unwrap();
    assert!(
        lines.contains(&format!("program={}", program.display())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("home={}", sygen_home.display())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("logs_dir={}/logs", sygen_home.display())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("env SYGEN_HOME={}", sygen_home.display())),
        "{lines:?}"
    );
}

#[test]
fn home_flag_overrides_sygen_home() {
    let user = User::new();
    let elsewhere = user.home.path().join("elsewhere home");
    let backend = library("misbehaving_backend");
    let mut command = user.command(&[
        "--backend",
        backend.to_str().unwrap(),
        "--home",
        elsewhere.to_str().unwrap(),
        "service",
        "status",
    ]);
    command
        .env("SYGEN_HOME", user.home.path().join("ignored"))
        .env("MISBEHAVE", "ok");
    let lines = described(&User::run_command(command));
    assert!(
        lines.contains(&format!("home={}", elsewhere.display())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("env SYGEN_HOME={}", elsewhere.display())),
        "{lines:?}"
    );
}

#[test]
fn a_backends_settings_in_config_reach_that_backend_only() {
    let user = User::new();
    fs::create_dir_all(user.sygen_home()).unwrap();
    let config = user.sygen_home().join("config.toml");
    fs::write(
        &config,
        "[backends.misbehaving]\nsocket = \"/run/supervisor.sock\"\nretries = 3\n\n\
         [backends.systemd]\nsecret = \"not for misbehaving\"\n",
    )
    .unwrap();
    let out = user.misbehaving("ok", &["service", "status"]);
    assert!(
        out.stdout
            .contains("settings={\"retries\":3,\"socket\":\"/run/supervisor.sock\"}\n"),
        "{}",
        out.stdout
    );
    fs::write(&config, "").unwrap();
    let out = user.misbehaving("ok", &["service", "status"]);
    assert!(out.stdout.contains("settings={}\n"), "{}", out.stdout);

    // A settings table that is not one, or a name that is not a name, is a config error that
    // says where.
    fs::write(&config, "[backends]\nmisbehaving = 3\n").unwrap();
    let out = user.run(&["doctor"]);
    let not_a_table = format!(
        "[FAIL] config: {} line 2: key `backends.misbehaving`: invalid type: integer `3`, \
         expected a map",
        config.display()
    );
    assert!(
        out.stdout.lines().any(|l| l == not_a_table),
        "{}",
        out.stdout
    );
}
