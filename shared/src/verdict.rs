//! The verdict on every upstream answer and every bad message, decided in one place.
//!
//! Every upstream answer and every bad message ends in one of four classes, and the class
//! alone decides what the worker does with the message: forget it (done), hand it back to
//! the queue for later (transient), or copy it to the dead-letter queue with an
//! `error_code` (permanent, poison, or transient once the retries are used up). Keeping
//! the table here means the gateway client, the worker and the logs cannot disagree.

use std::fmt;

/// The four classes of contract section 3 and 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Done,
    Transient,
    Permanent,
    Poison,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Poison => "poison",
        }
    }

    /// The class of an HTTP status, exactly the table of contract section 3.
    ///
    /// 401 is transient: the HTTP gateway has already re-read the token and repeated the
    /// call once (`gateway::TokenCache`), so a 401 that reaches here means the secret holds
    /// a token the services refuse, an operator's problem, not the ticket's. 403 stays
    /// permanent. 409 is transient: an idempotent service answers it while a request with
    /// the same key is still in flight (the IETF `Idempotency-Key` draft), as two
    /// deliveries of one command in two concurrent batches make happen.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Done,
            UNAUTHORIZED | 408 | 409 | 425 | 429 | 500..=599 => Self::Transient,
            _ => Self::Permanent,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The upstream's answer to a token it does not accept: the token is re-read and the
/// call repeated once (contract section 3).
pub const UNAUTHORIZED: u16 = 401;

/// An upstream call that did not end in a 2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("no answer within the upstream timeout")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    /// The connection broke mid-request, or any other transport failure: the request
    /// may or may not have arrived, and the services are idempotent on K, so it is retried.
    #[error("request failed: {0}")]
    Transport(String),
}

impl UpstreamError {
    pub fn class(&self) -> Class {
        match self {
            Self::Status(status) => Class::of_status(*status),
            Self::Timeout | Self::Connect(_) | Self::Transport(_) => Class::Transient,
        }
    }

    /// The service refused the bearer token (401).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(UNAUTHORIZED)
    }

    /// The HTTP status, when the service answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status(status) => Some(*status),
            _ => None,
        }
    }
}

/// The answer of one upstream call: the 2xx status, or why it failed.
pub type UpstreamResult = Result<u16, UpstreamError>;

/// The `error_code` attribute of a dead-lettered copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidCommand,
    VoidRejected,
    RefundRejected,
    RetriesExhausted,
    /// The ticket's status record shows a call confirmed under another key (contract
    /// section 3): calling again under K could refund the ticket a second time.
    ForeignKeyConflict,
    /// The refund is done, but its `TicketRefunded` event was still refused at the last
    /// receive (contract section 4): a redrive publishes it.
    EventUnpublished,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidCommand => "invalid_command",
            Self::VoidRejected => "void_rejected",
            Self::RefundRejected => "refund_rejected",
            Self::RetriesExhausted => "retries_exhausted",
            Self::ForeignKeyConflict => "foreign_key_conflict",
            Self::EventUnpublished => "event_unpublished",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a record was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundFailure {
    /// Carries the decoder's own message, which already says what was wrong.
    #[error("{0}")]
    InvalidCommand(String),
    #[error("receipts service rejected void-receipt: {0}")]
    VoidRejected(UpstreamError),
    #[error("payments service rejected the refund: {0}")]
    RefundRejected(UpstreamError),
    /// Still transient at the last receive the queue allows: retrying again would only
    /// let the redrive policy move the message without a reason attached.
    #[error(
        "still failing at receive {receive_count} (MAX_RECEIVE_COUNT {max_receive_count}): {detail}"
    )]
    RetriesExhausted {
        receive_count: u32,
        max_receive_count: u32,
        detail: String,
        /// The last failure's public reason.
        public: String,
    },
    #[error("upstream unavailable, retrying later: {detail}")]
    Transient {
        /// Every failed call, in full, for the logs and the dead-letter copy.
        detail: String,
        /// The first failed call's public reason.
        public: String,
    },
    /// The status record shows a call confirmed under `recorded`, not under the ticket's K.
    #[error("the status record shows a call confirmed under another key ({recorded})")]
    ForeignKeyConflict { recorded: String },
    /// Both calls are done, but the bus refused the `TicketRefunded` event until the last
    /// receive.
    #[error("refund done, but its event was not published by receive {receive_count}: {detail}")]
    EventUnpublished { receive_count: u32, detail: String },
}

impl RefundFailure {
    pub fn class(&self) -> Class {
        match self {
            Self::InvalidCommand(_) => Class::Poison,
            Self::VoidRejected(_) | Self::RefundRejected(_) | Self::ForeignKeyConflict { .. } => {
                Class::Permanent
            }
            Self::RetriesExhausted { .. }
            | Self::Transient { .. }
            | Self::EventUnpublished { .. } => Class::Transient,
        }
    }

