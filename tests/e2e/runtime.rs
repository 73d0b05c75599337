//! `sygen run`, `sygen stop` and `sygen restart` with real processes: shell-script workers,
//! real signals, real pid files. Each test has its own HOME and SYGEN_HOME.

use std::{
    fs,
    process::{Child, Command},
    thread,
    time::Duration,
};

use crate::support::{
    self, alive, eventually,
    runtime::{kill_with_guard, terminate, Home},
};

#[test]
fn exit_42_starts_a_new_worker_and_the_old_one_is_gone() {
    let home = Home::new();
    home.worker(
        "echo \"worker $$\"\n[ -f once ] || { touch once; exit 42; }\nexec sleep 30",
        "",
    );
    let mut run = home.spawn_run(&[], true);
    eventually("a second worker", Duration::from_secs(10), || {
        home.worker_pids().len() == 2
    });
    let pids = home.worker_pids();
    assert_ne!(pids[0], pids[1]);
    assert!(!alive(pids[0]), "the first worker is gone");
    assert!(alive(pids[1]));
    assert_eq!(home.pid_file("worker.pid"), Some(pids[1]));
    assert_eq!(home.pid_file("bot.pid"), Some(run.id()));
    assert!(home
        .log()
        .contains("worker exited with code 42: restarting it"));
    assert_eq!(terminate(&mut run), Some(0));
}

#[test]
fn exit_0_ends_the_runtime_and_nothing_restarts() {
    let home = Home::new();
    home.worker("echo done\nexit 0", "");
    let (code, log) = home.run_to_end(&[], true);
    assert_eq!(code, Some(0));
    assert_eq!(home.worker_pids().len(), 1, "{log}");
    assert!(log.contains("[stdout] done"), "{log}");
    assert!(log.contains("worker exited with code 0: done"), "{log}");
    assert!(!home.sygen_home().join("bot.pid").exists());
    assert!(!home.sygen_home().join("worker.pid").exists());
}

#[test]
fn under_a_service_manager_a_crash_ends_the_runtime_with_its_code() {
    let home = Home::new();
    home.worker("echo oops >&2\nexit 3", "");
    let (code, log) = home.run_to_end(&[], true);
    assert_eq!(code, Some(3));
    assert_eq!(home.worker_pids().len(), 1, "{log}");
    assert!(log.contains("[stderr] oops"), "{log}");
    assert!(
        log.contains("the service manager decides about a restart"),
        "{log}"
    );
}

#[test]
fn without_a_service_manager_a_crash_is_retried_then_given_up() {
    for (args, supervisor) in [(&[][..], false), (&["--supervise"][..], true)] {
        let home = Home::new();
        home.worker("exit 3", "[supervise]\nretries = 2\ndelay = \"100ms\"");
        let (code, log) = home.run_to_end(args, supervisor);
        assert_eq!(code, Some(3), "{args:?}: {log}");
        assert_eq!(
            home.worker_pids().len(),
            3,
            "one start and two retries: {log}"
        );
        assert!(log.contains("retrying in 100ms (retry 1 of 2)"), "{log}");
        assert!(log.contains("retrying in 100ms (retry 2 of 2)"), "{log}");
        let last = log.lines().rev().nth(1).unwrap();
        assert!(
            last.ends_with("giving up: the worker failed 3 times in a row (last code 3)"),
            "{last}"
        );
    }
}

#[test]
fn a_restart_loop_is_slowed_down_not_a_fork_storm() {
    let home = Home::new();
    home.worker("exit 42", "quick_restarts = 3");
    let mut run = home.spawn_run(&[], true);
    eventually("the runtime to pause", Duration::from_secs(10), || {
        home.log().contains("quick restarts in a row: pausing")
    });
    thread::sleep(Duration::from_secs(1));
    let started = home.worker_pids().len();
    assert!(
        started < 12,
        "{started} workers in about a second: {}",
        home.log()
    );
    assert_eq!(terminate(&mut run), Some(0));
}

#[test]
fn sigterm_stops_the_worker_and_exits_0() {
    let home = Home::new();
    home.worker("exec sleep 30", "");
    let (mut run, worker) = home.start();
    assert_eq!(terminate(&mut run), Some(0));
    assert!(!alive(worker));
    assert!(!home.sygen_home().join("bot.pid").exists());
    assert!(home.log().contains("stopping on request"));
}

