//! `$SYGEN_HOME/config.toml`: which worker to run and how to supervise and log it.
//!
//! Every key has a default, so a missing file is a valid (empty) configuration. Unknown keys are
//! errors, so a typo is reported instead of silently ignored; every duration, count and size
//! has a range, checked here, so no later arithmetic on it can overflow or spin; every error
//! names the file, the line and the key. Only a regular file (or a link to one) is read, and
//! only up to [`MAX_FILE_BYTES`].
//!
//! It lives outside the runtime because most of sygen reads it: which backend to use and its
//! settings, the update channel, the worker doctor checks.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde::Deserialize;

use crate::{
    backend::{BackendName, Preferences},
    exit::{self, Exit, Failure},
    file::{self, ReadError},
    home,
};

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The backend every command uses, by name (`sygen service backend use <name>`).
    pub backend: Option<BackendName>,
    /// Each backend's own settings, `[backends.<name>]`, handed to that backend only.
    pub backends: BTreeMap<BackendName, toml::Table>,
    pub agent: AgentConfig,
    pub logs: LogsConfig,
    pub supervise: SuperviseConfig,
    pub updates: UpdatesConfig,
    pub hooks: HooksConfig,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The worker's command line; empty means the built-in `sygen agent`.
    pub command: Vec<String>,
    /// Extra environment for the worker (see `worker_env`; its values are never shown).
    pub env: BTreeMap<String, String>,
    /// A dotenv file of more environment for the worker, read at each start; relative to the
    /// sygen home (see `worker_env`).
    pub env_file: Option<std::path::PathBuf>,
    /// The worker's working directory; default: the sygen home.
    pub working_dir: Option<String>,
    /// How often the built-in agent logs a heartbeat.
    #[serde(deserialize_with = "bounded::duration::<_, MIN_HEARTBEAT_MS, DAY_MS>")]
    pub heartbeat_interval: Duration,
    /// How long a worker has after SIGTERM before it is killed.
    #[serde(deserialize_with = "bounded::duration::<_, 0, MAX_STOP_TIMEOUT_MS>")]
    pub stop_timeout: Duration,
    /// Restarts on exit 42 of workers that lived under a second, allowed in a row before the
    /// runtime starts waiting between them (so a crash loop never becomes a fork storm).
    #[serde(deserialize_with = "bounded::count::<_, u32, 0, 10_000>")]
    pub quick_restarts: u32,
    /// What makes a worker count as up: being started, or saying `READY=1`.
    pub ready: Readiness,
    /// How long a worker has to say `READY=1` (with `ready = "notify"`).
    #[serde(deserialize_with = "bounded::duration::<_, 1000, DAY_MS>")]
    pub ready_timeout: Duration,
    /// How long a worker may go without saying `WATCHDOG=1` before it is restarted; none
    /// means no watchdog.
    #[serde(deserialize_with = "bounded::some_duration::<_, 1000, DAY_MS>")]
    pub watchdog: Option<Duration>,
}

/// What makes a worker count as up.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// It was started.
    #[default]
    Started,
    /// It said `READY=1` on its notify socket.
    Notify,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            env: BTreeMap::new(),
            env_file: None,
            working_dir: None,
            heartbeat_interval: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
            quick_restarts: 10,
            ready: Readiness::Started,
            ready_timeout: Duration::from_secs(90),
            watchdog: None,
        }
    }
}

/// Commands the runtime runs when things go wrong with the worker.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Run when a worker fails: an exit other than 0 and 42, a start that fails, a missed
    /// readiness or watchdog deadline.
    pub on_failure: Vec<String>,
    /// Run when the runtime gives up on a failing worker.
    pub on_give_up: Vec<String>,
    /// How long a hook may run before it is ended.
    #[serde(deserialize_with = "bounded::duration::<_, 1000, HOUR_MS>")]
    pub timeout: Duration,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            on_failure: Vec::new(),
            on_give_up: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Size at which `agent.log` is rotated.
    #[serde(deserialize_with = "bounded::count::<_, u64, 1024, TIB>")]
    pub max_bytes: u64,
    /// How many rotated files are kept besides `agent.log`.
    #[serde(deserialize_with = "bounded::count::<_, u32, 0, 100>")]
    pub keep: u32,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            keep: 5,
        }
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SuperviseConfig {
    /// Retries after a failed worker when sygen supervises itself.
    #[serde(deserialize_with = "bounded::count::<_, u32, 0, 10_000>")]
    pub retries: u32,
    /// The wait before each retry.
    #[serde(deserialize_with = "bounded::duration::<_, 0, DAY_MS>")]
    pub delay: Duration,
}

impl Default for SuperviseConfig {
    fn default() -> Self {
        Self {
            retries: 3,
            delay: Duration::from_secs(60),
        }
    }
}

