//! What the backend writes: the task definition, as a pure function, with quick-xml's writer,
//! in Task Scheduler schema 1.3 (`Task/@version` is fixed at 1.3 there).
//!
//! Why each setting: a `LogonTrigger` with `UserId` (without one it means any user and needs
//! elevation), 10 s after logon; `ExecutionTimeLimit` PT0S (the default PT72H would kill sygen
//! after three days); batteries neither prevent nor stop it; `IgnoreNew` keeps one instance;
//! `RestartOnFailure` only retries a start that failed: a process that exited is restarted by
//! `sygen run --supervise` itself; `Priority` 4, what an interactive program gets (normal
//! priority class, normal thread, I/O and memory priority), where the default 7 would run
//! sygen below normal with low I/O priority. schtasks reads the file as UTF-16 when it says
//! so, with a BOM.

use std::io::Cursor;

use quick_xml::{
    escape::unescape,
    events::{BytesDecl, BytesStart, BytesText, Event},
    Reader, Writer,
};
use sygen_backend_api::sdk::{Error, Result};

const NAMESPACE: &str = "http://schemas.microsoft.com/windows/2004/02/mit/task";
const PRINCIPAL: &str = "Author";

/// Task Scheduler's limit on `Command` and `WorkingDirectory` (the schema's `pathType`).
pub const MAX_PATH: usize = 260;

/// The logon type that runs a task only in its user's logon session, ended at sign-out.
pub const INTERACTIVE_TOKEN: &str = "InteractiveToken";

/// What the task runs, and as whom.
pub struct TaskSpec<'a> {
    pub description: &'a str,
    /// `DOMAIN\user` of the user the task belongs to.
    pub user_id: &'a str,
    pub exec: &'a Exec,
}

/// The task's action: a program, its command line and where it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exec {
    pub command: String,
    pub arguments: String,
    pub working_directory: String,
}

/// The task definition as XML text (its declaration says UTF-16; see [`to_utf16le`]).
pub fn render(task: &TaskSpec) -> Result<String> {
    for (what, path) in [
        ("program", &task.exec.command),
        ("working directory", &task.exec.working_directory),
    ] {
        if path.encode_utf16().count() > MAX_PATH {
            return Err(Error::failed(format!(
                "Task Scheduler accepts paths of up to {MAX_PATH} characters; the {what} path \
                 has {}: {path}",
                path.encode_utf16().count()
            ))
            .with_hint("move sygen (or its home) to a shorter path and install again"));
        }
    }
    write(task).map_err(|e| Error::failed(format!("cannot write the task XML: {e}")))
}

fn write(task: &TaskSpec) -> std::io::Result<String> {
    let mut writer = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-16"), None)))?;
    let text = |w: &mut Writer<Cursor<Vec<u8>>>, name: &str, value: &str| {
        w.create_element(name)
            .write_text_content(BytesText::new(value))
            .map(|_| ())
    };
    writer
        .create_element("Task")
        .with_attributes([("version", "1.3"), ("xmlns", NAMESPACE)])
        .write_inner_content(|w| {
            w.create_element("RegistrationInfo")
                .write_inner_content(|w| text(w, "Description", task.description))?;
            w.create_element("Triggers").write_inner_content(|w| {
                w.create_element("LogonTrigger").write_inner_content(|w| {
                    text(w, "Enabled", "true")?;
                    text(w, "UserId", task.user_id)?;
                    text(w, "Delay", "PT10S")
                })?;
                Ok(())
            })?;
            w.create_element("Principals").write_inner_content(|w| {
                w.create_element("Principal")
                    .with_attribute(("id", PRINCIPAL))
                    .write_inner_content(|w| {
                        text(w, "UserId", task.user_id)?;
                        text(w, "LogonType", INTERACTIVE_TOKEN)?;
                        text(w, "RunLevel", "LeastPrivilege")
                    })?;
                Ok(())
            })?;
            w.create_element("Settings").write_inner_content(|w| {
                text(w, "MultipleInstancesPolicy", "IgnoreNew")?;
                text(w, "DisallowStartIfOnBatteries", "false")?;
                text(w, "StopIfGoingOnBatteries", "false")?;
                text(w, "AllowHardTerminate", "true")?;
                text(w, "StartWhenAvailable", "true")?;
                text(w, "AllowStartOnDemand", "true")?;
                text(w, "Enabled", "true")?;
                text(w, "Hidden", "false")?;
                text(w, "ExecutionTimeLimit", "PT0S")?;
                text(w, "Priority", "4")?;
                w.create_element("RestartOnFailure")
                    .write_inner_content(|w| {
                        text(w, "Interval", "PT1M")?;
                        text(w, "Count", "3")
                    })?;
                Ok(())
            })?;
            w.create_element("Actions")
                .with_attribute(("Context", PRINCIPAL))
                .write_inner_content(|w| {
                    w.create_element("Exec").write_inner_content(|w| {
                        text(w, "Command", &task.exec.command)?;
                        text(w, "Arguments", &task.exec.arguments)?;
                        text(w, "WorkingDirectory", &task.exec.working_directory)
                    })?;
                    Ok(())
                })?;
            Ok(())
        })?;
    let mut xml = String::from_utf8(writer.into_inner().into_inner())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    xml.push('\n');
    Ok(xml)
}

