//! The notify protocol between the runtime and its worker, with a client nobody here wrote:
//! systemd's own `systemd-notify` as the worker's voice (and Python's socket module for a
//! flood). Readiness, status, the watchdog, and datagrams from outside the worker's tree.

use std::{
    fs,
    process::Command,
    thread,
    time::{Duration, SystemTime},
};

use crate::support::{
    eventually,
    runtime::{terminate, Home},
};

/// The runtime's record, `state.json`.
fn state(home: &Home) -> serde_json::Value {
    fs::read_to_string(home.sygen_home().join("state.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Whether `systemd-notify` is here; the suite's set-up installs it (`scripts/deps`).
fn have_systemd_notify() -> bool {
    let here = Command::new("systemd-notify")
        .arg("--version")
        .output()
        .is_ok();
    if !here {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-notify is missing in CI"
        );
        eprintln!("skipped: systemd-notify is not installed");
    }
    here
}

#[test]
fn a_worker_is_running_once_it_says_ready_and_says_what_it_does() {
    if !have_systemd_notify() {
        return;
    }
    let home = Home::new();
    home.worker(
        "echo \"$NOTIFY_SOCKET\" > notify-socket\n\
         while [ ! -f go ]; do sleep 0.05; done\n\
         systemd-notify --status='loading 3 of 5'\n\
         systemd-notify --ready --status='serving'\n\
         exec sleep 30",
        "ready = \"notify\"",
    );
    let mut run = home.spawn_run(&[], true);
    let socket = || fs::read_to_string(home.sygen_home().join("notify-socket")).unwrap_or_default();
    eventually("a worker with its socket", Duration::from_secs(10), || {
        state(&home)["worker"]["pid"].is_u64() && socket().ends_with('\n')
    });
    let socket = socket();
    assert!(socket.starts_with('@'), "an abstract socket: {socket}");
    let before = state(&home);
    assert_eq!(before["ready"], false, "{before}");
    fs::write(home.sygen_home().join("go"), "").unwrap();
    eventually("READY=1 to be heard", Duration::from_secs(10), || {
        state(&home)["ready"] == true
    });
    let ready = state(&home);
    assert_eq!(ready["status"], "serving", "{ready}");
    let log = home.log();
    assert!(log.contains("is ready (READY=1 after "), "{log}");
    assert_eq!(terminate(&mut run), Some(0));
}

#[test]
fn the_watchdog_restarts_a_worker_that_stops_pinging_and_not_before() {
    if !have_systemd_notify() {
        return;
    }
    let home = Home::new();
    // Pings every 0.2 s for 2 s, then hangs; the second worker pings on.
    home.worker(
        "echo \"$WATCHDOG_USEC\" > watchdog-usec\n\
         if [ -f hung-once ]; then while true; do systemd-notify WATCHDOG=1; sleep 0.2; done; fi\n\
         touch hung-once\n\
         for i in 1 2 3 4 5 6 7 8 9 10; do\n\
           systemd-notify WATCHDOG=1; date +%s.%N > last-ping; sleep 0.2\n\
         done\n\
         exec sleep 300",
        "watchdog = \"1s\"",
    );
    let mut run = home.spawn_run(&[], true);
    let fired = "is unresponsive: it sent no WATCHDOG=1 for 1s";
    eventually("the watchdog to fire", Duration::from_secs(20), || {
        home.log().contains(fired)
    });
    // The log's own timestamp says when it fired; the worker wrote when it last pinged.
    let log = home.log();
    let line = log.lines().find(|l| l.contains(fired)).unwrap();
    let fired_at = humantime::parse_rfc3339(line.split_whitespace().next().unwrap()).unwrap();
    let last_ping: f64 = fs::read_to_string(home.sygen_home().join("last-ping"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let last_ping = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(last_ping);
    let silence = fired_at.duration_since(last_ping).unwrap_or_default();
    assert!(
        silence >= Duration::from_millis(900) && silence < Duration::from_secs(3),
        "fired {silence:?} after the last ping: {line}"
    );
    assert_eq!(
        fs::read_to_string(home.sygen_home().join("watchdog-usec"))
            .unwrap()
            .trim(),
        "1000000"
    );
    eventually("a second worker", Duration::from_secs(10), || {
        home.worker_pids().len() == 2
    });
    let record = state(&home);
    assert_eq!(record["watchdog_ms"], 1000, "{record}");
    assert_eq!(record["failures"], 1, "{record}");
    // The second worker pings on: no more restarts.
    thread::sleep(Duration::from_secs(3));
    assert_eq!(home.worker_pids().len(), 2, "{}", home.log());
    assert_eq!(terminate(&mut run), Some(0));
}

#[test]
fn a_datagram_from_outside_the_tree_is_ignored() {
    if !have_systemd_notify() {
        return;
    }
    let home = Home::new();
    home.worker(
        "echo \"$NOTIFY_SOCKET\" > notify-socket\nexec sleep 300",
        "ready = \"notify\"\nready_timeout = \"3s\"",
    );
    let mut run = home.spawn_run(&[], true);
    eventually("the socket", Duration::from_secs(10), || {
        fs::read_to_string(home.sygen_home().join("notify-socket")).is_ok_and(|s| s.ends_with('\n'))
    });
    let socket = fs::read_to_string(home.sygen_home().join("notify-socket")).unwrap();
    let outsider = Command::new("systemd-notify")
        .args(["--ready", "--status=an outsider"])
        .env("NOTIFY_SOCKET", socket.trim())
        .output()
        .unwrap();
    assert!(outsider.status.success(), "{outsider:?}");
    eventually("the ready timeout", Duration::from_secs(10), || {
        home.log()
            .contains("is unresponsive: it did not say READY=1 within 3s: restarting it")
    });
    let record = state(&home);
    assert_ne!(record["status"], "an outsider", "{record}");
    assert_ne!(record["ready"], true, "{record}");
    assert_eq!(terminate(&mut run), Some(0));
}

/// The runtime's resident memory, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_flood_of_datagrams_costs_no_memory() {
    let home = Home::new();
    fs::create_dir_all(home.sygen_home()).unwrap();
    fs::write(
        home.sygen_home().join("flood.py"),
        "import os, socket\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         address = os.environ['NOTIFY_SOCKET'].replace('@', '\\0', 1)\n\
         for i in range(200000):\n\
         \u{20}   try:\n\
         \u{20}       s.sendto(b'WATCHDOG=1\\nSTATUS=%d\\n' % i + b'x' * 3000, address)\n\
         \u{20}   except BlockingIOError:\n\
         \u{20}       pass\n\
         s.sendto(b'STATUS=done', address)\n\
         open('flooded', 'w').close()\n",
    )
    .unwrap();
    home.worker(
        "while [ ! -f go ]; do sleep 0.05; done\npython3 flood.py\nexec sleep 300",
        "",
    );
    let mut run = home.spawn_run(&[], true);
    eventually("a worker", Duration::from_secs(10), || {
        state(&home)["worker"]["pid"].is_u64()
    });
    let before = resident_kib(run.id());
    fs::write(home.sygen_home().join("go"), "").unwrap();
    eventually("the flood to end", Duration::from_secs(120), || {
        home.sygen_home().join("flooded").exists()
    });
    eventually("the last status", Duration::from_secs(10), || {
        state(&home)["status"] == "done"
    });
    let after = resident_kib(run.id());
    assert!(
        after < before + 8 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
    assert_eq!(terminate(&mut run), Some(0));
}
