//! systemd's notify protocol, spoken by the runtime to its worker, so that the clients people
//! already use work unchanged (`systemd-notify`, Python's `sdnotify`, the `sd-notify` crate,
//! libsystemd's `sd_notify`): each worker gets a `NOTIFY_SOCKET` of the runtime's own, and says
//! on it, in datagrams of `KEY=VALUE` lines:
//!
//! - `READY=1`: it is up (what "running" means with `[agent] ready = "notify"`);
//! - `STATUS=…`: one line on what it is doing, shown by `sygen service status`;
//! - `WATCHDOG=1`: it is alive (with `[agent] watchdog`); `WATCHDOG=trigger`: restart it now;
//! - `WATCHDOG_USEC=…`: a new watchdog period; `EXTEND_TIMEOUT_USEC=…`: more time to get
//!   ready, from now;
//! - `BARRIER=1`, with a descriptor: closed once read, which is what the sender waits for.
//!
//! Anything else is ignored. Only datagrams from the runtime's own tree count (the platform
//! checks the sender's credentials where it can; see `platform::NotifySocket`).
//!
//! A thread of its own reads the socket into one fixed buffer and keeps what was said in
//! [`Said`]; it wakes the runtime only when something it acts on changed, and at most once
//! until the runtime has looked: a ping changes a time and wakes no one. So a flood of
//! datagrams costs this thread's time, never memory, and the runtime at rest is not woken.

use std::{
    ffi::OsString,
    sync::{Arc, Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use crate::platform::NotifySocket;

/// The largest datagram read whole; a longer one is cut (as its last line then may be).
const MAX_DATAGRAM: usize = 4096;

/// The longest `STATUS=` kept, in bytes: a line for a status display.
const MAX_STATUS: usize = 512;

/// The longest period or extension a worker may ask for, as the configuration allows.
const MAX_USEC: u64 = 24 * 3600 * 1_000_000;

/// What the current worker has said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Said {
    /// When it said `READY=1`.
    pub ready_at: Option<Instant>,
    pub status: Option<String>,
    /// Its last `WATCHDOG=1`.
    pub last_ping: Option<Instant>,
    /// The period it asked for with `WATCHDOG_USEC=`, over the configured one.
    pub watchdog: Option<Duration>,
    /// Until when it asked to be given time to get ready.
    pub extended_until: Option<Instant>,
    /// It said `WATCHDOG=trigger`.
    pub triggered: bool,
}

impl Said {
    /// Takes in one datagram, received at `now`; answers whether the runtime should look (a
    /// ping alone changes nothing it waits on until its next deadline).
    fn take(&mut self, datagram: &[u8], now: Instant) -> bool {
        let text = String::from_utf8_lossy(datagram);
        let mut news = false;
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let microseconds = || {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|&usec| usec > 0)
                    .map(|usec| Duration::from_micros(usec.min(MAX_USEC)))
            };
            match key {
                "READY" if value == "1" && self.ready_at.is_none() => {
                    self.ready_at = Some(now);
                    news = true;
                }
                "STATUS" => {
                    let status = cut(value, MAX_STATUS);
                    if self.status.as_deref() != Some(status) {
                        self.status = Some(status.to_owned());
                        news = true;
                    }
                }
                "WATCHDOG" if value == "1" => self.last_ping = Some(now),
                "WATCHDOG" if value == "trigger" => {
                    self.triggered = true;
                    news = true;
                }
                "WATCHDOG_USEC" => {
                    if let Some(period) = microseconds() {
                        self.watchdog = Some(period);
                        news = true;
                    }
                }
                "EXTEND_TIMEOUT_USEC" => {
                    if let Some(extension) = microseconds() {
                        self.extended_until = Some(now + extension);
                        news = true;
                    }
                }
                _ => {}
            }
        }
        news
    }
}

/// `text` cut to at most `max` bytes, between characters.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What was said, shared by the reading thread and the runtime.
#[derive(Default)]
struct Shared {
    said: Said,
    /// The runtime has not looked since the last news (and has been woken for it).
    unseen: bool,
}

/// The runtime's notify socket and what its worker said on it.
pub struct Notify {
    /// The value of `NOTIFY_SOCKET` for the worker.
    pub address: OsString,
    shared: Arc<Mutex<Shared>>,
}

impl Notify {
    /// Binds the socket (`name` names it where names are global) and starts reading it;
    /// `wake` tells the runtime there is news.
    pub fn start(name: &str, wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (socket, address) = NotifySocket::bind(name)?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let reading = Arc::clone(&shared);
        thread::Builder::new()
            .name("notify".into())
            .spawn(move || read(&socket, &reading, &wake))?;
        Ok(Self { address, shared })
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets what the last worker said: a new one starts with nothing said.
    pub fn forget(&self) {
        *self.shared() = Shared::default();
    }

    /// What the worker has said so far.
    pub fn said(&self) -> Said {
        let mut shared = self.shared();
        shared.unseen = false;
        shared.said.clone()
    }
}

fn read(socket: &NotifySocket, shared: &Mutex<Shared>, wake: &dyn Fn()) {
    let mut buffer = [0; MAX_DATAGRAM];
    loop {
        let length = match socket.receive(&mut buffer) {
            Ok(Some(length)) => length.min(buffer.len()),
            Ok(None) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!("the notify socket failed: {e}");
                return;
            }
        };
        let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
        if state.said.take(&buffer[..length], Instant::now()) && !state.unseen {
            state.unseen = true;
            drop(state);
            wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_worker_says_is_taken_in_and_only_news_wakes_the_runtime() {
        let now = Instant::now();
        let mut said = Said::default();
        assert!(said.take(b"READY=1\nSTATUS=loading 3 of 5\n", now));
        assert_eq!(said.ready_at, Some(now));
        assert_eq!(said.status.as_deref(), Some("loading 3 of 5"));
        assert!(!said.take(b"WATCHDOG=1", now), "a ping is no news");
        assert_eq!(said.last_ping, Some(now));
        assert!(
            !said.take(b"READY=1\nSTATUS=loading 3 of 5", now),
            "nothing new"
        );
        assert!(said.take(b"WATCHDOG_USEC=2500000", now));
        assert_eq!(said.watchdog, Some(Duration::from_micros(2_500_000)));
        assert!(said.take(b"EXTEND_TIMEOUT_USEC=1000000", now));
        assert_eq!(said.extended_until, Some(now + Duration::from_secs(1)));
        assert!(said.take(b"WATCHDOG=trigger", now));
        assert!(said.triggered);
    }

    #[test]
    fn nonsense_is_ignored_and_sizes_are_bounded() {
        let now = Instant::now();
        let mut said = Said::default();
        for junk in [
            &b"READY=0"[..],
            b"WATCHDOG_USEC=0",
            b"WATCHDOG_USEC=-5",
            b"no equals sign",
            b"\xff\xfe=1",
            b"",
        ] {
            assert!(!said.take(junk, now), "{junk:?}");
        }
        assert_eq!(said, Said::default());
        said.take(b"WATCHDOG_USEC=99999999999999999", now);
        assert_eq!(said.watchdog, Some(Duration::from_secs(24 * 3600)));
        said.take(format!("STATUS={}", "é".repeat(400)).as_bytes(), now);
        assert_eq!(said.status.as_ref().map(String::len), Some(MAX_STATUS));
    }
}
