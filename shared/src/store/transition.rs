//! How a refund record moves: the one function both stores apply.
//!
//! `decide` takes the record as it is (or its absence) and one transition, and returns the
//! record as it must become, or `None` when the transition must leave it alone. The in-memory
//! twin applies it under a lock; the DynamoDB adapter applies it to the item it read and
//! writes the result under a version condition, and derives the condition of its
//! single-round-trip `accept` from `allowed`. So the twin and the table cannot disagree on
//! which moves exist, and the shared test suite holds them to the same effects.
//!
//! The moves (`-` = left alone):
//!
//! | from \ transition | accept | requeue | unqueue | withdraw | begin | retry | succeed | fail |
//! | --- | --- | --- | --- | --- | --- | --- | --- | --- |
//! | none | accepted | - | - | - | processing | processing | succeeded | failed |
//! | accepted | - | (same) | (same) | failed | processing | processing | succeeded | failed |
//! | processing | - | (same) | (same) | - | processing | processing | succeeded | failed |
//! | succeeded | - | - | - | - | - | - | - | - |
//! | failed | accepted | - | (same) | - | processing | - | succeeded | failed |
//!
//! - `requeue` and `unqueue` keep the status ("(same)") and move only `queued_at` and
//!   `command_id`: a PUT on an open record queues again after the [`QUIET_PERIOD`], and
//!   undoes that when the queue refuses (contract section 1a). A `requeue` within the
//!   quiet period, and an `unqueue` of a command the record no longer names, leave the
//!   record alone. A `withdraw` (the queue refused the command of an `accept`) fails only
//!   the `accepted` record that still names that command.
//! - A `succeeded` record is final: nothing changes it again, so a late or duplicate
//!   delivery can never make a refunded ticket look unrefunded.
//! - `failed` → `accepted` is a new PUT. `failed` → `processing` by `begin` is an
//!   operator's redrive: the message comes back from the DLQ without passing the API, so
//!   the record goes through `accepted` implicitly, in the same write.
//! - `failed` → `succeeded`: both services confirmed the refund (a second message for the
//!   ticket got through after the first one failed). The status follows the money; the
//!   chaos run checks that statuses agree with the services' effects.
//! - A `retry` never revives a `failed` record: only a delivery that begins does.
//! - Every worker transition also creates the record when it is missing (the API could not
//!   write it), from the command it carries: the status trail must not depend on the API's
//!   best-effort write.

use time::OffsetDateTime;
use uuid::Uuid;

use super::record::{Interaction, MAX_INTERACTIONS, MAX_REASON_BYTES, RefundRecord, RefundStatus};
use crate::{
    command::TicketId, correlation::CorrelationId, idempotency::IdempotencyKey, stamp,
    subject::Subject, text::bounded,
};

/// Who asked for which refund, and when: what the API knows from the PUT, and what the
/// worker knows from the command (`accepted_at` = the command's `published_at`). It fills
/// a record that does not exist yet; on an existing one only `accept` uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub ticket_id: TicketId,
    /// K.
    pub idempotency_key: IdempotencyKey,
    pub correlation_id: CorrelationId,
    pub requested_by: Option<Subject>,
    pub accepted_at: OffsetDateTime,
    /// The `header.id` of the command this request puts (or put) on the queue.
    pub command_id: Uuid,
}

/// How long after a command was queued a PUT on the same open record answers with that
/// command instead of queueing another (contract section 1a): a hot ticket then costs one
/// command a minute, not one per click.
pub const QUIET_PERIOD: time::Duration = time::Duration::seconds(60);

/// Whether `record` had a command queued within the [`QUIET_PERIOD`] before `at`. A
/// `queued_at` after `at` (a producer's clock, or a forged `published_at`) is not quiet:
/// it must not keep a ticket from ever being queued again.
pub fn recently_queued(record: &RefundRecord, at: OffsetDateTime) -> bool {
    let at = stamp::normalise(at);
    record
        .queued_at
        .is_some_and(|queued_at| queued_at <= at && at - queued_at <= QUIET_PERIOD)
}

