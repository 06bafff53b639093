//! The upstream bearer token: read from the secret `GATEWAY_TOKEN_SECRET_ARN` names, held
//! so that it cannot be printed.

use aws_config::ConfigLoader;
use reqwest::header::HeaderValue;

use crate::{
    config::{ConfigError, GATEWAY_TOKEN_SECRET_ARN},
    secret::{SecretError, secret_string},
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

    /// The start-up step of `refund-worker`: no ARN, no token (and no client is built); an
    /// ARN that cannot be read is a [`ConfigError`] naming `GATEWAY_TOKEN_SECRET_ARN`.
    pub async fn load(
        arn: Option<&str>,
        loader: ConfigLoader,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(arn) = arn else {
            return Ok(None);
        };
        let client = crate::aws::secrets_client(loader).await;
        Self::read(&client, arn)
            .await
            .map(Some)
            .map_err(|error| ConfigError::Unusable {
                name: GATEWAY_TOKEN_SECRET_ARN,
                reason: error.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use url::Url;

    use super::*;
    use crate::gateway::HttpGateway;

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
}
