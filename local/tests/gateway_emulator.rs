//! The gateway emulator, started in-process on a free port and driven over HTTP.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use clap::Parser;
use refund_local::gateway::{
    self, Effect, Faults, GatewayArgs, GatewayConfig, MAX_TRACE_HEADER_BYTES,
    MAX_TRACES_PER_EFFECT, RunningGateway, Stats, TicketCalls, Trace,
};
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

const TICKET: &str = "5f4b8a0e-8a4e-4a55-9f0f-3c1f6a8a1b2c";
const OTHER_TICKET: &str = "0b8a5a47-7f4c-4e39-8c7e-1d8f0c2e9a11";
const KEY: &str = "0d8f9b63-4d5c-5b2e-9a31-6c1e2f7a8b90";

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start(faults: Faults, seed: u64) -> RunningGateway {
    gateway::spawn(
        loopback(),
        GatewayConfig {
            faults,
            seed: Some(seed),
            token: None,
        },
    )
    .await
    .expect("emulator starts")
}

thread_local! {
    /// One client per test: a client's pooled connections belong to the runtime that
    /// opened them, and each test has its own runtime on its own thread.
    static CLIENT: reqwest::Client = refund_shared::http::client_builder()
        .build()
        .expect("client");
}

/// An emulator whose faults are the defaults changed by `change`.
async fn start_faulty(change: impl FnOnce(&mut Faults), seed: u64) -> RunningGateway {
    let mut faults = Faults::default();
    change(&mut faults);
    start(faults, seed).await
}

fn client() -> reqwest::Client {
    CLIENT.with(Clone::clone)
}

type Answer = reqwest::Result<reqwest::Response>;

/// A service's path and the body fields of its ticket and key, as the Go clients send them.
const VOID: [&str; 3] = ["/receipts-api/void-receipt", "ticket_id", "idempotent_id"];
const REFUND: [&str; 3] = [
    "/payments-api/refunds",
    "payment_reference",
    "deduplication_id",
];

/// One call to `service` for `ticket` with `key`, with the correlation id.
async fn call(
    gw: &RunningGateway,
    service: [&str; 3],
    ticket: &str,
    key: &str,
    correlation: &str,
) -> Answer {
    call_with(gw, service, [ticket, key, correlation], &[]).await
}

/// The same call, with more headers.
async fn call_with(
    gw: &RunningGateway,
    service: [&str; 3],
    [ticket, key, correlation]: [&str; 3],
    headers: &[(&str, HeaderValue)],
) -> Answer {
    let [path, ticket_field, key_field] = service;
    let mut request = client()
        .put(format!("{}{path}", gw.url()))
        .header("Correlation-ID", correlation)
        .json(
            &json!({ticket_field: ticket, "reason": "customer requested refund", key_field: key}),
        );
    for (name, value) in headers {
        request = request.header(*name, value.clone());
    }
    request.send().await
}

async fn void(gw: &RunningGateway, ticket: &str, key: &str, correlation: &str) -> Answer {
    call(gw, VOID, ticket, key, correlation).await
}

async fn refund(gw: &RunningGateway, ticket: &str, key: &str, correlation: &str) -> Answer {
    call(gw, REFUND, ticket, key, correlation).await
}

/// The JSON answer to a void of `TICKET` under `KEY` (correlation id `c`).
async fn void_answer(gw: &RunningGateway) -> Value {
    let answer = void(gw, TICKET, KEY, "c").await.expect("void");
    answer.json().await.expect("json")
}

/// The status of a call of `ticket` with `key` (correlation id `c`).
async fn status_of(gw: &RunningGateway, service: [&str; 3], ticket: &str, key: &str) -> u16 {
    let answer = call(gw, service, ticket, key, "c").await;
    answer.expect("answered").status().as_u16()
}

