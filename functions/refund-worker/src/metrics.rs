//! CloudWatch metrics as embedded-metric-format (EMF) log lines.
//!
//! A line on stdout with an `_aws` member becomes metrics without an API call, an SDK or
//! an agent: nothing added to start-up or to the batch's latency. The template's alarms
//! read `RefundsDone` and `RefundsRetried` under the `Service` dimension.
//!
//! With a status store configured, `StatusWriteFailed` counts the records whose status
//! could not be (fully) recorded: the refunds went on, but their status lags until a later
//! write. It is emitted (as 0 too) only by a worker that records statuses, so a worker
//! without a store emits exactly the lines it always did.

use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

use crate::handler::{BatchOutcome, Disposition};

pub const NAMESPACE: &str = "TicketRefunds";
pub const SERVICE: &str = "refund-worker";

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The batch's metric lines: totals and upstream latencies under `Service`, and one line per
/// `error_code` dead-lettered under `Service` + `ErrorCode`. An empty batch emits nothing.
pub fn emf_lines(outcome: &BatchOutcome, timestamp_ms: u64) -> Vec<String> {
    if outcome.records.is_empty() {
        return Vec::new();
    }
    let mut done = 0u64;
    let mut retried = 0u64;
    let mut dead_lettered: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut void_ms = Vec::new();
    let mut refund_ms = Vec::new();
    let mut status_recorded = false;
    let mut status_write_failed = 0u64;
    for record in &outcome.records {
        if let Some(recorded) = record.status_recorded {
            status_recorded = true;
            status_write_failed += u64::from(!recorded);
        }
        match &record.disposition {
            Disposition::Done => done += 1,
            Disposition::DeadLettered { code, .. } => {
                *dead_lettered.entry(code.as_str()).or_default() += 1
            }
            // Every other ending hands the message back to the queue: a retry.
            _ => retried += 1,
        }
        void_ms.extend(record.void_latency.map(|d| d.as_secs_f64() * 1000.0));
        refund_ms.extend(record.refund_latency.map(|d| d.as_secs_f64() * 1000.0));
    }
    let total_dead_lettered: u64 = dead_lettered.values().sum();

    let mut metrics = vec![
        json!({"Name": "RefundsDone", "Unit": "Count"}),
        json!({"Name": "RefundsRetried", "Unit": "Count"}),
        json!({"Name": "RefundsDeadLettered", "Unit": "Count"}),
    ];
    let mut totals = json!({
        "Service": SERVICE,
        "RefundsDone": done,
        "RefundsRetried": retried,
        "RefundsDeadLettered": total_dead_lettered,
    });
    for (name, values) in [
        ("VoidReceiptLatency", void_ms),
        ("RefundPaymentLatency", refund_ms),
    ] {
        if !values.is_empty() {
            metrics.push(json!({"Name": name, "Unit": "Milliseconds"}));
            totals[name] = json!(values);
        }
    }
    if status_recorded {
        metrics.push(json!({"Name": "StatusWriteFailed", "Unit": "Count"}));
        totals["StatusWriteFailed"] = json!(status_write_failed);
    }
    totals["_aws"] = envelope(timestamp_ms, &["Service"], metrics);

    let mut lines = vec![totals.to_string()];
    for (code, count) in dead_lettered {
        let mut line = json!({
            "Service": SERVICE,
            "ErrorCode": code,
            "RefundsDeadLettered": count,
        });
        line["_aws"] = envelope(
            timestamp_ms,
            &["Service", "ErrorCode"],
            vec![json!({"Name": "RefundsDeadLettered", "Unit": "Count"})],
        );
        lines.push(line.to_string());
    }
    lines
}

