//! A stateful stand-in for Windows' `schtasks.exe`, so the Task Scheduler backend can be
//! tested on Linux, and under Wine, whose own `schtasks.exe` is mostly stubs.
//!
//! It keeps the tasks in `$SCHTASKS_SIM_STATE` and really runs them: `/Run` answers at once and
//! starts the task's program a little later (`SCHTASKS_SIM_RUN_DELAY_MS`, default 300), as
//! Task Scheduler does; `/End` terminates that process (not its children); the Last Result is
//! 267009 (0x41301) while it runs, then its exit code, 267014 (0x41306) after `/End`, 267011
//! (0x41303) before the first run. `/Create /XML` insists on a UTF-16LE file with a BOM and a
//! matching declaration, validates it against the Task Scheduler schema
//! (`$SCHTASKS_SIM_XSD`, with xmllint; `SCHTASKS_SIM_XSD=captured` leaves that to the caller,
//! on the files in `captured/`: under Wine, which cannot start xmllint, a Linux program), and
//! keeps a copy of every file it was given in
//! `captured/` (the backend deletes its own). `/Query /FO CSV /V /NH` prints the verbose CSV row;
//! `/Query /XML` prints the definition Task Scheduler keeps, which is not byte for byte the file
//! it was given: here, with the task's path added as `RegistrationInfo/URI`, and CRLF line ends.
//!
//! `SCHTASKS_SIM_LANG` = `en` (default), `de`, `fr` or `ja` localizes the output as Windows
//! does; `SCHTASKS_SIM_ACCESS_DENIED=1` refuses every change. With `/HRESULT` the exit code is
//! the HRESULT, of which a Unix exit status keeps the low byte (5 for access denied, 2 for an
//! unknown task). Every call is appended to `calls`; `schtasks-sim shutdown` ends every task.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    thread,
    time::Duration,
};

use sim_process::{alive, detach, kill, read_number, record_call, terminate, wait_until};

const RUNNING: u32 = 0x41301;
const NEVER_RUN: u32 = 0x41303;
const TERMINATED: u32 = 0x41306;

/// HRESULTs of the failures the simulator reproduces.
const E_ACCESS_DENIED: u32 = 0x8007_0005;
const E_NOT_FOUND: u32 = 0x8007_0002;
const E_EXISTS: u32 = 0x8007_00B7;
const E_MALFORMED_XML: u32 = 0x8004_1318;
const E_NOT_RUNNING: u32 = 0x8004_130B;
const E_INVALID_ARG: u32 = 0x8007_0057;

#[derive(Clone, Copy, PartialEq)]
enum Lang {
    En,
    De,
    Fr,
    Ja,
}

fn lang() -> Lang {
    match std::env::var("SCHTASKS_SIM_LANG").as_deref() {
        Ok("de") => Lang::De,
        Ok("fr") => Lang::Fr,
        Ok("ja") => Lang::Ja,
        _ => Lang::En,
    }
}

