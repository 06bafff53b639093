//! What `refund-worker` reads from its environment (contract section 5).

use std::time::Duration;

use url::Url;

use super::{ConfigError, EVENT_BUS_NAME, Env, REFUND_TABLE_NAME, is_loopback};

/// What `refund-worker` needs; defaults are the contract's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    pub refund_queue_url: String,
    pub dead_letter_queue_url: String,
    pub gateway_addr: Url,
    pub upstream_timeout: Duration,
    pub max_receive_count: u32,
    pub retry_base_s: u32,
    pub retry_max_s: u32,
    pub deadline_margin: Duration,
    pub allow_insecure_gateway: bool,
    /// The Secrets Manager secret holding the upstream bearer token; `None` (unset or
    /// empty) sends no `Authorization` header.
    pub gateway_token_secret_arn: Option<String>,
    /// How long the token is used before the next call re-reads it
    /// (`GATEWAY_TOKEN_TTL_S`, 1 to 86400 s); a 401 re-reads it at once.
    pub gateway_token_ttl: Duration,
    /// The refund status table (contract section 8); `None` records nothing.
    pub refund_table_name: Option<String>,
    /// Days a completed record is kept (`RECORD_RETENTION_DAYS`); 0 keeps it forever.
    pub record_retention_days: u32,
    /// The bus of the refund events (`EVENT_BUS_NAME`); `None`: no events are published.
    pub event_bus_name: Option<String>,
}

/// `UPSTREAM_TIMEOUT_MS` when unset (contract section 5).
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 5000;

/// Its variable, named in every start-up error about the token.
pub const GATEWAY_TOKEN_SECRET_ARN: &str = "GATEWAY_TOKEN_SECRET_ARN";
/// The token's time to live in this execution environment (contract section 5).
pub const GATEWAY_TOKEN_TTL_S: &str = "GATEWAY_TOKEN_TTL_S";
/// `GATEWAY_TOKEN_TTL_S` when unset.
pub const DEFAULT_GATEWAY_TOKEN_TTL_S: u64 = 300;

impl WorkerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let gateway_addr = env.required("GATEWAY_ADDR", GATEWAY)?;
        let gateway_addr = parse_gateway_addr(&gateway_addr).ok_or(ConfigError::Malformed {
            name: "GATEWAY_ADDR",
            value: gateway_addr,
            meaning: GATEWAY,
        })?;
        let config = Self {
            refund_queue_url: env.queue_url("REFUND_QUEUE_URL")?,
            dead_letter_queue_url: env.queue_url("DEAD_LETTER_QUEUE_URL")?,
            gateway_addr,
            gateway_token_secret_arn: env.secret_arn(GATEWAY_TOKEN_SECRET_ARN)?,
            gateway_token_ttl: Duration::from_secs(env.number(
                GATEWAY_TOKEN_TTL_S,
                DEFAULT_GATEWAY_TOKEN_TTL_S,
                1..=86_400,
                "a whole number of seconds from 1 to 86400",
            )?),
            refund_table_name: env.table_name(REFUND_TABLE_NAME)?,
            record_retention_days: env.retention_days()?,
            event_bus_name: env.bus_name(EVENT_BUS_NAME)?,
            upstream_timeout: Duration::from_millis(env.number(
                "UPSTREAM_TIMEOUT_MS",
                DEFAULT_UPSTREAM_TIMEOUT_MS,
                1..=300_000,
                "a whole number of milliseconds from 1 to 300000",
            )?),
            max_receive_count: env.number(
                "MAX_RECEIVE_COUNT",
                15,
                1..=1000,
                "a whole number from 1 to 1000 (the queue's redrive maxReceiveCount)",
            )?,
            retry_base_s: env.number(
                "RETRY_BASE_S",
                5,
                1..=43_200,
                "a whole number of seconds from 1 to 43200",
            )?,
            retry_max_s: env.number(
                "RETRY_MAX_S",
                900,
                1..=43_200,
                "a whole number of seconds from 1 to 43200",
            )?,
            deadline_margin: Duration::from_millis(env.number(
                "DEADLINE_MARGIN_MS",
                2000,
                0..=600_000,
                "a whole number of milliseconds from 0 to 600000",
            )?),
            allow_insecure_gateway: env.boolean("ALLOW_INSECURE_GATEWAY", false)?,
        };
        config.check()
    }

    /// The rules between variables, once each is valid on its own.
    fn check(self) -> Result<Self, ConfigError> {
        let config = self;
        if config.retry_max_s < config.retry_base_s {
            return Err(ConfigError::Malformed {
                name: "RETRY_MAX_S",
                value: config.retry_max_s.to_string(),
                meaning: "at least RETRY_BASE_S",
            });
        }
        if config.gateway_addr.scheme() == "http"
            && !config.allow_insecure_gateway
            && !is_loopback(&config.gateway_addr)
        {
            return Err(ConfigError::InsecureGateway(
                config.gateway_addr.to_string(),
            ));
        }
        Ok(config)
    }
}

const GATEWAY: &str = "an http:// or https:// base address, optionally with a path prefix";

fn parse_gateway_addr(value: &str) -> Option<Url> {
    let url = Url::parse(value).ok()?;
    let usable = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    usable.then_some(url)
}