/// What a task definition says about when it runs: who it runs as and how it logs on, what
/// starts it, and what batteries do to it. What it leaves out has the schema's default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conditions {
    /// The principal's `UserId` (`DOMAIN\user`), when it names one.
    pub user_id: Option<String>,
    /// The principal's `LogonType`, when it says one.
    pub logon_type: Option<String>,
    pub boot_trigger: bool,
    pub logon_trigger: bool,
    pub disallow_start_if_on_batteries: bool,
    pub stop_if_going_on_batteries: bool,
}

/// The [`Conditions`] of a task definition, as sygen writes it or `/Query /XML` prints it.
pub fn read_conditions(xml: &str) -> Result<Conditions> {
    let mut conditions = Conditions {
        user_id: None,
        logon_type: None,
        boot_trigger: false,
        logon_trigger: false,
        // The schema's defaults: a task waits for mains power and stops on battery.
        disallow_start_if_on_batteries: true,
        stop_if_going_on_batteries: true,
    };
    let mut reader = Reader::from_str(xml);
    let mut open: Vec<String> = Vec::new();
    loop {
        let (start, empty) = match reader.read_event().map_err(|e| malformed(&e))? {
            Event::Start(start) => (start, false),
            Event::Empty(start) => (start, true),
            Event::End(_) => {
                open.pop();
                continue;
            }
            Event::Eof => return Ok(conditions),
            _ => continue,
        };
        let name: String = start.local_name().as_ref().to_owned();
        let parent: Vec<&str> = open.iter().map(String::as_str).collect();
        match (parent.as_slice(), name.as_str()) {
            ([_, "Triggers"], "BootTrigger") => conditions.boot_trigger = true,
            ([_, "Triggers"], "LogonTrigger") => conditions.logon_trigger = true,
            ([_, "Principals", "Principal"], "UserId") if !empty => {
                conditions.user_id = Some(leaf_text(&mut reader, &start)?.trim().to_owned());
                continue;
            }
            ([_, "Principals", "Principal"], "LogonType") if !empty => {
                conditions.logon_type = Some(leaf_text(&mut reader, &start)?.trim().to_owned());
                continue;
            }
            ([_, "Settings"], "DisallowStartIfOnBatteries") if !empty => {
                conditions.disallow_start_if_on_batteries =
                    is_true(&leaf_text(&mut reader, &start)?);
                continue;
            }
            ([_, "Settings"], "StopIfGoingOnBatteries") if !empty => {
                conditions.stop_if_going_on_batteries = is_true(&leaf_text(&mut reader, &start)?);
                continue;
            }
            _ => {}
        }
        if !empty {
            open.push(name);
        }
    }
}

/// An `xs:boolean`'s truth: `true` or `1`.
fn is_true(text: &str) -> bool {
    matches!(text.trim(), "true" | "1")
}

fn malformed(error: &dyn std::fmt::Display) -> Error {
    Error::failed(format!("cannot read the task's XML: {error}"))
}

/// The text of the element `start` opens, up to its end (which it consumes), unescaped.
fn leaf_text(reader: &mut Reader<&[u8]>, start: &BytesStart) -> Result<String> {
    let raw = reader.read_text(start.name()).map_err(|e| malformed(&e))?;
    Ok(unescape(&raw).map_err(|e| malformed(&e))?.into_owned())
}

/// The first `Exec` action of a task definition, as `/Query /XML` prints it (Task Scheduler
/// rewrites what it was given, so only the action is read); `None` when it has none.
pub fn read_exec(xml: &str) -> Result<Option<Exec>> {
    let is_action = |open: &[String], element: &str| matches!(open, [_task, actions, last] if actions == "Actions" && last == element);
    let mut reader = Reader::from_str(xml);
    // The elements open around the reader, outermost first.
    let mut open: Vec<String> = Vec::new();
    let mut exec = Exec::default();
    loop {
        match reader.read_event().map_err(|e| malformed(&e))? {
            Event::Start(start) if is_action(&open, "Exec") => {
                let value = leaf_text(&mut reader, &start)?;
                match start.local_name().as_ref() {
                    "Command" => exec.command = value,
                    "Arguments" => exec.arguments = value,
                    "WorkingDirectory" => exec.working_directory = value,
                    _ => {}
                }
            }
            Event::Start(start) => open.push(start.local_name().as_ref().to_owned()),
            Event::End(_) if is_action(&open, "Exec") => return Ok(Some(exec)),
            Event::End(_) => {
                open.pop();
            }
            Event::Eof => return Ok(None),
            _ => {}
        }
    }
}

