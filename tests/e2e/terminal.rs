//! What sygen shows a person at a terminal: tmux runs it in a real pseudo-terminal, the test
//! reads the screen while it runs, and keeps every byte sygen wrote to the terminal.
//!
//! Needs tmux; without it the tests print why and pass, except under CI (`CI=true`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::support::{self, artifacts, eventually, library, path_with_simulated, write_script};

/// The frames of the spinner.
const SPINNER: &str = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏";

/// A worker that takes two seconds to stop, so there is a wait to watch.
const SLOW_WORKER: &str = "trap 'sleep 2; exit 0' TERM\nwhile :; do sleep 0.1; done";

/// One command running in a tmux session of its own (its own server socket).
struct Terminal {
    dir: tempfile::TempDir,
}

impl Terminal {
    /// Runs `program args` on a 100×25 terminal with exactly the environment `env` (plus
    /// tmux's TERM), recording what it writes. `None`, after saying why, without tmux.
    fn run(program: &Path, args: &[&str], env: &[(&str, String)]) -> Option<Self> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "tmux is missing: CI must run the terminal tests"
            );
            println!("skipped: tmux is not installed");
            return None;
        }
        let terminal = Self {
            dir: tempfile::tempdir().expect("terminal dir"),
        };
        let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
        let exports: String = env
            .iter()
            .map(|(key, value)| format!("export {key}={}\n", quote(value)))
            .collect();
        let command: Vec<String> = std::iter::once(program.to_str().unwrap())
            .chain(args.iter().copied())
            .map(quote)
            .collect();
        let go = terminal.dir.path().join("go");
        let script = terminal.dir.path().join("run.sh");
        // Waits for `go`, so the recording is in place before sygen writes anything.
        write_script(
            &script,
            &format!(
                "{exports}while [ ! -e {go} ]; do sleep 0.02; done\n{}\necho \"exit=$?\"\nsleep 600",
                command.join(" "),
                go = quote(go.to_str().unwrap()),
            ),
        );
        // tmux's own TERM, nothing else from this process.
        let start = format!(
            "env -i TERM=\"$TERM\" PATH=/usr/bin:/bin {}",
            quote(script.to_str().unwrap())
        );
        terminal.tmux(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "100",
            "-y",
            "25",
            &start,
        ]);
        let raw = terminal.dir.path().join("raw");
        terminal.tmux(&[
            "pipe-pane",
            "-o",
            "-t",
            "t",
            &format!("cat >> {}", quote(raw.to_str().unwrap())),
        ]);
        fs::write(&go, "").unwrap();
        Some(terminal)
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(self.dir.path().join("socket"))
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen as a person sees it now.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    /// Every byte sygen wrote to the terminal so far.
    fn raw(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.dir.path().join("raw")).unwrap_or_default())
            .into_owned()
    }

    /// Watches the screen until the command has exited; answers every distinct screen seen.
    fn screens_until_exit(&self) -> Vec<String> {
        let mut screens: Vec<String> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if screens.last() != Some(&screen) {
                screens.push(screen.clone());
            }
            if screen.contains("exit=") {
                return screens;
            }
            assert!(Instant::now() < deadline, "still running: {screen}");
            thread::sleep(Duration::from_millis(30));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.dir.path().join("socket"))
            .arg("kill-server")
            .status();
    }
}

