//! What survives sign-out, reboot and battery under Task Scheduler, read from the task
//! definition itself: the registered one when there is one (someone may have changed it in
//! Task Scheduler), else the one install registers. sygen's task logs on with the user's
//! interactive token, so it lives in their logon session: it starts at their logon and ends
//! at their sign-out. Its settings let batteries neither keep it from starting nor stop it.

use sygen_backend_api::{
    methods::{Runs, Situation, SurvivalLine, SurvivalQuery},
    sdk::{Context, Result},
};

use crate::{
    definition, exec, schtasks,
    task_xml::{self, Conditions, INTERACTIVE_TOKEN},
};

pub fn lines(cx: &Context, query: &SurvivalQuery) -> Result<Vec<SurvivalLine>> {
    let registered = match query.after_install {
        true => None,
        false => schtasks::query_xml(&cx.service.name)?,
    };
    let xml = match registered {
        Some(xml) => xml,
        None => definition(cx, &exec(cx)?)?,
    };
    Ok(for_conditions(&task_xml::read_conditions(&xml)?))
}

fn for_conditions(task: &Conditions) -> Vec<SurvivalLine> {
    let user = task.user_id.as_deref().unwrap_or("the task's user");
    // Without a logon type Task Scheduler may still use the interactive token: no promise.
    let in_logon_session = task
        .logon_type
        .as_deref()
        .is_none_or(|logon_type| logon_type == INTERACTIVE_TOKEN);
    let logout = match (in_logon_session, task.logon_type.as_deref()) {
        (false, Some(logon_type)) => SurvivalLine::new(
            Situation::Logout,
            Runs::Yes,
            format!(
                "sygen keeps running after {user} signs out: the task logs on by itself \
                 ({logon_type})"
            ),
        ),
        _ => SurvivalLine::new(
            Situation::Logout,
            Runs::No,
            format!(
                "sygen stops when {user} signs out: the task runs in {user}'s logon session \
                 (LogonType {INTERACTIVE_TOKEN})"
            ),
        ),
    };
    let reboot = if task.boot_trigger && !in_logon_session {
        SurvivalLine::new(
            Situation::Reboot,
            Runs::Yes,
            "sygen starts at boot: the task has a boot trigger",
        )
    } else if task.logon_trigger {
        SurvivalLine::new(
            Situation::Reboot,
            Runs::No,
            format!("sygen starts only when {user} logs on: the task's trigger is the logon"),
        )
    } else {
        SurvivalLine::new(
            Situation::Reboot,
            Runs::No,
            "sygen does not start after a reboot: the task has no logon trigger",
        )
        .with_fix(REINSTALL)
    };
    let battery = match (
        task.disallow_start_if_on_batteries,
        task.stop_if_going_on_batteries,
    ) {
        (false, false) => SurvivalLine::new(
            Situation::BatteryOrSleep,
            Runs::Yes,
            "sygen runs on battery: the task neither waits for mains power to start nor stops \
             when the computer goes on battery",
        ),
        (true, false) => SurvivalLine::new(
            Situation::BatteryOrSleep,
            Runs::OnlyIf,
            "sygen starts only on mains power: the task does not start on battery \
             (DisallowStartIfOnBatteries), though once started it keeps running on battery",
        )
        .with_fix(REINSTALL),
        (_, true) => SurvivalLine::new(
            Situation::BatteryOrSleep,
            Runs::No,
            "sygen stops when the computer goes on battery: the task says \
             StopIfGoingOnBatteries",
        )
        .with_fix(REINSTALL),
    };
    vec![logout, reboot, battery]
}

/// The fix for a registered task changed since install: register sygen's own again.
const REINSTALL: &str =
    "run `sygen service install` to register the task as sygen writes it (batteries neither \
     prevent nor stop it; it starts at logon)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task_xml::{read_conditions, render, Exec, TaskSpec};

    fn sygen_s_task() -> Conditions {
        let xml = render(&TaskSpec {
            description: "sygen agent",
            user_id: "DESKTOP-7\\ada",
            exec: &Exec {
                command: "C:\\sygen\\sygenw.exe".into(),
                arguments: "run --supervise".into(),
                working_directory: "C:\\Users\\ada\\.sygen".into(),
            },
        })
        .unwrap();
        read_conditions(&xml).unwrap()
    }

    fn runs(lines: &[SurvivalLine]) -> Vec<(Situation, Runs)> {
        lines.iter().map(|l| (l.situation, l.runs)).collect()
    }

    #[test]
    fn the_task_sygen_writes_lives_in_the_logon_session_and_ignores_batteries() {
        let task = sygen_s_task();
        assert_eq!(
            task,
            Conditions {
                user_id: Some("DESKTOP-7\\ada".into()),
                logon_type: Some(INTERACTIVE_TOKEN.into()),
                boot_trigger: false,
                logon_trigger: true,
                disallow_start_if_on_batteries: false,
                stop_if_going_on_batteries: false,
            }
        );
        let lines = for_conditions(&task);
        assert_eq!(
            runs(&lines),
            [
                (Situation::Logout, Runs::No),
                (Situation::Reboot, Runs::No),
                (Situation::BatteryOrSleep, Runs::Yes)
            ]
        );
        assert_eq!(
            lines[1].message,
            "sygen starts only when DESKTOP-7\\ada logs on: the task's trigger is the logon"
        );
        assert!(lines.iter().all(|l| l.fix.is_none()), "{lines:?}");
    }

    #[test]
    fn a_task_changed_in_task_scheduler_is_said_as_it_is() {
        let mut task = sygen_s_task();
        task.disallow_start_if_on_batteries = true;
        assert_eq!(for_conditions(&task)[2].runs, Runs::OnlyIf);
        task.stop_if_going_on_batteries = true;
        let battery = &for_conditions(&task)[2];
        assert_eq!(battery.runs, Runs::No);
        assert!(battery
            .fix
            .as_deref()
            .unwrap()
            .contains("sygen service install"));

        task.logon_type = Some("S4U".into());
        task.boot_trigger = true;
        assert_eq!(
            runs(&for_conditions(&task)[..2]),
            [
                (Situation::Logout, Runs::Yes),
                (Situation::Reboot, Runs::Yes)
            ]
        );
        task.boot_trigger = false;
        task.logon_trigger = false;
        assert_eq!(for_conditions(&task)[1].fix.as_deref(), Some(REINSTALL));
    }

    #[test]
    fn what_the_definition_leaves_out_is_the_schema_s_default() {
        let bare = "<Task><Triggers><BootTrigger/></Triggers><Settings/></Task>";
        let task = read_conditions(bare).unwrap();
        assert!(task.boot_trigger && !task.logon_trigger);
        assert!(task.disallow_start_if_on_batteries && task.stop_if_going_on_batteries);
        // No logon type: no promise that it outlives a sign-out, nor that it starts at boot.
        assert_eq!(
            runs(&for_conditions(&task)[..2]),
            [(Situation::Logout, Runs::No), (Situation::Reboot, Runs::No)]
        );
    }
}
