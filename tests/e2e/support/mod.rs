//! What the end-to-end tests need: where the built artifacts are, how a finished command
//! looks, and waiting for something that happens in another process.

pub mod runtime;
mod shared;

pub use shared::{artifacts, copy_executable, read_pid, repository};

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

/// Runs `command` as a user whose home is `home`, with none of the caller's own sygen
/// settings: an exported `SYGEN_HOME` or `SYGEN_BACKEND` would otherwise steer the run.
pub fn in_home<'a>(command: &'a mut Command, home: &Path) -> &'a mut Command {
    command.env("HOME", home);
    for variable in [
        "SYGEN_HOME",
        "SYGEN_BACKEND",
        "SYGEN_BACKEND_TIMEOUT",
        "SYGEN_SUPERVISOR",
        "SYGEN_ALLOW_UNSIGNED",
        "RUST_LOG",
        // What the test backends are told to do.
        "MISBEHAVE",
        "ON_LOAD",
    ] {
        command.env_remove(variable);
    }
    command
}

/// A user with an empty home directory, running the real `sygen`.
pub struct User {
    pub home: tempfile::TempDir,
}

impl User {
    pub fn new() -> Self {
        Self {
            home: tempfile::tempdir().expect("temporary home"),
        }
    }

    pub fn sygen_home(&self) -> PathBuf {
        self.home.path().join(".sygen")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(artifacts().join("sygen"));
        command.args(args);
        self.environment(&mut command);
        command
    }

    /// This user's environment, for `command`, whatever program it runs.
    pub fn environment(&self, command: &mut Command) {
        in_home(command, self.home.path()).env_remove("NVM_DIR");
    }

    pub fn run_command(mut command: Command) -> Outcome {
        Outcome::from(command.output().expect("sygen runs"))
    }

    pub fn run(&self, args: &[&str]) -> Outcome {
        Self::run_command(self.command(args))
    }

    /// Runs `args` with the misbehaving test backend told to `behaviour` (`MISBEHAVE`).
    pub fn misbehaving(&self, behaviour: &str, args: &[&str]) -> Outcome {
        let backend = library("misbehaving_backend");
        let mut full = vec!["--backend", backend.to_str().unwrap()];
        full.extend_from_slice(args);
        let mut command = self.command(&full);
        command.env("MISBEHAVE", behaviour);
        Self::run_command(command)
    }
}

