//! A stateful stand-in for macOS's `launchctl`, so the launchd backend can be tested on Linux.
//!
//! It keeps launchd's state in `$LAUNCHCTL_SIM_STATE` and really runs the jobs: a detached
//! runner process per loaded job starts `ProgramArguments` with `EnvironmentVariables` and the
//! standard output and error paths, records the pid and the raw wait status, and applies
//! `KeepAlive` after `ThrottleInterval`. It answers with macOS's words and exit codes:
//!
//! - `print`, `enable`, `disable`, `bootstrap`, `bootout`, `kickstart [-k]`, `kill`, `list`, and
//!   the legacy `load [-w]`, `unload [-w]`, `start`, `stop`;
//! - an already loaded (or still unloading) or disabled label: `Bootstrap failed: 5:
//!   Input/output error`; an unknown service: `Could not find service … in domain for port`,
//!   exit 113; `bootout` of an unloaded one: `Boot-out failed: 3: No such process`;
//! - `bootout` is asynchronous: the label stays visible until the job has ended plus
//!   `LAUNCHCTL_SIM_BOOTOUT_DELAY_MS`.
//!
//! Variations: `LAUNCHCTL_SIM_NO_GUI=1` (no GUI login: no `gui/<uid>` domain, as over SSH),
//! `LAUNCHCTL_SIM_LEGACY=1` (launchctl 1: none of the domain subcommands),
//! `LAUNCHCTL_SIM_BOOTSTRAP_FAILS=1` (launchd refuses every bootstrap with error 5),
//! `LAUNCHCTL_SIM_THROTTLE_MS` (what one `ThrottleInterval` second lasts; default 1000).
//! Every invocation is appended to `$LAUNCHCTL_SIM_STATE/calls`. `launchctl-sim shutdown`
//! ends every job (for test teardown); it is not a launchctl subcommand.

use std::{
    fs,
    os::unix::process::{CommandExt, ExitStatusExt},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    thread,
    time::Duration,
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::{getuid, Pid},
};
use sim_process::{alive, read_number, record_call, wait_until};

/// How long the simulator waits for a program to react to a signal.
const SETTLE: Duration = Duration::from_secs(5);

const NOT_FOUND: u8 = 113;

struct Sim {
    state: PathBuf,
    uid: u32,
}

/// A failure as launchctl prints it: text on stderr and an exit code.
struct Exit(u8, String);

type Answer = Result<String, Exit>;

fn flag(name: &str) -> bool {
    std::env::var(name).as_deref() == Ok("1")
}