#[test]
fn a_worker_ignoring_sigterm_is_killed_after_the_stop_timeout() {
    let home = Home::new();
    home.worker(
        "trap '' TERM\nwhile true; do sleep 0.1; done",
        "stop_timeout = \"300ms\"",
    );
    let (mut run, worker) = home.start();
    assert_eq!(terminate(&mut run), Some(0));
    assert!(!alive(worker));
    assert!(
        home.log().contains("ignored SIGTERM for 300ms: killing it"),
        "{}",
        home.log()
    );
}

#[test]
fn a_second_instance_is_refused_and_a_stale_pid_file_replaced() {
    let home = Home::new();
    fs::create_dir_all(home.sygen_home()).unwrap();
    fs::write(home.sygen_home().join("bot.pid"), "2147483600\n").unwrap();
    home.worker("exec sleep 30", "");
    let mut first = home.spawn_run(&[], true);
    eventually("the first runtime", Duration::from_secs(5), || {
        home.pid_file("bot.pid") == Some(first.id())
    });
    let second = home.sygen(&["run"]);
    let line = second.fails_with(1, &format!("sygen is already running (pid {}", first.id()));
    assert_eq!(
        line,
        format!(
            "error: sygen is already running (pid {}, from {}) (hint: stop it with `sygen stop`, \
             or restart its worker with `sygen restart`)",
            first.id(),
            home.sygen_home().join("bot.pid").display()
        )
    );
    assert_eq!(terminate(&mut first), Some(0));
}

/// A runtime whose worker has a child of its own; answers the runtime, worker and grandchild.
fn run_a_tree(home: &Home) -> (Child, u32, u32) {
    home.worker("sleep 300 &\necho $! > grandchild.pid\nwait", "");
    let run = home.spawn_run(&[], true);
    let grandchild_file = home.sygen_home().join("grandchild.pid");
    // The file is there before the pid is in it, and the worker may write it before the
    // runtime has written worker.pid.
    eventually(
        "the worker and the grandchild",
        Duration::from_secs(5),
        || support::read_pid(&grandchild_file).is_some() && home.pid_file("worker.pid").is_some(),
    );
    let grandchild = support::read_pid(&grandchild_file).unwrap();
    (run, home.pid_file("worker.pid").unwrap(), grandchild)
}

#[test]
fn sygen_stop_ends_the_whole_tree_grandchildren_included() {
    let home = Home::new();
    let (mut run, worker, grandchild) = run_a_tree(&home);
    let stdout = home.sygen(&["stop"]).succeeds().to_owned();
    assert!(
        stdout.contains(&format!("runtime {}", run.id())),
        "{stdout}"
    );
    assert_eq!(run.wait().unwrap().code(), Some(0));
    for pid in [worker, grandchild] {
        assert!(!alive(pid), "{pid} survived");
    }
    assert!(!home.sygen_home().join("bot.pid").exists());
}

#[test]
fn sygen_stop_ends_an_orphaned_worker_group() {
    let home = Home::new();
    let (mut run, worker, grandchild) = run_a_tree(&home);
    // Runtime and guard killed together: what ends the tree then is `sygen stop`.
    kill_with_guard(&mut run);
    // The worker is told (SIGTERM) when its runtime dies; its own children are not.
    eventually(
        "the worker to follow its runtime",
        Duration::from_secs(5),
        || !alive(worker),
    );
    assert!(alive(grandchild), "the worker's child outlives them");

    let stdout = home.sygen(&["stop"]).succeeds().to_owned();
    assert_eq!(
        stdout,
        format!("stopped what its worker left (pid {grandchild})\n")
    );
    assert!(!alive(worker) && !alive(grandchild));
    assert!(!home.sygen_home().join("worker.pid").exists());
}

#[test]
fn a_worker_still_ending_after_its_killed_runtime_is_not_claimed_as_stopped() {
    let home = Home::new();
    // Told of its runtime's death, the worker takes half a second to finish, then exits.
    home.worker(
        "trap 'sleep 0.5; exit 0' TERM\nwhile :; do sleep 0.1; done",
        "",
    );
    let (mut run, worker) = home.start();
    kill_with_guard(&mut run);
    assert!(alive(worker), "the worker is still finishing");
    // It ends on its own: sygen ended nothing, and says so.
    assert_eq!(
        home.sygen(&["stop"]).succeeds(),
        "nothing running: no sygen service or process to stop\n"
    );
    assert!(!alive(worker));
}

