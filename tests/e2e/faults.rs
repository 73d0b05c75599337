//! The runtime under faults, through the real binary: stale and recycled pid files, runtimes
//! started together, killed runtimes with stubborn trees, workers that leave children, broken
//! and unread streams, a full disk, odd files in the log directory, endless lines, and
//! configuration values out of range or in files that are not files.

use std::{
    fs,
    io::{BufRead, BufReader},
    os::unix::{fs::symlink, process::CommandExt as _},
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::support::{
    self, alive, eventually, live_pids,
    runtime::{guard_of, kill_with_guard, terminate, Home},
    Outcome,
};

/// The live processes carrying `home`'s tree marker (`SYGEN_TREE=<home>#<runtime>`).
fn tree_of(home: &Home) -> Vec<u32> {
    let home = fs::canonicalize(home.sygen_home()).unwrap();
    let marker = format!("SYGEN_TREE={}#", home.display()).into_bytes();
    live_pids()
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var.starts_with(&marker)))
        })
        .collect()
}

/// Waits for `child` to exit, at most `timeout`; answers its exit code.
fn exit_code(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A process that is not sygen's, in a process group of its own.
fn bystander() -> Child {
    Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .unwrap()
}

fn start_time(pid: u32) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[19].to_owned()
}

#[test]
fn stop_and_restart_never_signal_what_a_stale_pid_file_names() {
    let home = Home::new();
    fs::create_dir_all(home.sygen_home()).unwrap();
    let mut other = bystander();
    let pid = other.id();
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let boot = boot.trim();
    let records = [
        format!("{pid}\n"),
        format!("{pid}\nstart=1\nstop_timeout_ms=10\n"),
        format!(
            "{pid}\nstart={}\nboot={boot}\nstop_timeout_ms=10\n",
            start_time(pid)
        ),
        format!(
            "{pid}\nstart={}\nboot=0-another-boot\nstop_timeout_ms=10\n",
            start_time(pid)
        ),
        "1\nstart=1\nstop_timeout_ms=10\n".to_owned(),
    ];
    for record in &records {
        for file in ["bot.pid", "worker.pid"] {
            fs::write(home.sygen_home().join(file), record).unwrap();
        }
        assert_eq!(
            home.sygen(&["stop"]).succeeds(),
            "nothing running: no sygen service or process to stop\n",
            "{record:?}"
        );
        home.sygen(&["restart"])
            .fails_with(1, "sygen is not running: nothing to restart");
        assert!(alive(pid), "{record:?} got the process named in it killed");
    }
    other.kill().unwrap();
    other.wait().unwrap();
}

#[test]
fn a_lock_held_by_a_process_sygen_cannot_prove_is_never_signalled() {
    let home = Home::new();
    fs::create_dir_all(home.sygen_home()).unwrap();
    let bot_pid = home.sygen_home().join("bot.pid");
    fs::write(&bot_pid, "1\nstart=1\nstop_timeout_ms=10\n").unwrap();
    let mut holder = Command::new("flock")
        .arg(&bot_pid)
        .args(["sleep", "1000"])
        .process_group(0)
        .spawn()
        .unwrap();
    eventually("the lock", Duration::from_secs(5), || {
        !Command::new("flock")
            .args(["-n", "-s"])
            .arg(&bot_pid)
            .arg("true")
            .status()
            .unwrap()
            .success()
    });
    // Nothing stopped is no success: it says what holds the home, and that it was left alone.
    let hint = "(hint: sygen signals no process it cannot prove it started; if sygen runs in a \
                container or another pid namespace, stop it there)";
    for (verb, what) in [("stop", "stopped"), ("restart", "restarted")] {
        let out = home.sygen(&[verb]);
        assert_eq!(
            out.fails_with(1, "is locked, but not by a process"),
            format!(
                "error: {} is locked, but not by a process sygen can prove is its runtime (it \
                 names pid 1): nothing was {what} {hint}",
                bot_pid.display()
            )
        );
        assert_eq!(out.stdout, "");
    }
    assert!(alive(holder.id()));
    let refused = home.sygen(&["run"]);
    let line = refused.fails_with(1, "sygen is already running (pid unknown");
    assert_eq!(
        line,
        format!(
            "error: sygen is already running (pid unknown, from {}) (hint: stop it with \
             `sygen stop`, or restart its worker with `sygen restart`)",
            bot_pid.display()
        )
    );
    let group = format!("-{}", holder.id());
    Command::new("kill")
        .args(["-KILL", "--", &group])
        .status()
        .unwrap();
    holder.wait().unwrap();
}

