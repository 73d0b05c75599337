//! The suite in a backend's own `cargo test`: loads the library cargo built, in the test's
//! process, and runs [`super::run`] on it with a harmless worker as the service.
//!
//! ```no_run
//! use sygen_backend_api::conformance::Conformance;
//!
//! #[test]
//! fn behaves_as_sygen_expects() -> Result<(), String> {
//!     Conformance::of_library("sygen_example").run()?.assert_passed();
//!     Ok(())
//! }
//! ```

use std::{
    path::{Path, PathBuf},
    sync::mpsc,
    thread,
    time::Duration,
};

use abi_stable::{library::lib_header_from_path, sabi_trait::TD_Opaque};

use super::{Action, Question, Report, Subject};
use crate::{
    abi::{self, ConsoleSink_TO},
    sdk::Captured,
    BackendError, BackendInfo, BackendModuleRef, ErrorKind, ServiceDescription, ServiceExtra,
    ServiceSpec, UNIX_SYSTEM_DIRS,
};

/// How long one call may take before the check fails (sygen's own limit for changes).
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// A conformance run on a backend library, configured as a test needs.
pub struct Conformance {
    library: Result<PathBuf, String>,
    settings: serde_json::Map<String, serde_json::Value>,
    worker: Option<(PathBuf, Vec<String>)>,
    user_home: Option<PathBuf>,
}

impl Conformance {
    /// The library `lib_name` (the `[lib] name` of `Cargo.toml`) that `cargo test` built next
    /// to this test. Cargo builds it there when the library's `crate-type` lists `"rlib"`
    /// beside `"cdylib"`, as the template's does.
    pub fn of_library(lib_name: &str) -> Self {
        let file = format!(
            "{}{lib_name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        let library = std::env::current_exe()
            .map_err(|e| format!("cannot tell where this test runs from: {e}"))
            .and_then(|exe| {
                let beside = exe.with_file_name(&file);
                if beside.is_file() {
                    Ok(beside)
                } else {
                    Err(format!(
                        "{} does not exist (hint: give the library `crate-type = [\"cdylib\", \
                         \"rlib\"]` so that `cargo test` builds it next to the tests)",
                        beside.display()
                    ))
                }
            });
        Self::with(library)
    }

    /// The backend library at `path`.
    pub fn of_file(path: impl Into<PathBuf>) -> Self {
        Self::with(Ok(path.into()))
    }

    fn with(library: Result<PathBuf, String>) -> Self {
        Self {
            library,
            settings: serde_json::Map::new(),
            worker: None,
            user_home: None,
        }
    }

    /// The backend's settings, as a `[backends.<name>]` table of config.toml would give them.
    pub fn settings(mut self, settings: serde_json::Map<String, serde_json::Value>) -> Self {
        self.settings = settings;
        self
    }

    /// The program the service runs, instead of the default shell loop. It must append a line
    /// with the word `heartbeat` to `$SYGEN_HOME/logs/agent.log` every second or so, as
    /// `sygen run` does. Give one on platforms without `/bin/sh`.
    pub fn worker(mut self, program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        self.worker = Some((program.into(), args));
        self
    }

    /// The user's home the service manager works in, watched for files left behind; by
    /// default `$HOME` (`%USERPROFILE%` on Windows).
    pub fn user_home(mut self, home: impl Into<PathBuf>) -> Self {
        self.user_home = Some(home.into());
        self
    }

    /// Loads the library and runs every check. `Err` says why nothing could be checked.
    pub fn run(self) -> Result<Report, String> {
        let path = self.library?;
        let module = lib_header_from_path(&path)
            .and_then(|header| header.init_root_module::<BackendModuleRef>())
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        let user_home = match self.user_home {
            Some(home) => home,
            None => std::env::var_os(if cfg!(windows) { "USERPROFILE" } else { "HOME" })
                .map(PathBuf::from)
                .ok_or("no home directory: set HOME, or give one with `user_home`")?,
        };
        let (program, args) = match self.worker {
            Some(worker) => worker,
            None => default_worker()?,
        };
        let sandbox = super::sandbox().map_err(|e| format!("cannot create the sandbox: {e}"))?;
        let home = sandbox.path();
        std::fs::create_dir_all(home.join("logs"))
            .map_err(|e| format!("cannot create the sandbox's logs: {e}"))?;
        let text = |path: &Path| {
            path.to_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{} is not UTF-8", path.display()))
        };
        let path_var = std::env::var("PATH").unwrap_or_else(|_| UNIX_SYSTEM_DIRS.join(":"));
        let service = ServiceDescription {
            name: String::new(),
            label: String::new(),
            description: String::new(),
            program,
            args,
            env: vec![
                ("PATH".into(), path_var),
                ("HOME".into(), text(&user_home)?),
                ("SYGEN_HOME".into(), text(home)?),
            ],
            home: home.to_path_buf(),
            logs_dir: home.join("logs"),
        };
        let subject = Loaded {
            module,
            path,
            extra: ServiceExtra {
                settings: self.settings,
                config_file: None,
            }
            .to_json(),
        };
        Ok(super::run(&subject, &super::sandboxed(service, home)))
    }
}

/// A shell loop that writes what `sygen run` writes for the logs check.
#[cfg(unix)]
fn default_worker() -> Result<(PathBuf, Vec<String>), String> {
    let script =
        "while :; do echo \"heartbeat $(date)\" >> \"$SYGEN_HOME/logs/agent.log\"; sleep 1; done";
    Ok(("/bin/sh".into(), vec!["-c".into(), script.into()]))
}

#[cfg(not(unix))]
fn default_worker() -> Result<(PathBuf, Vec<String>), String> {
    Err("there is no default worker on this platform: give one with `worker`".into())
}

/// A backend loaded into this process, called directly, each call on a thread of its own so
/// that one that never answers fails its check instead of the whole test run.
struct Loaded {
    module: BackendModuleRef,
    path: PathBuf,
    /// The description's `extra`: the settings.
    extra: String,
}

type Operation<T> = extern "C" fn(&ServiceSpec, abi::Console) -> abi::BackendResult<T>;

impl Loaded {
    fn call<T: Send + 'static>(
        &self,
        name: &str,
        spec: &ServiceSpec,
        operation: impl FnOnce(&ServiceSpec, abi::Console) -> abi::BackendResult<T> + Send + 'static,
    ) -> (Result<T, BackendError>, String) {
        let captured = Captured::default();
        let console = ConsoleSink_TO::from_value(captured.clone(), TD_Opaque);
        let mut spec = spec.clone();
        spec.extra = self.extra.as_str().into();
        let (answer, answered) = mpsc::channel();
        thread::spawn(move || {
            let _ = answer.send(operation(&spec, console).into_result());
        });
        let result = answered.recv_timeout(CALL_LIMIT).unwrap_or_else(|_| {
            Err(BackendError {
                kind: ErrorKind::FAILED,
                message: format!("{name} did not answer within {} s", CALL_LIMIT.as_secs()).into(),
                hint: abi_stable::std_types::RNone,
            })
        });
        (result, captured.out() + &captured.err())
    }

