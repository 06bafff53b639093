//! [`HttpGateway`]: the two calls of contract section 3 over the project's HTTP stack.

use std::{sync::Arc, time::Duration};

use reqwest::{Client, header::AUTHORIZATION};
use serde_json::json;
use url::Url;

use super::{
    Gateway, REFUND_PAYMENT_PATH, REFUND_REASON, RefundCall, VOID_RECEIPT_PATH,
    cache::{Lease, TokenCache},
};
use crate::{
    text::error_chain,
    trace::{TRACEPARENT, X_AMZN_TRACE_ID},
    verdict::{UpstreamError, UpstreamResult},
};

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
    /// The bearer token, shared by every clone (one per execution environment); `None`
    /// sends no `Authorization` header (the Go Event-Driven gateway needs none).
    tokens: Option<Arc<TokenCache>>,
}

impl HttpGateway {
    /// `timeout` bounds each call from connect to the last byte, so one slow service
    /// cannot eat the invocation's deadline. Redirects are not followed: a 3xx is a
    /// misconfigured address, and following it would send K somewhere unexpected.
    pub fn new(base: &Url, timeout: Duration) -> Result<Self, GatewayBuildError> {
        let client = crate::http::client_builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| GatewayBuildError(error_chain(&e)))?;
        Ok(Self {
            client,
            void_url: below(base, VOID_RECEIPT_PATH),
            refund_url: below(base, REFUND_PAYMENT_PATH),
            tokens: None,
        })
    }

    /// Sends the cache's token as `Authorization: Bearer` on both calls, re-read as
    /// [`TokenCache`] says; `None` sends no header.
    pub fn with_tokens(mut self, tokens: Option<TokenCache>) -> Self {
        self.tokens = tokens.map(Arc::new);
        self
    }

    pub fn void_url(&self) -> &Url {
        &self.void_url
    }

    pub fn refund_url(&self) -> &Url {
        &self.refund_url
    }

    /// One call; after a 401 the token is re-read (or a newer one taken) and the call
    /// repeated once (contract section 3). What that repeat answers is the call's answer:
    /// a second 401 is classified (transient) by [`crate::verdict`] like any status.
    async fn put(&self, url: &Url, call: &RefundCall, body: serde_json::Value) -> UpstreamResult {
        let Some(tokens) = &self.tokens else {
            return self.send(url, call, &body, None).await;
        };
        let lease = tokens.token().await;
        let answer = self.send(url, call, &body, Some(&lease)).await;
        if !answer.as_ref().is_err_and(UpstreamError::is_unauthorized) {
            return answer;
        }
        let lease = tokens.after_unauthorized(&lease).await;
        let answer = self.send(url, call, &body, Some(&lease)).await;
        if answer.as_ref().is_err_and(UpstreamError::is_unauthorized) {
            tracing::warn!(
                path = url.path(),
                generation = lease.generation(),
                "the upstream refused the gateway token again after a re-read"
            );
        }
        answer
    }

    async fn send(
        &self,
        url: &Url,
        call: &RefundCall,
        body: &serde_json::Value,
        lease: Option<&Lease>,
    ) -> UpstreamResult {
        let mut request = self
            .client
            .put(url.clone())
            .header("Correlation-ID", call.correlation_id.as_str());
        if let Some(lease) = lease {
            request = request.header(AUTHORIZATION, lease.token().header_value().clone());
        }
        if let Some(trace) = &call.trace {
            request = request.header(X_AMZN_TRACE_ID, trace.as_str());
            if let Some(traceparent) = trace.traceparent() {
                request = request.header(TRACEPARENT, traceparent);
            }
        }
        // The answer's body is never read: only the status decides, and an upstream's
        // error text (which may echo the request) never reaches a log line.
        let response = request.json(body).send().await.map_err(upstream_error)?;
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
            "idempotent_id": call.idempotency_key.to_string(),
        });
        self.put(&self.void_url, call, body).await
    }

    async fn refund_payment(&self, call: &RefundCall) -> UpstreamResult {
        let body = json!({
            "payment_reference": call.ticket_id.to_string(),
            "reason": REFUND_REASON,
            "deduplication_id": call.idempotency_key.to_string(),
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