#[test]
fn of_two_runtimes_started_together_exactly_one_runs() {
    let home = Home::new();
    home.worker("exec sleep 30", "");
    let start = || home.run_with(Stdio::null(), Stdio::piped());
    for round in 0..100 {
        let mut pair = [start(), start()];
        let deadline = Instant::now() + Duration::from_secs(10);
        let loser = loop {
            if let Some(i) = (0..2).find(|&i| pair[i].try_wait().unwrap().is_some()) {
                break i;
            }
            assert!(Instant::now() < deadline, "round {round}: both still run");
            thread::sleep(Duration::from_millis(5));
        };
        let [first, second] = &mut pair;
        let (lost, won) = if loser == 0 {
            (first, second)
        } else {
            (second, first)
        };
        let output = lost.wait_with_output_ref();
        assert_eq!(output.0, Some(1), "round {round}: {}", output.1);
        assert!(
            output.1.contains("sygen is already running"),
            "round {round}: {}",
            output.1
        );
        // The winner's pid, unless it has not written it yet.
        let said = |pid: &str| {
            format!(
                "error: sygen is already running (pid {pid}, from {}) (hint: stop it with \
                 `sygen stop`, or restart its worker with `sygen restart`)\n",
                home.sygen_home().join("bot.pid").display()
            )
        };
        assert!(
            output.1 == said(&won.id().to_string()) || output.1 == said("unknown"),
            "round {round}: {}",
            output.1
        );
        thread::sleep(Duration::from_millis(20));
        assert!(
            won.try_wait().unwrap().is_none(),
            "round {round}: no runtime is left"
        );
        assert_eq!(home.pid_file("bot.pid"), Some(won.id()), "round {round}");
        assert_eq!(terminate(won), Some(0), "round {round}");
    }
}

/// Reading what is left of a finished child's stderr.
trait Finished {
    fn wait_with_output_ref(&mut self) -> (Option<i32>, String);
}

impl Finished for Child {
    fn wait_with_output_ref(&mut self) -> (Option<i32>, String) {
        let code = self.wait().unwrap().code();
        let mut stderr = String::new();
        if let Some(pipe) = self.stderr.as_mut() {
            std::io::Read::read_to_string(pipe, &mut stderr).unwrap();
        }
        (code, stderr)
    }
}

/// A worker that ignores SIGTERM (and so do its children) and has a child of its own.
const STUBBORN: &str =
    "trap '' TERM\nsleep 300 &\necho $! > grandchild.pid\nwhile :; do sleep 1; done";

/// A stubborn tree whose runtime and guard were both killed, as by a `kill -9` of everything
/// sygen started but its worker's tree (or the OOM killer).
fn stubborn_tree_of_a_killed_runtime(home: &Home) -> Vec<u32> {
    home.worker(STUBBORN, "stop_timeout = \"300ms\"");
    let (mut run, worker) = home.start();
    let grandchild = home.sygen_home().join("grandchild.pid");
    eventually("the grandchild", Duration::from_secs(5), || {
        grandchild.exists()
    });
    kill_with_guard(&mut run);
    // The worker is told of its runtime's death, and ignores it.
    thread::sleep(Duration::from_millis(300));
    assert!(alive(worker));
    let tree = tree_of(home);
    assert!(tree.len() >= 2, "{tree:?}");
    tree
}

#[test]
fn the_guard_ends_the_tree_of_a_killed_runtime_and_nothing_else() {
    let home = Home::new();
    home.worker(STUBBORN, "stop_timeout = \"300ms\"");
    let (mut run, worker) = home.start();
    let grandchild = home.sygen_home().join("grandchild.pid");
    // The file is there before the pid is in it.
    eventually("the grandchild", Duration::from_secs(5), || {
        support::read_pid(&grandchild).is_some()
    });
    let grandchild = support::read_pid(&grandchild).unwrap();
    let guard = guard_of(run.id());
    let mut other = bystander();
    run.kill().unwrap();
    run.wait().unwrap();
    // The worker and its child ignore SIGTERM: the guard kills them after the stop timeout.
    eventually("the tree's end", Duration::from_secs(5), || {
        !alive(worker) && !alive(grandchild) && !alive(guard)
    });
    assert!(tree_of(&home).is_empty());
    let log = home.log();
    let said = log
        .lines()
        .find_map(|l| {
            l.split_once("[guard] the runtime is gone: ended ")?
                .1
                .split_once("(pids ")
        })
        .unwrap_or_else(|| panic!("the guard said nothing: {log}"));
    let ended: Vec<&str> = said.1.trim_end_matches(')').split(", ").collect();
    assert!(ended.contains(&worker.to_string().as_str()), "{log}");
    assert!(ended.contains(&grandchild.to_string().as_str()), "{log}");
    assert!(
        alive(other.id()),
        "the guard ended a process not of its tree"
    );
    other.kill().unwrap();
    other.wait().unwrap();
}

