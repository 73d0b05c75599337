//! The worker's environment and program through the real binary: the env file (read at each
//! start, refused when others may read it or it is no file at all, never shown), and the PATH
//! doctor and install check the worker's program and interpreter against.

use std::{fs, os::unix::fs::PermissionsExt as _, path::PathBuf, time::Duration};

use crate::{
    doctor::{check, check_of, report_of},
    support::{
        eventually, finishes, library, mkfifo,
        runtime::{terminate, Home},
        write_script, Outcome,
    },
};

/// A value that must show nowhere but in the worker.
const SECRET: &str = "s3cr3t-4e1f9b7c";

/// Writes `text` as the env file `worker.env` of `home`'s sygen home, with `mode`.
fn env_file(home: &Home, text: &str, mode: u32) -> PathBuf {
    let path = home.sygen_home().join("worker.env");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A worker that says which values it got, without showing the secret, given `worker.env`.
fn telling_worker(home: &Home, agent_env: &str) {
    home.worker(
        &format!(
            "echo \"greeting=$GREETING who=$WHO\"\n\
             [ \"$TOKEN\" = {SECRET} ] && echo 'the token arrived'\n\
             exec sleep 30"
        ),
        &format!("env_file = \"worker.env\"\n{agent_env}"),
    );
}

/// The lines of the agent log saying the worker could not start.
fn cannot_start(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("[runtime] cannot start the worker: "))
        .collect()
}

/// `sygen run` under a service manager whose worker cannot start because of its env file: it
/// says why once, in the agent log, starts no worker and exits as a failed start does.
fn refused_start(home: &Home) -> String {
    let mut command = home.command(&["run"]);
    command.env("SYGEN_SUPERVISOR", "1");
    let out = finishes(command);
    assert_eq!(out.code, Some(127), "{}", out.stderr);
    let log = home.log();
    assert!(!log.contains("worker started"), "{log}");
    let lines = cannot_start(&log);
    assert_eq!(lines.len(), 1, "{log}");
    let (_, said) = lines[0].split_once("cannot start the worker: ").unwrap();
    said.to_owned()
}

/// `env-file` of doctor's report for `home`: its status, message and hint.
fn env_file_check(home: &Home) -> (String, String, String) {
    let (out, report) = report_of(home.command(&[]));
    assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
    let found = check_of(&report, "env-file");
    let text = |key: &str| found[key].as_str().unwrap_or_default().to_owned();
    (text("status"), text("message"), text("hint"))
}

#[test]
fn env_file_values_reach_the_worker_and_an_edit_takes_effect_on_restart() {
    let home = Home::new();
    telling_worker(&home, "env = { WHO = \"config\" }");
    env_file(
        &home,
        &format!("# the bot's\nGREETING=one\nWHO=file\nexport TOKEN={SECRET}\n"),
        0o600,
    );
    let (mut run, _) = home.start();
    eventually("the worker's values", Duration::from_secs(5), || {
        let log = home.log();
        log.contains("the token arrived") && log.contains("greeting=")
    });
    // `[agent] env` wins over the file.
    assert!(home.log().contains("[stdout] greeting=one who=config"));

    env_file(
        &home,
        &format!("GREETING=two\nWHO=file\nTOKEN={SECRET}\n"),
        0o600,
    );
    home.sygen(&["restart"]).succeeds();
    eventually("the edited value", Duration::from_secs(5), || {
        home.log().contains("[stdout] greeting=two who=config")
    });
    assert_eq!(terminate(&mut run), Some(0));
    assert!(!home.log().contains(SECRET));
}

#[test]
fn an_env_file_others_may_read_is_refused_in_one_line_with_a_hint() {
    let home = Home::new();
    telling_worker(&home, "");
    let file = env_file(&home, &format!("TOKEN={SECRET}\n"), 0o644);
    let message = format!(
        "refusing the env file: {} can be read or written by group or others (mode 0644), and \
         it holds secrets",
        file.display()
    );
    let hint = format!("run `chmod 600 {}`", file.display());
    assert_eq!(refused_start(&home), format!("{message} (hint: {hint})"));
    assert_eq!(env_file_check(&home), ("fail".into(), message, hint));

    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let (status, message, _) = env_file_check(&home);
    assert_eq!(
        (status.as_str(), message),
        (
            "pass",
            format!(
                "{} gives the worker 1 variable: TOKEN (values are never shown)",
                file.display()
            )
        )
    );
}

#[test]
fn a_fifo_as_the_env_file_is_refused_without_waiting_for_a_writer() {
    let home = Home::new();
    telling_worker(&home, "");
    let file = home.sygen_home().join("worker.env");
    mkfifo(&file);
    let message = format!(
        "the env file {} is not a regular file (a FIFO)",
        file.display()
    );
    let hint = "sygen reads the env file only from a regular file; replace it with one";
    assert_eq!(refused_start(&home), format!("{message} (hint: {hint})"));
    assert_eq!(
        env_file_check(&home),
        ("fail".into(), message, hint.to_owned())
    );
}

#[test]
fn a_missing_env_file_is_one_clear_line() {
    let home = Home::new();
    telling_worker(&home, "");
    let file = home.sygen_home().join("worker.env");
    let message = format!("the env file {} does not exist", file.display());
    let hint = "create it, or remove `env_file` from [agent] in config.toml";
    assert_eq!(refused_start(&home), format!("{message} (hint: {hint})"));
    assert_eq!(
        env_file_check(&home),
        ("fail".into(), message, hint.to_owned())
    );
}