async fn get_json(gw: &RunningGateway, path: &str) -> Value {
    let response = client()
        .get(format!("{}{path}", gw.url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("JSON")
}

async fn voided(gw: &RunningGateway) -> Vec<Effect> {
    serde_json::from_value(get_json(gw, "/receipts-api/voided").await["items"].clone())
        .expect("items")
}

async fn refunded(gw: &RunningGateway) -> Vec<Effect> {
    serde_json::from_value(get_json(gw, "/payments-api/refunds").await["items"].clone())
        .expect("items")
}

async fn stats(gw: &RunningGateway) -> Stats {
    serde_json::from_value(get_json(gw, "/admin/stats").await).expect("stats")
}

async fn set_faults(gw: &RunningGateway, faults: Value) -> reqwest::Response {
    client()
        .put(format!("{}/admin/faults", gw.url()))
        .json(&faults)
        .send()
        .await
        .expect("PUT /admin/faults")
}

fn unix_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_millis() as u64
}

#[tokio::test]
async fn health_answers_200() {
    let gw = start(Faults::default(), 1).await;
    assert_eq!(get_json(&gw, "/health").await, json!({"status": "ok"}));
}

#[tokio::test]
async fn a_replay_answers_200_and_counts_a_call_not_an_effect() {
    let gw = start(Faults::default(), 1).await;
    let before = unix_ms();
    for correlation in ["corr-1", "corr-2", "corr-1"] {
        assert_eq!(
            void(&gw, TICKET, KEY, correlation)
                .await
                .expect("void")
                .status(),
            200
        );
        assert_eq!(
            refund(&gw, TICKET, KEY, correlation)
                .await
                .expect("refund")
                .status(),
            200
        );
    }
    let after = unix_ms();
    let (voided, refunded) = (voided(&gw).await, refunded(&gw).await);
    let expected = |at_ms| Effect {
        key: KEY.into(),
        ticket_id: TICKET.into(),
        reason: "customer requested refund".into(),
        correlation_id: Some("corr-1".into()),
        correlation_ids: vec!["corr-1".into(), "corr-2".into()],
        trace: Trace::default(),
        traces: vec![],
        calls: 3,
        at_ms,
    };
    for effects in [&voided, &refunded] {
        let at_ms = effects[0].at_ms;
        assert!(
            (before..=after).contains(&at_ms),
            "{at_ms} is when the effect happened"
        );
        assert_eq!(effects, &vec![expected(at_ms)]);
    }
    let stats = stats(&gw).await;
    assert_eq!((stats.calls, stats.applied, stats.replays), (6, 2, 4));
}

#[tokio::test]
async fn the_answer_says_whether_it_was_a_replay() {
    let gw = start(Faults::default(), 1).await;
    let first = void_answer(&gw).await;
    let second = void_answer(&gw).await;
    assert_eq!(first["replay"], false);
    assert_eq!(second["replay"], true);
}

#[tokio::test]
async fn listings_keep_one_effect_per_key_in_order_of_arrival() {
    let gw = start(Faults::default(), 1).await;
    void(&gw, TICKET, "k-1", "c1").await.expect("void");
    void(&gw, OTHER_TICKET, "k-2", "c2").await.expect("void");
    // A second key for the same ticket is a second effect: exactly what the listings
    // must make visible (the pipeline promises one K per ticket).
    void(&gw, TICKET, "k-3", "c3").await.expect("void");
    let listed: Vec<(String, String)> = voided(&gw)
        .await
        .into_iter()
        .map(|e| (e.key, e.ticket_id))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("k-1".into(), TICKET.into()),
            ("k-2".into(), OTHER_TICKET.into()),
            ("k-3".into(), TICKET.into()),
        ]
    );
    assert!(
        refunded(&gw).await.is_empty(),
        "the services keep separate ledgers"
    );
    let raw = get_json(&gw, "/receipts-api/voided").await;
    let first = raw["items"][0].as_object().expect("object");
    let mut fields: Vec<&str> = first.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "at_ms",
            "calls",
            "correlation_id",
            "correlation_ids",
            "key",
            "reason",
            "ticket_id",
            "traceparent",
            "traces",
            "x_amzn_trace_id"
        ]
    );
}

const XRAY: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
const TRACEPARENT: &str = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";

