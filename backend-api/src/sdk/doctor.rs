//! Checks a backend makes for `sygen doctor` (see [`super::Backend::doctor`]), and the one
//! every backend needs: is the definition on disk what sygen would write now?

use std::path::Path;

use super::Error;
use crate::methods::Check;

/// A check that could not be made: the error that stopped it, as a failure.
pub fn failed(id: &str, error: Error) -> Check {
    Check::fail(id, error.message, error.hint.unwrap_or_default())
}

/// Compares the definition file at `path` (a unit, plist, task or init script, called `what`)
/// with what the backend would write now, `expected`. A difference usually means sygen was
/// moved or updated since the service was installed.
pub fn definition_check(id: &str, what: &str, path: &Path, expected: &[u8]) -> Check {
    let installed = match std::fs::read(path) {
        Ok(installed) => installed,
        Err(error) => {
            return Check::fail(
                id,
                format!("cannot read the {what} {}: {error}", path.display()),
                "run `sygen service install` to write it again",
            )
        }
    };
    if installed == expected {
        return Check::pass(
            id,
            format!("the {what} {} is what sygen writes now", path.display()),
        );
    }
    let installed = String::from_utf8_lossy(&installed);
    let expected = String::from_utf8_lossy(expected);
    Check::warn(
        id,
        format!(
            "the {what} {} differs from what sygen would write now: {}",
            path.display(),
            first_difference(&installed, &expected)
        ),
        "run `sygen service install` to rewrite it (sygen or its settings changed since)",
    )
}

/// Where two texts first differ, as one short phrase.
fn first_difference(installed: &str, expected: &str) -> String {
    let mut installed_lines = installed.lines();
    let mut expected_lines = expected.lines();
    for number in 1.. {
        match (installed_lines.next(), expected_lines.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(a), Some(b)) => {
                return format!(
                    "line {number} is `{}`, sygen writes `{}`",
                    shorten(a),
                    shorten(b)
                )
            }
            (Some(a), None) => return format!("line {number} `{}` is extra", shorten(a)),
            (None, Some(b)) => return format!("line {number} `{}` is missing", shorten(b)),
            (None, None) => break,
        }
    }
    "they differ in line endings or invisible characters".to_owned()
}

/// At most 80 characters of `line`.
fn shorten(line: &str) -> String {
    const MAX: usize = 80;
    let line = line.trim();
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::Status;

    #[test]
    fn reports_the_first_differing_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sygen.service");
        std::fs::write(&path, "[Service]\nExecStart=/old/sygen run\n").unwrap();
        let compare = |expected: &[u8]| definition_check("x.unit", "unit", &path, expected);
        assert_eq!(
            compare(b"[Service]\nExecStart=/old/sygen run\n").status,
            Status::Pass
        );
        let moved = compare(b"[Service]\nExecStart=/new/sygen run\n");
        assert_eq!(moved.status, Status::Warn);
        assert!(
            moved.message.ends_with(
                "differs from what sygen would write now: line 2 is \
                 `ExecStart=/old/sygen run`, sygen writes `ExecStart=/new/sygen run`"
            ),
            "{}",
            moved.message
        );
        let longer = compare(b"[Service]\nExecStart=/old/sygen run\nX=1\n");
        assert!(
            longer.message.ends_with("line 3 `X=1` is missing"),
            "{}",
            longer.message
        );
        let missing = definition_check("x.unit", "unit", &dir.path().join("gone"), b"");
        assert_eq!(missing.status, Status::Fail);
        assert!(missing.hint.unwrap().contains("sygen service install"));
    }

    #[test]
    fn shortens_long_lines_on_a_character_boundary() {
        let long = "é".repeat(100);
        assert_eq!(shorten(&long).chars().count(), 81);
    }
}