#[test]
fn with_nothing_running_stop_says_so_and_restart_fails_with_a_hint() {
    let home = Home::new();
    assert_eq!(
        home.sygen(&["stop"]).succeeds(),
        "nothing running: no sygen service or process to stop\n"
    );
    let restart = home.sygen(&["restart"]);
    let line = restart.fails_with(1, "sygen is not running: nothing to restart");
    assert_eq!(
        line,
        "error: sygen is not running: nothing to restart (hint: start it with \
         `sygen service start` (or in the foreground: `sygen run`))"
    );
}

#[test]
fn sygen_restart_replaces_the_worker_and_keeps_the_runtime() {
    let home = Home::new();
    home.worker("exec sleep 30", "");
    let (mut run, old) = home.start();
    let stdout = home.sygen(&["restart"]).succeeds().to_owned();
    let new = home.pid_file("worker.pid").unwrap();
    assert_eq!(stdout, format!("restarted the worker: pid {old} → {new}\n"));
    assert!(!alive(old) && alive(new));
    assert_eq!(home.pid_file("bot.pid"), Some(run.id()));
    assert_eq!(terminate(&mut run), Some(0));
}

#[test]
fn a_restart_that_does_not_happen_shows_the_log_then_one_error() {
    let home = Home::new();
    home.worker("exec sleep 30", "stop_timeout = \"100ms\"");
    let (mut run, _) = home.start();
    // A stopped runtime cannot answer the request.
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &run.id().to_string()])
            .status();
        assert!(status.unwrap().success());
    };
    signal("-STOP");
    let out = home.sygen(&["restart"]);
    signal("-CONT");
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let log = home.sygen_home().join("logs/agent.log");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines[..2],
        [
            format!(
                "waiting for the runtime (pid {}) to replace the worker…",
                run.id()
            ),
            format!("last log lines ({}):", log.display())
        ]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(&format!("[runtime] runtime started (pid {})", run.id()))),
        "{}",
        out.stderr
    );
    assert_eq!(
        lines.last().copied(),
        Some(
            format!(
                "error: the runtime (pid {}) did not start a new worker within 5s 100ms \
                 (hint: the log lines above, from {}, show why)",
                run.id(),
                log.display()
            )
            .as_str()
        )
    );
    assert_eq!(terminate(&mut run), Some(0));
}

#[test]
fn the_built_in_agent_is_the_default_worker_and_restarts_on_request() {
    let home = Home::new();
    fs::create_dir_all(home.sygen_home()).unwrap();
    fs::write(
        home.sygen_home().join("config.toml"),
        "[agent]\nheartbeat_interval = \"100ms\"\n",
    )
    .unwrap();
    let mut run = home.spawn_run(&[], true);
    eventually("heartbeats", Duration::from_secs(5), || {
        home.log().contains("heartbeat 2")
    });
    let agent = home.pid_file("worker.pid").unwrap();
    let cmdline = fs::read_to_string(format!("/proc/{agent}/cmdline")).unwrap();
    assert!(
        cmdline.ends_with("sygen\0agent\0--heartbeat-interval\x00100ms\0"),
        "{cmdline:?}"
    );

    // SIGHUP asks the agent for a fresh start: it exits 42 and the runtime replaces it.
    Command::new("kill")
        .args(["-HUP", &agent.to_string()])
        .status()
        .unwrap();
    eventually("a new agent", Duration::from_secs(5), || {
        home.worker_pids().len() == 2
    });
    assert!(home
        .log()
        .contains("restart requested: exiting with code 42"));
    assert_eq!(terminate(&mut run), Some(0));
}

#[test]
fn the_agent_log_rotates_by_size() {
    let home = Home::new();
    home.worker(
        "i=0; while [ $i -lt 200 ]; do echo \"line $i of the worker's output\"; i=$((i+1)); done",
        "[logs]\nmax_bytes = 2000\nkeep = 2",
    );
    let (code, _) = home.run_to_end(&[], true);
    assert_eq!(code, Some(0));
    let logs = home.sygen_home().join("logs");
    let mut names: Vec<String> = fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["agent.log", "agent.log.1", "agent.log.2"]);
    for name in &names {
        assert!(
            fs::metadata(logs.join(name)).unwrap().len() <= 2000,
            "{name}"
        );
    }
    assert!(home.log().contains("runtime exiting with code 0"));
}

