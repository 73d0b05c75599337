//! An example sygen backend: the starting point for a backend of your own.
//!
//! sygen loads this library (`libsygen_example.so`, `.dylib`, `sygen_example.dll`) and calls
//! the operations of [`Backend`] with the service description it built. Each operation you
//! leave out answers "not implemented in this backend version"; implement the nine and run
//! `sygen service conformance --backend <this library>` to see whether it behaves.
//! `WRITING-A-BACKEND.md`, the readme of `sygen-backend-api`, says what each one must do.
//!
//! It drives "example", an imaginary per-user supervisor in the style of runit or s6: it runs
//! every program whose definition is linked into `enabled/` of its directory, and
//! `example-ctl` answers for it. Keep the shape and change the names: a pure function from
//! the description to the definition, questions through `sdk::command`, every change through
//! `cx.changes`.

use std::path::{Path, PathBuf};

use sygen_backend_api::{
    methods::INSTALL_DRY_RUN,
    sdk::{self, command::Invocation, Backend, Context, Error, Info, Result},
    serde_json,
};

#[derive(Default)]
pub struct Example;

/// What the supervisor reads: a pure function of the description, easy to test.
fn definition(cx: &Context) -> String {
    let s = &cx.service;
    let mut text = format!("# {}\nprogram = {}\n", s.description, s.program.display());
    for arg in &s.args {
        text.push_str(&format!("arg = {arg}\n"));
    }
    for (key, value) in &s.env {
        text.push_str(&format!("env {key} = {value}\n"));
    }
    text
}

/// The supervisor's directory: the `dir` setting (`[backends.example]` in config.toml), else
/// `~/.example`. A setting of the wrong kind is an error naming it and its file.
fn supervisor_dir(cx: &Context) -> Result<PathBuf> {
    match cx.settings.get("dir") {
        None => Ok(cx.user_home()?.join(".example")),
        Some(serde_json::Value::String(dir)) => Ok(PathBuf::from(dir)),
        Some(other) => Err(Error::failed(format!(
            "`dir` in [backends.example] of {} is {other}, not a path",
            cx.config_file.display()
        ))
        .with_hint("give it as a string: dir = \"/home/me/.example\"")),
    }
}

/// `example-ctl` asked about the supervisor in `dir`, which it finds through `EXAMPLE_DIR`.
fn ctl(dir: &Path, args: &[&str]) -> Invocation {
    Invocation::new("example-ctl")
        .args(args)
        .env("EXAMPLE_DIR", dir)
}

impl Backend for Example {
    const INFO: Info = Info {
        name: "example",
        version: env!("CARGO_PKG_VERSION"),
        platform: "linux",
        description: "An example sygen backend",
    };

    /// Install makes every change through `cx.changes`, so sygen can show a dry run of it.
    fn capabilities(&self) -> Vec<String> {
        vec![INSTALL_DRY_RUN.to_owned()]
    }

    /// True only when the service manager this backend drives is there: install starts the
    /// supervisor itself when it is not running.
    fn is_service_available(&self, cx: &Context) -> Result<bool> {
        sygen_backend_api::tracing::debug!("looking for example-ctl for {}", cx.service.name);
        Ok(sdk::find_executable("example-ctl").is_some())
    }

    /// Writes the definition, enables it by linking it where the supervisor looks, and starts
    /// the supervisor when it does not answer. A dry run, and a unit test, records all three.
    fn install_service(&self, cx: &Context) -> Result<()> {
        let dir = supervisor_dir(cx)?;
        let file = format!("{}.conf", cx.service.name);
        let definition_path = dir.join("available").join(&file);
        cx.changes
            .write(&definition_path, definition(cx).as_bytes(), Some(0o644))?;
        cx.changes
            .symlink(&definition_path, &dir.join("enabled").join(&file))?;
        // A question, asked even in a dry run; an example-ctl that is missing does not answer.
        let answers = ctl(&dir, &["ping"])
            .run()
            .is_ok_and(|answer| answer.success());
        if !answers {
            // Detached, it outlives this call and sygen, as a supervisor must.
            let supervisor = Invocation::new("example-supervise").arg(&dir);
            cx.changes.start_detached(&supervisor)?;
        }
        Ok(())
    }
}

sygen_backend_api::export_backend!(Example);

#[cfg(test)]
mod tests {
    use sygen_backend_api::{methods::Change, ServiceDescription};

    use super::*;

    fn dir_setting(dir: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        [("dir".to_owned(), dir)].into_iter().collect()
    }

    #[test]
    fn install_writes_links_and_starts_the_supervisor_and_nothing_else() {
        let home = Path::new("/home/someone");
        let (cx, _console) = Context::for_test(ServiceDescription::for_test(home));
        let cx = cx.with_settings(dir_setting("/srv/example".into()));
        Example.install_service(&cx).unwrap();
        let changes = cx.changes.recorded_changes().changes;
        let [Change::Write { path, content, .. }, Change::Symlink { link, target }, Change::StartDetached { argv, .. }] =
            changes.as_slice()
        else {
            panic!("not a write, a link and a start: {changes:?}");
        };
        assert_eq!(path, Path::new("/srv/example/available/sygen.conf"));
        assert!(
            content.contains("program = /usr/local/bin/sygen\narg = run\n"),
            "{content}"
        );
        assert_eq!(link, Path::new("/srv/example/enabled/sygen.conf"));
        assert_eq!(target, path);
        assert_eq!(argv, &["example-supervise", "/srv/example"]);
    }

    #[test]
    fn a_setting_of_the_wrong_kind_names_the_configuration_file() {
        let (cx, _console) = Context::for_test(ServiceDescription::for_test(Path::new("/h")));
        let cx = cx.with_settings(dir_setting(3.into()));
        let error = Example.install_service(&cx).unwrap_err();
        assert_eq!(
            error.message,
            "`dir` in [backends.example] of /h/.sygen/config.toml is 3, not a path"
        );
    }
}
