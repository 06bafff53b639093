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
pub use http::{GatewayBuildError, GatewayToken, HttpGateway, InvalidGatewayToken};

#[cfg(feature = "gateway")]
mod http {
    use std::time::Duration;

    use reqwest::{
        Client,
        header::{AUTHORIZATION, HeaderValue},
    };
    use serde_json::json;
    use url::Url;

    use super::{Gateway, REFUND_PAYMENT_PATH, REFUND_REASON, RefundCall, VOID_RECEIPT_PATH};
    use crate::outcome::{UpstreamError, UpstreamResult};

    /// The HTTP client could not be built (no TLS roots, say): a start-up failure.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot build the gateway HTTP client: {0}")]
    pub struct GatewayBuildError(String);

    /// The longest error text kept from the HTTP stack: enough for the cause an operator
    /// needs, and a bound on what a misbehaving peer can make the worker log.
    pub const MAX_ERROR_TEXT_BYTES: usize = 512;

    /// The upstream bearer token (`GATEWAY_TOKEN_SECRET_ARN`).
    ///
    /// Holds only the ready `Authorization` value, marked sensitive so the HTTP stack's own
    /// `Debug` hides it too; this type has no `Display`, no `Serialize` and a redacting
    /// `Debug`, so the token cannot reach a log line or an error message by accident.
    #[derive(Clone)]
    pub struct GatewayToken(HeaderValue);

    /// A secret value that cannot be sent as a bearer token. Says why, never what.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    #[error(
        "the token is empty or not visible ASCII (0x21..=0x7E), so it cannot be sent as a bearer token"
    )]
    pub struct InvalidGatewayToken;

    impl GatewayToken {
        /// Surrounding whitespace is dropped (a secret pasted with a trailing newline is
        /// common); what remains must be visible ASCII, or every call would fail later.
        pub fn new(token: &str) -> Result<Self, InvalidGatewayToken> {
            let token = token.trim();
            if token.is_empty() || !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return Err(InvalidGatewayToken);
            }
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| InvalidGatewayToken)?;
            value.set_sensitive(true);
            Ok(Self(value))
        }
    }

    impl std::fmt::Debug for GatewayToken {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("GatewayToken(<redacted>)")
        }
    }

    /// Both services behind one base address, through one pooled client built at start-up
    /// so warm invocations reuse connections.
    #[derive(Debug, Clone)]
    pub struct HttpGateway {
        client: Client,
        void_url: Url,
        refund_url: Url,
        /// Read once at start-up; `None` sends no `Authorization` header (the Go
        /// Event-Driven gateway needs none).
        token: Option<GatewayToken>,
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
                token: None,
            })
        }

        /// Sends `token` as `Authorization: Bearer` on both calls; `None` sends no header.
        pub fn with_token(mut self, token: Option<GatewayToken>) -> Self {
            self.token = token;
            self
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
            let mut request = self
                .client
                .put(url.clone())
                .header("Correlation-ID", &call.correlation_id);
            if let Some(GatewayToken(value)) = &self.token {
                request = request.header(AUTHORIZATION, value.clone());
            }
            // The answer's body is never read: only the status decides, and an upstream's
            // error text (which may echo the request) never reaches a log line.
            let response = request.json(&body).send().await.map_err(upstream_error)?;
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
    /// cause that an operator needs is further down. Cut to [`MAX_ERROR_TEXT_BYTES`]: the
    /// text ends up in log lines and dead-letter copies.
    fn error_chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        crate::text::bounded(text, MAX_ERROR_TEXT_BYTES)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const TOKEN: &str = "s3cr3t-t0ken.value";

        #[test]
        fn the_token_never_shows_in_debug_output() {
            let token = GatewayToken::new(&format!("  {TOKEN}\n")).unwrap();
            assert_eq!(format!("{token:?}"), "GatewayToken(<redacted>)");
            assert_eq!(token.0.to_str().unwrap(), format!("Bearer {TOKEN}"));
            assert!(token.0.is_sensitive());
            let base = Url::parse("https://gw.example.com").unwrap();
            let gateway = HttpGateway::new(&base, Duration::from_secs(1))
                .unwrap()
                .with_token(Some(token));
            let debug = format!("{gateway:?} {gateway:#?}");
            assert!(!debug.contains(TOKEN), "{debug}");
        }

        #[test]
        fn an_unusable_token_is_refused_without_repeating_it() {
            for bad in ["", "  \n", "has space", "tab\there", "caf\u{e9}", "nul\0"] {
                let error = GatewayToken::new(bad).unwrap_err();
                let text = format!("{error} {error:?}");
                assert!(
                    bad.trim().is_empty() || !text.contains(bad.trim()),
                    "{text}"
                );
            }
        }

        #[test]
        fn error_text_is_bounded_on_a_char_boundary() {
            assert_eq!(crate::text::bounded("short".into(), 10), "short");
            let cut = crate::text::bounded("é".repeat(400), MAX_ERROR_TEXT_BYTES);
            assert_eq!(cut.len(), MAX_ERROR_TEXT_BYTES);
            assert!(cut.chars().all(|c| c == 'é'));
        }

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
