//! What survives logout and reboot under launchd. A Launch Agent belongs to its user's logins:
//! launchd loads it when the user logs in (at the screen into `gui/<uid>`, over SSH into
//! `user/<uid>`) and ends it when they log out, and after a reboot nothing loads it until
//! someone logs in. Only a Launch Daemon, which needs root, runs without a login; sygen
//! installs an agent. launchd has no say on battery, so there is no line for that.

use sygen_backend_api::{
    methods::{Runs, Situation, SurvivalLine},
    sdk::{self, Context, Result},
};

use crate::{
    launchctl::{Launchctl, Mode},
    plist_path,
};

/// The lines for the domain the agent is (or would be) loaded in.
pub fn lines(cx: &Context) -> Result<Vec<SurvivalLine>> {
    let path = plist_path(cx)?;
    let ctl = Launchctl::detect(&cx.service.label, &path)?;
    Ok(for_domain(&sdk::user::name()?, &ctl.mode))
}

fn for_domain(user: &str, mode: &Mode) -> Vec<SurvivalLine> {
    let domain = match mode {
        Mode::Domain(domain) if domain.starts_with("gui/") => {
            format!("its agent is in {domain}, {user}'s login at the screen")
        }
        Mode::Domain(domain) => format!(
            "its agent is in {domain}, {user}'s background session (no login at the screen, as \
             over SSH)"
        ),
        Mode::Legacy => "it is a Launch Agent of this login".to_owned(),
    };
    vec![
        SurvivalLine::new(
            Situation::Logout,
            Runs::No,
            format!(
                "sygen stops when {user} logs out: {domain}, and launchd ends a user's agents \
                 at logout"
            ),
        ),
        SurvivalLine::new(
            Situation::Reboot,
            Runs::No,
            format!(
                "sygen starts only when {user} logs in: launchd loads Launch Agents at login, \
                 not at boot"
            ),
        )
        .with_fix(format!(
            "turn on automatic login for {user} (System Settings > Users & Groups; not \
             possible with FileVault on), so the Mac logs {user} in at boot"
        )),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_lives_and_dies_with_its_user_s_logins() {
        let gui = for_domain("ada", &Mode::Domain("gui/501".into()));
        assert_eq!(
            gui.iter()
                .map(|l| (l.situation, l.runs))
                .collect::<Vec<_>>(),
            [(Situation::Logout, Runs::No), (Situation::Reboot, Runs::No)]
        );
        assert_eq!(
            gui[0].message,
            "sygen stops when ada logs out: its agent is in gui/501, ada's login at the screen, \
             and launchd ends a user's agents at logout"
        );
        assert_eq!(gui[0].fix, None);
        assert!(gui[1]
            .fix
            .as_deref()
            .unwrap()
            .contains("automatic login for ada"));

        let over_ssh = for_domain("ada", &Mode::Domain("user/501".into()));
        assert!(
            over_ssh[0]
                .message
                .contains("its agent is in user/501, ada's background session"),
            "{}",
            over_ssh[0].message
        );
        let legacy = for_domain("ada", &Mode::Legacy);
        assert!(legacy[0].message.contains("a Launch Agent of this login"));
    }
}