fn trace_headers(
    xray: &'static str,
    traceparent: &'static str,
) -> [(&'static str, HeaderValue); 2] {
    [
        ("X-Amzn-Trace-Id", HeaderValue::from_static(xray)),
        ("traceparent", HeaderValue::from_static(traceparent)),
    ]
}

fn trace(xray: Option<&str>, traceparent: Option<&str>) -> Trace {
    Trace {
        x_amzn_trace_id: xray.map(str::to_owned),
        traceparent: traceparent.map(str::to_owned),
    }
}

/// Both services show the trace of the call that had the effect, and every distinct trace
/// of the calls with its key: a retry repeats one, another delivery brings another.
#[tokio::test]
async fn listings_show_each_effects_trace_headers() {
    let gw = start(Faults::default(), 1).await;
    let other = "Root=1-5759e988-00000000000000000000000a;Sampled=0";
    for headers in [
        &trace_headers(XRAY, TRACEPARENT)[..],
        &trace_headers(XRAY, TRACEPARENT)[..],
        &[],
        &trace_headers(other, TRACEPARENT)[..1],
    ] {
        for service in [VOID, REFUND] {
            let answer = call_with(&gw, service, [TICKET, KEY, "c"], headers).await;
            assert_eq!(answer.expect("answered").status(), 200);
        }
    }
    for effects in [voided(&gw).await, refunded(&gw).await] {
        let [effect] = &effects[..] else {
            panic!("one effect: {effects:?}")
        };
        assert_eq!(effect.trace, trace(Some(XRAY), Some(TRACEPARENT)));
        assert_eq!(
            effect.traces,
            [
                trace(Some(XRAY), Some(TRACEPARENT)),
                trace(Some(other), None)
            ]
        );
        assert_eq!(effect.calls, 4);
    }
    let raw = get_json(&gw, "/receipts-api/voided").await;
    assert_eq!(raw["items"][0]["x_amzn_trace_id"], XRAY);
    assert_eq!(raw["items"][0]["traceparent"], TRACEPARENT);
}

/// Whatever the headers hold, the call is served and what is kept is short visible ASCII:
/// a value with a tab or a byte above 0x7E is dropped, an oversized one is cut.
#[tokio::test]
async fn hostile_trace_headers_are_dropped_or_cut_and_never_fail_a_call() {
    let gw = start(Faults::default(), 1).await;
    let long = "R".repeat(10 * 1024);
    let cases: [(HeaderValue, Option<String>); 4] = [
        (
            HeaderValue::from_bytes(b"Root=1-\xff\xfe").expect("obs-text"),
            None,
        ),
        (HeaderValue::from_static("Root=1-a\tb"), None),
        (
            HeaderValue::from_str(&long).expect("long"),
            Some("R".repeat(MAX_TRACE_HEADER_BYTES)),
        ),
        (
            HeaderValue::from_static("Root=1-a b"),
            Some("Root=1-a b".to_owned()),
        ),
    ];
    for (i, (value, kept)) in cases.into_iter().enumerate() {
        let key = format!("k-{i}");
        let headers = [("X-Amzn-Trace-Id", value.clone()), ("traceparent", value)];
        let answer = call_with(&gw, VOID, [TICKET, &key, "c"], &headers).await;
        assert_eq!(answer.expect("answered").status(), 200, "case {i}");
        let effects = voided(&gw).await;
        let effect = effects.iter().find(|e| e.key == key).expect("the effect");
        assert_eq!(
            effect.trace,
            trace(kept.as_deref(), kept.as_deref()),
            "case {i}"
        );
        let kept_traces = usize::from(kept.is_some());
        assert_eq!(effect.traces.len(), kept_traces, "case {i}");
    }
}

/// One key's list of distinct traces stops growing at its bound; the calls still count.
#[tokio::test]
async fn an_effect_keeps_a_bounded_number_of_traces() {
    let gw = start(Faults::default(), 1).await;
    let calls = MAX_TRACES_PER_EFFECT + 5;
    for i in 0..calls {
        let value = HeaderValue::from_str(&format!("Root=1-{i:08x}-000000000000000000000001"))
            .expect("value");
        let answer = call_with(&gw, VOID, [TICKET, KEY, "c"], &[("X-Amzn-Trace-Id", value)]).await;
        assert_eq!(answer.expect("answered").status(), 200);
    }
    let effects = voided(&gw).await;
    assert_eq!(effects[0].traces.len(), MAX_TRACES_PER_EFFECT);
    assert_eq!(effects[0].calls, u64::try_from(calls).expect("small"));
}

#[tokio::test]
async fn a_key_reused_for_another_ticket_is_refused_with_409() {
    let gw = start(Faults::default(), 1).await;
    assert_eq!(status_of(&gw, REFUND, TICKET, KEY).await, 200);
    assert_eq!(status_of(&gw, REFUND, OTHER_TICKET, KEY).await, 409);
    assert_eq!(refunded(&gw).await.len(), 1);
    assert_eq!(stats(&gw).await.conflicts, 1);
}

#[tokio::test]
async fn a_body_that_is_not_the_services_json_gets_400() {
    let gw = start(Faults::default(), 1).await;
    let url = format!("{}/receipts-api/void-receipt", gw.url());
    for body in [
        "not json".to_owned(),
        json!({"ticket_id": TICKET, "reason": "r"}).to_string(),
        json!({"ticket_id": TICKET, "reason": "r", "idempotent_id": ""}).to_string(),
        json!({"ticket_id": 7, "reason": "r", "idempotent_id": KEY}).to_string(),
        // The payments service's field names do not fit the receipts service.
        json!({"payment_reference": TICKET, "reason": "r", "deduplication_id": KEY}).to_string(),
    ] {
        let response = client()
            .put(&url)
            .body(body.clone())
            .send()
            .await
            .expect("PUT");
        assert_eq!(response.status(), 400, "{body}");
    }
    assert!(voided(&gw).await.is_empty());
    assert_eq!(stats(&gw).await.invalid, 5);
}

#[tokio::test]
async fn unknown_routes_get_404_and_wrong_methods_405() {
    let gw = start(Faults::default(), 1).await;
    let nowhere = client()
        .get(format!("{}/nowhere", gw.url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(nowhere.status(), 404);
    let wrong = client()
        .delete(format!("{}/payments-api/refunds", gw.url()))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(wrong.status(), 405);
}

#[tokio::test]
async fn error_rate_answers_500_or_503_without_an_effect() {
    let gw = start_faulty(|f| f.error_rate = 1.0, 3).await;
    let mut statuses = std::collections::BTreeSet::new();
    for i in 0..20 {
        let response = void(&gw, TICKET, &format!("k-{i}"), "c")
            .await
            .expect("answered");
        statuses.insert(response.status().as_u16());
    }
    assert_eq!(statuses, [500, 503].into(), "both statuses are produced");
    assert!(voided(&gw).await.is_empty());
    assert_eq!(stats(&gw).await.errors, 20);
}

#[tokio::test]
async fn reset_rate_drops_the_connection_without_an_answer_or_effect() {
    let gw = start_faulty(|f| f.reset_rate = 1.0, 3).await;
    let error = refund(&gw, TICKET, KEY, "c").await.expect_err("no answer");
    assert!(
        !error.is_timeout() && !error.is_status(),
        "a connection error: {error:?}"
    );
    assert!(refunded(&gw).await.is_empty());
    assert_eq!(stats(&gw).await.resets, 1);
}

#[tokio::test]
async fn latency_is_added_to_every_answer() {
    let gw = start_faulty(|f| f.latency_ms = 300, 3).await;
    let started = std::time::Instant::now();
    assert_eq!(status_of(&gw, VOID, TICKET, KEY).await, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_answer_outlives_the_client_timeout_but_the_effect_happened() {
    let gw = start_faulty(
        |f| {
            f.slow_rate = 1.0;
            f.slow_ms = 1500;
        },
        3,
    )
    .await;
    let impatient = refund_shared::http::client_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let error = impatient
        .put(format!("{}/receipts-api/void-receipt", gw.url()))
        .json(&json!({"ticket_id": TICKET, "reason": "r", "idempotent_id": KEY}))
        .send()
        .await
        .expect_err("timed out");
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(
        voided(&gw).await.len(),
        1,
        "the slow service committed before answering"
    );
    assert_eq!(
        set_faults(&gw, json!({"slow_rate": 0.0})).await.status(),
        200
    );
    let retry: Value = void(&gw, TICKET, KEY, "c")
        .await
        .expect("retry")
        .json()
        .await
        .expect("json");
    assert_eq!(retry["replay"], true, "the client's retry is a replay");
    assert_eq!(stats(&gw).await.slow, 1);
}

#[tokio::test]
async fn a_rejected_ticket_always_gets_400_before_any_other_fault() {
    let args = GatewayArgs::try_parse_from([
        "gateway-emulator",
        "--addr",
        "127.0.0.1:0",
        "--reject-ticket",
        &TICKET.to_uppercase(),
        "--error-rate",
        "1",
        "--seed",
        "9",
    ])
    .expect("flags");
    let gw = gateway::spawn(args.addr(), args.config())
        .await
        .expect("starts");
    for _ in 0..5 {
        assert_eq!(status_of(&gw, VOID, TICKET, KEY).await, 400);
        assert_eq!(status_of(&gw, REFUND, TICKET, KEY).await, 400);
    }
    let other = void(&gw, OTHER_TICKET, "k", "c").await.expect("void");
    assert!(
        other.status().is_server_error(),
        "other tickets get the random faults"
    );
    assert!(voided(&gw).await.is_empty() && refunded(&gw).await.is_empty());
    assert_eq!(stats(&gw).await.rejected, 10);
}

/// `reject_void_tickets` refuses only the void of its tickets, before any random fault;
/// their refund is served as any other ticket's, and `reject_tickets` is left as it was.
#[tokio::test]
async fn a_void_rejected_ticket_gets_400_on_its_void_and_its_refund_is_served() {
    let gw = start(Faults::default(), 6).await;
    let answer = set_faults(&gw, json!({"reject_void_tickets": [TICKET.to_uppercase()]})).await;
    assert_eq!(answer.status(), 200);
    let current = get_json(&gw, "/admin/faults").await;
    assert_eq!(current["faults"]["reject_void_tickets"], json!([TICKET]));
    assert_eq!(current["faults"]["reject_tickets"], json!([]));
    for _ in 0..3 {
        assert_eq!(status_of(&gw, VOID, TICKET, KEY).await, 400);
        assert_eq!(status_of(&gw, REFUND, TICKET, KEY).await, 200);
    }
    let refusal = void_answer(&gw).await;
    assert_eq!(
        refusal["error"]["message"],
        "ticket rejected by the emulator (--reject-void-ticket)"
    );
    assert_eq!(status_of(&gw, VOID, OTHER_TICKET, "k").await, 200);
    let voided_tickets: Vec<String> = voided(&gw).await.into_iter().map(|e| e.ticket_id).collect();
    assert_eq!(voided_tickets, [OTHER_TICKET]);
    let refunds = refunded(&gw).await;
    assert_eq!((refunds.len(), refunds[0].calls), (1, 3));
    assert_eq!(stats(&gw).await.rejected, 4);

    // Before any random fault: with every call failing, the void is still the 400.
    assert_eq!(
        set_faults(&gw, json!({"error_rate": 1.0})).await.status(),
        200
    );
    assert_eq!(status_of(&gw, VOID, TICKET, KEY).await, 400);
    assert!(status_of(&gw, REFUND, TICKET, KEY).await >= 500);
}

/// Every valid call is counted per service and ticket, whatever came of it: a refused or
/// failed call, which no listing shows, included; a reset forgets them.
#[tokio::test]
async fn every_call_is_counted_per_ticket_whatever_came_of_it() {
    let gw = start_faulty(|f| f.reject_tickets = [TICKET.to_owned()].into(), 8).await;
    assert_eq!(status_of(&gw, VOID, TICKET, KEY).await, 400);
    assert_eq!(status_of(&gw, REFUND, TICKET, KEY).await, 400);
    for _ in 0..2 {
        assert_eq!(status_of(&gw, VOID, OTHER_TICKET, "k").await, 200);
    }
    let not_json = client()
        .put(format!("{}/payments-api/refunds", gw.url()))
        .body("not json")
        .send()
        .await
        .expect("PUT");
    assert_eq!(not_json.status(), 400);
    assert!(
        refunded(&gw).await.is_empty(),
        "no listing shows a refused call"
    );
    let calls: TicketCalls =
        serde_json::from_value(get_json(&gw, "/admin/calls").await).expect("calls");
    assert_eq!(
        calls,
        TicketCalls {
            receipts: [(TICKET.to_owned(), 1), (OTHER_TICKET.to_owned(), 2)].into(),
            payments: [(TICKET.to_owned(), 1)].into(),
        }
    );
    let answer = client()
        .post(format!("{}/admin/reset", gw.url()))
        .send()
        .await
        .expect("reset");
    assert_eq!(answer.status(), 200);
    let calls: TicketCalls =
        serde_json::from_value(get_json(&gw, "/admin/calls").await).expect("calls");
    assert_eq!(calls, TicketCalls::default());
}

#[tokio::test]
async fn a_slow_ticket_is_answered_late_and_no_other_ticket_is() {
    let gw = start(Faults::default(), 4).await;
    assert_eq!(
        set_faults(
            &gw,
            json!({"slow_tickets": [OTHER_TICKET.to_uppercase()], "slow_ms": 600})
        )
        .await
        .status(),
        200
    );
    let started = Instant::now();
    let (slow, fast) = tokio::join!(
        async {
            let answer = void(&gw, OTHER_TICKET, "k-slow", "c").await.expect("void");
            (answer.status(), started.elapsed())
        },
        async {
            let answer = void(&gw, TICKET, KEY, "c").await.expect("void");
            (answer.status(), started.elapsed())
        },
    );
    assert_eq!((slow.0.as_u16(), fast.0.as_u16()), (200, 200));
    assert!(slow.1 >= Duration::from_millis(600), "{:?}", slow.1);
    assert!(fast.1 < Duration::from_millis(600), "{:?}", fast.1);
    assert_eq!(stats(&gw).await.slow, 1);
    assert_eq!(
        voided(&gw).await.len(),
        2,
        "a slow answer still has its effect"
    );
}

#[tokio::test]
async fn faults_are_set_and_read_through_the_admin_endpoint() {
    let gw = start(Faults::default(), 5).await;
    let answer = set_faults(
        &gw,
        json!({"reject_tickets": [OTHER_TICKET.to_uppercase()], "latency_ms": 1, "seed": 11}),
    )
    .await;
    assert_eq!(answer.status(), 200);
    let current = get_json(&gw, "/admin/faults").await;
    assert_eq!(current["seed"], 11);
    assert_eq!(current["faults"]["reject_tickets"], json!([OTHER_TICKET]));
    assert_eq!(current["faults"]["latency_ms"], 1);
    assert_eq!(status_of(&gw, VOID, OTHER_TICKET, KEY).await, 400);
    assert_eq!(status_of(&gw, VOID, TICKET, KEY).await, 200);

    for bad in [
        json!({"error_rate": 1.5}),
        json!({"error_rat": 0.1}),
        json!({"slow_ms": -1}),
    ] {
        assert_eq!(set_faults(&gw, bad.clone()).await.status(), 400, "{bad}");
    }
    assert_eq!(
        get_json(&gw, "/admin/faults").await,
        current,
        "a refused change changes nothing"
    );
}

#[tokio::test]
async fn reset_forgets_effects_and_counters() {
    let gw = start(Faults::default(), 5).await;
    void(&gw, TICKET, KEY, "c").await.expect("void");
    let answer = client()
        .post(format!("{}/admin/reset", gw.url()))
        .send()
        .await
        .expect("reset");
    assert_eq!(answer.status(), 200);
    assert!(voided(&gw).await.is_empty());
    assert_eq!(stats(&gw).await, Stats::default());
}

/// The status of `n` sequential calls (0 for a dropped connection).
async fn fault_sequence(gw: &RunningGateway, n: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(n);
    for i in 0..n {
        let status = match refund(gw, TICKET, &format!("k-{i}"), "c").await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        statuses.push(status);
    }
    statuses
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    let faults = Faults {
        error_rate: 0.3,
        reset_rate: 0.2,
        ..Faults::default()
    };
    let first = fault_sequence(&start(faults.clone(), 42).await, 40).await;
    let again = fault_sequence(&start(faults.clone(), 42).await, 40).await;
    let other = fault_sequence(&start(faults, 43).await, 40).await;
    assert_eq!(first, again);
    assert_ne!(first, other);
    for status in [0, 200] {
        assert!(first.contains(&status), "{status} in {first:?}");
    }
    assert!(first.iter().any(|s| *s >= 500), "{first:?}");

    // Re-seeding through the admin endpoint restarts the same sequence.
    let gw = start_faulty(
        |f| {
            f.error_rate = 0.3;
            f.reset_rate = 0.2;
        },
        7,
    )
    .await;
    assert_eq!(set_faults(&gw, json!({"seed": 42})).await.status(), 200);
    assert_eq!(fault_sequence(&gw, 40).await, first);
}

/// A void call carrying `token` (none: no `Authorization` header).
async fn void_with(gw: &RunningGateway, token: Option<&str>) -> u16 {
    let key = refund_shared::idempotency::IdempotencyKey::for_ticket(TICKET.parse().unwrap());
    let mut request = client()
        .put(format!("{}/receipts-api/void-receipt", gw.url()))
        .json(&json!({"ticket_id": TICKET, "reason": "r", "idempotent_id": key.to_string()}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("void").status().as_u16()
}

async fn set_token(gw: &RunningGateway, token: Value) -> u16 {
    client()
        .put(format!("{}/admin/token", gw.url()))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("admin")
        .status()
        .as_u16()
}

/// With a token, a call without it is 401 before any fault and has no effect; a rotation
/// through `/admin/token` accepts only the new token from then on.
#[tokio::test]
async fn a_token_is_required_once_set_and_a_rotation_refuses_the_old_one() {
    let gw = gateway::spawn(
        loopback(),
        GatewayConfig {
            faults: Faults {
                error_rate: 1.0,
                ..Faults::default()
            },
            seed: Some(3),
            token: Some("old".into()),
        },
    )
    .await
    .expect("emulator starts");
    assert_eq!(void_with(&gw, None).await, 401);
    assert_eq!(void_with(&gw, Some("wrong")).await, 401);
    let stats_now = stats(&gw).await;
    assert_eq!((stats_now.unauthorized, stats_now.errors), (2, 0));
    assert_eq!(
        set_faults(&gw, json!({"error_rate": 0.0})).await.status(),
        200
    );
    assert_eq!(void_with(&gw, Some("old")).await, 200);

    assert_eq!(set_token(&gw, json!("new")).await, 200);
    assert_eq!(void_with(&gw, Some("old")).await, 401);
    assert_eq!(void_with(&gw, Some("new")).await, 200);
    assert_eq!(voided(&gw).await.len(), 1);
    assert_eq!(
        voided(&gw).await[0].calls,
        2,
        "401s are not calls of the effect"
    );
    assert_eq!(stats(&gw).await.unauthorized, 3);
    assert_eq!(stats(&gw).await.foreign_keys, 0);

    assert_eq!(set_token(&gw, json!("")).await, 400);
    assert_eq!(set_token(&gw, Value::Null).await, 200);
    assert_eq!(void_with(&gw, None).await, 200);
}

/// Every call whose key is not its ticket's K is counted, whatever its answer.
#[tokio::test]
async fn calls_with_a_key_other_than_the_tickets_are_counted() {
    let gw = start(Faults::default(), 1).await;
    assert_eq!(void_with(&gw, None).await, 200);
    assert_eq!(stats(&gw).await.foreign_keys, 0);
    for (ticket, key) in [(TICKET, KEY), ("not-a-uuid", "k-2")] {
        assert_eq!(status_of(&gw, VOID, ticket, key).await, 200);
    }
    assert_eq!(stats(&gw).await.foreign_keys, 2);
}

#[test]
fn flags_have_the_local_stacks_defaults() {
    let args = GatewayArgs::try_parse_from(["gateway-emulator"]).expect("flags");
    let expected_port = std::env::var("GATEWAY_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8888);
    assert_eq!(
        args.addr(),
        SocketAddr::from(([127, 0, 0, 1], expected_port))
    );
    assert_eq!(args.config().faults, Faults::default());
    assert_eq!(args.config().seed, None);
    assert_eq!(args.config().token, std::env::var("GATEWAY_TOKEN").ok());
    let void_rejected = [
        "gateway-emulator",
        "--reject-void-ticket",
        &TICKET.to_uppercase(),
    ];
    let args = GatewayArgs::try_parse_from(void_rejected).expect("flags");
    let faults = args.config().faults;
    assert_eq!(faults.reject_void_tickets, [TICKET.to_owned()].into());
    assert!(faults.reject_tickets.is_empty());
    for bad in [
        ["--error-rate", "2"],
        ["--slow-rate", "-0.1"],
        ["--reject-ticket", "nope"],
        ["--reject-void-ticket", "nope"],
    ] {
        let mut argv = vec!["gateway-emulator"];
        argv.extend(bad);
        assert!(GatewayArgs::try_parse_from(argv).is_err(), "{bad:?}");
    }
}
