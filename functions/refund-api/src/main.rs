//! `refund-api`: API Gateway HTTP API → `RefundTicket` on SQS, and the refund status
//! routes when `REFUND_TABLE_NAME` is set. See `handler` for the contract.

use lambda_http::{Error, run, service_fn};
use refund::{
    config::ApiConfig,
    queue,
    status::{self, DynamoRefundStore},
};
use refund_api::{
    cursor_key::CursorKeys,
    handler::{self, Status},
};

// One thread: an execution environment handles one event at a time, and at the template's
// 128 MB Lambda gives it a fraction of a vCPU. Worker threads would only add start-up
// time and memory (docs/BENCHMARKS.md); the worker's records still run concurrently.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    refund::logging::init();
    let config = ApiConfig::from_env().unwrap_or_else(|e| e.exit());
    let aws = refund::http::aws_config_loader;
    let client = queue::sqs_client(aws()).await;
    let queue = queue::SqsQueue::new(client, config.refund_queue_url);
    // The cursor key is not read here: a secret is read at the first listing.
    let status = match config.refund_table_name {
        Some(table) => Some(Status::new(
            DynamoRefundStore::new(status::dynamodb_client(aws()).await, table),
            CursorKeys::from_source(config.cursor_key, aws),
        )),
        None => None,
    };
    run(service_fn(|request| {
        handler::handle(&queue, status.as_ref(), request)
    }))
    .await
}
