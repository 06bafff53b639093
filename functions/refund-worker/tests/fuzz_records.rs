//! Fuzzing the worker's record decoding with proptest (cargo-fuzz needs a nightly
//! toolchain, which this project does not install): arbitrary SQS records, as Lambda's
//! event JSON, through the real handler with in-memory ports.
//!
//! For every batch: nothing panics, every record ends in exactly one disposition in input
//! order, `batchItemFailures` names exactly the records that stay on the queue and never
//! an empty id, poison always goes to the DLQ as `invalid_command` (or stays on the queue
//! when the copy fails), and no log line carries anything from a body.
//!
//! The number of cases is `PROPTEST_CASES` (default 256), so `make chaos` can run a longer
//! fixed-length run: `PROPTEST_CASES=20000 cargo test -p refund-worker --test fuzz_records`.

use std::{
    collections::HashSet,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lambda_events::event::sqs::SqsEvent;
use proptest::prelude::*;
use refund_shared::{
    command::RefundTicket,
    gateway::{Gateway, RefundCall},
    port::PortFailure,
    queue::{InMemoryQueue, QueueError},
    verdict::{ErrorCode, UpstreamError, UpstreamResult, judge},
};
use refund_worker::{Disposition, Settings, Worker};
use serde_json::{Value, json};

/// Put into bodies wherever a value can go; it must never reach a log line.
const MARK: &str = "Pii-MARK-4111111111111111";
const MAX_RECEIVE_COUNT: u32 = 15;
const TICKET_FIELDS: &str = "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f";

/// `PROPTEST_CASES`, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Answers every void with one result and every refund with another, and counts calls.
#[derive(Debug)]
struct FixedGateway {
    void: UpstreamResult,
    refund: UpstreamResult,
    calls: Mutex<Vec<String>>,
}

impl FixedGateway {
    fn answer(&self, call: &RefundCall, result: &UpstreamResult) -> UpstreamResult {
        self.calls.lock().unwrap().push(call.ticket_id.to_string());
        result.clone()
    }
}

impl Gateway for FixedGateway {
    async fn void_receipt(&self, call: &RefundCall) -> UpstreamResult {
        self.answer(call, &self.void)
    }

    async fn refund_payment(&self, call: &RefundCall) -> UpstreamResult {
        self.answer(call, &self.refund)
    }
}

fn upstream_result() -> impl Strategy<Value = UpstreamResult> {
    prop_oneof![
        3 => (200u16..300).prop_map(Ok),
        3 => (100u16..600).prop_map(|s| if (200..300).contains(&s) { Ok(s) } else { Err(UpstreamError::Status(s)) }),
        1 => Just(Err(UpstreamError::Timeout)),
        1 => Just(Err(UpstreamError::Connect("refused".into()))),
        1 => Just(Err(UpstreamError::Transport("reset".into()))),
    ]
}

/// What the generator knows about a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Valid,
    Poison,
    /// Arbitrary text: the decoder decides.
    Unknown,
}

fn uuid_text() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string())
}

fn command_json() -> impl Strategy<Value = Value> {
    (uuid_text(), uuid_text(), uuid_text()).prop_map(|(id, key, ticket)| {
        json!({
            "header": {"id": id, "published_at": "2026-11-23T10:15:30.123456789+05:30", "idempotency_key": key},
            "ticket_id": ticket,
        })
    })
}

/// One way to break a command, each putting `MARK` where a value would be.
fn break_command(mut command: Value, how: u8) -> Value {
    let mark = json!(format!("{MARK}-{how}"));
    match how % 12 {
        0 => command["ticket_id"] = mark,
        1 => command["header"]["id"] = mark,
        2 => command["header"]["published_at"] = mark,
        3 => command["header"] = mark,
        4 => command["header"]["idempotency_key"] = json!(" "),
        5 => command["ticket_id"] = json!(4111111111111111u64),
        6 => {
            command.as_object_mut().unwrap().remove("ticket_id");
            command["ticket"] = mark;
        }
        7 => {
            command["header"].as_object_mut().unwrap().remove("id");
            command["note"] = mark;
        }
        8 => command["ticket_id"] = json!(format!("{TICKET_FIELDS}{MARK}")),
        9 => command["header"]["idempotency_key"] = json!([MARK]),
        10 => command = json!([command, MARK]),
        _ => command["header"]["published_at"] = json!(format!("2026-13-45T99:99:99Z{MARK}")),
    }
    command
}

