//! `refund-api`: API Gateway HTTP API → `RefundTicket` on SQS. See `handler` for the contract.

use lambda_http::{Error, run, service_fn};
use refund::{config::ApiConfig, queue};
use refund_api::handler;

// One thread: an execution environment handles one event at a time, and at the template's
// 128 MB Lambda gives it a fraction of a vCPU. Worker threads would only add start-up
// time and memory (docs/BENCHMARKS.md); the worker's records still run concurrently.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    refund::logging::init();
    let config = ApiConfig::from_env().unwrap_or_else(|e| e.exit());
    let client = queue::sqs_client(refund::http::aws_config_loader()).await;
    let queue = queue::SqsQueue::new(client, config.refund_queue_url);
    run(service_fn(|request| handler::handle(&queue, request))).await
}
