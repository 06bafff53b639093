//! `refund-worker`: SQS event source → receipts and payments services. See `handler`.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use refund::{config::WorkerConfig, gateway::HttpGateway, queue, secret};
use refund_worker::{Settings, Worker};

#[tokio::main]
async fn main() -> Result<(), Error> {
    refund::logging::init();
    let config = WorkerConfig::from_env().unwrap_or_else(|e| e.exit());
    let aws = || aws_config::defaults(aws_config::BehaviorVersion::latest());
    // Read once, before the first event: rotation reaches new execution environments.
    let token = secret::load_gateway_token(config.gateway_token_secret_arn.as_deref(), aws())
        .await
        .unwrap_or_else(|e| e.exit());
    let gateway =
        HttpGateway::new(&config.gateway_addr, config.upstream_timeout)?.with_token(token);
    let client = queue::sqs_client(aws()).await;
    let worker = Worker::new(
        gateway,
        queue::SqsQueue::new(client.clone(), &config.refund_queue_url),
        queue::SqsQueue::new(client, &config.dead_letter_queue_url),
        Settings::from_config(&config),
    );
    run(service_fn(|event: LambdaEvent<_>| worker.handle(event))).await
}
