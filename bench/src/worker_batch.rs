//! Worker concurrency: the real handler and HTTP client, in-process, against the gateway
//! emulator with a fixed latency per call. A batch of ten should take about as long as
//! one ticket's two calls in sequence (the void, then the refund), because the records
//! run concurrently; and a record whose upstream hangs must not hold back the other nine. Then the same batch with
//! its refund events published (one `PutEvents` to [`FakeAws`], which answers at once), so
//! what the worker adds to announce ten refunds is measured without the bus's own answer
//! time, which a batch pays once and this machine cannot measure.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use aws_lambda_events::sqs::SqsEvent;
use refund_local::gateway::{self as emulator, Faults, GatewayConfig};
use refund_shared::{
    announce::{EventBridgeBus, EventBus},
    command::{RefundTicket, TicketId},
    correlation::CorrelationId,
    disabled::Disabled,
    gateway::{Gateway, HttpGateway, RefundCall},
    idempotency::IdempotencyKey,
    queue::InMemoryQueue,
    verdict::UpstreamResult,
};
use refund_worker::{Disposition, Settings, Worker};
use serde::Serialize;
use serde_json::json;

use crate::{
    fake_aws::FakeAws,
    stats::{Summary, micros},
};

#[derive(Debug, Serialize)]
pub struct Report {
    pub latency_ms: u64,
    pub upstream_timeout_ms: u64,
    pub repetitions: usize,
    /// One `void_receipt` call through the worker's client, in µs.
    pub one_call_us: Summary,
    /// A batch of one record (the void, then the refund), in µs.
    pub batch_of_one_us: Summary,
    /// A batch of ten records, in µs.
    pub batch_of_ten_us: Summary,
    /// A batch of ten records with their ten `TicketRefunded` events published, in µs.
    pub batch_of_ten_with_events_us: Summary,
    /// The batch of ten whose first record's upstream hangs past the timeout.
    pub hanging: Hanging,
}

#[derive(Debug, Serialize)]
pub struct Hanging {
    pub batch_us: u64,
    /// When each of the nine other records had both answers, in µs from the batch's start.
    pub others_done_us: Summary,
    pub hanging_record: String,
    pub others_done: usize,
}

fn record(ticket: &TicketId, n: usize) -> Result<serde_json::Value, String> {
    let body = RefundTicket::new(*ticket, time::OffsetDateTime::now_utc())
        .encode()
        .map_err(|e| e.to_string())?;
    Ok(json!({
        "messageId": format!("bench-{n}"),
        "receiptHandle": format!("rh-{n}"),
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1763880000000"},
        "messageAttributes": {
            "correlation_id": {"stringValue": format!("bench-{ticket}"), "dataType": "String"}
        },
        "eventSource": "aws:sqs",
    }))
}

fn batch(tickets: &[TicketId]) -> Result<SqsEvent, String> {
    let records: Vec<_> = tickets
        .iter()
        .enumerate()
        .map(|(n, t)| record(t, n))
        .collect::<Result<_, _>>()?;
    serde_json::from_value(json!({ "Records": records })).map_err(|e| e.to_string())
}

fn tickets(n: usize) -> Vec<TicketId> {
    (0..n)
        .map(|_| TicketId::from(uuid::Uuid::new_v4()))
        .collect()
}

/// The invocation deadline `d` from now, in milliseconds since the Unix epoch, as Lambda
/// gives it to the handler.
fn deadline_in(d: Duration) -> Result<u64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("the system clock is before 1970: {e}"))?;
    Ok(u64::try_from((now + d).as_millis()).unwrap_or(u64::MAX))
}

type BenchWorker<B = Disabled> = Worker<Timed, InMemoryQueue, InMemoryQueue, Disabled, B>;

/// The worker's HTTP client, noting when each call's answer arrived: the proof that the
/// nine healthy records finished while the tenth was still waiting.
struct Timed {
    inner: HttpGateway,
    answered: Mutex<Vec<(TicketId, Instant)>>,
}

impl Timed {
    fn note<T>(&self, call: &RefundCall, result: T) -> T {
        if let Ok(mut answered) = self.answered.lock() {
            answered.push((call.ticket_id, Instant::now()));
        }
        result
    }

    /// When the last answer for each ticket arrived.
    fn last_answers(&self) -> HashMap<TicketId, Instant> {
        let mut last = HashMap::new();
        if let Ok(answered) = self.answered.lock() {
            for (ticket, at) in answered.iter() {
                let entry = last.entry(*ticket).or_insert(*at);
                *entry = (*entry).max(*at);
            }
        }
        last
    }
}

impl Gateway for Timed {
    async fn void_receipt(&self, call: &RefundCall) -> UpstreamResult {
        let result = self.inner.void_receipt(call).await;
        self.note(call, result)
    }

    async fn refund_payment(&self, call: &RefundCall) -> UpstreamResult {
        let result = self.inner.refund_payment(call).await;
        self.note(call, result)
    }
}

/// One batch of `tickets`, in µs; an error unless every record is done and, with a bus,
/// every event was published.
async fn timed_batch<B: EventBus>(
    worker: &BenchWorker<B>,
    tickets: &[TicketId],
) -> Result<u64, String> {
    let event = batch(tickets)?;
    let started = Instant::now();
    let outcome = worker
        .handle_batch(event, deadline_in(Duration::from_secs(30))?)
        .await;
    let elapsed = started.elapsed();
    if let Some(failed) = outcome
        .records
        .iter()
        .find(|r| r.disposition != Disposition::Done)
    {
        return Err(format!("a record did not succeed: {failed:?}"));
    }
    if let Some(events) = outcome.events {
        if events.published as usize != tickets.len() || events.unpublished != 0 {
            return Err(format!("events of {} refunds: {events:?}", tickets.len()));
        }
    }
    Ok(micros(elapsed))
}

