//! The `sygen` binary and the backend libraries, end to end: what a user types, what they see,
//! and the exit code. Every run gets its own HOME and SYGEN_HOME in a temporary directory.
//!
//! Needs `cargo build --workspace` first (the binary and the backend cdylibs are build
//! artifacts of other packages; the README's test command does both).

#![cfg(unix)]

mod support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use support::{artifacts, library, Outcome, User};

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
        assert_eq!(backend["api_version"], "1.1.0");
        assert_eq!(backend["selected"], backend["name"] == "systemd");
    }
}

#[test]
fn a_backend_answers_what_it_does_not_implement_with_a_clear_error() {
    let backend = library("minimal_backend");
    let user = User::new();
    for (command, operation) in [
        ("install", "install_service"),
        ("start", "start_service"),
        ("stop", "stop_service"),
        ("uninstall", "uninstall_service"),
        ("status", "is_service_installed"),
        ("logs", "print_service_logs"),
    ] {
        let out = user.run(&["--backend", backend.to_str().unwrap(), "service", command]);
        let line = out.fails_with(
            1,
            &format!(
                "minimal backend 0.1.0: {operation} is not implemented in this backend version"
            ),
        );
        assert!(line.contains("(hint: update the backend"), "{line}");
    }
}

#[test]
fn service_alone_prints_its_help() {
    let out = User::new().run(&["service"]);
    assert_eq!(out.code, Some(2));
    for command in [
        "install",
        "start",
        "stop",
        "uninstall",
        "status",
        "logs",
        "backends",
    ] {
        assert!(
            out.stderr.contains(command),
            "{command} missing from {}",
            out.stderr
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(User::new().run(&["service", "frobnicate"]).code, Some(2));
    assert_eq!(
        User::new().run(&["service", "logs", "-n", "many"]).code,
        Some(2)
    );
}

fn bad_backend(user: &User, path: &Path, needle: &str) -> String {
    let out = user.run(&["--backend", path.to_str().unwrap(), "service", "status"]);
    let line = out.fails_with(4, needle).to_owned();
    assert!(line.contains("(hint: "), "{line}");
    assert!(out.stdout.is_empty());
    line
}

#[test]
fn a_missing_backend_file_is_one_line() {
    let user = User::new();
    bad_backend(&user, &user.home.path().join("nope.so"), "no such file");
}

#[test]
fn a_directory_is_not_a_backend() {
    let user = User::new();
    bad_backend(&user, user.home.path(), "is a directory");
}

#[test]
fn an_empty_file_is_not_a_backend() {
    let user = User::new();
    let path = user.home.path().join("empty.so");
    fs::write(&path, b"").unwrap();
    bad_backend(&user, &path, "empty file");
}

#[test]
fn random_bytes_are_not_a_backend() {
    let user = User::new();
    let path = user.home.path().join("random.so");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&path, bytes).unwrap();
    bad_backend(&user, &path, "not a loadable library");
}

#[test]
fn a_shared_library_that_is_not_a_backend_is_refused() {
    let libz = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/aarch64-linux-gnu/libz.so.1",
        "/usr/lib64/libz.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("zlib is installed (Debian: zlib1g)");
    bad_backend(&User::new(), &libz, "not a sygen backend");
}

#[test]
fn a_backend_for_another_interface_version_is_refused() {
    let line = bad_backend(
        &User::new(),
        &library("interface_2"),
        "built against backend interface 2.0.0; this sygen loads 1.x",
    );
    assert!(!line.contains("abi_stable"), "{line}");
}

#[test]
fn a_backend_with_another_layout_is_refused_without_a_layout_dump() {
    bad_backend(
        &User::new(),
        &library("foreign_root"),
        "incompatible backend interface (layout mismatch)",
    );
}

#[test]
fn a_panicking_backend_is_an_error_not_an_abort() {
    let out = User::new().misbehaving("panic", &["service", "install"]);
    let line = out.fails_with(1, "backend panicked: install_service was told to panic");
    assert!(line.contains("report it to its publisher"), "{line}");
}

#[test]
fn a_backend_error_carries_its_hint() {
    let out = User::new().misbehaving("error", &["service", "stop"]);
    let line = out.fails_with(
        1,
        "misbehaving backend 0.1.0: stop_service failed on purpose",
    );
    assert!(line.ends_with("(hint: unset MISBEHAVE)"), "{line}");
}

#[test]
fn not_installed_has_its_own_exit_code() {
    let user = User::new();
    for command in ["start", "stop", "uninstall"] {
        let out = user.misbehaving("not-installed", &["service", command]);
        let line = out.fails_with(3, "no sygen service here");
        assert!(line.contains("run `sygen service install`"), "{line}");
    }
}

#[test]
fn backend_output_goes_through_the_console_sink() {
    let out = User::new().misbehaving("ok", &["service", "install", "--no-wait"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "install_service: ok for sygen\nsygen service installed (misbehaving backend, named with --backend)\n"
    );
    assert_eq!(out.stderr, "install_service: a note on stderr\n");
}

#[test]
fn backend_tracing_events_reach_the_host_subscriber() {
    let user = User::new();
    let quiet = user.misbehaving("ok", &["service", "start", "--no-wait"]);
    assert!(!quiet.stderr.contains("misbehaving backend at work"));

    let verbose = user.misbehaving("ok", &["-v", "service", "start", "--no-wait"]);
    assert!(
        verbose.stderr.contains("misbehaving backend at work")
            && verbose.stderr.contains("operation=\"start_service\"")
            && verbose.stderr.contains("backend=misbehaving"),
        "{}",
        verbose.stderr
    );
    assert!(!verbose.stderr.contains("a trace-level detail"));

    let very = user.misbehaving("ok", &["-vv", "service", "start", "--no-wait"]);
    assert!(
        very.stderr.contains("a trace-level detail"),
        "{}",
        very.stderr
    );

    let backend = library("misbehaving_backend");
    let mut command = user.command(&[
        "--backend",
        backend.to_str().unwrap(),
        "service",
        "start",
        "--no-wait",
    ]);
    command
        .env("MISBEHAVE", "ok")
        .env("RUST_LOG", "sygen::backend=trace");
    let by_env = User::run_command(command);
    assert!(
        by_env.stderr.contains("a trace-level detail"),
        "{}",
        by_env.stderr
    );
}

#[test]
fn status_json_reports_installed_and_running() {
    let out = User::new().misbehaving("ok", &["service", "status", "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Only the JSON: what the backend prints is not mixed in.
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["backend"], "misbehaving");
    assert_eq!(report["backend_version"], "0.1.0");
    assert_eq!(report["installed"], true);
    assert_eq!(report["running"], true);
    assert!(report["backend_path"]
        .as_str()
        .unwrap()
        .ends_with("libmisbehaving_backend.so"));
}

#[test]
fn logs_passes_follow_and_line_count() {
    let user = User::new();
    let out = user.misbehaving("ok", &["service", "logs", "-f", "-n", "7"]);
    assert!(out.stdout.contains("follow=true lines=7"), "{}", out.stdout);
    let out = user.misbehaving("ok", &["service", "logs"]);
    assert!(
        out.stdout.contains("follow=false lines=50"),
        "{}",
        out.stdout
    );
}

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
fn sygen_backend_names_the_backend_and_the_flag_beats_it() {
    let user = User::new();
    let misbehaving = library("misbehaving_backend");
    let mut command = user.command(&["service", "install", "--no-wait"]);
    command
        .env("SYGEN_BACKEND", &misbehaving)
        .env("MISBEHAVE", "ok");
    let out = User::run_command(command);
    assert!(
        out.stdout
            .contains("installed (misbehaving backend, named by SYGEN_BACKEND)"),
        "{}",
        out.stdout
    );

    let systemd = library("sygen_systemd");
    let mut command = user.command(&["--backend", systemd.to_str().unwrap(), "service", "install"]);
    command.env("SYGEN_BACKEND", &misbehaving);
    User::run_command(command).fails_with(1, "systemd backend 0.1.0");

    let mut command = user.command(&["service", "install"]);
    command.env("SYGEN_BACKEND", user.home.path().join("gone.so"));
    User::run_command(command).fails_with(4, "gone.so: no such file");
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
    assert!(text.stdout.contains("not loaded: "), "{}", text.stdout);
}

#[test]
fn no_usable_backend_has_its_own_exit_code() {
    let user = User::new();
    let lonely = user.home.path().join("bin");
    fs::create_dir_all(&lonely).unwrap();
    let program = lonely.join("sygen");
    support::copy_executable(&artifacts().join("sygen"), &program);
    let mut command = Command::new(&program);
    command.args(["service", "status"]);
    support::in_home(&mut command, user.home.path());
    User::run_command(command).fails_with(4, "no usable sygen backend for linux was found");
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
fn onboarding_without_a_terminal_neither_hangs_nor_installs() {
    let user = User::new();
    let out = user.misbehaving("fresh", &["onboarding"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let config = user.sygen_home().join("config.toml");
    assert!(out.stdout.contains(&format!(
        "wrote a starting configuration to {}",
        config.display()
    )));
    assert!(
        out.stdout.contains("no terminal to ask on: not installing"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("install_service"), "{}", out.stdout);
    assert!(config.is_file());
}

#[test]
fn onboarding_yes_installs_and_no_does_not() {
    let user = User::new();
    let out = user.misbehaving("fresh", &["onboarding", "--no"]);
    assert!(
        out.stdout.contains("not installing the background service"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("install_service"), "{}", out.stdout);
    let out = user.misbehaving("fresh", &["onboarding", "--yes", "--no-wait"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("install_service: ok for sygen"),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains("sygen service installed (misbehaving backend, named with --backend)"));
    assert!(
        !out.stdout.contains("wrote a starting configuration"),
        "written once"
    );
    let out = user.misbehaving("ok", &["onboarding"]);
    assert!(out.stdout.contains("already installed"), "{}", out.stdout);
    assert_eq!(
        user.misbehaving("ok", &["onboarding", "--yes", "--no"])
            .code,
        Some(2)
    );
}

#[test]
fn onboarding_skips_the_offer_when_the_service_manager_is_unavailable() {
    let out = User::new().misbehaving("error", &["onboarding", "--yes"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "not offering a background service: misbehaving backend 0.1.0: \
             is_service_available failed on purpose"
        ),
        "{}",
        out.stdout
    );
    let launchd = library("sygen_launchd");
    let out = User::new().run(&[
        "--backend",
        launchd.to_str().unwrap(),
        "onboarding",
        "--yes",
    ]);
    assert!(
        out.stdout.contains("not offering a background service"),
        "{}",
        out.stdout
    );
}

#[test]
fn bare_sygen_onboards_on_a_first_run_and_shows_help_after() {
    let user = User::new();
    let first = user.misbehaving("fresh", &[]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert!(
        first.stdout.contains("wrote a starting configuration"),
        "{}",
        first.stdout
    );
    let later = user.misbehaving("fresh", &[]);
    assert_eq!(later.code, Some(2));
    assert!(later.stdout.contains("Usage: sygen"), "{}", later.stdout);
}

#[test]
fn onboarding_asks_on_a_terminal() {
    let user = User::new();
    let backend = library("misbehaving_backend");
    // `script` gives the command a terminal; the answer arrives on it. The test backend runs
    // nothing, so there is nothing to wait for.
    let line = format!(
        "'{}' --backend '{}' onboarding --no-wait",
        artifacts().join("sygen").display(),
        backend.display()
    );
    let mut script = Command::new("script");
    user.environment(&mut script);
    script
        .args(["-qec", &line, "/dev/null"])
        .env("MISBEHAVE", "fresh")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = script.spawn().expect("script (util-linux) runs");
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "Install sygen as a background service (misbehaving: Misbehaves on demand)? [Y/n]"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("install_service: ok for sygen"), "{stdout}");
}

#[test]
fn conformance_fails_a_backend_that_implements_nothing() {
    let backend = library("minimal_backend");
    let out = User::new().run(&[
        "--backend",
        backend.to_str().unwrap(),
        "service",
        "conformance",
    ]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stdout.contains("  info() is sane"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("FAIL  is_service_available is not implemented"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("skip  not run: an earlier check failed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with("2 of 12 checks passed\n"),
        "{}",
        out.stdout
    );
    out.fails_with(1, "the minimal backend failed 10 of 12 conformance checks");
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

/// A copy of a real backend at `path`, with `mode`.
fn backend_copy(path: &Path, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::copy(library("misbehaving_backend"), path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    path.to_path_buf()
}

#[test]
fn a_backend_others_could_have_changed_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let user = User::new();
    let writable = backend_copy(&user.home.path().join("libs/libsygen_w.so"), 0o666);
    let line = bad_backend(&user, &writable, "writable by group or others (mode 0666)");
    assert!(
        line.contains(&format!("chmod go-w {}", writable.display())),
        "{line}"
    );

    let open_dir = user.home.path().join("open");
    let inside = backend_copy(&open_dir.join("libsygen_x.so"), 0o644);
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let line = bad_backend(&user, &inside, "its directory");
    assert!(
        line.contains("writable by group or others (mode 0777)"),
        "{line}"
    );
}

#[test]
fn a_backend_owned_by_another_user_is_refused() {
    let user = User::new();
    let theirs = backend_copy(&user.home.path().join("libs/libsygen_theirs.so"), 0o644);
    if std::os::unix::fs::chown(&theirs, Some(65534), None).is_err() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipped: only root can give a file to another user");
        return;
    }
    let line = bad_backend(&user, &theirs, "belongs to user 65534, not to you or root");
    assert!(line.contains("copy it somewhere of yours"), "{line}");

    // In the search path, it is listed as not loaded, with the reason.
    let dir = user.sygen_home().join("backends");
    fs::create_dir_all(&dir).unwrap();
    fs::rename(&theirs, dir.join("libsygen_theirs.so")).unwrap();
    let out = user.run(&["service", "backends"]);
    assert!(
        out.stdout.contains("belongs to user 65534"),
        "{}",
        out.stdout
    );
}

#[test]
fn completions_generate_for_every_shell() {
    let user = User::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = user.run(&["completions", shell]);
        let script = out.succeeds();
        for word in ["service", "install", "conformance", "rollback", "backend"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
    }
    // The bash script is valid bash.
    let script = user.run(&["completions", "bash"]).stdout;
    let file = user.home.path().join("sygen.bash");
    fs::write(&file, script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(check.success());
    assert_eq!(user.run(&["completions", "tcsh"]).code, Some(2));
}

#[test]
fn the_manual_page_generates() {
    let out = User::new().run(&["man"]);
    let page = out.succeeds();
    assert!(page.contains(".TH sygen 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "{section} missing");
    }
    assert!(page.contains("service"), "the subcommands are listed");
}

/// Runs `sygen ARGS` on a terminal (`script` gives it one); answers what the terminal showed.
fn on_a_terminal(user: &User, args: &str, no_color: bool) -> String {
    let line = format!("'{}' {args}", artifacts().join("sygen").display());
    let mut script = Command::new("script");
    user.environment(&mut script);
    script.args(["-qec", &line, "/dev/null"]);
    if no_color {
        script.env("NO_COLOR", "1");
    } else {
        script.env_remove("NO_COLOR");
    }
    let output = script.output().expect("script (util-linux) runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let user = User::new();
    let bad = "--backend /nonexistent.so service status";
    let coloured = on_a_terminal(&user, bad, false);
    assert!(
        coloured.contains("\x1b[1;31merror:\x1b[0m backend /nonexistent.so"),
        "{coloured:?}"
    );
    let plain = on_a_terminal(&user, bad, true);
    assert!(
        plain.contains("error: backend /nonexistent.so") && !plain.contains('\x1b'),
        "{plain:?}"
    );
    let never = on_a_terminal(&user, &format!("--color never {bad}"), false);
    assert!(!never.contains('\x1b'), "{never:?}");

    // Piped, nothing is coloured unless asked for.
    let piped = user.run(&["--backend", "/nonexistent.so", "service", "status"]);
    assert!(!piped.stderr.contains('\x1b'), "{:?}", piped.stderr);
    let asked = user.run(&[
        "--color",
        "always",
        "--backend",
        "/nonexistent.so",
        "service",
        "status",
    ]);
    assert!(
        asked.stderr.starts_with("\x1b[1;31merror:"),
        "{:?}",
        asked.stderr
    );
    assert_eq!(
        user.run(&["--color", "sometimes", "service", "backends"])
            .code,
        Some(2)
    );
}

/// The keys of a JSON object, sorted.
fn sorted_keys(object: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// `sygen doctor --json` with the misbehaving backend (installed and running, by its word).
fn doctor_report(user: &User, extra: &[(&str, &Path)]) -> (Outcome, serde_json::Value) {
    let backend = library("misbehaving_backend");
    let mut command = user.command(&["--backend", backend.to_str().unwrap(), "doctor", "--json"]);
    command.env("MISBEHAVE", "ok");
    for (key, value) in extra {
        command.env(key, value);
    }
    let out = User::run_command(command);
    let report = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}{}", out.stdout, out.stderr));
    (out, report)
}

/// The status and message of the check `id` (the first, when there are several).
fn check<'a>(report: &'a serde_json::Value, id: &str) -> (&'a str, &'a str) {
    let found = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {report:#}"));
    (
        found["status"].as_str().unwrap(),
        found["message"].as_str().unwrap(),
    )
}

#[test]
fn doctor_json_has_the_documented_shape() {
    let user = User::new();
    let (out, report) = doctor_report(&user, &[]);
    let keys = sorted_keys(&report);
    assert_eq!(keys, ["checks", "failed", "passed", "warnings"]);
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
    assert!(message.contains("no runtime holds"), "{message}");
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
    assert_eq!(
        check(&report, "worker-path"),
        (
            "pass",
            format!(
                "the worker `mytool` is {} with the service's PATH",
                tools.join("mytool").display()
            )
            .as_str()
        )
    );
}

#[test]
fn doctor_reports_backend_files_config_logs_and_pid_files() {
    let user = User::new();
    let home = user.sygen_home();
    let backends = home.join("backends");
    fs::create_dir_all(&backends).unwrap();
    fs::write(backends.join("libsygen_junk.so"), b"not a library").unwrap();
    let open = backend_copy(&backends.join("libsygen_minimal.so"), 0o666);
    fs::write(home.join("config.toml"), "[agent]\nheartbeat = \"1s\"\n").unwrap();
    fs::write(home.join("logs"), "a file where the logs directory goes").unwrap();
    fs::write(home.join("bot.pid"), "999999999\n").unwrap();

    let (out, report) = doctor_report(&user, &[]);
    assert_eq!(out.code, Some(1));
    let mode = format!(
        "{}: refusing to load it: it ({}) is writable by group or others (mode 0666)",
        open.display(),
        open.display()
    );
    for (id, expected, needle) in [
        (
            "backend-file",
            "warn",
            "libsygen_junk.so does not load: not a loadable library",
        ),
        ("backend-permissions", "fail", mode.as_str()),
        (
            "config",
            "fail",
            "config.toml line 2: key `agent.heartbeat`",
        ),
        (
            "logs-dir",
            "fail",
            "is not a directory, so the logs cannot go there",
        ),
        (
            "pid-files",
            "warn",
            "is left from a runtime that is gone: no runtime holds it",
        ),
    ] {
        let (status, message) = check(&report, id);
        assert_eq!(status, expected, "{id}: {message}");
        assert!(
            message.contains(needle),
            "{id}: {needle:?} not in {message:?}"
        );
    }
    assert_eq!(report["failed"], 3, "{report:#}");
}

#[test]
fn doctor_marks_checks_in_colour_only_on_a_terminal() {
    let user = User::new();
    let backend = library("misbehaving_backend");
    let args = format!("--backend {} doctor", backend.display());
    let coloured = on_a_terminal(&user, &args, false);
    assert!(
        coloured.contains("\x1b[1;32m[pass]\x1b[0m backend: misbehaving"),
        "{coloured:?}"
    );
    let plain = on_a_terminal(&user, &args, true);
    assert!(
        plain.contains("[pass] backend: misbehaving") && !plain.contains('\x1b'),
        "{plain:?}"
    );
    let piped = user.run(&["--backend", backend.to_str().unwrap(), "doctor"]);
    assert!(piped.stdout.contains("[warn] backend-checks: the misbehaving backend 0.1.0 has no checks of its own\n       fix: "), "{}", piped.stdout);
    assert!(!piped.stdout.contains('\x1b'));
}

#[test]
fn a_wait_that_times_out_shows_the_logs_then_one_error() {
    let user = User::new();
    // The test backend reports a running service but runs nothing: no runtime ever comes.
    let out = user.misbehaving("ok", &["service", "start", "--timeout", "1s"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let bot_pid = user.sygen_home().join("bot.pid");
    assert_eq!(
        out.stderr,
        format!(
            "start_service: a note on stderr\n\
             waiting for the sygen runtime to start…\n\
             last log lines (misbehaving backend):\n  \
             print_service_logs: ok for sygen\n  \
             print_service_logs: a note on stderr\n  \
             follow=false lines=20\n\
             error: sygen did not start within 1s: the service manager reports it running, \
             but no sygen runtime holds {} (hint: the log lines above show why; \
             `sygen doctor` checks the set-up)\n",
            bot_pid.display()
        )
    );

    let out = user.misbehaving("ok", &["service", "stop", "--timeout", "1s"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.ends_with(
            "error: sygen did not stop within 1s: the service manager still reports it running \
             (hint: the log lines above show why; `sygen stop` also ends its processes)\n"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(
        user.misbehaving("ok", &["service", "start", "--no-wait", "--timeout", "5s"])
            .code,
        Some(2),
        "--no-wait and --timeout exclude each other"
    );
}

#[test]
fn a_broken_config_does_not_stop_the_service_from_being_stopped_or_removed() {
    let user = User::new();
    fs::create_dir_all(user.sygen_home()).unwrap();
    let config = user.sygen_home().join("config.toml");
    fs::write(&config, "[agent]\nstop_timeout = \"2h\"\n").unwrap();
    for (command, done) in [
        (&["stop", "--no-wait"][..], "sygen service stopped\n"),
        (&["uninstall"], "sygen service uninstalled\n"),
    ] {
        let out = user.misbehaving("ok", &[&["service"], command].concat());
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert!(out.stdout.ends_with(done), "{}", out.stdout);
        assert!(
            out.stderr.starts_with(&format!(
                "warning: {} line 2: key `agent.stop_timeout`: `2h` is out of range: allowed from 0s to 1h",
            config.display()
            )) && out.stderr.contains(&format!("({} does not need it;", command[0])),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_flood_of_backend_output_is_kept_as_its_last_lines_only() {
    let user = User::new();
    let backend = library("misbehaving_backend");
    // GNU time reports the peak memory of the sygen it runs.
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "peak %M KiB"])
        .arg(artifacts().join("sygen"));
    command.args(["--backend", backend.to_str().unwrap()]);
    command.args(["service", "install", "--timeout", "1s"]);
    user.environment(&mut command);
    command.env("MISBEHAVE", "flood");
    let out = User::run_command(command);
    assert_eq!(out.code, Some(1), "{:.2000}", out.stderr);
    let shown: Vec<&str> = out
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("last log lines"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    let expected: Vec<String> = (10..30).map(|i| format!("  line {i}")).collect();
    assert_eq!(shown, expected, "{:.2000}", out.stderr);
    assert!(
        out.stderr.len() < 64 * 1024,
        "{} bytes on stderr",
        out.stderr.len()
    );
    let peak: u64 = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak ")?.strip_suffix(" KiB")?.parse().ok())
        .expect("the peak memory");
    // 200 MiB went through the console; what is kept is a few MiB at most.
    assert!(peak < 64 * 1024, "peak {peak} KiB");
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
    assert!(status.stderr.contains("openrc"), "{}", status.stderr);

    // What cannot be chosen is one line, and changes nothing.
    user.run(&["service", "backend", "use", "launchd"])
        .fails_with(4, "no launchd backend for linux was found");
    let out = user.run(&["service", "backend", "use", "Not/A/Name"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("is not a backend name"),
        "{}",
        out.stderr
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
    assert!(
        out.stdout.contains("is not a backend name"),
        "{}",
        out.stdout
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
    assert!(
        out.stdout.contains("line 2: key `backends.misbehaving`:"),
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