#[test]
fn a_broken_line_is_named_by_its_number_never_by_what_it_holds() {
    let home = Home::new();
    telling_worker(&home, "");
    let file = env_file(&home, &format!("GREETING=hi\n\nTOKEN=\"{SECRET}\n"), 0o600);
    let said = refused_start(&home);
    assert!(
        said.starts_with(&format!(
            "the env file {} line 3 is not `NAME=value` (hint: ",
            file.display()
        )),
        "{said}"
    );
    assert!(!said.contains(SECRET) && !home.log().contains(SECRET));
    let (status, message, hint) = env_file_check(&home);
    assert_eq!(status, "fail");
    assert!(!message.contains(SECRET) && !hint.contains(SECRET));

    // Nor does a value of the wrong type in [agent] env show.
    home.worker("exit 0", &format!("env = {{ TOKEN = [{SECRET:?}] }}"));
    let out = finishes(home.command(&["run"]));
    let line = out.fails_with(1, "key `agent.env.TOKEN`: each value must be a string");
    assert!(!line.contains(SECRET), "{line}");
    let (out, report) = report_of(home.command(&[]));
    assert_eq!(check(&report, "config").0, "fail");
    assert!(!out.stdout.contains(SECRET), "{}", out.stdout);
}

/// A directory of the shell's PATH only, holding the interpreter `myinterp`, and a worker
/// script in the sygen home that `#!/usr/bin/env myinterp` runs, configured with `extra`.
/// Answers the directory, the script and the shell's PATH.
fn interpreter_only_the_shell_finds(home: &Home, extra: &str) -> (PathBuf, PathBuf, String) {
    let tools = home.dir.path().join("my tools");
    fs::create_dir_all(&tools).unwrap();
    write_script(
        &tools.join("myinterp"),
        "echo \"myinterp runs $1\"\nexec /bin/sh \"$@\"",
    );
    home.worker("", extra);
    let script = home.sygen_home().join("worker.sh");
    fs::write(&script, "#!/usr/bin/env myinterp\nexec sleep 30\n").unwrap();
    let shell_path = format!("{}:/usr/bin:/bin", tools.display());
    (tools, script, shell_path)
}

/// doctor's `worker-path` check with the shell's PATH `shell_path`: status, message and hint.
fn worker_path_check(home: &Home, shell_path: &str) -> (String, String, String) {
    let mut command = home.command(&[]);
    command.env("PATH", shell_path);
    let (_, report) = report_of(command);
    let found = check_of(&report, "worker-path");
    let text = |key: &str| found[key].as_str().unwrap_or_default().to_owned();
    (text("status"), text("message"), text("hint"))
}

#[test]
fn doctor_and_install_name_an_interpreter_only_the_shell_finds() {
    let home = Home::new();
    let (tools, script, shell_path) = interpreter_only_the_shell_finds(&home, "");
    let message = format!(
        "the interpreter `myinterp` that the #! line of {} names is not on the service's PATH; \
         your shell finds it in {}",
        script.display(),
        tools.display()
    );
    let hint = format!(
        "name it by its full path in the #! line of {} (#!{}), or set PATH in [agent] env in \
         config.toml to include {}",
        script.display(),
        tools.join("myinterp").display(),
        tools.display()
    );
    assert_eq!(
        worker_path_check(&home, &shell_path),
        ("fail".into(), message.clone(), hint.clone())
    );

    // Install says so in one warning line, and installs.
    let backend = library("misbehaving_backend");
    let mut install = home.command(&[
        "--backend",
        backend.to_str().unwrap(),
        "service",
        "install",
        "--no-wait",
    ]);
    install.env("MISBEHAVE", "ok").env("PATH", &shell_path);
    let out = Outcome::from(install.output().unwrap());
    assert!(
        out.succeeds()
            .contains("sygen service installed (misbehaving backend"),
        "{}",
        out.stdout
    );
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings, [format!("warning: {message} (hint: {hint})")]);
}

#[test]
fn an_env_file_path_is_read_as_the_service_will_read_it() {
    let home = Home::new();
    let (tools, script, shell_path) =
        interpreter_only_the_shell_finds(&home, "env_file = \"worker.env\"");

    // `$PATH` in the file is the service's PATH, which lacks the shell's directory.
    env_file(&home, "PATH=/nonexistent:$PATH\n", 0o600);
    let (status, message, _) = worker_path_check(&home, &shell_path);
    assert_eq!(status, "fail");
    assert_eq!(
        message,
        format!(
            "the interpreter `myinterp` that the #! line of {} names is not on the PATH its env \
             file gives it; your shell finds it in {}",
            script.display(),
            tools.display()
        )
    );

    env_file(
        &home,
        &format!("PATH=\"{}:${{PATH}}\"\n", tools.display()),
        0o600,
    );
    let (status, message, _) = worker_path_check(&home, &shell_path);
    assert_eq!(
        (status.as_str(), message),
        (
            "pass",
            format!(
                "the worker `{}` and its interpreter are found with the PATH its env file gives \
                 it",
                script.display()
            )
        )
    );
    // And so it is: the runtime finds the interpreter with that PATH.
    let (mut run, _) = home.start();
    eventually("the interpreter", Duration::from_secs(5), || {
        home.log()
            .contains(&format!("[stdout] myinterp runs {}", script.display()))
    });
    assert_eq!(terminate(&mut run), Some(0));
}
