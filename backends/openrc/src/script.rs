//! What the backend writes: the OpenRC service script, as a pure function of the service
//! description.
//!
//! `supervise-daemon` runs sygen and restarts it after *any* exit (OpenRC has no "on failure"
//! policy), at most `respawn_max` times in `respawn_period`. openrc-run expands `command`,
//! `command_args`, `directory`, the log paths and `supervise_daemon_args` unquoted and `eval`s
//! the result, so each word is written twice escaped: every special character, space included,
//! backslash-escaped for the eval (word splitting then rejoins it exactly), and the whole
//! shell-quoted for the assignment. Tabs and newlines cannot survive that splitting, so they
//! are refused.
//! The environment travels as `--env` arguments: a script that exports PATH would change the
//! PATH openrc-run itself needs.

use std::fmt::Write as _;

use sygen_backend_api::{
    sdk::{quote::sh_word, Error, Result},
    ServiceDescription,
};

/// One word for openrc-run's unquoted expansion and `eval`: every character that is not
/// plainly safe gets a backslash, so no space is left for word splitting to collapse.
fn escape_for_eval(word: &str) -> Result<String> {
    if word.chars().any(char::is_control) {
        return Err(Error::failed(format!(
            "OpenRC cannot pass a value with a tab or newline to its daemon: {word:?}"
        ))
        .with_hint("use paths and values without control characters"));
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    let mut escaped = String::with_capacity(word.len() + 8);
    for c in word.chars() {
        if !safe(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    Ok(escaped)
}

/// A value openrc-run will `eval`: each word escaped for the eval, the whole quoted for the
/// assignment.
fn eval_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<String> {
    let escaped: Vec<String> = words
        .into_iter()
        .map(escape_for_eval)
        .collect::<Result<_>>()?;
    sh_word(&escaped.join(" "))
}

/// The service script; `user` is who sygen runs as (`command_user`), when OpenRC runs it as
/// root (a system service), `None` for a user service.
pub fn render(service: &ServiceDescription, user: Option<&str>) -> Result<String> {
    let path = |p: &std::path::Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::failed(format!("{} is not valid UTF-8", p.display())))
    };
    let program = path(&service.program)?;
    let home = path(&service.home)?;
    let logs = path(&service.logs_dir)?;
    let env: Vec<String> = service
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let env_args: Vec<&str> = env.iter().flat_map(|kv| ["--env", kv.as_str()]).collect();

    let mut script = String::new();
    let _ = writeln!(script, "#!/sbin/openrc-run");
    let _ = writeln!(
        script,
        "# Written by `sygen service install`; it rewrites this file."
    );
    let _ = writeln!(
        script,
        "# supervise-daemon restarts sygen after any exit, up to respawn_max times in respawn_period."
    );
    let _ = writeln!(script, "description={}", sh_word(&service.description)?);
    let _ = writeln!(script, "supervisor=supervise-daemon");
    let _ = writeln!(script, "command={}", eval_words([program.as_str()])?);
    let _ = writeln!(
        script,
        "command_args={}",
        eval_words(service.args.iter().map(String::as_str))?
    );
    if let Some(user) = user {
        let _ = writeln!(script, "command_user={}", eval_words([user])?);
    }
    let _ = writeln!(script, "directory={}", eval_words([home.as_str()])?);
    let _ = writeln!(
        script,
        "output_log={}",
        eval_words([format!("{logs}/service.log").as_str()])?
    );
    let _ = writeln!(
        script,
        "error_log={}",
        eval_words([format!("{logs}/service.err").as_str()])?
    );
    let _ = writeln!(script, "respawn_delay=5");
    let _ = writeln!(script, "respawn_max=10");
    let _ = writeln!(script, "respawn_period=600");
    let _ = writeln!(script, "supervise_daemon_args={}", eval_words(env_args)?);
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ada's service running `program`, with the PATH of a user who has `~/.local/bin`.
    fn service(program: &str) -> ServiceDescription {
        let mut service = ServiceDescription::for_test(std::path::Path::new("/home/ada"));
        service.program = program.into();
        for (key, value) in &mut service.env {
            if key == "PATH" {
                *value = "/home/ada/.local/bin:/usr/bin:/bin".into();
            }
        }
        service
    }

    #[test]
    fn renders_the_golden_system_script() {
        let script = render(&service("/home/ada/.cargo/bin/sygen"), Some("ada")).unwrap();
        assert_eq!(script, include_str!("../golden/sygen.system"));
    }

    #[test]
    fn a_user_service_has_no_command_user() {
        let script = render(&service("/home/ada/.cargo/bin/sygen"), None).unwrap();
        assert!(!script.contains("command_user"), "{script}");
    }

    /// What openrc-run makes of `name=value`: the value expanded unquoted (word splitting),
    /// then `eval`ed, word by word.
    fn eval_in_sh(assignment: &str, name: &str) -> Vec<String> {
        let script =
            format!("{assignment}\neval set -- ${name}\nfor w; do printf '%s\\0' \"$w\"; done");
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split('\0')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn values_survive_the_eval_of_openrc_run() {
        let program = "/home/ada/my  apps/100% $HOME \"q\" 'a' `x` \\ ü/sygen";
        let script = render(&service(program), Some("ada")).unwrap();
        let line = |key: &str| {
            script
                .lines()
                .find(|l| l.starts_with(&format!("{key}=")))
                .unwrap()
                .to_owned()
        };
        assert_eq!(eval_in_sh(&line("command"), "command"), [program]);
        assert_eq!(eval_in_sh(&line("command_args"), "command_args"), ["run"]);
        let env = eval_in_sh(&line("supervise_daemon_args"), "supervise_daemon_args");
        assert_eq!(
            env[..2],
            ["--env", "PATH=/home/ada/.local/bin:/usr/bin:/bin"]
        );
        assert_eq!(env.len(), 8);
    }

    #[test]
    fn control_characters_are_refused() {
        let error = render(&service("/home/ada/tab\there/sygen"), None).unwrap_err();
        assert!(
            error.message.contains("tab or newline"),
            "{}",
            error.message
        );
    }
}
