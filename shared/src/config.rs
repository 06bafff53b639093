//! Configuration from the environment, read once at start-up.
//!
//! A function that starts with a missing or malformed variable would fail every request
//! later, far from the cause; instead it stops at once with one line naming the variable.

use std::str::FromStr;

use url::Url;

use crate::store::CursorKey;

mod access;
mod worker;

pub use access::{
    ALLOW_UNAUTHENTICATED, AccessConfig, DEFAULT_REQUEST_SCOPE, DEFAULT_SUPPORT_SCOPE,
    REQUEST_SCOPE, SUPPORT_SCOPE,
};
pub use worker::{
    DEFAULT_GATEWAY_TOKEN_TTL_S, DEFAULT_UPSTREAM_TIMEOUT_MS, GATEWAY_TOKEN_SECRET_ARN,
    GATEWAY_TOKEN_TTL_S, WorkerConfig,
};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set; it must be {meaning}")]
    Missing {
        name: &'static str,
        meaning: &'static str,
    },
    #[error("{name}={value:?} is malformed; it must be {meaning}")]
    Malformed {
        name: &'static str,
        value: String,
        meaning: &'static str,
    },
    /// For a variable whose value must not be echoed: a secret pasted in by mistake
    /// would otherwise land in the init-failure log.
    #[error("{name} is malformed (value not shown); it must be {meaning}")]
    MalformedHidden {
        name: &'static str,
        meaning: &'static str,
    },
    /// The variable is well-formed but what it points at cannot be used (a secret that
    /// cannot be read). The reason never carries the secret's value.
    #[error("{name}: {reason}")]
    Unusable { name: &'static str, reason: String },
    #[error(
        "GATEWAY_ADDR={0:?} is plain http to a host that is not loopback; use https or set ALLOW_INSECURE_GATEWAY=true"
    )]
    InsecureGateway(String),
    #[error(
        "ALLOW_UNAUTHENTICATED=true is for local stacks only: AWS_ENDPOINT_URL must be a loopback address"
    )]
    UnauthenticatedOutsideLocal,
}

impl ConfigError {
    /// Start-up only: log the one line and stop, so Lambda reports an init failure.
    /// (The functions install their log subscriber before reading the configuration.)
    pub fn exit(self) -> ! {
        tracing::error!(error = %self, "configuration error");
        std::process::exit(2)
    }
}

/// What `refund-api` needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub refund_queue_url: String,
    /// The refund status table (contract section 8); `None` (unset or empty) records
    /// nothing and answers the status routes 404 `status_not_enabled`.
    pub refund_table_name: Option<String>,
    /// Where the key that signs listing cursors comes from.
    pub cursor_key: CursorKeySource,
    /// Days a completed record is kept (`RECORD_RETENTION_DAYS`); 0 keeps it forever.
    pub record_retention_days: u32,
    /// Who may do what (`REQUEST_SCOPE`, `SUPPORT_SCOPE`, `ALLOW_UNAUTHENTICATED`).
    pub access: AccessConfig,
}

/// The listing cursor's signing key. Every execution environment must sign with the same
/// key, or a cursor from one would be refused by the next: on AWS it is a generated
/// Secrets Manager secret (read at the first listing, never on the 202 path).
#[derive(Clone)]
pub enum CursorKeySource {
    /// `REFUND_CURSOR_KEY_SECRET_ARN`: the template's generated secret.
    Secret(String),
    /// `REFUND_CURSOR_KEY`: the key itself, for the local stack and tests, checked here
    /// ([`CursorKey::from_bytes`]) so a short one stops the function at start-up.
    Key(CursorKey),
    /// Neither is set: a random key per process, so cursors only work within one process
    /// (one `cargo lambda watch`); the function says so in a warning at start-up.
    Ephemeral,
}

impl std::fmt::Debug for CursorKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(arn) => f.debug_tuple("Secret").field(arn).finish(),
            Self::Key(_) => f.write_str("Key(<redacted>)"),
            Self::Ephemeral => f.write_str("Ephemeral"),
        }
    }
}

