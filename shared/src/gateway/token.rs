//! The upstream bearer token: held so that it cannot be printed, and the [`TokenSource`]
//! it is read from (the secret `GATEWAY_TOKEN_SECRET_ARN` names, or its in-memory twin).

use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::future::BoxFuture;
use reqwest::header::HeaderValue;

use crate::{
    secret::{SecretError, secret_string},
    twin::lock,
};

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
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| InvalidGatewayToken)?;
        value.set_sensitive(true);
        Ok(Self(value))
    }
}

impl std::fmt::Debug for GatewayToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayToken(<redacted>)")
    }
}

impl GatewayToken {
    /// The ready `Authorization` value, marked sensitive.
    pub(super) fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// Reads the current value of the secret `arn` as a bearer token.
    pub async fn read(
        client: &aws_sdk_secretsmanager::Client,
        arn: &str,
    ) -> Result<Self, SecretError> {
        let value = secret_string(client, arn).await?;
        Self::new(&value).map_err(|e| SecretError::Unusable(e.to_string()))
    }
}

/// Where the token is (re-)read from: the secret in production ([`SecretsManagerToken`]),
/// memory in tests ([`InMemoryTokenSource`]). [`TokenCache`](super::TokenCache) decides
/// when to read.
pub trait TokenSource: Send + Sync {
    /// The token the source holds now. The error never carries the value.
    fn read(&self) -> BoxFuture<'_, Result<GatewayToken, SecretError>>;
}

/// The secret `GATEWAY_TOKEN_SECRET_ARN` names.
#[derive(Debug, Clone)]
pub struct SecretsManagerToken {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

impl SecretsManagerToken {
    pub fn new(client: aws_sdk_secretsmanager::Client, arn: &str) -> Self {
        Self {
            client,
            arn: arn.to_owned(),
        }
    }
}

impl TokenSource for SecretsManagerToken {
    fn read(&self) -> BoxFuture<'_, Result<GatewayToken, SecretError>> {
        Box::pin(GatewayToken::read(&self.client, &self.arn))
    }
}

/// The in-memory twin of the secret: its value can be rotated or made unreadable, a read
/// can be made slow, and every read is counted.
#[derive(Default)]
pub struct InMemoryTokenSource {
    value: Mutex<Option<Result<String, SecretError>>>,
    delay: Mutex<Duration>,
    reads: AtomicUsize,
}

impl InMemoryTokenSource {
    pub fn new(token: &str) -> Self {
        let source = Self::default();
        source.rotate(token);
        source
    }

    /// A rotation: every later read gets `token`.
    pub fn rotate(&self, token: &str) {
        *lock(&self.value) = Some(Ok(token.to_owned()));
    }

    /// Every later read fails with `error` (Secrets Manager unreachable, access denied).
    pub fn fail_with(&self, error: SecretError) {
        *lock(&self.value) = Some(Err(error));
    }

    /// Every later read takes `delay` before it answers.
    pub fn delay_reads(&self, delay: Duration) {
        *lock(&self.delay) = delay;
    }

    /// How many reads were started.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for InMemoryTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryTokenSource")
            .field("reads", &self.reads())
            .finish_non_exhaustive()
    }
}

impl TokenSource for InMemoryTokenSource {
    fn read(&self) -> BoxFuture<'_, Result<GatewayToken, SecretError>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let delay = *lock(&self.delay);
        let value = lock(&self.value).clone();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let value = value.unwrap_or_else(|| Err(SecretError::Read("no value".into())))?;
            GatewayToken::new(&value).map_err(|e| SecretError::Unusable(e.to_string()))
        })
    }
}

impl<T: TokenSource + ?Sized> TokenSource for std::sync::Arc<T> {
    fn read(&self) -> BoxFuture<'_, Result<GatewayToken, SecretError>> {
        (**self).read()
    }
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;
    use crate::gateway::{HttpGateway, TokenCache};

    const TOKEN: &str = "s3cr3t-t0ken.value";

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let token = GatewayToken::new(&format!("  {TOKEN}\n")).unwrap();
        assert_eq!(format!("{token:?}"), "GatewayToken(<redacted>)");
        assert_eq!(
            token.header_value().to_str().unwrap(),
            format!("Bearer {TOKEN}")
        );
        assert!(token.header_value().is_sensitive());
        let base = Url::parse("https://gw.example.com").unwrap();
        let source = InMemoryTokenSource::new(TOKEN);
        let source_debug = format!("{source:?}");
        let tokens = TokenCache::new(source, token, Duration::from_secs(300));
        let gateway = HttpGateway::new(&base, Duration::from_secs(1))
            .unwrap()
            .with_tokens(Some(tokens));
        let debug = format!("{gateway:?} {gateway:#?} {source_debug}");
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
}