fn body() -> impl Strategy<Value = (Option<String>, Kind)> {
    prop_oneof![
        3 => command_json().prop_map(|c| (Some(c.to_string()), Kind::Valid)),
        // Unknown fields are ignored, and never logged.
        1 => command_json().prop_map(|mut c| {
            c["extra"] = json!({"note": MARK});
            (Some(c.to_string()), Kind::Valid)
        }),
        4 => (command_json(), any::<u8>())
            .prop_map(|(c, how)| (Some(break_command(c, how).to_string()), Kind::Poison)),
        // A valid command cut short: not JSON any more.
        1 => (command_json(), any::<prop::sample::Index>()).prop_map(|(c, at)| {
            let text = format!("{c}{MARK}");
            let cut = at.index(text.len() - 1);
            (Some(text[..cut].to_owned() + MARK), Kind::Poison)
        }),
        1 => Just((None, Kind::Poison)),
        1 => Just((Some(String::new()), Kind::Poison)),
        2 => ".{0,120}".prop_map(|s| (Some(format!("{s}{MARK}")), Kind::Unknown)),
        1 => any::<Vec<u8>>().prop_map(|b| (Some(String::from_utf8_lossy(&b).into_owned()), Kind::Unknown)),
    ]
}

fn optional_id() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => "[a-f0-9-]{1,40}".prop_map(Some),
        1 => Just(None),
        1 => Just(Some(String::new())),
        1 => ".{1,20}".prop_map(Some),
    ]
}

fn receive_count() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => (0u32..=2 * MAX_RECEIVE_COUNT).prop_map(|n| Some(n.to_string())),
        1 => Just(None),
        1 => ".{0,12}".prop_map(Some),
        1 => Just(Some("99999999999999999999".to_owned())),
        1 => Just(Some(" 3 ".to_owned())),
    ]
}

fn message_attribute() -> impl Strategy<Value = Value> {
    let data_type = prop_oneof![
        Just(Some("String".to_owned())),
        Just(Some("String.custom".to_owned())),
        Just(Some("Number".to_owned())),
        Just(Some("Binary".to_owned())),
        Just(None),
        "[A-Za-z.]{0,12}".prop_map(Some),
    ];
    (data_type, proptest::option::of("[ -~]{0,40}")).prop_map(|(data_type, value)| {
        let mut attribute = json!({"stringListValues": [], "binaryListValues": []});
        if let Some(data_type) = data_type {
            attribute["dataType"] = json!(data_type);
        }
        if let Some(value) = value {
            attribute["stringValue"] = json!(value);
        }
        attribute
    })
}

fn record() -> impl Strategy<Value = (Value, Kind)> {
    (
        optional_id(),
        optional_id(),
        body(),
        receive_count(),
        proptest::collection::hash_map("[a-z_]{1,16}", message_attribute(), 0..12),
        proptest::option::of(message_attribute()),
    )
        .prop_map(
            |(message_id, receipt_handle, (body, kind), count, mut attributes, correlation)| {
                if let Some(correlation) = correlation {
                    attributes.insert("correlation_id".to_owned(), correlation);
                }
                let mut record = json!({
                    "messageAttributes": attributes,
                    "attributes": {"SentTimestamp": "1763880000000"},
                    "eventSource": "aws:sqs",
                });
                for (field, value) in [
                    ("messageId", message_id),
                    ("receiptHandle", receipt_handle),
                    ("body", body),
                ] {
                    if let Some(value) = value {
                        record[field] = json!(value);
                    }
                }
                if let Some(count) = count {
                    record["attributes"]["ApproximateReceiveCount"] = json!(count);
                }
                (record, kind)
            },
        )
}

/// Everything the handler logs while `run` runs, at every level.
fn captured_logs<T>(run: impl FnOnce() -> T) -> (T, String) {
    let buffer = testkit::LogBuffer::default();
    let result = tracing::subscriber::with_default(buffer.subscriber(tracing::Level::TRACE), run);
    (result, buffer.text())
}