/// What one delivery did upstream, recorded with its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// This delivery's calls, in the order they were sent.
    pub interactions: Vec<Interaction>,
    /// When the void was confirmed, if it was in this delivery.
    pub receipt_voided_at: Option<OffsetDateTime>,
    /// When the refund was confirmed, if it was in this delivery.
    pub payment_refunded_at: Option<OffsetDateTime>,
}

/// How a status write moves a refund: the one vocabulary of every status write, from the
/// API's `accept` to the worker's closing write, named the same in the logs
/// ([`Transition::name`]). Not to be confused with the refund events on the bus
/// (`announce`), which only the worker's end publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The API accepted a PUT (`RefundStore::accept`, the 202 path).
    Accept,
    /// A PUT on an open record after the quiet period: the request's command is queued
    /// again, so the record names it (`queued_at`, `command_id`).
    Requeue,
    /// The queue refused the command of a `Requeue`: the record names the one before
    /// again, provided it still names `refused`.
    Unqueue {
        refused: Uuid,
        queued_at: Option<OffsetDateTime>,
        command_id: Option<Uuid>,
    },
    /// The queue refused the command of an `Accept`: without a message nothing would move
    /// the record, so it is `failed` with `reason`, provided it is still `accepted` and
    /// names `refused` (a delivery that began meanwhile is left alone).
    Withdraw { refused: Uuid, reason: String },
    /// A delivery starts: `processing`, one more attempt.
    Begin,
    /// The delivery ended transiently; the message goes back to the queue.
    Retry {
        last_error: String,
        progress: Progress,
    },
    /// Both calls are done. A confirmation time missing from `progress` (and from the
    /// record) is taken to be the transition's time.
    Succeed { progress: Progress },
    /// The message went to the dead-letter queue with this reason.
    Fail { reason: String, progress: Progress },
}

impl Transition {
    /// The transition's name in log lines (`status_error = "begin: …"`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Requeue => "requeue",
            Self::Unqueue { .. } => "unqueue",
            Self::Withdraw { .. } => "withdraw",
            Self::Begin => "begin",
            Self::Retry { .. } => "retry",
            Self::Succeed { .. } => "succeed",
            Self::Fail { .. } => "fail",
        }
    }

    /// Anything but the queue's bookkeeping (`requeue`, `unqueue`), which changes when a
    /// command was queued, not where the refund is: `updated_at` follows only these.
    fn moves_the_refund(&self) -> bool {
        !matches!(self, Self::Requeue | Self::Unqueue { .. })
    }

    /// An transition of a delivery (the worker's), rather than of a request (the API's).
    fn is_delivery(&self) -> bool {
        matches!(
            self,
            Self::Begin | Self::Retry { .. } | Self::Succeed { .. } | Self::Fail { .. }
        )
    }
}

/// Whether `transition` moves a record in `from` (`None`: no record yet); the table above.
/// Only the kind of transition matters, never what it carries.
pub(crate) fn allowed(from: Option<RefundStatus>, transition: &Transition) -> bool {
    use RefundStatus::*;
    match transition {
        Transition::Requeue => matches!(from, Some(Accepted | Processing)),
        Transition::Unqueue { .. } => matches!(from, Some(Accepted | Processing | Failed)),
        Transition::Withdraw { .. } => from == Some(Accepted),
        _ => !matches!(
            (from, transition),
            (Some(Succeeded), _)
                | (Some(Accepted | Processing), Transition::Accept)
                | (Some(Failed), Transition::Retry { .. })
        ),
    }
}

/// Whether the record's queue bookkeeping lets `transition` apply: a re-queue waits out the
/// quiet period, and an undo applies only while the record names the refused command.
fn admits(current: Option<&RefundRecord>, transition: &Transition, at: OffsetDateTime) -> bool {
    match (transition, current) {
        (Transition::Requeue, Some(record)) => !recently_queued(record, at),
        (
            Transition::Unqueue { refused, .. } | Transition::Withdraw { refused, .. },
            Some(record),
        ) => record.command_id == Some(*refused),
        _ => true,
    }
}

