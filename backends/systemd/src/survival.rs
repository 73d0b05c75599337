//! What survives logout and reboot under systemd: both come down to linger. A user manager
//! without it is started at the user's first login and stopped at their last logout, taking
//! sygen with it; with it, systemd starts the manager at boot and keeps it. systemd has no say
//! on battery, so there is no line for that.

use sygen_backend_api::{
    methods::{Runs, Situation, SurvivalLine},
    sdk::{self, Result},
};

use crate::systemctl;

/// The lines for the user sygen runs as, linger as it is now (install cannot promise to turn
/// it on: that takes root).
pub fn lines() -> Result<Vec<SurvivalLine>> {
    let user = sdk::user::name()?;
    Ok(for_linger(&user, systemctl::linger_enabled(&user)))
}

fn for_linger(user: &str, linger: bool) -> Vec<SurvivalLine> {
    if linger {
        return vec![
            SurvivalLine::new(
                Situation::Logout,
                Runs::Yes,
                format!("sygen keeps running after {user} logs out: linger is on for {user}"),
            ),
            SurvivalLine::new(
                Situation::Reboot,
                Runs::Yes,
                format!(
                    "sygen starts at boot, before anyone logs in: linger is on for {user}, so \
                     systemd starts {user}'s user manager at boot"
                ),
            ),
        ];
    }
    let fix = format!("run `sudo loginctl enable-linger {user}`");
    vec![
        SurvivalLine::new(
            Situation::Logout,
            Runs::No,
            format!(
                "sygen stops when {user} logs out: linger is off for {user}, so systemd stops \
                 {user}'s user manager at the last logout"
            ),
        )
        .with_fix(&fix),
        SurvivalLine::new(
            Situation::Reboot,
            Runs::No,
            format!(
                "sygen starts only when {user} logs in: linger is off for {user}, so systemd \
                 starts {user}'s user manager at login, not at boot"
            ),
        )
        .with_fix(fix),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linger_decides_logout_and_reboot() {
        let on = for_linger("ada", true);
        assert_eq!(
            on.iter()
                .map(|l| (l.situation, l.runs, l.fix.is_some()))
                .collect::<Vec<_>>(),
            [
                (Situation::Logout, Runs::Yes, false),
                (Situation::Reboot, Runs::Yes, false)
            ]
        );
        let off = for_linger("ada", false);
        assert_eq!(
            off.iter()
                .map(|l| (l.situation, l.runs))
                .collect::<Vec<_>>(),
            [(Situation::Logout, Runs::No), (Situation::Reboot, Runs::No)]
        );
        assert_eq!(
            off[0].message,
            "sygen stops when ada logs out: linger is off for ada, so systemd stops ada's user \
             manager at the last logout"
        );
        for line in &off {
            assert_eq!(
                line.fix.as_deref(),
                Some("run `sudo loginctl enable-linger ada`")
            );
        }
    }
}
