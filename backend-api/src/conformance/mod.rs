//! The conformance suite: runs a backend through its nine operations and says, check by check,
//! whether it behaves as sygen expects of every backend.
//!
//! `sygen service conformance` runs it on the backend sygen has loaded; a backend's own
//! `cargo test` runs it on the library cargo just built, through [`Conformance`]. Both print
//! the same table because both run [`run`]: only how a call reaches the backend differs
//! (the [`Subject`]).
//!
//! It works in a sandbox: a service named `sygen-conformance` (label `dev.sygen.conformance`),
//! so a real sygen service is never touched, with a temporary sygen home. Backends still reach
//! their real service manager, and the user's home is the description's `HOME` (a service
//! manager reads its user's configuration there): make it a scratch one for the "no files
//! left" check to mean something.

mod library;

use std::{
    collections::BTreeSet,
    fmt,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

pub use library::Conformance;

use crate::{BackendError, BackendInfo, ErrorKind, ServiceDescription, ServiceSpec};

/// The sandboxed service's name and launchd label.
pub const NAME: &str = "sygen-conformance";
pub const LABEL: &str = "dev.sygen.conformance";
/// How long the suite waits for the service.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// How long a service may take to reach the state asked for.
    settle: Duration,
    /// How long a stopped service is watched for a restart: longer than any shipped backend's
    /// restart delay (systemd's RestartSec=5).
    respawn_watch: Duration,
}

const TIMING: Timing = Timing {
    settle: Duration::from_secs(15),
    respawn_watch: Duration::from_secs(7),
};
/// "Quickly", for `is_service_available`.
const AVAILABLE_WITHIN: Duration = Duration::from_secs(5);

/// An operation that answers yes or no.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Question {
    Available,
    Installed,
    Running,
}

/// An operation that answers nothing but success or failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Install,
    Start,
    Stop,
    Uninstall,
    Status,
    /// `print_service_logs` of the last `lines` lines, not following.
    Logs {
        lines: u32,
    },
}

/// The backend under test, as the suite reaches it. Each call answers the backend's result
/// and everything it printed through the console.
pub trait Subject {
    /// What the backend says it is.
    fn info(&self) -> BackendInfo;
    /// The library it was loaded from.
    fn path(&self) -> &Path;
    fn ask(&self, question: Question, spec: &ServiceSpec) -> (Result<bool, BackendError>, String);
    fn act(&self, action: Action, spec: &ServiceSpec) -> (Result<(), BackendError>, String);
}

/// A new sandbox: a temporary directory for the sygen home, whose path holds a space, quotes
/// and a `$`, as a user's may, so that a backend that does not quote what it writes fails.
pub fn sandbox() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("sygen-conformance \"sandbox\" 'of' $HOME-")
        .tempdir()
}

/// `service` moved into the sandbox whose sygen home is `home`: another name and label, the
/// home and logs there, and `SYGEN_HOME` saying so.
pub fn sandboxed(mut service: ServiceDescription, home: &Path) -> ServiceDescription {
    service.name = NAME.into();
    service.label = LABEL.into();
    service.description = "sygen conformance check".into();
    service.home = home.to_path_buf();
    service.logs_dir = home.join("logs");
    for (key, value) in &mut service.env {
        if key == "SYGEN_HOME" {
            *value = home.display().to_string();
        }
    }
    service
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail(String),
    /// Not run: an earlier check left nothing to build on.
    Skipped,
}

/// What [`run`] found: one row per check, printed as a table by `Display`.
#[derive(Clone, Debug)]
pub struct Report {
    /// The backend as the table's heading names it: name, version, library.
    pub backend: String,
    pub rows: Vec<(&'static str, Outcome)>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.rows
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Outcome::Pass(_)))
            .count()
    }

    pub fn all_passed(&self) -> bool {
        self.passed() == self.rows.len()
    }

    /// Panics with the table unless every check passed: for a backend's own tests.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.all_passed(), "\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of the {}", self.backend)?;
        let width = self
            .rows
            .iter()
            .map(|(name, _)| name.chars().count())
            .max()
            .unwrap_or(0);
        for (name, outcome) in &self.rows {
            let (mark, detail) = match outcome {
                Outcome::Pass(detail) => ("pass", detail.as_str()),
                Outcome::Fail(why) => ("FAIL", why.as_str()),
                Outcome::Skipped => ("skip", "not run: an earlier check failed"),
            };
            writeln!(f, "  {name:width$}  {mark}  {detail}")?;
        }
        writeln!(f, "{} of {} checks passed", self.passed(), self.rows.len())
    }
}