#[test]
fn a_malformed_config_is_one_line_naming_file_line_and_key() {
    let home = Home::new();
    fs::create_dir_all(home.sygen_home()).unwrap();
    let config = home.sygen_home().join("config.toml");
    fs::write(
        &config,
        "[agent]\nheartbeat_interval = \"1s\"\ncommand = \"not a list\"\n",
    )
    .unwrap();
    for command in ["run", "agent"] {
        let out = home.sygen(&[command]);
        let line = out.fails_with(1, "line 3: key `agent.command`: invalid type");
        assert!(
            line.starts_with(&format!("error: {} line 3", config.display())),
            "{line}"
        );
    }
}

/// `sygen service status --json` in `home` through the misbehaving backend, which says the
/// service is installed and running, as a service manager that sees only the runtime would.
fn status_json(home: &Home) -> serde_json::Value {
    let backend = support::library("misbehaving_backend");
    let mut command = home.command(&[
        "--backend",
        backend.to_str().unwrap(),
        "service",
        "status",
        "--json",
    ]);
    command.env("MISBEHAVE", "ok");
    let out = support::Outcome::from(command.output().unwrap());
    serde_json::from_str(out.succeeds()).unwrap()
}

#[test]
fn a_crash_loop_shows_in_status_and_a_worker_that_recovers_ends_it() {
    let home = Home::new();
    home.worker(
        "[ -f recovered ] && exec sleep 30\necho crashing >&2\nexit 42",
        "quick_restarts = 2",
    );
    let mut run = home.spawn_run(&[], true);
    eventually("status to show the loop", Duration::from_secs(15), || {
        status_json(&home)["runtime"]["state"] == "backing_off"
    });
    let report = status_json(&home);
    let state = &report["runtime"];
    assert_eq!(
        report["running"], true,
        "the manager sees a runtime: {report}"
    );
    assert_eq!(state["alive"], true, "{report}");
    assert_eq!(state["last_exit"]["code"], 42, "{report}");
    assert!(state["quick_restarts"].as_u64().unwrap() > 2, "{report}");
    // The restart after this pause is not made yet.
    assert_eq!(
        state["restarts"].as_u64().unwrap() + 1,
        state["quick_restarts"].as_u64().unwrap(),
        "{report}"
    );
    assert!(state["next_try"].is_string(), "{report}");
    assert!(state["back_off_ms"].as_u64().unwrap() >= 100, "{report}");
    let backend = support::library("misbehaving_backend");
    let mut command = home.command(&["--backend", backend.to_str().unwrap(), "service", "status"]);
    command.env("MISBEHAVE", "ok");
    let text = support::Outcome::from(command.output().unwrap());
    let line = text
        .succeeds()
        .lines()
        .find(|l| l.starts_with("runtime: "))
        .unwrap_or_else(|| panic!("no runtime line: {}", text.stdout))
        .to_owned();
    assert!(line.starts_with("runtime: restarting: "), "{line}");
    assert!(
        line.contains(" quick restarts in a row, last exit 42 "),
        "{line}"
    );
    assert!(line.contains(", next try "), "{line}");

    fs::write(home.sygen_home().join("recovered"), "").unwrap();
    eventually(
        "status to show a running worker",
        Duration::from_secs(15),
        || {
            let report = status_json(&home);
            report["runtime"]["state"] == "running" && report["runtime"]["worker"]["pid"].is_u64()
        },
    );
    let worker = status_json(&home)["runtime"]["worker"]["pid"]
        .as_u64()
        .unwrap() as u32;
    assert_eq!(home.pid_file("worker.pid"), Some(worker));
    assert_eq!(terminate(&mut run), Some(0));
    let stopped = status_json(&home);
    assert_eq!(stopped["runtime"]["state"], "stopped", "{stopped}");
    assert_eq!(stopped["runtime"]["alive"], false, "{stopped}");
}

