//! The two upstream calls of one ticket under K, the void before the refund, and what
//! they did: the one account of a call that every reader takes its part from (the
//! verdict, the status record's progress, the log line and the metrics).

use std::time::Duration;

use refund_shared::{
    gateway::{Gateway, RefundCall},
    store::{Call, Confirmed, Interaction, Progress},
    verdict::{RefundFailure, UNAUTHORIZED, UpstreamError, UpstreamResult, judge},
};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout_at};

/// What became of one call in this delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEnd {
    /// The status record confirms it under K: not made again (contract section 4).
    Confirmed,
    /// Made now: the answer, when the request was sent (wall clock, for the status trail)
    /// and how long it took (monotonic clock, for the latency metrics).
    Made {
        result: UpstreamResult,
        sent_at: OffsetDateTime,
        took: Duration,
    },
    /// Not made: the refund waits for a confirmed void.
    Held,
}

/// The void and the refund of one ticket's attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calls {
    pub void: CallEnd,
    pub refund: CallEnd,
}

impl Calls {
    /// Makes the calls the record does not confirm, in the money's order: the void first,
    /// and the refund only once the void is confirmed (answered 2xx now, or in the
    /// record), so no money leaves for a ticket that could not be voided (contract
    /// section 4). `None` when the cutoff came first: the calls are abandoned, and as both
    /// are idempotent on K the redelivery repeats them safely.
    pub async fn make<G: Gateway>(
        gateway: &G,
        call: &RefundCall,
        confirmed: Confirmed,
        cutoff: Instant,
    ) -> Option<Self> {
        let in_order = async {
            let void = CallEnd::unless(confirmed.void, gateway.void_receipt(call)).await;
            let refund = match void.confirms() {
                true => CallEnd::unless(confirmed.refund, gateway.refund_payment(call)).await,
                false => CallEnd::Held,
            };
            Self { void, refund }
        };
        timeout_at(cutoff, in_order).await.ok()
    }

    /// The verdict for one message of the ticket, by its own receive count.
    pub fn verdict(&self, receive_count: u32, max_receive_count: u32) -> Result<(), RefundFailure> {
        judge(
            self.void.error(),
            self.refund.error(),
            receive_count,
            max_receive_count,
        )
    }

    /// What the status record keeps of the calls made now: each in the trail, and a
    /// confirmation time (when its answer arrived) for each the service confirmed.
    pub fn progress(&self) -> Progress {
        Progress {
            interactions: [
                self.void.interaction(Call::VoidReceipt),
                self.refund.interaction(Call::RefundPayment),
            ]
            .into_iter()
            .flatten()
            .collect(),
            receipt_voided_at: self.void.confirmed_at(),
            payment_refunded_at: self.refund.confirmed_at(),
        }
    }

    /// The calls the record confirmed, so not made again, as the log line names them.
    pub fn skipped(&self) -> Option<&'static str> {
        match (&self.void, &self.refund) {
            (CallEnd::Confirmed, CallEnd::Confirmed) => Some("both"),
            (CallEnd::Confirmed, _) => Some("void_receipt"),
            (_, CallEnd::Confirmed) => Some("refund_payment"),
            _ => None,
        }
    }

    /// The one outcome that leaves the customer with neither ticket nor money, should the
    /// message be dead-lettered now: the void confirmed, the refund not (`VoidedNotRefunded`).
    pub fn voided_not_refunded(&self) -> bool {
        self.void.confirms() && !self.refund.confirms()
    }

    /// Whether a service still answered 401 after the gateway re-read the token.
    pub fn unauthorized(&self) -> bool {
        [self.void.status(), self.refund.status()].contains(&Some(UNAUTHORIZED))
    }
}

impl CallEnd {
    /// `call`, timed, unless the record confirms it.
    async fn unless(confirmed: bool, call: impl Future<Output = UpstreamResult>) -> Self {
        if confirmed {
            return Self::Confirmed;
        }
        let sent_at = OffsetDateTime::now_utc();
        let started = Instant::now();
        let result = call.await;
        Self::Made {
            result,
            sent_at,
            took: started.elapsed(),
        }
    }

