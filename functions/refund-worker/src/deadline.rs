//! When a batch must stop: `deadline - DEADLINE_MARGIN_MS` (contract section 4), on the
//! monotonic clock, so that unfinished records are reported failed in time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use refund_shared::aws::SQS_OPERATION_TIMEOUT;
use tokio::time::Instant;

/// Deadlines below this (2001-09-09 as epoch milliseconds) are not epoch times:
/// `cargo lambda watch` sends the function's timeout itself (600000) in the deadline
/// header, and the local stack must not see every record as already late.
const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;

/// The instant at which unfinished records are given up: `deadline - margin`, measured
/// on the monotonic clock from now. A deadline already past gives now.
pub fn cutoff(deadline_ms: u64, margin: Duration) -> Instant {
    /// Far enough for any invocation (Lambda allows 15 minutes), near enough not to overflow.
    const FAR: Duration = Duration::from_secs(24 * 60 * 60);
    Instant::now() + remaining(deadline_ms).saturating_sub(margin).min(FAR)
}

/// The time left until `deadline_ms` (epoch milliseconds, or cargo-lambda's timeout).
fn remaining(deadline_ms: u64) -> Duration {
    if deadline_ms < EPOCH_MS_FLOOR {
        Duration::from_millis(deadline_ms)
    } else {
        UNIX_EPOCH
            .checked_add(Duration::from_millis(deadline_ms))
            .and_then(|deadline| deadline.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::ZERO)
    }
}

/// How much the invocation lacks to settle a record after the cutoff: the margin must
/// leave room for one SQS operation (a dead-letter copy or a visibility change, each
/// bounded by [`SQS_OPERATION_TIMEOUT`]) before Lambda stops the function. `None`: it fits.
pub fn budget_shortfall(remaining: Duration, margin: Duration) -> Option<Duration> {
    let needed = margin + SQS_OPERATION_TIMEOUT;
    (remaining < needed).then(|| needed - remaining)
}

/// At the first event of an execution environment: one clear error line when the
/// function's timeout cannot hold `DEADLINE_MARGIN_MS` plus an SQS operation, so a
/// misconfigured deployment says so instead of losing records to Lambda's timeout.
pub fn check_budget(deadline_ms: u64, margin: Duration) {
    let left = remaining(deadline_ms);
    if let Some(short) = budget_shortfall(left, margin) {
        tracing::error!(
            remaining_ms = left.as_millis() as u64,
            deadline_margin_ms = margin.as_millis() as u64,
            sqs_operation_timeout_ms = SQS_OPERATION_TIMEOUT.as_millis() as u64,
            short_ms = short.as_millis() as u64,
            "the invocation's time cannot hold DEADLINE_MARGIN_MS plus the SQS operation timeout: raise the function's timeout or lower DEADLINE_MARGIN_MS"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_ms(time: SystemTime) -> u64 {
        time.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[test]
    fn the_cutoff_is_the_deadline_minus_the_margin() {
        let deadline = epoch_ms(SystemTime::now() + Duration::from_secs(10));
        let left = cutoff(deadline, Duration::from_secs(2)) - Instant::now();
        assert!(
            left > Duration::from_millis(7_500) && left <= Duration::from_secs(8),
            "{left:?}"
        );
    }

    #[test]
    fn a_relative_deadline_from_cargo_lambda_counts_from_now() {
        let left = cutoff(600_000, Duration::from_secs(2)) - Instant::now();
        assert!(
            left > Duration::from_secs(597) && left <= Duration::from_secs(598),
            "{left:?}"
        );
    }

    #[test]
    fn the_budget_must_hold_the_margin_and_one_sqs_operation() {
        let s = Duration::from_secs;
        for (remaining, margin, short) in [
            (s(30), s(2), None),
            (s(7), s(2), None),
            (s(6), s(2), Some(s(1))),
            (s(3), s(2), Some(s(4))),
            (s(0), s(0), Some(SQS_OPERATION_TIMEOUT)),
            (s(600), s(600), Some(SQS_OPERATION_TIMEOUT)),
        ] {
            assert_eq!(
                budget_shortfall(remaining, margin),
                short,
                "{remaining:?} {margin:?}"
            );
        }
    }

    #[test]
    fn a_past_or_absurd_deadline_does_not_panic() {
        let now = Instant::now();
        assert!(cutoff(0, Duration::from_secs(2)) <= Instant::now());
        assert!(cutoff(EPOCH_MS_FLOOR, Duration::ZERO) <= Instant::now());
        assert!(
            cutoff(epoch_ms(SystemTime::now()) + 1000, Duration::from_secs(2)) <= Instant::now()
        );
        assert!(cutoff(u64::MAX, Duration::ZERO) > now + Duration::from_secs(3600));
    }
}