/// Variables of contract section 8 and of the cursor key.
pub const REFUND_TABLE_NAME: &str = "REFUND_TABLE_NAME";
/// How long completed records are kept, in days (both functions).
pub const RECORD_RETENTION_DAYS: &str = "RECORD_RETENTION_DAYS";
/// The fewest days a record may be kept, short of forever (0): the services keep their
/// idempotency keys for weeks (Adyen: at least 31 days), and once a record has expired a PUT
/// queues the ticket again, so a record must outlive the key (contract section 8).
pub const MIN_RECORD_RETENTION_DAYS: u32 = 31;
const RETENTION_DAYS: &str = "0 (keep forever) or a whole number of days from 31 to 36500";
pub const REFUND_CURSOR_KEY_SECRET_ARN: &str = "REFUND_CURSOR_KEY_SECRET_ARN";
pub const REFUND_CURSOR_KEY: &str = "REFUND_CURSOR_KEY";
/// What `REFUND_CURSOR_KEY` must be: [`CursorKey::MIN_LEN`] bytes or more.
const CURSOR_KEY: &str = "at least 32 bytes of secret text, or unset";
const TABLE_NAME: &str = "a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ - .), or unset";
/// The worker's refund events go to this EventBridge bus (contract sections 5 and 9).
pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
const BUS_NAME: &str = "an EventBridge bus name (1 to 256 of A-Z a-z 0-9 _ - . /) or ARN, or unset";

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let refund_table_name = env.table_name(REFUND_TABLE_NAME)?;
        // Without the table the status routes are off: their variables are not read, so a
        // stray one cannot stop a function that works exactly as before.
        let cursor_key = if refund_table_name.is_none() {
            CursorKeySource::Ephemeral
        } else if let Some(arn) = env.secret_arn(REFUND_CURSOR_KEY_SECRET_ARN)? {
            CursorKeySource::Secret(arn)
        } else if let Some(key) = lookup(REFUND_CURSOR_KEY).filter(|k| !k.is_empty()) {
            let key = CursorKey::from_bytes(key.as_bytes()).map_err(|_| {
                ConfigError::MalformedHidden {
                    name: REFUND_CURSOR_KEY,
                    meaning: CURSOR_KEY,
                }
            })?;
            CursorKeySource::Key(key)
        } else {
            CursorKeySource::Ephemeral
        };
        Ok(Self {
            refund_queue_url: env.queue_url("REFUND_QUEUE_URL")?,
            refund_table_name,
            cursor_key,
            record_retention_days: env.retention_days()?,
            access: env.access()?,
        })
    }
}

const SECRET_ARN: &str = "a Secrets Manager secret ARN (arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME), or unset";
const QUEUE_URL: &str = "an SQS queue URL (http:// or https://)";

