//! Secrets from Secrets Manager: the upstream bearer token, read once at start-up, and
//! the listing cursor's signing key, read at the first listing.
//!
//! The worker reads `GATEWAY_TOKEN_SECRET_ARN` before it takes its first event: a secret it
//! cannot read is an init failure with one line naming the variable, not a stream of
//! failed refunds. The value goes straight into a [`GatewayToken`], which cannot be
//! printed, and no error here ever carries it.

use std::time::Duration;

use aws_config::{ConfigLoader, timeout::TimeoutConfig};
use aws_sdk_secretsmanager::error::DisplayErrorContext;

#[cfg(feature = "gateway")]
use crate::gateway::{GatewayToken, InvalidGatewayToken};
use crate::{
    config::{ConfigError, GATEWAY_TOKEN_SECRET_ARN},
    status::{CursorKey, WeakCursorKey},
};

/// The read gives up after this long, retries included, well inside Lambda's 10 s init.
pub const SECRET_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the token could not be had. Says why and never what the secret holds.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager refused or could not be reached (not found, access denied, KMS).
    #[error("cannot read the secret: {0}")]
    Read(String),
    /// The secret has only a binary value; the token must be a string.
    #[error("the secret has no string value")]
    NotAString,
    #[cfg(feature = "gateway")]
    #[error("the secret's value is unusable: {0}")]
    Invalid(#[from] InvalidGatewayToken),
    #[error("the secret's value is unusable: {0}")]
    WeakCursorKey(#[from] WeakCursorKey),
}

/// Only the gateway token is read at start-up, so only it becomes a [`ConfigError`].
impl From<SecretError> for ConfigError {
    fn from(error: SecretError) -> Self {
        ConfigError::Unusable {
            name: GATEWAY_TOKEN_SECRET_ARN,
            reason: error.to_string(),
        }
    }
}

/// A Secrets Manager client from `loader` (normally [`crate::http::aws_config_loader`], which
/// honours `AWS_ENDPOINT_URL`), with short timeouts so a sick endpoint fails the init
/// quickly instead of hanging it.
pub async fn secrets_client(loader: ConfigLoader) -> aws_sdk_secretsmanager::Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(SECRET_READ_TIMEOUT)
        .build();
    let config = loader
        .http_client(crate::http::aws_http_client())
        .timeout_config(timeouts)
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
}

/// Reads the current value of the secret `arn` as a bearer token.
#[cfg(feature = "gateway")]
pub async fn read_gateway_token(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<GatewayToken, SecretError> {
    Ok(GatewayToken::new(&secret_string(client, arn).await?)?)
}

/// Reads the listing cursor's signing key from the secret `arn` (the template generates
/// it). `refund-api` reads it at its first listing, not at start-up: the 202 path, which
/// every cold start serves first, never waits for it.
pub async fn read_cursor_key(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<CursorKey, SecretError> {
    Ok(CursorKey::from_bytes(
        secret_string(client, arn).await?.as_bytes(),
    )?)
}

/// The current string value of the secret `arn`.
async fn secret_string(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<String, SecretError> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| SecretError::Read(DisplayErrorContext(&e).to_string()))?;
    output.secret_string.ok_or(SecretError::NotAString)
}

/// The start-up step of `refund-worker`: no ARN, no token (and no client is built); an
/// ARN that cannot be read is a [`ConfigError`] naming `GATEWAY_TOKEN_SECRET_ARN`.
#[cfg(feature = "gateway")]
pub async fn load_gateway_token(
    arn: Option<&str>,
    loader: ConfigLoader,
) -> Result<Option<GatewayToken>, ConfigError> {
    let Some(arn) = arn else {
        return Ok(None);
    };
    let client = secrets_client(loader).await;
    Ok(Some(read_gateway_token(&client, arn).await?))
}
