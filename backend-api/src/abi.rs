//! The frozen 1.x interface: every type that crosses the host/backend boundary.
//!
//! abi_stable checks, when the host loads a backend, that the backend's root module and the
//! traits the host hands it have the layout the host expects. A prefix type (the root module,
//! the console sink's vtable) built against an older interface is refused once the host's copy
//! has more fields. So nothing in this file may change for the whole 1.x series: no new field,
//! no new method, no reordering, no new type in a signature. `tests/layout.rs` holds a snapshot
//! of these layouts and fails on any change.
//!
//! Growth happens through data instead: [`BackendModule::capabilities`] says what a backend
//! understands, [`BackendModule::call`] carries a named request with a JSON payload, and
//! [`ServiceSpec::extra`] carries a JSON object of fields added to the service description
//! after 1.0.

// `#[sabi_trait]` expands to impls inside a const block, which rustc now lints.
#![allow(non_local_definitions)]

use abi_stable::{
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RStr, RString, RVec, Tuple2},
    StableAbi,
};

/// The service description the host builds and every call receives.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct ServiceSpec {
    /// Service name: the systemd unit, the scheduled task, the OpenRC script (`sygen`).
    pub name: RString,
    /// Reverse-DNS label for launchd (`dev.sygen`).
    pub label: RString,
    /// One line for the service manager's listings.
    pub description: RString,
    /// Absolute, canonical path of the program the service starts.
    pub program: RString,
    /// Arguments after the program (`run`, …).
    pub args: RVec<RString>,
    /// Environment of the service, in order.
    pub env: RVec<Tuple2<RString, RString>>,
    /// The sygen home directory (`$SYGEN_HOME`, default `~/.sygen`).
    pub home: RString,
    /// Where file logs go (`<home>/logs`).
    pub logs_dir: RString,
    /// A JSON object with fields added after 1.0; `{}` when there are none.
    pub extra: RString,
}

/// What a backend says about itself.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct BackendInfo {
    /// Short name: `systemd`, `launchd`, `tasksched`, `openrc`, …
    pub name: RString,
    /// The backend's own version (semver).
    pub version: RString,
    /// The platform it manages services on: `linux`, `macos`, `windows`, …
    pub platform: RString,
    /// One line for `sygen service backends`.
    pub description: RString,
    /// The version of this interface crate the backend was built against.
    pub api_version: RString,
}

/// An error crossing the boundary: a kind code, a message and an optional hint.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct BackendError {
    /// One of the [`ErrorKind`] codes; hosts treat codes they do not know as [`ErrorKind::FAILED`].
    pub kind: ErrorKind,
    /// What went wrong, one line.
    pub message: RString,
    /// What the user can do about it, one line.
    pub hint: ROption<RString>,
}

/// A stable error code. New codes may be added in 1.x; unknown ones mean "failed".
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u32);

impl ErrorKind {
    /// The operation failed.
    pub const FAILED: Self = Self(1);
    /// The service is not installed.
    pub const NOT_INSTALLED: Self = Self(2);
    /// This backend version does not implement the operation.
    pub const NOT_IMPLEMENTED: Self = Self(3);
    /// The service manager is not reachable or not present.
    pub const UNAVAILABLE: Self = Self(4);
    /// The backend panicked; the panic was caught at the boundary.
    pub const PANICKED: Self = Self(5);
    /// [`BackendModule::call`] got a method the backend does not know.
    pub const UNKNOWN_METHOD: Self = Self(6);
    /// The request itself was malformed (for example a bad JSON payload).
    pub const INVALID_INPUT: Self = Self(7);
}

/// Tracing levels as they cross the boundary.
pub mod level {
    /// No events wanted.
    pub const OFF: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const WARN: u8 = 2;
    pub const INFO: u8 = 3;
    pub const DEBUG: u8 = 4;
    pub const TRACE: u8 = 5;
}

/// Where a backend's output goes. The host implements it; backends never write to
/// stdout or stderr themselves, so the host decides about pipes, colour and capture.
#[sabi_trait]
pub trait ConsoleSink: Send + Sync {
    /// Writes text to the host's standard output, as is.
    fn out(&self, text: RStr<'_>);

    /// Writes text to the host's standard error, as is.
    fn err(&self, text: RStr<'_>);

    /// The most verbose [`level`] the host wants events for.
    fn max_level(&self) -> u8;

    /// One tracing event from the backend, already formatted.
    #[sabi(last_prefix_field)]
    fn event(&self, level: u8, target: RStr<'_>, message: RStr<'_>);
}

/// The console sink as the host passes it into every call.
pub type Console = ConsoleSink_TO<'static, RBox<()>>;

/// Result of a backend call.
pub type BackendResult<T> = RResult<T, BackendError>;

/// The root module a backend library exports. Frozen for 1.x: see the module docs.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = BackendModuleRef)))]
#[sabi(missing_field(panic))]
pub struct BackendModule {
    pub info: extern "C" fn() -> BackendInfo,
    /// Names of the [`BackendModule::call`] methods and optional behaviours supported.
    pub capabilities: extern "C" fn() -> RVec<RString>,
    pub is_service_available: extern "C" fn(&ServiceSpec, Console) -> BackendResult<bool>,
    pub is_service_installed: extern "C" fn(&ServiceSpec, Console) -> BackendResult<bool>,
    pub is_service_running: extern "C" fn(&ServiceSpec, Console) -> BackendResult<bool>,
    pub install_service: extern "C" fn(&ServiceSpec, Console) -> BackendResult<()>,
    pub start_service: extern "C" fn(&ServiceSpec, Console) -> BackendResult<()>,
    pub stop_service: extern "C" fn(&ServiceSpec, Console) -> BackendResult<()>,
    pub uninstall_service: extern "C" fn(&ServiceSpec, Console) -> BackendResult<()>,
    pub print_service_status: extern "C" fn(&ServiceSpec, Console) -> BackendResult<()>,
    /// `follow`: keep printing new lines until interrupted; `lines`: how many past lines first.
    pub print_service_logs: extern "C" fn(&ServiceSpec, bool, u32, Console) -> BackendResult<()>,
    /// The extension point: a named method with a JSON payload, answering JSON.
    #[sabi(last_prefix_field)]
    pub call: extern "C" fn(RStr<'_>, RStr<'_>, &ServiceSpec, Console) -> BackendResult<RString>,
}

impl RootModule for BackendModuleRef {
    abi_stable::declare_root_module_statics! {BackendModuleRef}

    const BASE_NAME: &'static str = "sygen_backend";
    const NAME: &'static str = "sygen backend";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
