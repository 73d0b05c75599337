//! The Task Scheduler backend through the real `sygen` binary and the real backend library,
//! against `schtasks-sim` (tests/simulators/schtasks): a stateful schtasks.exe that runs the
//! task's program, speaks English, German, French or Japanese, and keeps every task XML it
//! was given so it can be checked after the backend has deleted its file.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::support::{
    self, alive, artifacts, ends_running, library, path_with_simulated, write_script, Outcome,
};

/// The Task Scheduler schema the simulator and these tests validate against.
fn schema() -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/task-scheduler-1.3.xsd");
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// A Windows user: a home, a Task Scheduler (the simulator's state) and a PATH whose
/// schtasks.exe is the simulator.
struct Windows {
    home: tempfile::TempDir,
    /// Task Scheduler's own state, outside the home like the real one.
    scheduler: tempfile::TempDir,
    flags: Vec<(&'static str, &'static str)>,
}

impl Windows {
    fn new(flags: &[(&'static str, &'static str)]) -> Self {
        Self {
            home: tempfile::tempdir().expect("temporary home"),
            scheduler: tempfile::tempdir().expect("scheduler state"),
            flags: flags.to_vec(),
        }
    }

    fn state(&self) -> PathBuf {
        self.scheduler.path().to_path_buf()
    }

    fn sygen_home(&self) -> PathBuf {
        self.home.path().join(".sygen")
    }

    fn environment(&self, command: &mut Command) {
        support::in_home(command, self.home.path())
            .env(
                "PATH",
                path_with_simulated(self.home.path(), "schtasks-sim", "schtasks.exe"),
            )
            .env("SCHTASKS_SIM_STATE", self.state())
            .env("SCHTASKS_SIM_XSD", schema())
            .env("USERNAME", "ada")
            .env("USERDOMAIN", "SIMULATED-PC")
            .envs(self.flags.iter().copied());
    }

    fn sygen_at(&self, program: &Path, args: &[&str]) -> Outcome {
        let mut command = Command::new(program);
        command
            .arg("--backend")
            .arg(library("sygen_tasksched"))
            .args(args);
        self.environment(&mut command);
        Outcome::from(command.output().expect("sygen runs"))
    }

    fn sygen(&self, args: &[&str]) -> Outcome {
        self.sygen_at(&artifacts().join("sygen"), args)
    }

    fn schtasks(&self, args: &[&str]) -> Outcome {
        let mut command = Command::new(artifacts().join("schtasks-sim"));
        command.args(args);
        self.environment(&mut command);
        Outcome::from(command.output().expect("schtasks-sim runs"))
    }

    /// The Last Result column of the task, read as the backend reads it.
    fn last_result(&self) -> Option<String> {
        let out = self.schtasks(&["/Query", "/TN", "sygen", "/FO", "CSV", "/V", "/NH"]);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(out.stdout.as_bytes());
        let record = reader.records().find_map(|r| r.ok())?;
        record.get(6).map(str::to_owned)
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.state().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Every task XML file schtasks was handed, in order.
    fn captured(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.state().join("captured"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files.into_iter().map(|f| fs::read(f).unwrap()).collect()
    }

    fn pid_file(&self, name: &str) -> Option<u32> {
        support::read_pid(&self.sygen_home().join(name))
    }
}

impl Drop for Windows {
    fn drop(&mut self) {
        let _ = self.schtasks(&["shutdown"]);
        let mut stop = Command::new(artifacts().join("sygen"));
        stop.arg("stop");
        self.environment(&mut stop);
        let _ = stop.output();
    }
}

/// Decodes UTF-16LE after checking the BOM; validates against the schema with xmllint.
fn check_task_file(bytes: &[u8]) -> String {
    assert_eq!(&bytes[..2], [0xFF, 0xFE], "UTF-16LE byte-order mark");
    let units: Vec<u16> = bytes[2..]
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let xml = String::from_utf16(&units).expect("UTF-16");
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-16\"?>"),
        "{xml}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("task.xml");
    fs::write(&file, bytes).unwrap();
    let lint = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema())
        .arg(&file)
        .output()
        .expect("xmllint (libxml2-utils) runs");
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    xml
}

fn element(xml: &str, name: &str) -> String {
    let escaped = xml
        .split(&format!("<{name}>"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("</{name}>")).next())
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"));
    quick_xml::escape::unescape(escaped).unwrap().into_owned()
}

