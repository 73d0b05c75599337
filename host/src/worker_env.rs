//! The environment the worker gets on top of the runtime's own: the variables of
//! `[agent] env_file`, then those of `[agent] env`, which win (what config.toml says outright
//! stays, whatever a shared file holds). The file is read anew at every start of a worker, so an
//! edit takes effect on `sygen restart`.
//!
//! Both hold secrets (tokens, passwords), so no value is ever shown: what goes wrong is said with
//! the file, a line number and names, never what a line holds. The file is read as config.toml
//! is (a regular file, opened without blocking, at most [`MAX_FILE_BYTES`]) and only when no one
//! but the home's users can read or change it. One that cannot be read is an error, never an
//! empty environment: a worker must not start with part of what it was given.
//!
//! It lives outside the runtime because doctor and install read it too.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use crate::{
    config::{AgentConfig, MAX_FILE_BYTES},
    file::{self, ReadError},
    platform,
};

/// Why the env file cannot be used, with the fix; never with a value.
#[derive(Debug)]
pub struct EnvFileError {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for EnvFileError {
    /// One line, as the agent log says it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (hint: {})", self.message, self.hint)
    }
}

impl std::error::Error for EnvFileError {}

/// Where `[agent] env_file` is, if set: a relative path is relative to the sygen home `home`.
pub fn env_file(home: &Path, agent: &AgentConfig) -> Option<PathBuf> {
    agent.env_file.as_ref().map(|file| home.join(file))
}

/// The variables the worker gets, in the order they apply (a later one wins): the env file's,
/// then `[agent] env`'s.
pub fn for_worker(home: &Path, agent: &AgentConfig) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut vars = match env_file(home, agent) {
        Some(file) => read(&file)?,
        None => Vec::new(),
    };
    vars.extend(agent.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(vars)
}

/// The variables of the env file at `path`, in the file's order (a later one wins). The format
/// is dotenv's: `NAME=value` lines, `#` comments, an optional `export `, quotes (`'…'` taken as
/// written, `"…"` with escapes and over several lines), and `$NAME` or `${NAME}`, which is the
/// runtime's variable NAME, else one defined earlier in the file.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, EnvFileError> {
    let shown = path.display();
    let unusable = |why: String, hint: &str| EnvFileError {
        message: format!("the env file {shown} {why}"),
        hint: hint.to_owned(),
    };
    let not_regular = "sygen reads the env file only from a regular file; replace it with one";
    let file = match file::open_regular(path) {
        Ok(Some(file)) => file,
        Ok(None) => {
            return Err(unusable(
                "does not exist".to_owned(),
                "create it, or remove `env_file` from [agent] in config.toml",
            ))
        }
        Err(error) => return Err(unusable(error.to_string(), not_regular)),
    };
    platform::check_secret(&file, path).map_err(|untrusted| EnvFileError {
        message: format!("refusing the env file: {}", untrusted.reason),
        hint: untrusted.hint,
    })?;
    let text = file::read_open_text(file, MAX_FILE_BYTES).map_err(|error| match error {
        ReadError::TooLarge { len, max } => unusable(
            format!("is {len} bytes; an env file is at most {max}"),
            "keep only the worker's variables in it",
        ),
        other => unusable(other.to_string(), not_regular),
    })?;
    parse(text.strip_prefix('\u{feff}').unwrap_or(&text)).map_err(|line| {
        let at = line.map_or(String::new(), |n| format!(" line {n}"));
        EnvFileError {
            message: format!("the env file {shown}{at} is not `NAME=value`"),
            hint: format!(
                "fix{at}: `NAME=value`, quoted when the value has spaces (what it holds is not \
                 shown: it may be a secret)"
            ),
        }
    })
}

/// The variables of `text`, in dotenv format; the error is the number of the line that is not,
/// when it can be told.
fn parse(text: &str) -> Result<Vec<(String, String)>, Option<usize>> {
    dotenvy::from_read_iter(text.as_bytes())
        .map(|entry| {
            entry.map_err(|error| match error {
                // What dotenvy quotes is the line itself: only where it is is said.
                dotenvy::Error::LineParse(line, _) => line_number(text, &line),
                _ => None,
            })
        })
        .collect()
}

/// The number of the line of `text` where `quoted` (a line, or the end of one) starts.
fn line_number(text: &str, quoted: &str) -> Option<usize> {
    let at = text.find(quoted)?;
    Some(text[..at].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dotenv_lines_in_order() {
        let text = "# a comment\n\nTOKEN=abc\nexport NAME='two words'\nQUOTED=\"a\\nb\"\n\
                    EMPTY=\nSAME=${TOKEN}-x\nTOKEN=later\n";
        let vars = parse(text).unwrap();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            pairs,
            [
                ("TOKEN", "abc"),
                ("NAME", "two words"),
                ("QUOTED", "a\nb"),
                ("EMPTY", ""),
                ("SAME", "abc-x"),
                ("TOKEN", "later"),
            ]
        );
    }

    #[test]
    fn a_bad_line_is_told_by_its_number() {
        assert_eq!(parse("A=1\n# c\nnot a line s3cret\nB=2\n"), Err(Some(3)));
        assert_eq!(parse("A=1\nB=\"unclosed s3cret\n"), Err(Some(2)));
        assert_eq!(parse("A=1\nB=bad\\q\n"), Err(Some(2)));
    }

    #[cfg(unix)]
    #[test]
    fn errors_name_the_file_and_line_never_a_value() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bot.env");
        std::fs::write(&file, "A=1\nB=\"s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = read(&file).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "the env file {} line 2 is not `NAME=value` (hint: fix line 2: `NAME=value`, \
                 quoted when the value has spaces (what it holds is not shown: it may be a \
                 secret))",
                file.display()
            )
        );

        std::fs::write(&file, "A=s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = read(&file).unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "refusing the env file: {} can be read or written by group or others (mode \
                 0640), and it holds secrets",
                file.display()
            )
        );
        assert_eq!(error.hint, format!("run `chmod 600 {}`", file.display()));
        assert!(!error.to_string().contains("s3cret"));

        let missing = read(&dir.path().join("none.env")).unwrap_err();
        assert!(
            missing.message.ends_with("none.env does not exist"),
            "{missing}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_relative_env_file_is_in_the_sygen_home_and_agent_env_wins() {
        use std::os::unix::fs::PermissionsExt as _;
        let home = tempfile::tempdir().unwrap();
        let home = home.path();
        let file = home.join("bot.env");
        std::fs::write(&file, "A=file\nB=file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut agent = AgentConfig {
            env_file: Some("bot.env".into()),
            ..AgentConfig::default()
        };
        agent.env.insert("B".into(), "config".into());
        assert_eq!(env_file(home, &agent), Some(file.clone()));
        let vars = for_worker(home, &agent).unwrap();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(pairs, [("A", "file"), ("B", "file"), ("B", "config")]);

        agent.env_file = Some(file.clone());
        assert_eq!(env_file(Path::new("/elsewhere"), &agent), Some(file));
    }
}