#[test]
fn a_guard_ends_its_own_runtimes_tree_and_not_a_later_ones() {
    let home = Home::new();
    home.worker("while :; do sleep 1; done", "");
    let (mut run, worker) = home.start();
    // What an earlier runtime of the same home left, whose guard is only now told it is gone.
    let canonical = fs::canonicalize(home.sygen_home()).unwrap();
    let earlier = format!("{}#1.1", canonical.display());
    let mut leftover = Command::new("sleep")
        .arg("1000")
        .env("SYGEN_TREE", &earlier)
        .process_group(0)
        .spawn()
        .unwrap();
    home.command(&["guard", &earlier, "300", "1", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        leftover.try_wait().unwrap().is_some(),
        "the leftover survived"
    );
    assert!(
        alive(worker),
        "the guard ended the running runtime's worker"
    );
    let said = format!(
        "[guard] the runtime is gone: ended 1 process(es) of its tree (pid {})",
        leftover.id()
    );
    assert!(home.log().contains(&said), "{}", home.log());
    let guard = guard_of(run.id());
    assert_eq!(terminate(&mut run), Some(0));
    eventually("the guard's end", Duration::from_secs(5), || !alive(guard));
    // A runtime that ends cleanly has ended its tree itself: its guard finds nothing to say.
    assert_eq!(home.log().matches("[guard]").count(), 1, "{}", home.log());
}

#[test]
fn stop_ends_the_stubborn_tree_a_killed_runtime_left() {
    let home = Home::new();
    let tree = stubborn_tree_of_a_killed_runtime(&home);
    let stdout = home.sygen(&["stop"]).succeeds().to_owned();
    assert!(
        stdout.starts_with("stopped what its worker left (pids "),
        "{stdout}"
    );
    for pid in &tree {
        assert!(!alive(*pid), "{pid} survived");
    }
    assert!(tree_of(&home).is_empty());
    assert!(!home.sygen_home().join("worker.pid").exists());
}

#[test]
fn many_processes_ended_are_one_short_line() {
    let home = Home::new();
    home.worker(
        "i=0; while [ $i -lt 30 ]; do sleep 300 & i=$((i+1)); done; echo > ready; wait",
        "",
    );
    let (mut run, _) = home.start();
    let ready = home.sygen_home().join("ready");
    eventually("30 children", Duration::from_secs(10), || ready.exists());
    kill_with_guard(&mut run);
    // The 30 children (and the worker, if it outlived its runtime): ten pids, the rest counted.
    let stdout = home.sygen(&["stop"]).succeeds().to_owned();
    let (listed, more) = stdout
        .strip_prefix("stopped what its worker left (pids ")
        .and_then(|rest| rest.strip_suffix(" more)\n"))
        .and_then(|rest| rest.split_once(" and "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(listed.split(", ").count(), 10, "{stdout}");
    assert!(matches!(more, "20" | "21"), "{stdout}");
    assert!(tree_of(&home).is_empty());
}

#[test]
fn the_next_run_ends_what_a_killed_runtime_left() {
    let home = Home::new();
    let tree = stubborn_tree_of_a_killed_runtime(&home);
    let old_worker = home.pid_file("worker.pid").unwrap();
    let mut run = home.spawn_run(&[], true);
    eventually("a new worker", Duration::from_secs(5), || {
        home.pid_file("worker.pid").is_some_and(|w| w != old_worker)
    });
    for pid in &tree {
        assert!(!alive(*pid), "{pid} survived");
    }
    assert!(home
        .log()
        .contains("process(es) a previous runtime left behind (pids "));
    // The new worker ignores SIGTERM too: it is killed after the stop timeout.
    assert_eq!(terminate(&mut run), Some(0));
    assert!(tree_of(&home).is_empty());
}

#[test]
fn a_workers_children_end_with_it_and_no_thread_is_left_waiting() {
    let home = Home::new();
    home.worker("sleep 600 &\nsleep 0.3\nexit 42", "quick_restarts = 1000");
    let mut run = home.spawn_run(&[], true);
    eventually("six workers", Duration::from_secs(20), || {
        home.worker_pids().len() >= 6
    });
    // At most the current worker, its `sleep 600` and its `sleep 0.3`.
    let tree = tree_of(&home);
    assert!(tree.len() <= 3, "{tree:?}");
    let status = fs::read_to_string(format!("/proc/{}/status", run.id())).unwrap();
    let threads: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(threads <= 8, "{threads} threads");
    // Ending each worker's tree never ended the guard, which is not of it.
    assert!(alive(guard_of(run.id())));
    assert!(
        home.log()
            .contains("ended 1 process(es) the worker left behind (pid "),
        "{}",
        home.log()
    );
    assert_eq!(terminate(&mut run), Some(0));
    assert!(tree_of(&home).is_empty());
}

#[test]
fn closed_stdout_and_stderr_cost_only_the_echo() {
    let home = Home::new();
    home.worker(
        "i=0; while [ $i -lt 500 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); done\nsleep 0.5\necho last\nexit 0",
        "",
    );
    let mut run = home.run_with(Stdio::piped(), Stdio::piped());
    // As `sygen run 2>&1 | head -n 2` does: two lines, then the pipes close.
    let mut lines = BufReader::new(run.stdout.take().unwrap()).lines();
    lines.next().unwrap().unwrap();
    lines.next().unwrap().unwrap();
    drop(lines);
    drop(run.stderr.take());
    assert_eq!(exit_code(&mut run, Duration::from_secs(20)), Some(0));
    let log = home.log();
    for needle in [
        "[stdout] out 499",
        "[stderr] err 499",
        "[stdout] last",
        "failed (Broken pipe (os error 32)): nothing more is echoed there; agent.log keeps everything",
        "runtime exiting with code 0",
    ] {
        assert!(log.contains(needle), "{needle} is missing:\n{log}");
    }
}

#[test]
fn a_runtime_whose_stdout_nobody_reads_never_blocks_its_worker() {
    let home = Home::new();
    home.worker(
        "i=0; while [ $i -lt 20000 ]; do echo \"line $i of a worker that talks a lot\"; i=$((i+1)); done",
        "",
    );
    let mut run = home.run_with(Stdio::piped(), Stdio::null());
    // The pipe holds 64 KiB; the worker writes 0.8 MB, and nothing reads it.
    assert_eq!(exit_code(&mut run, Duration::from_secs(60)), Some(0));
    assert!(home.log().contains("[stdout] line 19999 of"));
}

#[test]
fn an_endless_line_is_split_and_memory_stays_bounded() {
    let home = Home::new();
    home.worker(
        "head -c 100000000 /dev/zero | tr '\\0' x\necho\necho after\nexit 0",
        "[logs]\nmax_bytes = 1048576\nkeep = 2",
    );
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak %M KiB"])
        .arg(support::artifacts().join("sygen"))
        .arg("run")
        .env("HOME", home.dir.path())
        .env("SYGEN_HOME", home.sygen_home())
        .env("SYGEN_SUPERVISOR", "1")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak ")?.strip_suffix(" KiB")?.parse().ok())
        .unwrap();
    assert!(peak < 40 * 1024, "peak RSS {peak} KiB for a 100 MB line");
    let logs = home.sygen_home().join("logs");
    for name in ["agent.log", "agent.log.1", "agent.log.2"] {
        let size = fs::metadata(logs.join(name)).unwrap().len();
        assert!(size <= 1048576, "{name} is {size} bytes");
    }
    let log = home.log();
    assert!(log.contains("[stdout] after"), "{log}");
    let longest = log.lines().map(str::len).max().unwrap();
    assert!(longest <= 64 * 1024 + 100, "a line of {longest} bytes");
}

#[test]
fn a_directory_in_the_way_of_rotation_loses_no_line() {
    let home = Home::new();
    home.worker(
        "i=0; while [ $i -lt 300 ]; do echo \"line $i\"; i=$((i+1)); done",
        "[logs]\nmax_bytes = 2048\nkeep = 3",
    );
    fs::create_dir_all(home.sygen_home().join("logs/agent.log.1")).unwrap();
    let (code, log) = home.run_to_end(&[], true);
    assert_eq!(code, Some(0));
    for i in 0..300 {
        assert!(log.contains(&format!("[stdout] line {i}\n")), "line {i}");
    }
    let notices = log.matches("agent.log.1 is a directory").count();
    assert_eq!(notices, 1, "{log}");
    assert!(home.sygen_home().join("logs/agent.log.1").is_dir());
}

#[test]
fn a_full_disk_loses_whole_lines_counted_once_and_rotation_goes_on() {
    let home = Home::new();
    let logs = home.sygen_home().join("logs");
    let Some(_tmpfs) = support::Tmpfs::mount(&logs, "2m") else {
        return;
    };
    // Numbered lines of 100 bytes, about 2000 a second.
    home.worker(
        "i=0; while :; do printf 'n %08d %088d\\n' $i 0; i=$((i+1)); [ $((i % 20)) = 0 ] && sleep 0.01; done",
        "[logs]\nmax_bytes = 262144\nkeep = 1",
    );
    let stderr_file = home.dir.path().join("runtime.err");
    let mut run = home.run_with(Stdio::null(), fs::File::create(&stderr_file).unwrap());
    eventually("the first rotation", Duration::from_secs(20), || {
        logs.join("agent.log.1").exists()
    });
    // Fill the rest of the disk: lines are lost from here.
    let filler = logs.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    thread::sleep(Duration::from_millis(800));
    fs::remove_file(&filler).unwrap();
    let both = || {
        let mut text = fs::read_to_string(logs.join("agent.log.1")).unwrap_or_default();
        text.push_str(&fs::read_to_string(logs.join("agent.log")).unwrap_or_default());
        text
    };
    eventually("the loss notice", Duration::from_secs(10), || {
        both().contains(" lines lost: ")
    });
    let text = both();
    let counter = |line: &str| -> Option<u64> {
        line.split_once("[stdout] n ")?
            .1
            .split(' ')
            .next()?
            .parse()
            .ok()
    };
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(" lines lost: "))
        .unwrap();
    assert_eq!(
        lines.iter().filter(|l| l.contains(" lost: ")).count(),
        1,
        "one notice per outage"
    );
    let notice = lines[at];
    assert!(
        notice.ends_with("could not be written (No space left on device (os error 28))"),
        "{notice}"
    );
    let lost: u64 = notice
        .split_once("[runtime] ")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .unwrap();
    let before = lines[..at].iter().rev().find_map(|l| counter(l)).unwrap();
    let after = lines[at + 1..].iter().find_map(|l| counter(l)).unwrap();
    assert_eq!(
        after - before - 1,
        lost,
        "the notice counts every line lost"
    );
    let whole = |line: &str| {
        let Some((_, rest)) = line.split_once(' ') else {
            return false;
        };
        rest.starts_with("[runtime] ")
            || (rest.starts_with("[stdout] n ") && rest.len() == "[stdout] ".len() + 99)
    };
    for line in &lines {
        assert!(whole(line), "not a whole line: {line:?}");
    }
    eventually("rotation after the outage", Duration::from_secs(20), || {
        let rotated = fs::read_to_string(logs.join("agent.log.1")).unwrap_or_default();
        rotated.lines().filter_map(counter).any(|n| n > after) && !rotated.contains(" lost: ")
    });
    assert_eq!(terminate(&mut run), Some(0));
    let errors = fs::read_to_string(&stderr_file).unwrap();
    assert_eq!(
        errors.matches("No space left on device").count(),
        1,
        "the runtime says so once: {errors}"
    );
}

/// What `sygen stop` says of a configuration `problem` it does not need: once for itself, once
/// for the backends it asks.
fn warnings_of_stop(problem: &str) -> String {
    format!(
        "warning: {problem} (stop does not need it; `sygen run` refuses it until it is fixed)\n\
         warning: {problem} (backends are chosen and run without it)\n"
    )
}

#[test]
fn out_of_range_values_are_one_line_naming_file_line_key_and_range() {
    let home = Home::new();
    fs::create_dir_all(home.sygen_home()).unwrap();
    let config = home.sygen_home().join("config.toml");
    let cases = [
        (
            "[agent]\nstop_timeout = \"18446744073709551615s\"",
            "agent.stop_timeout",
            "`18446744073709551615s` is out of range:",
            "allowed from 0s to 1h",
        ),
        (
            "[agent]\nheartbeat_interval = \"0s\"",
            "agent.heartbeat_interval",
            "`0s` is out of range:",
            "allowed from 100ms to 1day",
        ),
        (
            "[agent]\nquick_restarts = 4294967296",
            "agent.quick_restarts",
            "4294967296 is out of range:",
            "allowed from 0 to 10000",
        ),
        (
            "[supervise]\ndelay = \"18446744073709551615s\"",
            "supervise.delay",
            "`18446744073709551615s` is out of range:",
            "allowed from 0s to 1day",
        ),
        (
            "[supervise]\nretries = -1",
            "supervise.retries",
            "invalid value: integer `-1`, expected u64;",
            "allowed from 0 to 10000",
        ),
        (
            "[logs]\nkeep = 4294967295",
            "logs.keep",
            "4294967295 is out of range:",
            "allowed from 0 to 100",
        ),
        (
            "[logs]\nmax_bytes = 1",
            "logs.max_bytes",
            "1 is out of range:",
            "allowed from 1024 to 1099511627776",
        ),
    ];
    for (text, key, value, range) in cases {
        fs::write(&config, format!("{text}\n")).unwrap();
        let problem = format!("{} line 2: key `{key}`: {value} {range}", config.display());
        for command in ["run", "agent"] {
            let out = home.sygen(&[command]);
            let line = out.fails_with(1, range);
            assert!(
                line.starts_with(&format!(
                    "error: {} line 2: key `{key}`: ",
                    config.display()
                )),
                "{line}"
            );
            assert_eq!(
                line,
                format!("error: {problem} (hint: fix the file, or remove it to use the defaults)")
            );
        }
        // Stopping needs none of it.
        let stop = home.sygen(&["stop"]);
        assert_eq!(
            stop.succeeds(),
            "nothing running: no sygen service or process to stop\n"
        );
        assert!(stop.stderr.starts_with("warning: "), "{}", stop.stderr);
        assert!(stop.stderr.contains(range), "{}", stop.stderr);
        assert_eq!(stop.stderr, warnings_of_stop(&problem));
    }
}

#[test]
fn a_timeout_out_of_range_is_refused_before_anything_happens() {
    let home = Home::new();
    for command in ["start", "stop", "install"] {
        let out = home.sygen(&["service", command, "--timeout", "18446744073709551615s"]);
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert_eq!(
            out.stderr,
            "error: invalid value '18446744073709551615s' for '--timeout <DURATION>': \
             `18446744073709551615s` is out of range: allowed from 0s to 1day\n\n\
             For more information, try '--help'.\n"
        );
    }
}

#[test]
fn only_a_regular_file_is_read_as_configuration() {
    let home = Home::new();
    fs::create_dir_all(home.sygen_home()).unwrap();
    let config = home.sygen_home().join("config.toml");
    let fifo = |path: &Path| {
        assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
    };
    type Make<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Make); 5] = [
        ("is not a regular file (a FIFO)", &fifo),
        ("is not a regular file (a device)", &|p| {
            symlink("/dev/zero", p).unwrap()
        }),
        ("is not a regular file (a directory)", &|p| {
            fs::create_dir(p).unwrap()
        }),
        (
            "is a link to /nonexistent/config.toml, which does not exist",
            &|p| symlink("/nonexistent/config.toml", p).unwrap(),
        ),
        (
            "is 2000000 bytes; a configuration is at most 1048576",
            &|p| fs::write(p, "#".repeat(2_000_000)).unwrap(),
        ),
    ];
    for (needle, make) in cases {
        make(&config);
        let started = Instant::now();
        let line = home.sygen(&["run"]).fails_with(1, needle).to_owned();
        assert!(
            line.starts_with(&format!("error: {}: ", config.display())),
            "{line}"
        );
        assert!(line.contains("(hint: sygen reads its configuration only from a regular file"));
        let problem = format!("{}: {needle}", config.display());
        assert_eq!(
            line,
            format!(
                "error: {problem} (hint: sygen reads its configuration only from a regular file; \
                 replace it with one, or remove it to use the defaults)"
            )
        );
        let stop = home.sygen(&["stop"]);
        assert_eq!(
            stop.succeeds(),
            "nothing running: no sygen service or process to stop\n"
        );
        assert!(stop.stderr.contains(needle), "{}", stop.stderr);
        assert_eq!(stop.stderr, warnings_of_stop(&problem));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{needle}: it hung"
        );
        if config.is_dir() {
            fs::remove_dir(&config).unwrap();
        } else {
            fs::remove_file(&config).unwrap();
        }
    }
    // A link to a regular file is a configuration like any other.
    let real = home.dir.path().join("real.toml");
    fs::write(&real, "[agent]\nheartbeat_interval = \"2s\"\n").unwrap();
    symlink(&real, &config).unwrap();
    let stop = home.sygen(&["stop"]);
    assert_eq!(
        stop.succeeds(),
        "nothing running: no sygen service or process to stop\n"
    );
    assert_eq!(stop.stderr, "");
}

