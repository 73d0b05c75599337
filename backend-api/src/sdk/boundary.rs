//! The `extern "C"` functions the root module points at, generic over the [`Backend`].
//!
//! Each one converts the boundary types, installs the tracing forwarder, and runs the backend
//! inside `catch_unwind`: unwinding out of an `extern "C"` function aborts the process, and a
//! backend must never take the host down. The panic message is captured by a hook (one per
//! backend library, which has its own copy of std) so the host can show it in one line.

use std::{
    any::Any,
    cell::{Cell, RefCell},
    panic::{self, AssertUnwindSafe},
    sync::Once,
};

use abi_stable::std_types::{RErr, ROk, RStr, RString, RVec};

use super::{forward, Backend, Changes, Console, Context, Error, Result};
use crate::{
    abi::{self, BackendInfo, BackendResult, ErrorKind, ServiceSpec},
    methods::{
        Doctor, Survival, SurvivalQuery, DOCTOR, INSTALL_DRY_RUN, SURVIVAL, UNINSTALL_DRY_RUN,
    },
    ServiceDescription, ServiceExtra,
};

thread_local! {
    /// Set while a backend call runs on this thread, so the hook captures only those panics.
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
    /// The message of the last panic caught on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_CALL.get() {
                let message = payload_text(info.payload()).replace('\n', " ");
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.set(Some(format!("{message}{location}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// The message a panic was raised with (`panic!` payloads are `&str` or `String`).
fn payload_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn panicked(payload: Box<dyn Any + Send>) -> Error {
    let message = LAST_PANIC
        .take()
        .unwrap_or_else(|| payload_text(payload.as_ref()).to_owned());
    Error::new(ErrorKind::PANICKED, format!("backend panicked: {message}"))
        .with_hint("this is a bug in the backend; report it to its publisher")
}

/// Runs `f` so that neither a panic nor a stray tracing event escapes.
fn contain<T>(f: impl FnOnce() -> Result<T>) -> BackendResult<T> {
    install_panic_hook();
    IN_CALL.set(true);
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    IN_CALL.set(false);
    match outcome {
        Ok(Ok(value)) => ROk(value),
        Ok(Err(error)) => RErr(error.into_boundary()),
        Err(payload) => RErr(panicked(payload).into_boundary()),
    }
}

fn with_backend<B: Backend, T>(
    spec: &ServiceSpec,
    console: abi::Console,
    operation: impl FnOnce(&B, &Context) -> Result<T>,
) -> BackendResult<T> {
    let console = Console(std::sync::Arc::new(console));
    run_in(spec, &console, console.clone(), Changes::live(), operation)
}

/// Runs `operation` with its context, tracing events forwarded to the host's `console`.
fn run_in<B: Backend, T>(
    spec: &ServiceSpec,
    host_console: &Console,
    console: Console,
    changes: Changes,
    operation: impl FnOnce(&B, &Context) -> Result<T>,
) -> BackendResult<T> {
    let dispatch = forward::dispatch(host_console);
    tracing::dispatcher::with_default(&dispatch, || {
        contain(|| {
            let service = ServiceDescription::from_spec(spec);
            let extra = ServiceExtra::of(spec);
            let cx = Context {
                // A host that does not say reads only the sygen home's config.toml.
                config_file: extra
                    .config_file
                    .unwrap_or_else(|| service.home.join("config.toml")),
                service,
                console,
                changes,
                settings: extra.settings,
            };
            operation(&B::default(), &cx)
        })
    })
}

/// Runs install or uninstall with changes recorded, not made, and answers them as JSON. What
/// the operation would print is dropped: "wrote …" would not be true.
fn dry_run<B: Backend>(
    spec: &ServiceSpec,
    console: abi::Console,
    operation: fn(&B, &Context) -> Result<()>,
) -> BackendResult<RString> {
    let host_console = Console(std::sync::Arc::new(console));
    let (silent, _) = Console::capture();
    run_in(
        spec,
        &host_console,
        silent,
        Changes::dry_run(),
        |backend, cx| {
            operation(backend, cx)?;
            to_json("the dry run", &cx.changes.recorded_changes())
        },
    )
}

/// An answer of [`call`] as the JSON the host reads; `what` names it in an error.
fn to_json(what: &str, answer: &impl serde::Serialize) -> Result<RString> {
    serde_json::to_string(answer)
        .map(RString::from)
        .map_err(|e| Error::failed(format!("encoding {what}: {e}")))
}

pub(super) extern "C" fn info<B: Backend>() -> BackendInfo {
    BackendInfo {
        name: B::INFO.name.into(),
        version: B::INFO.version.into(),
        platform: B::INFO.platform.into(),
        description: B::INFO.description.into(),
        api_version: env!("CARGO_PKG_VERSION").into(),
    }
}

pub(super) extern "C" fn capabilities<B: Backend>() -> RVec<RString> {
    match contain(|| Ok(B::default().capabilities())) {
        ROk(names) => names.into_iter().map(RString::from).collect(),
        RErr(_) => RVec::new(),
    }
}

macro_rules! boundary_fn {
    ($($name:ident -> $ty:ty;)*) => {$(
        pub(super) extern "C" fn $name<B: Backend>(
            spec: &ServiceSpec,
            console: abi::Console,
        ) -> BackendResult<$ty> {
            with_backend(spec, console, |backend: &B, cx| backend.$name(cx))
        }
    )*};
}

boundary_fn! {
    is_service_available -> bool;
    is_service_installed -> bool;
    is_service_running -> bool;
    install_service -> ();
    start_service -> ();
    stop_service -> ();
    uninstall_service -> ();
    print_service_status -> ();
}

pub(super) extern "C" fn print_service_logs<B: Backend>(
    spec: &ServiceSpec,
    follow: bool,
    lines: u32,
    console: abi::Console,
) -> BackendResult<()> {
    with_backend(spec, console, |backend: &B, cx| {
        backend.print_service_logs(cx, follow, lines)
    })
}

pub(super) extern "C" fn call<B: Backend>(
    method: RStr<'_>,
    input: RStr<'_>,
    spec: &ServiceSpec,
    console: abi::Console,
) -> BackendResult<RString> {
    let method = method.as_str();
    // The methods the SDK answers from the trait, for a backend that lists them. A dry run only
    // for one that says every change goes through `cx.changes`: for any other, it could make
    // real changes.
    let listed = || {
        matches!(
            contain(|| Ok(B::default().capabilities().iter().any(|c| c == method))),
            ROk(true)
        )
    };
    match method {
        INSTALL_DRY_RUN if listed() => dry_run(spec, console, B::install_service),
        UNINSTALL_DRY_RUN if listed() => dry_run(spec, console, B::uninstall_service),
        DOCTOR if listed() => with_backend(spec, console, |backend: &B, cx| {
            to_json(
                "the checks",
                &Doctor {
                    checks: backend.doctor(cx),
                },
            )
        }),
        SURVIVAL if listed() => with_backend(spec, console, |backend: &B, cx| {
            let query: SurvivalQuery = serde_json::from_str(input.as_str())
                .map_err(|e| Error::failed(format!("the survival query is not valid: {e}")))?;
            let lines = backend.survival(cx, &query)?;
            to_json("what survives", &Survival { lines })
        }),
        _ => with_backend(spec, console, |backend: &B, cx| {
            backend.call(cx, method, input.as_str()).map(RString::from)
        }),
    }
}
