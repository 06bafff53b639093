//! The gateway port: the two upstream calls that move the money back.
//!
//! [`Gateway`] is what the worker sees, so every worker path is tested with a scripted
//! twin; [`HttpGateway`] speaks to the receipts and payments services exactly as the Go
//! Event-Driven project's generated clients do (contract section 3), with the bearer
//! [`GatewayToken`] read from Secrets Manager through a [`TokenSource`] and held by a
//! [`TokenCache`], which re-reads it after its TTL and after a 401.

use std::future::Future;

use crate::{
    command::TicketId, correlation::CorrelationId, idempotency::IdempotencyKey, trace::TraceHeader,
    verdict::UpstreamResult,
};

mod cache;
mod http;
mod token;

pub use cache::{FORCED_READ_INTERVAL, Lease, READ_TIMEOUT, TokenCache};
pub use http::{GatewayBuildError, HttpGateway};
pub use token::{
    GatewayToken, InMemoryTokenSource, InvalidGatewayToken, SecretsManagerToken, TokenSource,
};

/// The reason both services record; fixed by the contract.
pub const REFUND_REASON: &str = "customer requested refund";

/// Path of the void call, below the base address's own path.
pub const VOID_RECEIPT_PATH: &str = "receipts-api/void-receipt";
/// Path of the refund call, below the base address's own path.
pub const REFUND_PAYMENT_PATH: &str = "payments-api/refunds";

/// What both calls of one refund carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundCall {
    pub ticket_id: TicketId,
    /// K: sent as `idempotent_id` to receipts and `deduplication_id` to payments, so a
    /// repeated call is a no-op upstream.
    pub idempotency_key: IdempotencyKey,
    pub correlation_id: CorrelationId,
    /// The record's trace, sent as `X-Amzn-Trace-Id` and `traceparent` (contract 3).
    pub trace: Option<TraceHeader>,
}

/// The receipts and payments services.
pub trait Gateway: Send + Sync {
    /// `PUT receipts-api/void-receipt`.
    fn void_receipt(&self, call: &RefundCall) -> impl Future<Output = UpstreamResult> + Send;

    /// `PUT payments-api/refunds`.
    fn refund_payment(&self, call: &RefundCall) -> impl Future<Output = UpstreamResult> + Send;
}
