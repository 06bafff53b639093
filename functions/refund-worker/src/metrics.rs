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
//!
//! With an event bus configured, `EventsPublished` and `EventsUnpublished` count the
//! batch's refund events the bus took and refused (emitted as 0 too, like
//! `StatusWriteFailed`, so the alarm on `EventsUnpublished` has data to read).
//!
//! `VoidedNotRefunded` counts the messages dead-lettered with the void confirmed and the
//! refund not: the customer has neither ticket nor money (contract section 4). Emitted only
//! when there were any; its alarm pages.
//!
//! `UpstreamUnauthorized` counts the records whose void or refund still got a 401 after the
//! gateway re-read the token and repeated the call (the secret holds a token the services
//! refuse; the records are retried, never dead-lettered as rejected). Like
//! `ForeignIdempotencyKey` it is emitted only when there were any.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

use crate::{
    calls::Calls,
    outcome::{BatchOutcome, Disposition},
};

pub const NAMESPACE: &str = "TicketRefunds";
pub const SERVICE: &str = "refund-worker";

/// The EMF timestamp: milliseconds since the epoch. A clock set before 1970 (never on
/// Lambda) gives 0 rather than no metrics at all.
pub fn now_ms() -> u64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}

/// What a batch's metrics count, gathered in one pass over its records.
#[derive(Default)]
struct Tally {
    done: u64,
    retried: u64,
    dead_lettered: BTreeMap<&'static str, u64>,
    void_ms: Vec<f64>,
    refund_ms: Vec<f64>,
    /// Whether any record had a status to record: only then is `StatusWriteFailed` emitted.
    status_recorded: bool,
    status_write_failed: u64,
    foreign_keys: u64,
    unauthorized: u64,
    voided_not_refunded: u64,
}

impl Tally {
    fn of(outcome: &BatchOutcome) -> Self {
        let mut tally = Self::default();
        for record in &outcome.records {
            if let Some(recorded) = record.status_recorded {
                tally.status_recorded = true;
                tally.status_write_failed += u64::from(!recorded);
            }
            match &record.disposition {
                Disposition::Done => tally.done += 1,
                Disposition::DeadLettered { code, .. } => {
                    *tally.dead_lettered.entry(code.as_str()).or_default() += 1
                }
                // Every other ending hands the message back to the queue: a retry.
                _ => tally.retried += 1,
            }
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let (void, refund) = record.latencies();
            tally.void_ms.extend(void.map(ms));
            tally.refund_ms.extend(refund.map(ms));
            tally.foreign_keys += u64::from(record.foreign_key);
            let refused = record.calls.as_ref().is_some_and(Calls::unauthorized);
            tally.unauthorized += u64::from(refused);
            let dead_lettered = matches!(record.disposition, Disposition::DeadLettered { .. });
            let stranded = record
                .calls
                .as_ref()
                .is_some_and(Calls::voided_not_refunded);
            tally.voided_not_refunded += u64::from(dead_lettered && stranded);
        }
        tally
    }
}

/// The batch's metric lines: totals and upstream latencies under `Service`, and one line per
/// `error_code` dead-lettered under `Service` + `ErrorCode`. An empty batch emits nothing.
/// `ForeignIdempotencyKey` (commands whose key was not their ticket's K) is emitted when
/// there were any, and so is `UpstreamUnauthorized` (records refused with a 401 after the
/// token's re-read).
pub fn emf_lines(outcome: &BatchOutcome, timestamp_ms: u64) -> Vec<String> {
    if outcome.records.is_empty() {
        return Vec::new();
    }
    let tally = Tally::of(outcome);
    let total_dead_lettered: u64 = tally.dead_lettered.values().sum();
    let mut metrics = vec![
        json!({"Name": "RefundsDone", "Unit": "Count"}),
        json!({"Name": "RefundsRetried", "Unit": "Count"}),
        json!({"Name": "RefundsDeadLettered", "Unit": "Count"}),
    ];
    let mut totals = json!({
        "Service": SERVICE,
        "RefundsDone": tally.done,
        "RefundsRetried": tally.retried,
        "RefundsDeadLettered": total_dead_lettered,
    });
    for (name, values) in [
        ("VoidReceiptLatency", &tally.void_ms),
        ("RefundPaymentLatency", &tally.refund_ms),
    ] {
        if !values.is_empty() {
            metrics.push(json!({"Name": name, "Unit": "Milliseconds"}));
            totals[name] = json!(values);
        }
    }
    if tally.status_recorded {
        metrics.push(json!({"Name": "StatusWriteFailed", "Unit": "Count"}));
        totals["StatusWriteFailed"] = json!(tally.status_write_failed);
    }
    if let Some(events) = outcome.events {
        for (name, count) in [
            ("EventsPublished", events.published),
            ("EventsUnpublished", events.unpublished),
        ] {
            metrics.push(json!({"Name": name, "Unit": "Count"}));
            totals[name] = json!(count);
        }
    }
    if tally.foreign_keys > 0 {
        metrics.push(json!({"Name": "ForeignIdempotencyKey", "Unit": "Count"}));
        totals["ForeignIdempotencyKey"] = json!(tally.foreign_keys);
    }
    if tally.unauthorized > 0 {
        metrics.push(json!({"Name": "UpstreamUnauthorized", "Unit": "Count"}));
        totals["UpstreamUnauthorized"] = json!(tally.unauthorized);
    }
    if tally.voided_not_refunded > 0 {
        metrics.push(json!({"Name": "VoidedNotRefunded", "Unit": "Count"}));
        totals["VoidedNotRefunded"] = json!(tally.voided_not_refunded);
    }
    totals["_aws"] = envelope(timestamp_ms, &["Service"], metrics);

    let mut lines = vec![totals.to_string()];
    lines.extend(dead_lettered_lines(&tally, timestamp_ms));
    lines
}

