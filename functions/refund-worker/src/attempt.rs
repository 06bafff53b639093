//! One delivery's attempt at a refund: record that it begins, then make both upstream
//! calls concurrently under the ticket's own K, and judge them by the one table of
//! [`refund::outcome`].

use refund::{
    command::RefundTicket,
    gateway::{Gateway, RefundCall},
    outcome::{RefundFailure, UpstreamResult, judge},
    store::{Progress, RefundEvent, RefundRequest, RefundStore},
};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout_at};

use crate::{
    delivery::Delivery,
    outcome::RecordOutcome,
    recorder::{CallReport, bounded_write, confirmed_under_another_key, progress_of},
};

/// The delivery's attempt: `begin` in `recording` (the store and the record's request,
/// when there is a store), then both calls concurrently, judged. `None` when the cutoff
/// came first; what the record learnt by then is already in `outcome`.
pub(crate) async fn attempt<G: Gateway, S: RefundStore>(
    gateway: &G,
    recording: Option<(&S, &RefundRequest)>,
    max_receive_count: u32,
    command: &RefundTicket,
    outcome: &mut RecordOutcome,
    delivery: &Delivery,
    cutoff: Instant,
) -> Option<(Result<(), RefundFailure>, Progress)> {
    let key = command.key();
    if let Some((store, request)) = recording {
        // Before the calls, so the status never shows a refund in flight as `accepted`
        // (or a redriven one as `failed`); bounded, so a sick table only delays them.
        let event = RefundEvent::Begin;
        let name = event.name();
        let begun = bounded_write(
            cutoff,
            store.record(request, event, OffsetDateTime::now_utc()),
        )
        .await;
        outcome.note_status(name, &begun);
        if let Some(recorded) = begun
            .ok()
            .and_then(|change| confirmed_under_another_key(change.record(), key))
        {
            let recorded = recorded.to_string();
            return Some((
                Err(RefundFailure::ForeignKeyConflict { recorded }),
                Progress::default(),
            ));
        }
    }
    let call = RefundCall {
        ticket_id: command.ticket_id,
        idempotency_key: key,
        correlation_id: outcome.correlation_id.clone(),
    };
    let (void, refund) = timeout_at(
        cutoff,
        futures::future::join(
            timed(gateway.void_receipt(&call)),
            timed(gateway.refund_payment(&call)),
        ),
    )
    .await
    .ok()?;
    outcome.void_status = status_of(&void.result);
    outcome.refund_status = status_of(&refund.result);
    outcome.void_latency = Some(void.took);
    outcome.refund_latency = Some(refund.took);
    let verdict = judge(
        &void.result,
        &refund.result,
        delivery.receive_count,
        max_receive_count,
    );
    Some((verdict, progress_of(&void, &refund)))
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
