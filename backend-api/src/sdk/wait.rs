//! Waiting for the service manager to reach a state, with failure detection: the loop every
//! backend needs after a start or an unload, written once.

use std::{
    thread,
    time::{Duration, Instant},
};

use super::{Error, Result};

/// How often the state is looked at.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// What one look at the service manager's state says.
pub enum Look<S> {
    /// The state waited for is reached.
    Done,
    /// Not yet; `S` is what was seen, for the message if time runs out.
    NotYet(S),
    /// It will not be reached (the program failed, the manager gave up): stop waiting.
    Failed(Error),
}

/// Looks at the state every [`INTERVAL`] until `look` says it is done or failed, for at most
/// `timeout` (the first look is at once). Answers `Ok(Ok(()))` when done, `Ok(Err(seen))` with
/// the last state seen when time ran out, and the error of a failed look or state.
pub fn until<S>(
    timeout: Duration,
    mut look: impl FnMut() -> Result<Look<S>>,
) -> Result<std::result::Result<(), S>> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        match look()? {
            Look::Done => return Ok(Ok(())),
            Look::Failed(error) => return Err(error),
            Look::NotYet(seen) if deadline.is_some_and(|d| Instant::now() >= d) => {
                return Ok(Err(seen))
            }
            Look::NotYet(_) => thread::sleep(INTERVAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_done_failed_or_the_last_state_seen() {
        let mut looks = 0;
        let done = until(Duration::from_secs(5), || {
            looks += 1;
            Ok(if looks < 3 {
                Look::NotYet(looks)
            } else {
                Look::Done
            })
        });
        assert!(matches!(done, Ok(Ok(()))));
        assert_eq!(looks, 3);

        let timed_out = until(Duration::from_millis(250), || Ok(Look::NotYet("starting")));
        assert!(matches!(timed_out, Ok(Err("starting"))));

        let failed = until::<()>(Duration::from_secs(5), || {
            Ok(Look::Failed(Error::service_failed("it exited")))
        });
        assert_eq!(failed.err().map(|e| e.message), Some("it exited".into()));
    }
}