/// One line per `error_code` dead-lettered, under `Service` + `ErrorCode`.
fn dead_lettered_lines(tally: &Tally, timestamp_ms: u64) -> Vec<String> {
    tally
        .dead_lettered
        .iter()
        .map(|(code, count)| {
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
            line.to_string()
        })
        .collect()
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
    use refund_shared::{
        port::PortFailure,
        queue::QueueError,
        verdict::{ErrorCode, UpstreamError},
    };

    use super::*;
    use crate::{
        calls::CallEnd,
        delivery::first_delivery,
        outcome::{EventTally, RecordOutcome},
    };

    /// A call answered `status` after `ms` milliseconds.
    fn call(status: u16, ms: u64) -> CallEnd {
        let result = match status {
            200..=299 => Ok(status),
            _ => Err(UpstreamError::Status(status)),
        };
        CallEnd::Made {
            result,
            sent_at: time::OffsetDateTime::UNIX_EPOCH,
            took: Duration::from_millis(ms),
        }
    }

    /// A record whose calls (when `latency_ms` is given) took that long and one more.
    fn record(disposition: Disposition, latency_ms: Option<u64>) -> RecordOutcome {
        RecordOutcome {
            calls: latency_ms.map(|ms| Calls {
                void: call(200, ms),
                refund: call(200, ms + 1),
            }),
            carries_calls: true,
            disposition,
            ..RecordOutcome::started(0, &first_delivery(""))
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
            events: None,
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
                        error: QueueError(PortFailure::Unavailable("x".into())),
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
            events: None,
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
            events: None,
            records: vec![with(None)],
        };
        let totals: Value = serde_json::from_str(&emf_lines(&without_store, 0)[0]).unwrap();
        assert!(totals.get("StatusWriteFailed").is_none());
        assert!(!names(&totals).contains(&"StatusWriteFailed".to_owned()));

        let with_store = BatchOutcome {
            events: None,
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
            events: None,
            records: vec![with(Some(true))],
        };
        let totals: Value = serde_json::from_str(&emf_lines(&all_recorded, 0)[0]).unwrap();
        assert_eq!(totals["StatusWriteFailed"], 0);
    }

    #[test]
    fn commands_with_a_foreign_key_are_counted_when_there_are_any() {
        let foreign = RecordOutcome {
            foreign_key: true,
            ..record(Disposition::Done, Some(10))
        };
        let lines = emf_lines(
            &BatchOutcome {
                events: None,
                records: vec![
                    foreign.clone(),
                    foreign,
                    record(Disposition::Done, Some(10)),
                ],
            },
            1,
        );
        let totals: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(totals["ForeignIdempotencyKey"], 2);
        let names = totals["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(names.contains("ForeignIdempotencyKey"), "{names}");

        let none = emf_lines(
            &BatchOutcome {
                events: None,
                records: vec![record(Disposition::Done, Some(10))],
            },
            1,
        );
        assert!(!none[0].contains("ForeignIdempotencyKey"), "{}", none[0]);
    }

    #[test]
    fn records_refused_with_a_401_are_counted_when_there_are_any() {
        let refused = |void: Option<u16>, refund: Option<u16>| RecordOutcome {
            calls: Some(Calls {
                void: void.map_or(CallEnd::Confirmed, |status| call(status, 10)),
                refund: refund.map_or(CallEnd::Confirmed, |status| call(status, 10)),
            }),
            ..record(
                Disposition::Retry {
                    visibility_s: Some(5),
                },
                Some(10),
            )
        };
        let lines = emf_lines(
            &BatchOutcome {
                events: None,
                records: vec![
                    refused(Some(401), Some(401)),
                    refused(Some(200), Some(401)),
                    refused(Some(403), Some(200)),
                    refused(None, None),
                ],
            },
            1,
        );
        let totals: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(totals["UpstreamUnauthorized"], 2);
        let names = totals["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(names.contains("UpstreamUnauthorized"), "{names}");

        let none = emf_lines(
            &BatchOutcome {
                events: None,
                records: vec![refused(Some(403), Some(200))],
            },
            1,
        );
        assert!(!none[0].contains("UpstreamUnauthorized"), "{}", none[0]);
    }

    /// A worker with a bus counts its events, as 0 too; a worker without one emits no
    /// event metric at all.
    #[test]
    fn events_are_counted_only_by_a_worker_with_a_bus() {
        let batch = |events: Option<EventTally>| BatchOutcome {
            events,
            records: vec![record(Disposition::Done, Some(10))],
        };
        let totals: Value = serde_json::from_str(&emf_lines(&batch(None), 0)[0]).unwrap();
        assert!(totals.get("EventsPublished").is_none());
        let names = |totals: &Value| totals["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(!names(&totals).contains("Events"), "{}", names(&totals));
        for (published, unpublished) in [(3, 1), (0, 0)] {
            let tally = EventTally {
                published,
                unpublished,
            };
            let totals: Value =
                serde_json::from_str(&emf_lines(&batch(Some(tally)), 0)[0]).unwrap();
            assert_eq!(totals["EventsPublished"], published);
            assert_eq!(totals["EventsUnpublished"], unpublished);
            for name in ["EventsPublished", "EventsUnpublished"] {
                assert!(names(&totals).contains(name), "{name}");
            }
        }
    }
}