fn envelope(timestamp_ms: u64, dimensions: &[&str], metrics: Vec<Value>) -> Value {
    json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": [dimensions],
            "Metrics": metrics,
        }],
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use refund::{outcome::ErrorCode, queue::QueueError};

    use super::*;
    use crate::handler::RecordOutcome;

    fn record(disposition: Disposition, latency_ms: Option<u64>) -> RecordOutcome {
        RecordOutcome {
            message_id: Some("m".into()),
            ticket_id: None,
            correlation_id: "c".into(),
            receive_count: 1,
            class: None,
            error: None,
            void_status: None,
            refund_status: None,
            void_latency: latency_ms.map(Duration::from_millis),
            refund_latency: latency_ms.map(|ms| Duration::from_millis(ms + 1)),
            disposition,
            status_recorded: None,
            status_error: None,
        }
    }

    fn dead(code: ErrorCode) -> Disposition {
        Disposition::DeadLettered {
            code,
            dead_letter_message_id: "d".into(),
        }
    }

    #[test]
    fn a_batch_becomes_totals_latencies_and_one_line_per_error_code() {
        let outcome = BatchOutcome {
            records: vec![
                record(Disposition::Done, Some(20)),
                record(Disposition::Done, Some(30)),
                record(
                    Disposition::Retry {
                        visibility_s: Some(5),
                    },
                    Some(5000),
                ),
                record(Disposition::Unfinished, None),
                record(
                    Disposition::DeadLetterFailed {
                        code: ErrorCode::VoidRejected,
                        error: QueueError::Unavailable("x".into()),
                    },
                    Some(10),
                ),
                record(dead(ErrorCode::InvalidCommand), None),
                record(dead(ErrorCode::InvalidCommand), None),
                record(dead(ErrorCode::RefundRejected), Some(40)),
            ],
        };
        let lines: Vec<Value> = emf_lines(&outcome, 1_795_412_349_000)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        let totals = &lines[0];
        assert_eq!(totals["RefundsDone"], 2);
        assert_eq!(totals["RefundsRetried"], 3);
        assert_eq!(totals["RefundsDeadLettered"], 3);
        assert_eq!(
            totals["VoidReceiptLatency"],
            json!([20.0, 30.0, 5000.0, 10.0, 40.0])
        );
        assert_eq!(
            totals["RefundPaymentLatency"],
            json!([21.0, 31.0, 5001.0, 11.0, 41.0])
        );
        let directive = &totals["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(totals["_aws"]["Timestamp"], 1_795_412_349_000u64);
        assert_eq!(directive["Namespace"], "TicketRefunds");
        assert_eq!(directive["Dimensions"], json!([["Service"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        // Every declared metric has a value on the line, as EMF requires.
        for name in &names {
            assert!(!totals[*name].is_null(), "{name}");
        }
        assert_eq!(totals["Service"], "refund-worker");

        assert_eq!(lines[1]["ErrorCode"], "invalid_command");
        assert_eq!(lines[1]["RefundsDeadLettered"], 2);
        assert_eq!(lines[2]["ErrorCode"], "refund_rejected");
        assert_eq!(
            lines[2]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service", "ErrorCode"]])
        );
    }

    #[test]
    fn no_latency_metric_without_a_call_and_nothing_for_an_empty_batch() {
        let outcome = BatchOutcome {
            records: vec![record(dead(ErrorCode::InvalidCommand), None)],
        };
        let totals: Value = serde_json::from_str(&emf_lines(&outcome, 0)[0]).unwrap();
        assert!(totals.get("VoidReceiptLatency").is_none());
        assert_eq!(
            totals["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert!(emf_lines(&BatchOutcome::default(), 0).is_empty());
    }

    #[test]
    fn status_write_failures_are_counted_only_by_a_worker_that_records_statuses() {
        let names = |totals: &Value| -> Vec<String> {
            totals["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["Name"].as_str().unwrap().to_owned())
                .collect()
        };
        let with = |recorded: Option<bool>| RecordOutcome {
            status_recorded: recorded,
            ..record(Disposition::Done, Some(10))
        };

        let without_store = BatchOutcome {
            records: vec![with(None)],
        };
        let totals: Value = serde_json::from_str(&emf_lines(&without_store, 0)[0]).unwrap();
        assert!(totals.get("StatusWriteFailed").is_none());
        assert!(!names(&totals).contains(&"StatusWriteFailed".to_owned()));

        let with_store = BatchOutcome {
            records: vec![
                with(Some(true)),
                with(Some(false)),
                with(None),
                with(Some(false)),
            ],
        };
        let totals: Value = serde_json::from_str(&emf_lines(&with_store, 0)[0]).unwrap();
        assert_eq!(totals["StatusWriteFailed"], 2);
        assert!(names(&totals).contains(&"StatusWriteFailed".to_owned()));

        let all_recorded = BatchOutcome {
            records: vec![with(Some(true))],
        };
        let totals: Value = serde_json::from_str(&emf_lines(&all_recorded, 0)[0]).unwrap();
        assert_eq!(totals["StatusWriteFailed"], 0);
    }
}
