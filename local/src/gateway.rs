//! The gateway emulator: the receipts and payments services of contract section 3, on
//! loopback, with the fault injection the local stack's tests need.
//!
//! Both services are idempotent on K, as the real ones are: the first call with a key has
//! the effect, every later call with that key answers 200 again and only counts a call.
//! The listings show, per effect, its key, ticket, correlation ids and number of calls,
//! so a test can assert "one K and one effect per ticket" and see the replays.
//!
//! Faults apply to the two `PUT` calls only: the listings, `/health` and `/admin/*` are how
//! a test observes and steers the emulator, and must stay reliable. Every fault decision
//! comes from one seeded RNG, drawn a fixed number of times per call, so a client that
//! calls in the same order sees the same faults under the same seed.

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::{net::TcpListener, task::JoinHandle};

use crate::http::{self, Body, DropConnection};

/// The header the worker carries the correlation id in (contract section 3).
pub const CORRELATION_HEADER: &str = "Correlation-ID";

/// What goes wrong, and how often. Rates are probabilities in `[0, 1]` per call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Faults {
    /// Share of calls answered 500 or 503 (chosen by the RNG), with no effect.
    pub error_rate: f64,
    /// Share of calls whose connection is dropped without an answer, with no effect.
    pub reset_rate: f64,
    /// Added to every answer of the two calls.
    pub latency_ms: u64,
    /// Share of calls answered only after `slow_ms`: the effect happens at once (a service
    /// that committed, then was slow to answer), so the client's retry is a replay.
    pub slow_rate: f64,
    /// Delay of a slow answer; beyond the worker's 5 s upstream timeout by default.
    pub slow_ms: u64,
    /// Tickets always answered 400 (lowercase), before any random fault: a permanent
    /// rejection must be seen on the first attempt.
    pub reject_tickets: BTreeSet<String>,
    /// Tickets always answered slowly (after `slow_ms`, the effect at once), after the
    /// rejections: one upstream that hangs, so a benchmark can show it delays no other record.
    pub slow_tickets: BTreeSet<String>,
}

/// Beyond `UPSTREAM_TIMEOUT_MS`' default of 5000, so a slow answer is a client timeout.
pub const DEFAULT_SLOW_MS: u64 = 6000;

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            reset_rate: 0.0,
            latency_ms: 0,
            slow_rate: 0.0,
            slow_ms: DEFAULT_SLOW_MS,
            reject_tickets: BTreeSet::new(),
            slow_tickets: BTreeSet::new(),
        }
    }
}

/// A change of [`Faults`] through `PUT /admin/faults`: absent fields keep their value,
/// `reject_tickets` replaces the set, `seed` restarts the RNG.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsUpdate {
    pub error_rate: Option<f64>,
    pub reset_rate: Option<f64>,
    pub latency_ms: Option<u64>,
    pub slow_rate: Option<f64>,
    pub slow_ms: Option<u64>,
    pub reject_tickets: Option<Vec<String>>,
    pub slow_tickets: Option<Vec<String>>,
    pub seed: Option<u64>,
}

/// Checks a rate given by a flag or the admin endpoint.
pub fn parse_rate(value: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("a rate is a probability in [0, 1], not {value}"))
    }
}

/// One of the two emulated services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Receipts,
    Payments,
}

impl Service {
    /// The body fields holding the ticket and the idempotency key, as the Go clients send
    /// them (K has a different name in each service).
    fn fields(self) -> (&'static str, &'static str) {
        match self {
            Self::Receipts => ("ticket_id", "idempotent_id"),
            Self::Payments => ("payment_reference", "deduplication_id"),
        }
    }
}

/// One effect (a voided receipt or a refunded payment) and every call that carried its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    /// K: `idempotent_id` or `deduplication_id`.
    pub key: String,
    /// T: `ticket_id` or `payment_reference`.
    pub ticket_id: String,
    pub reason: String,
    /// The `Correlation-ID` of the call that had the effect.
    pub correlation_id: Option<String>,
    /// Every distinct `Correlation-ID` seen with this key, in order of arrival.
    pub correlation_ids: Vec<String>,
    /// Calls answered for this key: 1 + the replays.
    pub calls: u64,
    /// When the effect happened, in milliseconds since the Unix epoch: how `make bench`
    /// times a refund from its 202 to its effects.
    pub at_ms: u64,
}

