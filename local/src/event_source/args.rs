//! The event source's command line, with the local stack's variables as defaults.

use std::time::Duration;

use super::{EventSourceConfig, invoke_url};

/// The one response type an SQS event source mapping knows.
pub const REPORT_BATCH_ITEM_FAILURES: &str = "ReportBatchItemFailures";

/// Whether a `FunctionResponseTypes` list (comma-separated, possibly empty) holds
/// `ReportBatchItemFailures`; any other type is refused, as Lambda refuses it.
pub fn reports_batch_item_failures(types: &str) -> Result<bool, String> {
    let mut reports = false;
    for kind in types.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if kind != REPORT_BATCH_ITEM_FAILURES {
            return Err(format!(
                "unknown function response type {kind:?} (only {REPORT_BATCH_ITEM_FAILURES})"
            ));
        }
        reports = true;
    }
    Ok(reports)
}

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
    /// refund-worker's `cargo lambda watch --invoke-port` (the local stack's WORKER_PORT).
    #[arg(long, env = "WORKER_PORT", default_value_t = 9001)]
    pub invoke_port: u16,
    #[arg(long, default_value = "refund-worker")]
    pub function: String,
    /// Messages per invocation (the template's BatchSize).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=10))]
    pub batch_size: i32,
    /// Seconds to gather a batch that is not full (the template's BatchingWindowSeconds).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub batching_window_s: u64,
    /// Most batches in flight at once (the mapping's ScalingConfig.MaximumConcurrency).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub maximum_concurrency: u16,
    /// The mapping's FunctionResponseTypes, comma-separated, "" for none. With
    /// ReportBatchItemFailures the function's `batchItemFailures` stay on the queue; without
    /// it an invocation that answers deletes its whole batch, as Lambda does.
    #[arg(long = "function-response-types", action = clap::ArgAction::Set,
          default_value = REPORT_BATCH_ITEM_FAILURES,
          value_parser = reports_batch_item_failures)]
    pub report_batch_item_failures: bool,
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
            maximum_concurrency: usize::from(self.maximum_concurrency),
            report_batch_item_failures: self.report_batch_item_failures,
            invoke_timeout: Duration::from_secs(self.invoke_timeout_s),
            connect_patience: Duration::from_secs(self.connect_patience_s),
        }
    }
}