/// `[updates]`: where `sygen service backend update` looks.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpdatesConfig {
    /// The channel manifest's URL (https://, or file:// for an offline mirror).
    pub channel: Option<String>,
    /// A PEM file of the certificate authorities trusted for the channel, instead of the
    /// platform's (as curl's `--cacert`): for a channel on a server of one's own.
    pub ca_file: Option<std::path::PathBuf>,
    /// The slowest download accepted: each gets 30 s, then its size at this rate.
    #[serde(deserialize_with = "bounded::count::<_, u64, 1024, GIB>")]
    pub min_bytes_per_second: u64,
}

impl Default for UpdatesConfig {
    fn default() -> Self {
        Self {
            channel: None,
            ca_file: None,
            min_bytes_per_second: 16 * 1024,
        }
    }
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;
const MIN_HEARTBEAT_MS: u64 = 100;
/// The longest `stop_timeout`; also what a pid file may record.
pub const MAX_STOP_TIMEOUT_MS: u64 = HOUR_MS;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// The largest configuration file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The duration `text` ("30s", "1m", "250ms") if it lies from `min_ms` to `max_ms`; the error
/// says the range. Also what command-line durations go through.
pub fn parse_duration(text: &str, min_ms: u64, max_ms: u64) -> Result<Duration, String> {
    let (min, max) = (Duration::from_millis(min_ms), Duration::from_millis(max_ms));
    let range = format!(
        "from {} to {}",
        humantime::format_duration(min),
        humantime::format_duration(max)
    );
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. \"30s\", {range}"))?;
    if duration < min || duration > max {
        return Err(format!("`{text}` is out of range: allowed {range}"));
    }
    Ok(duration)
}

/// A heartbeat interval, in its configured range.
pub fn parse_heartbeat_interval(text: &str) -> Result<Duration, String> {
    parse_duration(text, MIN_HEARTBEAT_MS, DAY_MS)
}

/// A wait the user asks for on the command line (`--timeout`).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    parse_duration(text, 0, DAY_MS)
}

/// Values with a range. Durations are written as humans write them: `"60s"`, `"1m"`,
/// `"250ms"`.
mod bounded {
    use std::{fmt::Display, time::Duration};

    use serde::{de::Error as _, Deserialize, Deserializer};

    pub fn duration<'de, D: Deserializer<'de>, const MIN_MS: u64, const MAX_MS: u64>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text, MIN_MS, MAX_MS).map_err(D::Error::custom)
    }

    pub fn some_duration<'de, D: Deserializer<'de>, const MIN_MS: u64, const MAX_MS: u64>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        duration::<D, MIN_MS, MAX_MS>(deserializer).map(Some)
    }

    pub fn count<'de, D, T, const MIN: u64, const MAX: u64>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<u64> + Display,
    {
        let value = u64::deserialize(deserializer)
            // serde's own words end in a line break.
            .map_err(|e| {
                let e = e.to_string();
                D::Error::custom(format!("{}; allowed from {MIN} to {MAX}", e.trim_end()))
            })?;
        if !(MIN..=MAX).contains(&value) {
            return Err(D::Error::custom(format!(
                "{value} is out of range: allowed from {MIN} to {MAX}"
            )));
        }
        T::try_from(value).map_err(|_| D::Error::custom(format!("{value} is too large")))
    }
}

impl Config {
    /// Reads the configuration at `path`; a missing file is the default configuration.
    pub fn load(path: &Path) -> Result<Self, Failure> {
        match read(path)? {
            Some(text) => Self::parse(&text, path),
            None => Ok(Self::default()),
        }
    }

    /// The configuration of the sygen home `home`.
    pub fn of_home(home: &Path) -> Result<Self, Failure> {
        Self::load(&home::config_file(home))
    }

    /// Checks the configuration of `home` for a command that does not need it (`stop`,
    /// `restart`, `uninstall`): a broken file is a warning there, never a reason to refuse.
    pub fn warn_if_invalid(home: &Path, verb: &str) {
        if let Err(failure) = Self::of_home(home) {
            eprintln!(
                "warning: {} ({verb} does not need it; `sygen run` refuses it until it is fixed)",
                exit::one_line(&failure.message)
            );
        }
    }

    /// What the configuration of `home` says about backends. One that does not parse is said
    /// once and says nothing: finding a backend must work to repair the service.
    pub fn backend_preferences(home: &Path) -> Preferences {
        let config_file = home::config_file(home);
        match Self::load(&config_file) {
            Ok(config) => Preferences {
                backend: config.backend,
                settings: config.backends,
                config_file,
            },
            Err(failure) => {
                eprintln!(
                    "warning: {} (backends are chosen and run without it)",
                    exit::one_line(&failure.message)
                );
                Preferences {
                    backend: None,
                    settings: Default::default(),
                    config_file,
                }
            }
        }
    }

