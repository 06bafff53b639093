//! What became of each record and of the batch: the one vocabulary of dispositions, the
//! facts of each record's log line, and the batch response Lambda reads.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use refund_shared::{
    command::TicketId,
    correlation::CorrelationId,
    queue::QueueError,
    store::Change,
    trace::TraceHeader,
    verdict::{Class, ErrorCode, RefundFailure},
};
use uuid::Uuid;

use crate::{calls::Calls, delivery::Delivery};

/// How a record ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Both calls succeeded; Lambda deletes the message.
    Done,
    /// Copied to the dead-letter queue; Lambda deletes the original.
    DeadLettered {
        code: ErrorCode,
        dead_letter_message_id: String,
    },
    /// Handed back for a later delivery; `visibility_s` is `None` when the change could
    /// not be made and the queue's own visibility timeout applies.
    Retry { visibility_s: Option<u32> },
    /// The copy to the dead-letter queue failed, so the original must stay on its queue.
    DeadLetterFailed { code: ErrorCode, error: QueueError },
    /// Not finished at `deadline - DEADLINE_MARGIN_MS`. No closing status write is made: the
    /// margin is for answering Lambda and for the dead-letter copies already started, and
    /// the record's `begin` (`processing`, the attempt counted) is true as it stands until
    /// the redelivery writes again.
    Unfinished,
    /// Handling the record panicked. No closing status write is made: what the record had
    /// learnt is lost with the unwound future, and the redelivery writes again.
    Panicked,
    /// Both calls are done, but the bus did not take the `TicketRefunded` event: the
    /// message comes back (after `visibility_s`, as a retry would) to publish it, its
    /// calls then skipped as the record confirms them.
    EventUnpublished { visibility_s: Option<u32> },
}

impl Disposition {
    /// Whether the record must stay on the queue, i.e. go into `batchItemFailures`.
    pub fn stays_on_queue(&self) -> bool {
        !matches!(self, Self::Done | Self::DeadLettered { .. })
    }

    /// The `outcome` of the record's log line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::DeadLettered { .. } => "dead_lettered",
            Self::Retry { .. } => "retry",
            Self::DeadLetterFailed { .. } => "dead_letter_failed",
            Self::Unfinished => "unfinished",
            Self::Panicked => "panicked",
            Self::EventUnpublished { .. } => "event_unpublished",
        }
    }
}

/// Everything known about one record when it ended: the facts of its log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// The record's position in the batch.
    pub index: usize,
    pub message_id: Option<String>,
    pub ticket_id: Option<TicketId>,
    /// The one the upstream calls carried: the message's, or a generated one.
    pub correlation_id: CorrelationId,
    pub receive_count: u32,
    /// `None` when the record ended before it was classified (deadline, panic).
    pub class: Option<Class>,
    /// Why the record is not done; its full text is the log line's `error`.
    pub failure: Option<RefundFailure>,
    /// The ticket's calls, which every message of the ticket shares; `None` when none
    /// were attempted.
    pub calls: Option<Calls>,
    /// Whether this message carried the ticket's calls: only its outcome counts their
    /// latencies, so the metrics count each call once.
    pub carries_calls: bool,
    /// The command carried a key other than its ticket's K; the calls carried K.
    pub foreign_key: bool,
    /// The X-Ray trace the message carried, which its calls and its event carry on.
    pub trace: Option<TraceHeader>,
    /// The refund event this record's end published (or tried to: see `disposition`).
    pub event_id: Option<Uuid>,
    pub disposition: Disposition,
    /// Whether every status write of this record succeeded; `None` when there was nothing
    /// to record (no refund store, or a body that is not a command).
    pub status_recorded: Option<bool>,
    /// The first status write that failed and why (`"begin: status store unavailable: …"`).
    pub status_error: Option<String>,
}

/// One outcome line at `$level`: the same fields whatever the disposition, so a query over
/// the logs never misses one.
macro_rules! outcome_line {
    ($outcome:expr, $level:ident, $text:expr) => {{
        let outcome: &RecordOutcome = $outcome;
        let (visibility_s, dead_letter_message_id, queue_error) = outcome.disposition_fields();
        tracing::$level!(
            message_id = outcome.message_id.as_deref(),
            ticket_id = outcome.ticket_id.map(tracing::field::display),
            correlation_id = %outcome.correlation_id,
            receive_count = outcome.receive_count,
            class = outcome.class.map(Class::as_str),
            error_code = outcome.error_code().map(ErrorCode::as_str),
            void_status = outcome.void_status(),
            refund_status = outcome.refund_status(),
            foreign_key = outcome.foreign_key,
            skipped = outcome.skipped(),
            trace = outcome.trace.as_ref().map(TraceHeader::as_str),
            event_id = outcome.event_id.map(tracing::field::display),
            outcome = outcome.disposition.as_str(),
            reported_failed = outcome.disposition.stays_on_queue() && outcome.message_id.is_some(),
            visibility_s,
            dead_letter_message_id,
            error = outcome.error().as_deref(),
            queue_error = queue_error.as_deref(),
            status_recorded = outcome.status_recorded,
            $text
        )
    }};
}