    /// Whether the service confirmed the call, now or in the record.
    pub fn confirms(&self) -> bool {
        matches!(self, Self::Confirmed | Self::Made { result: Ok(_), .. })
    }

    /// The HTTP status the service answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Confirmed | Self::Held => None,
            Self::Made {
                result: Ok(status), ..
            } => Some(*status),
            Self::Made {
                result: Err(error), ..
            } => error.status(),
        }
    }

    /// How long the call took, if it was made.
    pub fn took(&self) -> Option<Duration> {
        match self {
            Self::Confirmed | Self::Held => None,
            Self::Made { took, .. } => Some(*took),
        }
    }

    fn error(&self) -> Option<&UpstreamError> {
        match self {
            Self::Confirmed | Self::Held => None,
            Self::Made { result, .. } => result.as_ref().err(),
        }
    }

    fn interaction(&self, call: Call) -> Option<Interaction> {
        match self {
            Self::Confirmed | Self::Held => None,
            Self::Made {
                result,
                sent_at,
                took,
            } => Some(Interaction::new(call, result, *took, *sent_at)),
        }
    }

    fn confirmed_at(&self) -> Option<OffsetDateTime> {
        match self {
            Self::Made {
                result: Ok(_),
                sent_at,
                took,
            } => Some(*sent_at + *took),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn made(result: UpstreamResult, took_ms: u64) -> CallEnd {
        CallEnd::Made {
            result,
            sent_at: datetime!(2026-11-23 06:00 UTC),
            took: Duration::from_millis(took_ms),
        }
    }

    #[test]
    fn only_confirmed_calls_get_a_confirmation_time() {
        let calls = Calls {
            void: made(Ok(204), 120),
            refund: made(Err(UpstreamError::Status(503)), 80),
        };
        let progress = calls.progress();
        assert_eq!(
            progress.receipt_voided_at,
            Some(datetime!(2026-11-23 06:00:00.12 UTC))
        );
        assert_eq!(progress.payment_refunded_at, None);
        let trail: Vec<(Call, String, u64)> = progress
            .interactions
            .iter()
            .map(|i| (i.call, i.status.to_string(), i.duration_ms))
            .collect();
        assert_eq!(
            trail,
            [
                (Call::VoidReceipt, "204".to_owned(), 120),
                (Call::RefundPayment, "503".to_owned(), 80)
            ]
        );
        // A call the record confirmed is neither in the trail nor confirmed again.
        let skipped = Calls {
            void: CallEnd::Confirmed,
            ..calls
        }
        .progress();
        assert_eq!(skipped.interactions.len(), 1);
        assert_eq!(skipped.interactions[0].call, Call::RefundPayment);
        assert_eq!(skipped.receipt_voided_at, None);
    }

    /// What the log line names as skipped, and the 401 that the metrics count.
    #[test]
    fn the_log_line_and_the_metrics_read_the_calls() {
        let ok = made(Ok(200), 1);
        let refused = made(Err(UpstreamError::Status(401)), 1);
        let cases = [
            (CallEnd::Confirmed, CallEnd::Confirmed, Some("both"), false),
            (
                CallEnd::Confirmed,
                refused.clone(),
                Some("void_receipt"),
                true,
            ),
            (
                ok.clone(),
                CallEnd::Confirmed,
                Some("refund_payment"),
                false,
            ),
            (refused, ok.clone(), None, true),
            (
                ok.clone(),
                made(Err(UpstreamError::Timeout), 1),
                None,
                false,
            ),
        ];
        for (void, refund, skipped, unauthorized) in cases {
            let calls = Calls { void, refund };
            assert_eq!(calls.skipped(), skipped, "{calls:?}");
            assert_eq!(calls.unauthorized(), unauthorized, "{calls:?}");
        }
    }
}