fn millis(name: &str, default: u64) -> Duration {
    Duration::from_millis(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn not_found(label: &str) -> Exit {
    Exit(
        NOT_FOUND,
        format!("Could not find service \"{label}\" in domain for port"),
    )
}

/// A loaded job: its directory holds `plist` (the path loaded), `runner` and `pid` (the
/// runner's and the program's pids), `status` (the last raw wait status), `unloading`.
struct Job {
    dir: PathBuf,
    domain: String,
}

impl Job {
    fn plist_path(&self) -> PathBuf {
        PathBuf::from(fs::read_to_string(self.dir.join("plist")).unwrap_or_default())
    }

    fn pid(&self) -> Option<i32> {
        read_number(&self.dir.join("pid")).filter(|&p| alive(p))
    }

    fn runner(&self) -> Option<i32> {
        read_number(&self.dir.join("runner")).filter(|&p| alive(p))
    }

    fn last_status(&self) -> Option<i32> {
        read_number(&self.dir.join("status"))
    }

    fn unloading(&self) -> bool {
        self.dir.join("unloading").exists()
    }
}

impl Sim {
    fn domain_dir(&self, domain: &str) -> PathBuf {
        self.state.join("jobs").join(domain.replace('/', "_"))
    }

    fn disabled_marker(&self, domain: &str, label: &str) -> PathBuf {
        self.state
            .join("disabled")
            .join(domain.replace('/', "_"))
            .join(label)
    }

    /// Checks a domain target: `gui/<uid>` or `user/<uid>` of the caller.
    fn domain(&self, target: &str) -> Result<String, Exit> {
        let (kind, uid) = target
            .split_once('/')
            .ok_or_else(|| Exit(64, format!("Unrecognized target specifier: {target}")))?;
        if uid != self.uid.to_string() || !matches!(kind, "gui" | "user") {
            return Err(Exit(
                NOT_FOUND,
                format!("Could not find domain for {target}"),
            ));
        }
        if kind == "gui" && flag("LAUNCHCTL_SIM_NO_GUI") {
            return Err(Exit(
                NOT_FOUND,
                format!("Could not find domain for user gui: {uid}"),
            ));
        }
        Ok(target.to_owned())
    }

    /// Splits a service target `<domain>/<label>`.
    fn service(&self, target: &str) -> Result<(String, String), Exit> {
        let (domain, label) = target
            .rsplit_once('/')
            .filter(|(d, _)| d.contains('/'))
            .ok_or_else(|| Exit(64, format!("Unrecognized target specifier: {target}")))?;
        Ok((self.domain(domain)?, label.to_owned()))
    }

    fn job(&self, domain: &str, label: &str) -> Option<Job> {
        let dir = self.domain_dir(domain).join(label);
        dir.join("plist").exists().then(|| Job {
            dir,
            domain: domain.to_owned(),
        })
    }

    fn loaded(&self, target: &str) -> Result<Job, Exit> {
        let (domain, label) = self.service(target)?;
        self.job(&domain, &label).ok_or_else(|| not_found(&label))
    }

    fn print(&self, target: &str) -> Answer {
        if target.matches('/').count() == 1 {
            let domain = self.domain(target)?;
            return Ok(format!(
                "{domain} = {{\n\ttype = {}\n}}\n",
                domain_type(&domain)
            ));
        }
        let job = self.loaded(target)?;
        // A job being removed (after a bootout) may lose its files while we look: it is gone.
        let (_, label) = self.service(target)?;
        let plist = read_plist(&job.plist_path()).map_err(|_| not_found(&label))?;
        let pid = job.pid();
        let mut out = format!(
            "{target} = {{\n\tactive count = {}\n\tpath = {}\n\ttype = LaunchAgent\n\tstate = {}\n\n",
            u8::from(pid.is_some()),
            job.plist_path().display(),
            if pid.is_some() { "running" } else { "not running" },
        );
        out += &format!(
            "\tprogram = {}\n\targuments = {{\n",
            plist.program_arguments[0]
        );
        for argument in &plist.program_arguments {
            out += &format!("\t\t{argument}\n");
        }
        out += "\t}\n\n";
        out += &format!("\tdomain = {} [100005]\n", job.domain);
        if let Some(pid) = pid {
            out += &format!("\tpid = {pid}\n");
        }
        match job.last_status() {
            None => out += "\tlast exit code = (never exited)\n",
            Some(status) => {
                let status = std::process::ExitStatus::from_raw(status);
                match (status.code(), status.signal()) {
                    (Some(code), _) => out += &format!("\tlast exit code = {code}\n"),
                    (None, Some(signal)) => {
                        out += &format!("\tlast terminating signal = {}\n", signal_name(signal))
                    }
                    _ => {}
                }
            }
        }
        out += "}\n";
        Ok(out)
    }

    fn set_disabled(&self, target: &str, disabled: bool) -> Answer {
        let (domain, label) = self.service(target)?;
        let marker = self.disabled_marker(&domain, &label);
        if disabled {
            fs::create_dir_all(marker.parent().unwrap_or(&self.state)).map_err(io)?;
            fs::write(&marker, "").map_err(io)?;
        } else {
            let _ = fs::remove_file(&marker);
        }
        Ok(String::new())
    }

    fn bootstrap(&self, domain: &str, plist_path: &str, verb: &str) -> Answer {
        let refused = |code: u8, why: &str| {
            let retry = if verb == "Load" {
                "bootstrap"
            } else {
                "re-running the command"
            };
            Exit(
                code,
                format!("{verb} failed: {code}: {why}\nTry {retry} as root for richer errors."),
            )
        };
        if domain.starts_with("gui/") && flag("LAUNCHCTL_SIM_NO_GUI") {
            return Err(refused(125, "Domain does not support specified action"));
        }
        let domain = self.domain(domain)?;
        let plist = read_plist(Path::new(plist_path)).map_err(|why| {
            Exit(
                5,
                format!("{plist_path}: {why}\n{verb} failed: 5: Input/output error"),
            )
        })?;
        let label = plist.label.clone();
        let disabled = self.disabled_marker(&domain, &label).exists();
        let busy = self.job(&domain, &label).is_some();
        if disabled || busy || flag("LAUNCHCTL_SIM_BOOTSTRAP_FAILS") {
            return Err(refused(5, "Input/output error"));
        }
        let dir = self.domain_dir(&domain).join(&label);
        fs::create_dir_all(&dir).map_err(io)?;
        let absolute = fs::canonicalize(plist_path).map_err(io)?;
        fs::write(dir.join("plist"), absolute.display().to_string()).map_err(io)?;
        if plist.run_at_load {
            self.spawn_runner(&dir)?;
        }
        Ok(String::new())
    }

    fn spawn_runner(&self, dir: &Path) -> Result<(), Exit> {
        let runner = Command::new(std::env::current_exe().map_err(io)?)
            .arg("__run")
            .arg(dir)
            .env("LAUNCHCTL_SIM_STATE", &self.state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(io)?;
        fs::write(dir.join("runner"), runner.id().to_string()).map_err(io)?;
        // Starting is asynchronous in launchd too; wait until the program is up or has ended.
        wait_until(Duration::from_secs(1), || {
            dir.join("pid").exists() || dir.join("status").exists()
        });
        Ok(())
    }

    fn bootout(&self, target: &str, verb: &str) -> Answer {
        let (domain, label) = self.service(target)?;
        let job = self.job(&domain, &label);
        let Some(job) = job.filter(|j| !j.unloading()) else {
            return Err(Exit(3, format!("{verb} failed: 3: No such process")));
        };
        fs::write(job.dir.join("unloading"), "").map_err(io)?;
        if job.runner().is_some() {
            // The runner ends the program and removes the job after a delay: asynchronous.
            if let Some(pid) = job.pid() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        } else {
            fs::remove_dir_all(&job.dir).map_err(io)?;
        }
        Ok(String::new())
    }

    fn kickstart(&self, args: &[String]) -> Answer {
        let restart = args.iter().any(|a| a == "-k");
        let target = args
            .iter()
            .find(|a| !a.starts_with('-'))
            .ok_or_else(usage)?;
        let job = self.loaded(target)?;
        if let Some(pid) = job.pid() {
            if !restart {
                return Ok(String::new());
            }
            // The runner starts the program again at once, whatever KeepAlive says.
            fs::write(job.dir.join("restart-now"), "").map_err(io)?;
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            wait_until(SETTLE, || job.pid().is_some_and(|new| new != pid));
            return Ok(String::new());
        }
        if job.runner().is_none() {
            let _ = fs::remove_file(job.dir.join("pid"));
            self.spawn_runner(&job.dir)?;
        }
        Ok(String::new())
    }

    fn kill(&self, signal: &str, target: &str) -> Answer {
        let job = self.loaded(target)?;
        let signal = parse_signal(signal).ok_or_else(usage)?;
        let pid = job
            .pid()
            .ok_or_else(|| Exit(3, "kill: 3: No such process".to_owned()))?;
        kill(Pid::from_raw(pid), signal).map_err(|e| Exit(1, e.to_string()))?;
        Ok(String::new())
    }

    /// The job labelled `label` in the caller's login domain, then its user domain.
    fn find_by_label(&self, label: &str) -> Option<Job> {
        ["gui", "user"]
            .iter()
            .map(|kind| format!("{kind}/{}", self.uid))
            .filter(|domain| self.domain(domain).is_ok())
            .find_map(|domain| self.job(&domain, label).filter(|j| !j.unloading()))
    }

    fn list(&self, label: &str) -> Answer {
        let job = self.find_by_label(label).ok_or_else(|| not_found(label))?;
        let plist = read_plist(&job.plist_path()).map_err(|_| not_found(label))?;
        let mut out = format!(
            "{{\n\t\"LimitLoadToSessionType\" = \"Aqua\";\n\t\"Label\" = \"{label}\";\n\t\"OnDemand\" = false;\n\t\"LastExitStatus\" = {};\n",
            job.last_status().unwrap_or(0)
        );
        if let Some(pid) = job.pid() {
            out += &format!("\t\"PID\" = {pid};\n");
        }
        out += &format!(
            "\t\"Program\" = \"{}\";\n\t\"ProgramArguments\" = (\n",
            plist.program_arguments[0]
        );
        for argument in &plist.program_arguments {
            out += &format!("\t\t\"{argument}\";\n");
        }
        out += "\t);\n};\n";
        Ok(out)
    }

    /// The caller's domain for the legacy subcommands: its GUI login, else its user domain.
    fn legacy_domain(&self) -> String {
        let kind = if flag("LAUNCHCTL_SIM_NO_GUI") {
            "user"
        } else {
            "gui"
        };
        format!("{kind}/{}", self.uid)
    }

    fn load(&self, args: &[String]) -> Answer {
        let write = args.iter().any(|a| a == "-w");
        let path = args
            .iter()
            .find(|a| !a.starts_with('-'))
            .ok_or_else(usage)?;
        let domain = self.legacy_domain();
        let label = read_plist(Path::new(path))
            .map(|p| p.label)
            .map_err(|why| {
                Exit(
                    5,
                    format!("{path}: {why}\nLoad failed: 5: Input/output error"),
                )
            })?;
        if write {
            self.set_disabled(&format!("{domain}/{label}"), false)?;
        }
        self.bootstrap(&domain, path, "Load")
    }

    fn unload(&self, args: &[String]) -> Answer {
        let write = args.iter().any(|a| a == "-w");
        let path = args
            .iter()
            .find(|a| !a.starts_with('-'))
            .ok_or_else(usage)?;
        let label = read_plist(Path::new(path))
            .map(|p| p.label)
            .map_err(|why| {
                Exit(
                    5,
                    format!("{path}: {why}\nUnload failed: 5: Input/output error"),
                )
            })?;
        let target = format!("{}/{label}", self.legacy_domain());
        if write {
            self.set_disabled(&target, true)?;
        }
        self.bootout(&target, "Unload").map_err(|_| {
            Exit(
                NOT_FOUND,
                "Unload failed: 113: Could not find specified service".into(),
            )
        })
    }

    fn start_stop(&self, label: &str, start: bool) -> Answer {
        let job = self.find_by_label(label).ok_or_else(|| not_found(label))?;
        let target = format!("{}/{label}", job.domain);
        if start {
            self.kickstart(&[target])
        } else {
            // `stop` sends SIGTERM; it is not an error when nothing runs.
            self.kill("SIGTERM", &target).or(Ok(String::new()))
        }
    }

    fn dispatch(&self, args: &[String]) -> Answer {
        let verb = args.first().map(String::as_str).unwrap_or("");
        let rest = args.get(1..).unwrap_or(&[]);
        let one = |n: usize| rest.get(n).map(String::as_str).ok_or_else(usage);
        let modern = [
            "print",
            "enable",
            "disable",
            "bootstrap",
            "bootout",
            "kickstart",
            "kill",
        ];
        if flag("LAUNCHCTL_SIM_LEGACY") && modern.contains(&verb) {
            return Err(Exit(1, format!("Unrecognized subcommand: {verb}")));
        }
        match verb {
            "print" => self.print(one(0)?),
            "enable" => self.set_disabled(one(0)?, false),
            "disable" => self.set_disabled(one(0)?, true),
            "bootstrap" => self.bootstrap(one(0)?, one(1)?, "Bootstrap"),
            "bootout" => self.bootout(one(0)?, "Boot-out"),
            "kickstart" => self.kickstart(rest),
            "kill" => self.kill(one(0)?, one(1)?),
            "list" => self.list(one(0)?),
            "load" => self.load(rest),
            "unload" => self.unload(rest),
            "start" => self.start_stop(one(0)?, true),
            "stop" => self.start_stop(one(0)?, false),
            _ => Err(Exit(1, format!("Unrecognized subcommand: {verb}"))),
        }
    }

    /// The runner of one job: runs the program, records what happens, applies KeepAlive.
    fn run_job(&self, dir: &Path) {
        let throttle_unit = millis("LAUNCHCTL_SIM_THROTTLE_MS", 1000);
        let plist_of = || {
            fs::read_to_string(dir.join("plist"))
                .map_err(|e| e.to_string())
                .and_then(|p| read_plist(Path::new(&p)))
        };
        while let Ok(plist) = plist_of() {
            let status = run_program(&plist, dir);
            let _ = fs::write(dir.join("status"), status.into_raw().to_string());
            let _ = fs::remove_file(dir.join("pid"));
            if dir.join("unloading").exists() {
                break;
            }
            if fs::remove_file(dir.join("restart-now")).is_ok() {
                continue;
            }
            let clean = status.code() == Some(0);
            let again = match plist.keep_alive {
                KeepAliveRule::Always => true,
                KeepAliveRule::Never => false,
                KeepAliveRule::SuccessfulExit(wanted) => clean == wanted,
            };
            if !again {
                return;
            }
            thread::sleep(throttle_unit * plist.throttle_interval.max(1));
            if dir.join("unloading").exists() {
                break;
            }
        }
        thread::sleep(millis("LAUNCHCTL_SIM_BOOTOUT_DELAY_MS", 0));
        let _ = fs::remove_dir_all(dir);
    }

    /// Ends every job: SIGTERM to each program (so it can stop its own children), SIGKILL to
    /// what is left after a moment.
    fn shutdown(&self) {
        let domains = fs::read_dir(self.state.join("jobs")).into_iter().flatten();
        let dirs: Vec<PathBuf> = domains
            .filter_map(|d| d.ok())
            .flat_map(|d| {
                fs::read_dir(d.path())
                    .into_iter()
                    .flatten()
                    .filter_map(|j| j.ok())
            })
            .map(|j| j.path())
            .collect();
        for dir in &dirs {
            let _ = fs::write(dir.join("unloading"), "");
            if let Some(pid) = read_number(&dir.join("pid")) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        for dir in &dirs {
            let pid = read_number(&dir.join("pid"));
            wait_until(SETTLE, || pid.is_none_or(|p| !alive(p)));
            for file in ["pid", "runner"] {
                if let Some(pid) = read_number(&dir.join(file)) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
    }
}

fn run_program(plist: &Plist, dir: &Path) -> std::process::ExitStatus {
    let open = |path: &Option<String>| -> Stdio {
        path.as_ref()
            .and_then(|p| {
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .ok()
            })
            .map_or(Stdio::null(), Stdio::from)
    };
    let mut command = Command::new(&plist.program_arguments[0]);
    command
        .args(&plist.program_arguments[1..])
        .env_clear()
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .envs(std::env::var("USER").map(|u| ("USER", u)))
        .envs(plist.environment.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(open(&plist.stdout))
        .stderr(open(&plist.stderr));
    match command.spawn() {
        Ok(mut child) => {
            let _ = fs::write(dir.join("pid"), child.id().to_string());
            child
                .wait()
                .unwrap_or_else(|_| std::process::ExitStatus::from_raw(78 << 8))
        }
        // launchd reports a job it cannot start as exit 78 (EX_CONFIG).
        Err(_) => std::process::ExitStatus::from_raw(78 << 8),
    }
}

enum KeepAliveRule {
    Always,
    Never,
    SuccessfulExit(bool),
}

/// The parts of a launchd property list the simulator acts on, read strictly.
struct Plist {
    label: String,
    program_arguments: Vec<String>,
    run_at_load: bool,
    keep_alive: KeepAliveRule,
    throttle_interval: u32,
    environment: Vec<(String, String)>,
    stdout: Option<String>,
    stderr: Option<String>,
}

/// Reads a property list as launchd would, refusing wrong types where launchd needs the value.
fn read_plist(path: &Path) -> Result<Plist, String> {
    let value =
        plist::Value::from_file(path).map_err(|e| format!("Invalid property list ({e})"))?;
    let dict = value
        .as_dictionary()
        .ok_or("Invalid property list (not a dictionary)")?;
    let string = |key: &str| -> Result<Option<String>, String> {
        match dict.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_string()
                .map(|s| Some(s.to_owned()))
                .ok_or(format!("{key} is not a string")),
        }
    };
    let boolean = |key: &str| -> Result<bool, String> {
        match dict.get(key) {
            None => Ok(false),
            Some(v) => v.as_boolean().ok_or(format!("{key} is not a boolean")),
        }
    };
    let label = string("Label")?.ok_or("no Label")?;
    let program_arguments: Vec<String> = dict
        .get("ProgramArguments")
        .and_then(|v| v.as_array())
        .ok_or("no ProgramArguments array")?
        .iter()
        .map(|a| {
            a.as_string()
                .map(str::to_owned)
                .ok_or("ProgramArguments holds a non-string")
        })
        .collect::<Result<_, _>>()?;
    if program_arguments
        .first()
        .is_none_or(|p| !p.starts_with('/'))
    {
        return Err("ProgramArguments[0] is not an absolute path".into());
    }
    let keep_alive = match dict.get("KeepAlive") {
        None => KeepAliveRule::Never,
        Some(plist::Value::Boolean(true)) => KeepAliveRule::Always,
        Some(plist::Value::Boolean(false)) => KeepAliveRule::Never,
        Some(plist::Value::Dictionary(rules)) => match rules.get("SuccessfulExit") {
            Some(plist::Value::Boolean(wanted)) => KeepAliveRule::SuccessfulExit(*wanted),
            _ => return Err("KeepAlive.SuccessfulExit is not a boolean".into()),
        },
        Some(_) => return Err("KeepAlive is neither a boolean nor a dictionary".into()),
    };
    let throttle_interval = match dict.get("ThrottleInterval") {
        None => 10,
        Some(v) => v
            .as_unsigned_integer()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("ThrottleInterval is not an integer")?,
    };
    let environment = match dict.get("EnvironmentVariables") {
        None => Vec::new(),
        Some(v) => v
            .as_dictionary()
            .ok_or("EnvironmentVariables is not a dictionary")?
            .iter()
            .map(|(k, v)| {
                v.as_string()
                    .map(|s| (k.clone(), s.to_owned()))
                    .ok_or(format!("EnvironmentVariables.{k} is not a string"))
            })
            .collect::<Result<_, _>>()?,
    };
    let absolute = |path: Option<String>, key: &str| match path {
        Some(p) if !p.starts_with('/') => Err(format!("{key} is not an absolute path")),
        other => Ok(other),
    };
    string("ProcessType")?;
    Ok(Plist {
        label,
        program_arguments,
        run_at_load: boolean("RunAtLoad")?,
        keep_alive,
        throttle_interval,
        environment,
        stdout: absolute(string("StandardOutPath")?, "StandardOutPath")?,
        stderr: absolute(string("StandardErrorPath")?, "StandardErrorPath")?,
    })
}

fn domain_type(domain: &str) -> &'static str {
    if domain.starts_with("gui/") {
        "login"
    } else {
        "user"
    }
}

fn parse_signal(name: &str) -> Option<Signal> {
    let name = name.trim_start_matches("SIG").to_uppercase();
    match name.as_str() {
        "TERM" | "15" => Some(Signal::SIGTERM),
        "KILL" | "9" => Some(Signal::SIGKILL),
        "INT" | "2" => Some(Signal::SIGINT),
        "HUP" | "1" => Some(Signal::SIGHUP),
        _ => None,
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        15 => "Terminated: 15",
        9 => "Killed: 9",
        2 => "Interrupt: 2",
        _ => "Unknown signal",
    }
}

fn usage() -> Exit {
    Exit(
        64,
        "Usage: launchctl <subcommand> ... | help [subcommand]".into(),
    )
}

fn io(error: std::io::Error) -> Exit {
    Exit(5, format!("Input/output error ({error})"))
}

pub fn main() -> ExitCode {
    let Some(state) = std::env::var_os("LAUNCHCTL_SIM_STATE").map(PathBuf::from) else {
        eprintln!("launchctl-sim: set LAUNCHCTL_SIM_STATE to a directory");
        return ExitCode::from(70);
    };
    let sim = Sim {
        state,
        uid: getuid().as_raw(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("__run") => {
            if let Some(dir) = args.get(1) {
                sim.run_job(Path::new(dir));
            }
            return ExitCode::SUCCESS;
        }
        Some("shutdown") => {
            sim.shutdown();
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    record_call(&sim.state, &args);
    match sim.dispatch(&args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(Exit(code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}