/// Whether a schtasks call only reads.
fn is_query(call: &str) -> bool {
    call.starts_with("/Query ")
}

#[test]
fn install_registers_a_valid_task_and_runs_it() {
    let windows = Windows::new(&[]);
    let out = windows.sygen(&["service", "install"]);
    let stdout = out.succeeds();
    let sygenw = fs::canonicalize(artifacts().join("sygenw")).unwrap();
    assert!(
        stdout.contains(&format!(
            "created the task sygen (runs {} at logon)",
            sygenw.display()
        )),
        "{stdout}"
    );
    // /Run answers before the task starts; install waited for it.
    assert_eq!(windows.last_result().as_deref(), Some("267009"));
    assert!(stdout.contains("started the task sygen"), "{stdout}");

    let captured = windows.captured();
    assert_eq!(captured.len(), 1);
    let xml = check_task_file(&captured[0]);
    assert_eq!(element(&xml, "Command"), sygenw.to_str().unwrap());
    assert_eq!(
        element(&xml, "Arguments"),
        format!("run --supervise --home {}", windows.sygen_home().display())
    );
    assert_eq!(element(&xml, "UserId"), "SIMULATED-PC\\ada");
    // The priority an interactive program gets, not Task Scheduler's below-normal default.
    assert_eq!(element(&xml, "Priority"), "4");
    assert_eq!(
        element(&xml, "WorkingDirectory"),
        windows.sygen_home().to_str().unwrap()
    );
    assert!(
        !windows.sygen_home().join("sygen_task.xml").exists(),
        "the XML file is removed"
    );
    let xml_file = windows.sygen_home().join("sygen_task.xml");
    assert!(windows.calls().contains(&format!(
        "/Create /TN sygen /XML {} /F /HRESULT",
        xml_file.display()
    )));

    support::eventually(
        "the runtime's worker",
        std::time::Duration::from_secs(5),
        || windows.pid_file("worker.pid").is_some(),
    );
    let runtime = windows.pid_file("bot.pid").unwrap();
    let cmdline = fs::read_to_string(format!("/proc/{runtime}/cmdline")).unwrap();
    assert_eq!(
        cmdline,
        format!(
            "{}\0run\0--supervise\0--home\0{}\0",
            sygenw.display(),
            windows.sygen_home().display()
        )
    );

    let status = windows.sygen(&["service", "status"]);
    let (status, runtime) = support::status_and_runtime(status.succeeds());
    assert_eq!(
        status,
        "task sygen: Running, last result running (0x41301)\n"
    );
    assert!(
        runtime.starts_with("runtime: running: worker pid "),
        "{runtime}"
    );
}

#[test]
fn reinstall_deletes_the_old_task_first() {
    let windows = Windows::new(&[]);
    windows.sygen(&["service", "install"]).succeeds();
    let first = windows.pid_file("bot.pid").unwrap();
    let out = windows.sygen(&["service", "install"]);
    assert!(
        out.succeeds().contains("deleted the previous task sygen"),
        "{}",
        out.stdout
    );
    let calls = windows.calls();
    let second_create = calls
        .iter()
        .rposition(|c| c.starts_with("/Create"))
        .unwrap();
    let end = calls.iter().position(|c| c.starts_with("/End")).unwrap();
    let delete = calls
        .iter()
        .position(|c| c.starts_with("/Delete /TN sygen /F"))
        .unwrap();
    assert!(end < delete && delete < second_create, "{calls:?}");
    assert_eq!(windows.last_result().as_deref(), Some("267009"));
    support::eventually("the new runtime", std::time::Duration::from_secs(5), || {
        windows
            .pid_file("bot.pid")
            .is_some_and(|pid| pid != first && alive(pid))
    });
    assert!(!alive(first));
}

