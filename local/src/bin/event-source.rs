//! `event-source`: Lambda's SQS event source mapping for the local stack. See
//! `refund_local::event_source`.

use clap::Parser;
use refund_local::{event_source, logging};

#[tokio::main]
async fn main() {
    logging::init();
    let args = event_source::EventSourceArgs::parse();
    let config = args.config();
    // The project's constructor: honours AWS_ENDPOINT_URL (the local SQS).
    let sqs = refund_shared::aws::sqs_client(refund_shared::http::aws_config_loader()).await;
    let source = match event_source::EventSource::new(sqs, config.clone()).await {
        Ok(source) => source,
        Err(e) => {
            eprintln!("event-source: cannot read {}: {e}", config.queue_url);
            std::process::exit(1);
        }
    };
    tracing::info!(
        queue = %config.queue_url,
        queue_arn = source.queue_arn(),
        function_url = %config.function_url,
        batch_size = config.batch_size,
        batching_window_s = config.batching_window.as_secs(),
        maximum_concurrency = config.maximum_concurrency,
        report_batch_item_failures = config.report_batch_item_failures,
        "event source polling"
    );
    tokio::select! {
        () = source.run() => {}
        () = logging::until_stopped() => tracing::info!("event source stopped"),
    }
}