    fn operation<T: Send + 'static>(
        &self,
        name: &str,
        spec: &ServiceSpec,
        operation: Operation<T>,
    ) -> (Result<T, BackendError>, String) {
        self.call(name, spec, move |spec, console| operation(spec, console))
    }
}

impl Subject for Loaded {
    fn info(&self) -> BackendInfo {
        (self.module.info())()
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn ask(&self, question: Question, spec: &ServiceSpec) -> (Result<bool, BackendError>, String) {
        let m = self.module;
        match question {
            Question::Available => {
                self.operation("is_service_available", spec, m.is_service_available())
            }
            Question::Installed => {
                self.operation("is_service_installed", spec, m.is_service_installed())
            }
            Question::Running => self.operation("is_service_running", spec, m.is_service_running()),
        }
    }

    fn act(&self, action: Action, spec: &ServiceSpec) -> (Result<(), BackendError>, String) {
        let m = self.module;
        match action {
            Action::Install => self.operation("install_service", spec, m.install_service()),
            Action::Start => self.operation("start_service", spec, m.start_service()),
            Action::Stop => self.operation("stop_service", spec, m.stop_service()),
            Action::Uninstall => self.operation("uninstall_service", spec, m.uninstall_service()),
            Action::Status => {
                self.operation("print_service_status", spec, m.print_service_status())
            }
            Action::Logs { lines } => {
                let logs = m.print_service_logs();
                self.call("print_service_logs", spec, move |spec, console| {
                    logs(spec, false, lines, console)
                })
            }
        }
    }
}