#[test]
fn a_broken_config_never_blocks_the_way_out() {
    let home = Home::new();
    // The built-in agent: it must not read config.toml again when it is restarted.
    fs::create_dir_all(home.sygen_home()).unwrap();
    let config = home.sygen_home().join("config.toml");
    fs::write(&config, "[agent]\nheartbeat_interval = \"1h\"\n").unwrap();
    let (mut run, old) = home.start();
    fs::write(&config, "[agent]\nheartbeat_interval = \"1h\"\nbogus = 1\n").unwrap();

    let restart = home.sygen(&["restart"]);
    let new = home.pid_file("worker.pid").unwrap();
    assert_eq!(
        restart.succeeds(),
        format!("restarted the worker: pid {old} → {new}\n")
    );
    assert!(
        restart.stderr.starts_with("warning: ")
            && restart.stderr.contains("unknown field `bogus`")
            && restart.stderr.contains("restart does not need it"),
        "{}",
        restart.stderr
    );
    let bogus = format!(
        "{} line 3: key `agent.bogus`: unknown field `bogus`, expected one of `command`, `env`, \
         `env_file`, `working_dir`, `heartbeat_interval`, `stop_timeout`, `quick_restarts`, \
         `ready`, `ready_timeout`, `watchdog`",
        config.display()
    );
    assert_eq!(
        restart.stderr,
        format!(
            "warning: {bogus} (restart does not need it; `sygen run` refuses it until it is \
             fixed)\n"
        )
    );
    let stop = home.sygen(&["stop"]);
    assert_eq!(stop.succeeds(), format!("stopped runtime {}\n", run.id()));
    assert!(
        stop.stderr.contains("unknown field `bogus`"),
        "{}",
        stop.stderr
    );
    assert_eq!(stop.stderr, warnings_of_stop(&bogus));
    assert_eq!(exit_code(&mut run, Duration::from_secs(10)), Some(0));
    assert!(!alive(new));
    let log = home.log();
    assert!(
        log.contains(&format!("[stdout] agent started (pid {new})"))
            && !log.contains("worker exited with code 1"),
        "the new agent ran until stopped: {log}"
    );
}