    /// The code the dead-lettered copy carries; `None` means the message goes back to its
    /// queue instead.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::InvalidCommand(_) => Some(ErrorCode::InvalidCommand),
            Self::VoidRejected(_) => Some(ErrorCode::VoidRejected),
            Self::RefundRejected(_) => Some(ErrorCode::RefundRejected),
            Self::RetriesExhausted { .. } => Some(ErrorCode::RetriesExhausted),
            Self::ForeignKeyConflict { .. } => Some(ErrorCode::ForeignKeyConflict),
            Self::EventUnpublished { .. } => Some(ErrorCode::EventUnpublished),
            Self::Transient { .. } => None,
        }
    }

    /// What a status record says of this failure to every caller (contract section 1a):
    /// one phrase of a fixed vocabulary, never an address, a DNS or TLS message or a body.
    /// The full text (`Display`) stays in the logs and the dead-letter copy.
    pub fn public_reason(&self) -> String {
        match self {
            Self::InvalidCommand(_) => "invalid command".to_owned(),
            Self::VoidRejected(error) => error.public_reason(Service::Receipts),
            Self::RefundRejected(error) => error.public_reason(Service::Payments),
            Self::RetriesExhausted { public, .. } => format!("retries exhausted: {public}"),
            Self::Transient { public, .. } => public.clone(),
            Self::ForeignKeyConflict { .. } => "called earlier under another key".to_owned(),
            Self::EventUnpublished { .. } => "event not published".to_owned(),
        }
    }
}

/// The two upstream services, as the public reasons name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Voids the receipt.
    Receipts,
    /// Refunds the payment.
    Payments,
}

impl UpstreamError {
    /// This failure as a caller may read it: the service and its status, or that it did
    /// not answer in time, or could not be reached.
    pub fn public_reason(&self, service: Service) -> String {
        let service = match service {
            Service::Receipts => "receipts",
            Service::Payments => "payments",
        };
        match self {
            Self::Status(status) => format!("{service} service answered {status}"),
            Self::Timeout => format!("{service} service timed out"),
            Self::Connect(_) | Self::Transport(_) => format!("{service} service unreachable"),
        }
    }
}

