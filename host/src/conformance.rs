//! `sygen service conformance`: runs a backend through its nine functions and says, check by
//! check, whether it behaves as sygen expects of every backend.
//!
//! It works in a sandbox: a service named `sygen-conformance` (label `dev.sygen.conformance`),
//! so a real sygen service is never touched, with a temporary sygen home whose configuration
//! runs the harmless built-in agent. Backends still reach their real service manager, and
//! HOME stays what it is (a service manager reads its user's configuration there): run it with
//! a scratch HOME, as the tests do, for the "no files left" check to mean something.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use sygen_backend_api::{ErrorKind, ServiceSpec};

use crate::{
    console, description,
    exit::{Exit, Failure},
    loader::{self, Backend, Choice},
};

const NAME: &str = "sygen-conformance";
const LABEL: &str = "dev.sygen.conformance";
/// How long a service may take to reach the state asked for.
const SETTLE: Duration = Duration::from_secs(15);
/// Longer than any shipped backend's restart delay (systemd's RestartSec=5).
const NO_RESPAWN_WATCH: Duration = Duration::from_secs(7);
/// "Quickly", for `is_service_available`.
const AVAILABLE_WITHIN: Duration = Duration::from_secs(5);

/// One of the backend's operations that answer nothing but success or failure.
type ServiceCall = fn(&Backend, &ServiceSpec) -> Result<(), Failure>;

enum Outcome {
    Pass(String),
    Fail(String),
    Skipped,
}

