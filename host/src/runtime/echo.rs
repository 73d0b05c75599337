//! The runtime's own stdout and stderr: the journal under systemd, a terminal when run by hand,
//! files under launchd and OpenRC. `agent.log` keeps everything; this echo is a convenience
//! that must never block or take down the runtime:
//!
//! - lines reach the streams through a bounded queue and a writer thread of their own, so a
//!   reader that does not keep up costs lines of the echo (counted, and said on the stream
//!   when it moves again), never the worker's progress;
//! - a stream that breaks (a closed pipe, a restarted journald) ends the echo on that stream,
//!   said once in `agent.log`;
//! - a regular file, which nobody rotates, gets only the runtime's own events, and is started
//!   afresh when it reaches [`FILE_BYTES`].

use std::{
    fs::File,
    io::{self, Seek as _, Write},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use super::log::AgentLog;
use crate::platform::{self, StdStream};

/// How much may wait for a slow reader before lines are dropped from the echo: bytes, and
/// lines (each slot of the queue is memory the runtime holds all day).
const QUEUED_BYTES: usize = 1 << 20;
const QUEUED_LINES: usize = 256;

/// The size at which a file behind stdout or stderr is started afresh.
pub const FILE_BYTES: u64 = 1 << 20;

enum Message {
    Line(Line),
    /// Answered once everything sent before it is written.
    Flush(mpsc::Sender<()>),
}

struct Line {
    stream: StdStream,
    /// One of the runtime's own events, rather than the worker's output.
    event: bool,
    bytes: Vec<u8>,
}

/// The sending side; cloning shares the queue.
#[derive(Clone)]
pub struct Echo {
    queue: SyncSender<Message>,
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

impl Echo {
    /// Starts the writer, which tells `log` what becomes of the streams.
    pub fn start(log: AgentLog) -> Self {
        let (queue, lines) = mpsc::sync_channel(QUEUED_LINES);
        let echo = Self {
            queue,
            queued: Arc::default(),
            dropped: Arc::default(),
        };
        let (queued, dropped) = (Arc::clone(&echo.queued), Arc::clone(&echo.dropped));
        thread::spawn(move || write_lines(&lines, &log, &queued, &dropped));
        echo
    }

    /// A line of the worker's output, to the stream it came on.
    pub fn worker(&self, stream: StdStream, line: &[u8]) {
        let mut bytes = line.to_vec();
        if !bytes.ends_with(b"\n") {
            bytes.push(b'\n');
        }
        self.send(Line {
            stream,
            event: false,
            bytes,
        });
    }

    /// One of the runtime's own events, to stderr.
    pub fn event(&self, message: &str) {
        self.send(Line {
            stream: StdStream::Err,
            event: true,
            bytes: format!("sygen: {message}\n").into_bytes(),
        });
    }

    /// Waits up to `timeout` for what was sent to be written: the runtime's last words must
    /// reach the journal before it exits.
    pub fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (done, written) = mpsc::channel();
        let mut message = Message::Flush(done);
        loop {
            match self.queue.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    message = back;
                    thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return,
            }
        }
        let _ = written.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }

    fn send(&self, line: Line) {
        let size = line.bytes.len();
        let room = self.queued.fetch_add(size, Ordering::AcqRel) + size <= QUEUED_BYTES;
        if !room || self.queue.try_send(Message::Line(line)).is_err() {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where a stream's lines go.
enum Target {
    Stream(StdStream),
    File { file: File, name: &'static str },
    Closed,
}

impl Target {
    fn of(stream: StdStream) -> Self {
        match platform::regular_file_behind(stream) {
            Some(file) => Target::File {
                file,
                name: stream.name(),
            },
            None => Target::Stream(stream),
        }
    }

    fn write(&mut self, line: &Line) -> io::Result<()> {
        match self {
            Target::Stream(StdStream::Out) => write_flushed(&mut io::stdout().lock(), &line.bytes),
            Target::Stream(StdStream::Err) => write_flushed(&mut io::stderr().lock(), &line.bytes),
            Target::File { .. } if !line.event => Ok(()),
            Target::File { file, name } => {
                let size = file.metadata()?.len();
                if size.saturating_add(line.bytes.len() as u64) > FILE_BYTES {
                    file.set_len(0)?;
                    // The offset is shared with the service manager's descriptor.
                    file.seek(io::SeekFrom::Start(0))?;
                    let notice = format!(
                        "sygen: this file ({name} of the runtime) was started afresh at {FILE_BYTES} bytes; agent.log keeps everything\n"
                    );
                    file.write_all(notice.as_bytes())?;
                }
                file.write_all(&line.bytes)
            }
            Target::Closed => Ok(()),
        }
    }
}

fn write_flushed(stream: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes)?;
    stream.flush()
}

fn write_lines(
    messages: &Receiver<Message>,
    log: &AgentLog,
    queued: &AtomicUsize,
    dropped: &AtomicU64,
) {
    let mut out = Target::of(StdStream::Out);
    let mut err = Target::of(StdStream::Err);
    for message in messages {
        let line = match message {
            Message::Line(line) => line,
            Message::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        queued.fetch_sub(line.bytes.len(), Ordering::AcqRel);
        let target = match line.stream {
            StdStream::Out => &mut out,
            StdStream::Err => &mut err,
        };
        if let Err(error) = target.write(&line) {
            *target = Target::Closed;
            log.line(
                "runtime",
                &format!(
                    "the runtime's {} failed ({error}): nothing more is echoed there; agent.log keeps everything",
                    line.stream.name()
                ),
            );
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let notice = Line {
                stream: StdStream::Err,
                event: true,
                bytes: format!(
                    "sygen: {lost} line(s) were not echoed here: this output was not read fast enough (agent.log has them)\n"
                )
                .into_bytes(),
            };
            if err.write(&notice).is_err() {
                err = Target::Closed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(event: bool, text: &str) -> Line {
        Line {
            stream: StdStream::Err,
            event,
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_file_gets_only_events_and_starts_afresh_at_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service.err");
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let mut target = Target::File {
            file,
            name: "stderr",
        };
        target.write(&line(false, "worker output\n")).unwrap();
        target.write(&line(true, "sygen: an event\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "sygen: an event\n");

        let event = format!("sygen: {}\n", "e".repeat(1000));
        for _ in 0..2000 {
            target.write(&line(true, &event)).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() as u64 <= FILE_BYTES, "{} bytes", text.len());
        assert!(text.starts_with(
            "sygen: this file (stderr of the runtime) was started afresh at 1048576 bytes"
        ));
        assert!(text.ends_with(&event));
    }
}
