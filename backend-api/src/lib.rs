//! The interface between the sygen host and its service-manager backends.
//!
//! The host binary holds no platform code: it loads a backend shared library at run time
//! (`libsygen_systemd.so`, `libsygen_launchd.dylib`, `sygen_tasksched.dll`, or a third party's)
//! and drives the service through nine functions. This crate has these parts:
//!
//! - [`abi`]: the frozen boundary types, checked by abi_stable when a backend is loaded.
//! - [`methods`]: the named methods of `call` and the JSON documents they answer.
//! - [`sdk`]: the kit for writing a backend in safe Rust: implement [`sdk::Backend`], call
//!   [`export_backend!`], and use the shared helpers.
//! - `conformance` (feature `conformance`): the checks `sygen service conformance` runs, for a
//!   backend's own `cargo test`.
//!
//! # The freeze rule
//!
//! abi_stable refuses to load a backend built against an older interface once the host's root
//! module or a trait the host passes in has more fields than the backend's copy. Adding a
//! field to [`abi::BackendModule`] or a method to [`abi::ConsoleSink`] would therefore cut off
//! every backend already published. Both are frozen for 1.x, and a layout snapshot test
//! (`tests/layout.rs`) fails on any change. New features travel as data: a backend lists what
//! it supports in `capabilities()`, the host asks for it through `call(method, json)`, and
//! new description fields go into [`abi::ServiceSpec::extra`].

pub mod abi;
#[cfg(feature = "conformance")]
pub mod conformance;
mod kinds;
pub mod methods;
pub mod sdk;
mod service;

pub use abi::{BackendError, BackendInfo, BackendModuleRef, ErrorKind, ServiceSpec};
pub use service::{ServiceDescription, ServiceExtra, UNIX_SYSTEM_DIRS};

/// Re-exported so backends and the host use the same abi_stable.
pub use abi_stable;
/// Re-exported for `status.details` and `call` answers, so a backend needs no JSON crate of
/// its own.
pub use serde_json;
/// Re-exported so a backend's events reach the SDK's forwarder (it sees only this copy's).
pub use tracing;
