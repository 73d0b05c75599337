//! What the backend writes: the unit file, as a pure function of the service description.
//!
//! Quoting follows systemd.service(5) and systemd.syntax(7): words are split on whitespace and
//! unquoted with C escapes; `%` starts a specifier everywhere; `$` expands variables in the
//! arguments of `ExecStart=` only (a `$$` in the executable path would stay `$$`, and the start
//! would fail with 203/EXEC), and never in `Environment=`.

use std::fmt::Write as _;

use sygen_backend_api::ServiceDescription;

/// The unit file for `service`.
pub fn render(service: &ServiceDescription) -> String {
    let mut exec_start = word(&service.program.to_string_lossy(), false);
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
    let _ = writeln!(unit, "Type=simple");
    let _ = writeln!(unit, "ExecStart={exec_start}");
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
    unit
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

    fn service(program: &str, args: &[&str], env: &[(&str, &str)]) -> ServiceDescription {
        ServiceDescription {
            name: "sygen".into(),
            label: "dev.sygen".into(),
            description: "sygen agent".into(),
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: "/home/ada/.sygen".into(),
            logs_dir: "/home/ada/.sygen/logs".into(),
        }
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
        ));
        assert_eq!(unit, include_str!("../golden/sygen.service"));
    }

    #[test]
    fn renders_awkward_paths_with_the_golden_escapes() {
        let unit = render(&service(
            "/home/ada/my apps/100% $HOME \"q\" 'a' \\ ü/sygen",
            &["run", "a$b", "", ";", "tab\there"],
            &[
                ("HOME", "/home/ada/100% $HOME \"q\""),
                ("SYGEN_HOME", "/home/ada/back\\slash"),
            ],
        ));
        assert_eq!(unit, include_str!("../golden/awkward.service"));
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