/// The messages schtasks prints, by language (Japanese only where the tests need it).
fn text(key: &str, name: &str) -> String {
    let t = |en: &str, de: &str, fr: &str, ja: &str| {
        match lang() {
            Lang::En => en,
            Lang::De => de,
            Lang::Fr => fr,
            Lang::Ja => ja,
        }
        .replace("{name}", name)
    };
    match key {
        "denied" => t(
            "ERROR: Access is denied.",
            "FEHLER: Zugriff verweigert",
            "ERREUR : Accès refusé.",
            "エラー: アクセスが拒否されました。",
        ),
        "missing" => t(
            "ERROR: The system cannot find the file specified.",
            "FEHLER: Das System kann die angegebene Datei nicht finden.",
            "ERREUR : Le fichier spécifié est introuvable.",
            "エラー: 指定されたファイルが見つかりません。",
        ),
        "exists" => t(
            "ERROR: Cannot create a file when that file already exists.",
            "FEHLER: Eine Datei kann nicht erstellt werden, wenn sie bereits vorhanden ist.",
            "ERREUR : Impossible de créer un fichier déjà existant.",
            "エラー: 既に存在するファイルを作成することはできません。",
        ),
        "malformed" => t(
            "ERROR: The task XML is malformed.",
            "FEHLER: Der Aufgaben-XML-Code ist falsch formatiert.",
            "ERREUR : Le XML de la tâche est mal formé.",
            "エラー: タスクの XML の形式が正しくありません。",
        ),
        "not running" => t(
            "ERROR: The task is not running.",
            "FEHLER: Die Aufgabe wird nicht ausgeführt.",
            "ERREUR : La tâche n'est pas en cours d'exécution.",
            "エラー: タスクは実行されていません。",
        ),
        "created" => t(
            "SUCCESS: The scheduled task \"{name}\" has successfully been created.",
            "ERFOLGREICH: Die geplante Aufgabe \"{name}\" wurde erfolgreich erstellt.",
            "Opération réussie : la tâche planifiée « {name} » a été créée.",
            "成功: スケジュール タスク \"{name}\" は正しく作成されました。",
        ),
        "ran" => t(
            "SUCCESS: Attempted to run the scheduled task \"{name}\".",
            "ERFOLGREICH: Es wurde versucht, die geplante Aufgabe \"{name}\" auszuführen.",
            "Opération réussie : tentative d'exécution de la tâche planifiée « {name} ».",
            "成功: スケジュール タスク \"{name}\" の実行が試行されました。",
        ),
        "ended" => t(
            "SUCCESS: The scheduled task \"{name}\" has been terminated successfully.",
            "ERFOLGREICH: Die geplante Aufgabe \"{name}\" wurde erfolgreich beendet.",
            "Opération réussie : la tâche planifiée « {name} » a été arrêtée.",
            "成功: スケジュール タスク \"{name}\" は正しく終了されました。",
        ),
        "deleted" => t(
            "SUCCESS: The scheduled task \"{name}\" was successfully deleted.",
            "ERFOLGREICH: Die geplante Aufgabe \"{name}\" wurde erfolgreich gelöscht.",
            "Opération réussie : la tâche planifiée « {name} » a été supprimée.",
            "成功: スケジュール タスク \"{name}\" は正しく削除されました。",
        ),
        "status running" => t(
            "Running",
            "Wird ausgeführt",
            "En cours d'exécution",
            "実行中",
        ),
        "status ready" => t("Ready", "Bereit", "Prêt", "準備完了"),
        "na" => t("N/A", "Nicht zutreffend", "N/A", "N/A"),
        "interactive" => t(
            "Interactive only",
            "Nur interaktiv",
            "Interactif uniquement",
            "対話型のみ",
        ),
        "enabled" => t("Enabled", "Aktiviert", "Activée", "有効"),
        _ => key.to_owned(),
    }
}

/// A failure as schtasks reports it: a message and an HRESULT.
struct Failure(u32, String);

type Answer = Result<String, Failure>;

struct Sim {
    state: PathBuf,
    hresult: bool,
}

/// A task: `command`, `arguments`, `workdir`, `result` (Last Result), `pid` while running.
struct Task {
    dir: PathBuf,
}

impl Task {
    fn read(&self, file: &str) -> String {
        fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    fn pid(&self) -> Option<i32> {
        read_number(&self.dir.join("pid")).filter(|&p| alive(p))
    }

    /// The Last Result column: running only once the program runs, not while it is queued.
    fn result(&self) -> u32 {
        if self.pid().is_some() {
            return RUNNING;
        }
        read_number::<i64>(&self.dir.join("result")).map_or(NEVER_RUN, |r| r as u32)
    }
}

impl Sim {
    fn task(&self, name: &str) -> Option<Task> {
        let dir = self.state.join("tasks").join(name.trim_start_matches('\\'));
        dir.is_dir().then_some(Task { dir })
    }

    fn existing(&self, name: &str) -> Result<Task, Failure> {
        self.task(name)
            .ok_or_else(|| Failure(E_NOT_FOUND, text("missing", name)))
    }

    fn may_change(&self) -> Result<(), Failure> {
        if std::env::var("SCHTASKS_SIM_ACCESS_DENIED").as_deref() == Ok("1") {
            return Err(Failure(E_ACCESS_DENIED, text("denied", "")));
        }
        Ok(())
    }