#[test]
fn an_install_dry_run_changes_nothing_and_prints_the_task_install_registers() {
    let windows = Windows::new(&[]);
    path_with_simulated(windows.home.path(), "schtasks-sim", "schtasks.exe");
    let before = support::tree(windows.home.path());
    let out = windows.sygen(&["service", "install", "--dry-run"]);
    let stdout = out.succeeds();
    support::assert_unchanged(windows.home.path(), &before);
    let calls = windows.calls();
    assert!(calls.iter().all(|c| is_query(c)), "{calls:?}");
    assert_eq!(windows.last_result(), None, "no task");

    let file = windows.sygen_home().join("sygen_task.xml");
    let header = format!("would write {} (utf-16le):", file.display());
    assert_eq!(
        support::dry_run_lines(stdout),
        [
            header.as_str(),
            &format!(
                "would run: schtasks.exe /Create /TN sygen /XML {} /F /HRESULT",
                file.display()
            ),
            &format!("would remove {}", file.display()),
            "would run: schtasks.exe /Run /TN sygen /HRESULT",
            "dry run: nothing was changed",
        ],
        "{stdout}"
    );
    let printed = support::printed_content(stdout, &header);

    windows.sygen(&["service", "install"]).succeeds();
    assert_eq!(check_task_file(&windows.captured()[0]), printed);
    // Task Scheduler keeps its own copy: with the task's path added, and CRLF.
    let registered = windows.schtasks(&["/Query", "/TN", "sygen", "/XML"]);
    assert_eq!(
        registered
            .succeeds()
            .replace("\r\n", "\n")
            .replace("    <URI>\\sygen</URI>\n", ""),
        printed
    );
}

/// What the Task Scheduler backend says the task sygen registers outlives, under `heading`.
fn outlives(heading: &str) -> String {
    format!(
        "{heading}\n\
         \x20 logout: sygen stops when SIMULATED-PC\\ada signs out: the task runs in \
         SIMULATED-PC\\ada's logon session (LogonType InteractiveToken)\n\
         \x20 reboot: sygen starts only when SIMULATED-PC\\ada logs on: the task's trigger is \
         the logon\n\
         \x20 battery or sleep: sygen runs on battery: the task neither waits for mains power to \
         start nor stops when the computer goes on battery\n"
    )
}

#[test]
fn install_and_doctor_say_the_task_ends_at_sign_out_and_ignores_batteries() {
    let windows = Windows::new(&[]);
    let dry = windows.sygen(&["service", "install", "--dry-run"]);
    assert!(
        dry.succeeds().ends_with(&format!(
            "{}dry run: nothing was changed\n",
            outlives("what sygen would outlive:")
        )),
        "{}",
        dry.stdout
    );
    let installed = windows.sygen(&["service", "install"]);
    let stdout = installed.succeeds();
    let (before_final, _) = stdout.rsplit_once("sygen service installed").unwrap();
    assert!(
        before_final.ends_with(&outlives("what sygen outlives:")),
        "{stdout}"
    );
    assert!(ends_running(
        stdout,
        "sygen service installed (tasksched backend, named with --backend)"
    ));
    let survival = || support::survival_in_doctor(&windows.sygen(&["doctor", "--json"]));
    let as_written = [
        ("logout".to_owned(), "no".to_owned(), None),
        ("reboot".to_owned(), "no".to_owned(), None),
        ("battery_or_sleep".to_owned(), "yes".to_owned(), None),
    ];
    assert_eq!(survival(), as_written);

    // Someone told Task Scheduler to keep the task off batteries: doctor reads the registered
    // task and says so; a dry run of install says what install would register again.
    let registered = windows.state().join("tasks/sygen/definition.xml");
    let definition = fs::read_to_string(&registered).unwrap();
    let changed = definition
        .replace(
            "<DisallowStartIfOnBatteries>false<",
            "<DisallowStartIfOnBatteries>true<",
        )
        .replace(
            "<StopIfGoingOnBatteries>false<",
            "<StopIfGoingOnBatteries>true<",
        );
    assert_ne!(changed, definition);
    fs::write(&registered, changed).unwrap();
    let doctor = windows.sygen(&["doctor"]);
    assert!(
        doctor.stdout.contains(
            "  battery or sleep: sygen stops when the computer goes on battery: the task says \
             StopIfGoingOnBatteries\n\
             \x20   fix: run `sygen service install` to register the task as sygen writes it"
        ),
        "{}",
        doctor.stdout
    );
    let (situation, runs, fix) = &survival()[2];
    assert_eq!(
        (situation.as_str(), runs.as_str()),
        ("battery_or_sleep", "no")
    );
    assert!(fix
        .as_deref()
        .unwrap()
        .starts_with("run `sygen service install`"));
    let dry = windows.sygen(&["service", "install", "--dry-run"]);
    assert!(
        dry.stdout.contains(&outlives("what sygen would outlive:")),
        "{}",
        dry.stdout
    );
}

