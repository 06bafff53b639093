//! How a call to an AWS port failed: [`PortFailure`], "try later" or "will not work",
//! sorted once from the SDK's error by [`PortFailure::of`].
//!
//! Each port's error type ([`QueueError`](crate::queue::QueueError),
//! [`StoreError`](crate::store::StoreError), [`PublishError`](crate::announce::PublishError))
//! wraps one and adds only what is its own, so the question "is this answer transient?"
//! has one answer for every service.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::{display::DisplayErrorContext, metadata::ProvideErrorMetadata};

use crate::text::{MAX_ERROR_DETAIL_BYTES, bounded};

/// A port's call that failed. The text follows the port's name in its error's message
/// (`queue unavailable: …`), so every port words the two cases alike.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortFailure {
    /// Timed out, unreachable, throttled or a server error: trying later may work.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The service refused the request (missing resource, no permission, bad request).
    #[error("refused the request: {0}")]
    Rejected(String),
}

/// Error codes that mean "the service is busy or failing", for every service this project
/// calls: SQS's throttling and `InternalError`, DynamoDB's throughput and conflict codes.
const TRANSIENT_CODES: [&str; 7] = [
    "Throttl",
    "ThroughputExceeded",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "TransactionConflict",
];

/// Whether a service error code says that trying later may work.
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES
        .iter()
        .any(|transient| code.contains(transient))
}

impl PortFailure {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The bounded error text, whatever the class.
    pub fn into_detail(self) -> String {
        match self {
            Self::Unavailable(detail) | Self::Rejected(detail) => detail,
        }
    }

    /// Sorts an SDK failure: a request that could not be built is refused, a service answer
    /// is judged by its code, and everything else (timeouts, dispatch and response
    /// failures) is transient. The detail is the SDK's whole error context, bounded by
    /// [`MAX_ERROR_DETAIL_BYTES`].
    pub fn of<E, R>(error: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let transient = match error {
            SdkError::ConstructionFailure(_) => false,
            SdkError::ServiceError(service) => service.err().code().is_some_and(is_transient_code),
            _ => true,
        };
        let detail = bounded(
            DisplayErrorContext(error).to_string(),
            MAX_ERROR_DETAIL_BYTES,
        );
        if transient {
            Self::Unavailable(detail)
        } else {
            Self::Rejected(detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{announce::PublishError, queue::QueueError, store::StoreError};

    /// The messages logs and tests read: the port's name, then the failure.
    #[test]
    fn each_ports_message_names_the_port() {
        let [unavailable, rejected] = [
            PortFailure::Unavailable("d".into()),
            PortFailure::Rejected("d".into()),
        ];
        let messages = [
            QueueError(unavailable.clone()).to_string(),
            QueueError(rejected.clone()).to_string(),
            StoreError::Port(unavailable.clone()).to_string(),
            StoreError::Port(rejected.clone()).to_string(),
            PublishError::Port(unavailable).to_string(),
            PublishError::Port(rejected).to_string(),
        ];
        assert_eq!(
            messages,
            [
                "queue unavailable: d",
                "queue refused the request: d",
                "status store unavailable: d",
                "status store refused the request: d",
                "event bus unavailable: d",
                "event bus refused the request: d",
            ]
        );
    }

    #[test]
    fn busy_and_failing_codes_are_transient_refusals_are_not() {
        for code in [
            "ThrottlingException",
            "RequestThrottled",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "InternalServerError",
            "InternalError",
            "ServiceUnavailable",
            "TransactionConflictException",
        ] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in [
            "AccessDenied",
            "AWS.SimpleQueueService.NonExistentQueue",
            "ResourceNotFoundException",
            "ValidationException",
            "ConditionalCheckFailedException",
            "",
        ] {
            assert!(!is_transient_code(code), "{code}");
        }
    }
}
