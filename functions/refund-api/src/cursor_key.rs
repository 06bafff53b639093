//! The listing cursor's signing key, as the handler asks for it: [`CursorKeys::codec`].
//!
//! Where the key comes from is decided once at start-up ([`CursorKeys::from_source`]), but
//! a key kept in Secrets Manager is read only when the first listing needs it: every cold
//! start serves the 202 path first, and that path must not wait for a second AWS service.
//! A read that fails is not remembered, so the next listing tries again; a read that
//! succeeds is kept for the life of the process (a rotated key reaches new execution
//! environments, and an old cursor is only refused, which makes a client start over).
//!
//! The loader is a plain async function, so the handler tests drive the lazy path (once,
//! cached, failures not cached) without Secrets Manager.

use std::sync::Arc;

use aws_config::ConfigLoader;
use futures::{FutureExt, future::BoxFuture};
use refund::{
    config::CursorKeySource,
    secret,
    status::{CursorCodec, CursorKey},
};
use tokio::sync::OnceCell;

/// Why no key could be had. The text says why (never what the secret holds) and is
/// logged; the caller only ever sees 503 `status_unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor key unavailable: {0}")]
pub struct KeyUnavailable(pub String);

/// Reads the key once more; called until a read succeeds.
pub type KeyLoader =
    Arc<dyn Fn() -> BoxFuture<'static, Result<CursorKey, KeyUnavailable>> + Send + Sync>;

/// Hands out the [`CursorCodec`] of the listing, reading its key at most once successfully.
pub struct CursorKeys {
    source: Source,
}

enum Source {
    /// The key is known (`REFUND_CURSOR_KEY`, or generated for this process).
    Ready(CursorCodec),
    /// Read at the first listing, then kept.
    Lazy {
        codec: OnceCell<CursorCodec>,
        load: KeyLoader,
    },
}

impl CursorKeys {
    /// A key known up front.
    pub fn fixed(key: CursorKey) -> Self {
        Self {
            source: Source::Ready(CursorCodec::new(key)),
        }
    }

    /// A key `load` reads when it is first needed.
    pub fn lazy(load: KeyLoader) -> Self {
        Self {
            source: Source::Lazy {
                codec: OnceCell::new(),
                load,
            },
        }
    }

    /// A random key for this process alone: cursors it signs are refused by any other
    /// process (another execution environment, a restarted `cargo lambda watch`).
    pub fn ephemeral() -> Self {
        // Two v4 UUIDs: 32 bytes, 244 of their bits from the OS's random source.
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        match CursorKey::from_bytes(&bytes) {
            Ok(key) => Self::fixed(key),
            // 32 bytes is CursorKey::MIN_LEN: this arm cannot be taken.
            Err(_) => Self::lazy(Arc::new(|| {
                async { Err(KeyUnavailable("ephemeral key refused".into())) }.boxed()
            })),
        }
    }

    /// The start-up step of `refund-api` when the status table is set. Builds no AWS
    /// client and reads nothing: a secret is read by [`Self::codec`] at the first listing,
    /// with a Secrets Manager client from `aws` (normally
    /// [`refund::http::aws_config_loader`]; tests point it at moto). An ephemeral key is
    /// announced with one warning line.
    pub fn from_source<F>(source: CursorKeySource, aws: F) -> Self
    where
        F: Fn() -> ConfigLoader + Send + Sync + 'static,
    {
        match source {
            CursorKeySource::Key(text) => match CursorKey::from_bytes(text.as_bytes()) {
                Ok(key) => Self::fixed(key),
                // `ApiConfig` refuses a short REFUND_CURSOR_KEY at start-up already.
                Err(error) => Self::lazy(Arc::new(move || {
                    let reason = error.to_string();
                    async move { Err(KeyUnavailable(reason)) }.boxed()
                })),
            },
            CursorKeySource::Secret(arn) => Self::lazy(Arc::new(move || {
                let arn = arn.clone();
                let loader = aws();
                async move {
                    let client = secret::secrets_client(loader).await;
                    secret::read_cursor_key(&client, &arn)
                        .await
                        .map_err(|error| KeyUnavailable(error.to_string()))
                }
                .boxed()
            })),
            CursorKeySource::Ephemeral => {
                tracing::warn!(
                    "neither REFUND_CURSOR_KEY_SECRET_ARN nor REFUND_CURSOR_KEY is set: listing \
                     cursors are signed with a random key and only work within this process"
                );
                Self::ephemeral()
            }
        }
    }

