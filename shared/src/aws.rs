//! The AWS SDK plumbing every client of this project shares: how a client is built (the
//! project's HTTP stack, one timeout budget per service). How an SDK failure is sorted
//! into "try later" and "will not work" is [`crate::port`]'s.

use std::time::Duration;

use aws_config::{ConfigLoader, SdkConfig, timeout::TimeoutConfig};

/// SQS operations give up after this long in all, retries included, so a sick queue
/// answers the caller with 503 long before API Gateway's 30 s integration limit.
pub const SQS_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// DynamoDB operations give up after this long in all, retries included: the API still
/// answers 202 when its status write fails, so a sick table may add at most this much to
/// the 202 path.
pub const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// A secret read gives up after this long, retries included, well inside Lambda's 10 s init.
pub const SECRET_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A `PutEvents` gives up after this long, retries included: the worker waits for it
/// before it answers Lambda (contract 4 bounds it by 1 s).
pub const PUT_EVENTS_TIMEOUT: Duration = Duration::from_secs(1);

/// The time budget of one service's client: connect, one attempt, the whole operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
}

/// Milliseconds, so each service's bounds read on one line.
const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

impl Timeouts {
    /// SQS: short connects and attempts, [`SQS_OPERATION_TIMEOUT`] in all.
    pub const SQS: Self = Self::new(ms(1000), ms(2000), SQS_OPERATION_TIMEOUT);
    /// DynamoDB: single-digit-millisecond operations, so short attempts and
    /// [`DYNAMODB_OPERATION_TIMEOUT`] in all.
    pub const DYNAMODB: Self = Self::new(ms(1000), ms(1000), DYNAMODB_OPERATION_TIMEOUT);
    /// Secrets Manager: a sick endpoint fails the read quickly instead of hanging it.
    pub const SECRETS: Self = Self::new(ms(1000), ms(2000), SECRET_READ_TIMEOUT);

    /// EventBridge: one short call per batch, [`PUT_EVENTS_TIMEOUT`] in all.
    pub const EVENTS: Self = Self::new(ms(500), ms(500), PUT_EVENTS_TIMEOUT);

    /// A connect bound, a bound per attempt, and a bound for the whole operation
    /// (its retries included).
    pub const fn new(connect: Duration, attempt: Duration, operation: Duration) -> Self {
        Self {
            connect,
            attempt,
            operation,
        }
    }

    pub fn config(self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// The SDK configuration of one client: `loader` (normally
/// [`crate::http::aws_config_loader`], which honours `AWS_ENDPOINT_URL`) on the project's
/// HTTP stack with `timeouts`. Built once per client, at start-up.
pub async fn client_config(loader: ConfigLoader, timeouts: Timeouts) -> SdkConfig {
    loader
        .http_client(crate::http::aws_http_client())
        .timeout_config(timeouts.config())
        .load()
        .await
}

pub async fn sqs_client(loader: ConfigLoader) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&client_config(loader, Timeouts::SQS).await)
}

pub async fn dynamodb_client(loader: ConfigLoader) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&client_config(loader, Timeouts::DYNAMODB).await)
}

pub async fn eventbridge_client(loader: ConfigLoader) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(&client_config(loader, Timeouts::EVENTS).await)
}

pub async fn secrets_client(loader: ConfigLoader) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&client_config(loader, Timeouts::SECRETS).await)
}
