//! The backend-author kit: implement [`Backend`] in safe Rust, call [`export_backend!`](crate::export_backend), and
//! the kit generates the frozen root module around it.
//!
//! Every exported function runs the backend inside `catch_unwind`, so a panicking backend
//! returns a [`PANICKED`](crate::ErrorKind::PANICKED) error to the host instead of aborting it,
//! and inside a tracing dispatcher that forwards the backend's events to the host (a backend
//! library has its own copy of `tracing`, so the host's subscriber cannot see them otherwise).
//!
//! The helpers every backend needs live here once: [`Changes`] makes (or, in a dry run,
//! records) every change, [`command`] runs the platform tool, [`doctor`] compares definitions,
//! [`fs`] writes files atomically, tails logs and finds the user's configuration directory,
//! [`logs`] shows sygen's own log files, `user` (on Unix) says who the backend runs as,
//! [`find_executable`] searches `PATH`.

mod boundary;
mod changes;
pub mod command;
pub mod doctor;
mod forward;
pub mod fs;
pub mod logs;
pub mod quote;
#[cfg(unix)]
pub mod user;
pub mod wait;

use std::{
    fmt,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RNone, RSome, RStr},
};

pub use self::changes::Changes;
use crate::{
    abi::{self, BackendError, BackendModule, BackendModuleRef, ErrorKind},
    ServiceDescription,
};

/// What a backend says about itself in `sygen service backends`.
#[derive(Clone, Copy, Debug)]
pub struct Info {
    /// Short name: `systemd`, `openrc`, …; also the name users know it by.
    pub name: &'static str,
    /// The backend's version, usually `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
    /// The platform it manages services on: `linux`, `macos`, `windows`, …
    pub platform: &'static str,
    /// One line describing it.
    pub description: &'static str,
}

