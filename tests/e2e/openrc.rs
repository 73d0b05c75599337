//! The OpenRC backend against real OpenRC (openrc-run, supervise-daemon, rc-update) inside a
//! private mount namespace (tests/openrc/harness), through the real `sygen` binary and the real
//! backend library, installed by root to run as `nobody`. User services (OpenRC 0.60+, which
//! Debian does not ship) are checked against a recording stand-in.
//!
//! Needs root and Debian's `openrc`; without them the tests print why and pass, except under
//! CI (`CI=true`), where they fail.

use std::{
    fs,
    os::unix::fs::{chown, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::Duration,
};

use crate::support::{
    self, alive, artifacts, ends_running, eventually, write_script, Namespace, Outcome,
};

/// `nobody`: the user sygen runs as in these tests.
const USER: &str = "nobody";
const USER_ID: u32 = 65534;

struct Harness {
    namespace: Namespace,
    home: tempfile::TempDir,
}

impl Harness {
    /// Real OpenRC in a namespace, and a home for `nobody` with sygen and the backend in it.
    fn up() -> Option<Self> {
        let harness = Harness {
            namespace: Namespace::up("openrc", &[])?,
            home: tempfile::tempdir().expect("home"),
        };
        let home = harness.home.path();
        fs::set_permissions(home, fs::Permissions::from_mode(0o755)).unwrap();
        let apps = harness.apps();
        fs::create_dir_all(&apps).unwrap();
        for file in ["sygen", "libsygen_openrc.so"] {
            support::copy_executable(&artifacts().join(file), &apps.join(file));
        }
        fs::create_dir_all(harness.sygen_home()).unwrap();
        fs::write(
            harness.sygen_home().join("config.toml"),
            "[agent]\nheartbeat_interval = \"200ms\"\n",
        )
        .unwrap();
        chown(harness.sygen_home(), Some(USER_ID), Some(USER_ID)).unwrap();
        Some(harness)
    }

    fn apps(&self) -> PathBuf {
        self.home.path().join("sygen apps 100% $x 'q' ü")
    }

    fn sygen_home(&self) -> PathBuf {
        self.home.path().join(".sygen")
    }

    /// The namespace's /etc/init.d and /etc/runlevels, as the harness keeps them.
    fn init_d(&self) -> PathBuf {
        self.namespace.state.join("etc-init.d")
    }

    fn runlevels(&self) -> PathBuf {
        self.namespace.state.join("etc-runlevels")
    }

    fn runlevel_link(&self) -> PathBuf {
        self.runlevels().join("default/sygen")
    }

    /// Runs a command as root inside the namespace.
    fn exec(&self, vars: &[&str], command: &[&str]) -> Outcome {
        self.namespace.exec(vars, command)
    }

    /// `sudo sygen ARGS` as `nobody` would run it.
    fn sygen(&self, args: &[&str]) -> Outcome {
        let program = self.apps().join("sygen");
        let home = format!("HOME={}", self.home.path().display());
        let mut command = vec![program.to_str().unwrap()];
        command.extend_from_slice(args);
        self.exec(&[&home, "SUDO_USER=nobody"], &command)
    }

    fn rc_status(&self) -> Option<i32> {
        self.exec(&[], &["rc-service", "sygen", "status"]).code
    }

    /// The pid of `sygen run`, as its pid file says, if it is alive.
    fn runtime(&self) -> Option<u32> {
        support::read_pid(&self.sygen_home().join("bot.pid")).filter(|&pid| alive(pid))
    }

    /// This test's processes of `nobody`: their command lines name its home (sygen and its
    /// built-in agent run from there). Other tests run as `nobody` at the same time.
    fn processes_of_user(&self) -> String {
        let out = Command::new("ps")
            .args(["-o", "pid=,args=", "-u", USER])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(self.home.path().to_str().unwrap()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn uid_of(pid: u32) -> u32 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn install_runs_sygen_as_the_user_under_supervise_daemon() {
    let Some(h) = Harness::up() else { return };
    let before = Harness::listing(&h.init_d());
    let stdout = h.sygen(&["service", "install"]).succeeds().to_owned();
    assert!(stdout.contains("wrote /etc/init.d/sygen"), "{stdout}");
    assert!(stdout.contains("started sygen (as nobody)"), "{stdout}");
    assert_eq!(h.rc_status(), Some(0));
    eventually("sygen run", Duration::from_secs(5), || {
        h.runtime().is_some()
    });
    let runtime = h.runtime().unwrap();
    assert_eq!(uid_of(runtime), USER_ID);
    let cmdline = fs::read_to_string(format!("/proc/{runtime}/cmdline")).unwrap();
    assert_eq!(
        cmdline,
        format!("{}\0run\0", h.apps().join("sygen").display())
    );

    let script = fs::read_to_string(h.init_d().join("sygen")).unwrap();
    assert!(script.starts_with("#!/sbin/openrc-run\n"), "{script}");
    for line in [
        "supervisor=supervise-daemon",
        "command_user=nobody",
        "respawn_delay=5",
    ] {
        assert!(script.lines().any(|l| l == line), "{line} in {script}");
    }
    assert!(
        h.runlevel_link().symlink_metadata().is_ok(),
        "added to the default runlevel"
    );
    assert!(
        !Path::new("/etc/init.d/sygen").exists(),
        "nothing on the machine's /etc"
    );

    let status = h.sygen(&["service", "status"]);
    let (status, record) = support::status_and_runtime(status.succeeds());
    assert_eq!(
        status,
        "sygen (OpenRC system service): started\nscript: /etc/init.d/sygen\n\
         supervise-daemon restarts it after any exit (policy: always)\n"
    );
    assert!(
        record.starts_with("runtime: "),
        "the runtime's record: {record}"
    );
    eventually("heartbeats", Duration::from_secs(5), || {
        h.sygen(&["service", "logs", "-n", "20"])
            .stdout
            .contains("heartbeat 2")
    });

    let stdout = h.sygen(&["service", "uninstall"]).succeeds().to_owned();
    assert!(stdout.contains("removed /etc/init.d/sygen"), "{stdout}");
    assert!(!alive(runtime));
    assert_eq!(Harness::listing(&h.init_d()), before);
    assert!(
        h.runlevel_link().symlink_metadata().is_err(),
        "out of the runlevel"
    );
    assert!(
        h.sygen_home().join("logs/agent.log").exists(),
        "logs are kept"
    );
    assert_eq!(h.processes_of_user(), "");
    for command in ["status", "start", "stop", "uninstall"] {
        let line = h
            .sygen(&["service", command])
            .fails_with(3, "not installed")
            .to_owned();
        // `status` asks whether it is installed, the others find it is not.
        let why = if command == "status" {
            "sygen is not installed (openrc backend)"
        } else {
            "openrc backend 0.1.0: sygen is not installed: there is no /etc/init.d/sygen"
        };
        assert_eq!(
            line,
            format!("error: {why} (hint: run `sygen service install`)"),
            "{command}"
        );
    }
}

#[test]
fn an_install_dry_run_changes_nothing_and_prints_the_script_install_writes() {
    let Some(h) = Harness::up() else { return };
    let roots = [h.home.path().to_path_buf(), h.init_d(), h.runlevels()];
    let before: Vec<_> = roots.iter().map(|root| support::tree(root)).collect();
    let out = h.sygen(&["service", "install", "--dry-run"]);
    let stdout = out.succeeds();
    for (root, before) in roots.iter().zip(&before) {
        support::assert_unchanged(root, before);
    }
    assert_eq!(h.runtime(), None);

    let header = "would write /etc/init.d/sygen (utf-8, mode 0755):";
    assert_eq!(
        support::dry_run_lines(stdout),
        [
            &format!("would run: chown nobody: {}", h.sygen_home().display()),
            &format!(
                "would run: chown nobody: {}",
                h.sygen_home().join("logs").display()
            ),
            header,
            "would run: rc-update add sygen default",
            "would run: rc-service sygen start",
            "dry run: nothing was changed",
        ],
        "{stdout}"
    );
    let printed = support::printed_content(stdout, header);
    assert!(printed.starts_with("#!/sbin/openrc-run\n"), "{printed}");

    h.sygen(&["service", "install"]).succeeds();
    assert_eq!(
        fs::read_to_string(h.init_d().join("sygen")).unwrap(),
        printed
    );
}

/// What the OpenRC backend says the system service outlives, under `heading`, when it is in
/// the default runlevel.
fn outlives_in_the_runlevel(heading: &str) -> String {
    format!(
        "{heading}\n\
         \x20 logout: sygen keeps running after {USER} logs out: it is the system service \
         /etc/init.d/sygen, which no login starts or stops\n\
         \x20 reboot: sygen starts at boot: sygen is in the default runlevel\n"
    )
}

#[test]
fn install_and_doctor_say_the_runlevel_decides_the_reboot() {
    let Some(h) = Harness::up() else { return };
    let dry = h.sygen(&["service", "install", "--dry-run"]);
    assert!(
        dry.succeeds().ends_with(&format!(
            "{}dry run: nothing was changed\n",
            outlives_in_the_runlevel("what sygen would outlive:")
        )),
        "{}",
        dry.stdout
    );
    let installed = h.sygen(&["service", "install"]);
    let stdout = installed.succeeds();
    let (before_final, _) = stdout.rsplit_once("sygen service installed").unwrap();
    assert!(
        before_final.ends_with(&outlives_in_the_runlevel("what sygen outlives:")),
        "{stdout}"
    );
    assert!(
        ends_running(
            stdout,
            "sygen service installed (openrc backend, the only one for this platform)"
        ),
        "{stdout}"
    );

    // Out of the default runlevel, sygen does not start at boot: doctor says so with the
    // command, where it used to be a check of its own.
    h.exec(&[], &["rc-update", "del", "sygen", "default"])
        .succeeds();
    let survival = support::survival_in_doctor(&h.sygen(&["doctor", "--json"]));
    assert_eq!(
        survival[1],
        (
            "reboot".to_owned(),
            "no".to_owned(),
            Some("run `sudo rc-update add sygen default`".to_owned())
        )
    );
    assert!(h.sygen(&["doctor"]).stdout.contains(
        "  reboot: sygen does not start at boot: sygen is not in the default runlevel\n\
             \x20   fix: run `sudo rc-update add sygen default`\n"
    ));
    // Install would add it again, and says so before it does.
    let dry = h.sygen(&["service", "install", "--dry-run"]);
    assert!(
        dry.stdout
            .contains(&outlives_in_the_runlevel("what sygen would outlive:")),
        "{}",
        dry.stdout
    );
}

#[test]
fn an_uninstall_dry_run_leaves_sygen_installed_and_running() {
    let Some(h) = Harness::up() else { return };
    h.sygen(&["service", "install"]).succeeds();
    let runtime = h.runtime().expect("install waits for sygen run");
    let script = fs::read(h.init_d().join("sygen")).unwrap();

    let out = h.sygen(&["service", "uninstall", "--dry-run"]);
    let stdout = out.succeeds();
    let lines = support::dry_run_lines(stdout);
    assert_eq!(
        lines[..3],
        [
            "would run: rc-service sygen stop",
            "would run: rc-update del sygen default",
            "would remove /etc/init.d/sygen",
        ],
        "{stdout}"
    );
    assert_eq!(lines.last(), Some(&"dry run: nothing was changed"));

    assert_eq!(fs::read(h.init_d().join("sygen")).unwrap(), script);
    assert!(h.runlevel_link().symlink_metadata().is_ok());
    assert_eq!(h.rc_status(), Some(0));
    assert_eq!(h.runtime(), Some(runtime));
}

#[test]
fn a_killed_sygen_is_respawned_and_a_stopped_one_is_not() {
    let Some(h) = Harness::up() else { return };
    h.sygen(&["service", "install"]).succeeds();
    eventually("sygen run", Duration::from_secs(5), || {
        h.runtime().is_some()
    });
    let first = h.runtime().unwrap();
    Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    eventually(
        "supervise-daemon to respawn sygen",
        Duration::from_secs(15),
        || h.runtime().is_some_and(|pid| pid != first),
    );
    assert_eq!(h.rc_status(), Some(0));

    assert_eq!(
        h.sygen(&["service", "stop"]).succeeds(),
        "sygen service stopped\n"
    );
    assert_eq!(h.rc_status(), Some(3));
    thread::sleep(Duration::from_secs(6));
    assert_eq!(h.runtime(), None, "not respawned after a stop");
    assert_eq!(h.processes_of_user(), "");

    let started = h.sygen(&["service", "start"]);
    assert!(
        ends_running(started.succeeds(), "sygen service started"),
        "{}",
        started.stdout
    );
    assert_eq!(h.rc_status(), Some(0));
    eventually("sygen run again", Duration::from_secs(5), || {
        h.runtime().is_some()
    });
}

#[test]
fn reinstall_restarts_only_when_the_script_changed() {
    let Some(h) = Harness::up() else { return };
    h.sygen(&["service", "install"]).succeeds();
    eventually("sygen run", Duration::from_secs(5), || {
        h.runtime().is_some()
    });
    let first = h.runtime().unwrap();
    let out = h.sygen(&["service", "install"]);
    assert!(out
        .succeeds()
        .contains("unchanged and running; left as it is"));
    assert_eq!(h.runtime(), Some(first));

    let program = h.apps().join("sygen");
    let home = format!("HOME={}", h.home.path().display());
    let elsewhere = h.home.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    chown(&elsewhere, Some(USER_ID), Some(USER_ID)).unwrap();
    let sygen_home = format!("SYGEN_HOME={}", elsewhere.display());
    let out = h.exec(
        &[&home, &sygen_home, "SUDO_USER=nobody"],
        &[program.to_str().unwrap(), "service", "install"],
    );
    assert!(
        out.succeeds()
            .contains("restarted sygen: its script changed"),
        "{}",
        out.stdout
    );
    assert!(!alive(first));
    eventually(
        "sygen run from the new home",
        Duration::from_secs(5),
        || fs::read_to_string(elsewhere.join("bot.pid")).is_ok(),
    );
}

#[test]
fn without_root_it_says_root_is_needed() {
    let Some(h) = Harness::up() else { return };
    let program = h.apps().join("sygen");
    let home = format!("HOME={}", h.home.path().display());
    let uid = USER_ID.to_string();
    let out = h.exec(
        &[&home],
        &[
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            program.to_str().unwrap(),
            "service",
            "install",
        ],
    );
    let line = out.fails_with(1, "only root can install it");
    assert!(
        line.contains("(hint: run `sudo sygen service install`)"),
        "{line}"
    );
    assert!(!h.init_d().join("sygen").exists());
}

/// OpenRC 0.60+ user services, against stand-ins for openrc, rc-service and rc-update that
/// record their calls: what the backend writes and runs there.
#[test]
fn from_openrc_0_60_on_sygen_is_a_user_service() {
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let calls = home.path().join("calls");
    let state = home.path().join("started");
    write_script(&bin.join("openrc"), "echo 'openrc (OpenRC) 0.62.1'");
    write_script(
        &bin.join("rc-update"),
        &format!("echo \"rc-update $*\" >> '{}'", calls.display()),
    );
    write_script(
        &bin.join("rc-service"),
        &format!(
            "echo \"rc-service $*\" >> '{calls}'\n\
             case \"$3\" in start) touch '{state}';; stop) rm -f '{state}';; \
             status) [ -f '{state}' ] && exit 0; exit 3;; esac",
            calls = calls.display(),
            state = state.display()
        ),
    );
    let run = |args: &[&str]| {
        let mut command = Command::new(artifacts().join("sygen"));
        command
            .arg("--backend")
            .arg(support::library("sygen_openrc"))
            .args(args);
        support::in_home(&mut command, home.path())
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SUDO_USER");
        Outcome::from(command.output().unwrap())
    };
    // The stand-ins run nothing, so there is no sygen runtime to wait for.
    let stdout = run(&["service", "install", "--no-wait"])
        .succeeds()
        .to_owned();
    // What a user service outlives depends on the machine's runlevels: only that it is said.
    assert!(
        stdout.contains("what sygen outlives:\n  logout: sygen ")
            && stdout.contains("\n  reboot: sygen "),
        "{stdout}"
    );
    let script_path = home.path().join(".config/rc/init.d/sygen");
    assert!(
        stdout.contains(&format!("wrote {}", script_path.display())),
        "{stdout}"
    );
    let script = fs::read_to_string(&script_path).unwrap();
    assert!(!script.contains("command_user"), "{script}");
    assert_eq!(
        fs::read_to_string(&calls).unwrap(),
        "rc-update --user add sygen default\nrc-service --user sygen status\n\
         rc-service --user sygen start\nrc-service --user sygen status\n"
    );
    let status = run(&["service", "status"]);
    assert!(status
        .succeeds()
        .starts_with("sygen (OpenRC user service): started"));
    assert_eq!(
        run(&["service", "uninstall"]).succeeds(),
        format!(
            "removed {}; the logs in {} are kept\nsygen service uninstalled\n",
            script_path.display(),
            home.path().join(".sygen/logs").display()
        )
    );
    assert!(!script_path.exists());
}

#[test]
fn the_openrc_backend_passes_conformance() {
    let Some(h) = Harness::up() else { return };
    let library = h.apps().join("libsygen_openrc.so");
    let out = h.sygen(&[
        "--backend",
        library.to_str().unwrap(),
        "service",
        "conformance",
    ]);
    support::passed_conformance("openrc", &out);
}
