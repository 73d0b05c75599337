//! A sygen home in a temporary directory, with `sygen run` and its commands driven there: what
//! the runtime suites share.

use std::{
    fs,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::{artifacts, eventually, live_pids, write_script, Outcome};

pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary home"),
        }
    }

    pub fn sygen_home(&self) -> PathBuf {
        self.dir.path().join(".sygen")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(artifacts().join("sygen"));
        super::in_home(command.args(args), self.dir.path())
            .env("SYGEN_HOME", self.sygen_home())
            .env_remove("XDG_CONFIG_HOME")
            .stdin(Stdio::null());
        command
    }

    /// Writes a shell worker and a config running it, plus `extra` config lines.
    pub fn worker(&self, script: &str, extra: &str) {
        fs::create_dir_all(self.sygen_home()).unwrap();
        let path = self.sygen_home().join("worker.sh");
        write_script(&path, script);
        fs::write(
            self.sygen_home().join("config.toml"),
            format!(
                "[agent]\ncommand = [{:?}]\n{extra}\n",
                path.to_str().unwrap()
            ),
        )
        .unwrap();
    }

    pub fn spawn_run(&self, args: &[&str], supervisor: bool) -> Child {
        let mut command = self.command(&[&["run"], args].concat());
        if supervisor {
            command.env("SYGEN_SUPERVISOR", "1");
        }
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sygen run starts")
    }

    /// Starts `sygen run` as a service manager would, its output going to `stdout` and `stderr`.
    pub fn run_with(&self, stdout: impl Into<Stdio>, stderr: impl Into<Stdio>) -> Child {
        self.command(&["run"])
            .env("SYGEN_SUPERVISOR", "1")
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("sygen run starts")
    }

    /// Starts `sygen run` under a service manager; answers it and its first worker's pid.
    pub fn start(&self) -> (Child, u32) {
        let run = self.spawn_run(&[], true);
        eventually("the worker", Duration::from_secs(5), || {
            self.pid_file("worker.pid").is_some()
        });
        let worker = self.pid_file("worker.pid").expect("worker.pid");
        (run, worker)
    }

    pub fn run_to_end(&self, args: &[&str], supervisor: bool) -> (Option<i32>, String) {
        let mut child = self.spawn_run(args, supervisor);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "sygen run did not end");
            thread::sleep(Duration::from_millis(20));
        };
        (status.code(), self.log())
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.sygen_home().join("logs/agent.log")).unwrap_or_default()
    }

    pub fn worker_pids(&self) -> Vec<u32> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("worker started (pid "))
            .filter_map(|(_, rest)| rest.trim_end_matches(')').parse().ok())
            .collect()
    }

    pub fn pid_file(&self, name: &str) -> Option<u32> {
        super::read_pid(&self.sygen_home().join(name))
    }

    pub fn sygen(&self, args: &[&str]) -> Outcome {
        Outcome::from(self.command(args).output().expect("sygen runs"))
    }
}

pub fn terminate(child: &mut Child) -> Option<i32> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap().code()
}

/// The guard `runtime` started: its child running `sygen guard`.
pub fn guard_of(runtime: u32) -> u32 {
    live_pids()
        .find(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            let args = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            parent == Some(runtime) && args.split(|&b| b == 0).nth(1) == Some(b"guard")
        })
        .expect("the runtime's guard")
}

/// Kills `run` and its guard together, as the OOM killer or a `kill -9` of both would: what
/// its worker's tree leaves is then for the next `sygen run` or `sygen stop`.
pub fn kill_with_guard(run: &mut Child) {
    let guard = guard_of(run.id());
    let killed = Command::new("kill")
        .args(["-KILL", &guard.to_string()])
        .status();
    assert!(killed.is_ok_and(|s| s.success()));
    eventually("the guard's end", Duration::from_secs(5), || {
        !super::alive(guard)
    });
    run.kill().unwrap();
    run.wait().unwrap();
}
