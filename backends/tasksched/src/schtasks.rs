//! What the backend runs: `schtasks.exe`, in one place.
//!
//! schtasks speaks the user's language, so nothing here matches its words for states. Every
//! call passes `/HRESULT`, which makes the exit code the HRESULT of the failure (access denied
//! is E_ACCESSDENIED, 0x80070005; an unknown task 0x80070002). The state comes from
//! `/Query /FO CSV /V /NH` read as CSV by column position, and from the numeric Last Result
//! column: 267009 (0x41301, SCHED_S_TASK_RUNNING) while the task runs. PowerShell's
//! `Get-ScheduledTask` would also answer numerically, but costs a PowerShell start per query
//! and is missing on stripped-down systems; schtasks is always there.
//!
//! Queries run as they are; `/Create`, `/Run`, `/End` and `/Delete` go through [`Changes`], so
//! a dry run lists them.

use sygen_backend_api::sdk::{
    command::{self, Output},
    Changes, Error, Result,
};

const PROGRAM: &str = "schtasks.exe";

/// E_ACCESSDENIED, as the exit code of `schtasks … /HRESULT`.
const E_ACCESS_DENIED: i32 = 0x8007_0005_u32 as i32;
/// HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND): no such task.
const E_NOT_FOUND: i32 = 0x8007_0002_u32 as i32;
/// SCHED_S_TASK_RUNNING in the Last Result column.
const TASK_RUNNING: i64 = 0x41301;

/// Columns of `/Query /FO CSV /V`, by position: their titles are translated.
const TASK_NAME_COLUMN: usize = 1;
const STATUS_COLUMN: usize = 3;
const LAST_RESULT_COLUMN: usize = 6;

/// "Access is denied" as schtasks prints it in the languages we have seen, for a schtasks
/// whose exit code does not say it.
const ACCESS_DENIED_WORDS: [&str; 3] = ["Access is denied", "Zugriff verweigert", "Accès refusé"];

/// What a failed schtasks call means.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    AccessDenied,
    NotFound,
    Other,
}

fn failure(output: &Output) -> Failure {
    // Where only the low byte of the exit code survives, it is the Win32 error (5, 2).
    match output.code {
        Some(E_ACCESS_DENIED) | Some(5) => return Failure::AccessDenied,
        Some(E_NOT_FOUND) | Some(2) => return Failure::NotFound,
        _ => {}
    }
    let text = format!("{}{}", output.stderr, output.stdout);
    if ACCESS_DENIED_WORDS.iter().any(|words| text.contains(words)) {
        Failure::AccessDenied
    } else {
        Failure::Other
    }
}

/// Runs `schtasks.exe ARGS /HRESULT` to read state; a failure is an error, access denied with
/// the fix.
fn schtasks(args: &[&str]) -> Result<Output> {
    checked(args, command::run(PROGRAM, with_hresult(args)))
}

/// Runs `schtasks.exe ARGS /HRESULT` to change state, through `changes`; fails as [`schtasks`].
fn change(changes: &Changes, args: &[&str]) -> Result<()> {
    checked(args, changes.run(PROGRAM, with_hresult(args))).map(drop)
}

fn with_hresult<'a>(args: &'a [&'a str]) -> impl Iterator<Item = &'a str> {
    args.iter().copied().chain(["/HRESULT"])
}

fn checked(args: &[&str], output: Result<Output>) -> Result<Output> {
    let output = output.map_err(|e| {
        Error::unavailable(format!("cannot run {PROGRAM}: {}", e.message))
            .with_hint("the Task Scheduler backend needs Windows' schtasks.exe on PATH")
    })?;
    if output.success() {
        return Ok(output);
    }
    let command = format!("schtasks {}", args.join(" "));
    Err(match failure(&output) {
        Failure::AccessDenied => {
            Error::failed(format!("`{command}` was refused: access is denied")).with_hint(
                "Windows did not let this account change the scheduled task; run the same \
                 sygen command once from an elevated terminal (Run as administrator)",
            )
        }
        Failure::NotFound => Error::not_installed(format!(
            "sygen is not installed: Task Scheduler has no task {}",
            args.iter()
                .skip_while(|a| **a != "/TN")
                .nth(1)
                .unwrap_or(&"")
        ))
        .with_hint("run `sygen service install`"),
        Failure::Other => output.failure(&command),
    })
}

/// The task's state as `/Query` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskState {
    /// The Status column, in the user's language: shown, never interpreted.
    pub status: String,
    /// The Last Result column: an HRESULT or the exit code of the last run.
    pub last_result: Option<i64>,
}

impl TaskState {
    pub fn is_running(&self) -> bool {
        self.last_result == Some(TASK_RUNNING)
    }

