//! The event source's command line, with the local stack's variables as defaults.

use std::time::Duration;

use super::{EventSourceConfig, invoke_url};

/// The event source's command line.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "event-source",
    about = "Feeds the RefundTicket queue to refund-worker under `cargo lambda watch`, as Lambda's SQS event source mapping does"
)]
pub struct EventSourceArgs {
    /// The queue to poll.
    #[arg(long, env = "REFUND_QUEUE_URL")]
    pub queue_url: String,
    /// The function's invoke URL; default: cargo lambda watch's invoke API on
    /// --invoke-address:--invoke-port for --function.
    #[arg(long)]
    pub function_url: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub invoke_address: String,
    /// `cargo lambda watch --invoke-port` (the local stack's API_PORT).
    #[arg(long, env = "API_PORT", default_value_t = 9000)]
    pub invoke_port: u16,
    #[arg(long, default_value = "refund-worker")]
    pub function: String,
    /// Messages per invocation (the template's BatchSize).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=10))]
    pub batch_size: i32,
    /// Seconds to gather a batch that is not full (the template's BatchingWindowSeconds).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub batching_window_s: u64,
    /// Limit of one invocation; the first one waits for the worker to compile.
    #[arg(long, default_value_t = 900)]
    pub invoke_timeout_s: u64,
    /// How long a refused connection to the invoke API is retried per batch.
    #[arg(long, default_value_t = 300)]
    pub connect_patience_s: u64,
}

impl EventSourceArgs {
    pub fn config(&self) -> EventSourceConfig {
        EventSourceConfig {
            queue_url: self.queue_url.clone(),
            function_url: self.function_url.clone().unwrap_or_else(|| {
                invoke_url(&self.invoke_address, self.invoke_port, &self.function)
            }),
            batch_size: self.batch_size,
            batching_window: Duration::from_secs(self.batching_window_s),
            invoke_timeout: Duration::from_secs(self.invoke_timeout_s),
            connect_patience: Duration::from_secs(self.connect_patience_s),
        }
    }
}