#[test]
fn an_uninstall_dry_run_leaves_the_task_registered_and_running() {
    let windows = Windows::new(&[]);
    windows.sygen(&["service", "install"]).succeeds();
    let runtime = windows.pid_file("bot.pid").unwrap();
    let calls_before = windows.calls().len();

    let out = windows.sygen(&["service", "uninstall", "--dry-run"]);
    let stdout = out.succeeds();
    let lines = support::dry_run_lines(stdout);
    assert_eq!(
        lines[..2],
        [
            "would run: schtasks.exe /End /TN sygen /HRESULT",
            "would run: schtasks.exe /Delete /TN sygen /F /HRESULT",
        ],
        "{stdout}"
    );
    assert_eq!(lines.last(), Some(&"dry run: nothing was changed"));

    let calls = windows.calls();
    assert!(
        calls[calls_before..].iter().all(|c| is_query(c)),
        "{calls:?}"
    );
    assert_eq!(windows.last_result().as_deref(), Some("267009"));
    assert!(alive(runtime));
    assert_eq!(windows.pid_file("bot.pid"), Some(runtime));
}

#[test]
fn stop_ends_the_task_and_what_it_started_and_start_runs_it_again() {
    let windows = Windows::new(&[]);
    // A worker with a child of its own, as real agents have.
    fs::create_dir_all(windows.sygen_home()).unwrap();
    let worker = windows.sygen_home().join("worker.sh");
    write_script(
        &worker,
        "sleep 300 &
echo $! > child.pid
wait",
    );
    fs::write(
        windows.sygen_home().join("config.toml"),
        format!("[agent]\ncommand = [{:?}]\n", worker.to_str().unwrap()),
    )
    .unwrap();
    windows.sygen(&["service", "install"]).succeeds();
    let child_file = windows.sygen_home().join("child.pid");
    support::eventually(
        "the worker's child",
        std::time::Duration::from_secs(5),
        || support::read_pid(&child_file).is_some(),
    );
    let runtime = windows.pid_file("bot.pid").unwrap();
    let worker = windows.pid_file("worker.pid").unwrap();
    let child = support::read_pid(&child_file).unwrap();

    // /End terminates only the task's own process; the worker follows its runtime, and what
    // is left of the worker's tree is ended by the runtime's guard or, should the host look
    // first, by the host.
    let out = windows.sygen(&["service", "stop"]);
    assert_eq!(
        out.succeeds().lines().last(),
        Some("sygen service stopped"),
        "{}",
        out.stdout
    );
    let by_host = out.stdout.lines().any(|l| {
        l.starts_with("also ended what its worker left (pid") && l.contains(&child.to_string())
    });
    // The guard writes its line once what it signalled is gone, maybe after `stop` returned.
    let log = windows.sygen_home().join("logs/agent.log");
    let by_guard = || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.contains("[guard] the runtime is gone: ended") && l.contains(&child.to_string())
            })
    };
    if !by_host {
        support::eventually(
            "the guard's line",
            std::time::Duration::from_secs(5),
            by_guard,
        );
    }
    for pid in [runtime, worker, child] {
        assert!(!alive(pid), "{pid} survived the stop");
    }
    assert_eq!(windows.last_result().as_deref(), Some("267014"));
    let status = windows.sygen(&["service", "status"]);
    let (status, record) = support::status_and_runtime(status.succeeds());
    assert_eq!(
        status,
        "task sygen: Ready, last result ended by request (0x41306)\n"
    );
    // Task Scheduler's /End terminates the runtime, which has no chance to write its record.
    assert!(
        record.starts_with(&format!(
            "runtime: the runtime (pid {runtime}) ended without a word"
        )),
        "{record}"
    );

    let started = windows.sygen(&["service", "start"]);
    assert!(
        ends_running(started.succeeds(), "sygen service started"),
        "{}",
        started.stdout
    );
    assert_eq!(windows.last_result().as_deref(), Some("267009"));
}