/// `text` as UTF-16LE with a byte-order mark, as its declaration promises.
pub fn to_utf16le(text: &str) -> Vec<u8> {
    [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::{path::Path, process::Command};

    use proptest::prelude::*;

    use super::*;

    fn exec(command: &str) -> Exec {
        Exec {
            command: command.into(),
            arguments: "run --supervise".into(),
            working_directory: "C:\\Users\\ada\\.sygen".into(),
        }
    }

    /// The task that runs `command`.
    fn render_task(command: &str) -> Result<String> {
        render(&TaskSpec {
            description: "sygen agent",
            user_id: "DESKTOP-7\\ada",
            exec: &exec(command),
        })
    }

    /// Validates UTF-16LE task XML against the Task Scheduler 1.3 schema with xmllint.
    fn validate(bytes: &[u8]) -> std::result::Result<(), String> {
        let xsd = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/task-scheduler-1.3.xsd");
        assert!(xsd.is_file(), "the schema is missing: {}", xsd.display());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("task.xml");
        std::fs::write(&file, bytes).unwrap();
        let output = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&xsd)
            .arg(&file)
            .output()
            .expect("xmllint runs (Debian: libxml2-utils)");
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    #[test]
    fn renders_the_golden_task() {
        let xml = render_task("C:\\Program Files\\sygen\\sygenw.exe").unwrap();
        assert_eq!(xml, include_str!("../golden/sygen_task.xml"));
    }

    #[test]
    fn the_golden_task_is_utf16le_with_a_bom_and_valid() {
        let xml = render_task("C:\\Program Files\\sygen\\sygenw.exe").unwrap();
        let bytes = to_utf16le(&xml);
        assert_eq!(&bytes[..2], [0xFF, 0xFE]);
        let units: Vec<u16> = bytes[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(String::from_utf16(&units).unwrap(), xml);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-16\"?>"));
        validate(&bytes).unwrap();
    }

    #[test]
    fn the_1_4_version_of_old_is_refused_by_the_schema() {
        let xml = render_task("C:\\sygen.exe")
            .unwrap()
            .replace("version=\"1.3\"", "version=\"1.4\"");
        assert!(validate(&to_utf16le(&xml)).is_err());
    }

    #[test]
    fn refuses_paths_task_scheduler_cannot_hold() {
        let long = format!("C:\\{}\\sygenw.exe", "d".repeat(MAX_PATH));
        let error = render_task(&long).unwrap_err();
        assert!(
            error.message.contains("up to 260 characters"),
            "{}",
            error.message
        );
    }

    #[test]
    fn reads_the_action_back_from_the_golden_task() {
        let xml = render_task("C:\\Program Files\\sygen\\sygenw.exe").unwrap();
        assert_eq!(
            read_exec(&xml).unwrap(),
            Some(exec("C:\\Program Files\\sygen\\sygenw.exe"))
        );
    }

    #[test]
    fn reads_the_action_as_task_scheduler_prints_it() {
        // As Task Scheduler keeps it: CRLF, its own URI, escaped text, a program without
        // arguments; of two actions, the first counts.
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n\
            <Task version=\"1.3\" xmlns=\"http://schemas.microsoft.com/windows/2004/02/mit/task\">\r\n\
            \x20 <RegistrationInfo>\r\n    <URI>\\sygen</URI>\r\n  </RegistrationInfo>\r\n\
            \x20 <Actions Context=\"Author\">\r\n    <Exec>\r\n\
            \x20     <Command>C:\\my &amp; &lt;apps&gt;\\sygenw.exe</Command>\r\n\
            \x20   </Exec>\r\n    <Exec>\r\n      <Command>C:\\second.exe</Command>\r\n\
            \x20   </Exec>\r\n  </Actions>\r\n</Task>\r\n";
        assert_eq!(
            read_exec(xml).unwrap(),
            Some(Exec {
                command: "C:\\my & <apps>\\sygenw.exe".into(),
                ..Exec::default()
            })
        );
        let no_action = "<Task><Actions Context=\"Author\"><ComHandler><ClassId>x</ClassId>\
                         </ComHandler></Actions><Exec><Command>elsewhere</Command></Exec></Task>";
        assert_eq!(read_exec(no_action).unwrap(), None);
        assert!(read_exec("<Task><Actions><Exec><Command>x</Exec>").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn awkward_program_paths_stay_valid_and_intact(
            dir in "[a-zA-Z &<>\"'üé日%;]{1,24}",
        ) {
            let command = format!("C:\\Users\\ada\\{dir}\\sygenw.exe");
            let xml = render_task(&command).unwrap();
            prop_assert!(validate(&to_utf16le(&xml)).is_ok(), "{}", xml);
            prop_assert_eq!(read_exec(&xml).unwrap(), Some(exec(&command)));
            // The Command element's text, unescaped, is the path exactly.
            let element = xml.split("<Command>").nth(1).unwrap();
            let escaped = element.split("</Command>").next().unwrap();
            let unescaped = quick_xml::escape::unescape(escaped).unwrap();
            prop_assert_eq!(unescaped.as_ref(), command.as_str());
        }
    }
}