    fn create(&self, name: &str, xml_file: &str, force: bool) -> Answer {
        self.may_change()?;
        let bytes = fs::read(xml_file).map_err(|_| Failure(E_NOT_FOUND, text("missing", name)))?;
        let captured = self.state.join("captured");
        fs::create_dir_all(&captured).map_err(io)?;
        let count = fs::read_dir(&captured).map_or(0, |d| d.count());
        fs::write(captured.join(format!("{count:03}.xml")), &bytes).map_err(io)?;
        let definition = check_task_xml(&bytes, xml_file).map_err(|why| {
            Failure(
                E_MALFORMED_XML,
                format!("{}\n({why})", text("malformed", name)),
            )
        })?;
        if self.task(name).is_some() && !force {
            return Err(Failure(E_EXISTS, text("exists", name)));
        }
        let dir = self.state.join("tasks").join(name);
        if let Some(task) = self.task(name) {
            if let Some(pid) = task.pid() {
                kill(pid);
            }
            fs::remove_dir_all(&dir).map_err(io)?;
        }
        fs::create_dir_all(&dir).map_err(io)?;
        for (file, value) in [
            ("command", &definition.command),
            ("arguments", &definition.arguments),
            ("workdir", &definition.working_directory),
            ("definition.xml", &definition.xml),
        ] {
            fs::write(dir.join(file), value).map_err(io)?;
        }
        Ok(text("created", name))
    }

    fn run(&self, name: &str) -> Answer {
        self.may_change()?;
        let task = self.existing(name)?;
        // MultipleInstancesPolicy IgnoreNew: a second run of a running (or queued) task does
        // nothing.
        if task.result() != RUNNING && !task.dir.join("starting").exists() {
            fs::write(task.dir.join("starting"), "").map_err(io)?;
            detach(&mut Command::new(std::env::current_exe().map_err(io)?))
                .arg("__run")
                .arg(&task.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(io)?;
        }
        Ok(text("ran", name))
    }

    fn end(&self, name: &str) -> Answer {
        self.may_change()?;
        let task = self.existing(name)?;
        let pid = task
            .pid()
            .ok_or_else(|| Failure(E_NOT_RUNNING, text("not running", name)))?;
        // TerminateProcess: no signal to catch, and the process's children live on.
        fs::write(task.dir.join("ended"), "").map_err(io)?;
        kill(pid);
        wait_until(Duration::from_secs(2), || !alive(pid));
        Ok(text("ended", name))
    }

    fn delete(&self, name: &str) -> Answer {
        self.may_change()?;
        let task = self.existing(name)?;
        // Out of the way at once (a runner may still write its last result into it), then gone.
        let trash = self.state.join(format!("deleted-{}", std::process::id()));
        fs::rename(&task.dir, &trash).map_err(io)?;
        let _ = fs::remove_dir_all(&trash);
        Ok(text("deleted", name))
    }

    fn query(&self, name: &str) -> Answer {
        let task = self.existing(name)?;
        let result = task.result();
        let status = if result == RUNNING {
            "status running"
        } else {
            "status ready"
        };
        let last_run = match lang() {
            Lang::De | Lang::Fr => "02.12.2026 04:00:00",
            _ => "12/2/2026 4:00:00 AM",
        };
        let to_run = format!("\"{}\" {}", task.read("command"), task.read("arguments"));
        let na = text("na", "");
        let row = [
            "SIMULATED-PC".to_owned(),
            format!("\\{name}"),
            na.clone(),
            text(status, ""),
            text("interactive", ""),
            last_run.to_owned(),
            result.to_string(),
            "SIMULATED-PC\\user".to_owned(),
            to_run,
            task.read("workdir"),
            na.clone(),
            text("enabled", ""),
            "Disabled".to_owned(),
            "".to_owned(),
            "SIMULATED-PC\\user".to_owned(),
            "Disabled".to_owned(),
            "Disabled".to_owned(),
            "At logon time".to_owned(),
            "At logon time".to_owned(),
            na.clone(),
            na.clone(),
            na.clone(),
            na.clone(),
            na.clone(),
            na.clone(),
            na.clone(),
            na.clone(),
            na,
        ];
        let mut writer = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Always)
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        writer.write_record(&row).map_err(|e| io(e.into()))?;
        let csv = writer.into_inner().map_err(|e| io(e.into_error()))?;
        // Windows prints an empty line before the rows.
        Ok(format!("\r\n{}", String::from_utf8_lossy(&csv)))
    }