struct Run<'a> {
    subject: &'a dyn Subject,
    spec: ServiceSpec,
    timing: Timing,
    rows: Vec<(&'static str, Outcome)>,
    /// Set once a check leaves the service in a state the later ones cannot build on.
    stopped: bool,
    panics: Vec<String>,
}

impl Run<'_> {
    fn check(
        &mut self,
        name: &'static str,
        check: impl FnOnce(&mut Self) -> Result<String, String>,
    ) {
        if self.stopped {
            self.rows.push((name, Outcome::Skipped));
            return;
        }
        let outcome = match check(self) {
            Ok(detail) => Outcome::Pass(detail),
            Err(why) => Outcome::Fail(why),
        };
        self.rows.push((name, outcome));
    }

    /// Notes a panic that crossed the boundary as an error.
    fn noted<T>(
        &mut self,
        (result, text): (Result<T, BackendError>, String),
    ) -> (Result<T, BackendError>, String) {
        if let Err(error) = &result {
            if error.kind == ErrorKind::PANICKED {
                self.panics.push(error.message.to_string());
            }
        }
        (result, text)
    }

    fn ask(&mut self, question: Question) -> (Result<bool, BackendError>, String) {
        let answer = self.subject.ask(question, &self.spec);
        self.noted(answer)
    }

    fn act(&mut self, action: Action) -> (Result<(), BackendError>, String) {
        let answer = self.subject.act(action, &self.spec);
        self.noted(answer)
    }

    fn yes(&mut self, question: Question) -> Result<bool, String> {
        self.ask(question).0.map_err(|e| e.message.into())
    }

    /// Asks `is_service_running` until it answers `wanted`; the failure says what the answer
    /// must mean, which is where backends for supervisors that report state as text go wrong.
    fn wait_running(&mut self, wanted: bool) -> Result<Duration, String> {
        let started = Instant::now();
        while self.yes(Question::Running)? != wanted {
            if started.elapsed() > self.timing.settle {
                let settle = self.timing.settle.as_secs();
                let meaning = if wanted {
                    format!(
                        "true once the service manager reports the process up; with a \
                         supervisor that has no failed state, up longer than a short uptime \
                         threshold, well under {settle}s"
                    )
                } else {
                    "false while the process is down or waiting to be started again: starting, \
                     back-off and restart delays count as not running"
                        .to_owned()
                };
                return Err(format!(
                    "is_service_running still answered {} after {settle}s (it must answer \
                     {meaning})",
                    !wanted,
                ));
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(started.elapsed())
    }

    /// Uninstalls the service if a failed check left it installed.
    fn clean_up(&mut self) {
        if self.yes(Question::Installed).unwrap_or(false) {
            let _ = self.act(Action::Uninstall);
        }
    }

    /// Runs `action`, answering what it printed, or why it failed.
    fn expect_ok(&mut self, what: &str, action: Action) -> Result<String, String> {
        match self.act(action) {
            (Ok(()), text) => Ok(text),
            (Err(error), _) => Err(format!("{what} failed: {}", error.message)),
        }
    }
}

/// The files (not directories) under `root`, skipping `skip`.
fn files_under(root: &Path, skip: &Path) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.starts_with(skip) {
                continue;
            }
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(path),
                Ok(_) => {
                    files.insert(path);
                }
                Err(_) => {}
            }
        }
    }
    files
}

fn info_is_sane(info: &BackendInfo) -> Result<String, String> {
    let name = info.name.as_str();
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err(format!("the name {name:?} is not a short lowercase word"));
    }
    semver::Version::parse(&info.version)
        .map_err(|e| format!("the version {:?} is not semver: {e}", info.version))?;
    if info.platform.is_empty() || info.description.is_empty() {
        return Err("the platform or the description is empty".into());
    }
    let api = semver::Version::parse(&info.api_version).map_err(|e| {
        format!(
            "the interface version {:?} is not semver: {e}",
            info.api_version
        )
    })?;
    if api.major != 1 {
        return Err(format!("built against interface {api}, not 1.x"));
    }
    Ok(format!(
        "{} {} for {}, interface {}",
        info.name, info.version, info.platform, info.api_version
    ))
}

