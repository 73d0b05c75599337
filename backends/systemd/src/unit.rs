//! What the backend writes: the unit file, as a pure function of the service description.
//!
//! Quoting follows systemd.service(5) and systemd.syntax(7): words are split on whitespace and
//! unquoted with C escapes; `%` starts a specifier everywhere; `$` expands variables in the
//! arguments of `ExecStart=` only (a `$$` in the executable path would stay `$$`, and the start
//! would fail with 203/EXEC), and never in `Environment=`.

use std::fmt::Write as _;

use sygen_backend_api::{
    sdk::{Error, Result},
    ServiceDescription,
};

/// The unit file for `service`.
///
/// systemd refuses an executable path with quotes, backslashes or control characters
/// ("Executable name contains special characters"), however it is quoted; such a path is an
/// error here, with the fix, rather than a unit that cannot start.
pub fn render(service: &ServiceDescription) -> Result<String> {
    let program = service.program.to_string_lossy();
    if program
        .chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\'' | '\\'))
    {
        return Err(Error::failed(format!(
            "systemd cannot start a program whose path has quotes, backslashes or control \
             characters: {program}"
        ))
        .with_hint("move the sygen binary to a directory without them and install again"));
    }
    let mut exec_start = word(&program, false);
    for arg in &service.args {
        exec_start.push(' ');
        exec_start.push_str(&word(arg, true));
    }
    let mut unit = String::new();
    let _ = writeln!(
        unit,
        "# Written by `sygen service install`; it rewrites this file."
    );
    let _ = writeln!(unit, "[Unit]");
    let _ = writeln!(unit, "Description={}", specifiers(&service.description));
    let _ = writeln!(unit);
    let _ = writeln!(unit, "[Service]");
    // exec: `systemctl start` fails at once when the program cannot be executed.
    let _ = writeln!(unit, "Type=exec");
    let _ = writeln!(unit, "ExecStart={exec_start}");
    // The runtime stops its worker gracefully on SIGTERM; systemd signals only the runtime
    // and kills leftovers after the stop timeout.
    let _ = writeln!(unit, "KillMode=mixed");
    let _ = writeln!(unit, "Restart=on-failure");
    let _ = writeln!(unit, "RestartSec=5");
    for (key, value) in &service.env {
        let _ = writeln!(
            unit,
            "Environment={}",
            quoted(&format!("{key}={value}"), false)
        );
    }
    let _ = writeln!(unit);
    let _ = writeln!(unit, "[Install]");
    let _ = writeln!(unit, "WantedBy=default.target");
    Ok(unit)
}

/// The program an installed unit runs: the first word of its `ExecStart=`, read back as
/// `render` writes it (a program path has no quotes or backslashes, so the word is plain or
/// one double-quoted string, with `%` doubled).
pub fn program(unit: &str) -> Option<String> {
    let exec_start = unit.lines().find_map(|l| l.strip_prefix("ExecStart="))?;
    let word = match exec_start.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => exec_start.split_whitespace().next()?,
    };
    Some(word.replace("%%", "%"))
}

/// `%` is a specifier everywhere; `%%` is a literal `%`.
fn specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// One word of a command line: quoted when unquoting would change it, `$` doubled in arguments.
fn word(text: &str, is_argument: bool) -> String {
    // A lone `;` separates commands; `\;` is the documented literal.
    if text == ";" {
        return "\\;".into();
    }
    let needs_quotes = text.is_empty()
        || text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'));
    if needs_quotes {
        quoted(text, is_argument)
    } else {
        escape(text, is_argument)
    }
}

/// A double-quoted string with C escapes, `%` and (for arguments) `$` doubled.
fn quoted(text: &str, is_argument: bool) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push_str(&escape(c.encode_utf8(&mut [0; 4]), is_argument)),
        }
    }
    out.push('"');
    out
}