/// The record after `transition` at `at`, or `None` when `transition` leaves `current` alone.
pub(crate) fn decide(
    current: Option<&RefundRecord>,
    request: &RefundRequest,
    transition: &Transition,
    at: OffsetDateTime,
) -> Option<RefundRecord> {
    let from = current.map(|record| record.status);
    if !allowed(from, transition) || !admits(current, transition, at) {
        return None;
    }
    let at = stamp::normalise(at);
    let mut record = current.cloned().unwrap_or_else(|| fresh(request, at));
    if transition.moves_the_refund() {
        record.updated_at = at;
    }
    let restarted = from == Some(RefundStatus::Failed) && transition.is_delivery();
    let accept = matches!(transition, Transition::Accept);
    if restarted || accept {
        // A new run: what described the failed one no longer applies. `attempts`, the
        // trail and the confirmation times stay: they are history and facts.
        record.failure_reason = None;
        record.completed_at = None;
        record.last_error = None;
    }
    apply(&mut record, request, transition, at);
    if transition.is_delivery() {
        // A delivery that reports anything was an attempt, even when its `begin` was
        // not recorded.
        record.attempts = record.attempts.max(1);
    }
    Some(record)
}

/// What `transition` itself changes, once `decide` has let it move the record.
fn apply(
    record: &mut RefundRecord,
    request: &RefundRequest,
    transition: &Transition,
    at: OffsetDateTime,
) {
    match transition {
        Transition::Accept => accept(record, request),
        Transition::Requeue => {
            record.queued_at = Some(at);
            record.command_id = Some(request.command_id);
        }
        Transition::Unqueue {
            queued_at,
            command_id,
            ..
        } => {
            record.queued_at = queued_at.map(stamp::normalise);
            record.command_id = *command_id;
        }
        Transition::Withdraw { reason, .. } => fail(record, reason, at),
        Transition::Begin => {
            record.status = RefundStatus::Processing;
            record.attempts = record.attempts.saturating_add(1);
        }
        Transition::Retry {
            last_error,
            progress,
        } => {
            record.status = RefundStatus::Processing;
            record.last_error = Some(bounded(last_error.clone(), MAX_REASON_BYTES));
            absorb(record, progress);
        }
        Transition::Succeed { progress } => {
            absorb(record, progress);
            record.status = RefundStatus::Succeeded;
            record.completed_at = Some(at);
            record.last_error = None;
            record.failure_reason = None;
            record.receipt_voided_at.get_or_insert(at);
            record.payment_refunded_at.get_or_insert(at);
        }
        Transition::Fail { reason, progress } => {
            absorb(record, progress);
            fail(record, reason, at);
        }
    }
}

/// An accepted PUT: the record is the request's, but for its owner.
fn accept(record: &mut RefundRecord, request: &RefundRequest) {
    record.status = RefundStatus::Accepted;
    record.accepted_at = stamp::normalise(request.accepted_at);
    record.correlation_id = request.correlation_id.clone();
    record.queued_at = Some(stamp::normalise(request.accepted_at));
    record.command_id = Some(request.command_id);
    // The owner is the first accepted caller, for good (contract section 1a): a later
    // caller re-asking for a failed refund must not gain its record.
    if record.requested_by.is_none() {
        record.requested_by = request.requested_by.clone();
    }
}

fn fail(record: &mut RefundRecord, reason: &str, at: OffsetDateTime) {
    record.status = RefundStatus::Failed;
    record.completed_at = Some(at);
    record.failure_reason = Some(bounded(reason.to_owned(), MAX_REASON_BYTES));
}

/// A record for a ticket seen for the first time; the transition then applies to it as to an
/// `accepted` one.
fn fresh(request: &RefundRequest, at: OffsetDateTime) -> RefundRecord {
    RefundRecord {
        ticket_id: request.ticket_id,
        status: RefundStatus::Accepted,
        idempotency_key: request.idempotency_key,
        correlation_id: request.correlation_id.clone(),
        requested_by: request.requested_by.clone(),
        attempts: 0,
        last_error: None,
        failure_reason: None,
        accepted_at: stamp::normalise(request.accepted_at),
        updated_at: at,
        completed_at: None,
        // Never after now: a command's `published_at` is the producer's to write.
        queued_at: Some(stamp::normalise(request.accepted_at).min(at)),
        command_id: Some(request.command_id),
        receipt_voided_at: None,
        payment_refunded_at: None,
        interactions: Vec::new(),
    }
}