/// Combines the void and the refund of one delivery: the failure of each call, `None` when
/// it succeeded (now, or earlier as the status record confirms).
///
/// A permanent answer on either side wins over a transient one on the other: retrying
/// could never make the permanent side succeed. The void is named first when both are
/// permanent. A transient failure at `receive_count >= max_receive_count` is exhausted.
pub fn judge(
    void: Option<&UpstreamError>,
    refund: Option<&UpstreamError>,
    receive_count: u32,
    max_receive_count: u32,
) -> Result<(), RefundFailure> {
    if let Some(error) = void.filter(|e| e.class() == Class::Permanent) {
        return Err(RefundFailure::VoidRejected(error.clone()));
    }
    if let Some(error) = refund.filter(|e| e.class() == Class::Permanent) {
        return Err(RefundFailure::RefundRejected(error.clone()));
    }
    let (detail, public) = match (void, refund) {
        (None, None) => return Ok(()),
        (Some(v), None) => (
            format!("void-receipt {v}"),
            v.public_reason(Service::Receipts),
        ),
        (None, Some(r)) => (format!("refund {r}"), r.public_reason(Service::Payments)),
        (Some(v), Some(r)) => (
            format!("void-receipt {v}; refund {r}"),
            v.public_reason(Service::Receipts),
        ),
    };
    if receive_count >= max_receive_count {
        Err(RefundFailure::RetriesExhausted {
            receive_count,
            max_receive_count,
            detail,
            public,
        })
    } else {
        Err(RefundFailure::Transient { detail, public })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `judge` over two answers as the gateway gives them.
    fn judged(
        void: &UpstreamResult,
        refund: &UpstreamResult,
        receive_count: u32,
        max_receive_count: u32,
    ) -> Result<(), RefundFailure> {
        judge(
            void.as_ref().err(),
            refund.as_ref().err(),
            receive_count,
            max_receive_count,
        )
    }

    #[test]
    fn statuses_fall_in_the_contracts_classes() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(Class::of_status(status), Class::Done, "{status}");
        }
        for status in [401, 408, 409, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(Class::of_status(status), Class::Transient, "{status}");
        }
        for status in [
            100, 101, 199, 300, 301, 302, 304, 307, 308, 400, 402, 403, 404, 410, 422, 499, 600,
        ] {
            assert_eq!(Class::of_status(status), Class::Permanent, "{status}");
        }
    }

    /// Every public reason is one phrase of contract 1a's vocabulary, and no detail of the
    /// failure (an address, a DNS or TLS message) reaches it.
    #[test]
    fn public_reasons_are_the_contracts_vocabulary_without_detail() {
        let secret = "https://gw.internal:8443 dns error: tls handshake";
        let exhausted = judged(
            &Err(UpstreamError::Connect(secret.into())),
            &Err(UpstreamError::Timeout),
            15,
            15,
        )
        .unwrap_err();
        let cases = [
            (
                RefundFailure::InvalidCommand(secret.into()),
                "invalid command",
            ),
            (
                RefundFailure::VoidRejected(UpstreamError::Status(409)),
                "receipts service answered 409",
            ),
            (
                RefundFailure::RefundRejected(UpstreamError::Status(422)),
                "payments service answered 422",
            ),
            (
                judged(&Ok(200), &Err(UpstreamError::Timeout), 1, 15).unwrap_err(),
                "payments service timed out",
            ),
            (
                judged(
                    &Err(UpstreamError::Transport(secret.into())),
                    &Ok(200),
                    1,
                    15,
                )
                .unwrap_err(),
                "receipts service unreachable",
            ),
            (exhausted, "retries exhausted: receipts service unreachable"),
            (
                RefundFailure::ForeignKeyConflict {
                    recorded: secret.into(),
                },
                "called earlier under another key",
            ),
            (
                RefundFailure::EventUnpublished {
                    receive_count: 15,
                    detail: secret.into(),
                },
                "event not published",
            ),
        ];
        for (failure, public) in cases {
            assert_eq!(failure.public_reason(), public, "{failure}");
            assert!(!failure.to_string().is_empty());
        }
    }

    #[test]
    fn transport_failures_are_transient() {
        for error in [
            UpstreamError::Timeout,
            UpstreamError::Connect("refused".into()),
            UpstreamError::Transport("reset".into()),
        ] {
            assert_eq!(error.class(), Class::Transient);
            assert_eq!(error.status(), None);
        }
    }

    const DONE: UpstreamResult = Ok(200);
    const UNAVAILABLE: UpstreamResult = Err(UpstreamError::Status(503));
    const REFUSED: UpstreamResult = Err(UpstreamError::Status(422));
    const UNAUTHORIZED_ANSWER: UpstreamResult = Err(UpstreamError::Status(UNAUTHORIZED));

    #[test]
    fn a_401_is_retried_and_never_rejected_but_a_403_is_rejected() {
        assert!(UpstreamError::Status(401).is_unauthorized());
        assert!(!UpstreamError::Status(403).is_unauthorized());
        assert!(!UpstreamError::Timeout.is_unauthorized());
        let retried = judged(&UNAUTHORIZED_ANSWER, &UNAUTHORIZED_ANSWER, 1, 15).unwrap_err();
        assert_eq!(
            (retried.class(), retried.error_code()),
            (Class::Transient, None)
        );
        let exhausted = judged(&DONE, &UNAUTHORIZED_ANSWER, 15, 15).unwrap_err();
        assert_eq!(exhausted.error_code(), Some(ErrorCode::RetriesExhausted));
        let forbidden = judged(&Err(UpstreamError::Status(403)), &DONE, 1, 15).unwrap_err();
        assert_eq!(forbidden.error_code(), Some(ErrorCode::VoidRejected));
    }

    #[test]
    fn each_failure_maps_to_its_class_and_code() {
        assert_eq!(judged(&DONE, &DONE, 1, 15), Ok(()));

        let transient = judged(&DONE, &UNAVAILABLE, 14, 15).unwrap_err();
        assert_eq!(
            (transient.class(), transient.error_code()),
            (Class::Transient, None)
        );

        let exhausted = judged(&UNAVAILABLE, &DONE, 15, 15).unwrap_err();
        assert_eq!(
            (exhausted.class(), exhausted.error_code()),
            (Class::Transient, Some(ErrorCode::RetriesExhausted))
        );

        let void = judged(&REFUSED, &UNAVAILABLE, 1, 15).unwrap_err();
        assert_eq!(
            (void.class(), void.error_code()),
            (Class::Permanent, Some(ErrorCode::VoidRejected))
        );
        let refund = judged(&UNAVAILABLE, &REFUSED, 15, 15).unwrap_err();
        assert_eq!(refund.error_code(), Some(ErrorCode::RefundRejected));
        assert_eq!(
            judged(&REFUSED, &REFUSED, 1, 15).unwrap_err().error_code(),
            Some(ErrorCode::VoidRejected)
        );

        let conflict = RefundFailure::ForeignKeyConflict {
            recorded: "2c2b4e45-5d0f-5c3e-9a1e-0b8c6f3d2a19".into(),
        };
        assert_eq!(
            (conflict.class(), conflict.error_code()),
            (Class::Permanent, Some(ErrorCode::ForeignKeyConflict))
        );

        let poison = RefundFailure::InvalidCommand("not json".into());
        assert_eq!(
            (poison.class(), poison.error_code()),
            (Class::Poison, Some(ErrorCode::InvalidCommand))
        );
    }

    #[test]
    fn codes_are_the_contracts_spelling() {
        let codes = [
            ErrorCode::InvalidCommand,
            ErrorCode::VoidRejected,
            ErrorCode::RefundRejected,
            ErrorCode::RetriesExhausted,
            ErrorCode::ForeignKeyConflict,
        ]
        .map(ErrorCode::as_str);
        assert_eq!(
            codes,
            [
                "invalid_command",
                "void_rejected",
                "refund_rejected",
                "retries_exhausted",
                "foreign_key_conflict",
            ]
        );
    }
}
