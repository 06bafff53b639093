//! `refund-api`: API Gateway HTTP API → `RefundTicket` on SQS. See `handler` for the contract.

use lambda_http::{Error, run, service_fn};
use refund::{config::ApiConfig, queue};

mod handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    refund::logging::init();
    let config = ApiConfig::from_env().unwrap_or_else(|e| e.exit());
    let client =
        queue::sqs_client(aws_config::defaults(aws_config::BehaviorVersion::latest())).await;
    let queue = queue::SqsQueue::new(client, config.refund_queue_url);
    run(service_fn(|request| handler::handle(&queue, request))).await
}
