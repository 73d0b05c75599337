//! `$SYGEN_HOME/config.toml`: which worker to run and how to supervise and log it.
//!
//! Every key has a default, so a missing file is a valid (empty) configuration. Unknown keys are
//! errors, so a typo is reported instead of silently ignored; every error names the file, the
//! line and the key.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde::Deserialize;

use crate::exit::{Exit, Failure};

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub agent: AgentConfig,
    pub logs: LogsConfig,
    pub supervise: SuperviseConfig,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The worker's command line; empty means the built-in `sygen agent`.
    pub command: Vec<String>,
    /// Extra environment for the worker.
    pub env: BTreeMap<String, String>,
    /// The worker's working directory; default: the sygen home.
    pub working_dir: Option<String>,
    /// How often the built-in agent logs a heartbeat.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// How long a worker has after SIGTERM before it is killed.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
    /// Restarts on exit 42 of workers that lived under a second, allowed in a row before the
    /// runtime starts waiting between them (so a crash loop never becomes a fork storm).
    pub quick_restarts: u32,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            heartbeat_interval: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
            quick_restarts: 10,
        }
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Size at which `agent.log` is rotated.
    pub max_bytes: u64,
    /// How many rotated files are kept besides `agent.log`.
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
    pub retries: u32,
    /// The wait before each retry.
    #[serde(with = "humantime_serde")]
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

/// Durations are written as humans write them: `"60s"`, `"1m"`, `"250ms"`.
mod humantime_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); write e.g. \"30s\""
            ))
        })
    }
}

impl Config {
    /// Reads the configuration at `path`; a missing file is the default configuration.
    pub fn load(path: &Path) -> Result<Self, Failure> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Failure::new(
                Exit::Failed,
                format!("cannot read {}: {e}", path.display()),
            )),
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
            failure(inner.span().map(|s| line_of(s.start)), key, inner.message())
        })
    }
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
        assert_eq!(config.agent.working_dir.as_deref(), Some("/srv/bot"));
        assert_eq!(config.agent.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(config.agent.stop_timeout, Duration::from_millis(500));
        assert_eq!(config.agent.quick_restarts, 3);
        assert_eq!((config.logs.max_bytes, config.logs.keep), (1024, 2));
        assert_eq!(config.supervise.retries, 5);
        assert_eq!(config.supervise.delay, Duration::from_secs(60));
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