#[test]
fn uninstall_leaves_no_task_no_file_and_no_process() {
    let windows = Windows::new(&[]);
    windows.sygen(&["service", "install"]).succeeds();
    support::eventually("the worker", std::time::Duration::from_secs(5), || {
        windows.pid_file("worker.pid").is_some()
    });
    let worker = windows.pid_file("worker.pid").unwrap();
    let out = windows.sygen(&["service", "uninstall"]);
    assert_eq!(
        out.succeeds(),
        format!(
            "deleted the task sygen; the logs in {} are kept\nsygen service uninstalled\n",
            windows.sygen_home().join("logs").display()
        )
    );
    let query = windows.schtasks(&["/Query", "/TN", "sygen", "/FO", "CSV", "/V", "/NH"]);
    assert_eq!(query.code, Some(1));
    assert_eq!(
        query.stderr,
        "ERROR: The system cannot find the file specified.\n"
    );
    assert!(!windows.sygen_home().join("sygen_task.xml").exists());
    assert!(!alive(worker));
    for command in ["status", "start", "stop", "uninstall"] {
        let out = windows.sygen(&["service", command]);
        let line = out.fails_with(3, "not installed");
        // `status` asks whether it is installed, the others find it is not.
        let why = if command == "status" {
            "sygen is not installed (tasksched backend)"
        } else {
            "tasksched backend 0.1.0: sygen is not installed: Task Scheduler has no task sygen"
        };
        assert_eq!(
            line,
            format!("error: {why} (hint: run `sygen service install`)"),
            "{command}"
        );
    }
}

#[test]
fn every_language_is_read_by_column_and_number() {
    for (lang, running, ready) in [
        ("en", "Running", "Ready"),
        ("de", "Wird ausgeführt", "Bereit"),
        ("fr", "En cours d'exécution", "Prêt"),
    ] {
        let windows = Windows::new(&[("SCHTASKS_SIM_LANG", lang)]);
        windows.sygen(&["service", "install"]).succeeds();
        let status = windows.sygen(&["service", "status"]);
        let (status, runtime) = support::status_and_runtime(status.succeeds());
        assert_eq!(
            status,
            format!("task sygen: {running}, last result running (0x41301)\n"),
            "{lang}"
        );
        assert!(runtime.starts_with("runtime: "), "{lang}: {runtime}");
        let json: serde_json::Value =
            serde_json::from_str(windows.sygen(&["service", "status", "--json"]).succeeds())
                .unwrap();
        assert_eq!(json["running"], true, "{lang}");
        assert_eq!(
            windows.sygen(&["service", "stop"]).succeeds(),
            "sygen service stopped\n",
            "{lang}"
        );
        let status = windows.sygen(&["service", "status"]);
        assert!(
            status
                .succeeds()
                .starts_with(&format!("task sygen: {ready},")),
            "{lang}"
        );
        let json: serde_json::Value =
            serde_json::from_str(windows.sygen(&["service", "status", "--json"]).succeeds())
                .unwrap();
        assert_eq!(json["running"], false, "{lang}");
    }
}

#[test]
fn access_denied_shows_the_admin_hint_in_every_language() {
    // Japanese is recognised by the exit code alone (/HRESULT: E_ACCESSDENIED).
    for lang in ["en", "de", "fr", "ja"] {
        let windows = Windows::new(&[
            ("SCHTASKS_SIM_LANG", lang),
            ("SCHTASKS_SIM_ACCESS_DENIED", "1"),
        ]);
        let out = windows.sygen(&["service", "install"]);
        let line = out.fails_with(1, "was refused: access is denied");
        assert!(
            line.contains("elevated terminal (Run as administrator)"),
            "{lang}: {line}"
        );
        assert!(
            !windows.sygen_home().join("sygen_task.xml").exists(),
            "{lang}: the XML file is removed when creation fails"
        );
    }
}

#[test]
fn a_reinstall_refused_at_deletion_stops_there_with_the_hint() {
    let mut windows = Windows::new(&[]);
    windows.sygen(&["service", "install"]).succeeds();
    windows.flags.push(("SCHTASKS_SIM_ACCESS_DENIED", "1"));
    let out = windows.sygen(&["service", "install"]);
    let line = out.fails_with(1, "`schtasks /End /TN sygen` was refused: access is denied");
    assert!(line.contains("elevated terminal"), "{line}");
    assert_eq!(windows.captured().len(), 1, "no second /Create");
    assert_eq!(
        windows.last_result().as_deref(),
        Some("267009"),
        "the old task still runs"
    );
}

