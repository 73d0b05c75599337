//! The command line, as clap sees it: the flags and arguments only. What they resolve to (the
//! sygen home, the backend, the configuration) is worked out by the commands.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::{backend::BackendName, config};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the operation failed
  2  usage error
  3  the service is not installed
  4  no usable backend";

#[derive(Parser, Debug)]
#[command(
    name = "sygen",
    version,
    about = "Runs the sygen agent as a per-user background service."
)]
#[command(after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    /// Load this backend library instead of searching for one.
    #[arg(long, global = true, value_name = "FILE")]
    pub backend: Option<PathBuf>,

    /// Load backends without a valid signature although trusted keys exist (warned about).
    #[arg(long, global = true)]
    pub allow_unsigned: bool,

    /// Use this sygen home instead of $SYGEN_HOME (default ~/.sygen).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Colour in messages: auto (on a terminal, unless NO_COLOR is set or TERM=dumb), always or
    /// never.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto, value_name = "WHEN")]
    pub color: Color,

    /// Show more of what happens (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Without a command: onboarding on a first run, else this help.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    /// Whether to colour what goes to stderr.
    pub fn on_stderr(self) -> bool {
        self.on(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    }

    /// Whether to colour what goes to stdout.
    pub fn on_stdout(self) -> bool {
        self.on(std::io::IsTerminal::is_terminal(&std::io::stdout()))
    }

    /// `auto` colours a terminal unless `NO_COLOR` is set or the terminal says it has no
    /// escape codes (`TERM=dumb`).
    fn on(self, terminal: bool) -> bool {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => terminal && !no_color && !dumb,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Install and manage the sygen background service.
    #[command(subcommand, arg_required_else_help = true, after_help = EXIT_CODES)]
    Service(ServiceCommand),
    /// Run the agent in the foreground, supervised (what every service definition starts).
    Run {
        /// Restart a failed worker here, with a pause, even under a service manager.
        #[arg(long)]
        supervise: bool,
    },
    /// Stop sygen: the service, then every process it started.
    Stop(LifecycleWait),
    /// Replace the running agent's worker with a fresh one; waits until it is up.
    Restart(LifecycleWait),
    /// Check the set-up: backend, service manager, service, configuration, logs; each with a fix.
    Doctor(JsonFlag),
    /// The built-in agent (the default worker of `sygen run`).
    Agent {
        /// How often to log a heartbeat; default: `heartbeat_interval` of config.toml. The
        /// runtime passes its own, so a later edit of config.toml cannot stop a restart.
        #[arg(long, value_parser = config::parse_heartbeat_interval, value_name = "DURATION")]
        heartbeat_interval: Option<std::time::Duration>,
    },
    /// Ends what is left of a runtime's tree once that runtime is gone (started by `run`).
    #[command(hide = true)]
    Guard {
        marker: String,
        stop_timeout_ms: u64,
        /// The runtime's pid and start time: whose descendants to watch.
        runtime_pid: u32,
        runtime_start: u64,
    },
    /// Prints, as JSON, the PATH the worker's env file gives it: what doctor and install run
    /// with the service's environment, to read the file as the runtime will.
    #[command(hide = true)]
    WorkerPath,
    /// Print the completion script for a shell (e.g. `sygen completions bash > ~/.local/share/bash-completion/completions/sygen`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print sygen's manual page (roff), e.g. `sygen man | man -l -`.
    Man,
    /// Write a starting configuration and offer to install the background service.
    Onboarding {
        /// Install the service without asking.
        #[arg(long, conflicts_with = "no")]
        yes: bool,
        /// Do not install the service, and do not ask.
        #[arg(long)]
        no: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Install the service and start it; waits until sygen is running.
    Install(InstallArgs),
    /// Start the installed service; waits until sygen is running.
    Start(WaitArgs),
    /// Stop the service; waits until sygen has stopped.
    Stop(WaitArgs),
    /// Stop and remove the service.
    Uninstall(DryRunFlag),
    /// Show whether the service is installed and running.
    Status(JsonFlag),
    /// Show the service's logs.
    Logs(LogsArgs),
    /// List the backend libraries found and which one is used.
    Backends(JsonFlag),
    /// Check that a backend behaves as sygen expects, in a sandboxed service.
    Conformance,
    /// Install, list, remove or roll back backend libraries in $SYGEN_HOME/backends.
    #[command(subcommand)]
    Backend(BackendCommand),
}

#[derive(Subcommand, Debug)]
pub enum BackendCommand {
    /// Check a backend library and install it (keeping the version it replaces).
    Add {
        file: PathBuf,
        /// Install it even when it is older than the installed one.
        #[arg(long)]
        force: bool,
    },
    /// Show each backend sygen finds: the file it uses, its version and why.
    List,
    /// Remove an installed backend (and the version kept for rollback).
    Remove {
        #[arg(value_parser = BackendName::parse)]
        name: BackendName,
    },
    /// Use this backend for every command from now on (writes `backend = "<name>"` into
    /// config.toml).
    Use {
        #[arg(value_parser = BackendName::parse)]
        name: BackendName,
    },
    /// Go back to the version the last `add` replaced.
    Rollback {
        #[arg(value_parser = BackendName::parse)]
        name: BackendName,
    },
    /// Update backends from their signed channel: the newest version for this platform
    /// that is newer than the one in use (every installed backend the channel offers, or
    /// those named).
    Update {
        #[arg(value_parser = BackendName::parse)]
        names: Vec<BackendName>,
        /// Only say what would change.
        #[arg(long)]
        check: bool,
        /// With --check: print what the channel offers as JSON.
        #[arg(long, requires = "check")]
        json: bool,
        /// The channel manifest's URL (https://, or file:// for a mirror), instead of
        /// `channel` in [updates] of config.toml.
        #[arg(long, value_name = "URL")]
        channel: Option<String>,
    },
    /// For a backend's publisher: sign a backend library and add it to a channel manifest,
    /// then sign the manifest.
    Publish {
        /// The backend library.
        library: PathBuf,
        /// The minisign secret key to sign with (an encrypted one is opened with
        /// $SYGEN_SIGNING_PASSWORD, or a password asked for).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where users will download the library from: an https:// or file:// URL, or a path
        /// relative to the manifest's own URL (as a release's channel has it, so any mirror of
        /// it works).
        #[arg(long, value_name = "URL")]
        url: String,
        /// The channel manifest to add it to (made if missing); its signature is written
        /// beside it as <manifest>.minisig.
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// The channel's name, for a new manifest or to rename one (default: stable).
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
        /// The target it runs on, <os>-<arch> (default: this machine's, e.g. linux-x86_64).
        #[arg(long, value_name = "OS-ARCH")]
        target: Option<String>,
        /// How long users may believe the manifest (1h to 366d).
        #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = humantime::parse_duration)]
        expires_in: std::time::Duration,
    },
    /// Load backend libraries and print what each is, and with --available whether its
    /// service manager answers: one line of JSON per file (used to find backends, in a child
    /// process).
    #[command(hide = true)]
    Describe {
        #[arg(long)]
        available: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    #[command(flatten)]
    pub dry_run: DryRunFlag,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct DryRunFlag {
    /// Print the files that would be written or removed and the commands that would run,
    /// changing nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct WaitArgs {
    /// How long to wait for the service to reach its new state (e.g. 30s, 2m; at most 1 day).
    #[arg(long, default_value = "30s", value_parser = config::parse_timeout, value_name = "DURATION")]
    pub timeout: std::time::Duration,
    /// Return once the service manager has the request, without waiting.
    #[arg(long, conflicts_with = "timeout")]
    pub no_wait: bool,
}

impl Default for WaitArgs {
    /// What the flags default to, for callers without a command line (bare `sygen`).
    fn default() -> Self {
        Self {
            timeout: std::time::Duration::from_secs(30),
            no_wait: false,
        }
    }
}

/// How `sygen stop` and `sygen restart` wait for the runtime.
#[derive(Args, Debug, Clone, Copy)]
pub struct LifecycleWait {
    /// How long the runtime gets (to stop before it is killed; to start a new worker); default:
    /// the worker's stop timeout and 5 s more (at most 1 day).
    #[arg(long, value_parser = config::parse_timeout, value_name = "DURATION")]
    pub timeout: Option<std::time::Duration>,
    /// Send the request and return, without waiting (nor killing what does not stop).
    #[arg(long, conflicts_with = "timeout")]
    pub no_wait: bool,
}

#[derive(Args, Debug)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing new lines as they arrive.
    #[arg(short, long)]
    pub follow: bool,
    /// How many past lines to show.
    #[arg(short = 'n', long, default_value_t = 50, value_name = "N")]
    pub lines: u32,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        // clap's own checks of every command and argument (names, conflicts, defaults).
        Cli::command().debug_assert();
    }
}