/// Effects of one service, in order of arrival.
#[derive(Debug, Default)]
struct Ledger {
    effects: Vec<Effect>,
    by_key: HashMap<String, usize>,
}

/// What happened to a call that reached the ledger.
enum Applied {
    First,
    Replay,
    /// The key already belongs to another ticket: a real service refuses that.
    Conflict,
}

impl Ledger {
    fn apply(&mut self, call: &Call, correlation_id: Option<&str>) -> Applied {
        if let Some(&index) = self.by_key.get(&call.key) {
            let effect = &mut self.effects[index];
            if effect.ticket_id != call.ticket_id {
                return Applied::Conflict;
            }
            effect.calls += 1;
            if let Some(id) = correlation_id
                && !effect.correlation_ids.iter().any(|seen| seen == id)
            {
                effect.correlation_ids.push(id.to_owned());
            }
            return Applied::Replay;
        }
        self.by_key.insert(call.key.clone(), self.effects.len());
        self.effects.push(Effect {
            key: call.key.clone(),
            ticket_id: call.ticket_id.clone(),
            reason: call.reason.clone(),
            correlation_id: correlation_id.map(str::to_owned),
            correlation_ids: correlation_id.map(str::to_owned).into_iter().collect(),
            calls: 1,
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        });
        Applied::First
    }
}

/// Counters over all calls to the two services, for tests that check a fault happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Calls to the two `PUT` endpoints.
    pub calls: u64,
    /// Calls with a body that is not the service's JSON.
    pub invalid: u64,
    /// Calls refused because their ticket is in `reject_tickets`.
    pub rejected: u64,
    /// Calls answered 500 or 503 on purpose.
    pub errors: u64,
    /// Connections dropped on purpose.
    pub resets: u64,
    /// Calls answered after `slow_ms`.
    pub slow: u64,
    /// First calls for a key (the effects).
    pub applied: u64,
    /// Later calls for a key.
    pub replays: u64,
    /// Calls whose key belongs to another ticket (409).
    pub conflicts: u64,
}

/// How the emulator starts.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    pub faults: Faults,
    /// `None`: a random seed, logged at start so a run can be repeated.
    pub seed: Option<u64>,
}

struct State {
    faults: Faults,
    seed: u64,
    rng: StdRng,
    receipts: Ledger,
    payments: Ledger,
    stats: Stats,
}

/// The emulator's state, shared by every connection.
pub struct Gateway {
    state: Mutex<State>,
}

/// A valid call to one of the two services.
#[derive(Debug)]
struct Call {
    ticket_id: String,
    key: String,
    reason: String,
}

/// The fault drawn for one call.
enum Fault {
    None,
    Reject,
    Reset,
    Error(StatusCode),
    Slow,
}

/// What a valid call comes to, decided under the lock; the answer is sent after it.
enum Verdict {
    Rejected,
    Reset,
    Error(StatusCode),
    /// The ledger was updated; `true` when the answer is to be slow.
    Done(Applied, bool),
}

impl Stats {
    fn count(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Rejected => self.rejected += 1,
            Verdict::Reset => self.resets += 1,
            Verdict::Error(_) => self.errors += 1,
            Verdict::Done(applied, slowly) => {
                match applied {
                    Applied::First => self.applied += 1,
                    Applied::Replay => self.replays += 1,
                    Applied::Conflict => self.conflicts += 1,
                }
                if *slowly {
                    self.slow += 1;
                }
            }
        }
    }
}

/// The facts of one request's log line, filled in by the handler.
#[derive(Debug, Default)]
struct LogLine {
    ticket_id: Option<String>,
    key: Option<String>,
    correlation_id: Option<String>,
    outcome: Option<&'static str>,
}

impl Gateway {
    pub fn new(config: GatewayConfig) -> Self {
        let seed = config.seed.unwrap_or_else(rand::random);
        Self {
            state: Mutex::new(State {
                faults: config.faults,
                seed,
                rng: StdRng::seed_from_u64(seed),
                receipts: Ledger::default(),
                payments: Ledger::default(),
                stats: Stats::default(),
            }),
        }
    }

    /// The seed in use (the one given, or the random one drawn at start).
    pub fn seed(&self) -> u64 {
        self.lock().seed
    }