/// Runs every check on `subject` with `service` (see [`sandboxed`]), whose `HOME` is the
/// user's home watched for files left behind, and uninstalls whatever it installed.
pub fn run(subject: &dyn Subject, service: &ServiceDescription) -> Report {
    let info = subject.info();
    let mut run = Run {
        subject,
        spec: service.to_spec(),
        timing: TIMING,
        rows: Vec::new(),
        stopped: false,
        panics: Vec::new(),
    };
    run.check("info() is sane", |_| info_is_sane(&info));
    run.check("is_service_available answers quickly", available_quickly);
    run.check("not installed before install", not_installed_yet);
    run.check(
        "calls on a missing service answer \"not installed\"",
        missing_service_calls,
    );
    let user_home = UserHome::before_install(service);
    run.check("install → installed and running", install);
    run.check("re-install is idempotent", reinstall);
    run.check("stop → not running, not respawned", stop);
    run.check("start → running", start);
    run.check("status prints through the console", status);
    run.check("logs print through the console", |r| {
        logs(r, &service.logs_dir)
    });
    run.check("uninstall → not installed, no files left", |r| {
        uninstall(r, &user_home)
    });
    // Asked whatever stopped the checks before it.
    run.stopped = false;
    run.check("no panic crossed the boundary", no_panic);
    run.clean_up();
    Report {
        backend: format!(
            "{} backend {} ({})",
            info.name,
            info.version,
            subject.path().display()
        ),
        rows: run.rows,
    }
}

fn available_quickly(r: &mut Run) -> Result<String, String> {
    let started = Instant::now();
    let (answer, _) = r.ask(Question::Available);
    let took = started.elapsed();
    match answer {
        Ok(true) if took <= AVAILABLE_WITHIN => Ok(format!("yes, in {} ms", took.as_millis())),
        Ok(true) => Err(format!("yes, but only after {} ms", took.as_millis())),
        Ok(false) => {
            r.stopped = true;
            Err(
                "no: its service manager is not available here, so nothing else can be checked"
                    .into(),
            )
        }
        Err(error) => {
            r.stopped = true;
            Err(error.message.into())
        }
    }
}

fn not_installed_yet(r: &mut Run) -> Result<String, String> {
    if r.yes(Question::Installed)? || r.yes(Question::Running)? {
        r.stopped = true;
        return Err(format!("{NAME} is already installed; uninstall it first"));
    }
    Ok("not installed, not running".into())
}

fn missing_service_calls(r: &mut Run) -> Result<String, String> {
    let calls = [
        ("start", Action::Start),
        ("stop", Action::Stop),
        ("uninstall", Action::Uninstall),
        ("status", Action::Status),
    ];
    for (name, action) in calls {
        match r.act(action).0 {
            Err(error) if error.kind == ErrorKind::NOT_INSTALLED => {}
            Err(error) => return Err(format!("{name}: {}", error.message)),
            Ok(()) => return Err(format!("{name} succeeded")),
        }
    }
    Ok("start, stop, uninstall, status".into())
}

fn install(r: &mut Run) -> Result<String, String> {
    r.expect_ok("install", Action::Install)?;
    if !r.yes(Question::Installed)? {
        r.stopped = true;
        return Err("is_service_installed says no after install".into());
    }
    let took = r.wait_running(true)?;
    Ok(format!("running after {} ms", took.as_millis()))
}

fn reinstall(r: &mut Run) -> Result<String, String> {
    r.expect_ok("the second install", Action::Install)?;
    if !r.yes(Question::Installed)? {
        return Err("not installed after the second install".into());
    }
    r.wait_running(true)?;
    Ok("still installed and running".into())
}

fn stop(r: &mut Run) -> Result<String, String> {
    r.expect_ok("stop", Action::Stop)?;
    r.wait_running(false)?;
    let watch = r.timing.respawn_watch.as_secs();
    thread::sleep(r.timing.respawn_watch);
    if r.yes(Question::Running)? {
        return Err(format!(
            "running again {watch}s after stop (a stopped service stays down until the next \
             start: a supervisor that restarts whatever exits must be told it is down, not \
             just have its process ended)"
        ));
    }
    Ok(format!("still stopped {watch}s later"))
}

fn start(r: &mut Run) -> Result<String, String> {
    r.expect_ok("start", Action::Start)?;
    let took = r.wait_running(true)?;
    Ok(format!("running after {} ms", took.as_millis()))
}

fn status(r: &mut Run) -> Result<String, String> {
    let text = r.expect_ok("status", Action::Status)?;
    match text.lines().find(|l| !l.trim().is_empty()) {
        Some(first) => Ok(first.chars().take(60).collect()),
        None => Err("printed nothing".into()),
    }
}

/// Waits for the service's first heartbeat in its log, then asks for the logs.
fn logs(r: &mut Run, logs_dir: &Path) -> Result<String, String> {
    let agent_log = logs_dir.join("agent.log");
    let deadline = Instant::now() + r.timing.settle;
    while !std::fs::read_to_string(&agent_log).is_ok_and(|l| l.contains("heartbeat")) {
        if Instant::now() > deadline {
            return Err(format!(
                "the service wrote no heartbeat to {} (was it given its environment?)",
                agent_log.display()
            ));
        }
        thread::sleep(Duration::from_millis(200));
    }
    let text = r.expect_ok("logs", Action::Logs { lines: 20 })?;
    if text.trim().is_empty() {
        return Err("printed nothing".into());
    }
    Ok(format!("{} lines", text.lines().count()))
}