fn escape(text: &str, is_argument: bool) -> String {
    let text = specifiers(text);
    if is_argument {
        text.replace('$', "$$")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ada's service, with the program, arguments and environment a test is about.
    fn service(program: &str, args: &[&str], env: &[(&str, &str)]) -> ServiceDescription {
        ServiceDescription {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ServiceDescription::for_test(std::path::Path::new("/home/ada"))
        }
    }

    #[test]
    fn the_program_is_read_back_from_what_render_writes() {
        for program in [
            "/usr/bin/sygen",
            "/home/ada/my apps/100% sygen/sygen",
            "/opt/$HOME/sygen",
        ] {
            let unit = render(&service(program, &["run", "--home", "/a b"], &[])).unwrap();
            assert_eq!(super::program(&unit).as_deref(), Some(program), "{unit}");
        }
        assert_eq!(super::program("[Service]\nType=exec\n"), None);
    }

    #[test]
    fn renders_the_golden_unit() {
        let unit = render(&service(
            "/home/ada/.cargo/bin/sygen",
            &["run"],
            &[
                ("PATH", "/home/ada/.local/bin:/usr/bin:/bin"),
                ("HOME", "/home/ada"),
                ("SYGEN_HOME", "/home/ada/.sygen"),
                ("SYGEN_SUPERVISOR", "1"),
            ],
        ))
        .unwrap();
        assert_eq!(unit, include_str!("../golden/sygen.service"));
    }

    #[test]
    fn renders_awkward_paths_with_the_golden_escapes() {
        let unit = render(&service(
            "/home/ada/my apps/100% $HOME ü/sygen",
            &["run", "a$b", "", ";", "tab\there", "it's \"q\" \\"],
            &[
                ("HOME", "/home/ada/100% $HOME \"q\" 'a'"),
                ("SYGEN_HOME", "/home/ada/back\\slash"),
            ],
        ))
        .unwrap();
        assert_eq!(unit, include_str!("../golden/awkward.service"));
    }

    #[test]
    fn refuses_executable_paths_systemd_cannot_run() {
        for program in [
            "/a/it's/sygen",
            "/a/\"q\"/sygen",
            "/a/back\\slash/sygen",
            "/a/\n/sygen",
        ] {
            let error = render(&service(program, &["run"], &[])).unwrap_err();
            assert!(
                error.message.contains("quotes, backslashes"),
                "{}",
                error.message
            );
            assert!(error.hint.is_some());
        }
    }

    #[test]
    fn quotes_only_words_that_need_it() {
        assert_eq!(word("/usr/bin/sygen", false), "/usr/bin/sygen");
        assert_eq!(word("/a/$x/%i", false), "/a/$x/%%i");
        assert_eq!(word("$x%i", true), "$$x%%i");
        assert_eq!(word("a b", true), "\"a b\"");
        assert_eq!(word("it's", true), "\"it's\"");
        assert_eq!(word("", true), "\"\"");
        assert_eq!(word("a\nb", true), "\"a\\nb\"");
        assert_eq!(word("bell\u{7}", true), "\"bell\\x07\"");
    }
}

/// Every rendered unit must be one systemd accepts without a single warning, for any path.
#[cfg(test)]
mod verify {
    use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

    use proptest::prelude::*;

    use super::*;

    /// Runs `systemd-analyze --user verify` on `unit`; answers its stderr.
    fn systemd_analyze(unit_file: &Path, scratch: &Path) -> Option<String> {
        let runtime = scratch.join("runtime");
        std::fs::create_dir_all(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let output = Command::new("systemd-analyze")
            .args(["--user", "verify"])
            .arg(unit_file)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("HOME", scratch)
            .output()
            .ok()?;
        assert!(
            output.status.success(),
            "systemd-analyze failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(String::from_utf8_lossy(&output.stderr).into_owned())
    }

    fn awkward_name() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-z \"'\\\\%$;üé日\\-_.]{1,12}")
            .unwrap()
            .prop_map(|name| format!("d{name}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn systemd_accepts_every_rendered_unit(
            dir in awkward_name(),
            arg in awkward_name(),
            value in awkward_name(),
        ) {
            if std::env::var_os("CI").is_none() && !Path::new("/usr/bin/systemd-analyze").exists() {
                eprintln!("skipped: systemd-analyze is not installed (apt-get install systemd)");
                return Ok(());
            }
            let scratch = tempfile::tempdir().unwrap();
            let program = scratch.path().join(&dir).join("sygen");
            std::fs::create_dir_all(program.parent().unwrap()).unwrap();
            std::fs::copy("/bin/true", &program).unwrap();
            let service = ServiceDescription {
                description: format!("sygen {value}"),
                program: program.clone(),
                args: vec!["run".into(), arg],
                env: vec![
                    ("HOME".into(), scratch.path().join(&value).display().to_string()),
                    ("SYGEN_HOME".into(), value.clone()),
                ],
                ..ServiceDescription::for_test(scratch.path())
            };
            let unit = match render(&service) {
                Ok(unit) => unit,
                Err(error) => {
                    prop_assert!(dir.contains(['"', '\'', '\\']), "{}", error.message);
                    return Ok(());
                }
            };
            let unit_file = scratch.path().join("sygen.service");
            std::fs::write(&unit_file, &unit).unwrap();
            let stderr = systemd_analyze(&unit_file, scratch.path())
                .expect("systemd-analyze runs");
            prop_assert!(stderr.is_empty(), "{}\n{}", stderr, unit);
        }
    }
}
