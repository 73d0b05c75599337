//! Feedback while a command waits: a spinner on a terminal, plain lines otherwise.
//!
//! The spinner draws on stderr with cursor-control sequences, so it is a decoration like
//! colour: shown only when stderr is a terminal that can redraw a line and colour is allowed
//! (`--color`, `NO_COLOR`).
//! Plain lines are for waits worth mentioning: a step that is over within a second prints
//! nothing, so quick commands (and their one-line errors) stay as they were.
//! Anything printed while it spins (backend output, results) goes through [`suspend`], which
//! hides the spinner for the write so lines are never torn.

use std::{
    cell::RefCell,
    io::IsTerminal,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static DECORATED: OnceLock<bool> = OnceLock::new();
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Decides once, at start-up, whether spinners may be drawn: colour is allowed on stderr
/// and it is a terminal that can redraw a line (`TERM` set, and not `dumb`).
pub fn init(colour: bool) {
    let redraws = std::env::var("TERM").is_ok_and(|term| !term.is_empty() && term != "dumb");
    let _ = DECORATED.set(colour && redraws && std::io::stderr().is_terminal());
}

/// Runs `write` with the active spinner, if any, hidden.
pub fn suspend<T>(write: impl FnOnce() -> T) -> T {
    let active = ACTIVE.lock().ok().and_then(|bar| bar.clone());
    match active {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// How long a step runs before plain output mentions it.
const QUIET: Duration = Duration::from_secs(1);

/// One waiting step, shown until it is dropped.
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    /// On plain output: the last line printed.
    printed: RefCell<Option<String>>,
}

impl Progress {
    /// Starts showing `message`: a spinner on a decorated terminal, else plain lines once the
    /// step has lasted a second (see [`Progress::update`]).
    pub fn start(message: &str) -> Self {
        let mut progress = Self {
            bar: None,
            started: Instant::now(),
            printed: RefCell::new(None),
        };
        if !DECORATED.get().copied().unwrap_or(false) {
            return progress;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        bar.set_style(style);
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut active) = ACTIVE.lock() {
            *active = Some(bar.clone());
        }
        progress.bar = Some(bar);
        progress
    }

    /// Says what is being waited for; call it on every look at the state. The spinner shows
    /// it at once; plain output prints it as a line once the step has lasted a second, and
    /// again only when it changes.
    pub fn update(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_owned());
            return;
        }
        if self.started.elapsed() < QUIET {
            return;
        }
        let mut printed = self.printed.borrow_mut();
        if printed.as_deref() != Some(message) {
            eprintln!("{message}…");
            *printed = Some(message.to_owned());
        }
    }

    /// Stops showing the spinner (before a failure's explanation is printed).
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            if let Ok(mut active) = ACTIVE.lock() {
                *active = None;
            }
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A download of `total` bytes: a bar on a decorated terminal, nothing otherwise (a download
/// ends in a line saying what it brought). Advance it with [`Transfer::advance`]; it is
/// cleared when dropped.
pub struct Transfer(Option<ProgressBar>);

impl Transfer {
    pub fn start(message: &str, total: u64) -> Self {
        if !DECORATED.get().copied().unwrap_or(false) {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message.to_owned());
        Self(Some(bar))
    }

    pub fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