/// `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`: the template grants read on
/// exactly this ARN, so a bare secret name would be refused by IAM at the first read.
fn is_secret_arn(value: &str) -> bool {
    let parts: Vec<&str> = value.splitn(7, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, "secretsmanager", region, account, "secret", name]
            if !partition.is_empty()
                && !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && !name.is_empty()
    ) && value.bytes().all(|b| b.is_ascii_graphic())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// `RECORD_RETENTION_DAYS`, both functions: unset keeps records forever, as 0 does;
    /// 1 to 30 days would let a record expire while the services still hold its key.
    fn retention_days(&self) -> Result<u32, ConfigError> {
        let days = self.number(RECORD_RETENTION_DAYS, 0, 0..=36_500, RETENTION_DAYS)?;
        if days == 0 || days >= MIN_RECORD_RETENTION_DAYS {
            return Ok(days);
        }
        Err(ConfigError::Malformed {
            name: RECORD_RETENTION_DAYS,
            value: (self.0)(RECORD_RETENTION_DAYS).unwrap_or_default(),
            meaning: RETENTION_DAYS,
        })
    }

    fn required(&self, name: &'static str, meaning: &'static str) -> Result<String, ConfigError> {
        (self.0)(name)
            .filter(|value| !value.trim().is_empty())
            .ok_or(ConfigError::Missing { name, meaning })
    }

    fn queue_url(&self, name: &'static str) -> Result<String, ConfigError> {
        let value = self.required(name, QUEUE_URL)?;
        if value.starts_with("https://") || value.starts_with("http://") {
            Ok(value)
        } else {
            Err(ConfigError::Malformed {
                name,
                value,
                meaning: QUEUE_URL,
            })
        }
    }

    fn number<N>(
        &self,
        name: &'static str,
        default: N,
        range: std::ops::RangeInclusive<N>,
        meaning: &'static str,
    ) -> Result<N, ConfigError>
    where
        N: FromStr + PartialOrd,
    {
        let Some(value) = (self.0)(name).filter(|v| !v.is_empty()) else {
            return Ok(default);
        };
        match value.trim().parse::<N>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ConfigError::Malformed {
                name,
                value,
                meaning,
            }),
        }
    }

    /// Unset or blank is `None`: the template passes an empty value when no secret is
    /// configured.
    fn secret_arn(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(value) = (self.0)(name).filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let value = value.trim();
        if is_secret_arn(value) {
            Ok(Some(value.to_owned()))
        } else {
            Err(ConfigError::MalformedHidden {
                name,
                meaning: SECRET_ARN,
            })
        }
    }

    /// Unset or blank is `None`: the status feature is off.
    fn table_name(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        self.optional_name(name, TABLE_NAME, |value| name_chars(value, 3, 255, b""))
    }

    /// A bus name (what `!Ref` of a bus gives) or its ARN; unset or blank: no bus.
    fn bus_name(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        self.optional_name(name, BUS_NAME, |value| match value.strip_prefix("arn:") {
            // arn:PARTITION:events:REGION:ACCOUNT:event-bus/NAME
            Some(rest) => rest.split_once(":event-bus/").is_some_and(|(scope, bus)| {
                name_chars(bus, 1, 256, b"/") && scope.contains(":events:")
            }),
            None => name_chars(value, 1, 256, b"/"),
        })
    }

    /// An optional resource name: unset or blank is `None`, else it must be `valid`.
    fn optional_name(
        &self,
        name: &'static str,
        meaning: &'static str,
        valid: impl Fn(&str) -> bool,
    ) -> Result<Option<String>, ConfigError> {
        match (self.0)(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(value) if valid(&value) => Ok(Some(value)),
            Some(value) => Err(ConfigError::Malformed {
                name,
                value,
                meaning,
            }),
        }
    }

    fn boolean(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(value) = (self.0)(name).filter(|v| !v.is_empty()) else {
            return Ok(default);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ConfigError::Malformed {
                name,
                value,
                meaning: "true or false",
            }),
        }
    }
}

