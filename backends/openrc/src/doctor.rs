//! The OpenRC backend's checks for `sygen doctor`: is the installed script what sygen writes
//! now, and does OpenRC start it by itself?

use sygen_backend_api::{
    methods::Check,
    sdk::{
        doctor::{definition_check, failed},
        Context,
    },
};

use crate::{
    invoking_user, mode,
    openrc::{self, Mode},
    render, script_path,
};

/// The checks once sygen is installed (the host says when it is not).
pub fn checks(cx: &Context) -> Vec<Check> {
    let mode = match mode(cx) {
        Ok(mode) => mode,
        Err(error) => return vec![failed("openrc.version", error)],
    };
    let path = script_path(cx, &mode);
    if !path.exists() {
        return Vec::new();
    }
    let name = &cx.service.name;
    vec![
        match invoking_user().and_then(|user| render(cx, &mode, &user)) {
            Ok(script) => {
                definition_check("openrc.script", "init script", &path, script.as_bytes())
            }
            Err(error) => failed("openrc.script", error),
        },
        runlevel(&mode, name, openrc::in_default_runlevel(&mode, name)),
    ]
}

/// A service outside the default runlevel is not started at boot (a user service: at login).
fn runlevel(mode: &Mode, name: &str, in_runlevel: bool) -> Check {
    const ID: &str = "openrc.runlevel";
    let (when, add) = match mode {
        Mode::System => ("at boot", format!("sudo rc-update add {name} default")),
        Mode::User { .. } => ("at login", format!("rc-update --user add {name} default")),
    };
    if in_runlevel {
        Check::pass(
            ID,
            format!("{name} is in the default runlevel: OpenRC starts it {when}"),
        )
    } else {
        Check::warn(
            ID,
            format!("{name} is not in the default runlevel, so OpenRC does not start it {when}"),
            format!("run `{add}`"),
        )
    }
}

#[cfg(test)]
mod tests {
    use sygen_backend_api::methods::Status;

    use super::*;

    #[test]
    fn a_script_outside_the_default_runlevel_is_a_warning_with_the_command() {
        let system = runlevel(&Mode::System, "sygen", false);
        assert_eq!(system.status, Status::Warn);
        assert_eq!(
            system.message,
            "sygen is not in the default runlevel, so OpenRC does not start it at boot"
        );
        assert_eq!(
            system.hint.as_deref(),
            Some("run `sudo rc-update add sygen default`")
        );
        let user = Mode::User {
            config_home: "/home/ada/.config".into(),
        };
        assert_eq!(
            runlevel(&user, "sygen", false).hint.as_deref(),
            Some("run `rc-update --user add sygen default`")
        );
        let added = runlevel(&user, "sygen", true);
        assert_eq!(added.status, Status::Pass);
        assert_eq!(
            added.message,
            "sygen is in the default runlevel: OpenRC starts it at login"
        );
    }
}
