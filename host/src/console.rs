//! The console sink the host hands to every backend call.
//!
//! Backends never write to stdout or stderr themselves: their text comes here, and their
//! tracing events are re-emitted under the host's subscriber, tagged with the backend's name.

use std::{
    cell::RefCell,
    io::Write,
    sync::{Arc, Mutex},
};

use abi_stable::{sabi_trait::TD_Opaque, std_types::RStr};
use sygen_backend_api::abi::{level, Console, ConsoleSink, ConsoleSink_TO};
use tracing::level_filters::LevelFilter;

use crate::progress;

/// Where backend output goes instead of stdout and stderr while [`capture`] runs.
type Captured = Arc<Mutex<String>>;

thread_local! {
    static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

struct HostConsole {
    backend: String,
    capture: Option<Captured>,
}

/// A console for one call into the backend called `backend`.
pub fn for_backend(backend: &str) -> Console {
    ConsoleSink_TO::from_value(
        HostConsole {
            backend: backend.to_owned(),
            capture: CAPTURE.with_borrow(Clone::clone),
        },
        TD_Opaque,
    )
}

/// Runs `f`, keeping what backends print during it (stdout and stderr, in order) instead of
/// showing it; answers `f`'s result and the text.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::default();
    let previous = CAPTURE.replace(Some(captured.clone()));
    let result = f();
    CAPTURE.set(previous);
    let text = captured.lock().map(|t| t.clone()).unwrap_or_default();
    (result, text)
}

impl HostConsole {
    fn captured(&self, text: &str) -> bool {
        match &self.capture {
            Some(buffer) => {
                if let Ok(mut buffer) = buffer.lock() {
                    buffer.push_str(text);
                }
                true
            }
            None => false,
        }
    }
}

impl ConsoleSink for HostConsole {
    fn out(&self, text: RStr<'_>) {
        if self.captured(text.as_str()) {
            return;
        }
        // A closed pipe (`sygen service logs | head`) is not an error worth reporting.
        progress::suspend(|| {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
        });
    }

    fn err(&self, text: RStr<'_>) {
        if self.captured(text.as_str()) {
            return;
        }
        progress::suspend(|| {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        });
    }

    fn max_level(&self) -> u8 {
        match LevelFilter::current() {
            LevelFilter::OFF => level::OFF,
            LevelFilter::ERROR => level::ERROR,
            LevelFilter::WARN => level::WARN,
            LevelFilter::INFO => level::INFO,
            LevelFilter::DEBUG => level::DEBUG,
            _ => level::TRACE,
        }
    }

    fn event(&self, level: u8, target: RStr<'_>, message: RStr<'_>) {
        let (backend, source, message) = (&self.backend, target.as_str(), message.as_str());
        match level {
            level::ERROR => {
                tracing::error!(target: "sygen::backend", %backend, %source, "{message}")
            }
            level::WARN => tracing::warn!(target: "sygen::backend", %backend, %source, "{message}"),
            level::INFO => tracing::info!(target: "sygen::backend", %backend, %source, "{message}"),
            level::DEBUG => {
                tracing::debug!(target: "sygen::backend", %backend, %source, "{message}")
            }
            _ => tracing::trace!(target: "sygen::backend", %backend, %source, "{message}"),
        }
    }
}