    /// A poisoned lock only means a request task panicked; the ledgers are still whole
    /// because no await point or fallible step sits inside a critical section.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Routes one request and logs one line for it.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, DropConnection> {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let mut line = LogLine {
            correlation_id: request
                .headers()
                .get(CORRELATION_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            ..LogLine::default()
        };
        let answer = self.route(&method, &path, request, &mut line).await;
        let status = match &answer {
            Ok(response) => response.status().as_u16().to_string(),
            Err(_) => "dropped".to_owned(),
        };
        tracing::info!(
            %method,
            path,
            status,
            outcome = line.outcome.unwrap_or(""),
            ticket_id = line.ticket_id.as_deref().unwrap_or(""),
            key = line.key.as_deref().unwrap_or(""),
            correlation_id = line.correlation_id.as_deref().unwrap_or(""),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "request"
        );
        answer
    }

    async fn route(
        &self,
        method: &Method,
        path: &str,
        request: Request<Incoming>,
        line: &mut LogLine,
    ) -> Result<Response<Body>, DropConnection> {
        let allowed: &[Method] = match path {
            "/health" => &[Method::GET],
            "/receipts-api/void-receipt" => &[Method::PUT],
            "/receipts-api/voided" => &[Method::GET],
            "/payments-api/refunds" => &[Method::GET, Method::PUT],
            "/admin/faults" => &[Method::GET, Method::PUT],
            "/admin/stats" => &[Method::GET],
            "/admin/reset" => &[Method::POST],
            _ => return Ok(http::error(StatusCode::NOT_FOUND, "no such route")),
        };
        if !allowed.contains(method) {
            return Ok(http::error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not served on {path}"),
            ));
        }
        Ok(match (method.as_str(), path) {
            ("GET", "/health") => http::json(StatusCode::OK, &json!({ "status": "ok" })),
            ("PUT", "/receipts-api/void-receipt") => {
                return self.call(Service::Receipts, request, line).await;
            }
            ("PUT", "/payments-api/refunds") => {
                return self.call(Service::Payments, request, line).await;
            }
            ("GET", "/receipts-api/voided") => self.listing(Service::Receipts),
            ("GET", "/payments-api/refunds") => self.listing(Service::Payments),
            ("GET", "/admin/faults") => self.faults_answer(),
            ("PUT", "/admin/faults") => match http::read_body(request).await {
                Some(body) => self.update_faults(&body),
                None => http::error(StatusCode::BAD_REQUEST, "unreadable body"),
            },
            ("GET", "/admin/stats") => {
                http::json(StatusCode::OK, &json!(self.lock().stats.clone()))
            }
            _ => {
                self.reset();
                http::json(StatusCode::OK, &json!({ "status": "reset" }))
            }
        })
    }

    /// One call to a service: validation, fault, effect, answer.
    async fn call(
        &self,
        service: Service,
        request: Request<Incoming>,
        line: &mut LogLine,
    ) -> Result<Response<Body>, DropConnection> {
        let correlation_id = line.correlation_id.clone();
        let parsed = http::read_body(request)
            .await
            .ok_or_else(|| "unreadable body".to_owned())
            .and_then(|body| parse_call(service, &body));
        let (verdict, latency, slow) = {
            let mut state = self.lock();
            state.stats.calls += 1;
            let call = match parsed {
                Ok(call) => call,
                Err(message) => {
                    state.stats.invalid += 1;
                    line.outcome = Some("invalid");
                    return Ok(http::error(StatusCode::BAD_REQUEST, message));
                }
            };
            line.ticket_id = Some(call.ticket_id.clone());
            line.key = Some(call.key.clone());
            let verdict = match state.draw_fault(&call.ticket_id) {
                Fault::Reject => Verdict::Rejected,
                Fault::Reset => Verdict::Reset,
                Fault::Error(status) => Verdict::Error(status),
                Fault::None => Verdict::Done(
                    state.apply(service, &call, correlation_id.as_deref()),
                    false,
                ),
                Fault::Slow => {
                    Verdict::Done(state.apply(service, &call, correlation_id.as_deref()), true)
                }
            };
            state.stats.count(&verdict);
            (
                verdict,
                Duration::from_millis(state.faults.latency_ms),
                Duration::from_millis(state.faults.slow_ms),
            )
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let (applied, slowly) = match verdict {
            Verdict::Rejected => {
                line.outcome = Some("rejected");
                return Ok(http::error(
                    StatusCode::BAD_REQUEST,
                    "ticket rejected by the emulator (--reject-ticket)",
                ));
            }
            Verdict::Reset => {
                line.outcome = Some("reset");
                return Err(DropConnection);
            }
            Verdict::Error(status) => {
                line.outcome = Some("error");
                return Ok(http::error(status, "injected failure (--error-rate)"));
            }
            Verdict::Done(applied, slowly) => (applied, slowly),
        };
        if slowly {
            tokio::time::sleep(slow).await;
        }
        Ok(match applied {
            Applied::First => {
                line.outcome = Some(if slowly { "applied_slow" } else { "applied" });
                http::json(StatusCode::OK, &json!({ "status": "ok", "replay": false }))
            }
            Applied::Replay => {
                line.outcome = Some(if slowly { "replay_slow" } else { "replay" });
                http::json(StatusCode::OK, &json!({ "status": "ok", "replay": true }))
            }
            Applied::Conflict => {
                line.outcome = Some("conflict");
                http::error(
                    StatusCode::CONFLICT,
                    "idempotency key already used for another ticket",
                )
            }
        })
    }

    fn listing(&self, service: Service) -> Response<Body> {
        let state = self.lock();
        let ledger = match service {
            Service::Receipts => &state.receipts,
            Service::Payments => &state.payments,
        };
        http::json(StatusCode::OK, &json!({ "items": ledger.effects }))
    }

    fn faults_answer(&self) -> Response<Body> {
        let state = self.lock();
        http::json(
            StatusCode::OK,
            &json!({ "faults": state.faults, "seed": state.seed }),
        )
    }

    fn update_faults(&self, body: &[u8]) -> Response<Body> {
        let update: FaultsUpdate = match serde_json::from_slice(body) {
            Ok(update) => update,
            Err(e) => return http::error(StatusCode::BAD_REQUEST, format!("bad faults: {e}")),
        };
        match self.apply_update(update) {
            Ok(()) => self.faults_answer(),
            Err(message) => http::error(StatusCode::BAD_REQUEST, message),
        }
    }

    /// Applies a change of faults, all or nothing.
    pub fn apply_update(&self, update: FaultsUpdate) -> Result<(), String> {
        let mut state = self.lock();
        let mut faults = state.faults.clone();
        if let Some(rate) = update.error_rate {
            faults.error_rate = parse_rate(rate)?;
        }
        if let Some(rate) = update.reset_rate {
            faults.reset_rate = parse_rate(rate)?;
        }
        if let Some(rate) = update.slow_rate {
            faults.slow_rate = parse_rate(rate)?;
        }
        if let Some(ms) = update.latency_ms {
            faults.latency_ms = ms;
        }
        if let Some(ms) = update.slow_ms {
            faults.slow_ms = ms;
        }
        if let Some(tickets) = update.reject_tickets {
            faults.reject_tickets = tickets.iter().map(|t| t.to_lowercase()).collect();
        }
        if let Some(tickets) = update.slow_tickets {
            faults.slow_tickets = tickets.iter().map(|t| t.to_lowercase()).collect();
        }
        state.faults = faults;
        if let Some(seed) = update.seed {
            state.seed = seed;
            state.rng = StdRng::seed_from_u64(seed);
        }
        Ok(())
    }

    /// Forgets every effect and counter, and restarts the RNG from the seed; the faults
    /// stay. Lets one emulator serve several test cases.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.receipts = Ledger::default();
        state.payments = Ledger::default();
        state.stats = Stats::default();
        state.rng = StdRng::seed_from_u64(state.seed);
    }
}

