//! The launchd backend's checks for `sygen doctor`: what only launchd knows about the agent.

use sygen_backend_api::{
    methods::Check,
    sdk::{
        doctor::{definition_check, failed},
        Context,
    },
};

use crate::{
    launchctl::{Launchctl, Mode},
    plist, plist_path,
};

pub fn checks(cx: &Context) -> Vec<Check> {
    let path = match plist_path(cx) {
        Ok(path) => path,
        Err(error) => return vec![failed("launchd.domain", error)],
    };
    let ctl = match Launchctl::detect(&cx.service.label, &path) {
        Ok(ctl) => ctl,
        Err(error) => return vec![failed("launchd.domain", error)],
    };
    let mut checks = vec![match ctl.domain_refusal() {
        Ok(refusal) => domain(&ctl.mode, ctl.no_gui.as_deref(), refusal.as_deref()),
        Err(error) => failed("launchd.domain", error),
    }];
    if path.exists() {
        checks.push(match plist::render(&cx.service) {
            Ok(xml) => definition_check("launchd.plist", "plist", &path, &xml),
            Err(error) => failed("launchd.plist", error),
        });
        checks.push(match ctl.state() {
            Ok(state) => loaded(&ctl.describe(), state.is_some()),
            Err(error) => failed("launchd.loaded", error),
        });
    }
    checks
}

/// Whether launchd answers for the domain the agent lives in. `no_gui` is why there is no GUI
/// login domain, `refusal` launchd's answer when it does not know the domain in use.
fn domain(mode: &Mode, no_gui: Option<&str>, refusal: Option<&str>) -> Check {
    const ID: &str = "launchd.domain";
    let domain = match mode {
        Mode::Legacy => {
            return Check::pass(
                ID,
                "this launchctl has no domains (legacy launchctl): sygen uses load and unload",
            )
        }
        Mode::Domain(domain) => domain,
    };
    match (no_gui, refusal) {
        (_, Some(refusal)) => Check::fail(
            ID,
            format!("launchd has no {domain} domain for sygen's agent: {refusal}"),
            format!(
                "run sygen as the user the agent belongs to, in a login of theirs; \
                 `launchctl print {domain}` shows launchd's answer"
            ),
        ),
        // Over SSH without a GUI login: the agent works, in the background session.
        (Some(no_gui), None) => {
            let gui = domain.replacen("user/", "gui/", 1);
            Check::warn(
                ID,
                format!(
                    "there is no {gui} domain (no GUI login, as over SSH: {no_gui}), so \
                     sygen's agent is in {domain}"
                ),
                format!(
                    "log in at the Mac itself to give the agent the {gui} login session; in \
                     {domain} it has no access to the desktop"
                ),
            )
        }
        (None, None) => Check::pass(ID, format!("launchd answers for {domain}")),
    }
}

/// An installed agent launchd has not loaded runs only from the next login on.
fn loaded(target: &str, loaded: bool) -> Check {
    const ID: &str = "launchd.loaded";
    if loaded {
        Check::pass(ID, format!("launchd has {target} loaded"))
    } else {
        Check::warn(
            ID,
            format!("the plist is installed, but launchd has not loaded {target}"),
            "run `sygen service start`, which loads it",
        )
    }
}

#[cfg(test)]
mod tests {
    use sygen_backend_api::methods::Status;

    use super::*;

    #[test]
    fn the_domain_check_tells_a_login_session_from_ssh_and_from_nothing() {
        let gui = domain(&Mode::Domain("gui/501".into()), None, None);
        assert_eq!(gui.status, Status::Pass);
        assert_eq!(gui.message, "launchd answers for gui/501");

        let over_ssh = domain(
            &Mode::Domain("user/501".into()),
            Some("Could not find domain for user gui: 501"),
            None,
        );
        assert_eq!(over_ssh.status, Status::Warn);
        assert_eq!(
            over_ssh.message,
            "there is no gui/501 domain (no GUI login, as over SSH: Could not find domain for \
             user gui: 501), so sygen's agent is in user/501"
        );
        assert!(over_ssh.hint.unwrap().contains("log in at the Mac itself"));

        let nothing = domain(
            &Mode::Domain("user/501".into()),
            Some("Could not find domain for user gui: 501"),
            Some("Could not find domain for user/501"),
        );
        assert_eq!(nothing.status, Status::Fail);
        assert_eq!(
            nothing.message,
            "launchd has no user/501 domain for sygen's agent: Could not find domain for user/501"
        );
        assert!(nothing.hint.unwrap().contains("`launchctl print user/501`"));

        assert_eq!(domain(&Mode::Legacy, None, None).status, Status::Pass);
    }

    #[test]
    fn an_installed_agent_launchd_has_not_loaded_is_a_warning() {
        assert_eq!(loaded("gui/501/dev.sygen", true).status, Status::Pass);
        let unloaded = loaded("gui/501/dev.sygen", false);
        assert_eq!(unloaded.status, Status::Warn);
        assert_eq!(
            unloaded.message,
            "the plist is installed, but launchd has not loaded gui/501/dev.sygen"
        );
        assert_eq!(
            unloaded.hint.as_deref(),
            Some("run `sygen service start`, which loads it")
        );
    }
}
