//! What survives logout and reboot under OpenRC: the runlevels decide. As a system service,
//! sygen belongs to no login and starts at boot when it is in the default runlevel. As a user
//! service (OpenRC 0.60+), it starts with its user's OpenRC session, `user.<name>`, which
//! pam_openrc starts at the first login and stops at the last logout, unless the system's
//! default runlevel starts it at boot (then logins leave it alone). OpenRC has no say on
//! battery, so there is no line for that.

use sygen_backend_api::{
    methods::{Runs, Situation, SurvivalLine, SurvivalQuery},
    sdk::{Context, Result},
};

use crate::{
    invoking_user, mode,
    openrc::{self, Mode},
    script_path,
};

/// How sygen is (or would be) set up, as far as surviving goes.
struct Setup<'a> {
    mode: &'a Mode,
    name: &'a str,
    user: &'a str,
    /// sygen is in the default runlevel (its user's, for a user service).
    in_runlevel: bool,
    /// The user's OpenRC session is in the system's default runlevel (user services only).
    session_at_boot: bool,
}

pub fn lines(cx: &Context, query: &SurvivalQuery) -> Result<Vec<SurvivalLine>> {
    let mode = mode(cx)?;
    let user = invoking_user()?;
    let name = &cx.service.name;
    // Install adds sygen to the default runlevel; until it has run, that is what it does.
    let installed = !query.after_install && script_path(cx, &mode).exists();
    Ok(for_setup(&Setup {
        in_runlevel: !installed || openrc::in_default_runlevel(&mode, name),
        session_at_boot: openrc::in_default_runlevel(&Mode::System, &session(&user)),
        mode: &mode,
        name,
        user: &user,
    }))
}

/// The system service that runs a user's OpenRC session.
fn session(user: &str) -> String {
    format!("user.{user}")
}

fn for_setup(setup: &Setup) -> Vec<SurvivalLine> {
    let Setup {
        name,
        user,
        in_runlevel,
        ..
    } = *setup;
    if *setup.mode == Mode::System {
        let logout = SurvivalLine::new(
            Situation::Logout,
            Runs::Yes,
            format!(
                "sygen keeps running after {user} logs out: it is the system service \
                 /etc/init.d/{name}, which no login starts or stops"
            ),
        );
        let reboot = match in_runlevel {
            true => SurvivalLine::new(
                Situation::Reboot,
                Runs::Yes,
                format!("sygen starts at boot: {name} is in the default runlevel"),
            ),
            false => SurvivalLine::new(
                Situation::Reboot,
                Runs::No,
                format!("sygen does not start at boot: {name} is not in the default runlevel"),
            )
            .with_fix(format!("run `sudo rc-update add {name} default`")),
        };
        return vec![logout, reboot];
    }
    let session = session(user);
    let session_fix = format!(
        "start {user}'s OpenRC session at boot: `sudo ln -sf /etc/init.d/user \
         /etc/init.d/{session} && sudo rc-update add {session} default`"
    );
    let logout = match setup.session_at_boot {
        true => SurvivalLine::new(
            Situation::Logout,
            Runs::Yes,
            format!(
                "sygen keeps running after {user} logs out: {user}'s OpenRC session \
                 {session} is in the system's default runlevel, so logins do not end it"
            ),
        ),
        false => SurvivalLine::new(
            Situation::Logout,
            Runs::No,
            format!(
                "sygen stops when {user} logs out: OpenRC runs {user}'s user services in a \
                 session that the first login starts and the last logout stops"
            ),
        )
        .with_fix(&session_fix),
    };
    let reboot = match (in_runlevel, setup.session_at_boot) {
        (false, _) => SurvivalLine::new(
            Situation::Reboot,
            Runs::No,
            format!(
                "sygen starts neither at boot nor at login: {name} is not in {user}'s default \
                 runlevel"
            ),
        )
        .with_fix(format!("run `rc-update --user add {name} default`")),
        (true, true) => SurvivalLine::new(
            Situation::Reboot,
            Runs::Yes,
            format!(
                "sygen starts at boot: the system's default runlevel starts {session}, whose \
                 default runlevel has {name}"
            ),
        ),
        (true, false) => SurvivalLine::new(
            Situation::Reboot,
            Runs::No,
            format!(
                "sygen starts only when {user} logs in: {user}'s OpenRC session starts at \
                 login, not at boot"
            ),
        )
        .with_fix(session_fix),
    };
    vec![logout, reboot]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(mode: &Mode, in_runlevel: bool, session_at_boot: bool) -> Vec<SurvivalLine> {
        for_setup(&Setup {
            mode,
            name: "sygen",
            user: "ada",
            in_runlevel,
            session_at_boot,
        })
    }

    fn runs(lines: &[SurvivalLine]) -> Vec<(Situation, Runs)> {
        lines.iter().map(|l| (l.situation, l.runs)).collect()
    }

    #[test]
    fn a_system_service_outlives_logout_and_the_runlevel_decides_boot() {
        let added = lines(&Mode::System, true, false);
        assert_eq!(
            runs(&added),
            [
                (Situation::Logout, Runs::Yes),
                (Situation::Reboot, Runs::Yes)
            ]
        );
        assert_eq!(
            added[1].message,
            "sygen starts at boot: sygen is in the default runlevel"
        );
        let left_out = lines(&Mode::System, false, false);
        assert_eq!(
            (left_out[1].runs, left_out[1].fix.as_deref()),
            (Runs::No, Some("run `sudo rc-update add sygen default`"))
        );
    }

    #[test]
    fn a_user_service_lives_with_its_session() {
        let user = Mode::User {
            config_home: "/home/ada/.config".into(),
        };
        let at_login = lines(&user, true, false);
        assert_eq!(
            runs(&at_login),
            [(Situation::Logout, Runs::No), (Situation::Reboot, Runs::No)]
        );
        for line in &at_login {
            assert!(
                line.fix
                    .as_deref()
                    .unwrap()
                    .contains("rc-update add user.ada default"),
                "{line:?}"
            );
        }
        let at_boot = lines(&user, true, true);
        assert_eq!(
            runs(&at_boot),
            [
                (Situation::Logout, Runs::Yes),
                (Situation::Reboot, Runs::Yes)
            ]
        );
        let left_out = lines(&user, false, true);
        assert_eq!(
            left_out[1].fix.as_deref(),
            Some("run `rc-update --user add sygen default`")
        );
    }
}
