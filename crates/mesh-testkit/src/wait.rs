//! Waiting for a condition with a deadline, instead of sleeping for a fixed time.
//!
//! [`wait_until`] checks its condition at once and then every [`POLL`], and returns as soon
//! as the condition holds. A condition says what it observed when it does not hold yet (see
//! [`Outcome`]); if the deadline passes first, the panic names what was awaited and that
//! last observation, so a failure on a slow machine says how far things got.

use std::fmt::Debug;
use std::time::Duration;

/// How often [`wait_until`] checks its condition.
pub const POLL: Duration = Duration::from_millis(20);

/// What one check of a condition returns: done (with a value for the caller), or not yet
/// (with a description of what was observed).
///
/// - `bool`: `true` is done; `false` observed nothing worth naming.
/// - `Option<T>`: `Some(value)` is done.
/// - `Result<T, S>`: `Ok(value)` is done; `Err(state)` is what was observed (its `Debug`
///   form goes into the panic message). Prefer it: the message then says how far things got.
pub trait Outcome {
    /// What the wait returns once the condition holds.
    type Done;

    /// `Ok` once the condition holds, otherwise what was observed.
    fn into_result(self) -> Result<Self::Done, String>;
}

impl Outcome for bool {
    type Done = ();

    fn into_result(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("the condition did not hold".to_owned())
        }
    }
}

impl<T> Outcome for Option<T> {
    type Done = T;

    fn into_result(self) -> Result<T, String> {
        self.ok_or_else(|| "nothing yet (None)".to_owned())
    }
}

impl<T, S: Debug> Outcome for Result<T, S> {
    type Done = T;

    fn into_result(self) -> Result<T, String> {
        self.map_err(|state| format!("{state:?}"))
    }
}

/// Checks `condition` now and then every [`POLL`] until it holds, and returns its value.
///
/// # Panics
///
/// When `deadline` has passed since the wait started and the condition still does not
/// hold: the message names `what` (phrase it as what should become true, e.g. "node a
/// has two links") and the last observation.
pub async fn wait_until<O: Outcome>(
    what: &str,
    deadline: Duration,
    mut condition: impl AsyncFnMut() -> O,
) -> O::Done {
    let start = tokio::time::Instant::now();
    let mut checks = 0_u32;
    loop {
        checks += 1;
        let observed = match condition().await.into_result() {
            Ok(done) => return done,
            Err(observed) => observed,
        };
        if start.elapsed() >= deadline {
            panic!(
                "gave up waiting until {what}: not within {deadline:?} ({checks} checks); \
                 last observed: {observed}"
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let mut n = 0;
        let got = wait_until("n reaches 3", Duration::from_secs(1), async || {
            n += 1;
            if n >= 3 { Ok(n) } else { Err(n) }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "gave up waiting until n reaches 100: not within 100ms")]
    async fn panics_naming_what_it_waited_for() {
        let mut n = 0;
        wait_until("n reaches 100", Duration::from_millis(100), async || {
            n += 1;
            n >= 100
        })
        .await;
    }

    #[tokio::test]
    async fn the_panic_carries_the_last_observation() {
        let wait = tokio::spawn(async {
            wait_until("never", Duration::from_millis(50), async || {
                Err::<(), _>(vec!["a", "b"])
            })
            .await
        });
        let panic = wait.await.unwrap_err().into_panic();
        let message = panic.downcast_ref::<String>().expect("a formatted message");
        assert!(
            message.ends_with(r#"last observed: ["a", "b"]"#),
            "{message}"
        );
    }

    #[test]
    fn every_kind_of_outcome_converts() {
        assert_eq!(true.into_result(), Ok(()));
        assert!(false.into_result().is_err());
        assert_eq!(Some(4).into_result(), Ok(4));
        assert_eq!(
            None::<u8>.into_result(),
            Err("nothing yet (None)".to_owned())
        );
        assert_eq!(Err::<u8, _>(2).into_result(), Err("2".to_owned()));
    }
}
