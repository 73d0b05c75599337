//! The launchd backend through the real `sygen` binary and the real backend library, against
//! `launchctl-sim` (tests/simulators/launchctl): a stateful launchctl that really runs the
//! agent, applies KeepAlive, and answers with macOS's words and exit codes.

use std::{
    fs,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use crate::support::{
    self, alive, artifacts, ends_running, eventually, library, path_with_simulated,
    three_heartbeats, write_script, Outcome,
};

/// A Mac user: a home, a launchd (the simulator's state) and a PATH whose launchctl is the
/// simulator.
struct Mac {
    home: tempfile::TempDir,
    /// launchd's own state, outside the home like the real one.
    launchd: tempfile::TempDir,
    flags: Vec<(&'static str, &'static str)>,
}

impl Mac {
    fn new(flags: &[(&'static str, &'static str)]) -> Self {
        Self {
            home: tempfile::tempdir().expect("temporary home"),
            launchd: tempfile::tempdir().expect("launchd state"),
            flags: flags.to_vec(),
        }
    }

    fn state(&self) -> PathBuf {
        self.launchd.path().to_path_buf()
    }

    fn sygen_home(&self) -> PathBuf {
        self.home.path().join(".sygen")
    }

    fn plist(&self) -> PathBuf {
        self.home
            .path()
            .join("Library/LaunchAgents/dev.sygen.plist")
    }

    fn uid() -> String {
        let out = Command::new("id").arg("-u").output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn target(domain: &str) -> String {
        format!("{domain}/{}/dev.sygen", Self::uid())
    }

    fn environment(&self, command: &mut Command, path: &str) {
        support::in_home(command, self.home.path())
            .env("PATH", path)
            .env("LAUNCHCTL_SIM_STATE", self.state())
            .env("LAUNCHCTL_SIM_THROTTLE_MS", "100")
            .envs(self.flags.iter().copied());
    }

    fn path(&self) -> String {
        path_with_simulated(self.home.path(), "launchctl-sim", "launchctl")
    }

    fn sygen_command(&self, args: &[&str], path: &str) -> Command {
        let backend = library("sygen_launchd");
        let mut command = Command::new(artifacts().join("sygen"));
        command.arg("--backend").arg(backend).args(args);
        self.environment(&mut command, path);
        command
    }

    fn sygen(&self, args: &[&str]) -> Outcome {
        Outcome::from(
            self.sygen_command(args, &self.path())
                .output()
                .expect("sygen runs"),
        )
    }

    /// Runs the simulated launchctl itself, as a person at the terminal would.
    fn launchctl(&self, args: &[&str]) -> Outcome {
        let mut command = Command::new(artifacts().join("launchctl-sim"));
        command.args(args);
        self.environment(&mut command, &self.path());
        Outcome::from(command.output().expect("launchctl-sim runs"))
    }

    /// The `pid = ` launchd reports for the agent, if running.
    fn pid(&self, domain: &str) -> Option<u32> {
        let out = self.launchctl(&["print", &Self::target(domain)]);
        out.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("pid = ")?.parse().ok())
    }

    /// Every launchctl command line sygen ran, in order.
    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.state().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn config(&self, text: &str) {
        fs::create_dir_all(self.sygen_home()).unwrap();
        fs::write(self.sygen_home().join("config.toml"), text).unwrap();
    }
}

impl Drop for Mac {
    fn drop(&mut self) {
        let _ = self.launchctl(&["shutdown"]);
    }
}

const LEGACY_VERBS: [&str; 5] = ["load", "unload", "start", "stop", "list"];

fn assert_no_legacy_verbs(calls: &[String]) {
    for call in calls {
        let verb = call.split(' ').next().unwrap_or("");
        assert!(
            !LEGACY_VERBS.contains(&verb),
            "legacy `{call}` in {calls:?}"
        );
    }
}

fn position(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}…` in {calls:?}"))
}

#[test]
fn install_writes_the_plist_and_runs_the_agent() {
    let mac = Mac::new(&[]);
    let out = mac.sygen(&["service", "install"]);
    let stdout = out.succeeds();
    let target = Mac::target("gui");
    assert!(
        stdout.contains(&format!("wrote {}", mac.plist().display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("loaded and started {target}")),
        "{stdout}"
    );

    let mode = fs::metadata(mac.plist()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let plist: plist::Value = plist::from_file(mac.plist()).unwrap();
    let dict = plist.as_dictionary().unwrap();
    let sygen = fs::canonicalize(artifacts().join("sygen")).unwrap();
    let args: Vec<&str> = dict["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_string().unwrap())
        .collect();
    assert_eq!(args, [sygen.to_str().unwrap(), "run"]);
    let logs = mac.sygen_home().join("logs");
    assert_eq!(
        dict["StandardOutPath"].as_string(),
        Some(logs.join("service.log").to_str().unwrap())
    );
    assert!(logs.is_dir());

    let pid = mac.pid("gui").expect("launchd runs the agent");
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, format!("{}\0run\0", sygen.display()));
    eventually("the runtime's worker", Duration::from_secs(5), || {
        mac.sygen_home().join("worker.pid").exists()
    });

    let status = mac.sygen(&["service", "status"]);
    let (status, runtime) = support::status_and_runtime(status.succeeds());
    assert!(
        runtime.starts_with("runtime: running: worker pid "),
        "{runtime}"
    );
    assert_eq!(
        status,
        format!(
            "{target}: running, PID {pid}, last exit code (never exited)\nplist: {}\n",
            mac.plist().display()
        )
    );
    let json: serde_json::Value =
        serde_json::from_str(mac.sygen(&["service", "status", "--json"]).succeeds()).unwrap();
    assert_eq!(
        (json["installed"].as_bool(), json["running"].as_bool()),
        (Some(true), Some(true))
    );

    let calls = mac.calls();
    assert!(position(&calls, "enable ") < position(&calls, "bootstrap "));
    assert_no_legacy_verbs(&calls);
}

#[test]
fn reinstall_unloads_first_and_waits_for_an_asynchronous_bootout() {
    let mac = Mac::new(&[("LAUNCHCTL_SIM_BOOTOUT_DELAY_MS", "1500")]);
    mac.sygen(&["service", "install"]).succeeds();
    let first = mac.pid("gui").unwrap();
    let stdout = mac.sygen(&["service", "install"]).succeeds().to_owned();
    assert_eq!(
        stdout.lines().next(),
        Some(format!("unloaded the previous {}", Mac::target("gui")).as_str()),
        "{stdout}"
    );
    let second = mac.pid("gui").expect("running again");
    assert_ne!(first, second);
    assert!(!alive(first));
    let calls = mac.calls();
    let bootout = position(&calls, "bootout ");
    let last_bootstrap = calls
        .iter()
        .rposition(|c| c.starts_with("bootstrap "))
        .unwrap();
    assert!(bootout < last_bootstrap, "{calls:?}");
    assert!(
        calls[bootout..last_bootstrap]
            .iter()
            .any(|c| c.starts_with("print ")),
        "waited on `print` between bootout and bootstrap: {calls:?}"
    );
}

#[test]
fn stop_is_not_respawned_and_start_brings_it_back() {
    let mac = Mac::new(&[]);
    mac.sygen(&["service", "install"]).succeeds();
    let pid = mac.pid("gui").unwrap();
    let stdout = mac.sygen(&["service", "stop"]).succeeds().to_owned();
    assert!(stdout.contains("stays stopped until `sygen service start` or the next login"));
    assert!(!alive(pid));
    // Ten ThrottleInterval seconds of 100 ms each, and more: KeepAlive did not restart it.
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(mac.pid("gui"), None);
    let status = mac.sygen(&["service", "status"]);
    assert!(status
        .succeeds()
        .contains("not running, no process, last exit code 0"));

    let started = mac.sygen(&["service", "start"]);
    assert!(
        ends_running(started.succeeds(), "sygen service started"),
        "{}",
        started.stdout
    );
    let restarted = mac.pid("gui").expect("running after start");
    assert_ne!(restarted, pid);
    let calls = mac.calls();
    assert!(
        calls.contains(&format!("kill SIGTERM {}", Mac::target("gui"))),
        "{calls:?}"
    );
    assert!(
        calls.contains(&format!("kickstart {}", Mac::target("gui"))),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.starts_with("disable")), "{calls:?}");
    assert_no_legacy_verbs(&calls);
}

#[test]
fn a_crash_is_restarted_by_keepalive() {
    let mac = Mac::new(&[]);
    fs::create_dir_all(mac.sygen_home()).unwrap();
    let worker = mac.sygen_home().join("worker.sh");
    write_script(
        &worker,
        "[ -f crashed ] || { touch crashed; exit 3; }
exec sleep 300",
    );
    mac.config(&format!(
        "[agent]\ncommand = [{:?}]\n",
        worker.to_str().unwrap()
    ));
    mac.sygen(&["service", "install"]).succeeds();
    eventually("the restarted agent", Duration::from_secs(10), || {
        mac.sygen_home().join("crashed").exists()
            && mac
                .sygen(&["service", "status"])
                .stdout
                .contains("last exit code 3")
            && mac.pid("gui").is_some()
    });
}

#[test]
fn uninstall_removes_the_plist_and_keeps_the_logs() {
    let mac = Mac::new(&[]);
    mac.config("[agent]\nheartbeat_interval = \"100ms\"\n");
    mac.sygen(&["service", "install"]).succeeds();
    let pid = mac.pid("gui").unwrap();
    let stdout = mac.sygen(&["service", "uninstall"]).succeeds().to_owned();
    assert_eq!(
        stdout,
        format!(
            "removed {}; the logs in {} are kept\nsygen service uninstalled\n",
            mac.plist().display(),
            mac.sygen_home().join("logs").display()
        )
    );
    assert!(!mac.plist().exists());
    assert!(!alive(pid));
    let print = mac.launchctl(&["print", &Mac::target("gui")]);
    assert_eq!(print.code, Some(113));
    assert!(mac.sygen_home().join("logs/agent.log").exists());
    for command in ["status", "start", "stop", "uninstall"] {
        let out = mac.sygen(&["service", command]);
        let line = out.fails_with(3, "sygen is not installed");
        // `status` asks whether it is installed, the others find it is not.
        let why = if command == "status" {
            "sygen is not installed (launchd backend)".to_owned()
        } else {
            format!(
                "launchd backend 0.1.0: sygen is not installed: no {}",
                mac.plist().display()
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
fn an_install_dry_run_changes_nothing_and_prints_the_plist_install_writes() {
    let mac = Mac::new(&[]);
    mac.path();
    let before = support::tree(mac.home.path());
    let out = mac.sygen(&["service", "install", "--dry-run"]);
    let stdout = out.succeeds();
    support::assert_unchanged(mac.home.path(), &before);
    let calls = mac.calls();
    assert!(calls.iter().all(|c| c.starts_with("print ")), "{calls:?}");
    assert_eq!(mac.pid("gui"), None);

    let plist = mac.plist();
    let header = format!("would write {} (utf-8, mode 0644):", plist.display());
    assert_eq!(
        support::dry_run_lines(stdout),
        [
            header.as_str(),
            &format!("would run: launchctl enable {}", Mac::target("gui")),
            &format!(
                "would run: launchctl bootstrap gui/{} {}",
                Mac::uid(),
                plist.display()
            ),
            "dry run: nothing was changed",
        ],
        "{stdout}"
    );
    let printed = support::printed_content(stdout, &header);
    plist::from_bytes::<plist::Value>(printed.as_bytes()).expect("the plist, as text");

    mac.sygen(&["service", "install"]).succeeds();
    assert_eq!(fs::read_to_string(&plist).unwrap(), printed);
}

#[test]
fn an_uninstall_dry_run_leaves_the_agent_installed_and_running() {
    let mac = Mac::new(&[]);
    mac.sygen(&["service", "install"]).succeeds();
    let pid = mac.pid("gui").unwrap();
    let plist = fs::read(mac.plist()).unwrap();
    let calls_before = mac.calls().len();

    let out = mac.sygen(&["service", "uninstall", "--dry-run"]);
    let stdout = out.succeeds();
    let lines = support::dry_run_lines(stdout);
    assert_eq!(
        lines[..2],
        [
            format!("would run: launchctl bootout {}", Mac::target("gui")),
            format!("would remove {}", mac.plist().display()),
        ],
        "{stdout}"
    );
    assert_eq!(lines.last(), Some(&"dry run: nothing was changed"));

    assert_eq!(fs::read(mac.plist()).unwrap(), plist);
    assert_eq!(mac.pid("gui"), Some(pid));
    let calls = mac.calls();
    assert!(
        calls[calls_before..]
            .iter()
            .all(|c| c.starts_with("print ")),
        "{calls:?}"
    );
    let json: serde_json::Value =
        serde_json::from_str(mac.sygen(&["service", "status", "--json"]).succeeds()).unwrap();
    assert_eq!(
        (json["installed"].as_bool(), json["running"].as_bool()),
        (Some(true), Some(true))
    );
}

#[test]
fn without_a_gui_login_the_user_domain_is_used() {
    let mac = Mac::new(&[("LAUNCHCTL_SIM_NO_GUI", "1")]);
    let stdout = mac.sygen(&["service", "install"]).succeeds().to_owned();
    let target = Mac::target("user");
    assert!(
        stdout.contains(&format!("loaded and started {target}")),
        "{stdout}"
    );
    assert!(mac.pid("user").is_some());
    let status = mac.sygen(&["service", "status"]);
    assert!(status.succeeds().starts_with(&format!("{target}: running")));
    assert_eq!(
        mac.sygen(&["service", "stop"]).succeeds(),
        format!(
            "{target} stays stopped until `sygen service start` or the next login\n\
             sygen service stopped\n"
        )
    );
    assert_eq!(
        mac.sygen(&["service", "uninstall"]).succeeds(),
        format!(
            "removed {}; the logs in {} are kept\nsygen service uninstalled\n",
            mac.plist().display(),
            mac.sygen_home().join("logs").display()
        )
    );
}

/// The name of the user the tests run as, as the backend names them.
fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What the launchd backend says an agent in `domain` outlives, under `heading`.
fn outlives(domain: &str, heading: &str) -> String {
    let user = user_name();
    let domain = match domain {
        "gui" => format!("gui/{}, {user}'s login at the screen", Mac::uid()),
        _ => format!(
            "user/{}, {user}'s background session (no login at the screen, as over SSH)",
            Mac::uid()
        ),
    };
    format!(
        "{heading}\n\
         \x20 logout: sygen stops when {user} logs out: its agent is in {domain}, and launchd \
         ends a user's agents at logout\n\
         \x20 reboot: sygen starts only when {user} logs in: launchd loads Launch Agents at \
         login, not at boot\n\
         \x20   fix: turn on automatic login for {user} (System Settings > Users & Groups; not \
         possible with FileVault on), so the Mac logs {user} in at boot\n"
    )
}

#[test]
fn install_and_doctor_say_an_agent_outlives_neither_logout_nor_reboot_in_either_domain() {
    for (flags, domain) in [
        (&[][..], "gui"),
        (&[("LAUNCHCTL_SIM_NO_GUI", "1")][..], "user"),
    ] {
        let mac = Mac::new(flags);
        let dry = mac.sygen(&["service", "install", "--dry-run"]);
        assert!(
            dry.succeeds().ends_with(&format!(
                "{}dry run: nothing was changed\n",
                outlives(domain, "what sygen would outlive:")
            )),
            "{}",
            dry.stdout
        );
        let installed = mac.sygen(&["service", "install"]);
        let stdout = installed.succeeds();
        let (before_final, _) = stdout.rsplit_once("sygen service installed").unwrap();
        assert!(
            before_final.ends_with(&outlives(domain, "what sygen outlives:")),
            "{stdout}"
        );
        assert!(ends_running(
            stdout,
            "sygen service installed (launchd backend, named with --backend)"
        ));

        let lines = support::survival_in_doctor(&mac.sygen(&["doctor", "--json"]));
        let lines: Vec<(&str, &str, bool)> = lines
            .iter()
            .map(|(situation, runs, fix)| (situation.as_str(), runs.as_str(), fix.is_some()))
            .collect();
        assert_eq!(lines, [("logout", "no", false), ("reboot", "no", true)]);
        let text = mac.sygen(&["doctor"]);
        assert!(
            text.stdout
                .contains(&outlives(domain, "what sygen outlives:")),
            "{}",
            text.stdout
        );
    }
}

#[test]
fn a_label_disabled_earlier_is_enabled_before_loading() {
    let mac = Mac::new(&[]);
    mac.launchctl(&["disable", &Mac::target("gui")]).succeeds();
    let installed = mac.sygen(&["service", "install"]);
    assert!(
        installed
            .succeeds()
            .contains(&format!("\nloaded and started {}\n", Mac::target("gui")))
            && ends_running(
                &installed.stdout,
                "sygen service installed (launchd backend, named with --backend)"
            ),
        "{}",
        installed.stdout
    );
    assert!(mac.pid("gui").is_some());
}

#[test]
fn legacy_launchctl_gets_the_legacy_subcommands() {
    let mac = Mac::new(&[("LAUNCHCTL_SIM_LEGACY", "1")]);
    let stdout = mac.sygen(&["service", "install"]).succeeds().to_owned();
    assert!(
        stdout.contains("loaded and started dev.sygen (legacy launchctl)"),
        "{stdout}"
    );
    let status = mac.sygen(&["service", "status"]);
    assert!(status
        .succeeds()
        .starts_with("dev.sygen (legacy launchctl): running, PID"));
    assert_eq!(
        mac.sygen(&["service", "stop"]).succeeds(),
        "dev.sygen (legacy launchctl) stays stopped until `sygen service start` or the next \
         login\nsygen service stopped\n"
    );
    let started = mac.sygen(&["service", "start"]);
    assert!(
        ends_running(started.succeeds(), "sygen service started"),
        "{}",
        started.stdout
    );
    let uninstalled = mac.sygen(&["service", "uninstall"]);
    // `unload` leaves the runtime to sygen, which ends it.
    let runtime = started.stdout.split("runtime pid ").nth(1).unwrap();
    let runtime = runtime.split(',').next().unwrap();
    assert_eq!(
        uninstalled.succeeds(),
        format!(
            "removed {}; the logs in {} are kept\nalso ended runtime {runtime}\n\
             sygen service uninstalled\n",
            mac.plist().display(),
            mac.sygen_home().join("logs").display()
        )
    );
    let plist = mac.plist();
    let calls = mac.calls();
    for expected in [
        format!("load -w {}", plist.display()),
        "list dev.sygen".to_owned(),
        "stop dev.sygen".to_owned(),
        "start dev.sygen".to_owned(),
        format!("unload -w {}", plist.display()),
    ] {
        assert!(calls.contains(&expected), "{expected} not in {calls:?}");
    }
}

#[test]
fn a_refused_bootstrap_is_retried_once_then_one_clear_line() {
    let mac = Mac::new(&[("LAUNCHCTL_SIM_BOOTSTRAP_FAILS", "1")]);
    let out = mac.sygen(&["service", "install"]);
    let line = out.fails_with(
        1,
        &format!(
            "`launchctl bootstrap gui/{}` failed: Bootstrap failed: 5: Input/output error",
            Mac::uid()
        ),
    );
    let hint = format!(
        "`sudo launchctl bootstrap gui/{} {}` shows its reason",
        Mac::uid(),
        mac.plist().display()
    );
    assert!(line.contains(&hint), "{line}");
    let bootstraps = mac
        .calls()
        .iter()
        .filter(|c| c.starts_with("bootstrap "))
        .count();
    assert_eq!(bootstraps, 2);
}

#[test]
fn without_launchctl_the_backend_says_so() {
    let mac = Mac::new(&[]);
    let path = "/usr/bin:/bin";
    let backends = mac
        .sygen_command(&["service", "backends", "--json"], path)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&backends.stdout).unwrap();
    let launchd = report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "launchd")
        .unwrap();
    assert_eq!(launchd["available"], false);
    let out = Outcome::from(
        mac.sygen_command(&["service", "install"], path)
            .output()
            .unwrap(),
    );
    let line = out.fails_with(1, "cannot run launchctl");
    assert_eq!(
        line,
        "error: launchd backend 0.1.0: cannot run launchctl: could not run `launchctl`: No such \
         file or directory (os error 2) (hint: sygen's launchd backend needs macOS's \
         /bin/launchctl on PATH)"
    );
}

#[test]
fn logs_show_and_follow_the_agent_log() {
    let mac = Mac::new(&[]);
    mac.config("[agent]\nheartbeat_interval = \"100ms\"\n");
    mac.sygen(&["service", "install"]).succeeds();
    let log = mac.sygen_home().join("logs/agent.log");
    eventually("heartbeats", Duration::from_secs(5), || {
        fs::read_to_string(&log).is_ok_and(|l| l.contains("heartbeat 3"))
    });
    let out = mac.sygen(&["service", "logs", "-n", "3"]);
    assert_eq!(out.succeeds().lines().count(), 3, "{}", out.stdout);
    let beats = three_heartbeats(out.stdout.as_bytes());
    assert!(
        beats.len() == 3 && beats.windows(2).all(|w| w[1] == w[0] + 1),
        "the last three heartbeats: {}",
        out.stdout
    );
    assert_eq!(
        out.stderr,
        format!("-- logs of sygen from {} --\n", log.display())
    );

    let mut follower = mac
        .sygen_command(&["service", "logs", "-f", "-n", "1"], &mac.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let beats = three_heartbeats(follower.stdout.take().unwrap());
    assert!(beats.windows(2).all(|w| w[1] == w[0] + 1), "{beats:?}");
    let _ = follower.kill();
    let _ = follower.wait();
}

/// The simulator itself answers as launchctl does in the cases the backend relies on.
#[test]
fn the_simulator_answers_like_launchctl() {
    let mac = Mac::new(&[]);
    mac.config("");
    fs::create_dir_all(mac.sygen_home().join("logs")).unwrap();
    let plist = mac.home.path().join("agent.plist");
    let sleeper = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
         <key>Label</key><string>dev.sygen</string>\
         <key>ProgramArguments</key><array><string>/bin/sleep</string><string>30</string></array>\
         <key>RunAtLoad</key><true/></dict></plist>\n";
    fs::write(&plist, sleeper).unwrap();
    let plist = plist.to_str().unwrap();
    let gui = format!("gui/{}", Mac::uid());
    let target = Mac::target("gui");

    assert_eq!(mac.launchctl(&["bootstrap", &gui, plist]).code, Some(0));
    let again = mac.launchctl(&["bootstrap", &gui, plist]);
    assert_eq!(again.code, Some(5));
    assert!(again
        .stderr
        .starts_with("Bootstrap failed: 5: Input/output error\n"));
    let print = mac.launchctl(&["print", &target]);
    assert!(
        print.succeeds().contains("\tstate = running\n"),
        "{}",
        print.stdout
    );
    assert_eq!(mac.launchctl(&["bootout", &target]).code, Some(0));
    eventually("the bootout", Duration::from_secs(5), || {
        mac.launchctl(&["print", &target]).code == Some(113)
    });
    let gone = mac.launchctl(&["print", &target]);
    assert_eq!(
        gone.stderr,
        "Could not find service \"dev.sygen\" in domain for port\n"
    );
    let twice = mac.launchctl(&["bootout", &target]);
    assert_eq!(
        (twice.code, twice.stderr.as_str()),
        (Some(3), "Boot-out failed: 3: No such process\n")
    );

    let no_gui = Mac::new(&[("LAUNCHCTL_SIM_NO_GUI", "1")]);
    let out = no_gui.launchctl(&["print", &gui]);
    assert_eq!(
        out.stderr,
        format!("Could not find domain for user gui: {}\n", Mac::uid())
    );
    let legacy = Mac::new(&[("LAUNCHCTL_SIM_LEGACY", "1")]);
    let out = legacy.launchctl(&["bootstrap", &gui, plist]);
    assert_eq!(out.stderr, "Unrecognized subcommand: bootstrap\n");
}

#[test]
fn an_agent_launchd_no_longer_has_loaded_still_uninstalls_and_reinstalls() {
    let mac = Mac::new(&[]);
    mac.sygen(&["service", "install"]).succeeds();
    mac.launchctl(&["bootout", &Mac::target("gui")]).succeeds();
    eventually("the manual bootout", Duration::from_secs(5), || {
        mac.pid("gui").is_none()
    });
    // `Boot-out failed: 3: No such process` is what uninstalling wants anyway.
    assert_eq!(
        mac.sygen(&["service", "uninstall"]).succeeds(),
        format!(
            "removed {}; the logs in {} are kept\nsygen service uninstalled\n",
            mac.plist().display(),
            mac.sygen_home().join("logs").display()
        )
    );
    assert!(!mac.plist().exists());
    let calls = mac.calls();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("bootout ")).count(),
        2,
        "{calls:?}"
    );

    mac.sygen(&["service", "install"]).succeeds();
    mac.launchctl(&["bootout", &Mac::target("gui")]).succeeds();
    eventually("the manual bootout", Duration::from_secs(5), || {
        mac.pid("gui").is_none()
    });
    let started = mac.sygen(&["service", "start"]);
    assert!(
        ends_running(started.succeeds(), "sygen service started"),
        "{}",
        started.stdout
    );
    assert!(
        mac.pid("gui").is_some(),
        "start loads an agent launchd had dropped"
    );
}

#[test]
fn the_launchd_backend_passes_conformance() {
    let mac = Mac::new(&[]);
    support::passed_conformance("launchd", &mac.sygen(&["service", "conformance"]));
}
