//! `refund-api`: API Gateway HTTP API → `RefundTicket` on SQS, and the refund records'
//! routes when `REFUND_TABLE_NAME` is set. See the library (`lib.rs`) for the contract.

use lambda_http::{Error, run, service_fn};
use refund_api::{CursorKeys, RefundRecords, handle};
use refund_shared::{aws, config::ApiConfig, queue::SqsQueue, store::DynamoRefundStore};

// One thread: an execution environment handles one event at a time, and at the template's
// 128 MB Lambda gives it a fraction of a vCPU. Worker threads would only add start-up
// time and memory (docs/BENCHMARKS.md); the worker's records still run concurrently.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    refund_shared::logging::init();
    let config = ApiConfig::from_env().unwrap_or_else(|e| e.exit());
    if config.access.allow_unauthenticated {
        tracing::warn!(
            "ALLOW_UNAUTHENTICATED=true: requests without a verified caller are served as support (local stacks only)"
        );
    }
    let loader = refund_shared::http::aws_config_loader;
    let queue = SqsQueue::new(aws::sqs_client(loader()).await, config.refund_queue_url);
    // The cursor key is not read here: a secret is read at the first listing.
    let records = match config.refund_table_name {
        Some(table) => Some(RefundRecords::new(
            DynamoRefundStore::new(aws::dynamodb_client(loader()).await, table)
                .with_retention_days(config.record_retention_days),
            CursorKeys::from_source(config.cursor_key, loader),
        )),
        None => None,
    };
    run(service_fn(|request| {
        handle(&queue, records.as_ref(), &config.access, request)
    }))
    .await
}
