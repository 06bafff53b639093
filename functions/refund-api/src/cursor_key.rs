//! The listing cursor's signing key, as the listing asks for it: [`CursorKeys::codec`].
//!
//! Where the key comes from is decided once at start-up ([`CursorKeys::from_source`]), but
//! a key kept in Secrets Manager is read only when the first listing needs it: every cold
//! start serves the 202 path first, and that path must not wait for a second AWS service.
//! A read that fails is not remembered, so the next listing tries again; a read that
//! succeeds is kept for the life of the process (a rotated key reaches new execution
//! environments, and an old cursor is only refused, which makes a client start over).

use aws_config::ConfigLoader;
use refund_shared::{
    config::{CursorKeySource, REFUND_CURSOR_KEY_SECRET_ARN},
    store::{CursorCodec, CursorKey},
};
use tokio::sync::OnceCell;

use crate::error::ApiError;

/// Why no key could be had. The text says why (never what the secret holds) and is
/// logged; the caller only ever sees 503 `status_unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor key unavailable: {0}")]
pub struct KeyUnavailable(pub String);

/// A cursor key that cannot be read is worth a retry: the next listing reads it again.
impl From<KeyUnavailable> for ApiError {
    fn from(error: KeyUnavailable) -> Self {
        Self::RecordsUnavailable(error.to_string())
    }
}

/// Hands out the listing's [`CursorCodec`]; a key in Secrets Manager is read at the first
/// listing, and kept once a read succeeds.
pub struct CursorKeys(Source);

enum Source {
    /// The key is known: `REFUND_CURSOR_KEY`, or random for this process.
    Known(CursorCodec),
    /// `REFUND_CURSOR_KEY_SECRET_ARN`.
    Secret(SecretKey),
}

/// A key in Secrets Manager, and its codec once a read has succeeded.
struct SecretKey {
    arn: String,
    /// Each read builds its client from this, so nothing AWS is even configured before
    /// the first listing; a secret that reads at all is read once, so few are ever built.
    aws: Box<dyn Fn() -> ConfigLoader + Send + Sync>,
    codec: OnceCell<CursorCodec>,
}

impl CursorKeys {
    /// A key known up front.
    pub fn fixed(key: CursorKey) -> Self {
        Self(Source::Known(CursorCodec::new(key)))
    }

    /// The start-up step of `refund-api` when the refund table is set. Builds no AWS
    /// client and reads nothing: a secret is read by [`Self::codec`] at the first listing,
    /// with a Secrets Manager client from `aws` (normally
    /// [`refund_shared::http::aws_config_loader`]; tests point it at moto). An ephemeral key is
    /// announced with one warning line. A `REFUND_CURSOR_KEY` comes as a key `ApiConfig`
    /// has checked, so nothing here can fail.
    pub fn from_source<F>(source: CursorKeySource, aws: F) -> Self
    where
        F: Fn() -> ConfigLoader + Send + Sync + 'static,
    {
        let key = match source {
            CursorKeySource::Key(key) => key,
            CursorKeySource::Secret(arn) => {
                return Self(Source::Secret(SecretKey {
                    arn,
                    aws: Box::new(aws),
                    codec: OnceCell::new(),
                }));
            }
            CursorKeySource::Ephemeral => {
                tracing::warn!(
                    "neither REFUND_CURSOR_KEY_SECRET_ARN nor REFUND_CURSOR_KEY is set: listing \
                     cursors are signed with a random key and only work within this process"
                );
                CursorKey::random()
            }
        };
        Self::fixed(key)
    }

    /// The codec, reading the key first if this is the first listing. Concurrent callers
    /// share one read; a failed read is not kept, so the next call reads again.
    pub async fn codec(&self) -> Result<&CursorCodec, KeyUnavailable> {
        match &self.0 {
            Source::Known(codec) => Ok(codec),
            Source::Secret(secret) => secret.codec.get_or_try_init(|| secret.read()).await,
        }
    }
}

impl SecretKey {
    async fn read(&self) -> Result<CursorCodec, KeyUnavailable> {
        let client = refund_shared::aws::secrets_client((self.aws)()).await;
        CursorKey::read(&client, &self.arn)
            .await
            .map(CursorCodec::new)
            .map_err(|error| KeyUnavailable(format!("{REFUND_CURSOR_KEY_SECRET_ARN}: {error}")))
    }
}

/// Never prints a key.
impl std::fmt::Debug for CursorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::Known(_) => f.write_str("CursorKeys::Known"),
            Source::Secret(secret) => f
                .debug_struct("CursorKeys::Secret")
                .field("arn", &secret.arn)
                .field("read", &secret.codec.initialized())
                .finish(),
        }
    }
}