#[test]
fn a_runtime_that_gave_up_says_so_and_how_to_start_afresh() {
    let home = Home::new();
    home.worker("exit 3", "[supervise]\nretries = 1\ndelay = \"100ms\"");
    let (code, _) = home.run_to_end(&["--supervise"], true);
    assert_eq!(code, Some(3));
    let report = status_json(&home);
    let state = &report["runtime"];
    assert_eq!(state["state"], "gave_up", "{report}");
    assert_eq!(
        state["reason"], "the worker failed 2 times in a row",
        "{report}"
    );
    assert_eq!(state["last_exit"]["code"], 3, "{report}");
    assert_eq!(state["alive"], false, "{report}");
    let backend = support::library("misbehaving_backend");
    let mut command = home.command(&["--backend", backend.to_str().unwrap(), "service", "status"]);
    command.env("MISBEHAVE", "ok");
    let out = support::Outcome::from(command.output().unwrap());
    let lines: Vec<&str> = out.succeeds().lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("runtime: gave up "))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        lines[at].contains(": the worker failed 2 times in a row, last exit 3 "),
        "{}",
        lines[at]
    );
    assert!(
        lines[at + 1].contains("`sygen service start` starts afresh"),
        "{}",
        lines[at + 1]
    );
}

#[test]
fn a_failure_hook_hears_of_the_failure_and_its_output_is_logged() {
    let home = Home::new();
    let hook = home.sygen_home().join("hook.sh");
    home.worker(
        "echo oops >&2\nexit 3",
        &format!(
            "[hooks]\non_failure = [{:?}, \"an argument\"]",
            hook.to_str().unwrap()
        ),
    );
    support::write_script(
        &hook,
        "env | grep '^SYGEN_' | grep -v '^SYGEN_TREE' | sort > hook-env\n\
         cp \"$SYGEN_LOG_LINES\" hook-lines\necho \"hook says $1\"",
    );
    let (code, log) = home.run_to_end(&[], true);
    assert_eq!(code, Some(3), "{log}");
    let env = fs::read_to_string(home.sygen_home().join("hook-env")).unwrap();
    for expected in [
        "SYGEN_EXIT_CODE=3",
        "SYGEN_FAILURES=1",
        "SYGEN_HOOK=on_failure",
        "SYGEN_REASON=worker exited with code 3",
        "SYGEN_RESTARTS=0",
    ] {
        assert!(env.lines().any(|l| l == expected), "{expected} in {env}");
    }
    let worker = home.worker_pids()[0];
    assert!(
        env.lines()
            .any(|l| l == format!("SYGEN_WORKER_PID={worker}")),
        "{env}"
    );
    let lines = fs::read_to_string(home.sygen_home().join("hook-lines")).unwrap();
    assert!(lines.contains("[stderr] oops"), "{lines}");
    assert!(log.contains("[hook] hook says an argument"), "{log}");
    assert!(log.contains("hook on_failure (pid "), "{log}");
    assert!(log.contains(") exited with code 0"), "{log}");
}

#[test]
fn a_hook_that_never_ends_is_ended_and_supervision_goes_on() {
    let home = Home::new();
    home.worker(
        "exit 3",
        "[supervise]\nretries = 2\ndelay = \"100ms\"\n\
         [hooks]\non_failure = [\"sleep\", \"1000\"]\non_give_up = [\"sh\", \"-c\", \"echo gave up: $SYGEN_REASON\"]\ntimeout = \"2s\"",
    );
    let started = std::time::Instant::now();
    let (code, log) = home.run_to_end(&["--supervise"], true);
    assert_eq!(code, Some(3), "{log}");
    assert_eq!(home.worker_pids().len(), 3, "retried on time: {log}");
    assert!(
        log.contains("hook on_give_up not run: hook on_failure (pid "),
        "{log}"
    );
    assert!(log.contains("still ran after 2s: ending it"), "{log}");
    let hook: u32 = log
        .split("hook on_failure started (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap();
    assert!(!alive(hook), "the hook is ended");
    assert!(started.elapsed() < Duration::from_secs(15), "{log}");
    // The retries did not wait for the hook: all three workers came before it was ended.
    let ended_at = log.find("still ran after 2s").unwrap();
    let third = log.match_indices("worker started (pid ").nth(2).unwrap().0;
    assert!(third < ended_at, "{log}");
}

#[test]
fn giving_up_runs_the_give_up_hook() {
    let home = Home::new();
    home.worker(
        "exit 3",
        "[supervise]\nretries = 1\ndelay = \"100ms\"\n\
         [hooks]\non_give_up = [\"sh\", \"-c\", \"echo \\\"$SYGEN_HOOK: $SYGEN_REASON\\\"\"]",
    );
    let (code, log) = home.run_to_end(&["--supervise"], true);
    assert_eq!(code, Some(3), "{log}");
    assert!(
        log.contains("[hook] on_give_up: the worker failed 2 times in a row"),
        "{log}"
    );
}