impl State {
    fn apply(&mut self, service: Service, call: &Call, correlation_id: Option<&str>) -> Applied {
        let ledger = match service {
            Service::Receipts => &mut self.receipts,
            Service::Payments => &mut self.payments,
        };
        ledger.apply(call, correlation_id)
    }

    /// Draws the fault of one call. Always four draws, whatever the rates and the ticket,
    /// so that one setting does not shift the faults another one produces.
    fn draw_fault(&mut self, ticket_id: &str) -> Fault {
        let reset: f64 = self.rng.random();
        let error: f64 = self.rng.random();
        let slow: f64 = self.rng.random();
        let unavailable: bool = self.rng.random();
        let ticket_id = ticket_id.to_lowercase();
        if self.faults.reject_tickets.contains(&ticket_id) {
            Fault::Reject
        } else if self.faults.slow_tickets.contains(&ticket_id) {
            Fault::Slow
        } else if reset < self.faults.reset_rate {
            Fault::Reset
        } else if error < self.faults.error_rate {
            Fault::Error(if unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            })
        } else if slow < self.faults.slow_rate {
            Fault::Slow
        } else {
            Fault::None
        }
    }
}

/// Reads a service's JSON body; every field must be a non-empty string.
fn parse_call(service: Service, body: &[u8]) -> Result<Call, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("`{name}` must be a non-empty string"))
    };
    let (ticket_field, key_field) = service.fields();
    Ok(Call {
        ticket_id: field(ticket_field)?,
        key: field(key_field)?,
        reason: field("reason")?,
    })
}

