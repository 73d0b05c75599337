//! The OpenRC backend's check for `sygen doctor`: is the installed script what sygen writes
//! now? Whether OpenRC starts it by itself (the runlevels) is said by the survival lines (see
//! `survival`), which doctor prints too.

use sygen_backend_api::{
    methods::Check,
    sdk::{
        doctor::{definition_check, failed},
        Context,
    },
};

use crate::{invoking_user, mode, render, script_path};

/// The check once sygen is installed (the host says when it is not).
pub fn checks(cx: &Context) -> Vec<Check> {
    let mode = match mode(cx) {
        Ok(mode) => mode,
        Err(error) => return vec![failed("openrc.version", error)],
    };
    let path = script_path(cx, &mode);
    if !path.exists() {
        return Vec::new();
    }
    vec![
        match invoking_user().and_then(|user| render(cx, &mode, &user)) {
            Ok(script) => {
                definition_check("openrc.script", "init script", &path, script.as_bytes())
            }
            Err(error) => failed("openrc.script", error),
        },
    ]
}
