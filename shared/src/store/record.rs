//! The refund record of contract section 8, and its JSON shape.
//!
//! Every field is always present in the JSON: a value not known yet (or not any more) is
//! `null`, never an absent key, so a client reads one fixed shape whatever the status.
//! Times are written in the one format of [`crate::stamp`].

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    command::TicketId,
    correlation::CorrelationId,
    idempotency::IdempotencyKey,
    stamp,
    subject::Subject,
    verdict::{UpstreamError, UpstreamResult},
};

/// The audit trail keeps the last this many upstream calls; older ones are dropped.
pub const MAX_INTERACTIONS: usize = 20;
/// `last_error` and `failure_reason` are cut to this many bytes: they quote upstream
/// answers, and an item must stay far below DynamoDB's 400 KB.
pub const MAX_REASON_BYTES: usize = 1024;

/// Where a refund is. The order is `accepted < processing < succeeded | failed`; the only
/// way back is from `failed` (see [`super::transition`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Accepted,
    Processing,
    Succeeded,
    Failed,
}

impl RefundStatus {
    pub const ALL: [Self; 4] = [
        Self::Accepted,
        Self::Processing,
        Self::Succeeded,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// `succeeded` or `failed`: the refund has ended (until a `failed` one is accepted again).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

impl fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `status` that is not one of the four (a `?status=` query parameter, a stored item).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status must be one of accepted, processing, succeeded, failed")]
pub struct InvalidStatus;

impl FromStr for RefundStatus {
    type Err = InvalidStatus;

    /// Exactly the lowercase names: a query parameter in another case is a client bug.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(InvalidStatus)
    }
}

/// Which upstream call an [`Interaction`] was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    VoidReceipt,
    RefundPayment,
}

impl Call {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VoidReceipt => "void_receipt",
            Self::RefundPayment => "refund_payment",
        }
    }
}

impl FromStr for Call {
    type Err = InvalidCallStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::VoidReceipt, Self::RefundPayment]
            .into_iter()
            .find(|call| call.as_str() == s)
            .ok_or(InvalidCallStatus)
    }
}

/// How an upstream call ended, written as one string so the field has one JSON type: the
/// HTTP status in decimal (`"204"`, `"503"`) when the service answered, else `"timeout"`,
/// `"connect_error"` or `"transport_error"`. The error text itself is not kept per call
/// (it is in `last_error` / `failure_reason`): the trail stays small and holds nothing an
/// upstream chose to put in a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallStatus {
    Http(u16),
    Timeout,
    ConnectError,
    TransportError,
}

/// A stored `call` or `status` that is not one this code writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a known interaction call or status")]
pub struct InvalidCallStatus;

impl CallStatus {
    /// The status of one answer as the gateway port reports it.
    pub fn of(result: &UpstreamResult) -> Self {
        match result {
            Ok(status) | Err(UpstreamError::Status(status)) => Self::Http(*status),
            Err(UpstreamError::Timeout) => Self::Timeout,
            Err(UpstreamError::Connect(_)) => Self::ConnectError,
            Err(UpstreamError::Transport(_)) => Self::TransportError,
        }
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(status) => write!(f, "{status}"),
            Self::Timeout => f.write_str("timeout"),
            Self::ConnectError => f.write_str("connect_error"),
            Self::TransportError => f.write_str("transport_error"),
        }
    }
}

impl FromStr for CallStatus {
    type Err = InvalidCallStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "timeout" => Ok(Self::Timeout),
            "connect_error" => Ok(Self::ConnectError),
            "transport_error" => Ok(Self::TransportError),
            digits
                if (1..=3).contains(&digits.len())
                    && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                digits
                    .parse()
                    .map(Self::Http)
                    .map_err(|_| InvalidCallStatus)
            }
            _ => Err(InvalidCallStatus),
        }
    }
}

impl Serialize for CallStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CallStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One upstream call in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interaction {
    pub call: Call,
    pub status: CallStatus,
    pub duration_ms: u64,
    /// When the call was sent.
    #[serde(with = "stamp")]
    pub at: OffsetDateTime,
}