/// A running emulator; the server stops when this is dropped.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    task: JoinHandle<()>,
}

impl RunningGateway {
    /// `http://{addr}`, the value for the worker's `GATEWAY_ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` (port 0 for a free one) and serves the emulator on it in the background.
pub async fn spawn(addr: SocketAddr, config: GatewayConfig) -> std::io::Result<RunningGateway> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let gateway = Arc::new(Gateway::new(config));
    let handler = {
        let gateway = Arc::clone(&gateway);
        Arc::new(move |request: Request<Incoming>| Arc::clone(&gateway).handle(request))
    };
    let task = tokio::spawn(async move {
        http::serve(listener, handler).await;
    });
    Ok(RunningGateway {
        addr,
        gateway,
        task,
    })
}

/// The emulator's command line; every fault can also be changed at run time through
/// `PUT /admin/faults`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "gateway-emulator",
    about = "Receipts and payments services for the local stack, idempotent on K, with fault injection"
)]
pub struct GatewayArgs {
    /// Address to listen on [default: 127.0.0.1:$GATEWAY_PORT, else 127.0.0.1:8888].
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Port used when --addr is not given (the local stack's variable).
    #[arg(long, env = "GATEWAY_PORT", default_value_t = 8888)]
    pub port: u16,
    /// Share of calls answered 500/503, in [0, 1].
    #[arg(long, default_value_t = 0.0, value_parser = rate_arg)]
    pub error_rate: f64,
    /// Share of calls whose connection is dropped without an answer, in [0, 1].
    #[arg(long, default_value_t = 0.0, value_parser = rate_arg)]
    pub reset_rate: f64,
    /// Milliseconds added to every answer of the two calls.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of calls answered only after --slow-ms, in [0, 1].
    #[arg(long, default_value_t = 0.0, value_parser = rate_arg)]
    pub slow_rate: f64,
    /// Delay of a slow answer (beyond the worker's upstream timeout).
    #[arg(long, default_value_t = DEFAULT_SLOW_MS)]
    pub slow_ms: u64,
    /// A ticket always answered 400 (repeatable).
    #[arg(long = "reject-ticket", value_name = "UUID")]
    pub reject_tickets: Vec<uuid::Uuid>,
    /// A ticket always answered after --slow-ms (repeatable).
    #[arg(long = "slow-ticket", value_name = "UUID")]
    pub slow_tickets: Vec<uuid::Uuid>,
    /// Seed of the fault RNG; random (and logged) when absent.
    #[arg(long)]
    pub seed: Option<u64>,
}

fn rate_arg(value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .map_err(|e| format!("not a number: {e}"))
        .and_then(parse_rate)
}

impl GatewayArgs {
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], self.port)))
    }

    pub fn config(&self) -> GatewayConfig {
        GatewayConfig {
            faults: Faults {
                error_rate: self.error_rate,
                reset_rate: self.reset_rate,
                latency_ms: self.latency_ms,
                slow_rate: self.slow_rate,
                slow_ms: self.slow_ms,
                // Hyphenated lowercase: the form the worker sends (contract section 1).
                reject_tickets: self
                    .reject_tickets
                    .iter()
                    .map(|t| t.hyphenated().to_string())
                    .collect(),
                slow_tickets: self
                    .slow_tickets
                    .iter()
                    .map(|t| t.hyphenated().to_string())
                    .collect(),
            },
            seed: self.seed,
        }
    }
}