    /// The Last Result, explained.
    pub fn describe_last_result(&self) -> String {
        match self.last_result {
            None => "unknown".to_owned(),
            Some(TASK_RUNNING) => "running (0x41301)".to_owned(),
            Some(0x41303) => "never run (0x41303)".to_owned(),
            Some(0x41306) => "ended by request (0x41306)".to_owned(),
            Some(code) if !(0..=0xFFFF).contains(&code) => format!("0x{:X}", code as u32),
            Some(code) => format!("exit code {code}"),
        }
    }
}

/// Reads the task named `name` from `/Query /FO CSV /V /NH` output.
fn parse_query(csv_text: &str, name: &str) -> Option<TaskState> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv_text.as_bytes());
    let wanted = format!("\\{name}");
    reader
        .records()
        .filter_map(|record| record.ok())
        .find(|record| record.get(TASK_NAME_COLUMN) == Some(wanted.as_str()))
        .map(|record| TaskState {
            status: record.get(STATUS_COLUMN).unwrap_or("").to_owned(),
            last_result: record
                .get(LAST_RESULT_COLUMN)
                .and_then(|value| value.trim().parse().ok()),
        })
}

/// The task's state, or `None` when there is no such task.
pub fn query(name: &str) -> Result<Option<TaskState>> {
    found(schtasks(&[
        "/Query", "/TN", name, "/FO", "CSV", "/V", "/NH",
    ]))
    .map(|output| output.and_then(|o| parse_query(&o.stdout, name)))
}

/// The task's definition as Task Scheduler keeps it (`/Query /XML`), or `None` when there is
/// no such task.
pub fn query_xml(name: &str) -> Result<Option<String>> {
    found(schtasks(&["/Query", "/TN", name, "/XML"])).map(|output| output.map(|o| o.stdout))
}

/// An unknown task as `None`.
fn found(output: Result<Output>) -> Result<Option<Output>> {
    match output {
        Ok(output) => Ok(Some(output)),
        Err(error) if error.kind == sygen_backend_api::ErrorKind::NOT_INSTALLED => Ok(None),
        Err(error) => Err(error),
    }
}

pub fn create(changes: &Changes, name: &str, xml_file: &str) -> Result<()> {
    change(changes, &["/Create", "/TN", name, "/XML", xml_file, "/F"])
}

pub fn run(changes: &Changes, name: &str) -> Result<()> {
    change(changes, &["/Run", "/TN", name])
}

pub fn end(changes: &Changes, name: &str) -> Result<()> {
    change(changes, &["/End", "/TN", name])
}

pub fn delete(changes: &Changes, name: &str) -> Result<()> {
    change(changes, &["/Delete", "/TN", name, "/F"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(code: i32, stderr: &str) -> Output {
        Output {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.to_owned(),
        }
    }

    #[test]
    fn access_denied_is_recognised_by_code_and_in_three_languages() {
        assert_eq!(failure(&output(E_ACCESS_DENIED, "")), Failure::AccessDenied);
        assert_eq!(failure(&output(5, "")), Failure::AccessDenied);
        for text in [
            "ERROR: Access is denied.",
            "FEHLER: Zugriff verweigert",
            "ERREUR : Accès refusé.",
        ] {
            assert_eq!(failure(&output(1, text)), Failure::AccessDenied, "{text}");
        }
        assert_eq!(failure(&output(E_NOT_FOUND, "")), Failure::NotFound);
        assert_eq!(failure(&output(1, "ERROR: something else")), Failure::Other);
    }

    #[test]
    fn reads_the_state_by_column_whatever_the_language() {
        let english = "\"PC\",\"\\sygen\",\"N/A\",\"Running\",\"Interactive only\",\"12/2/2026 4:00:00 AM\",\"267009\",\"ada\",\"C:\\sygen, the agent\\sygenw.exe run --supervise\"\n";
        let german = "\r\n\"PC\",\"\\sygen\",\"Nicht zutreffend\",\"Wird ausgeführt\",\"Nur interaktiv\",\"02.12.2026 04:00:00\",\"267009\",\"ada\"\r\n";
        let french = "\"PC\",\"\\sygen\",\"N/A\",\"Prêt\",\"Interactif uniquement\",\"02/12/2026 04:00:00\",\"3\",\"ada\"\n";
        for (text, running, last) in [
            (english, true, 267009),
            (german, true, 267009),
            (french, false, 3),
        ] {
            let state = parse_query(text, "sygen").expect("the task's row");
            assert_eq!(state.is_running(), running, "{text}");
            assert_eq!(state.last_result, Some(last));
        }
        assert_eq!(parse_query(english, "other"), None);
        assert_eq!(
            parse_query(french, "sygen").unwrap().describe_last_result(),
            "exit code 3"
        );
    }
}
