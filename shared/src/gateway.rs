//! The gateway port: the two upstream calls that move the money back.
//!
//! [`Gateway`] is what the worker sees, so every worker path is tested with a scripted
//! twin; [`HttpGateway`] (feature `gateway`) speaks to the receipts and payments services
//! exactly as the Go Event-Driven project's generated clients do (contract section 3).

use std::future::Future;

use crate::{command::TicketId, outcome::UpstreamResult};

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
    pub idempotency_key: String,
    pub correlation_id: String,
}

/// The receipts and payments services.
pub trait Gateway: Send + Sync {
    /// `PUT receipts-api/void-receipt`.
    fn void_receipt(&self, call: &RefundCall) -> impl Future<Output = UpstreamResult> + Send;

    /// `PUT payments-api/refunds`.
    fn refund_payment(&self, call: &RefundCall) -> impl Future<Output = UpstreamResult> + Send;
}

#[cfg(feature = "gateway")]
pub use http::{GatewayBuildError, HttpGateway};

#[cfg(feature = "gateway")]
mod http {
    use std::time::Duration;

    use reqwest::{Client, redirect};
    use serde_json::json;
    use url::Url;

    use super::{Gateway, REFUND_PAYMENT_PATH, REFUND_REASON, RefundCall, VOID_RECEIPT_PATH};
    use crate::outcome::{UpstreamError, UpstreamResult};

    /// The HTTP client could not be built (no TLS roots, say): a start-up failure.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot build the gateway HTTP client: {0}")]
    pub struct GatewayBuildError(String);

    /// Both services behind one base address, through one pooled client built at start-up
    /// so warm invocations reuse connections.
    #[derive(Debug, Clone)]
    pub struct HttpGateway {
        client: Client,
        void_url: Url,
        refund_url: Url,
    }

    impl HttpGateway {
        /// `timeout` bounds each call from connect to the last byte, so one slow service
        /// cannot eat the invocation's deadline. Redirects are not followed: a 3xx is a
        /// misconfigured address, and following it would send K somewhere unexpected.
        pub fn new(base: &Url, timeout: Duration) -> Result<Self, GatewayBuildError> {
            let client = Client::builder()
                .redirect(redirect::Policy::none())
                .timeout(timeout)
                .connect_timeout(timeout)
                .build()
                .map_err(|e| GatewayBuildError(error_chain(&e)))?;
            Ok(Self {
                client,
                void_url: below(base, VOID_RECEIPT_PATH),
                refund_url: below(base, REFUND_PAYMENT_PATH),
            })
        }

        pub fn void_url(&self) -> &Url {
            &self.void_url
        }

        pub fn refund_url(&self) -> &Url {
            &self.refund_url
        }

        async fn put(
            &self,
            url: &Url,
            call: &RefundCall,
            body: serde_json::Value,
        ) -> UpstreamResult {
            let response = self
                .client
                .put(url.clone())
                .header("Correlation-ID", &call.correlation_id)
                .json(&body)
                .send()
                .await
                .map_err(upstream_error)?;
            let status = response.status().as_u16();
            if response.status().is_success() {
                Ok(status)
            } else {
                Err(UpstreamError::Status(status))
            }
        }
    }

    impl Gateway for HttpGateway {
        async fn void_receipt(&self, call: &RefundCall) -> UpstreamResult {
            let body = json!({
                "ticket_id": call.ticket_id.to_string(),
                "reason": REFUND_REASON,
                "idempotent_id": call.idempotency_key,
            });
            self.put(&self.void_url, call, body).await
        }

        async fn refund_payment(&self, call: &RefundCall) -> UpstreamResult {
            let body = json!({
                "payment_reference": call.ticket_id.to_string(),
                "reason": REFUND_REASON,
                "deduplication_id": call.idempotency_key,
            });
            self.put(&self.refund_url, call, body).await
        }
    }

    /// `path` below the base address, keeping the base's path prefix (`Url::join` would
    /// drop its last segment when it has no trailing slash).
    fn below(base: &Url, path: &str) -> Url {
        let mut url = base.clone();
        let prefix = base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}/{path}"));
        url
    }

    fn upstream_error(error: reqwest::Error) -> UpstreamError {
        if error.is_timeout() {
            UpstreamError::Timeout
        } else if error.is_connect() {
            UpstreamError::Connect(error_chain(&error))
        } else {
            UpstreamError::Transport(error_chain(&error))
        }
    }

    /// reqwest's own message is only the outermost layer ("error sending request"); the
    /// cause that an operator needs is further down.
    fn error_chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_base_path_prefix_is_kept() {
            for (base, void) in [
                (
                    "https://gw.example.com",
                    "https://gw.example.com/receipts-api/void-receipt",
                ),
                (
                    "https://gw.example.com/",
                    "https://gw.example.com/receipts-api/void-receipt",
                ),
                (
                    "http://127.0.0.1:8888/stage/v1",
                    "http://127.0.0.1:8888/stage/v1/receipts-api/void-receipt",
                ),
                (
                    "http://127.0.0.1:8888/stage/v1/",
                    "http://127.0.0.1:8888/stage/v1/receipts-api/void-receipt",
                ),
            ] {
                let base = Url::parse(base).unwrap();
                let gateway = HttpGateway::new(&base, Duration::from_secs(1)).unwrap();
                assert_eq!(gateway.void_url().as_str(), void);
                assert_eq!(
                    gateway.refund_url().as_str(),
                    void.replace("receipts-api/void-receipt", "payments-api/refunds")
                );
            }
        }
    }
}
