//! A backend that misbehaves on demand, so the host's handling of it can be tested through the
//! real binary. `MISBEHAVE` chooses what every operation does:
//!
//! - `panic`: panics (the SDK must turn it into an error, not an abort);
//! - `error`: fails with a message and a hint;
//! - `not-installed`: answers that the service is not installed;
//! - `fresh`: like the default, but the service is not installed yet (nor running);
//! - `flood`: like `fresh`, and its logs are 200 MiB of one endless line, then 30 short ones;
//! - `exit`, `abort`, `segfault`, `overflow` (of the stack) or `hang` (for two minutes): does
//!   that, as a careless or broken backend would;
//! - `nap`: says `<operation>: napping` and sleeps three seconds, so a test can act while the
//!   call runs (write over the library, say), then succeeds;
//! - anything else: prints through the console, emits tracing events, and succeeds.
//!
//! `<what>@<operation>` (`segfault@is_service_running`) misbehaves in that operation only.

use sygen_backend_api::{
    sdk::{Backend, Context, Error, Info, Result},
    serde_json,
};

#[derive(Default)]
pub struct Misbehaving;

/// What `MISBEHAVE` asks of `operation`.
fn misbehaviour(operation: &str) -> Option<String> {
    let value = std::env::var("MISBEHAVE").ok()?;
    match value.split_once('@') {
        Some((what, only)) if only == operation => Some(what.to_owned()),
        Some(_) => None,
        None => Some(value),
    }
}

#[allow(unconditional_recursion)]
fn overflow(depth: u64) -> u64 {
    let frame = [depth; 64];
    overflow(std::hint::black_box(frame)[0] + 1) + 1
}

fn act(cx: &Context, operation: &str) -> Result<()> {
    match misbehaviour(operation).as_deref() {
        Some("exit") => std::process::exit(0),
        Some("abort") => std::process::abort(),
        Some("segfault") => {
            // SAFETY: none; a null dereference is what this backend is for.
            let null = std::hint::black_box(std::ptr::null::<u8>());
            let _ = unsafe { std::ptr::read_volatile(null) };
            Ok(())
        }
        Some("overflow") => {
            overflow(0);
            Ok(())
        }
        Some("hang") => {
            std::thread::sleep(std::time::Duration::from_secs(120));
            Ok(())
        }
        Some("nap") => {
            cx.console.println(&format!("{operation}: napping"));
            std::thread::sleep(std::time::Duration::from_secs(3));
            Ok(())
        }
        Some("panic") => panic!("{operation} was told to panic"),
        Some("error") => {
            Err(Error::failed(format!("{operation} failed on purpose"))
                .with_hint("unset MISBEHAVE"))
        }
        Some("not-installed") => Err(Error::not_installed("no sygen service here")),
        _ => {
            tracing::info!(operation, "misbehaving backend at work");
            tracing::trace!("a trace-level detail");
            cx.console
                .println(&format!("{operation}: ok for {}", cx.service.name));
            cx.console
                .eprintln(&format!("{operation}: a note on stderr"));
            Ok(())
        }
    }
}

fn fresh() -> bool {
    matches!(std::env::var("MISBEHAVE").as_deref(), Ok("fresh" | "flood"))
}

impl Backend for Misbehaving {
    const INFO: Info = Info {
        name: "misbehaving",
        version: env!("CARGO_PKG_VERSION"),
        platform: "test",
        description: "Misbehaves on demand",
    };

    fn is_service_available(&self, cx: &Context) -> Result<bool> {
        act(cx, "is_service_available").map(|()| true)
    }
    fn is_service_installed(&self, cx: &Context) -> Result<bool> {
        act(cx, "is_service_installed").map(|()| !fresh())
    }
    fn is_service_running(&self, cx: &Context) -> Result<bool> {
        act(cx, "is_service_running").map(|()| !fresh())
    }
    fn install_service(&self, cx: &Context) -> Result<()> {
        act(cx, "install_service")
    }
    fn start_service(&self, cx: &Context) -> Result<()> {
        act(cx, "start_service")
    }
    fn stop_service(&self, cx: &Context) -> Result<()> {
        act(cx, "stop_service")
    }
    fn uninstall_service(&self, cx: &Context) -> Result<()> {
        act(cx, "uninstall_service")
    }
    fn print_service_status(&self, cx: &Context) -> Result<()> {
        act(cx, "print_service_status")?;
        let s = &cx.service;
        cx.console
            .println(&format!("program={}", s.program.display()));
        cx.console.println(&format!("args={:?}", s.args));
        cx.console.println(&format!("home={}", s.home.display()));
        cx.console
            .println(&format!("logs_dir={}", s.logs_dir.display()));
        for (key, value) in &s.env {
            cx.console.println(&format!("env {key}={value}"));
        }
        cx.console.println(&format!(
            "settings={}",
            serde_json::Value::from(cx.settings.clone())
        ));
        Ok(())
    }
    fn print_service_logs(&self, cx: &Context, follow: bool, lines: u32) -> Result<()> {
        act(cx, "print_service_logs")?;
        if std::env::var("MISBEHAVE").as_deref() == Ok("flood") {
            let mebibyte = "x".repeat(1 << 20);
            for _ in 0..200 {
                cx.console.print(&mebibyte);
            }
            for line in 0..30 {
                cx.console.println(&format!("line {line}"));
            }
            return Ok(());
        }
        cx.console
            .println(&format!("follow={follow} lines={lines}"));
        Ok(())
    }
}

sygen_backend_api::export_backend!(Misbehaving);