impl Interaction {
    pub fn new(
        call: Call,
        result: &UpstreamResult,
        duration: Duration,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            call,
            status: CallStatus::of(result),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            at: stamp::normalise(at),
        }
    }
}

/// One refund, exactly the record of contract section 8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRecord {
    pub ticket_id: TicketId,
    pub status: RefundStatus,
    /// K, the same for every request about this ticket.
    pub idempotency_key: IdempotencyKey,
    /// Of the request that (last) accepted the refund.
    pub correlation_id: CorrelationId,
    /// The caller's JWT `sub`, when known.
    #[serde(default)]
    pub requested_by: Option<Subject>,
    /// Deliveries the worker has begun (a redelivery counts again).
    pub attempts: u32,
    /// Why the last attempt did not finish, while the refund is still being retried.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Why the refund failed; only while `failed`.
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(with = "stamp")]
    pub accepted_at: OffsetDateTime,
    /// The refund's last change; re-queueing its command is not one (`queued_at`).
    #[serde(with = "stamp")]
    pub updated_at: OffsetDateTime,
    /// When it became `succeeded` or `failed`; `null` otherwise.
    #[serde(default, with = "stamp::option")]
    pub completed_at: Option<OffsetDateTime>,
    /// When the API last put a command for it on the queue (its first accept, or a
    /// re-queue after the quiet period); `null` on a record written before it was kept.
    #[serde(default, with = "stamp::option")]
    pub queued_at: Option<OffsetDateTime>,
    /// The `header.id` of that command: what a PUT in the quiet period answers.
    #[serde(default)]
    pub command_id: Option<Uuid>,
    /// When the receipts service first confirmed the void (kept even if the refund failed
    /// later: it is a fact about money, not about the status).
    #[serde(default, with = "stamp::option")]
    pub receipt_voided_at: Option<OffsetDateTime>,
    /// When the payments service first confirmed the refund.
    #[serde(default, with = "stamp::option")]
    pub payment_refunded_at: Option<OffsetDateTime>,
    /// The last [`MAX_INTERACTIONS`] upstream calls, oldest first.
    #[serde(default)]
    pub interactions: Vec<Interaction>,
}

/// The calls a record confirms under the ticket's K: the worker does not make them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confirmed {
    pub void: bool,
    pub refund: bool,
}

