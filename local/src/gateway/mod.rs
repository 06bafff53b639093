//! The gateway emulator: the receipts and payments services of contract section 3, on
//! loopback, with the fault injection the local stack's tests need.
//!
//! Both services are idempotent on K, as the real ones are: the first call with a key has
//! the effect, every later call with that key answers 200 again and only counts a call.
//! The listings show, per effect, its key, ticket, correlation ids and number of calls,
//! so a test can assert "one K and one effect per ticket" and see the replays.
//!
//! With a token (`--token`, `PUT /admin/token`), a valid call without `Authorization:
//! Bearer <token>` is answered 401 before any fault, as a real service does after a rotation;
//! every call whose key is not the ticket's K is counted (`foreign_keys` in the stats), so
//! a test can assert that no call carried another key.
//!
//! Every valid call is also counted per service and ticket, whatever came of it (`GET
//! /admin/calls`), so a test can assert a call was never made, not only that it had no
//! effect.
//!
//! Each effect also keeps the trace headers (`X-Amzn-Trace-Id`, `traceparent`) of the call
//! that had it and the distinct traces of every call with its key, bounded and printable only
//! (`trace`), so a test can follow a trace from the API through the queue to both services.
//!
//! Faults apply to the two `PUT` calls only: the listings, `/health` and `/admin/*` are how
//! a test observes and steers the emulator, and must stay reliable. Every fault decision
//! comes from one seeded RNG, drawn a fixed number of times per call, so a client that
//! calls in the same order sees the same faults under the same seed.

mod args;
mod call;
mod faults;
mod ledger;
mod routes;
mod stats;
mod trace;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use hyper::{Request, body::Incoming};
use rand::{SeedableRng, rngs::StdRng};
use tokio::{net::TcpListener, task::JoinHandle};

pub use self::{
    args::GatewayArgs,
    call::Service,
    faults::{DEFAULT_SLOW_MS, Faults, FaultsUpdate, parse_rate},
    ledger::Effect,
    routes::CORRELATION_HEADER,
    stats::{Stats, TicketCalls},
    trace::{
        MAX_TRACE_HEADER_BYTES, MAX_TRACES_PER_EFFECT, TRACEPARENT_HEADER, Trace, XRAY_HEADER,
    },
};
use self::{
    faults::Fault,
    ledger::{Applied, Call, Ledger},
    routes::LogLine,
};
use crate::http;

/// How the emulator starts.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    pub faults: Faults,
    /// `None`: a random seed, logged at start so a run can be repeated.
    pub seed: Option<u64>,
    /// The bearer token both calls must carry; `None` takes any call.
    pub token: Option<String>,
}

struct State {
    faults: Faults,
    seed: u64,
    rng: StdRng,
    token: Option<String>,
    receipts: Ledger,
    payments: Ledger,
    stats: Stats,
    ticket_calls: TicketCalls,
}

/// The emulator's state, shared by every connection.
pub struct Gateway {
    state: Mutex<State>,
}

impl Gateway {
    pub fn new(config: GatewayConfig) -> Self {
        let seed = config.seed.unwrap_or_else(rand::random);
        Self {
            state: Mutex::new(State {
                faults: config.faults,
                seed,
                rng: StdRng::seed_from_u64(seed),
                token: config.token,
                receipts: Ledger::default(),
                payments: Ledger::default(),
                stats: Stats::default(),
                ticket_calls: TicketCalls::default(),
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

    /// Applies a change of faults, all or nothing.
    pub fn apply_update(&self, update: FaultsUpdate) -> Result<(), String> {
        let mut state = self.lock();
        state.faults = state.faults.updated(&update)?;
        if let Some(seed) = update.seed {
            state.seed = seed;
            state.rng = StdRng::seed_from_u64(seed);
        }
        Ok(())
    }

    /// From now on only `token` is accepted (`None`: any call is): a rotation.
    pub fn set_token(&self, token: Option<String>) {
        self.lock().token = token;
    }

    /// Forgets every effect and counter, and restarts the RNG from the seed; the faults
    /// stay. Lets one emulator serve several test cases.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.receipts = Ledger::default();
        state.payments = Ledger::default();
        state.stats = Stats::default();
        state.ticket_calls = TicketCalls::default();
        state.rng = StdRng::seed_from_u64(state.seed);
    }
}

impl State {
    fn apply(&mut self, service: Service, call: &Call, line: &LogLine) -> Applied {
        let ledger = match service {
            Service::Receipts => &mut self.receipts,
            Service::Payments => &mut self.payments,
        };
        ledger.apply(call, line.correlation_id.as_deref(), &line.trace)
    }

    /// The fault of the next call, from the one seeded RNG.
    fn draw_fault(&mut self, service: Service, ticket_id: &str) -> Fault {
        self.faults.draw(&mut self.rng, service, ticket_id)
    }
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
