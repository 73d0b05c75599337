//! The console sink the host hands to every backend call.
//!
//! Backends never write to stdout or stderr themselves: their text comes here, and their
//! tracing events are re-emitted under the host's subscriber, tagged with the backend's name.

use std::{
    cell::RefCell,
    collections::VecDeque,
    io::Write,
    sync::{Arc, Mutex},
};

use abi_stable::{sabi_trait::TD_Opaque, std_types::RStr};
use sygen_backend_api::abi::{level, Console, ConsoleSink, ConsoleSink_TO};
use tracing::level_filters::LevelFilter;

use crate::progress;

/// Where backend output goes instead of stdout and stderr while [`capture`] runs.
type Captured = Arc<Mutex<Tail>>;

/// How many of the last lines a capture keeps, and how long each may be: what the host shows
/// of a backend's output is a few lines, and a backend printing without end must not make the
/// host keep it all.
const KEPT_LINES: usize = 1000;
const MAX_LINE: usize = 4096;

/// The last [`KEPT_LINES`] lines of a text, each cut at [`MAX_LINE`] bytes (marked with `…`).
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    /// The line still being written, and whether it was cut.
    open: String,
    cut: bool,
}

impl Tail {
    fn push(&mut self, text: &str) {
        for piece in text.split_inclusive('\n') {
            let body = piece.strip_suffix('\n').unwrap_or(piece);
            // The rest of a line already cut short is dropped.
            if !self.cut {
                let room = MAX_LINE.saturating_sub(self.open.len());
                let mut end = body.len().min(room);
                while !body.is_char_boundary(end) {
                    end -= 1;
                }
                self.open.push_str(&body[..end]);
                self.cut = end < body.len();
            }
            if piece.ends_with('\n') {
                let mut line = std::mem::take(&mut self.open);
                if std::mem::take(&mut self.cut) {
                    line.push('…');
                }
                line.push('\n');
                if self.lines.len() == KEPT_LINES {
                    self.lines.pop_front();
                }
                self.lines.push_back(line);
            }
        }
    }

    fn text(&self) -> String {
        let mut text: String = self.lines.iter().map(String::as_str).collect();
        text.push_str(&self.open);
        if self.cut {
            text.push('…');
        }
        text
    }
}

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

/// Runs `f`, keeping what backends print during it (stdout and stderr, in order; the last
/// [`KEPT_LINES`] lines, each cut at [`MAX_LINE`] bytes) instead of showing it; answers `f`'s
/// result and the text.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::default();
    let previous = CAPTURE.replace(Some(captured.clone()));
    let result = f();
    CAPTURE.set(previous);
    let text = captured.lock().map(|t| t.text()).unwrap_or_default();
    (result, text)
}

impl HostConsole {
    fn captured(&self, text: &str) -> bool {
        match &self.capture {
            Some(buffer) => {
                if let Ok(mut buffer) = buffer.lock() {
                    buffer.push(text);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_keeps_the_last_lines_each_cut_short() {
        let mut tail = Tail::default();
        for i in 0..KEPT_LINES + 5 {
            tail.push(&format!("line {i}\n"));
        }
        let text = tail.text();
        assert_eq!(text.lines().count(), KEPT_LINES);
        assert!(
            text.starts_with("line 5\n") && text.ends_with("line 1004\n"),
            "{text:.40}"
        );

        let mut tail = Tail::default();
        // One endless line, written in pieces, with a character across the cut.
        tail.push(&"a".repeat(MAX_LINE - 1));
        tail.push("é and more");
        tail.push(&"b".repeat(10 * MAX_LINE));
        tail.push("\nnext\npartial");
        let text = tail.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0] == format!("{}…", "a".repeat(MAX_LINE - 1)),
            "{:.20}",
            lines[0]
        );
        assert_eq!(lines[1..], ["next", "partial"]);
    }
}