/// The built library `lib<name>.so`.
pub fn library(name: &str) -> PathBuf {
    let path = artifacts().join(format!("lib{name}.{}", std::env::consts::DLL_EXTENSION));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace`",
        path.display()
    );
    path
}

/// A copy of a real backend at `path`, with `mode`.
pub fn backend_copy(path: &Path, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(library("misbehaving_backend"), path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_path_buf()
}

/// Runs `sygen ARGS` as `user` on a terminal (`script` gives it one), with `env` added to the
/// user's environment; answers what the terminal showed.
pub fn on_a_terminal(user: &User, args: &str, env: &[(&str, &str)]) -> String {
    let line = format!("'{}' {args}", artifacts().join("sygen").display());
    let mut script = Command::new("script");
    user.environment(&mut script);
    script.args(["-qec", &line, "/dev/null"]);
    // A terminal with colours, whatever the one running the tests is; then `env`.
    script.env_remove("NO_COLOR").env("TERM", "xterm-256color");
    script.envs(env.iter().copied());
    let output = script.output().expect("script (util-linux) runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The keys of a JSON object, sorted.
pub fn sorted_keys(object: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Whether `pid` is a live process (a zombie is not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// The live processes of the machine, by pid.
pub fn live_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| alive(pid))
}

/// How long a command that could hang on a FIFO may take: a hang is what is tested.
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// Makes a FIFO at `path` (and its directory): opening it to read waits for a writer that
/// never comes.
pub fn mkfifo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Runs `command`, failing the test if it does not finish within [`HANG_LIMIT`].
pub fn finishes(mut command: Command) -> Outcome {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("sygen runs");
    let deadline = Instant::now() + HANG_LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {HANG_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    Outcome::from(child.wait_with_output().unwrap())
}

/// Polls `check` until it holds; panics naming `what` after `timeout`.
pub fn eventually(what: &str, timeout: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A finished command: exit code and output.
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Outcome {
    /// Asserts the run failed with `code` and exactly one line on stderr containing `needle`;
    /// answers that line.
    pub fn fails_with(&self, code: i32, needle: &str) -> &str {
        assert_eq!(self.code, Some(code), "stderr: {}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one error line, got: {:?}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        assert!(lines[0].contains(needle), "{needle:?} not in {}", lines[0]);
        lines[0]
    }

    /// Asserts the run succeeded; answers stdout.
    pub fn succeeds(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }
}

/// What `sygen doctor --json` (its outcome) says sygen outlives: each line's situation,
/// whether sygen runs then, and its fix.
pub fn survival_in_doctor(doctor: &Outcome) -> Vec<(String, String, Option<String>)> {
    let report: serde_json::Value = serde_json::from_str(&doctor.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}{}", doctor.stdout, doctor.stderr));
    report["survival"]
        .as_array()
        .unwrap_or_else(|| panic!("no survival in {report:#}"))
        .iter()
        .map(|line| {
            let text = |key: &str| line[key].as_str().map(str::to_owned);
            (
                text("situation").unwrap_or_default(),
                text("runs").unwrap_or_default(),
                text("fix"),
            )
        })
        .collect()
}

/// Whether `stdout` ends with `done`, `; running: runtime pid N, worker pid M`: the line sygen
/// prints once the state it waited for is reached.
pub fn ends_running(stdout: &str, done: &str) -> bool {
    let Some(last) = stdout.strip_suffix('\n').and_then(|s| s.lines().last()) else {
        return false;
    };
    let Some(pids) = last
        .strip_prefix(done)
        .and_then(|rest| rest.strip_prefix("; running: runtime pid "))
    else {
        return false;
    };
    let Some((runtime, worker)) = pids.split_once(", worker pid ") else {
        return false;
    };
    runtime.parse::<u32>().is_ok() && worker.parse::<u32>().is_ok()
}

/// Writes a `/bin/sh` script with `body` at `path`, executable.
pub fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write the script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Puts the built `simulator` on a PATH under `home` as the platform tool `tool`; answers
/// that PATH (the simulator first, then the system's).
pub fn path_with_simulated(home: &Path, simulator: &str, tool: &str) -> String {
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let link = bin.join(tool);
    if !link.exists() {
        std::os::unix::fs::symlink(artifacts().join(simulator), &link).expect("symlink");
    }
    format!("{}:/usr/bin:/bin", bin.display())
}

/// Reads the built-in agent's `heartbeat N` lines from a followed log until three arrived.
pub fn three_heartbeats(output: impl std::io::Read) -> Vec<u64> {
    use std::io::BufRead;
    std::io::BufReader::new(output)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            l.rsplit_once("heartbeat ")
                .and_then(|(_, n)| n.parse().ok())
        })
        .take(3)
        .collect()
}

/// Checks a `sygen service conformance` run passed every check, and keeps its table in
/// `target/<profile>/conformance/<backend>.txt`, which `scripts/test` prints at the end.
pub fn passed_conformance(backend: &str, outcome: &Outcome) {
    let dir = artifacts().join("conformance");
    std::fs::create_dir_all(&dir).expect("conformance dir");
    std::fs::write(dir.join(format!("{backend}.txt")), &outcome.stdout).expect("table");
    assert_eq!(
        outcome.code,
        Some(0),
        "{backend} conformance:\n{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    assert!(
        outcome.stdout.contains("12 of 12 checks passed"),
        "{}",
        outcome.stdout
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Copies the package in `dir` (of this repository, or made outside it) into a temporary
/// directory, lets `prepare` adjust the copy, and builds it there with cargo, as someone
/// outside the repository would. The workspace's lock file goes along, so the same dependency
/// versions are used and nothing is fetched anew. Answers the directory holding the build's
/// artifacts.
pub fn build_out_of_tree(dir: &Path, prepare: impl FnOnce(&Path)) -> PathBuf {
    cargo_out_of_tree(dir, prepare, &["build"], &[]).0
}

/// Runs `cargo <args>` with `env` on a copy of the package in `dir` made outside the
/// repository (after `prepare` adjusts the copy), into a target directory of its own; answers
/// the build directory and what cargo printed on stdout.
pub fn cargo_out_of_tree(
    dir: &Path,
    prepare: impl FnOnce(&Path),
    args: &[&str],
    env: &[(&str, &Path)],
) -> (PathBuf, String) {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    std::fs::copy(
        repository().join("Cargo.lock"),
        copy.path().join("Cargo.lock"),
    )
    .unwrap();
    prepare(copy.path());
    let target = artifacts().join("out-of-tree");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = std::process::Command::new(cargo)
        .args(args)
        .current_dir(copy.path())
        .env("CARGO_TARGET_DIR", &target)
        .envs(env.iter().copied())
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&build.stdout).into_owned();
    assert!(
        build.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    (target.join("debug"), stdout)
}

/// A service manager in a namespace of its own, run by a harness script (`tests/<name>/harness`
/// with the verbs `up`, `exec`, `root` and `down` on a state directory); down when dropped.
pub struct Namespace {
    script: PathBuf,
    pub state: PathBuf,
}

impl Namespace {
    /// Brings the harness up with its `options`. `None` (after saying why) where it cannot run
    /// here and this is not CI.
    pub fn up(name: &str, options: &[&str]) -> Option<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(name)
            .join("harness");
        let state = tempfile::Builder::new()
            .prefix(&format!("sygen-{name}-"))
            .tempdir()
            .expect("state dir")
            .keep();
        let output = Command::new(&script)
            .arg("up")
            .arg(&state)
            .args(options)
            .output()
            .expect("harness runs");
        if output.status.code() == Some(77) && std::env::var("CI").as_deref() != Ok("true") {
            eprintln!(
                "skipped: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            let _ = std::fs::remove_dir_all(&state);
            return None;
        }
        assert!(
            output.status.success(),
            "harness up failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(Self { script, state })
    }

    /// `command` inside the namespace through the harness verb (`exec` as its user, `root`),
    /// with extra `VAR=value`s.
    pub fn command(&self, verb: &str, vars: &[&str], command: &[&str]) -> Command {
        let mut harness = Command::new(&self.script);
        harness
            .arg(verb)
            .arg(&self.state)
            .args(vars)
            .arg("--")
            .args(command);
        harness
    }

    /// Runs `command` with the harness's `exec` and waits for it.
    pub fn exec(&self, vars: &[&str], command: &[&str]) -> Outcome {
        let output = self
            .command("exec", vars, command)
            .output()
            .expect("harness exec runs");
        Outcome::from(output)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let output = Command::new(&self.script)
            .arg("down")
            .arg(&self.state)
            .output();
        match output {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("harness down: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => panic!("harness down did not run: {e}"),
        }
    }
}

/// What [`tree`] records of each path: its kind, and a file's bytes or a link's target.
pub type Tree = std::collections::BTreeMap<PathBuf, (&'static str, Vec<u8>)>;

/// Every path under `root` with what it is and holds (a file's bytes, a link's target), to
/// show that something changed nothing.
pub fn tree(root: &Path) -> Tree {
    let mut entries = Tree::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
            let entry = if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                ("link", target.into_os_string().into_encoded_bytes())
            } else if kind.is_dir() {
                dirs.push(path.clone());
                ("dir", Vec::new())
            } else {
                ("file", std::fs::read(&path).unwrap())
            };
            entries.insert(path, entry);
        }
    }
    entries
}

/// Asserts `root` holds what `before` recorded, naming every path that differs.
pub fn assert_unchanged(root: &Path, before: &Tree) {
    let after = tree(root);
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|path| before.get(*path) != after.get(*path))
        .collect();
    assert!(changed.is_empty(), "the dry run changed {changed:?}");
}

/// The lines of a dry run that are not file contents.
pub fn dry_run_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("would ") || l.starts_with("dry run: "))
        .collect()
}

/// The content a dry run printed for the file it would write: the lines after `header`, up to
/// the dry run's next line.
pub fn printed_content(stdout: &str, header: &str) -> String {
    let mut lines = stdout.lines().skip_while(|l| *l != header);
    assert!(lines.next().is_some(), "no `{header}` in {stdout}");
    lines
        .take_while(|l| !l.starts_with("would ") && !l.starts_with("dry run: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A tmpfs of `size` mounted at `dir`, unmounted when dropped. Needs root; `None` (after
/// saying why) without it, except under CI.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .unwrap();
        if mounted.status.success() {
            return Some(Self(dir.to_path_buf()));
        }
        let why = String::from_utf8_lossy(&mounted.stderr);
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot mount a tmpfs under CI: {why}"
        );
        eprintln!("skipped: cannot mount a tmpfs (needs root): {why}");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `sygen service status` output split into what the backend printed and the runtime's line
/// (from its record; empty when there is none).
pub fn status_and_runtime(stdout: &str) -> (String, String) {
    let (mut backend, mut runtime) = (String::new(), String::new());
    for line in stdout.lines() {
        let to = match line.starts_with("runtime: ") || line.starts_with("  hint: ") {
            true => &mut runtime,
            false => &mut backend,
        };
        to.push_str(line);
        to.push('\n');
    }
    (backend, runtime)
}