    /// The codec, reading the key first if this is the first listing. Concurrent callers
    /// share one read; a failed read is not kept, so the next call reads again.
    pub async fn codec(&self) -> Result<&CursorCodec, KeyUnavailable> {
        match &self.source {
            Source::Ready(codec) => Ok(codec),
            Source::Lazy { codec, load } => {
                codec
                    .get_or_try_init(|| async { load().await.map(CursorCodec::new) })
                    .await
            }
        }
    }
}

/// Never prints a key.
impl std::fmt::Debug for CursorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Ready(_) => f.write_str("CursorKeys::Ready"),
            Source::Lazy { codec, .. } => f
                .debug_struct("CursorKeys::Lazy")
                .field("read", &codec.initialized())
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use refund::status::{ListQuery, RefundStore};

    use super::*;

    /// Sources other than a secret never build an AWS client.
    fn no_aws() -> ConfigLoader {
        unreachable!("only a secret needs Secrets Manager")
    }

    /// A loader that fails its first `failures` reads, then returns `[7; 32]`, counting reads.
    fn counting(failures: usize) -> (Arc<AtomicUsize>, KeyLoader) {
        let reads = Arc::new(AtomicUsize::new(0));
        let counter = reads.clone();
        let load: KeyLoader = Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < failures {
                    Err(KeyUnavailable("AccessDeniedException".into()))
                } else {
                    Ok(CursorKey::from_bytes(&[7; 32]).unwrap())
                }
            }
            .boxed()
        });
        (reads, load)
    }

    #[tokio::test]
    async fn a_lazy_key_is_read_at_first_use_and_then_kept() {
        let (reads, load) = counting(0);
        let keys = CursorKeys::lazy(load);
        assert_eq!(reads.load(Ordering::SeqCst), 0, "nothing is read up front");
        keys.codec().await.unwrap();
        keys.codec().await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_read_is_not_kept() {
        let (reads, load) = counting(1);
        let keys = CursorKeys::lazy(load);
        assert_eq!(
            keys.codec().await.unwrap_err(),
            KeyUnavailable("AccessDeniedException".into())
        );
        keys.codec().await.unwrap();
        keys.codec().await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    /// A cursor signed with one source is read back by another with the same key, and
    /// refused by an ephemeral one.
    #[tokio::test]
    async fn sources_with_the_same_key_agree_and_ephemeral_keys_do_not() {
        let key = "k".repeat(32);
        let store = refund::status::InMemoryRefundStore::new();
        for i in 0..3u128 {
            let ticket = uuid::Uuid::from_u128(i + 1).to_string().parse().unwrap();
            store
                .accept(refund::status::RefundRequest {
                    ticket_id: ticket,
                    idempotency_key: "k".into(),
                    correlation_id: "c".into(),
                    requested_by: None,
                    accepted_at: time::OffsetDateTime::now_utc(),
                })
                .await
                .unwrap();
        }
        let page = store
            .list(ListQuery {
                limit: "1".parse().unwrap(),
                ..ListQuery::default()
            })
            .await
            .unwrap();
        let cursor = page.next_cursor.unwrap();
        let one = CursorKeys::from_source(CursorKeySource::Key(key.clone()), no_aws);
        let two = CursorKeys::from_source(CursorKeySource::Key(key), no_aws);
        let text = one.codec().await.unwrap().encode(&cursor);
        assert_eq!(two.codec().await.unwrap().decode(&text, None), Ok(cursor));
        let ephemeral = CursorKeys::from_source(CursorKeySource::Ephemeral, no_aws);
        assert!(
            ephemeral
                .codec()
                .await
                .unwrap()
                .decode(&text, None)
                .is_err()
        );
        assert!(!format!("{one:?}").contains("kkkk"));
    }
}