struct Run<'a> {
    backend: &'a Backend,
    spec: ServiceSpec,
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

    /// Calls the backend quietly, noting a panic that crossed the boundary as an error.
    fn call<T>(
        &mut self,
        call: impl FnOnce(&Backend, &ServiceSpec) -> Result<T, Failure>,
    ) -> (Result<T, Failure>, String) {
        let (result, text) = console::capture(|| call(self.backend, &self.spec));
        if let Err(failure) = &result {
            if failure.backend_kind == Some(ErrorKind::PANICKED) {
                self.panics.push(failure.message.clone());
            }
        }
        (result, text)
    }

    fn installed(&mut self) -> Result<bool, String> {
        self.call(|b, s| b.is_service_installed(s))
            .0
            .map_err(|f| f.message)
    }

    fn running(&mut self) -> Result<bool, String> {
        self.call(|b, s| b.is_service_running(s))
            .0
            .map_err(|f| f.message)
    }

    /// Polls `is_service_running` until it answers `wanted`.
    fn wait_running(&mut self, wanted: bool) -> Result<Duration, String> {
        let started = Instant::now();
        while self.running()? != wanted {
            if started.elapsed() > SETTLE {
                return Err(format!(
                    "is_service_running still answered {} after {}s",
                    !wanted,
                    SETTLE.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(started.elapsed())
    }

    fn expect_ok<T>(
        &mut self,
        what: &str,
        call: impl FnOnce(&Backend, &ServiceSpec) -> Result<T, Failure>,
    ) -> Result<(T, String), String> {
        match self.call(call) {
            (Ok(value), text) => Ok((value, text)),
            (Err(failure), _) => Err(format!("{what} failed: {}", failure.message)),
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

fn info_is_sane(backend: &Backend) -> Result<String, String> {
    let name_ok = !backend.name.is_empty()
        && backend
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err(format!(
            "the name {:?} is not a short lowercase word",
            backend.name
        ));
    }
    semver::Version::parse(&backend.version)
        .map_err(|e| format!("the version {:?} is not semver: {e}", backend.version))?;
    if backend.platform.is_empty() || backend.description.is_empty() {
        return Err("the platform or the description is empty".into());
    }
    let api = semver::Version::parse(&backend.api_version).map_err(|e| {
        format!(
            "the interface version {:?} is not semver: {e}",
            backend.api_version
        )
    })?;
    if api.major != 1 {
        return Err(format!("built against interface {api}, not 1.x"));
    }
    Ok(format!(
        "{} {} for {}, interface {}",
        backend.name, backend.version, backend.platform, backend.api_version
    ))
}

pub fn run(backend_file: Option<&Path>) -> Result<()> {
    let home = description::sygen_home()?;
    let choice = backend_file.map_or(Choice::Default, Choice::Flag);
    let backend = loader::select(choice, &home)?;
    let sandbox = tempfile::Builder::new()
        .prefix("sygen-conformance-")
        .tempdir()
        .context("cannot create the sandbox")?;
    std::fs::write(
        sandbox.path().join("config.toml"),
        "# The harmless worker conformance runs: the built-in agent.\n\
         [agent]\nheartbeat_interval = \"1s\"\n",
    )
    .context("cannot write the sandbox configuration")?;
    let mut service = description::build()?;
    service.name = NAME.into();
    service.label = LABEL.into();
    service.description = "sygen conformance check".into();
    service.home = sandbox.path().to_path_buf();
    service.logs_dir = sandbox.path().join("logs");
    for (key, value) in &mut service.env {
        if key == "SYGEN_HOME" {
            *value = service.home.display().to_string();
        }
    }
    let user_home = dirs::home_dir().unwrap_or_default();

    let mut run = Run {
        backend: &backend,
        spec: service.to_spec(),
        rows: Vec::new(),
        stopped: false,
        panics: Vec::new(),
    };
    run.check("info() is sane", |r| info_is_sane(r.backend));
    run.check("is_service_available answers quickly", |r| {
        let started = Instant::now();
        let (answer, _) = r.call(|b, s| b.is_service_available(s));
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
            Err(failure) => {
                r.stopped = true;
                Err(failure.message)
            }
        }
    });
    run.check("not installed before install", |r| {
        if r.installed()? || r.running()? {
            r.stopped = true;
            return Err(format!("{NAME} is already installed; uninstall it first"));
        }
        Ok("not installed, not running".into())
    });
    run.check("calls on a missing service answer \"not installed\"", |r| {
        let calls: [(&str, ServiceCall); 4] = [
            ("start", Backend::start_service),
            ("stop", Backend::stop_service),
            ("uninstall", Backend::uninstall_service),
            ("status", Backend::print_service_status),
        ];
        for (name, call) in calls {
            match r.call(call).0 {
                Err(failure) if failure.exit == Exit::NotInstalled => {}
                Err(failure) => return Err(format!("{name}: {}", failure.message)),
                Ok(()) => return Err(format!("{name} succeeded")),
            }
        }
        Ok("start, stop, uninstall, status".into())
    });
    let files_before = files_under(&user_home, sandbox.path());
    run.check("install → installed and running", |r| {
        r.expect_ok("install", Backend::install_service)?;
        if !r.installed()? {
            r.stopped = true;
            return Err("is_service_installed says no after install".into());
        }
        let took = r.wait_running(true)?;
        Ok(format!("running after {} ms", took.as_millis()))
    });
    run.check("re-install is idempotent", |r| {
        r.expect_ok("the second install", Backend::install_service)?;
        if !r.installed()? {
            return Err("not installed after the second install".into());
        }
        r.wait_running(true)?;
        Ok("still installed and running".into())
    });
    run.check("stop → not running, not respawned", |r| {
        r.expect_ok("stop", Backend::stop_service)?;
        r.wait_running(false)?;
        thread::sleep(NO_RESPAWN_WATCH);
        if r.running()? {
            return Err(format!(
                "running again {}s after stop",
                NO_RESPAWN_WATCH.as_secs()
            ));
        }
        Ok(format!(
            "still stopped {}s later",
            NO_RESPAWN_WATCH.as_secs()
        ))
    });
    run.check("start → running", |r| {
        r.expect_ok("start", Backend::start_service)?;
        let took = r.wait_running(true)?;
        Ok(format!("running after {} ms", took.as_millis()))
    });
    run.check("status prints through the console", |r| {
        let ((), text) = r.expect_ok("status", Backend::print_service_status)?;
        match text.lines().find(|l| !l.trim().is_empty()) {
            Some(first) => Ok(first.chars().take(60).collect()),
            None => Err("printed nothing".into()),
        }
    });
    run.check("logs print through the console", |r| {
        let agent_log = r.backend_logs_dir().join("agent.log");
        let deadline = Instant::now() + SETTLE;
        while !std::fs::read_to_string(&agent_log).is_ok_and(|l| l.contains("heartbeat")) {
            if Instant::now() > deadline {
                return Err(format!(
                    "the agent wrote no heartbeat to {}",
                    agent_log.display()
                ));
            }
            thread::sleep(Duration::from_millis(200));
        }
        let ((), text) = r.expect_ok("logs", |b, s| b.print_service_logs(s, false, 20))?;
        if text.trim().is_empty() {
            return Err("printed nothing".into());
        }
        Ok(format!("{} lines", text.lines().count()))
    });
    run.check("uninstall → not installed, no files left", |r| {
        r.expect_ok("uninstall", Backend::uninstall_service)?;
        if r.installed()? {
            return Err("is_service_installed still says yes".into());
        }
        r.wait_running(false)?;
        let left: Vec<PathBuf> = files_under(&user_home, sandbox.path())
            .difference(&files_before)
            .cloned()
            .collect();
        if !left.is_empty() {
            return Err(format!("left behind: {left:?}"));
        }
        Ok("nothing left".into())
    });
    run.stopped = false;
    run.check("no panic crossed the boundary", |r| {
        match r.panics.first() {
            None => Ok("none".into()),
            Some(first) => Err(format!("{} panics, first: {first}", r.panics.len())),
        }
    });
    if run.installed().unwrap_or(false) {
        let _ = run.call(Backend::uninstall_service);
    }
    report(&backend, &run.rows)
}

impl Run<'_> {
    fn backend_logs_dir(&self) -> PathBuf {
        PathBuf::from(self.spec.logs_dir.as_str())
    }
}

fn report(backend: &Backend, rows: &[(&'static str, Outcome)]) -> Result<()> {
    println!(
        "conformance of the {} backend {} ({})",
        backend.name,
        backend.version,
        backend.path.display()
    );
    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    let mut passed = 0;
    for (name, outcome) in rows {
        let (mark, detail) = match outcome {
            Outcome::Pass(detail) => {
                passed += 1;
                ("pass", detail.as_str())
            }
            Outcome::Fail(why) => ("FAIL", why.as_str()),
            Outcome::Skipped => ("skip", "not run: an earlier check failed"),
        };
        println!("  {name:width$}  {mark}  {detail}");
    }
    println!("{passed} of {} checks passed", rows.len());
    if passed == rows.len() {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Failed,
            format!(
                "the {} backend failed {} of {} conformance checks",
                backend.name,
                rows.len() - passed,
                rows.len()
            ),
        )
        .into())
    }
}