impl RecordOutcome {
    /// The record at `index` of the batch, just taken: nothing known yet but what SQS
    /// says.
    pub(crate) fn started(index: usize, delivery: &Delivery) -> Self {
        Self {
            index,
            message_id: delivery.message_id.clone(),
            ticket_id: None,
            correlation_id: delivery.correlation_id(),
            receive_count: delivery.receive_count,
            class: None,
            failure: None,
            calls: None,
            carries_calls: false,
            foreign_key: false,
            trace: delivery.trace.clone(),
            event_id: None,
            disposition: Disposition::Unfinished,
            status_recorded: None,
            status_error: None,
        }
    }

    /// The failure's full text, for the log line.
    pub fn error(&self) -> Option<String> {
        self.failure.as_ref().map(RefundFailure::to_string)
    }

    /// The status the receipts service answered this delivery, if it was called.
    pub fn void_status(&self) -> Option<u16> {
        self.calls.as_ref().and_then(|calls| calls.void.status())
    }

    /// The status the payments service answered this delivery, if it was called.
    pub fn refund_status(&self) -> Option<u16> {
        self.calls.as_ref().and_then(|calls| calls.refund.status())
    }

    /// The calls the status record confirmed, so not made again: `void_receipt`,
    /// `refund_payment` or `both`.
    pub fn skipped(&self) -> Option<&'static str> {
        self.calls.as_ref().and_then(Calls::skipped)
    }

    /// How long the void and the refund took, on the outcome that carried them only.
    pub fn latencies(&self) -> (Option<Duration>, Option<Duration>) {
        match &self.calls {
            Some(calls) if self.carries_calls => (calls.void.took(), calls.refund.took()),
            _ => (None, None),
        }
    }

    /// Notes how the status write named `transition` went. A failure only ever reaches the
    /// log and the `StatusWriteFailed` metric: the disposition is decided without it.
    pub(crate) fn note_status(
        &mut self,
        transition: &'static str,
        result: &Result<Change, String>,
    ) {
        match result {
            Ok(_) => {
                self.status_recorded.get_or_insert(true);
            }
            Err(error) => {
                self.status_recorded = Some(false);
                self.status_error
                    .get_or_insert_with(|| format!("{transition}: {error}"));
            }
        }
    }

    pub fn error_code(&self) -> Option<ErrorCode> {
        match &self.disposition {
            Disposition::DeadLettered { code, .. } | Disposition::DeadLetterFailed { code, .. } => {
                Some(*code)
            }
            _ => None,
        }
    }

    /// The record's one outcome line (and a warning when its status lags).
    pub fn log(&self) {
        if self.status_recorded == Some(false) {
            // Once per record, however many of its writes failed: the first error says why.
            tracing::warn!(
                message_id = self.message_id.as_deref(),
                ticket_id = self.ticket_id.map(tracing::field::display),
                correlation_id = %self.correlation_id,
                outcome = self.disposition.as_str(),
                status_error = self.status_error.as_deref(),
                "refund status not recorded; the refund itself is handled as if it were"
            );
        }
        let failed = self.disposition.stays_on_queue();
        match (&self.disposition, &self.message_id) {
            (Disposition::Done, _) => outcome_line!(self, info, "ticket refunded"),
            (_, None) if failed => outcome_line!(
                self,
                error,
                "record not handled and has no messageId, so it cannot be reported failed; the queue redelivers it after its visibility timeout"
            ),
            (Disposition::Retry { .. }, _) => outcome_line!(self, warn, "refund will be retried"),
            (Disposition::DeadLettered { .. }, _) => {
                outcome_line!(self, warn, "message copied to the dead-letter queue")
            }
            (Disposition::DeadLetterFailed { .. }, _) => outcome_line!(
                self,
                error,
                "dead-letter copy failed; the message stays on its queue"
            ),
            (Disposition::Unfinished, _) => {
                outcome_line!(self, error, "record unfinished at the deadline margin")
            }
            (Disposition::Panicked, _) => {
                outcome_line!(self, error, "handling the record panicked")
            }
            (Disposition::EventUnpublished { .. }, _) => outcome_line!(
                self,
                warn,
                "ticket refunded, but its event was not published; the message comes back to publish it"
            ),
        }
    }

    /// The disposition's own fields of the log line.
    fn disposition_fields(&self) -> (Option<u32>, Option<&str>, Option<String>) {
        match &self.disposition {
            Disposition::Retry { visibility_s }
            | Disposition::EventUnpublished { visibility_s } => (*visibility_s, None, None),
            Disposition::DeadLettered {
                dead_letter_message_id,
                ..
            } => (None, Some(dead_letter_message_id.as_str()), None),
            Disposition::DeadLetterFailed { error, .. } => (None, None, Some(error.to_string())),
            _ => (None, None, None),
        }
    }
}

/// What became of a whole batch, in the order of its records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    pub records: Vec<RecordOutcome>,
    /// The batch's refund events; `None` for a worker without a bus.
    pub events: Option<EventTally>,
}

/// How many refund events the bus took and refused (`EventsPublished`,
/// `EventsUnpublished`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventTally {
    pub published: u32,
    pub unpublished: u32,
}

impl BatchOutcome {
    /// The message ids for `batchItemFailures`; a record without an id cannot be named,
    /// and an empty identifier would make Lambda fail the whole batch.
    pub fn failed_message_ids(&self) -> Vec<String> {
        self.records
            .iter()
            .filter(|r| r.disposition.stays_on_queue())
            .filter_map(|r| r.message_id.clone())
            .filter(|id| !id.is_empty())
            .collect()
    }

    pub fn response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        response.set_failures(self.failed_message_ids());
        response
    }
}
