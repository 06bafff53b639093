//! `refund-worker`: SQS event source → receipts and payments services. See `worker`.

// The handler's future nests the batch, each unit, the SDK's and reqwest's futures; its
// layout is deeper than rustc's default query depth of 128.
#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use refund_shared::{
    announce::EventBridgeBus,
    aws,
    config::WorkerConfig,
    gateway::{HttpGateway, TokenCache},
    queue::SqsQueue,
    store::DynamoRefundStore,
};
use refund_worker::{Settings, Worker};

// One thread: an execution environment handles one event at a time, and at the template's
// 128 MB Lambda gives it a fraction of a vCPU. Worker threads would only add start-up
// time and memory (docs/BENCHMARKS.md); the worker's records still run concurrently.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    refund_shared::logging::init();
    let config = WorkerConfig::from_env().unwrap_or_else(|e| e.exit());
    let loader = refund_shared::http::aws_config_loader;
    // Read before the first event (an unreadable secret stops start-up), then again after
    // GATEWAY_TOKEN_TTL_S and after a 401, so a rotation reaches warm environments too.
    let tokens = TokenCache::load(
        config.gateway_token_secret_arn.as_deref(),
        loader(),
        config.gateway_token_ttl,
    )
    .await
    .unwrap_or_else(|e| e.exit());
    let gateway =
        HttpGateway::new(&config.gateway_addr, config.upstream_timeout)?.with_tokens(tokens);
    let sqs = aws::sqs_client(loader()).await;
    // REFUND_TABLE_NAME unset: no store, and the worker records nothing.
    let store = match &config.refund_table_name {
        Some(table) => Some(
            DynamoRefundStore::new(aws::dynamodb_client(loader()).await, table)
                .with_retention_days(config.record_retention_days),
        ),
        None => None,
    };
    // EVENT_BUS_NAME unset: no bus, and the worker announces nothing.
    let bus = match &config.event_bus_name {
        Some(bus) => Some(EventBridgeBus::new(
            aws::eventbridge_client(loader()).await,
            bus,
        )),
        None => None,
    };
    let worker = Worker::new(
        gateway,
        SqsQueue::new(sqs.clone(), &config.refund_queue_url),
        SqsQueue::new(sqs, &config.dead_letter_queue_url),
        Settings::from_config(&config),
    )
    .with_store(store)
    .with_bus(bus);
    run(service_fn(|event: LambdaEvent<_>| worker.handle(event))).await
}
