//! The `events/` fixtures are the SQS events Lambda sends, and the handler settles them.

mod common;

use aws_lambda_events::event::sqs::SqsEvent;
use common::*;
use refund_shared::{command::RefundTicket, verdict::ErrorCode};
use refund_worker::Disposition;

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn the_one_record_fixture_is_a_refund_api_command_and_is_done() {
    let event = fixture("sqs-one-record.json");
    let command = RefundTicket::decode(event.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(
        command.header.idempotency_key,
        key_of(&command.ticket_id.to_string())
    );
    assert_eq!(event.records[0].event_source.as_deref(), Some("aws:sqs"));
    let worker = in_memory_worker(ScriptedGateway::new());

    let outcome = worker.handle_batch(event, far_deadline()).await;

    assert_eq!(outcome.records.len(), 1);
    assert_eq!(outcome.records[0].disposition, Disposition::Done);
    assert_eq!(outcome.records[0].correlation_id, "corr-smoke-1");
}

#[tokio::test]
async fn the_mixed_batch_fixture_dead_letters_its_malformed_bodies() {
    let worker = in_memory_worker(ScriptedGateway::new());

    let outcome = worker
        .handle_batch(fixture("sqs-mixed-batch.json"), far_deadline())
        .await;

    assert!(outcome.failed_message_ids().is_empty());
    let codes: Vec<Option<ErrorCode>> = outcome.records.iter().map(|r| r.error_code()).collect();
    assert_eq!(
        codes,
        [
            None,
            Some(ErrorCode::InvalidCommand),
            Some(ErrorCode::InvalidCommand),
            None
        ]
    );
    assert_eq!(outcome.records[3].receive_count, 3);
    let (gateway, _, dlq) = worker.into_parts();
    assert_eq!(gateway.seen().len(), 4);
    assert_eq!(dlq.sent().len(), 2);
}