fn far_deadline_ms() -> u64 {
    (SystemTime::now() + Duration::from_secs(600))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn every_record_ends_in_one_disposition_and_poison_is_dead_lettered(
        records in proptest::collection::vec(record(), 0..12),
        void in upstream_result(),
        refund in upstream_result(),
        dead_letter_fails in proptest::bool::weighted(0.2),
        visibility_fails in proptest::bool::weighted(0.2),
    ) {
        let (values, kinds): (Vec<Value>, Vec<Kind>) = records.into_iter().unzip();
        let event: SqsEvent = serde_json::from_value(json!({"Records": values})).unwrap();
        let messages = event.records.clone();
        let failing = || QueueError(PortFailure::Unavailable("down".into()));
        let worker = Worker::new(
            FixedGateway { void: void.clone(), refund: refund.clone(), calls: Mutex::default() },
            if visibility_fails { InMemoryQueue::failing(failing()) } else { InMemoryQueue::new() },
            if dead_letter_fails { InMemoryQueue::failing(failing()) } else { InMemoryQueue::new() },
            Settings {
                max_receive_count: MAX_RECEIVE_COUNT,
                retry_base_s: 5,
                retry_max_s: 900,
                deadline_margin: Duration::from_millis(2000),
                max_concurrent_records: 4,
                jitter: rand::random::<f64>,
            },
        );
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let (outcome, logs) =
            captured_logs(|| runtime.block_on(worker.handle_batch(event, far_deadline_ms())));

        // One outcome per record, in input order.
        prop_assert_eq!(outcome.records.len(), messages.len());
        let mut valid_records = 0;
        for ((message, kind), record) in messages.iter().zip(&kinds).zip(&outcome.records) {
            let expected_id = message.message_id.clone().filter(|id| !id.is_empty());
            prop_assert_eq!(&record.message_id, &expected_id);
            prop_assert!(
                !matches!(record.disposition, Disposition::Panicked | Disposition::Unfinished),
                "{:?}", record
            );
            let body = message.body.clone().unwrap_or_default();
            let poison = RefundTicket::decode(&body).is_err();
            match kind {
                Kind::Valid => prop_assert!(!poison, "{}", body),
                Kind::Poison => prop_assert!(poison, "{}", body),
                Kind::Unknown => {}
            }
            if poison {
                prop_assert_eq!(record.error_code(), Some(ErrorCode::InvalidCommand), "{:?}", record);
                prop_assert_eq!(record.ticket_id, None);
                prop_assert_eq!(
                    record.disposition.stays_on_queue(),
                    dead_letter_fails,
                    "poison leaves the queue exactly when its copy is made: {:?}", record
                );
                let error = record.error().unwrap_or_default();
                prop_assert!(!error.is_empty() && !error.contains(MARK), "{}", error);
                continue;
            }
            valid_records += 1;
            let receive_count = message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.trim().parse::<u32>().ok())
                .filter(|n| *n >= 1)
                .unwrap_or(1);
            prop_assert_eq!(record.receive_count, receive_count);
            // The refund is called, and judged, only once the void is confirmed.
            let refund_error = refund.as_ref().err().filter(|_| void.is_ok());
            match judge(void.as_ref().err(), refund_error, receive_count, MAX_RECEIVE_COUNT) {
                Ok(()) => prop_assert_eq!(&record.disposition, &Disposition::Done),
                Err(failure) => match failure.error_code() {
                    None => prop_assert!(matches!(record.disposition, Disposition::Retry { .. }), "{:?}", record),
                    Some(code) => {
                        prop_assert_eq!(record.error_code(), Some(code));
                        prop_assert_eq!(record.disposition.stays_on_queue(), dead_letter_fails);
                    }
                },
            }
        }

        // batchItemFailures: exactly the named records that stay, never an empty id.
        let response = outcome.response();
        let reported: Vec<String> =
            response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
        prop_assert!(reported.iter().all(|id| !id.is_empty()));
        let staying: Vec<String> = outcome
            .records
            .iter()
            .filter(|r| r.disposition.stays_on_queue())
            .filter_map(|r| r.message_id.clone())
            .collect();
        prop_assert_eq!(&reported, &staying);

        // Poison never reaches the services; every valid record makes the void, and the
        // refund only once the void is confirmed.
        let (gateway, _source, dead_letter_queue) = worker.into_parts();
        let calls_per_record = if void.is_ok() { 2 } else { 1 };
        prop_assert_eq!(gateway.calls.lock().unwrap().len(), calls_per_record * valid_records);

        // Every copy that was made is one the outcome reports, with the contract's attributes.
        let copies = dead_letter_queue.sent();
        let dead_lettered = outcome
            .records
            .iter()
            .filter(|r| matches!(r.disposition, Disposition::DeadLettered { .. }))
            .count();
        prop_assert_eq!(copies.len(), dead_lettered);
        let poison_bodies: HashSet<String> = messages
            .iter()
            .map(|m| m.body.clone().unwrap_or_default())
            .filter(|b| RefundTicket::decode(b).is_err())
            .collect();
        for copy in &copies {
            let attributes = &copy.attributes;
            prop_assert!(attributes.len() <= 10, "{:?}", attributes);
            prop_assert!(attributes.values().all(|v| !v.is_empty()), "{:?}", attributes);
            let message = &attributes["error_message"];
            prop_assert!(message.len() <= 1024);
            prop_assert!(!attributes["source_message_id"].is_empty());
            if poison_bodies.contains(&copy.body) {
                prop_assert_eq!(attributes["error_code"].as_str(), "invalid_command");
            }
        }

        // No log line carries anything from a body.
        prop_assert!(!logs.contains(MARK), "a body reached the logs:\n{}", logs);
    }
}