pub async fn run(latency_ms: u64, repetitions: usize) -> Result<Report, String> {
    let running = emulator::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        GatewayConfig {
            faults: Faults {
                latency_ms,
                ..Faults::default()
            },
            seed: Some(1),
            token: None,
        },
    )
    .await
    .map_err(|e| format!("gateway emulator: {e}"))?;
    let timeout = Duration::from_millis(refund_shared::config::DEFAULT_UPSTREAM_TIMEOUT_MS);
    let worker = bench_worker(&running, timeout)?;
    let aws = FakeAws::start()
        .await
        .map_err(|e| format!("fake AWS endpoint: {e}"))?;
    let announcing = bench_worker(&running, timeout)?.with_bus(Some(bus(&aws).await));
    // Connections are pooled across invocations in a warm environment: open them first.
    timed_batch(&worker, &tickets(10)).await?;
    timed_batch(&announcing, &tickets(10)).await?;

    let (mut one_call, mut one, mut ten, mut ten_events) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repetitions {
        one_call.push(timed_call(&worker).await?);
        one.push(timed_batch(&worker, &tickets(1)).await?);
        ten.push(timed_batch(&worker, &tickets(10)).await?);
        ten_events.push(timed_batch(&announcing, &tickets(10)).await?);
    }

    let hanging = hanging_batch(&worker, &running).await?;
    Ok(Report {
        latency_ms,
        upstream_timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        repetitions,
        one_call_us: Summary::of(one_call),
        batch_of_one_us: Summary::of(one),
        batch_of_ten_us: Summary::of(ten),
        batch_of_ten_with_events_us: Summary::of(ten_events),
        hanging,
    })
}

/// The worker's EventBridge adapter on the project's HTTP client, towards `aws`.
async fn bus(aws: &FakeAws) -> EventBridgeBus {
    let loader =
        testkit::loader_for(&aws.endpoint).http_client(refund_shared::http::aws_http_client());
    EventBridgeBus::new(
        refund_shared::aws::eventbridge_client(loader).await,
        "ticket-refunds",
    )
}

/// The real worker, with in-memory queues and the real HTTP client towards `running`.
fn bench_worker(
    running: &emulator::RunningGateway,
    timeout: Duration,
) -> Result<BenchWorker, String> {
    let url = running.url().parse().map_err(|e| format!("{e}"))?;
    let gateway = Timed {
        inner: HttpGateway::new(&url, timeout).map_err(|e| e.to_string())?,
        answered: Mutex::new(Vec::new()),
    };
    Ok(Worker::new(
        gateway,
        InMemoryQueue::new(),
        InMemoryQueue::new(),
        Settings {
            max_receive_count: 15,
            retry_base_s: 5,
            retry_max_s: 900,
            deadline_margin: Duration::from_millis(2000),
            max_concurrent_records: refund_worker::MAX_CONCURRENT_RECORDS,
            jitter: || 0.0,
        },
    ))
}

/// One `void_receipt` call through the worker's own client, in µs.
async fn timed_call(worker: &BenchWorker) -> Result<u64, String> {
    let ticket = tickets(1);
    let call = RefundCall {
        ticket_id: ticket[0],
        idempotency_key: IdempotencyKey::for_ticket(ticket[0]),
        correlation_id: CorrelationId::parse("bench-one-call").map_err(|e| e.to_string())?,
        trace: None,
    };
    let started = Instant::now();
    worker_gateway(worker)
        .void_receipt(&call)
        .await
        .map_err(|e| format!("one call: {e:?}"))?;
    Ok(micros(started.elapsed()))
}

fn worker_gateway(worker: &BenchWorker) -> &HttpGateway {
    &worker.gateway().inner
}

async fn hanging_batch(
    worker: &BenchWorker,
    running: &emulator::RunningGateway,
) -> Result<Hanging, String> {
    let batch_tickets = tickets(10);
    let hung = batch_tickets[0].to_string();
    running
        .gateway
        .apply_update(emulator::FaultsUpdate {
            slow_tickets: Some(vec![hung.clone()]),
            // Well past the client's timeout: the call is given up, not answered.
            slow_ms: Some(refund_shared::config::DEFAULT_UPSTREAM_TIMEOUT_MS * 2),
            ..emulator::FaultsUpdate::default()
        })
        .map_err(|e| e.to_string())?;
    let event = batch(&batch_tickets)?;
    let started = Instant::now();
    let outcome = worker
        .handle_batch(event, deadline_in(Duration::from_secs(30))?)
        .await;
    let batch_us = micros(started.elapsed());
    let answered = worker.gateway().last_answers();
    let mut others = Vec::new();
    for record in &outcome.records {
        let is_hung = record.ticket_id.map(|t| t.to_string()) == Some(hung.clone());
        match (&record.disposition, is_hung) {
            (Disposition::Done, false) => {
                let ticket = record
                    .ticket_id
                    .and_then(|t| answered.get(&t))
                    .ok_or("a healthy record has no answer on record")?;
                others.push(micros(ticket.saturating_duration_since(started)));
            }
            (Disposition::Done, true) => {
                return Err("the hanging record succeeded: the fault did not apply".to_owned());
            }
            (_, true) => {}
            (other, false) => return Err(format!("a healthy record ended {other:?}")),
        }
    }
    Ok(Hanging {
        batch_us,
        others_done: others.len(),
        others_done_us: Summary::of(others),
        hanging_record: hung,
    })
}
