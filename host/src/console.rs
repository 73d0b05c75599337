//! The console sink the host hands to every backend call.
//!
//! Backends never write to stdout or stderr themselves: their text comes here, and their
//! tracing events are re-emitted under the host's subscriber, tagged with the backend's name.

use std::io::Write;

use abi_stable::{sabi_trait::TD_Opaque, std_types::RStr};
use sygen_backend_api::abi::{level, Console, ConsoleSink, ConsoleSink_TO};
use tracing::level_filters::LevelFilter;

struct HostConsole {
    backend: String,
}

/// A console for one call into the backend called `backend`.
pub fn for_backend(backend: &str) -> Console {
    ConsoleSink_TO::from_value(
        HostConsole {
            backend: backend.to_owned(),
        },
        TD_Opaque,
    )
}

impl ConsoleSink for HostConsole {
    fn out(&self, text: RStr<'_>) {
        // A closed pipe (`sygen service logs | head`) is not an error worth reporting.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush());
    }

    fn err(&self, text: RStr<'_>) {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
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
