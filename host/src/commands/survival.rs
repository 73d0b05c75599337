//! What sygen outlives: whether it runs after logout, after a reboot and on battery, as the
//! backend's service manager decides it (its `survival` method). `service install` says it
//! after installing and in its dry run, `doctor` in its report, all in the same words. A backend
//! that does not list the method is not asked, and then nothing is said: silence is not "yes".

use sygen_backend_api::{
    methods::{Situation, Survival, SurvivalLine, SurvivalQuery, SURVIVAL},
    ServiceSpec,
};

use crate::{
    backend::Backend,
    exit::{self, Exit, Failure},
};

/// The backend's lines, or `None` when it does not answer the method.
pub fn ask(
    backend: &Backend,
    spec: &ServiceSpec,
    query: SurvivalQuery,
) -> Option<Result<Vec<SurvivalLine>, Failure>> {
    if !backend.capabilities().iter().any(|c| c == SURVIVAL) {
        return None;
    }
    let lines = serde_json::to_string(&query)
        .map_err(|e| {
            Failure::new(
                Exit::Failed,
                format!("cannot encode the survival query: {e}"),
            )
        })
        .and_then(|input| backend.call(SURVIVAL, &input, spec))
        .and_then(|answer| {
            serde_json::from_str::<Survival>(&answer)
                .map(|survival| survival.lines)
                .map_err(|e| {
                    Failure::new(
                        Exit::Failed,
                        format!(
                            "the {} backend answered what sygen outlives in invalid JSON: {e}",
                            backend.name
                        ),
                    )
                })
        });
    Some(lines)
}

/// Prints what [`ask`] answered under `heading`. A backend that could not say is a warning,
/// not a failure: what it was asked about (the install) has happened all the same.
pub fn print(answer: Option<Result<Vec<SurvivalLine>, Failure>>, heading: &str) {
    match answer {
        None => {}
        Some(Ok(lines)) => print!("{}", render(heading, &lines)),
        Some(Err(failure)) => eprintln!(
            "warning: cannot tell what sygen outlives: {}",
            exit::one_line(&failure.message)
        ),
    }
}

/// The lines under `heading`, each with its fix on the next line; nothing for no lines.
pub fn render(heading: &str, lines: &[SurvivalLine]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut text = format!("{heading}\n");
    for line in lines {
        text.push_str(&format!("  {}: {}\n", label(line.situation), line.message));
        if let Some(fix) = &line.fix {
            text.push_str(&format!("    fix: {fix}\n"));
        }
    }
    text
}

fn label(situation: Situation) -> &'static str {
    match situation {
        Situation::Logout => "logout",
        Situation::Reboot => "reboot",
        Situation::BatteryOrSleep => "battery or sleep",
    }
}

#[cfg(test)]
mod tests {
    use sygen_backend_api::methods::Runs;

    use super::*;

    #[test]
    fn each_line_is_labelled_with_its_fix_below() {
        let lines = [
            SurvivalLine::new(
                Situation::Logout,
                Runs::No,
                "sygen stops when ada logs out: linger is off for ada",
            )
            .with_fix("run `sudo loginctl enable-linger ada`"),
            SurvivalLine::new(
                Situation::BatteryOrSleep,
                Runs::Yes,
                "sygen runs on battery: the task ignores batteries",
            ),
        ];
        assert_eq!(
            render("what sygen outlives:", &lines),
            "what sygen outlives:\n\
             \x20 logout: sygen stops when ada logs out: linger is off for ada\n\
             \x20   fix: run `sudo loginctl enable-linger ada`\n\
             \x20 battery or sleep: sygen runs on battery: the task ignores batteries\n"
        );
        assert_eq!(render("what sygen outlives:", &[]), "");
    }
}