fn uninstall(r: &mut Run, user_home: &UserHome) -> Result<String, String> {
    r.expect_ok("uninstall", Action::Uninstall)?;
    if r.yes(Question::Installed)? {
        return Err("is_service_installed still says yes".into());
    }
    r.wait_running(false)?;
    let left = user_home.new_files();
    if !left.is_empty() {
        return Err(format!("left behind: {left:?}"));
    }
    Ok("nothing left".into())
}

fn no_panic(r: &mut Run) -> Result<String, String> {
    match r.panics.first() {
        None => Ok("none".into()),
        Some(first) => Err(format!("{} panics, first: {first}", r.panics.len())),
    }
}

/// The user's home (the description's `HOME`) as it was before install, to find what the
/// backend left in it; the sandbox, where sygen itself writes, is not looked at.
struct UserHome {
    home: Option<PathBuf>,
    sandbox: PathBuf,
    files_before: BTreeSet<PathBuf>,
}

impl UserHome {
    fn before_install(service: &ServiceDescription) -> Self {
        let unwatched = Self {
            home: service.env_var("HOME").map(PathBuf::from),
            sandbox: service.home.clone(),
            files_before: BTreeSet::new(),
        };
        Self {
            files_before: unwatched.files(),
            ..unwatched
        }
    }

    fn files(&self) -> BTreeSet<PathBuf> {
        self.home
            .as_deref()
            .map(|home| files_under(home, &self.sandbox))
            .unwrap_or_default()
    }

    /// The files in the home now that were not there before install.
    fn new_files(&self) -> Vec<PathBuf> {
        self.files()
            .difference(&self.files_before)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A backend whose service runs as `running` says for the n-th question whether it runs,
    /// whatever it is asked to do.
    struct Scripted {
        running: fn(usize) -> bool,
        asked: AtomicUsize,
    }

    impl Scripted {
        fn new(running: fn(usize) -> bool) -> Self {
            Self {
                running,
                asked: AtomicUsize::new(0),
            }
        }
    }

    impl Subject for Scripted {
        fn info(&self) -> BackendInfo {
            BackendInfo {
                name: "scripted".into(),
                version: "0.1.0".into(),
                platform: "linux".into(),
                description: "runs as its script says".into(),
                api_version: "1.2.0".into(),
            }
        }
        fn path(&self) -> &Path {
            Path::new("libsygen_scripted.so")
        }
        fn ask(&self, question: Question, _: &ServiceSpec) -> (Result<bool, BackendError>, String) {
            let running = question == Question::Running
                && (self.running)(self.asked.fetch_add(1, Ordering::SeqCst));
            (Ok(running), String::new())
        }
        fn act(&self, _: Action, _: &ServiceSpec) -> (Result<(), BackendError>, String) {
            (Ok(()), String::new())
        }
    }

    fn run_on(subject: &Scripted) -> Run<'_> {
        Run {
            subject,
            spec: ServiceDescription::for_test(Path::new("/h")).to_spec(),
            timing: Timing {
                settle: Duration::from_millis(300),
                respawn_watch: Duration::from_millis(50),
            },
            rows: Vec::new(),
            stopped: false,
            panics: Vec::new(),
        }
    }

    #[test]
    fn a_service_never_running_is_told_what_running_means_on_a_supervisor() {
        let never = Scripted::new(|_| false);
        let why = run_on(&never).wait_running(true).unwrap_err();
        assert!(
            why.starts_with(
                "is_service_running still answered false after 0s (it must answer true once \
                 the service manager reports the process up; with a supervisor that has no \
                 failed state, up longer than a short uptime threshold"
            ),
            "{why}"
        );
    }

    #[test]
    fn a_service_always_running_is_told_that_back_off_is_not_running() {
        let always = Scripted::new(|_| true);
        let why = run_on(&always).wait_running(false).unwrap_err();
        assert!(
            why.ends_with(
                "(it must answer false while the process is down or waiting to be started \
                 again: starting, back-off and restart delays count as not running)"
            ),
            "{why}"
        );
    }

    #[test]
    fn a_service_restarted_after_stop_is_told_to_tell_the_supervisor() {
        // Down when stopped, up again when asked after the watch.
        let respawned = Scripted::new(|asked| asked > 0);
        let why = stop(&mut run_on(&respawned)).unwrap_err();
        assert!(
            why.starts_with("running again 0s after stop (a stopped service stays down")
                && why.contains("must be told it is down"),
            "{why}"
        );
        let stays_down = Scripted::new(|_| false);
        assert_eq!(
            stop(&mut run_on(&stays_down)),
            Ok("still stopped 0s later".into())
        );
    }
}