    fn query_xml(&self, name: &str) -> Answer {
        let task = self.existing(name)?;
        Ok(registered_xml(&task.read("definition.xml"), name))
    }

    fn dispatch(&self, args: &[String]) -> Answer {
        let has = |flag: &str| args.iter().any(|a| a.eq_ignore_ascii_case(flag));
        let value = |flag: &str| {
            args.iter()
                .position(|a| a.eq_ignore_ascii_case(flag))
                .and_then(|i| args.get(i + 1))
                .map(String::as_str)
        };
        let invalid = || Failure(E_INVALID_ARG, "ERROR: Invalid syntax.".to_owned());
        let name = value("/TN").ok_or_else(invalid)?;
        if has("/Create") {
            self.create(name, value("/XML").ok_or_else(invalid)?, has("/F"))
        } else if has("/Run") {
            self.run(name)
        } else if has("/End") {
            self.end(name)
        } else if has("/Delete") {
            if !has("/F") {
                return Err(invalid());
            }
            self.delete(name)
        } else if has("/Query") && has("/XML") {
            // /XML prints definitions: the table's options do not go with it.
            if has("/FO") || has("/V") || has("/NH") {
                return Err(invalid());
            }
            self.query_xml(name)
        } else if has("/Query") {
            if value("/FO").map(str::to_uppercase).as_deref() != Some("CSV")
                || !has("/V")
                || !has("/NH")
            {
                return Err(invalid());
            }
            self.query(name)
        } else {
            Err(invalid())
        }
    }