/// A home whose sygen runs the slow worker.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        let home = Self {
            dir: tempfile::tempdir().expect("home"),
        };
        let sygen_home = home.sygen_home();
        fs::create_dir_all(&sygen_home).unwrap();
        let worker = sygen_home.join("slow-worker.sh");
        write_script(&worker, SLOW_WORKER);
        fs::write(
            sygen_home.join("config.toml"),
            format!(
                "[agent]\ncommand = [{:?}]\nstop_timeout = \"10s\"\n",
                worker.to_str().unwrap()
            ),
        )
        .unwrap();
        home
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn sygen_home(&self) -> PathBuf {
        self.path().join(".sygen")
    }

    fn env(&self, no_color: bool) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("HOME", self.path().display().to_string()),
            ("PATH", "/usr/bin:/bin".to_owned()),
        ];
        if no_color {
            env.push(("NO_COLOR", "1".to_owned()));
        }
        env
    }

    fn worker_pid(&self) -> Option<String> {
        support::read_pid(&self.sygen_home().join("worker.pid")).map(|pid| pid.to_string())
    }

    /// `sygen run` in the background, not on the terminal, until its worker is up.
    fn run_in_background(&self) -> Child {
        let mut command = Command::new(artifacts().join("sygen"));
        command
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        support::in_home(&mut command, self.path());
        let child = command.spawn().expect("sygen run starts");
        eventually("the first worker", Duration::from_secs(5), || {
            self.worker_pid().is_some()
        });
        child
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// The screens of a `sygen restart` on a terminal, and the raw bytes it wrote.
fn restart_on_a_terminal(no_color: bool) -> Option<(Vec<String>, String, String, String)> {
    let home = Home::new();
    let runtime = home.run_in_background();
    let old = home.worker_pid().unwrap();
    let Some(terminal) = Terminal::run(
        &artifacts().join("sygen"),
        &["restart"],
        &home.env(no_color),
    ) else {
        stop(runtime);
        return None;
    };
    let screens = terminal.screens_until_exit();
    let new = home.worker_pid().unwrap();
    let raw = terminal.raw();
    stop(runtime);
    Some((screens, raw, old, new))
}

#[test]
fn restart_shows_a_spinner_then_the_new_worker() {
    let Some((screens, raw, old, new)) = restart_on_a_terminal(false) else {
        return;
    };
    let waiting = screens
        .iter()
        .find(|s| s.contains("waiting for the runtime"))
        .unwrap_or_else(|| panic!("no waiting screen in {screens:#?}"));
    let line = waiting
        .lines()
        .find(|l| l.contains("waiting for the runtime"))
        .unwrap();
    assert!(
        line.chars().next().is_some_and(|c| SPINNER.contains(c)),
        "the line starts with a spinner frame: {line:?}"
    );
    assert!(line.contains("to replace the worker ("), "{line:?}");
    let frames: std::collections::BTreeSet<char> =
        raw.chars().filter(|c| SPINNER.contains(*c)).collect();
    assert!(frames.len() >= 3, "the spinner turns: {frames:?}");

    let last = screens.last().unwrap();
    assert!(
        last.contains(&format!("restarted the worker: pid {old} → {new}")),
        "{last}"
    );
    assert!(last.contains("exit=0"), "{last}");
    assert!(
        !last.contains("waiting for"),
        "the spinner is cleared: {last}"
    );
}

#[test]
fn no_color_means_plain_lines_and_no_escape_codes() {
    let Some((screens, raw, old, new)) = restart_on_a_terminal(true) else {
        return;
    };
    assert!(!raw.contains('\x1b'), "escape codes with NO_COLOR: {raw:?}");
    assert!(!raw.chars().any(|c| SPINNER.contains(c)), "{raw:?}");
    let last = screens.last().unwrap();
    assert!(
        last.contains("waiting for the runtime") && last.contains("to replace the worker…"),
        "a plain line says what the wait is for: {last}"
    );
    assert!(
        last.contains(&format!("restarted the worker: pid {old} → {new}")),
        "{last}"
    );
}

#[test]
fn install_and_stop_on_a_terminal_end_with_the_state_reached() {
    let home = Home::new();
    let launchd = tempfile::tempdir().unwrap();
    let mut env = home.env(false);
    env[1].1 = path_with_simulated(home.path(), "launchctl-sim", "launchctl");
    env.push(("LAUNCHCTL_SIM_STATE", launchd.path().display().to_string()));
    env.push(("LAUNCHCTL_SIM_THROTTLE_MS", "100".to_owned()));
    let backend = library("sygen_launchd");
    let sygen = artifacts().join("sygen");
    let service = |verb: &str| -> Option<Vec<String>> {
        let args = ["--backend", backend.to_str().unwrap(), "service", verb];
        Some(Terminal::run(&sygen, &args, &env)?.screens_until_exit())
    };
    let shutdown = || {
        let mut command = Command::new(artifacts().join("launchctl-sim"));
        command
            .arg("shutdown")
            .env("LAUNCHCTL_SIM_STATE", launchd.path());
        let _ = command.status();
    };

    let Some(screens) = service("install") else {
        return;
    };
    let last = screens.last().unwrap();
    let worker = home.worker_pid().unwrap();
    let runtime = support::read_pid(&home.sygen_home().join("bot.pid")).unwrap();
    let state_line = format!(
        "sygen service installed (launchd backend, named with --backend); running: runtime pid {runtime}, worker pid {worker}",
    );
    // The line is longer than the terminal is wide, and the screen keeps no trailing spaces:
    // compare without any whitespace.
    let squashed = |text: &str| text.split_whitespace().collect::<String>();
    if !squashed(last).contains(&squashed(&state_line)) || !last.contains("exit=0") {
        shutdown();
        panic!("{state_line:?} not in {last}");
    }

    // Stopping takes the slow worker's two seconds: the spinner says so meanwhile.
    let screens = service("stop").unwrap();
    shutdown();
    assert!(
        screens
            .iter()
            .any(|s| s.lines().any(|l| l.contains("stopping sygen")
                && l.chars().next().is_some_and(|c| SPINNER.contains(c)))),
        "{screens:#?}"
    );
    let last = screens.last().unwrap();
    assert!(
        last.contains("sygen service stopped") && last.contains("exit=0"),
        "{last}"
    );
    assert!(
        !last.contains("stopping sygen"),
        "the spinner is cleared: {last}"
    );
}