/// Appends a delivery's calls, keeping the newest [`MAX_INTERACTIONS`], and keeps the
/// first confirmation time of each call.
fn absorb(record: &mut RefundRecord, progress: &Progress) {
    record
        .interactions
        .extend(progress.interactions.iter().cloned().map(|mut call| {
            call.at = stamp::normalise(call.at);
            call
        }));
    let excess = record.interactions.len().saturating_sub(MAX_INTERACTIONS);
    record.interactions.drain(..excess);
    if record.receipt_voided_at.is_none() {
        record.receipt_voided_at = progress.receipt_voided_at.map(stamp::normalise);
    }
    if record.payment_refunded_at.is_none() {
        record.payment_refunded_at = progress.payment_refunded_at.map(stamp::normalise);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;

    use super::*;
    use crate::store::record::Call;

    const T0: OffsetDateTime = datetime!(2026-11-23 06:00 UTC);

    fn request() -> RefundRequest {
        RefundRequest {
            ticket_id: "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap(),
            idempotency_key: IdempotencyKey::for_ticket(
                "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap(),
            ),
            correlation_id: CorrelationId::parse("c-1").unwrap(),
            requested_by: Subject::parse("user-7").ok(),
            accepted_at: T0,
            command_id: Uuid::from_u128(1),
        }
    }

    fn calls(n: usize) -> Progress {
        Progress {
            interactions: (0..n)
                .map(|i| {
                    Interaction::new(
                        Call::VoidReceipt,
                        &Ok(200),
                        Duration::from_millis(i as u64),
                        T0,
                    )
                })
                .collect(),
            ..Progress::default()
        }
    }

    fn transitions() -> Vec<Transition> {
        vec![
            Transition::Accept,
            Transition::Requeue,
            Transition::Unqueue {
                refused: request().command_id,
                queued_at: None,
                command_id: None,
            },
            Transition::Withdraw {
                refused: request().command_id,
                reason: "not queued".into(),
            },
            Transition::Begin,
            Transition::Retry {
                last_error: "503".into(),
                progress: calls(1),
            },
            Transition::Succeed { progress: calls(2) },
            Transition::Fail {
                reason: "409".into(),
                progress: calls(1),
            },
        ]
    }

    fn rank(status: RefundStatus) -> u8 {
        match status {
            RefundStatus::Accepted => 0,
            RefundStatus::Processing => 1,
            RefundStatus::Succeeded | RefundStatus::Failed => 2,
        }
    }

    /// Every move from every status: never backwards but from `failed`, never out of
    /// `succeeded`, and `decide` agrees with `allowed` (which the adapter's condition uses).
    #[test]
    fn no_event_moves_a_status_backwards() {
        // Past the quiet period, so that a re-queue applies wherever the table lets it.
        let at = T0 + QUIET_PERIOD + Duration::from_secs(1);
        for from in std::iter::once(None).chain(RefundStatus::ALL.map(Some)) {
            let current = from.and_then(|status| {
                let mut record = decide(None, &request(), &Transition::Accept, T0)?;
                record.status = status;
                Some(record)
            });
            for step in transitions() {
                let next = decide(current.as_ref(), &request(), &step, at);
                assert_eq!(next.is_some(), allowed(from, &step), "{from:?} {step:?}");
                let (Some(from), Some(next)) = (from, next) else {
                    continue;
                };
                assert_ne!(from, RefundStatus::Succeeded, "{step:?}");
                if from != RefundStatus::Failed {
                    assert!(
                        rank(next.status) >= rank(from),
                        "{from:?} {step:?} -> {:?}",
                        next.status
                    );
                    if from.is_final() {
                        assert_eq!(next.status, from, "{step:?}");
                    }
                }
                if step.moves_the_refund() {
                    assert_eq!(next.updated_at, at, "{step:?}");
                } else {
                    assert_eq!(next.status, from, "{step:?}");
                    assert_eq!(next.updated_at, T0, "{step:?}");
                }
            }
        }
    }

    #[test]
    fn a_redriven_failure_is_processing_again_without_its_reason() {
        let failed = decide(
            None,
            &request(),
            &Transition::Fail {
                reason: "void answered HTTP 409".into(),
                progress: calls(1),
            },
            T0,
        )
        .unwrap();
        assert_eq!(failed.status, RefundStatus::Failed);
        assert_eq!(failed.attempts, 1);
        assert!(failed.completed_at.is_some());

        let redriven = decide(Some(&failed), &request(), &Transition::Begin, T0).unwrap();
        assert_eq!(redriven.status, RefundStatus::Processing);
        assert_eq!(redriven.attempts, 2);
        assert_eq!(redriven.failure_reason, None);
        assert_eq!(redriven.completed_at, None);
        assert_eq!(redriven.interactions, failed.interactions);
    }

    #[test]
    fn the_trail_keeps_the_newest_twenty_calls() {
        let mut record = decide(None, &request(), &Transition::Accept, T0).unwrap();
        for _ in 0..3 {
            record = decide(
                Some(&record),
                &request(),
                &Transition::Retry {
                    last_error: "503".into(),
                    progress: calls(9),
                },
                T0,
            )
            .unwrap();
        }
        assert_eq!(record.interactions.len(), MAX_INTERACTIONS);
        // 27 calls with durations 0..9 three times: the newest 20 start at the 8th.
        let durations: Vec<u64> = record.interactions.iter().map(|c| c.duration_ms).collect();
        let expected: Vec<u64> = (0..9u64).cycle().take(27).skip(7).collect();
        assert_eq!(durations, expected);
    }

    #[test]
    fn success_keeps_the_first_confirmation_times() {
        let voided = T0 + Duration::from_secs(1);
        let retried = decide(
            None,
            &request(),
            &Transition::Retry {
                last_error: "refund timeout".into(),
                progress: Progress {
                    receipt_voided_at: Some(voided),
                    ..Progress::default()
                },
            },
            T0,
        )
        .unwrap();
        let done_at = T0 + Duration::from_secs(9);
        let done = decide(
            Some(&retried),
            &request(),
            &Transition::Succeed {
                progress: Progress {
                    receipt_voided_at: Some(done_at),
                    ..Progress::default()
                },
            },
            done_at,
        )
        .unwrap();
        assert_eq!(done.receipt_voided_at, Some(voided));
        assert_eq!(done.payment_refunded_at, Some(done_at));
        assert_eq!(done.completed_at, Some(done_at));
        assert_eq!(done.last_error, None);
    }

    #[test]
    fn long_texts_are_bounded() {
        // A correlation id is bounded by its type: one over 128 bytes cannot be made.
        assert!(CorrelationId::parse(&"c".repeat(500)).is_err());
        let failed = decide(
            None,
            &RefundRequest {
                requested_by: Subject::bounded(&"s".repeat(500)),
                ..request()
            },
            &Transition::Fail {
                reason: "x".repeat(5000),
                progress: Progress::default(),
            },
            T0,
        )
        .unwrap();
        assert_eq!(failed.failure_reason.unwrap().len(), MAX_REASON_BYTES);
        assert_eq!(
            failed.requested_by.unwrap().as_str().len(),
            Subject::MAX_BYTES
        );
    }

    /// A PUT on an open record queues again only after the quiet period, and names its
    /// command in the record; a refused one restores the command before, and only its own.
    #[test]
    fn a_requeue_waits_out_the_quiet_period_and_its_undo_restores_the_command_before() {
        let accepted = decide(None, &request(), &Transition::Accept, T0).unwrap();
        assert_eq!(accepted.queued_at, Some(T0));
        assert_eq!(accepted.command_id, Some(request().command_id));
        let again = RefundRequest {
            command_id: Uuid::from_u128(2),
            ..request()
        };
        let processing = decide(Some(&accepted), &again, &Transition::Begin, T0).unwrap();
        for quiet in [T0, T0 + Duration::from_secs(30), T0 + QUIET_PERIOD] {
            assert!(recently_queued(&processing, quiet));
            assert_eq!(
                decide(Some(&processing), &again, &Transition::Requeue, quiet),
                None
            );
        }
        let later = T0 + QUIET_PERIOD + Duration::from_secs(1);
        let requeued = decide(Some(&processing), &again, &Transition::Requeue, later).unwrap();
        assert_eq!(requeued.status, RefundStatus::Processing);
        assert_eq!(requeued.attempts, processing.attempts);
        assert_eq!(requeued.queued_at, Some(later));
        assert_eq!(requeued.command_id, Some(Uuid::from_u128(2)));
        assert_eq!(requeued.correlation_id, processing.correlation_id);
        assert_eq!(requeued.updated_at, processing.updated_at);

        let undo = |refused| Transition::Unqueue {
            refused,
            queued_at: processing.queued_at,
            command_id: processing.command_id,
        };
        // Someone else's command (a later re-queue) is not undone.
        assert_eq!(
            decide(Some(&requeued), &again, &undo(Uuid::from_u128(3)), later),
            None
        );
        let undone = decide(Some(&requeued), &again, &undo(Uuid::from_u128(2)), later).unwrap();
        assert_eq!(undone.status, RefundStatus::Processing);
        assert_eq!(undone.queued_at, Some(T0));
        assert_eq!(undone.command_id, Some(request().command_id));
        assert_eq!(undone, processing, "the undo restores the record");

        // A record written before the API kept `queued_at` is never quiet.
        let unknown = RefundRecord {
            queued_at: None,
            command_id: None,
            ..processing.clone()
        };
        assert!(!recently_queued(&unknown, T0));
        assert!(decide(Some(&unknown), &again, &Transition::Requeue, T0).is_some());
        // Nothing re-queues a record that does not exist, or one that has ended.
        assert_eq!(decide(None, &again, &Transition::Requeue, later), None);
        let done = decide(
            Some(&processing),
            &again,
            &Transition::Succeed {
                progress: Progress::default(),
            },
            T0,
        )
        .unwrap();
        assert_eq!(
            decide(Some(&done), &again, &Transition::Requeue, later),
            None
        );
    }

    /// A withdrawal fails only the `accepted` record that still names the refused
    /// command, and counts no attempt (nothing was delivered).
    #[test]
    fn a_withdrawal_fails_only_the_accepted_record_of_its_own_command() {
        let accepted = decide(None, &request(), &Transition::Accept, T0).unwrap();
        let withdraw = |refused| Transition::Withdraw {
            refused,
            reason: "not queued".into(),
        };
        let at = T0 + Duration::from_secs(1);
        let failed = decide(
            Some(&accepted),
            &request(),
            &withdraw(request().command_id),
            at,
        )
        .unwrap();
        assert_eq!(failed.status, RefundStatus::Failed);
        assert_eq!(failed.attempts, 0);
        assert_eq!(failed.failure_reason.as_deref(), Some("not queued"));
        assert_eq!(failed.completed_at, Some(at));
        // Another request's command, or a delivery that began meanwhile: left alone.
        assert_eq!(
            decide(
                Some(&accepted),
                &request(),
                &withdraw(Uuid::from_u128(9)),
                at
            ),
            None
        );
        let begun = decide(Some(&accepted), &request(), &Transition::Begin, at).unwrap();
        assert_eq!(
            decide(
                Some(&begun),
                &request(),
                &withdraw(request().command_id),
                at
            ),
            None
        );
    }

    /// A `queued_at` after now (a producer's clock or a forged `published_at`) never makes a
    /// ticket quiet, and the worker does not write one.
    #[test]
    fn a_queued_at_in_the_future_is_never_quiet() {
        let future = T0 + Duration::from_secs(3600);
        let created = decide(
            None,
            &RefundRequest {
                accepted_at: future,
                ..request()
            },
            &Transition::Begin,
            T0,
        )
        .unwrap();
        assert_eq!(
            created.queued_at,
            Some(T0),
            "clamped to the time of the write"
        );
        let skewed = RefundRecord {
            queued_at: Some(future),
            ..created
        };
        assert!(!recently_queued(&skewed, T0));
        assert!(decide(Some(&skewed), &request(), &Transition::Requeue, T0).is_some());
    }
}