#[test]
fn without_sygenw_the_task_runs_sygen_with_a_notice() {
    let windows = Windows::new(&[]);
    let apps = windows.home.path().join("apps");
    fs::create_dir_all(&apps).unwrap();
    support::copy_executable(&artifacts().join("sygen"), &apps.join("sygen"));
    let out = windows.sygen_at(&apps.join("sygen"), &["service", "install"]);
    out.succeeds();
    assert!(
        out.stderr.contains(&format!(
            "note: {} is missing, so the task runs {}, which opens a console window at logon",
            apps.join("sygenw").display(),
            apps.join("sygen").display()
        )),
        "{}",
        out.stderr
    );
    let xml = check_task_file(&windows.captured()[0]);
    assert_eq!(
        element(&xml, "Command"),
        apps.join("sygen").to_str().unwrap()
    );
}

#[test]
fn a_task_from_an_awkward_path_is_valid_and_runs() {
    let windows = Windows::new(&[]);
    let apps = windows.home.path().join("my & <apps> 'q' \"dq\" ü");
    fs::create_dir_all(&apps).unwrap();
    for binary in ["sygen", "sygenw"] {
        support::copy_executable(&artifacts().join(binary), &apps.join(binary));
    }
    windows
        .sygen_at(&apps.join("sygen"), &["service", "install"])
        .succeeds();
    let xml = check_task_file(&windows.captured()[0]);
    assert_eq!(
        element(&xml, "Command"),
        apps.join("sygenw").to_str().unwrap()
    );
    assert!(xml.contains("&amp; &lt;apps&gt;"), "{xml}");
    let runtime = windows.pid_file("bot.pid").unwrap();
    let cmdline = fs::read_to_string(format!("/proc/{runtime}/cmdline")).unwrap();
    assert!(
        cmdline.starts_with(&format!("{}\0", apps.join("sygenw").display())),
        "{cmdline:?}"
    );
}

#[test]
fn logs_show_the_agent_log() {
    let windows = Windows::new(&[]);
    fs::create_dir_all(windows.sygen_home()).unwrap();
    fs::write(
        windows.sygen_home().join("config.toml"),
        "[agent]\nheartbeat_interval = \"100ms\"\n",
    )
    .unwrap();
    windows.sygen(&["service", "install"]).succeeds();
    let log = windows.sygen_home().join("logs/agent.log");
    support::eventually("heartbeats", std::time::Duration::from_secs(5), || {
        fs::read_to_string(&log).is_ok_and(|l| l.contains("heartbeat 3"))
    });
    let out = windows.sygen(&["service", "logs", "-n", "2"]);
    assert_eq!(out.succeeds().lines().count(), 2);
    let beats: Vec<u64> = out
        .stdout
        .lines()
        .filter_map(|l| l.rsplit_once("[stdout] heartbeat ")?.1.parse().ok())
        .collect();
    assert!(
        beats.len() == 2 && beats[1] == beats[0] + 1,
        "the last two heartbeats: {}",
        out.stdout
    );
    assert_eq!(
        out.stderr,
        format!("-- logs of sygen from {} --\n", log.display())
    );
}

#[test]
fn the_task_scheduler_backend_passes_conformance() {
    let windows = Windows::new(&[]);
    support::passed_conformance("tasksched", &windows.sygen(&["service", "conformance"]));
}

#[test]
fn a_sygen_home_of_its_own_reaches_the_task_as_an_argument() {
    let windows = Windows::new(&[]);
    let home = windows.home.path().join("my \"sygen\" home\\ ü");
    let mut command = Command::new(artifacts().join("sygen"));
    command
        .arg("--backend")
        .arg(library("sygen_tasksched"))
        .args(["service", "install"]);
    windows.environment(&mut command);
    command.env("SYGEN_HOME", &home);
    Outcome::from(command.output().unwrap()).succeeds();
    let xml = check_task_file(&windows.captured()[0]);
    assert_eq!(
        element(&xml, "Arguments"),
        format!(
            "run --supervise --home \"{}/my \\\"sygen\\\" home\\ ü\"",
            windows.home.path().display()
        )
    );
    // The task's sygen, started with no environment of ours, uses that home.
    support::eventually(
        "the runtime in the given home",
        std::time::Duration::from_secs(5),
        || home.join("bot.pid").exists(),
    );
    assert!(!windows.sygen_home().join("bot.pid").exists());
}
