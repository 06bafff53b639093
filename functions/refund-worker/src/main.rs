//! `refund-worker`: SQS event source → receipts and payments services. See `handler`.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use refund::{config::WorkerConfig, gateway::HttpGateway, queue, secret, status};
use refund_worker::{Settings, Worker};

// One thread: an execution environment handles one event at a time, and at the template's
// 128 MB Lambda gives it a fraction of a vCPU. Worker threads would only add start-up
// time and memory (docs/BENCHMARKS.md); the worker's records still run concurrently.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    refund::logging::init();
    let config = WorkerConfig::from_env().unwrap_or_else(|e| e.exit());
    let aws = refund::http::aws_config_loader;
    // Read once, before the first event: rotation reaches new execution environments.
    let token = secret::load_gateway_token(config.gateway_token_secret_arn.as_deref(), aws())
        .await
        .unwrap_or_else(|e| e.exit());
    let gateway =
        HttpGateway::new(&config.gateway_addr, config.upstream_timeout)?.with_token(token);
    let client = queue::sqs_client(aws()).await;
    // REFUND_TABLE_NAME unset: no store, and the worker records nothing.
    let statuses = match &config.refund_table_name {
        Some(table) => Some(status::DynamoRefundStore::new(
            status::dynamodb_client(aws()).await,
            table,
        )),
        None => None,
    };
    let worker = Worker::new(
        gateway,
        queue::SqsQueue::new(client.clone(), &config.refund_queue_url),
        queue::SqsQueue::new(client, &config.dead_letter_queue_url),
        Settings::from_config(&config),
    )
    .with_status(statuses);
    run(service_fn(|event: LambdaEvent<_>| worker.handle(event))).await
}
