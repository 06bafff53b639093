//! [`TokenCache`]: the bearer token one execution environment sends, and when it is read
//! again (contract section 3).
//!
//! - When it is older than its TTL (`GATEWAY_TOKEN_TTL_S`), the next call re-reads it.
//! - After an upstream 401, it is re-read at once (a forced read), at most once per
//!   [`FORCED_READ_INTERVAL`] per execution environment. Every call that got its 401 from
//!   the same token waits for that one read: the reads are serialised by one async lock,
//!   and each token carries the generation it was read in, so a waiter that finds a newer
//!   generation uses it without reading again.
//! - Every read is bounded by [`READ_TIMEOUT`] (and, being part of the upstream call, by
//!   the record's cut-off). A read that fails or times out keeps the old token, and is
//!   logged without it.

use std::time::Duration;

use aws_config::ConfigLoader;
use tokio::time::Instant;

use super::token::{GatewayToken, SecretsManagerToken, TokenSource};
use crate::{
    config::{ConfigError, GATEWAY_TOKEN_SECRET_ARN},
    twin::lock,
};

/// At most one forced read (after a 401) in this window, per execution environment.
pub const FORCED_READ_INTERVAL: Duration = Duration::from_secs(30);
/// The bound on every re-read of the token.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The token a call was sent with, and the generation (the read) it came from.
#[derive(Debug, Clone)]
pub struct Lease {
    token: GatewayToken,
    generation: u64,
}

impl Lease {
    pub(super) fn token(&self) -> &GatewayToken {
        &self.token
    }

    /// 0 for the token read at start-up, one more for every successful re-read.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// The held token and when it must be read again.
struct Current {
    lease: Lease,
    stale_at: Instant,
}

/// Why the token is read again (a field of the log line).
#[derive(Debug, Clone, Copy)]
enum Reason {
    Expired,
    Unauthorized,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "ttl_expired",
            Self::Unauthorized => "upstream_unauthorized",
        }
    }
}

/// The bearer token of one execution environment, shared by every call in flight.
pub struct TokenCache {
    source: Box<dyn TokenSource>,
    ttl: Duration,
    current: std::sync::Mutex<Current>,
    /// Held for the whole of a re-read, so concurrent callers wait for it; holds the time
    /// of the last forced read.
    reads: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("ttl", &self.ttl)
            .field("generation", &self.lease().generation)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache holding `token`, just read from `source`, until `ttl` has passed.
    pub fn new(source: impl TokenSource + 'static, token: GatewayToken, ttl: Duration) -> Self {
        Self {
            source: Box::new(source),
            ttl,
            current: std::sync::Mutex::new(Current {
                lease: Lease {
                    token,
                    generation: 0,
                },
                stale_at: Instant::now() + ttl,
            }),
            reads: tokio::sync::Mutex::new(None),
        }
    }

    /// The first read, at start-up: unbounded, and a failure is the caller's to report.
    pub async fn read_from(
        source: impl TokenSource + 'static,
        ttl: Duration,
    ) -> Result<Self, crate::secret::SecretError> {
        let token = source.read().await?;
        Ok(Self::new(source, token, ttl))
    }

    /// The start-up step of `refund-worker`: no ARN, no token (and no client is built); an
    /// ARN that cannot be read is a [`ConfigError`] naming `GATEWAY_TOKEN_SECRET_ARN`.
    pub async fn load(
        arn: Option<&str>,
        loader: ConfigLoader,
        ttl: Duration,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(arn) = arn else {
            return Ok(None);
        };
        let client = crate::aws::secrets_client(loader).await;
        Self::read_from(SecretsManagerToken::new(client, arn), ttl)
            .await
            .map(Some)
            .map_err(|error| ConfigError::Unusable {
                name: GATEWAY_TOKEN_SECRET_ARN,
                reason: error.to_string(),
            })
    }

    fn lease(&self) -> Lease {
        lock(&self.current).lease.clone()
    }

    fn is_stale(&self) -> bool {
        Instant::now() >= lock(&self.current).stale_at
    }

    /// The token to send now; re-read first when it is older than the TTL.
    pub async fn token(&self) -> Lease {
        if !self.is_stale() {
            return self.lease();
        }
        let _reads = self.reads.lock().await;
        // Another call may have re-read it (or failed to, and pushed the next try back)
        // while this one waited.
        if self.is_stale() {
            self.reread(Reason::Expired).await;
        }
        self.lease()
    }

    /// The token to repeat a call with after the upstream refused `refused` with a 401.
    /// Re-reads at once unless a newer token was read meanwhile or a forced read already
    /// ran within [`FORCED_READ_INTERVAL`]; then the (possibly unchanged) token.
    pub async fn after_unauthorized(&self, refused: &Lease) -> Lease {
        let mut last_forced = self.reads.lock().await;
        let current = self.lease();
        if current.generation != refused.generation {
            return current;
        }
        let now = Instant::now();
        if last_forced.is_some_and(|at| now < at + FORCED_READ_INTERVAL) {
            return current;
        }
        // Noted before the read: a read cut off with its record still counts, so the
        // calls queued behind it do not each start one.
        *last_forced = Some(now);
        self.reread(Reason::Unauthorized).await;
        self.lease()
    }

    /// One bounded read. Success replaces the token (a new generation); failure keeps the
    /// old one and tries again at the next call after `min(ttl, FORCED_READ_INTERVAL)`.
    async fn reread(&self, reason: Reason) {
        let read = tokio::time::timeout(READ_TIMEOUT, self.source.read()).await;
        let mut current = lock(&self.current);
        let now = Instant::now();
        let error = match read {
            Ok(Ok(token)) => {
                current.lease = Lease {
                    token,
                    generation: current.lease.generation + 1,
                };
                current.stale_at = now + self.ttl;
                let generation = current.lease.generation;
                tracing::info!(
                    reason = reason.as_str(),
                    generation,
                    "gateway token re-read"
                );
                return;
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {} ms", READ_TIMEOUT.as_millis()),
        };
        current.stale_at = now + self.ttl.min(FORCED_READ_INTERVAL);
        tracing::warn!(
            reason = reason.as_str(),
            error,
            "gateway token could not be re-read; the old token is kept"
        );
    }
}
