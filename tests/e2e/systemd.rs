//! The systemd backend and the runtime against a real `systemd --user` manager and journald,
//! brought up per test by `tests/systemd/harness` (a private mount namespace, a test user and
//! its delegated cgroup). Everything runs through the real `sygen` binary and backend library,
//! installed from a directory whose name has spaces, `%`, `$` and non-ASCII.
//!
//! Needs root; without it the tests print why and pass, except under CI (`CI=true`), where
//! they fail: CI must run them.

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::{chown, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::Duration,
};

use crate::support::{self, artifacts, eventually, three_heartbeats, Namespace, Outcome};

const APPS_DIR: &str = "sygen apps 100%i $x ü";

/// One real user manager for one test; torn down when dropped, even when the test fails.
struct Harness {
    namespace: Namespace,
    user: String,
    uid: u32,
    home: PathBuf,
}

impl Harness {
    /// Brings the harness up, with sygen and the systemd backend copied into the test user's
    /// home. `None` (after saying why) where it cannot run and this is not CI.
    fn up() -> Option<Self> {
        Self::up_with(&[])
    }

    /// [`Harness::up`] with the harness's options (`--no-user-journal`).
    fn up_with(options: &[&str]) -> Option<Self> {
        let namespace = Namespace::up("systemd", options)?;
        let env = fs::read_to_string(namespace.state.join("env")).expect("harness env");
        let var = |name: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} missing from the harness env"))
                .to_owned()
        };
        let harness = Harness {
            user: var("HARNESS_USER"),
            uid: var("HARNESS_UID").parse().expect("uid"),
            home: PathBuf::from(var("HARNESS_HOME")),
            namespace,
        };
        let apps = harness.home.join(APPS_DIR);
        fs::create_dir_all(&apps).unwrap();
        for file in ["sygen", "libsygen_systemd.so"] {
            support::copy_executable(&artifacts().join(file), &apps.join(file));
        }
        fs::create_dir_all(harness.home.join(".config")).unwrap();
        harness.give_to_user(&harness.home);
        Some(harness)
    }

    fn give_to_user(&self, path: &Path) {
        chown(path, Some(self.uid), Some(self.uid)).unwrap();
        if path.is_dir() {
            for entry in fs::read_dir(path).unwrap() {
                self.give_to_user(&entry.unwrap().path());
            }
        }
    }

    fn program(&self) -> PathBuf {
        self.home.join(APPS_DIR).join("sygen")
    }

    fn sygen_home(&self) -> PathBuf {
        self.home.join(".sygen")
    }

    fn unit_path(&self) -> PathBuf {
        self.home.join(".config/systemd/user/sygen.service")
    }

    /// Runs a command as the test user inside the namespace, with extra `VAR=value`s.
    fn exec(&self, vars: &[&str], command: &[&str]) -> Outcome {
        self.namespace.exec(vars, command)
    }

    fn root(&self, command: &[&str]) {
        let status = self
            .namespace
            .command("root", &[], command)
            .status()
            .expect("harness root runs");
        assert!(status.success(), "{command:?} failed");
    }

    fn sygen(&self, args: &[&str]) -> Outcome {
        let program = self.program();
        let mut command = vec![program.to_str().unwrap()];
        command.extend_from_slice(args);
        self.exec(&[], &command)
    }

    fn sygen_ok(&self, args: &[&str]) -> String {
        self.sygen(args).succeeds().to_owned()
    }

    /// One property of sygen.service, as `systemctl --user show` reports it.
    fn property(&self, name: &str) -> String {
        let out = self.exec(
            &[],
            &[
                "systemctl",
                "--user",
                "show",
                "sygen.service",
                "-p",
                name,
                "--value",
            ],
        );
        out.stdout.trim().to_owned()
    }

    fn worker_pid(&self) -> Option<String> {
        let record = fs::read_to_string(self.sygen_home().join("worker.pid")).ok()?;
        Some(record.lines().next()?.trim().to_owned())
    }

    /// Writes `config.toml` (and anything else) into the sygen home as the test user's.
    fn write_home_file(&self, name: &str, contents: &str, mode: u32) {
        let path = self.sygen_home().join(name);
        fs::create_dir_all(self.sygen_home()).unwrap();
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        self.give_to_user(&self.sygen_home());
    }

    /// A worker that says hello and exits with the code written to `exit-code`.
    fn use_test_worker(&self) {
        let script = "#!/bin/sh\n\
            echo \"test worker $$ up\"\n\
            while true; do\n\
              if [ -f exit-code ]; then code=$(cat exit-code); rm exit-code; exit \"$code\"; fi\n\
              sleep 0.1\n\
            done\n";
        self.write_home_file("worker.sh", script, 0o755);
        let worker = self.sygen_home().join("worker.sh");
        self.write_home_file(
            "config.toml",
            &format!("[agent]\ncommand = [{:?}]\n", worker.to_str().unwrap()),
            0o644,
        );
    }

    fn make_worker_exit(&self, code: i32) {
        self.write_home_file("exit-code", &code.to_string(), 0o644);
    }

    /// The files under the home, outside the sygen home and the installed binaries.
    fn home_tree(&self) -> BTreeSet<PathBuf> {
        fn walk(dir: &Path, root: &Path, skip: &[PathBuf], out: &mut BTreeSet<PathBuf>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if skip.contains(&path) {
                    continue;
                }
                out.insert(path.strip_prefix(root).unwrap().to_path_buf());
                if path.is_dir() && !path.is_symlink() {
                    walk(&path, root, skip, out);
                }
            }
        }
        let mut tree = BTreeSet::new();
        let skip = [self.sygen_home(), self.home.join(APPS_DIR)];
        walk(&self.home, &self.home, &skip, &mut tree);
        tree
    }
}