    /// Runs a task's program after the start delay, and records how it ended.
    fn run_task(&self, dir: &Path) {
        let delay = std::env::var("SCHTASKS_SIM_RUN_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        thread::sleep(Duration::from_millis(delay));
        let task = Task {
            dir: dir.to_owned(),
        };
        let _ = fs::remove_file(dir.join("ended"));
        let mut command = Command::new(task.read("command"));
        command
            .args(windows_args(&task.read("arguments")))
            .current_dir(task.read("workdir"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let result = match command.spawn() {
            Ok(mut child) => {
                let _ = fs::write(dir.join("pid"), child.id().to_string());
                let _ = fs::remove_file(dir.join("starting"));
                let code = child.wait().ok().and_then(|status| status.code());
                if dir.join("ended").exists() {
                    TERMINATED
                } else {
                    code.map_or(1, |c| c as u32)
                }
            }
            // ERROR_FILE_NOT_FOUND as the result of a start that failed.
            Err(_) => E_NOT_FOUND,
        };
        let _ = fs::remove_file(dir.join("starting"));
        if dir.is_dir() {
            let _ = fs::write(dir.join("result"), result.to_string());
            let _ = fs::remove_file(dir.join("pid"));
        }
    }

    fn shutdown(&self) {
        let tasks = fs::read_dir(self.state.join("tasks")).into_iter().flatten();
        for task in tasks.filter_map(|t| t.ok()) {
            let task = Task { dir: task.path() };
            if let Some(pid) = task.pid() {
                terminate(pid, Duration::from_secs(3));
            }
        }
    }
}

/// A task definition: the parts the simulator runs, and the whole as text.
struct Definition {
    command: String,
    arguments: String,
    working_directory: String,
    xml: String,
}

/// The definition as `/Query /XML` prints it: what was registered, with the task's path added
/// as the last `RegistrationInfo` child (in a definition that has that element, as sygen's
/// does), line by line with CRLF.
fn registered_xml(given: &str, name: &str) -> String {
    let uri = format!("<URI>\\{}</URI>", quick_xml::escape::escape(name));
    let with_uri = match given.find("</RegistrationInfo>") {
        Some(end) => {
            let line = given[..end].rfind('\n').map_or(0, |i| i + 1);
            let indent = &given[line..end];
            if indent.trim().is_empty() {
                format!("{}{indent}  {uri}\n{}", &given[..line], &given[line..])
            } else {
                format!("{}{uri}{}", &given[..end], &given[end..])
            }
        }
        None => given.to_owned(),
    };
    with_uri.lines().map(|line| format!("{line}\r\n")).collect()
}

/// Checks the file as Task Scheduler reads it: UTF-16LE with a BOM, a declaration saying
/// UTF-16, valid against the schema; answers what the task runs.
fn check_task_xml(bytes: &[u8], path: &str) -> Result<Definition, String> {
    let body = bytes
        .strip_prefix(&[0xFF, 0xFE])
        .ok_or("no UTF-16LE byte-order mark")?;
    if body.len() % 2 != 0 {
        return Err("an odd number of bytes for UTF-16".into());
    }
    let units: Vec<u16> = body
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let xml = String::from_utf16(&units).map_err(|e| format!("not UTF-16: {e}"))?;
    let declaration = xml.lines().next().unwrap_or("");
    if !declaration.starts_with("<?xml") || !declaration.contains("encoding=\"UTF-16\"") {
        return Err(format!(
            "the declaration does not say UTF-16: {declaration}"
        ));
    }
    let xsd = std::env::var("SCHTASKS_SIM_XSD").map_err(|_| "SCHTASKS_SIM_XSD is not set")?;
    if xsd != "captured" {
        let lint = Command::new("xmllint")
            .args(["--noout", "--schema", &xsd, path])
            .output()
            .map_err(|e| format!("xmllint: {e}"))?;
        if !lint.status.success() {
            return Err(String::from_utf8_lossy(&lint.stderr).trim().to_owned());
        }
    }
    let element = |name: &str| -> String {
        let open = format!("<{name}>");
        xml.split(&open)
            .nth(1)
            .and_then(|rest| rest.split(&format!("</{name}>")).next())
            .and_then(|escaped| quick_xml::escape::unescape(escaped).ok())
            .map(|text| text.into_owned())
            .unwrap_or_default()
    };
    Ok(Definition {
        command: element("Command"),
        arguments: element("Arguments"),
        working_directory: element("WorkingDirectory"),
        xml,
    })
}

/// Splits a command line as Windows programs do (CommandLineToArgvW): whitespace separates
/// arguments outside quotes; 2n backslashes before a quote are n backslashes and the quote
/// toggles quoting, 2n+1 are n backslashes and a literal quote; other backslashes are literal.
fn windows_args(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut args = Vec::new();
    let mut current = String::new();
    let (mut in_quotes, mut started) = (false, false);
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let run = chars[i..].iter().take_while(|&&c| c == '\\').count();
                i += run;
                if chars.get(i) == Some(&'"') {
                    current.extend(std::iter::repeat_n('\\', run / 2));
                    if run % 2 == 1 {
                        current.push('"');
                        i += 1;
                    }
                } else {
                    current.extend(std::iter::repeat_n('\\', run));
                }
                started = true;
                continue;
            }
            '"' => {
                in_quotes = !in_quotes;
                started = true;
            }
            ' ' | '\t' if !in_quotes => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
        i += 1;
    }
    if started {
        args.push(current);
    }
    args
}

/// A failure of the simulator's own files, as ERROR_GEN_FAILURE (whose low byte, unlike
/// E_FAIL's, is not the one access denied has).
fn io(error: std::io::Error) -> Failure {
    Failure(0x8007_001F, format!("ERROR: {error}"))
}

fn main() -> ExitCode {
    let Some(state) = std::env::var_os("SCHTASKS_SIM_STATE").map(PathBuf::from) else {
        eprintln!("schtasks-sim: set SCHTASKS_SIM_STATE to a directory");
        return ExitCode::from(70);
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sim = Sim {
        state,
        hresult: args.iter().any(|a| a.eq_ignore_ascii_case("/HRESULT")),
    };
    match args.first().map(String::as_str) {
        Some("__run") => {
            if let Some(dir) = args.get(1) {
                sim.run_task(Path::new(dir));
            }
            return ExitCode::SUCCESS;
        }
        Some("shutdown") => {
            sim.shutdown();
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    record_call(&sim.state, &args);
    match sim.dispatch(&args) {
        Ok(out) => {
            print!("{out}");
            if !out.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(Failure(hresult, message)) => {
            eprintln!("{message}");
            // Without /HRESULT, schtasks exits 1 on any error.
            let code = if sim.hresult {
                (hresult & 0xFF) as u8
            } else {
                1
            };
            ExitCode::from(code.max(1))
        }
    }
}