    /// Parses `text`, read from `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, Failure> {
        let failure = |line: Option<usize>, key: String, message: &str| {
            let line = line.map_or(String::new(), |l| format!(" line {l}"));
            let key = if key.is_empty() || key == "." {
                String::new()
            } else {
                format!(" key `{key}`:")
            };
            Failure::new(
                Exit::Failed,
                format!("{}{line}:{key} {}", path.display(), message.trim()),
            )
            .hint("fix the file, or remove it to use the defaults")
        };
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            failure(
                e.span().map(|s| line_of(s.start)),
                String::new(),
                e.message(),
            )
        })?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let message = match secret_value_of(&key) {
                true => {
                    "each value must be a string, as in `env = { NAME = \"value\" }` \
                         (what is there is not shown: values of [agent] env are secrets)"
                }
                false => inner.message(),
            };
            failure(inner.span().map(|s| line_of(s.start)), key, message)
        })
    }
}

/// Whether the key `key` (`agent.env.TOKEN`) holds a value of `[agent] env`, or all of them: an
/// error there says what is wrong without the value, which serde's words would quote.
fn secret_value_of(key: &str) -> bool {
    key == "agent.env" || key.starts_with("agent.env.")
}

/// The text of the configuration file at `path`, `None` when there is none. Anything but a
/// regular file (a FIFO, a device, a directory, a link to nothing) is refused before it is
/// read, and so is a file larger than [`MAX_FILE_BYTES`].
pub fn read(path: &Path) -> Result<Option<String>, Failure> {
    file::read_small(path, MAX_FILE_BYTES).map_err(|error| {
        let why = match error {
            ReadError::TooLarge { len, .. } => {
                format!("is {len} bytes; a configuration is at most {MAX_FILE_BYTES}")
            }
            other => other.to_string(),
        };
        Failure::new(Exit::Failed, format!("{}: {why}", path.display())).hint(
            "sygen reads its configuration only from a regular file; replace it with one, \
             or remove it to use the defaults",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/h/config.toml")).map_err(|f| f.message)
    }

    #[test]
    fn an_empty_file_is_the_default() {
        assert_eq!(parse("").unwrap(), Config::default());
        let missing = Config::load(Path::new("/nonexistent/config.toml")).unwrap();
        assert_eq!(missing, Config::default());
    }

    #[test]
    fn reads_every_section() {
        let config = parse(
            r#"
            [agent]
            command = ["python3", "bot.py"]
            env = { TOKEN = "x" }
            env_file = "bot.env"
            working_dir = "/srv/bot"
            heartbeat_interval = "2s"
            stop_timeout = "500ms"
            quick_restarts = 3
            [logs]
            max_bytes = 1024
            keep = 2
            [supervise]
            retries = 5
            delay = "1m"
            "#,
        )
        .unwrap();
        assert_eq!(config.agent.command, ["python3", "bot.py"]);
        assert_eq!(config.agent.env["TOKEN"], "x");
        assert_eq!(config.agent.env_file, Some("bot.env".into()));
        assert_eq!(config.agent.working_dir.as_deref(), Some("/srv/bot"));
        assert_eq!(config.agent.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(config.agent.stop_timeout, Duration::from_millis(500));
        assert_eq!(config.agent.quick_restarts, 3);
        assert_eq!((config.logs.max_bytes, config.logs.keep), (1024, 2));
        assert_eq!(config.supervise.retries, 5);
        assert_eq!(config.supervise.delay, Duration::from_secs(60));
    }

    #[test]
    fn an_error_in_agent_env_does_not_show_the_value() {
        for text in [
            "[agent]\nenv = { TOKEN = 12345678 }\n",
            "[agent]\nenv = \"TOKEN=12345678\"\n",
            "[agent]\nenv = { TOKEN = [\"12345678\"] }\n",
        ] {
            let error = parse(text).unwrap_err();
            assert!(!error.contains("12345678"), "{error}");
            assert!(error.contains("line 2: key `agent.env"), "{error}");
            assert!(error.contains("must be a string"), "{error}");
        }
        let error = parse("[agent]\nenv = { TOKEN = 12345678\n").unwrap_err();
        assert!(!error.contains("12345678"), "{error}");
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let error = parse("[agent]\n\ncommand = 5\n").unwrap_err();
        assert!(
            error.starts_with("/h/config.toml line 3: key `agent.command`: invalid type"),
            "{error}"
        );
        let error = parse("[agent]\nheartbeat_interval = \"soon\"\n").unwrap_err();
        assert!(
            error.contains("line 2: key `agent.heartbeat_interval`"),
            "{error}"
        );
        assert!(error.contains("`soon` is not a duration"), "{error}");
        let error = parse("[agent]\ncomand = []\n").unwrap_err();
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains("unknown field `comand`"), "{error}");
        let error = parse("[agent\n").unwrap_err();
        assert!(error.starts_with("/h/config.toml line 1:"), "{error}");
    }
}