#[test]
fn install_starts_the_service_from_an_awkward_path() {
    let Some(h) = Harness::up() else { return };
    let before = h.home_tree();
    let out = h.sygen(&["service", "install"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out
        .stdout
        .contains(&format!("wrote {}", h.unit_path().display())));
    eventually("the service to be active", Duration::from_secs(5), || {
        h.property("ActiveState") == "active"
    });

    let unit = fs::read_to_string(h.unit_path()).unwrap();
    let program = h.program().to_str().unwrap().replace('%', "%%");
    let home = h.home.to_str().unwrap();
    for line in [
        format!("ExecStart=\"{program}\" run"),
        "Type=exec".to_owned(),
        "KillMode=mixed".to_owned(),
        "Restart=on-failure".to_owned(),
        "RestartSec=5".to_owned(),
        format!("Environment=\"HOME={home}\""),
        format!("Environment=\"SYGEN_HOME={home}/.sygen\""),
        "Environment=\"SYGEN_SUPERVISOR=1\"".to_owned(),
        "WantedBy=default.target".to_owned(),
        "Description=sygen agent".to_owned(),
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "{line:?} missing from\n{unit}"
        );
    }
    let path_line = unit
        .lines()
        .find(|l| l.starts_with("Environment=\"PATH="))
        .unwrap();
    assert!(
        path_line.contains(":/usr/bin:") && path_line.ends_with(":/bin\""),
        "{path_line}"
    );

    let main_pid = h.property("MainPID");
    let cmdline = fs::read_to_string(format!("/proc/{main_pid}/cmdline")).unwrap();
    assert_eq!(cmdline, format!("{}\0run\0", h.program().display()));

    let status: serde_json::Value =
        serde_json::from_str(&h.sygen_ok(&["service", "status", "--json"])).unwrap();
    assert_eq!(status["backend"], "systemd");
    assert_eq!(status["installed"], true);
    assert_eq!(status["running"], true);
    let details = &status["details"];
    assert_eq!(details["ActiveState"], "active");
    assert_eq!(details["SubState"], "running");
    assert_eq!(details["LoadState"], "loaded");
    assert_eq!(details["MainPID"].to_string(), main_pid);
    assert_eq!(details["NRestarts"], 0);
    assert_eq!(details["NeedDaemonReload"], false);
    // Memory and tasks where systemd accounts for them (not in every delegated cgroup).
    for accounted in ["MemoryCurrent", "TasksCurrent"] {
        assert!(
            details[accounted].is_u64() || details[accounted].is_null(),
            "{details}"
        );
    }
    assert!(
        details["StateChangeTimestamp"].as_u64() > Some(1_700_000_000_000_000),
        "{details}"
    );
    assert_eq!(details["UnitPath"], h.unit_path().to_str().unwrap());

    let text = h.sygen_ok(&["service", "status"]);
    assert!(
        text.starts_with(&format!(
            "sygen.service: active (running), PID {main_pid}, 0 restarts"
        )),
        "{text}"
    );
    // Its own summary, not `systemctl status`: since when, memory, tasks, the unit, the logs.
    let second = text.lines().nth(1).unwrap_or_default();
    assert!(
        second.starts_with("since ") && second.contains(" ago)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("unit: {}", h.unit_path().display())),
        "{text}"
    );
    assert!(text.contains("last log lines, from "), "{text}");
    assert!(!text.contains("● sygen.service"), "{text}");

    // Uninstall leaves no residue outside the sygen home (whose logs are the user's data).
    let out = h.sygen_ok(&["service", "uninstall"]);
    assert_eq!(
        out,
        format!(
            "removed {}\nsygen service uninstalled\n",
            h.unit_path().display()
        )
    );
    assert_eq!(h.property("LoadState"), "not-found");
    assert_eq!(h.home_tree(), before);
    let units = h.exec(
        &[],
        &[
            "systemctl",
            "--user",
            "list-unit-files",
            "sygen.service",
            "--no-legend",
        ],
    );
    assert_eq!(units.stdout.trim(), "");
    assert!(
        h.sygen_home().join("logs/agent.log").exists(),
        "logs are kept"
    );
}

#[test]
fn exit_codes_reach_systemd_as_specified() {
    let Some(h) = Harness::up() else { return };
    h.use_test_worker();
    h.sygen_ok(&["service", "install"]);
    eventually("the first worker", Duration::from_secs(5), || {
        h.worker_pid().is_some()
    });
    let main_pid = h.property("MainPID");
    let first_worker = h.worker_pid().unwrap();

    // 42: the runtime replaces the worker itself; systemd sees nothing.
    h.make_worker_exit(42);
    eventually("a new worker after exit 42", Duration::from_secs(5), || {
        h.worker_pid().is_some_and(|w| w != first_worker)
    });
    assert_eq!(h.property("MainPID"), main_pid);
    assert_eq!(h.property("NRestarts"), "0");

    // Any other code: the runtime exits with it and systemd restarts the service.
    h.make_worker_exit(3);
    eventually(
        "systemd to restart the service",
        Duration::from_secs(12),
        || h.property("NRestarts") == "1" && h.property("ActiveState") == "active",
    );
    assert_ne!(h.property("MainPID"), main_pid);
    assert_eq!(
        h.property("ExecMainStatus"),
        "0",
        "the new main process is running"
    );
    let status = h.sygen_ok(&["service", "status"]);
    assert!(status.contains("1 restarts"), "{status}");

    // The journal has the worker's and the runtime's lines.
    let logs = h.sygen(&["service", "logs", "-n", "200"]);
    assert_eq!(logs.code, Some(0), "{}", logs.stderr);
    assert!(
        logs.stderr.contains("from the user journal"),
        "{}",
        logs.stderr
    );
    assert_eq!(
        logs.stderr,
        "-- logs of sygen.service from the user journal (journalctl --user -u) --\n"
    );
    assert!(
        logs.stdout
            .contains(&format!("test worker {first_worker} up")),
        "{}",
        logs.stdout
    );
    assert!(
        logs.stdout.contains("worker exited with code 3"),
        "{}",
        logs.stdout
    );
    let few = h.sygen_ok(&["service", "logs", "-n", "2"]);
    assert_eq!(few.lines().count(), 2, "{few}");

    // Stopped through sygen, it stays stopped: no respawn after RestartSec.
    assert_eq!(h.sygen_ok(&["service", "stop"]), "sygen service stopped\n");
    assert_eq!(h.property("ActiveState"), "inactive");
    thread::sleep(Duration::from_secs(6));
    assert_eq!(h.property("ActiveState"), "inactive");
    assert_eq!(h.property("NRestarts"), "1");
}

#[test]
fn reinstall_restarts_only_when_the_unit_changed() {
    let Some(h) = Harness::up() else { return };
    h.sygen_ok(&["service", "install"]);
    eventually("the service", Duration::from_secs(5), || {
        h.property("ActiveState") == "active"
    });
    let main_pid = h.property("MainPID");
    let unit = fs::read_to_string(h.unit_path()).unwrap();

    let out = h.sygen_ok(&["service", "install"]);
    assert!(
        out.contains("unchanged and running; left as it is"),
        "{out}"
    );
    assert_eq!(h.property("MainPID"), main_pid);
    assert_eq!(fs::read_to_string(h.unit_path()).unwrap(), unit);

    // A different sygen home changes the unit's environment: rewritten and restarted.
    let elsewhere = h.home.join("elsewhere");
    let program = h.program();
    let sygen_home = format!("SYGEN_HOME={}", elsewhere.display());
    let out = h.exec(
        &[&sygen_home],
        &[program.to_str().unwrap(), "service", "install"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("restarted sygen.service: its unit changed"),
        "{}",
        out.stdout
    );
    eventually("the restarted service", Duration::from_secs(5), || {
        h.property("ActiveState") == "active" && h.property("MainPID") != main_pid
    });
    let unit = fs::read_to_string(h.unit_path()).unwrap();
    let environment = format!("Environment=\"SYGEN_HOME={}\"", elsewhere.display());
    assert!(unit.lines().any(|l| l == environment), "{unit}");
}

#[test]
fn operations_on_a_missing_service_say_not_installed() {
    let Some(h) = Harness::up() else { return };
    for command in ["start", "stop", "uninstall", "status"] {
        let out = h.sygen(&["service", command]);
        let line = out.fails_with(3, "not installed");
        // `status` asks whether it is installed, the others find it is not.
        let why = if command == "status" {
            "sygen is not installed (systemd backend)".to_owned()
        } else {
            format!(
                "systemd backend 0.1.0: sygen is not installed: there is no unit at {}",
                h.unit_path().display()
            )
        };
        assert_eq!(
            line,
            format!("error: {why} (hint: run `sygen service install`)"),
            "{command}"
        );
    }
}

#[test]
fn an_unreachable_user_manager_is_one_line_with_the_fix() {
    let Some(h) = Harness::up() else { return };
    let program = h.program();
    let program = program.to_str().unwrap();
    let unset = h.exec(&["XDG_RUNTIME_DIR="], &[program, "service", "install"]);
    let line = unset.fails_with(1, "XDG_RUNTIME_DIR is not set");
    let fix = format!("export XDG_RUNTIME_DIR=/run/user/{}", h.uid);
    assert!(line.contains(&fix), "{line}");
    assert!(!line.contains("Failed to connect to bus"), "{line}");

    h.sygen_ok(&["service", "install"]);
    let wrong = h.exec(
        &["XDG_RUNTIME_DIR=/nonexistent"],
        &[program, "service", "status"],
    );
    let line = wrong.fails_with(1, "cannot reach your systemd user manager at /nonexistent");
    assert!(
        line.contains(&format!("--machine={}@.host", h.user)),
        "{line}"
    );
    let backends = h.exec(
        &["XDG_RUNTIME_DIR=/nonexistent"],
        &[program, "service", "backends", "--json"],
    );
    let report: serde_json::Value = serde_json::from_str(&backends.stdout).unwrap();
    let systemd = report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "systemd")
        .unwrap();
    assert_eq!(systemd["available"], false);

    let reachable = h.sygen_ok(&["service", "backends", "--json"]);
    assert!(reachable.contains("\"available\": true"), "{reachable}");
}

/// The lines systemd's backend gives without linger, under `heading`, as sygen prints them.
fn outlives_without_linger(h: &Harness, heading: &str) -> String {
    format!(
        "{heading}\n\
         \x20 logout: sygen stops when {0} logs out: linger is off for {0}, so systemd stops \
         {0}'s user manager at the last logout\n\
         \x20   fix: run `sudo loginctl enable-linger {0}`\n\
         \x20 reboot: sygen starts only when {0} logs in: linger is off for {0}, so systemd \
         starts {0}'s user manager at login, not at boot\n\
         \x20   fix: run `sudo loginctl enable-linger {0}`\n",
        h.user
    )
}

#[test]
fn install_and_doctor_say_what_sygen_outlives_by_linger() {
    let Some(h) = Harness::up() else { return };
    let dry = h.sygen_ok(&["service", "install", "--dry-run"]);
    assert!(
        dry.ends_with(&format!(
            "{}dry run: nothing was changed\n",
            outlives_without_linger(&h, "what sygen would outlive:")
        )),
        "{dry}"
    );

    let out = h.sygen(&["service", "install"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Said once, on stdout, just before the final line; no note on stderr.
    assert_eq!(out.stderr, "");
    let (before_final, _) = out.stdout.rsplit_once("sygen service installed").unwrap();
    assert!(
        before_final.ends_with(&outlives_without_linger(&h, "what sygen outlives:")),
        "{}",
        out.stdout
    );
    assert!(support::ends_running(
        &out.stdout,
        "sygen service installed (systemd backend, the default for this platform)"
    ));
    let fix = format!("run `sudo loginctl enable-linger {}`", h.user);
    assert_eq!(
        support::survival_in_doctor(&h.sygen(&["doctor", "--json"])),
        [
            ("logout".into(), "no".into(), Some(fix.clone())),
            ("reboot".into(), "no".into(), Some(fix)),
        ]
    );
    let doctor = h.sygen_ok(&["doctor"]);
    assert!(
        doctor.contains(&outlives_without_linger(&h, "what sygen outlives:")),
        "{doctor}"
    );
    assert!(!doctor.contains("systemd.linger"), "{doctor}");

    h.root(&["touch", &format!("/var/lib/systemd/linger/{}", h.user)]);
    let out = h.sygen(&["service", "install"]);
    assert_eq!(out.stderr, "");
    assert!(
        out.stdout.contains(&format!(
            "what sygen outlives:\n\
             \x20 logout: sygen keeps running after {0} logs out: linger is on for {0}\n\
             \x20 reboot: sygen starts at boot, before anyone logs in: linger is on for {0}, so \
             systemd starts {0}'s user manager at boot\n\
             sygen service installed",
            h.user
        )),
        "{}",
        out.stdout
    );
    assert_eq!(
        support::survival_in_doctor(&h.sygen(&["doctor", "--json"])),
        [
            ("logout".into(), "yes".into(), None),
            ("reboot".into(), "yes".into(), None),
        ]
    );
}

#[test]
fn logs_fall_back_to_the_files_when_no_journal_has_them() {
    let Some(h) = Harness::up() else { return };
    install_with_heartbeats(&h);
    h.root(&["sh", "-c", "rm -rf /var/log/journal/* /run/log/journal/*"]);
    let out = h.sygen(&["service", "logs", "-n", "3"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let log = h.sygen_home().join("logs/agent.log");
    assert!(
        out.stderr
            .contains(&format!("-- logs of sygen from {} --", log.display())),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
    assert!(out.stdout.contains("[stdout] heartbeat"), "{}", out.stdout);
}

/// Installs the service with a fast heartbeat and waits for a few beats in `agent.log`.
fn install_with_heartbeats(h: &Harness) {
    h.write_home_file(
        "config.toml",
        "[agent]\nheartbeat_interval = \"200ms\"\n",
        0o644,
    );
    h.sygen_ok(&["service", "install"]);
    eventually("heartbeats in agent.log", Duration::from_secs(5), || {
        fs::read_to_string(h.sygen_home().join("logs/agent.log"))
            .is_ok_and(|log| log.contains("heartbeat 2"))
    });
}

#[test]
fn logs_use_the_system_journal_when_there_are_no_user_journal_files() {
    let Some(h) = Harness::up_with(&["--no-user-journal"]) else {
        return;
    };
    install_with_heartbeats(&h);
    let out = h.sygen(&["service", "logs", "-n", "4"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "-- logs of sygen.service from the system journal (journalctl --user-unit) --\n"
    );
    assert_eq!(out.stdout.lines().count(), 4, "{}", out.stdout);
    // A heartbeat as the journal has it: `<time> sygen[<pid>]: heartbeat <n>`.
    let heartbeat = |line: &str| {
        line.split_once(" sygen[")
            .and_then(|(_, rest)| rest.split_once("]: heartbeat "))
            .is_some_and(|(pid, n)| pid.parse::<u32>().is_ok() && n.parse::<u64>().is_ok())
    };
    assert!(out.stdout.lines().any(heartbeat), "{}", out.stdout);
}

#[test]
fn logs_follow_prints_new_lines_as_they_come() {
    use std::os::unix::process::CommandExt;

    let Some(h) = Harness::up() else { return };
    install_with_heartbeats(&h);
    let program = h.program();
    let mut follower = h
        .namespace
        .command(
            "exec",
            &[],
            &[
                program.to_str().unwrap(),
                "service",
                "logs",
                "-f",
                "-n",
                "1",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let beats = three_heartbeats(follower.stdout.take().unwrap());
    assert!(
        beats.len() == 3 && beats.windows(2).all(|w| w[1] == w[0] + 1),
        "new heartbeats arrive in order: {beats:?}"
    );
    let interrupted = interrupt_group(follower.id());
    let _ = follower.wait();
    assert!(interrupted, "the follower was stopped");
}

/// Ends a process group the way Ctrl-C would (SIGINT to the group).
fn interrupt_group(pgid: u32) -> bool {
    Command::new("kill")
        .args(["-INT", "--", &format!("-{pgid}")])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_harness_leaves_the_machine_as_it_found_it() {
    let pid1_cgroup = fs::read_to_string("/proc/1/cgroup").unwrap();
    let Some(h) = Harness::up() else { return };
    let uid = h.uid;
    let cgroup = format!("user.slice/user-{uid}.slice/user@{uid}.service");
    let manager = fs::read_to_string(h.namespace.state.join("manager.pid")).unwrap();
    let manager_cgroup = fs::read_to_string(format!("/proc/{}/cgroup", manager.trim())).unwrap();
    // On every hierarchy systemd tracks processes in, the manager sits in its own subtree,
    // never at the root (where it would take every process of the machine).
    let tracked: Vec<&str> = manager_cgroup
        .lines()
        .filter(|l| l.starts_with("0::") || l.contains(":name=systemd:"))
        .collect();
    assert!(!tracked.is_empty(), "{manager_cgroup}");
    for line in tracked {
        assert!(line.ends_with(&format!("/{cgroup}/init.scope")), "{line}");
    }
    install_with_heartbeats(&h);
    drop(h);

    assert_eq!(fs::read_to_string("/proc/1/cgroup").unwrap(), pid1_cgroup);
    let left = Command::new("ps")
        .args(["-o", "pid=", "-u", &uid.to_string()])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "processes of {uid} left");
    for root in [
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup",
    ] {
        assert!(
            !Path::new(root).join(&cgroup).exists(),
            "{root}/{cgroup} left"
        );
    }
}

#[test]
fn sygen_stop_and_restart_act_on_the_running_service() {
    let Some(h) = Harness::up() else { return };
    h.sygen_ok(&["service", "install"]);
    eventually("the first worker", Duration::from_secs(5), || {
        h.worker_pid().is_some()
    });
    let main_pid = h.property("MainPID");
    let worker = h.worker_pid().unwrap();

    let out = h.sygen_ok(&["restart"]);
    let new_worker = h.worker_pid().unwrap();
    assert_ne!(new_worker, worker);
    assert!(
        out.contains(&format!("pid {worker} → {new_worker}")),
        "{out}"
    );
    assert_eq!(h.property("MainPID"), main_pid, "the runtime stays");

    let out = h.sygen_ok(&["stop"]);
    assert_eq!(out, "stopped the sygen service\n");
    assert_eq!(h.property("ActiveState"), "inactive");
    thread::sleep(Duration::from_secs(6));
    assert_eq!(h.property("ActiveState"), "inactive", "not respawned");
    assert!(!Path::new(&format!("/proc/{new_worker}")).exists());

    let out = h.sygen_ok(&["stop"]);
    assert_eq!(
        out,
        "nothing running: no sygen service or process to stop\n"
    );
}

#[test]
fn onboarding_offers_and_installs_the_real_service() {
    let Some(h) = Harness::up() else { return };
    let out = h.sygen_ok(&[]);
    assert_eq!(
        out,
        format!(
            "wrote a starting configuration to {}\n\
             no terminal to ask on: not installing the background service; \
             `sygen onboarding --yes` or `sygen service install` does\n",
            h.sygen_home().join("config.toml").display()
        )
    );
    assert_eq!(h.property("LoadState"), "not-found");

    let out = h.sygen_ok(&["onboarding", "--yes"]);
    assert!(
        out.contains("sygen service installed (systemd backend, the default for this platform)"),
        "{out}"
    );
    eventually("the service", Duration::from_secs(5), || {
        h.property("ActiveState") == "active"
    });
    let out = h.sygen_ok(&["onboarding"]);
    assert_eq!(
        out,
        "the sygen background service is already installed (systemd backend)\n"
    );
}

#[test]
fn the_systemd_backend_passes_conformance() {
    let Some(h) = Harness::up() else { return };
    let library = h.home.join(APPS_DIR).join("libsygen_systemd.so");
    let out = h.sygen(&[
        "--backend",
        library.to_str().unwrap(),
        "service",
        "conformance",
    ]);
    support::passed_conformance("systemd", &out);
}

/// The checks of one `sygen doctor --json` run, by id: (status, message).
fn doctor(h: &Harness, program: &Path) -> (Option<i32>, Vec<(String, String, String)>) {
    let out = h.exec(&[], &[program.to_str().unwrap(), "doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}{}", out.stdout, out.stderr));
    let checks = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            let text = |key: &str| c[key].as_str().unwrap_or_default().to_owned();
            (text("id"), text("status"), text("message"))
        })
        .collect();
    (out.code, checks)
}

fn status_of<'a>(checks: &'a [(String, String, String)], id: &str) -> (&'a str, &'a str) {
    checks
        .iter()
        .find(|(i, _, _)| i == id)
        .map(|(_, status, message)| (status.as_str(), message.as_str()))
        .unwrap_or_else(|| panic!("no check {id} in {checks:?}"))
}

#[test]
fn dry_runs_show_exactly_what_install_and_uninstall_do_and_change_nothing() {
    let Some(h) = Harness::up() else { return };
    let before = h.home_tree();
    let dry = h.sygen_ok(&["service", "install", "--dry-run"]);
    assert_eq!(h.home_tree(), before, "a dry run wrote something:\n{dry}");
    assert!(!h.sygen_home().exists(), "{dry}");
    assert_eq!(h.property("LoadState"), "not-found");
    let header = format!(
        "would write {} (utf-8, mode 0644):\n",
        h.unit_path().display()
    );
    let (_, rest) = dry.split_once(&header).expect(&dry);
    let (shown_unit, commands) = rest.split_once("would run: ").expect(&dry);
    let outlives = outlives_without_linger(&h, "what sygen would outlive:");
    assert_eq!(
        format!("would run: {commands}"),
        format!(
            "would run: systemctl --user daemon-reload\n\
             would run: systemctl --user enable sygen.service\n\
             would run: systemctl --user start sygen.service\n\
             {outlives}\
             dry run: nothing was changed\n"
        )
    );

    let installed = h.sygen_ok(&["service", "install"]);
    assert_eq!(fs::read_to_string(h.unit_path()).unwrap(), shown_unit);
    let main_pid = h.property("MainPID");
    assert!(
        installed.contains(&format!(
            "sygen service installed (systemd backend, the default for this platform); running: runtime pid {main_pid}, worker pid "
        )),
        "{installed}"
    );
    // Reinstalling an unchanged unit runs no daemon-reload and writes nothing.
    let again = h.sygen_ok(&["service", "install", "--dry-run"]);
    assert_eq!(
        again,
        format!(
            "would run: systemctl --user enable sygen.service\n{outlives}dry run: nothing was \
             changed\n"
        )
    );

    let dry = h.sygen_ok(&["service", "uninstall", "--dry-run"]);
    let worker = h.worker_pid().unwrap();
    assert_eq!(
        dry,
        format!(
            "would run: systemctl --user disable --now sygen.service\n\
             would remove {}\n\
             would run: systemctl --user daemon-reload\n\
             would run: systemctl --user reset-failed sygen.service\n\
             would end, if still running after that: runtime {main_pid}, worker tree (pid {worker})\n\
             dry run: nothing was changed\n",
            h.unit_path().display()
        )
    );
    assert!(h.unit_path().exists());
    assert_eq!(h.property("ActiveState"), "active");
    assert_eq!(h.property("MainPID"), main_pid);
}

#[test]
fn doctor_explains_the_service_its_drift_and_a_pending_reload() {
    let Some(h) = Harness::up() else { return };
    h.sygen_ok(&["service", "install"]);
    let (code, checks) = doctor(&h, &h.program());
    assert_eq!(code, Some(0), "{checks:?}");
    for id in [
        "backend-permissions",
        "backend",
        "service-manager",
        "systemd.runtime-dir",
        "systemd.user-bus",
        "systemd.program",
        "systemd.unit",
        "systemd.daemon-reload",
        "service",
        "config",
        "worker-path",
        "logs-dir",
        "pid-files",
    ] {
        assert_eq!(status_of(&checks, id).0, "pass", "{id}: {checks:?}");
    }
    assert!(
        status_of(&checks, "systemd.user-bus")
            .1
            .starts_with("your systemd user manager answers over the user bus at /run/user/"),
        "{checks:?}"
    );
    let main_pid = h.property("MainPID");
    assert!(status_of(&checks, "pid-files")
        .1
        .starts_with(&format!("runtime {main_pid} holds bot.pid")));

    // sygen moved since the install: the unit still runs the old path.
    let moved = h.home.join("moved/sygen");
    fs::create_dir_all(moved.parent().unwrap()).unwrap();
    support::copy_executable(&h.program(), &moved);
    support::copy_executable(
        &h.home.join(APPS_DIR).join("libsygen_systemd.so"),
        &moved.with_file_name("libsygen_systemd.so"),
    );
    h.give_to_user(&h.home.join("moved"));
    let (code, checks) = doctor(&h, &moved);
    assert_eq!(code, Some(0), "drift is a warning: {checks:?}");
    let (status, message) = status_of(&checks, "systemd.unit");
    assert_eq!(status, "warn");
    let old = h.program().to_str().unwrap().replace('%', "%%");
    assert!(
        message.contains(&format!(
            "is `ExecStart=\"{old}\" run`, sygen writes `ExecStart={} run`",
            moved.display()
        )),
        "{message}"
    );

    // The unit edited on disk and not reloaded.
    let mut unit = fs::read_to_string(h.unit_path()).unwrap();
    unit.push_str("# edited\n");
    fs::write(h.unit_path(), unit).unwrap();
    let (_, checks) = doctor(&h, &h.program());
    assert_eq!(status_of(&checks, "systemd.daemon-reload").0, "warn");
    assert!(
        status_of(&checks, "systemd.unit")
            .1
            .ends_with("line 18 `# edited` is extra"),
        "{checks:?}"
    );

    // sygen removed since the install (its package removed): the unit names a binary that is
    // gone, which the sygen in use now says.
    fs::remove_file(h.program()).unwrap();
    let (code, checks) = doctor(&h, &moved);
    assert_eq!(code, Some(1), "{checks:?}");
    let (status, message) = status_of(&checks, "systemd.program");
    assert_eq!(status, "fail", "{message}");
    assert!(
        message.ends_with(&format!(
            "runs {}, which is gone (sygen was removed or moved): systemd cannot start the \
             service",
            h.program().display()
        )),
        "{message}"
    );
}

#[test]
fn a_service_that_cannot_start_shows_its_last_log_lines() {
    let Some(h) = Harness::up() else { return };
    h.write_home_file(
        "config.toml",
        "[agent]\ncommand = [\"no-such-worker\"]\n",
        0o644,
    );
    let out = h.sygen(&["service", "install", "--timeout", "4s"]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let logs = lines
        .iter()
        .position(|l| *l == "last log lines (systemd backend):")
        .unwrap_or_else(|| panic!("no log lines in {}", out.stderr));
    assert!(
        lines[logs..].iter().any(|l| l.contains("no-such-worker")),
        "the log names the worker that could not start: {}",
        out.stderr
    );
    let error = lines.last().unwrap();
    assert_eq!(
        *error,
        "error: systemd backend 0.1.0: sygen did not start: the service is activating \
         (auto-restart), last exit: exited with status 127 (hint: `sygen service logs` shows why)",
        "{}",
        out.stderr
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn an_update_from_a_signed_channel_replaces_the_backend_without_disturbing_the_service() {
    let Some(h) = Harness::up() else { return };
    h.sygen_ok(&["service", "install"]);
    eventually("the service to be active", Duration::from_secs(5), || {
        h.property("ActiveState") == "active"
    });
    let main_pid = h.property("MainPID");

    // The publisher: a key the user trusts (the shipped backend signed with it too, as a
    // distribution signs what it ships), and a channel mirrored into the user's home.
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let publisher = tempfile::tempdir().unwrap();
    let secret = publisher.path().join("publisher.key");
    fs::write(&secret, pair.sk.to_box(None).unwrap().to_string()).unwrap();
    let shipped = h.home.join(APPS_DIR).join("libsygen_systemd.so");
    let signature = minisign::sign(
        None,
        &pair.sk,
        fs::File::open(&shipped).unwrap(),
        None,
        None,
    )
    .unwrap();
    fs::write(
        format!("{}.minisig", shipped.display()),
        signature.to_string(),
    )
    .unwrap();
    fs::create_dir_all(h.sygen_home().join("trusted-keys")).unwrap();
    h.write_home_file(
        "trusted-keys/publisher.pub",
        &pair.pk.to_box().unwrap().to_string(),
        0o644,
    );
    let mirror = h.home.join("mirror");
    fs::create_dir_all(&mirror).unwrap();
    let library = mirror.join("libsygen_systemd.so");
    // The systemd backend at 0.2.0 (`tests/backends/systemd-next`).
    fs::copy(support::library("systemd_next"), &library).unwrap();
    let manifest = mirror.join("stable.json");
    let publishing = support::User::new();
    publishing
        .run(&[
            "service",
            "backend",
            "publish",
            library.to_str().unwrap(),
            "--key",
            secret.to_str().unwrap(),
            "--url",
            &format!("file://{}", library.display()),
            "--manifest",
            manifest.to_str().unwrap(),
        ])
        .succeeds();
    h.give_to_user(&mirror);
    h.write_home_file(
        "config.toml",
        &format!("[updates]\nchannel = \"file://{}\"\n", manifest.display()),
        0o644,
    );

    let check = h.sygen_ok(&["service", "backend", "update", "--check"]);
    assert!(
        check.contains("  systemd: 0.1.0 → 0.2.0 available"),
        "{check}"
    );
    let updated = h.sygen_ok(&["service", "backend", "update"]);
    assert!(
        updated.contains("installed the systemd backend 0.2.0"),
        "{updated}"
    );
    assert!(
        updated.contains("replaces the systemd backend shipped with sygen"),
        "{updated}"
    );
    let backends = h.sygen_ok(&["service", "backends"]);
    assert!(backends.contains("* in use: systemd 0.2.0"), "{backends}");
    let (_, checks) = doctor(&h, &h.program());
    let (status, message) = status_of(&checks, "backend");
    assert!(
        status == "pass" && message.starts_with("systemd 0.2.0 from "),
        "{message}"
    );
    let (_, message) = status_of(&checks, "service");
    assert_eq!(message, "sygen is installed and running");
    // The running service was not touched.
    assert_eq!(h.property("MainPID"), main_pid);
    assert_eq!(h.property("ActiveState"), "active");
    let status = h.sygen_ok(&["service", "status"]);
    assert!(
        status.starts_with(&format!(
            "sygen.service: active (running), PID {main_pid}, 0 restarts"
        )),
        "{status}"
    );

    let back = h.sygen_ok(&["service", "backend", "rollback", "systemd"]);
    assert!(
        back.contains("rolled the systemd backend back to 0.1.0, the one shipped with sygen"),
        "{back}"
    );
    let backends = h.sygen_ok(&["service", "backends"]);
    assert!(backends.contains("* in use: systemd 0.1.0"), "{backends}");
    eprintln!("{check}{updated}{back}");
    assert_eq!(h.property("MainPID"), main_pid);
    h.sygen_ok(&["service", "uninstall"]);
}

/// The `XDG_RUNTIME_DIR` the harness gives the test user.
fn runtime_dir(h: &Harness) -> String {
    let env = fs::read_to_string(h.namespace.state.join("env")).unwrap();
    env.lines()
        .find_map(|l| l.strip_prefix("XDG_RUNTIME_DIR="))
        .unwrap()
        .to_owned()
}

/// A runtime directory of the user's with the manager's private socket in it and no bus.
fn private_socket_only(h: &Harness) -> PathBuf {
    let dir = h.home.join("runtime-without-bus");
    fs::create_dir_all(dir.join("systemd")).unwrap();
    h.give_to_user(&dir);
    // (The link leads into the namespace's /run/user, which only the user's commands see.)
    std::os::unix::fs::symlink(
        format!("{}/systemd/private", runtime_dir(h)),
        dir.join("systemd/private"),
    )
    .unwrap();
    dir
}

#[test]
fn state_comes_over_the_session_or_user_bus_or_the_private_socket_and_from_systemctl_without_one() {
    let Some(h) = Harness::up() else { return };
    h.sygen_ok(&["service", "install"]);
    let program = h.program();
    // `sygen -v service status`, run through `wrapper` (a command that runs another).
    let status_through = |wrapper: &[&str], vars: &[&str]| {
        let mut command = wrapper.to_vec();
        command.extend([program.to_str().unwrap(), "-v", "service", "status"]);
        let out = h.exec(vars, &command);
        assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.starts_with("sygen.service: active (running)"),
            "{}",
            out.stdout
        );
        out.stderr
    };
    let status = |vars: &[&str]| status_through(&[], vars);
    let runtime = runtime_dir(&h);
    let session = status(&[&format!("DBUS_SESSION_BUS_ADDRESS=unix:path={runtime}/bus")]);
    assert!(
        session.contains("connected to the user manager over the session bus"),
        "{session}"
    );
    let user_bus = status(&[]);
    assert!(
        user_bus.contains(&format!(
            "connected to the user manager over the user bus at {runtime}/bus"
        )),
        "{user_bus}"
    );
    // A session bus the manager is not on (as `dbus-launch` gives a desktop session): passed
    // over for the user bus, and -v says why; that bus is not asked to start a manager (its
    // daemon, sharing our stderr, would say it is activating one).
    let elsewhere = status_through(&["dbus-run-session", "--"], &[]);
    assert!(
        elsewhere.contains("the user manager did not answer over the session bus (")
            && elsewhere.contains(&format!(
                "connected to the user manager over the user bus at {runtime}/bus"
            )),
        "{elsewhere}"
    );
    assert!(!elsewhere.contains("Activating service"), "{elsewhere}");
    // A session bus that takes the connection and never answers (its daemon stopped): given
    // up on within a bound, for the user bus, where a wait on it would have run into sygen's
    // time limit.
    let stopped = h.home.join("stopped-bus");
    let _never_answers = std::os::unix::net::UnixListener::bind(&stopped).unwrap();
    fs::set_permissions(&stopped, fs::Permissions::from_mode(0o777)).unwrap();
    let passed_over = status(&[&format!(
        "DBUS_SESSION_BUS_ADDRESS=unix:path={}",
        stopped.display()
    )]);
    assert!(
        passed_over.contains(&format!(
            "the user manager did not answer over the session bus (unix:path={}): no answer \
             within 2 s",
            stopped.display()
        )) && passed_over.contains(&format!(
            "connected to the user manager over the user bus at {runtime}/bus"
        )),
        "{passed_over}"
    );
    // No bus, only the manager's private socket: straight to the manager.
    let private_only = private_socket_only(&h);
    let private = status(&[&format!("XDG_RUNTIME_DIR={}", private_only.display())]);
    assert!(
        private.contains(&format!(
            "connected to the user manager over the manager's private socket at {}/systemd/private",
            private_only.display()
        )),
        "{private}"
    );
    assert!(!private.contains("instead of D-Bus"), "{private}");
    // No way in at all: `systemctl` is asked instead, and -v says why; it cannot reach the
    // manager either, which is one clear error.
    let nothing = h.home.join("runtime-without-anything");
    fs::create_dir_all(&nothing).unwrap();
    h.give_to_user(&nothing);
    let out = h.exec(
        &[&format!("XDG_RUNTIME_DIR={}", nothing.display())],
        &[program.to_str().unwrap(), "-v", "service", "status"],
    );
    assert!(
        out.stderr.contains(&format!(
            "asking `systemctl --user show` instead of D-Bus: the user bus at {0}/bus: there is \
             none; the manager's private socket at {0}/systemd/private: there is none",
            nothing.display()
        )),
        "{}",
        out.stderr
    );
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(
        errors,
        [format!(
            "error: systemd backend 0.1.0: cannot reach your systemd user manager at {} (hint: \
             log in to a session of {1} (ssh or console) so systemd starts your user manager, or \
             from root use `systemctl --user --machine={1}@.host`)",
            nothing.display(),
            h.user
        )],
        "{}",
        out.stderr
    );
}

#[test]
fn a_start_that_fails_at_once_is_seen_over_d_bus_or_by_looking_without_a_bus() {
    let Some(h) = Harness::up() else { return };
    h.sygen_ok(&["service", "install"]);
    h.sygen_ok(&["service", "stop"]);
    // From now on the worker exits 3 a moment after it starts, and the runtime with it.
    h.write_home_file(
        "config.toml",
        "[agent]\ncommand = [\"/bin/sh\", \"-c\", \"sleep 0.2; exit 3\"]\n",
        0o644,
    );
    let program = h.program();
    let runtime = runtime_dir(&h);
    let private_only = private_socket_only(&h);
    let no_bus = format!("XDG_RUNTIME_DIR={}", private_only.display());
    for (vars, route) in [
        (vec![], format!("the user bus at {runtime}/bus")),
        (
            vec![no_bus.as_str()],
            format!(
                "the manager's private socket at {}/systemd/private",
                private_only.display()
            ),
        ),
    ] {
        let out = h.exec(
            &vars,
            &[program.to_str().unwrap(), "-v", "service", "start"],
        );
        assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
        // Watched over D-Bus, and the failure came as an announced change.
        assert!(
            out.stderr
                .contains(&format!("watching sygen.service for changes over {route}"))
                && out.stderr.contains("sygen.service changed: "),
            "{}",
            out.stderr
        );
        let error = out.stderr.lines().last().unwrap_or_default();
        assert!(
            error.starts_with(
                "error: systemd backend 0.1.0: sygen did not start: the service is activating \
                 (auto-restart), last exit: exited with status 3"
            ),
            "{}",
            out.stderr
        );
        h.sygen_ok(&["service", "stop"]);
    }
    h.sygen_ok(&["service", "uninstall"]);
}

#[test]
fn status_reads_each_state_of_the_unit() {
    let Some(h) = Harness::up() else { return };
    let details = |h: &Harness| -> serde_json::Value {
        let out = h.sygen(&["service", "status", "--json"]);
        let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        status["details"].clone()
    };
    // Not found: not installed, and not running.
    let out = h.sygen(&["service", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (status["installed"].clone(), status["running"].clone()),
        (false.into(), false.into()),
        "{status}"
    );

    h.use_test_worker();
    h.sygen_ok(&["service", "install"]);
    let active = details(&h);
    assert_eq!(
        (&active["ActiveState"], &active["SubState"]),
        (&"active".into(), &"running".into())
    );
    // Up: the last lines come from agent.log, which keeps everything, for the cost of a read.
    let text = h.sygen(&["service", "status"]).stdout;
    let agent_log = h.sygen_home().join("logs/agent.log");
    assert!(
        text.contains(&format!("last log lines, from {}:", agent_log.display()))
            && text.contains("worker started"),
        "{text}"
    );

    h.sygen_ok(&["service", "stop"]);
    let inactive = details(&h);
    assert_eq!(
        (&inactive["ActiveState"], &inactive["SubState"]),
        (&"inactive".into(), &"dead".into())
    );
    assert!(
        inactive["MainPID"].is_null() || inactive["MainPID"] == 0,
        "{inactive}"
    );

    // A worker exiting 3 ends the runtime with 3: systemd waits to restart it.
    h.sygen_ok(&["service", "start"]);
    h.make_worker_exit(3);
    eventually("the restart to be pending", Duration::from_secs(10), || {
        details(&h)["SubState"] == "auto-restart"
    });
    let activating = details(&h);
    assert_eq!(activating["ActiveState"], "activating", "{activating}");
    assert_eq!(
        (&activating["ExecMainCode"], &activating["ExecMainStatus"]),
        (&1.into(), &3.into())
    );
    let text = h.sygen(&["service", "status"]).stdout;
    assert!(
        text.contains("activating (auto-restart)")
            && text.contains("last exit: exited with status 3"),
        "{text}"
    );
    // Down: from the journal, which has systemd's own words on it.
    assert!(
        text.contains("last log lines, from the user journal")
            && text.contains("Main process exited, code=exited, status=3"),
        "{text}"
    );

    // Started too often too quickly, systemd gives up: failed.
    for _ in 0..7 {
        h.exec(&[], &["systemctl", "--user", "restart", "sygen.service"]);
    }
    eventually("the unit to fail", Duration::from_secs(10), || {
        details(&h)["ActiveState"] == "failed"
    });
    let text = h.sygen(&["service", "status"]).stdout;
    assert!(text.starts_with("sygen.service: failed (failed)"), "{text}");
    assert!(
        text.contains("Start request repeated too quickly"),
        "{text}"
    );
    h.sygen_ok(&["service", "uninstall"]);
}

#[test]
fn a_masked_unit_is_not_installed_over() {
    let Some(h) = Harness::up() else { return };
    h.exec(&[], &["systemctl", "--user", "mask", "sygen.service"])
        .succeeds();
    assert_eq!(
        fs::read_link(h.unit_path()).unwrap(),
        Path::new("/dev/null")
    );
    let out = h.sygen(&["service", "install"]);
    assert_eq!(
        out.fails_with(1, "is masked"),
        format!(
            "error: systemd backend 0.1.0: sygen.service is masked ({} links to /dev/null): \
             systemd is told never to start it, and installing would undo that (hint: if sygen \
             should run, `systemctl --user unmask sygen.service`, then install again)",
            h.unit_path().display()
        )
    );
    // The mask stays, and a mask is not an installed service.
    assert_eq!(
        fs::read_link(h.unit_path()).unwrap(),
        Path::new("/dev/null")
    );
    h.sygen(&["service", "status"])
        .fails_with(3, "sygen is not installed (systemd backend)");
    h.exec(&[], &["systemctl", "--user", "unmask", "sygen.service"])
        .succeeds();
    h.sygen(&["service", "install"]).succeeds();
    h.sygen_ok(&["service", "uninstall"]);
}

#[test]
fn a_unit_file_removed_while_the_service_runs_is_still_managed() {
    let Some(h) = Harness::up() else { return };
    h.sygen(&["service", "install"]).succeeds();
    fs::remove_file(h.unit_path()).unwrap();
    let warning = format!(
        "warning: the unit file {} is gone, but systemd still has sygen.service loaded from it",
        h.unit_path().display()
    );
    // Status says what runs, and what is missing.
    let status = h.sygen(&["service", "status"]);
    assert_eq!(status.code, Some(0), "{}", status.stderr);
    assert!(
        status.stdout.starts_with("sygen.service: active (running)"),
        "{}",
        status.stdout
    );
    assert!(
        status.stderr.lines().any(|l| l == warning),
        "{}",
        status.stderr
    );
    let doctor = h.sygen(&["doctor"]);
    let failed = format!(
        "[FAIL] systemd.unit: the unit file {} is gone, but systemd still runs the service \
         loaded from it: the next daemon-reload or reboot loses it",
        h.unit_path().display()
    );
    assert!(
        doctor.stdout.lines().any(|l| l == failed),
        "{}",
        doctor.stdout
    );
    assert_eq!(doctor.code, Some(1));
    // Stop and uninstall act on what systemd runs, and leave nothing behind.
    h.sygen_ok(&["service", "stop"]);
    assert_eq!(h.property("ActiveState"), "inactive");
    let uninstalled = h.sygen(&["service", "uninstall"]);
    assert!(
        uninstalled.succeeds().contains(&format!(
            "stopped and disabled sygen.service, whose unit file {} was already gone",
            h.unit_path().display()
        )),
        "{}",
        uninstalled.stdout
    );
    let wants = h
        .home
        .join(".config/systemd/user/default.target.wants/sygen.service");
    assert!(
        fs::symlink_metadata(&wants).is_err(),
        "the wants link is left"
    );
    h.sygen(&["service", "status"])
        .fails_with(3, "sygen is not installed (systemd backend)");
}

/// systemd sees one runtime, active and running, through a crash loop of its workers: the
/// runtime's own record is what shows the loop, in `status` and `status --json`.
#[test]
fn a_crash_loop_the_runtime_handles_shows_in_status_under_systemd() {
    let Some(h) = Harness::up() else { return };
    h.write_home_file(
        "worker.sh",
        "#!/bin/sh\n[ -f recovered ] && exec sleep 300\necho crashing >&2\nexit 42\n",
        0o755,
    );
    let worker = h.sygen_home().join("worker.sh");
    h.write_home_file(
        "config.toml",
        &format!(
            "[agent]\ncommand = [{:?}]\nquick_restarts = 2\n",
            worker.to_str().unwrap()
        ),
        0o644,
    );
    h.sygen_ok(&["service", "install", "--no-wait"]);
    let json = || -> serde_json::Value {
        serde_json::from_str(&h.sygen_ok(&["service", "status", "--json"])).unwrap()
    };
    eventually("the loop in status", Duration::from_secs(20), || {
        json()["runtime"]["state"] == "backing_off"
    });
    let report = json();
    assert_eq!(report["running"], true, "systemd sees a runtime: {report}");
    assert_eq!(h.property("SubState"), "running");
    assert_eq!(report["runtime"]["last_exit"]["code"], 42, "{report}");
    assert!(
        report["runtime"]["quick_restarts"].as_u64().unwrap() > 2,
        "{report}"
    );
    eventually("the loop as one line", Duration::from_secs(20), || {
        h.sygen_ok(&["service", "status"]).lines().any(|l| {
            l.starts_with("runtime: restarting: ")
                && l.contains(" quick restarts in a row, last exit 42 ")
        })
    });

    h.write_home_file("recovered", "", 0o644);
    eventually("a worker that recovered", Duration::from_secs(20), || {
        let report = json();
        report["runtime"]["state"] == "running" && report["runtime"]["worker"]["pid"].is_u64()
    });
    let status = h.sygen_ok(&["service", "status"]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("runtime: running: worker pid ")),
        "{status}"
    );
    h.sygen_ok(&["service", "uninstall"]);
}

/// Under the real user manager, a worker's `systemd-notify --ready` reaches the runtime, whose
/// record `status` shows: the unit stays `Type=exec` (see the README's systemd section).
#[test]
fn readiness_said_with_systemd_notify_shows_in_status_under_systemd() {
    let Some(h) = Harness::up() else { return };
    h.write_home_file(
        "worker.sh",
        "#!/bin/sh\necho \"$NOTIFY_SOCKET\" > notify-socket\n\
         while [ ! -f go ]; do sleep 0.1; done\n\
         systemd-notify --ready --status='serving'\nexec sleep 300\n",
        0o755,
    );
    let worker = h.sygen_home().join("worker.sh");
    h.write_home_file(
        "config.toml",
        &format!(
            "[agent]\ncommand = [{:?}]\nready = \"notify\"\n",
            worker.to_str().unwrap()
        ),
        0o644,
    );
    h.sygen_ok(&["service", "install"]);
    let runtime_line = || {
        h.sygen_ok(&["service", "status"])
            .lines()
            .find(|l| l.starts_with("runtime: "))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let socket_file = h.sygen_home().join("notify-socket");
    eventually("the worker", Duration::from_secs(10), || {
        runtime_line().starts_with("runtime: running: worker pid ")
            && fs::read_to_string(&socket_file).is_ok_and(|s| s.ends_with('\n'))
    });
    assert!(
        runtime_line().contains("(not ready yet)"),
        "{}",
        runtime_line()
    );
    let socket = fs::read_to_string(&socket_file).unwrap();
    assert!(
        socket.starts_with("@sygen/"),
        "the runtime's socket: {socket}"
    );
    h.write_home_file("go", "", 0o644);
    eventually("READY=1 in status", Duration::from_secs(10), || {
        let line = runtime_line();
        !line.contains("not ready") && line.ends_with("; it says: serving")
    });
    let report: serde_json::Value =
        serde_json::from_str(&h.sygen_ok(&["service", "status", "--json"])).unwrap();
    assert_eq!(report["runtime"]["ready"], true, "{report}");
    assert_eq!(report["runtime"]["status"], "serving", "{report}");
    h.sygen_ok(&["service", "uninstall"]);
}

#[test]
fn the_workers_env_values_show_nowhere_but_in_the_worker() {
    let Some(h) = Harness::up() else { return };
    const FROM_FILE: &str = "file-s3cr3t-5d8a0e";
    const FROM_CONFIG: &str = "config-s3cr3t-91b2c7";
    let worker = h.sygen_home().join("worker.sh");
    h.write_home_file(
        "worker.sh",
        &format!(
            "#!/bin/sh\n\
             [ \"$FILE_TOKEN\" = {FROM_FILE} ] && [ \"$CONFIG_TOKEN\" = {FROM_CONFIG} ] && \
             echo 'both tokens arrived'\n\
             exec sleep 300\n"
        ),
        0o755,
    );
    h.write_home_file("secrets.env", &format!("FILE_TOKEN={FROM_FILE}\n"), 0o600);
    h.write_home_file(
        "config.toml",
        &format!(
            "[agent]\ncommand = [{:?}]\nenv_file = \"secrets.env\"\n\
             env = {{ CONFIG_TOKEN = {FROM_CONFIG:?} }}\n",
            worker.to_str().unwrap()
        ),
        0o644,
    );
    let mut seen = vec![
        h.sygen(&["service", "install", "--dry-run"]),
        h.sygen(&["service", "install"]),
    ];
    let log = h.sygen_home().join("logs/agent.log");
    eventually("the worker's tokens", Duration::from_secs(10), || {
        fs::read_to_string(&log).is_ok_and(|l| l.contains("both tokens arrived"))
    });
    seen.push(h.sygen(&["restart"]));
    for args in [
        &["service", "status"][..],
        &["service", "status", "--json"],
        &["doctor"],
        &["doctor", "--json"],
        &["service", "logs"],
    ] {
        seen.push(h.sygen(args));
    }
    assert!(
        seen[1].code == Some(0) && seen[2].code == Some(0),
        "{}{}",
        seen[1].stderr,
        seen[2].stderr
    );
    assert!(
        seen.last().unwrap().stdout.contains("both tokens arrived"),
        "the journal has the worker's lines"
    );
    let mut shown: Vec<(String, String)> = seen
        .iter()
        .map(|out| ("output".to_owned(), format!("{}{}", out.stdout, out.stderr)))
        .collect();
    shown.push((
        "unit".to_owned(),
        fs::read_to_string(h.unit_path()).unwrap(),
    ));
    for entry in fs::read_dir(h.sygen_home().join("logs")).unwrap() {
        let path = entry.unwrap().path();
        shown.push((
            path.display().to_string(),
            fs::read_to_string(&path).unwrap(),
        ));
    }
    for (what, text) in shown {
        for secret in [FROM_FILE, FROM_CONFIG] {
            assert!(!text.contains(secret), "{secret} in {what}:\n{text}");
        }
    }
    h.sygen_ok(&["service", "uninstall"]);
}