impl RefundRecord {
    /// Which calls this record confirms under `key`, the ticket's K (contract section 4).
    /// A call confirmed under another key is that key, as an error: the record was written
    /// before the worker derived K itself (contract section 3), and calling again under
    /// `key` could refund the ticket a second time. The calls are idempotent, so the
    /// record only ever saves a call, never decides an effect.
    pub fn confirmed(&self, key: IdempotencyKey) -> Result<Confirmed, IdempotencyKey> {
        if self.idempotency_key != key {
            let any = self.receipt_voided_at.is_some() || self.payment_refunded_at.is_some();
            return if any {
                Err(self.idempotency_key)
            } else {
                Ok(Confirmed::default())
            };
        }
        let succeeded = self.status == RefundStatus::Succeeded;
        Ok(Confirmed {
            void: succeeded || self.receipt_voided_at.is_some(),
            refund: succeeded || self.payment_refunded_at.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;

    const TICKET: &str = "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f";

    /// What a record confirms, by its key, status and confirmation times.
    #[test]
    fn a_record_confirms_the_calls_it_saw_confirmed_under_k() {
        let k = IdempotencyKey::for_ticket(TICKET.parse().unwrap());
        let other =
            IdempotencyKey::for_ticket("1f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap());
        let at = Some(datetime!(2026-11-23 06:00 UTC));
        let yes = |void, refund| Ok(Confirmed { void, refund });
        type Case = (
            IdempotencyKey,
            RefundStatus,
            bool,
            bool,
            Result<Confirmed, IdempotencyKey>,
        );
        let cases: [Case; 7] = [
            (k, RefundStatus::Processing, false, false, yes(false, false)),
            (k, RefundStatus::Processing, true, false, yes(true, false)),
            (k, RefundStatus::Failed, false, true, yes(false, true)),
            // A succeeded record confirms both, whatever times it kept.
            (k, RefundStatus::Succeeded, false, false, yes(true, true)),
            // Under another key nothing is confirmed, and a confirmed call is a conflict.
            (
                other,
                RefundStatus::Succeeded,
                false,
                false,
                yes(false, false),
            ),
            (other, RefundStatus::Processing, true, false, Err(other)),
            (other, RefundStatus::Processing, false, true, Err(other)),
        ];
        for (key, status, voided, refunded, expected) in cases {
            let record = RefundRecord {
                idempotency_key: key,
                status,
                receipt_voided_at: at.filter(|_| voided),
                payment_refunded_at: at.filter(|_| refunded),
                ..record()
            };
            assert_eq!(
                record.confirmed(k),
                expected,
                "{status:?} {voided} {refunded}"
            );
        }
    }

    fn record() -> RefundRecord {
        RefundRecord {
            ticket_id: TICKET.parse().unwrap(),
            status: RefundStatus::Processing,
            idempotency_key: IdempotencyKey::for_ticket(TICKET.parse().unwrap()),
            correlation_id: CorrelationId::parse("c-1").unwrap(),
            requested_by: None,
            attempts: 2,
            last_error: Some("refund answered HTTP 503".into()),
            failure_reason: None,
            accepted_at: stamp::normalise(datetime!(2026-11-23 08:15:30.5 +02:00)),
            updated_at: stamp::normalise(datetime!(2026-11-23 06:16:00 UTC)),
            completed_at: None,
            queued_at: Some(stamp::normalise(datetime!(2026-11-23 08:15:30.5 +02:00))),
            command_id: Some(Uuid::from_u128(0x5eed)),
            receipt_voided_at: Some(stamp::normalise(
                datetime!(2026-11-23 06:15:59.123456789 UTC),
            )),
            payment_refunded_at: None,
            interactions: vec![Interaction::new(
                Call::RefundPayment,
                &Err(UpstreamError::Status(503)),
                Duration::from_millis(42),
                datetime!(2026-11-23 06:15:59 UTC),
            )],
        }
    }

    /// Golden: the field names of contract section 8, nothing more, `null` for the unknown.
    #[test]
    fn record_json_has_exactly_the_contract_shape() {
        let json: Value = serde_json::to_value(record()).unwrap();
        assert_eq!(
            json,
            json!({
                "ticket_id": TICKET,
                "status": "processing",
                "idempotency_key": IdempotencyKey::for_ticket(TICKET.parse().unwrap()).to_string(),
                "correlation_id": "c-1",
                "requested_by": null,
                "attempts": 2,
                "last_error": "refund answered HTTP 503",
                "failure_reason": null,
                "accepted_at": "2026-11-23T06:15:30.500000Z",
                "updated_at": "2026-11-23T06:16:00.000000Z",
                "completed_at": null,
                "queued_at": "2026-11-23T06:15:30.500000Z",
                "command_id": "00000000-0000-0000-0000-000000005eed",
                "receipt_voided_at": "2026-11-23T06:15:59.123456Z",
                "payment_refunded_at": null,
                "interactions": [
                    {"call": "refund_payment", "status": "503", "duration_ms": 42,
                     "at": "2026-11-23T06:15:59.000000Z"}
                ],
            })
        );
        let back: RefundRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record());
    }

    #[test]
    fn statuses_parse_only_their_lowercase_names() {
        for status in RefundStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        for bad in ["", "Accepted", "done", "pending", " failed"] {
            assert_eq!(bad.parse::<RefundStatus>(), Err(InvalidStatus), "{bad:?}");
        }
    }

    #[test]
    fn call_statuses_round_trip_and_reject_strangers() {
        for status in [
            CallStatus::Http(204),
            CallStatus::Http(503),
            CallStatus::Timeout,
            CallStatus::ConnectError,
            CallStatus::TransportError,
        ] {
            assert_eq!(status.to_string().parse(), Ok(status));
        }
        for bad in ["", "2040", "-1", "+20", "OK", "99999"] {
            assert!(bad.parse::<CallStatus>().is_err(), "{bad:?}");
        }
        assert_eq!(CallStatus::of(&Ok(200)), CallStatus::Http(200));
        assert_eq!(
            CallStatus::of(&Err(UpstreamError::Connect("refused".into()))),
            CallStatus::ConnectError
        );
    }
}