/// How a sygen home can be spoiled by someone else, and what `sygen run` then says.
type Spoil = (&'static str, fn(&Path), &'static str);

fn open_to_all(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = if path.is_dir() { 0o777 } else { 0o666 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_home_someone_else_could_change_runs_nothing_and_writes_nothing() {
    let cases: [Spoil; 6] = [
        (
            "the home",
            |h| open_to_all(h),
            "is writable by group or others (mode 0777)",
        ),
        (
            "config.toml",
            |h| open_to_all(&h.join("config.toml")),
            "config.toml is writable by group or others",
        ),
        (
            "config.toml's owner",
            |h| std::os::unix::fs::chown(h.join("config.toml"), Some(65534), None).unwrap(),
            "config.toml belongs to user 65534, not to you or root",
        ),
        (
            "logs",
            |h| open_to_all(&h.join("logs")),
            "logs is writable by group or others",
        ),
        (
            "agent.log",
            |h| symlink(h.join("../victim"), h.join("logs/agent.log")).unwrap(),
            "agent.log is a symbolic link",
        ),
        (
            "bot.pid",
            |h| symlink(h.join("../victim"), h.join("bot.pid")).unwrap(),
            "bot.pid is a symbolic link",
        ),
    ];
    let run = |home: &Home| {
        let out = home
            .command(&["run"])
            .env("SYGEN_SUPERVISOR", "1")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (what, spoil, says) in cases {
        let home = Home::new();
        home.worker("touch ran\nexit 0", "");
        let sygen_home = home.sygen_home();
        fs::create_dir_all(sygen_home.join("logs")).unwrap();
        let victim = home.dir.path().join("victim");
        fs::write(&victim, "untouched\n").unwrap();
        spoil(&sygen_home);
        let (code, stderr) = run(&home);
        assert_eq!(code, Some(1), "{what}: {stderr}");
        let line = stderr.trim_end();
        assert!(
            line.starts_with("error: refusing to run: ")
                && line.contains(says)
                && !line.contains('\n'),
            "{what}: {stderr}"
        );
        assert!(line.contains("(hint: "), "{what}: {line}");
        assert!(!sygen_home.join("ran").exists(), "{what}: the worker ran");
        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            "untouched\n",
            "{what}"
        );
        let doctor = home.sygen(&["doctor"]);
        assert!(
            doctor.stdout.contains("[FAIL] home: ") && doctor.stdout.contains(says),
            "{what}: {}",
            doctor.stdout
        );
    }
    // The same home, kept private, runs.
    let home = Home::new();
    home.worker("touch ran\nexit 0", "");
    let (code, stderr) = run(&home);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(home.sygen_home().join("ran").exists());
    let doctor = home.sygen(&["doctor"]);
    assert!(doctor.stdout.contains("[pass] home: "), "{}", doctor.stdout);
}

/// `sygen ARGS` in `home`, in a pid namespace of its own (`unshare -p -f`, with a /proc of its
/// own too when `own_proc`); `None` where namespaces need root and this is not.
fn in_a_pid_namespace(home: &Home, args: &[&str], own_proc: bool) -> Option<Command> {
    let probe = Command::new("unshare").args(["-p", "-f", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipped: a pid namespace needs root (unshare -p)");
        return None;
    }
    let sygen = home.command(args);
    let mut command = Command::new("unshare");
    command.args(["-p", "-f"]);
    if own_proc {
        command.arg("--mount-proc");
    }
    command.arg(sygen.get_program()).args(sygen.get_args());
    for (key, value) in sygen.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    Some(command)
}

/// The hint of a refusal to act on a runtime of another pid namespace.
const ELSEWHERE_HINT: &str = "(hint: run `sygen stop` or `sygen restart` where it runs (in that \
                              container or namespace))";

#[test]
fn a_runtime_in_another_pid_namespace_is_never_reported_stopped() {
    let home = Home::new();
    home.worker("exec sleep 300", "");
    let Some(mut run) = in_a_pid_namespace(&home, &["run"], true) else {
        return;
    };
    let mut run = run
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the worker", Duration::from_secs(5), || {
        home.pid_file("worker.pid").is_some()
    });
    let worker = tree_of(&home);
    assert_eq!(worker.len(), 1, "{worker:?}");
    let bot_pid = home.sygen_home().join("bot.pid");
    // Pid 1 there is another process here: nothing is signalled, and no success is claimed.
    for (verb, what) in [("stop", "stopped"), ("restart", "restarted")] {
        let out = home.sygen(&[verb]);
        assert_eq!(
            out.fails_with(1, "from another pid namespace"),
            format!(
                "error: sygen's runtime holds {} from another pid namespace (pid 1 there), which \
                 this sygen cannot signal: nothing was {what} {ELSEWHERE_HINT}",
                bot_pid.display()
            )
        );
        assert_eq!(out.stdout, "");
        assert!(alive(worker[0]), "{verb} ended the worker");
    }
    assert_eq!(
        home.sygen(&["run"]).fails_with(1, "another pid namespace"),
        format!(
            "error: sygen is already running in another pid namespace (pid 1 there, from {}) \
             (hint: stop it where it runs: `sygen stop` in that container or namespace)",
            bot_pid.display()
        )
    );
    let doctor = home.sygen(&["doctor"]);
    let warned = format!(
        "[warn] pid-files: {} is held by a runtime in another pid namespace (pid 1 there): sygen \
         here cannot signal it",
        bot_pid.display()
    );
    assert!(
        doctor.stdout.lines().any(|l| l == warned),
        "{}",
        doctor.stdout
    );
    // Stopped where it runs: the namespace's first process is the runtime.
    let runtime = fs::read_to_string(format!("/proc/{0}/task/{0}/children", run.id())).unwrap();
    let runtime = runtime.trim().to_owned();
    Command::new("kill")
        .args(["-TERM", &runtime])
        .status()
        .unwrap();
    assert_eq!(exit_code(&mut run, Duration::from_secs(15)), Some(0));
    assert!(!alive(worker[0]));
}

#[test]
fn a_stop_from_another_pid_namespace_says_it_cannot_and_stops_nothing() {
    let home = Home::new();
    home.worker("exec sleep 300", "");
    let Some(mut stop) = in_a_pid_namespace(&home, &["stop"], false) else {
        return;
    };
    let (mut run, worker) = home.start();
    let out = Outcome::from(stop.output().unwrap());
    assert_eq!(
        out.fails_with(1, "from another pid namespace"),
        format!(
            "error: sygen's runtime holds {} from another pid namespace (pid {} there), which \
             this sygen cannot signal: nothing was stopped {ELSEWHERE_HINT}",
            home.sygen_home().join("bot.pid").display(),
            run.id()
        )
    );
    assert!(alive(run.id()) && alive(worker));
    assert_eq!(terminate(&mut run), Some(0));
}

#[test]
fn restarts_at_once_each_say_what_they_did() {
    let home = Home::new();
    home.worker("exec sleep 300", "");
    let (mut run, _) = home.start();
    let restarts: Vec<Child> = (0..3)
        .map(|_| {
            home.command(&["restart"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for restart in restarts {
        let out = Outcome::from(restart.wait_with_output().unwrap());
        let said = out.succeeds();
        let runtime = format!("the runtime (pid {}) runs a new worker: pid ", run.id());
        assert!(
            said.starts_with("restarted the worker: pid ") && !said.contains("none")
                || said.starts_with(&runtime),
            "{said}"
        );
    }
    assert_eq!(terminate(&mut run), Some(0));
}

#[test]
fn a_restart_while_the_runtime_waits_to_retry_says_what_it_started() {
    let home = Home::new();
    // The first worker fails, and the runtime would wait an hour to try again.
    home.worker(
        "[ -f failed ] && exec sleep 300\ntouch failed\nexit 3",
        "[supervise]\ndelay = \"1h\"",
    );
    let mut run = home.spawn_run(&["--supervise"], true);
    eventually("the wait to retry", Duration::from_secs(10), || {
        home.log().contains("retrying in 1h")
    });
    // No worker runs to be replaced: the restart names the one it started, and no "none".
    let said = home.sygen(&["restart"]).succeeds().to_owned();
    let worker = home.pid_file("worker.pid").expect("worker.pid");
    assert_eq!(
        said,
        format!(
            "the runtime (pid {}) runs a new worker: pid {worker}\n",
            run.id()
        )
    );
    assert_eq!(terminate(&mut run), Some(0));
}

#[test]
fn a_restart_while_the_runtime_stops_says_it_exited_instead() {
    let home = Home::new();
    // The worker takes its whole stop timeout to go.
    home.worker(
        "trap '' TERM\nwhile :; do sleep 1; done",
        "stop_timeout = \"2s\"",
    );
    let (mut run, _) = home.start();
    Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    let out = home.sygen(&["restart"]);
    let log = home.sygen_home().join("logs/agent.log");
    assert_eq!(
        out.stderr.lines().last().unwrap_or_default(),
        format!(
            "error: the runtime (pid {}) exited instead of replacing its worker (a stop came \
             first?) (hint: the log lines above, from {}, show why)",
            run.id(),
            log.display()
        )
    );
    assert_eq!(out.code, Some(1));
    assert_eq!(exit_code(&mut run, Duration::from_secs(10)), Some(0));
}

#[test]
fn stop_and_restart_wait_as_long_as_told_or_not_at_all() {
    let home = Home::new();
    // A worker that would take a minute to stop if it were waited for.
    home.worker(
        "trap '' TERM\nwhile :; do sleep 1; done",
        "stop_timeout = \"60s\"",
    );
    let (mut run, _) = home.start();
    let runtime = run.id();
    let out = home.sygen(&["restart", "--timeout", "1s"]);
    assert_eq!(
        out.stderr.lines().last().unwrap_or_default(),
        format!(
            "error: the runtime (pid {runtime}) did not start a new worker within 1s (hint: the \
             log lines above, from {}, show why)",
            home.sygen_home().join("logs/agent.log").display()
        )
    );
    let started = Instant::now();
    let stopped = home.sygen(&["stop", "--timeout", "1s"]);
    let said = stopped.succeeds();
    assert!(
        said.starts_with(&format!(
            "stopped runtime {runtime}, what its worker left (pid"
        )),
        "{said}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    run.wait().unwrap();
    assert!(tree_of(&home).is_empty());

    // Asked, and not waited for.
    home.worker("exec sleep 300", "");
    let (mut run, worker) = home.start();
    let runtime = run.id();
    assert_eq!(
        home.sygen(&["restart", "--no-wait"]).succeeds(),
        format!("asked the runtime (pid {runtime}) to replace its worker\n")
    );
    eventually("a new worker", Duration::from_secs(10), || {
        home.pid_file("worker.pid").is_some_and(|w| w != worker)
    });
    assert_eq!(
        home.sygen(&["stop", "--no-wait"]).succeeds(),
        format!(
            "asked runtime {runtime} to stop, without waiting (`sygen stop` ends what is left)\n"
        )
    );
    assert_eq!(exit_code(&mut run, Duration::from_secs(10)), Some(0));
    assert_eq!(
        home.sygen(&["stop", "--no-wait", "--timeout", "1s"]).code,
        Some(2)
    );
}

#[test]
fn what_run_accepts_stop_stops_even_a_home_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt as _;
    let home = Home::new();
    let odd = home
        .dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9"))
        .join(".sygen");
    fs::create_dir_all(&odd).unwrap();
    fs::write(
        odd.join("config.toml"),
        "[agent]\nheartbeat_interval = \"1s\"\n",
    )
    .unwrap();
    let sygen = |args: &[&str]| {
        let mut command = home.command(args);
        command.env("SYGEN_HOME", &odd);
        command
    };
    let mut run = sygen(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the worker", Duration::from_secs(5), || {
        odd.join("worker.pid").exists()
    });
    let out = Outcome::from(sygen(&["stop"]).output().unwrap());
    assert_eq!(out.succeeds(), format!("stopped runtime {}\n", run.id()));
    assert_eq!(
        out.stderr,
        format!(
            "sygen: no service can run this sygen home, stopping the processes only: the sygen \
             home path {} is not valid UTF-8\n",
            odd.display()
        )
    );
    assert_eq!(exit_code(&mut run, Duration::from_secs(5)), Some(0));
}

#[test]
fn a_process_that_drops_the_marker_and_leaves_the_group_still_ends_with_a_killed_runtime() {
    let home = Home::new();
    home.worker(
        "setsid env -i sh -c 'sleep 2000 & echo $! > escaped.pid'\nwhile :; do sleep 1; done",
        "stop_timeout = \"300ms\"",
    );
    let (mut run, _) = home.start();
    let escaped = home.sygen_home().join("escaped.pid");
    eventually("the escaped process", Duration::from_secs(5), || {
        support::read_pid(&escaped).is_some()
    });
    let escaped = support::read_pid(&escaped).unwrap();
    let environ = fs::read(format!("/proc/{escaped}/environ")).unwrap();
    assert!(
        !environ.windows(10).any(|w| w == b"SYGEN_TREE"),
        "it kept the marker"
    );
    // The guard looks at the runtime's descendants once a second.
    thread::sleep(Duration::from_millis(2500));
    let guard = guard_of(run.id());
    run.kill().unwrap();
    run.wait().unwrap();
    eventually("the escaped process's end", Duration::from_secs(10), || {
        !alive(escaped)
    });
    eventually("the guard's end", Duration::from_secs(5), || !alive(guard));
    assert!(
        home.log().contains("[guard] the runtime is gone: ended "),
        "{}",
        home.log()
    );
}
