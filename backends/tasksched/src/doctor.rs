//! The Task Scheduler backend's check for `sygen doctor`: does the registered task run what
//! install would register now?

use sygen_backend_api::{
    methods::Check,
    sdk::{Context, Result},
};

use crate::{
    exec, schtasks,
    task_xml::{self, Exec},
};

const ID: &str = "tasksched.task";

/// The check once the task is registered (the host says when it is not).
pub fn checks(cx: &Context) -> Vec<Check> {
    match task(cx) {
        Ok(check) => check.into_iter().collect(),
        Err(error) => vec![Check::fail(
            ID,
            error.message,
            error.hint.unwrap_or_default(),
        )],
    }
}

fn task(cx: &Context) -> Result<Option<Check>> {
    let name = &cx.service.name;
    let Some(xml) = schtasks::query_xml(name)? else {
        return Ok(None);
    };
    let registered = task_xml::read_exec(&xml)?;
    Ok(Some(compare(name, registered.as_ref(), &exec(cx)?)))
}

/// The registered action against the one install would register now; a difference usually
/// means sygen or its home moved since. Task Scheduler keeps its own rewrite of the
/// definition, not the file it was given, so only the action is compared.
fn compare(name: &str, registered: Option<&Exec>, expected: &Exec) -> Check {
    const HINT: &str =
        "run `sygen service install` to register it again (sygen or its settings changed since)";
    let Some(registered) = registered else {
        return Check::warn(ID, format!("the task {name} runs no program"), HINT);
    };
    let differences: Vec<String> = [
        ("program is", &registered.command, &expected.command),
        ("arguments are", &registered.arguments, &expected.arguments),
        (
            "working directory is",
            &registered.working_directory,
            &expected.working_directory,
        ),
    ]
    .into_iter()
    .filter(|(_, registered, expected)| registered != expected)
    .map(|(what, registered, expected)| {
        format!("its {what} `{registered}`, sygen registers `{expected}`")
    })
    .collect();
    if differences.is_empty() {
        Check::pass(
            ID,
            format!(
                "the task {name} runs what sygen registers now: {} {}",
                expected.command, expected.arguments
            ),
        )
    } else {
        Check::warn(
            ID,
            format!(
                "the task {name} differs from what sygen would register now: {}",
                differences.join("; ")
            ),
            HINT,
        )
    }
}

#[cfg(test)]
mod tests {
    use sygen_backend_api::methods::Status;

    use super::*;

    fn exec(command: &str, arguments: &str) -> Exec {
        Exec {
            command: command.into(),
            arguments: arguments.into(),
            working_directory: "C:\\Users\\ada\\.sygen".into(),
        }
    }

    #[test]
    fn names_what_differs() {
        let now = exec(
            "C:\\sygen\\sygenw.exe",
            "run --supervise --home C:\\Users\\ada\\.sygen",
        );
        let same = compare("sygen", Some(&now), &now);
        assert_eq!(same.status, Status::Pass);
        assert_eq!(
            same.message,
            "the task sygen runs what sygen registers now: C:\\sygen\\sygenw.exe run \
             --supervise --home C:\\Users\\ada\\.sygen"
        );

        let moved = exec(
            "C:\\old\\sygenw.exe",
            "run --supervise --home C:\\Users\\ada\\.sygen",
        );
        let check = compare("sygen", Some(&moved), &now);
        assert_eq!(check.status, Status::Warn);
        assert_eq!(
            check.message,
            "the task sygen differs from what sygen would register now: its program is \
             `C:\\old\\sygenw.exe`, sygen registers `C:\\sygen\\sygenw.exe`"
        );
        assert!(check.hint.unwrap().contains("sygen service install"));

        let check = compare("sygen", Some(&exec("C:\\old\\sygen.exe", "run")), &now);
        assert!(
            check.message.ends_with(
                "its program is `C:\\old\\sygen.exe`, sygen registers `C:\\sygen\\sygenw.exe`; \
                 its arguments are `run`, sygen registers `run --supervise --home \
                 C:\\Users\\ada\\.sygen`"
            ),
            "{}",
            check.message
        );

        let none = compare("sygen", None, &now);
        assert_eq!(
            (none.status, none.message.as_str()),
            (Status::Warn, "the task sygen runs no program")
        );
    }
}