/// `text` is `min..=max` bytes of ASCII letters, digits, `_`, `-`, `.` and `extra`: the
/// characters AWS allows in table and bus names.
fn name_chars(text: &str, min: usize, max: usize, extra: &[u8]) -> bool {
    (min..=max).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b) || extra.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Cursor, CursorCodec, table::ListKey};
    use std::collections::HashMap;
    use std::time::Duration;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    const WORKER: &[(&str, &str)] = &[
        (
            "REFUND_QUEUE_URL",
            "http://127.0.0.1:4566/000000000000/RefundTicket",
        ),
        (
            "DEAD_LETTER_QUEUE_URL",
            "http://127.0.0.1:4566/000000000000/RefundTicket-dlq",
        ),
        ("GATEWAY_ADDR", "http://127.0.0.1:8888"),
    ];

    fn worker_with(extra: &[(&str, &str)]) -> Result<WorkerConfig, ConfigError> {
        let mut vars = WORKER.to_vec();
        vars.extend_from_slice(extra);
        WorkerConfig::from_lookup(lookup(&vars))
    }

    #[test]
    fn api_needs_the_queue_url() {
        assert_eq!(
            ApiConfig::from_lookup(lookup(&[])).unwrap_err(),
            ConfigError::Missing {
                name: "REFUND_QUEUE_URL",
                meaning: QUEUE_URL
            }
        );
        let message = ApiConfig::from_lookup(lookup(&[("REFUND_QUEUE_URL", "queue")]))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("REFUND_QUEUE_URL=\"queue\" is malformed"),
            "{message}"
        );
    }

    const API: &[(&str, &str)] = &[(
        "REFUND_QUEUE_URL",
        "http://127.0.0.1:4566/000000000000/RefundTicket",
    )];

    fn api_with(extra: &[(&str, &str)]) -> Result<ApiConfig, ConfigError> {
        let mut vars = API.to_vec();
        vars.extend_from_slice(extra);
        ApiConfig::from_lookup(lookup(&vars))
    }

    #[test]
    fn records_are_kept_forever_or_at_least_31_days() {
        for (value, days) in [
            (None, 0),
            (Some(""), 0),
            (Some("0"), 0),
            (Some("31"), 31),
            (Some(" 365 "), 365),
            (Some("36500"), 36_500),
        ] {
            let vars: Vec<_> = value
                .map(|v| (RECORD_RETENTION_DAYS, v))
                .into_iter()
                .collect();
            assert_eq!(
                api_with(&vars).unwrap().record_retention_days,
                days,
                "{value:?}"
            );
            assert_eq!(
                worker_with(&vars).unwrap().record_retention_days,
                days,
                "{value:?}"
            );
        }
        for bad in ["1", "7", "30", "-1", "36501", "1.5", "a year"] {
            let vars = [(RECORD_RETENTION_DAYS, bad)];
            for text in [
                api_with(&vars).unwrap_err().to_string(),
                worker_with(&vars).unwrap_err().to_string(),
            ] {
                assert!(
                    text.starts_with(&format!("RECORD_RETENTION_DAYS={bad:?} is malformed")),
                    "{text}"
                );
                assert!(text.contains("from 31 to 36500"), "{text}");
                assert!(!text.contains('\n'), "one line: {text}");
            }
        }
    }

    #[test]
    fn the_event_bus_is_optional_and_must_be_a_bus_name_or_arn() {
        assert_eq!(worker_with(&[]).unwrap().event_bus_name, None);
        for blank in ["", " "] {
            let config = worker_with(&[(EVENT_BUS_NAME, blank)]).unwrap();
            assert_eq!(config.event_bus_name, None, "{blank:?}");
        }
        for good in [
            "ticket-refunds-prod-ticket-refunds",
            "default",
            "a.b_c/d",
            "arn:aws:events:eu-west-1:123456789012:event-bus/ticket-refunds",
        ] {
            let config = worker_with(&[(EVENT_BUS_NAME, good)]).unwrap();
            assert_eq!(config.event_bus_name.as_deref(), Some(good));
        }
        let long = "b".repeat(257);
        for bad in [
            "has space",
            "ünïcode",
            long.as_str(),
            "arn:aws:sqs:eu-west-1:123456789012:event-bus/x",
            "arn:aws:events:eu-west-1:123456789012:rule/x",
        ] {
            let text = worker_with(&[(EVENT_BUS_NAME, bad)])
                .unwrap_err()
                .to_string();
            assert!(text.starts_with("EVENT_BUS_NAME="), "{bad}: {text}");
        }
    }

    #[test]
    fn the_status_table_is_optional_and_must_be_a_table_name() {
        assert_eq!(api_with(&[]).unwrap().refund_table_name, None);
        assert_eq!(worker_with(&[]).unwrap().refund_table_name, None);
        assert_eq!(
            api_with(&[(REFUND_TABLE_NAME, " ")])
                .unwrap()
                .refund_table_name,
            None
        );
        let config = worker_with(&[(REFUND_TABLE_NAME, "ticket-refunds-prod.Refunds_1")]).unwrap();
        assert_eq!(
            config.refund_table_name.as_deref(),
            Some("ticket-refunds-prod.Refunds_1")
        );
        for bad in ["ab", "refunds table", "refunds/1", &"x".repeat(256)] {
            let api = api_with(&[(REFUND_TABLE_NAME, bad)])
                .unwrap_err()
                .to_string();
            let worker = worker_with(&[(REFUND_TABLE_NAME, bad)])
                .unwrap_err()
                .to_string();
            for text in [api, worker] {
                assert!(text.starts_with("REFUND_TABLE_NAME="), "{bad}: {text}");
            }
        }
    }

    #[test]
    fn the_cursor_key_comes_from_a_secret_a_variable_or_is_ephemeral() {
        const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cursor-key-AbC123";
        let key = "k".repeat(CursorKey::MIN_LEN);
        let api_with = |extra: &[(&str, &str)]| {
            let mut vars = vec![(REFUND_TABLE_NAME, "Refunds")];
            vars.extend_from_slice(extra);
            self::api_with(&vars)
        };
        assert!(matches!(
            api_with(&[]).unwrap().cursor_key,
            CursorKeySource::Ephemeral
        ));
        // The variable's key: what it signs, the key of the same text verifies.
        let CursorKeySource::Key(read) = api_with(&[(REFUND_CURSOR_KEY, &key)]).unwrap().cursor_key
        else {
            panic!("REFUND_CURSOR_KEY is not the key");
        };
        let cursor = Cursor::new(
            None,
            ListKey::new(time::OffsetDateTime::UNIX_EPOCH, uuid::Uuid::nil().into()),
        );
        let same = CursorCodec::new(CursorKey::from_bytes(key.as_bytes()).unwrap());
        let text = CursorCodec::new(read).encode(&cursor);
        assert_eq!(same.decode(&text, None), Ok(cursor));
        // The secret wins: the template sets it, and a stray local variable must not
        // make one environment sign differently from the others.
        assert!(matches!(
            api_with(&[
                (REFUND_CURSOR_KEY_SECRET_ARN, ARN),
                (REFUND_CURSOR_KEY, &key)
            ])
            .unwrap()
            .cursor_key,
            CursorKeySource::Secret(arn) if arn == ARN
        ));
        let short = "s3cr3t-but-too-short";
        let text = api_with(&[(REFUND_CURSOR_KEY, short)])
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("REFUND_CURSOR_KEY is malformed"), "{text}");
        assert!(!text.contains(short), "{text}");
        // The bound the text states is the one the key checks.
        assert!(
            text.contains(&format!("at least {} bytes", CursorKey::MIN_LEN)),
            "{text}"
        );
        let shown = format!(
            "{:?}",
            CursorKeySource::Key(CursorKey::from_bytes(key.as_bytes()).unwrap())
        );
        assert!(!shown.contains(&key), "{shown}");
        assert!(api_with(&[(REFUND_CURSOR_KEY_SECRET_ARN, "cursor-key")]).is_err());
        // With the status routes off, the cursor variables are not even read.
        let off = self::api_with(&[
            (REFUND_CURSOR_KEY, short),
            (REFUND_CURSOR_KEY_SECRET_ARN, "x"),
        ]);
        assert!(matches!(
            off.unwrap().cursor_key,
            CursorKeySource::Ephemeral
        ));
    }

    #[test]
    fn worker_defaults_are_the_contracts() {
        let config = worker_with(&[]).unwrap();
        assert_eq!(config.upstream_timeout, Duration::from_millis(5000));
        assert_eq!(config.max_receive_count, 15);
        assert_eq!((config.retry_base_s, config.retry_max_s), (5, 900));
        assert_eq!(config.deadline_margin, Duration::from_millis(2000));
        assert!(!config.allow_insecure_gateway);
        assert_eq!(config.gateway_token_secret_arn, None);
        assert_eq!(config.gateway_token_ttl, Duration::from_secs(300));
    }

    #[test]
    fn the_token_ttl_is_whole_seconds_from_1_to_86400() {
        for (value, seconds) in [("", 300), ("1", 1), (" 60 ", 60), ("86400", 86_400)] {
            let config = worker_with(&[(GATEWAY_TOKEN_TTL_S, value)]).unwrap();
            assert_eq!(
                config.gateway_token_ttl,
                Duration::from_secs(seconds),
                "{value}"
            );
        }
        for bad in ["0", "86401", "-5", "1.5", "5m", "ten"] {
            let error = worker_with(&[(GATEWAY_TOKEN_TTL_S, bad)]).unwrap_err();
            let text = error.to_string();
            assert!(text.starts_with("GATEWAY_TOKEN_TTL_S="), "{bad}: {text}");
            assert!(text.contains("from 1 to 86400"), "{text}");
            assert!(!text.contains('\n'), "one line: {text}");
        }
    }

    #[test]
    fn the_token_secret_is_optional_and_must_be_a_secret_arn() {
        const ARN: &str =
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gateway-token-AbC123";
        for unset in ["", "  "] {
            let config = worker_with(&[(GATEWAY_TOKEN_SECRET_ARN, unset)]).unwrap();
            assert_eq!(config.gateway_token_secret_arn, None);
        }
        let config = worker_with(&[(GATEWAY_TOKEN_SECRET_ARN, ARN)]).unwrap();
        assert_eq!(config.gateway_token_secret_arn.as_deref(), Some(ARN));
        // Someone pasting the token itself, or a bare name: refused, and never echoed.
        for bad in [
            "eyJhbGciOiJIUzI1NiJ9.s3cr3t",
            "gateway-token",
            "arn:aws:sqs:eu-west-1:123456789012:RefundTicket",
            "arn:aws:secretsmanager:eu-west-1:1234:secret:x",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:",
        ] {
            let text = worker_with(&[(GATEWAY_TOKEN_SECRET_ARN, bad)])
                .unwrap_err()
                .to_string();
            assert!(
                text.starts_with("GATEWAY_TOKEN_SECRET_ARN is malformed"),
                "{text}"
            );
            assert!(!text.contains(bad), "{text}");
        }
    }

    #[test]
    fn each_bad_variable_is_named() {
        for (name, value) in [
            ("UPSTREAM_TIMEOUT_MS", "soon"),
            ("UPSTREAM_TIMEOUT_MS", "0"),
            ("MAX_RECEIVE_COUNT", "-1"),
            ("RETRY_BASE_S", "1.5"),
            ("RETRY_MAX_S", "1"),
            ("DEADLINE_MARGIN_MS", "x"),
            ("ALLOW_INSECURE_GATEWAY", "maybe"),
            ("GATEWAY_TOKEN_TTL_S", "0"),
            ("GATEWAY_ADDR", "ftp://example.com"),
            ("GATEWAY_ADDR", "not a url"),
        ] {
            let err = worker_with(&[(name, value)]).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}={value}: {err}");
        }
        let missing = WorkerConfig::from_lookup(lookup(&WORKER[..2])).unwrap_err();
        assert!(missing.to_string().starts_with("GATEWAY_ADDR is not set"));
    }

    #[test]
    fn plain_http_is_refused_unless_loopback_or_allowed() {
        let remote = [("GATEWAY_ADDR", "http://gateway.example.com/prefix")];
        assert!(matches!(
            worker_with(&remote),
            Err(ConfigError::InsecureGateway(_))
        ));
        let allowed = worker_with(&[remote[0], ("ALLOW_INSECURE_GATEWAY", "true")]).unwrap();
        assert_eq!(allowed.gateway_addr.path(), "/prefix");
        for ok in [
            "https://gateway.example.com",
            "http://localhost:1",
            "http://[::1]:8",
        ] {
            assert!(worker_with(&[("GATEWAY_ADDR", ok)]).is_ok(), "{ok}");
        }
    }
}
