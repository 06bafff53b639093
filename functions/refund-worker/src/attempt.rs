//! One ticket's attempt at a refund, shared by every message of that ticket in the batch:
//! record that it begins, skip what the status record already confirms under K, make the
//! other calls concurrently, and leave the verdict to each message (its receive count
//! decides whether a transient failure is retried or exhausted).

use refund_shared::{
    command::RefundTicket,
    correlation::CorrelationId,
    gateway::{Gateway, RefundCall},
    idempotency::IdempotencyKey,
    outcome::{RefundFailure, UpstreamError, UpstreamResult, judge},
    store::{
        Change, Progress, RefundEvent, RefundRecord, RefundRequest, RefundStatus, RefundStore,
    },
    trace::TraceHeader,
};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout_at};

use crate::{
    outcome::RecordOutcome,
    recorder::{CallReport, bounded_write, confirmed_under_another_key, progress_of},
};

/// What one ticket's attempt came to.
pub(crate) struct Attempt {
    /// How the `begin` write went; `None` without a store.
    pub begun: Option<Result<Change, String>>,
    /// `None` when the cutoff came first.
    pub calls: Option<Calls>,
}

/// The attempt's calls, or why none were made.
pub(crate) enum Calls {
    /// The record shows a call confirmed under another key: none is made (contract 3).
    Conflict(RefundFailure),
    Made {
        void: CallEnd,
        refund: CallEnd,
    },
}

/// One of the two calls.
pub(crate) enum CallEnd {
    /// The status record confirms it under K: not made again (contract 4).
    Confirmed,
    Made(CallReport),
}

impl CallEnd {
    fn error(&self) -> Option<&UpstreamError> {
        match self {
            Self::Confirmed => None,
            Self::Made(report) => report.result.as_ref().err(),
        }
    }

    fn report(&self) -> Option<&CallReport> {
        match self {
            Self::Confirmed => None,
            Self::Made(report) => Some(report),
        }
    }
}

impl Calls {
    /// The verdict for one message of the ticket, by its own receive count.
    pub fn verdict(&self, receive_count: u32, max_receive_count: u32) -> Result<(), RefundFailure> {
        match self {
            Self::Conflict(failure) => Err(failure.clone()),
            Self::Made { void, refund } => judge(
                void.error(),
                refund.error(),
                receive_count,
                max_receive_count,
            ),
        }
    }

    /// The trail and confirmations of the calls made now, for the status ending.
    pub fn progress(&self) -> Progress {
        match self {
            Self::Conflict(_) => Progress::default(),
            Self::Made { void, refund } => progress_of(void.report(), refund.report()),
        }
    }

    /// Puts the calls on a message's outcome line. Only the message that carried the
    /// attempt (`carrier`) takes the latencies, so the metrics count each call once.
    pub fn describe(&self, outcome: &mut RecordOutcome, carrier: bool) {
        let Self::Made { void, refund } = self else {
            return;
        };
        outcome.void_status = void.report().and_then(|r| status_of(&r.result));
        outcome.refund_status = refund.report().and_then(|r| status_of(&r.result));
        if carrier {
            outcome.void_latency = void.report().map(|r| r.took);
            outcome.refund_latency = refund.report().map(|r| r.took);
        }
        outcome.skipped = match (void, refund) {
            (CallEnd::Confirmed, CallEnd::Confirmed) => Some("both"),
            (CallEnd::Confirmed, _) => Some("void_receipt"),
            (_, CallEnd::Confirmed) => Some("refund_payment"),
            _ => None,
        };
    }
}

/// What one attempt needs to know of its ticket.
pub(crate) struct Ticket<'a> {
    pub command: &'a RefundTicket,
    pub correlation_id: &'a CorrelationId,
    pub trace: Option<&'a TraceHeader>,
}

/// The ticket's attempt: `begin` in `recording` (the store and the request, when there is
/// a store), then the calls the record does not confirm, concurrently.
pub(crate) async fn attempt<G: Gateway, S: RefundStore>(
    gateway: &G,
    recording: Option<(&S, &RefundRequest)>,
    ticket: Ticket<'_>,
    cutoff: Instant,
) -> Attempt {
    let key = ticket.command.key();
    let mut begun = None;
    if let Some((store, request)) = recording {
        // Before the calls, so the status never shows a refund in flight as `accepted`
        // (or a redriven one as `failed`); bounded, so a sick table only delays them.
        let write = store.record(request, RefundEvent::Begin, OffsetDateTime::now_utc());
        begun = Some(bounded_write(cutoff, write).await);
    }
    let record = begun
        .as_ref()
        .and_then(|b| b.as_ref().ok())
        .map(Change::record);
    if let Some(recorded) = record.and_then(|r| confirmed_under_another_key(r, key)) {
        let recorded = recorded.to_string();
        let calls = Calls::Conflict(RefundFailure::ForeignKeyConflict { recorded });
        return Attempt {
            begun,
            calls: Some(calls),
        };
    }
    let (void_done, refund_done) = confirmed(record, key);
    let call = RefundCall {
        ticket_id: ticket.command.ticket_id,
        idempotency_key: key,
        correlation_id: ticket.correlation_id.clone(),
        trace: ticket.trace.cloned(),
    };
    let void = async {
        if void_done {
            CallEnd::Confirmed
        } else {
            CallEnd::Made(timed(gateway.void_receipt(&call)).await)
        }
    };
    let refund = async {
        if refund_done {
            CallEnd::Confirmed
        } else {
            CallEnd::Made(timed(gateway.refund_payment(&call)).await)
        }
    };
    // Past the cutoff the calls are abandoned: both are idempotent on K, so the
    // redelivery repeats them safely.
    let calls = timeout_at(cutoff, futures::future::join(void, refund))
        .await
        .ok()
        .map(|(void, refund)| Calls::Made { void, refund });
    Attempt { begun, calls }
}

/// Which calls the record confirms under `key`: none without a readable record (both
/// calls are idempotent, so the record only ever saves calls, never decides an effect).
fn confirmed(record: Option<&RefundRecord>, key: IdempotencyKey) -> (bool, bool) {
    match record {
        Some(record) if record.idempotency_key == key => {
            let succeeded = record.status == RefundStatus::Succeeded;
            (
                succeeded || record.receipt_voided_at.is_some(),
                succeeded || record.payment_refunded_at.is_some(),
            )
        }
        _ => (false, false),
    }
}

/// Runs one upstream call, noting when it was sent (wall clock, for the status trail)
/// and how long it took (monotonic clock, for the latency metrics).
async fn timed(call: impl Future<Output = UpstreamResult>) -> CallReport {
    let sent_at = OffsetDateTime::now_utc();
    let started = Instant::now();
    let result = call.await;
    CallReport {
        result,
        sent_at,
        took: started.elapsed(),
    }
}

fn status_of(result: &UpstreamResult) -> Option<u16> {
    match result {
        Ok(status) => Some(*status),
        Err(error) => error.status(),
    }
}