/// An error a backend returns: a kind, a one-line message and an optional hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// The operation failed.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FAILED, message)
    }

    /// The service is not installed.
    pub fn not_installed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NOT_INSTALLED, message)
    }

    /// The service manager is not reachable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UNAVAILABLE, message)
    }

    /// The answer of every operation a backend does not implement.
    pub fn not_implemented(operation: &str) -> Self {
        Self::new(
            ErrorKind::NOT_IMPLEMENTED,
            format!("{operation} is not implemented in this backend version"),
        )
        .with_hint("update the backend, or use one that implements it (`sygen service backends`)")
    }

    /// The answer of [`Backend::call`] for a method the backend does not know.
    pub fn unknown_method(method: &str) -> Self {
        Self::new(
            ErrorKind::UNKNOWN_METHOD,
            format!("this backend has no method `{method}`"),
        )
    }

    /// The service manager did as asked, but the service did not get there: it failed, exited
    /// or did not start in time. sygen shows the service's last log lines with this error.
    pub fn service_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::SERVICE_FAILED, message)
    }

    /// An I/O error, with what was being done.
    pub fn io(context: impl fmt::Display, error: std::io::Error) -> Self {
        Self::failed(format!("{context}: {error}"))
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn into_boundary(self) -> BackendError {
        BackendError {
            kind: self.kind,
            message: self.message.into(),
            hint: match self.hint {
                Some(hint) => RSome(hint.into()),
                None => RNone,
            },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The host's console. Backends print through it, never to stdout or stderr directly.
#[derive(Clone)]
pub struct Console(Arc<abi::Console>);

impl Console {
    /// Writes text to the host's standard output.
    pub fn print(&self, text: &str) {
        self.0.out(text.into());
    }

    /// Writes a line to the host's standard output.
    pub fn println(&self, line: &str) {
        self.print(&format!("{line}\n"));
    }

    /// Writes a line to the host's standard error.
    pub fn eprintln(&self, line: &str) {
        self.0.err(format!("{line}\n").as_str().into());
    }

    /// A console that keeps what is written to it, for testing a backend without a host.
    pub fn capture() -> (Self, Captured) {
        let captured = Captured::default();
        let sink = abi::ConsoleSink_TO::from_value(captured.clone(), TD_Opaque);
        (Self(Arc::new(sink)), captured)
    }
}

/// What was written to a [`Console::capture`] console.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<(String, String)>>);

impl Captured {
    /// Everything written to standard output so far.
    pub fn out(&self) -> String {
        self.lock().0.clone()
    }

    /// Everything written to standard error so far.
    pub fn err(&self) -> String {
        self.lock().1.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (String, String)> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl abi::ConsoleSink for Captured {
    fn out(&self, text: RStr<'_>) {
        self.lock().0.push_str(text.as_str());
    }
    fn err(&self, text: RStr<'_>) {
        self.lock().1.push_str(text.as_str());
    }
    fn max_level(&self) -> u8 {
        abi::level::OFF
    }
    fn event(&self, _level: u8, _target: RStr<'_>, _message: RStr<'_>) {}
}

/// What every backend operation gets: the service description, the console, and the one way
/// to change the machine.
#[non_exhaustive]
pub struct Context {
    pub service: ServiceDescription,
    pub console: Console,
    /// Every file written or removed and every state-changing command goes through here, so
    /// a dry run can show them instead (see [`Changes`]).
    pub changes: Changes,
    /// This backend's own settings: the `[backends.<name>]` table of the user's config.toml,
    /// as JSON (an empty object when there is none). sygen checks only that it is a table;
    /// what its keys mean, and saying which one is wrong, is the backend's job.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// The configuration file `settings` come from (sygen's `config.toml`): name it in an
    /// error about a setting, so the user knows which file to fix.
    pub config_file: PathBuf,
}

impl Context {
    /// The home directory of the user the service runs for: `HOME` of the service
    /// description, which the host always sets.
    pub fn user_home(&self) -> Result<&std::path::Path> {
        self.service
            .env_var("HOME")
            .map(std::path::Path::new)
            .ok_or_else(|| Error::failed("the service description has no HOME"))
    }

    /// That user's configuration directory (see [`fs::config_home`]): where per-user service
    /// definitions live on Linux (`systemd/user/`, OpenRC's user services).
    pub fn config_home(&self) -> Result<std::path::PathBuf> {
        Ok(fs::config_home(self.user_home()?))
    }

    /// A context for a backend's own unit tests, with no host: `service` (see
    /// [`ServiceDescription::for_test`]), its sygen home's `config.toml` as the configuration
    /// file, a console that keeps what is written to it, and changes recorded instead of made
    /// (`cx.changes.recorded_changes()` lists them). Queries an operation runs through
    /// [`command::run`] still run for real.
    pub fn for_test(service: ServiceDescription) -> (Self, Captured) {
        let (console, captured) = Console::capture();
        let cx = Self {
            config_file: service.home.join("config.toml"),
            service,
            console,
            changes: Changes::dry_run(),
            settings: serde_json::Map::new(),
        };
        (cx, captured)
    }

    /// The same context with `settings`, as a `[backends.<name>]` table would give them.
    pub fn with_settings(self, settings: serde_json::Map<String, serde_json::Value>) -> Self {
        Self { settings, ..self }
    }
}

/// A service-manager backend. Operations a backend does not implement answer a clear
/// "not implemented in this backend version" error.
pub trait Backend: Default + 'static {
    const INFO: Info;

    /// Names of the [`Backend::call`] methods and optional behaviours this backend supports
    /// (see [`crate::methods`]). List [`crate::methods::INSTALL_DRY_RUN`] and
    /// [`crate::methods::UNINSTALL_DRY_RUN`] once install and uninstall make every change
    /// through `cx.changes`: the SDK then answers them by running those operations in a dry run.
    /// List [`crate::methods::DOCTOR`] to have [`Backend::doctor`] asked, and
    /// [`crate::methods::SURVIVAL`] to have [`Backend::survival`] asked.
    fn capabilities(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether this backend's service manager is present and answering.
    fn is_service_available(&self, _cx: &Context) -> Result<bool> {
        Err(Error::not_implemented("is_service_available"))
    }
    fn is_service_installed(&self, _cx: &Context) -> Result<bool> {
        Err(Error::not_implemented("is_service_installed"))
    }
    fn is_service_running(&self, _cx: &Context) -> Result<bool> {
        Err(Error::not_implemented("is_service_running"))
    }
    fn install_service(&self, _cx: &Context) -> Result<()> {
        Err(Error::not_implemented("install_service"))
    }
    fn start_service(&self, _cx: &Context) -> Result<()> {
        Err(Error::not_implemented("start_service"))
    }
    fn stop_service(&self, _cx: &Context) -> Result<()> {
        Err(Error::not_implemented("stop_service"))
    }
    fn uninstall_service(&self, _cx: &Context) -> Result<()> {
        Err(Error::not_implemented("uninstall_service"))
    }
    fn print_service_status(&self, _cx: &Context) -> Result<()> {
        Err(Error::not_implemented("print_service_status"))
    }
    /// Prints the last `lines` lines of the service's logs, then, with `follow`, new ones
    /// until interrupted.
    fn print_service_logs(&self, _cx: &Context, _follow: bool, _lines: u32) -> Result<()> {
        Err(Error::not_implemented("print_service_logs"))
    }
    /// Checks for `sygen doctor` that only this backend's service manager can make (see
    /// [`doctor`]); asked for when `capabilities()` lists [`crate::methods::DOCTOR`].
    fn doctor(&self, _cx: &Context) -> Vec<crate::methods::Check> {
        Vec::new()
    }
    /// Whether sygen keeps running after logout, after a reboot and on battery, as this
    /// backend's service manager decides it: one line per situation it has a say in, each with
    /// the fix where there is one. Asked for when `capabilities()` lists
    /// [`crate::methods::SURVIVAL`], by `sygen service install` (after it, and in a dry run
    /// with `query.after_install`) and `sygen doctor`.
    fn survival(
        &self,
        _cx: &Context,
        _query: &crate::methods::SurvivalQuery,
    ) -> Result<Vec<crate::methods::SurvivalLine>> {
        Err(Error::not_implemented("survival"))
    }
    /// The extension point: a named method with a JSON payload, answering JSON.
    fn call(&self, _cx: &Context, method: &str, _input: &str) -> Result<String> {
        Err(Error::unknown_method(method))
    }
}

/// Builds the root module for `B`. Use [`export_backend!`](crate::export_backend) rather than calling this.
pub fn root_module<B: Backend>() -> BackendModuleRef {
    BackendModule {
        info: boundary::info::<B>,
        capabilities: boundary::capabilities::<B>,
        is_service_available: boundary::is_service_available::<B>,
        is_service_installed: boundary::is_service_installed::<B>,
        is_service_running: boundary::is_service_running::<B>,
        install_service: boundary::install_service::<B>,
        start_service: boundary::start_service::<B>,
        stop_service: boundary::stop_service::<B>,
        uninstall_service: boundary::uninstall_service::<B>,
        print_service_status: boundary::print_service_status::<B>,
        print_service_logs: boundary::print_service_logs::<B>,
        call: boundary::call::<B>,
    }
    .leak_into_prefix()
}

/// Finds an executable on `PATH`.
pub fn find_executable(name: &str) -> Option<PathBuf> {
    which::which(name).ok()
}

/// The library header of a backend: what sygen looks up, under abi_stable's root-module
/// symbol, to load it. Use [`export_backend!`](crate::export_backend) rather than calling this.
pub const fn lib_header<B: Backend>() -> abi_stable::library::LibHeader {
    extern "C" fn erased_root_module<B: Backend>() -> abi_stable::library::RootModuleResult {
        abi_stable::library::__call_root_module_loader(root_module::<B>)
    }
    // SAFETY: the constructor returns the root module of `BackendModuleRef`, as the header says,
    // and its layout is checked when the library is loaded.
    unsafe {
        abi_stable::library::LibHeader::from_constructor::<BackendModuleRef>(
            erased_root_module::<B>,
            abi_stable::library::CheckTypeLayout::Yes,
        )
    }
}

/// The symbol a backend library exports its header under: abi_stable's
/// `ROOT_MODULE_LOADER_NAME`, spelled out because `#[export_name]` takes only a literal (a test
/// keeps the two equal).
#[doc(hidden)]
#[macro_export]
macro_rules! __root_module_symbol {
    () => {
        "_1as_0lib_1header_0root_bmodule_bloader"
    };
}

/// Exports a [`Backend`] as the library's root module. Invoke once, at the crate root of a
/// `cdylib` crate that depends on `sygen-backend-api` (and nothing else of sygen's: everything
/// the expansion uses comes through this crate).
#[macro_export]
macro_rules! export_backend {
    ($backend:ty) => {
        // With `panic = "abort"`, every panic would end the host's process instead of becoming
        // one error: the boundary's `catch_unwind` only works on unwinding panics.
        #[cfg(panic = "abort")]
        ::core::compile_error!(
            "a sygen backend must be built with `panic = \"unwind\"`: with `panic = \"abort\"` \
             a panic in the backend would end sygen instead of failing one call"
        );
        /// The header sygen loads this backend library by.
        #[export_name = $crate::__root_module_symbol!()]
        pub static SYGEN_BACKEND_LIB_HEADER: $crate::abi_stable::library::LibHeader =
            $crate::sdk::lib_header::<$backend>();
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exported_symbol_is_the_one_abi_stable_looks_up() {
        assert_eq!(
            crate::__root_module_symbol!(),
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }

    #[test]
    fn finds_executables_on_path() {
        let sh = find_executable("sh").expect("sh is on PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"));
        assert_eq!(find_executable("sygen-no-such-tool"), None);
    }

    #[test]
    fn not_implemented_names_the_operation_and_hints() {
        let error = Error::not_implemented("install_service");
        assert_eq!(error.kind, ErrorKind::NOT_IMPLEMENTED);
        assert_eq!(
            error.message,
            "install_service is not implemented in this backend version"
        );
        assert!(error.hint.is_some());
    }
}
