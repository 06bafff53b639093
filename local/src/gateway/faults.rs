//! The fault model: what can go wrong with a call to the two services, how often, how a
//! test changes it at run time, and the seeded draw that decides each call's fault.

use std::collections::BTreeSet;

use hyper::StatusCode;
use rand::{Rng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use super::Service;

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
    /// Tickets whose void-receipt is always answered 400 (lowercase), before any random
    /// fault, while their refund is served as any other ticket's: a receipts service that
    /// refuses one ticket, so a test can see whether the refund is still called.
    pub reject_void_tickets: BTreeSet<String>,
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
            reject_void_tickets: BTreeSet::new(),
            slow_tickets: BTreeSet::new(),
        }
    }
}

/// A change of [`Faults`] through `PUT /admin/faults`: absent fields keep their value,
/// a set of tickets given replaces the set, `seed` restarts the RNG.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsUpdate {
    pub error_rate: Option<f64>,
    pub reset_rate: Option<f64>,
    pub latency_ms: Option<u64>,
    pub slow_rate: Option<f64>,
    pub slow_ms: Option<u64>,
    pub reject_tickets: Option<Vec<String>>,
    pub reject_void_tickets: Option<Vec<String>>,
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

/// The fault drawn for one call.
pub(super) enum Fault {
    None,
    /// A 400; the setting that refuses the ticket, for the answer to name.
    Reject(&'static str),
    Reset,
    Error(StatusCode),
    Slow,
}

impl Faults {
    /// These faults with `update`'s fields applied (its `seed` is the caller's), or why
    /// the update is refused; `self` is left as it was either way, so a change is all or
    /// nothing.
    pub(super) fn updated(&self, update: &FaultsUpdate) -> Result<Self, String> {
        let mut faults = self.clone();
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
        if let Some(tickets) = &update.reject_tickets {
            faults.reject_tickets = lowercase(tickets);
        }
        if let Some(tickets) = &update.reject_void_tickets {
            faults.reject_void_tickets = lowercase(tickets);
        }
        if let Some(tickets) = &update.slow_tickets {
            faults.slow_tickets = lowercase(tickets);
        }
        Ok(faults)
    }

    /// Draws the fault of one call to `service`. Always four draws, whatever the rates,
    /// the service and the ticket, so that one setting does not shift the faults another one
    /// produces.
    pub(super) fn draw(&self, rng: &mut StdRng, service: Service, ticket_id: &str) -> Fault {
        let reset: f64 = rng.random();
        let error: f64 = rng.random();
        let slow: f64 = rng.random();
        let unavailable: bool = rng.random();
        let ticket_id = ticket_id.to_lowercase();
        if self.reject_tickets.contains(&ticket_id) {
            Fault::Reject("--reject-ticket")
        } else if service == Service::Receipts && self.reject_void_tickets.contains(&ticket_id) {
            Fault::Reject("--reject-void-ticket")
        } else if self.slow_tickets.contains(&ticket_id) {
            Fault::Slow
        } else if reset < self.reset_rate {
            Fault::Reset
        } else if error < self.error_rate {
            Fault::Error(if unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            })
        } else if slow < self.slow_rate {
            Fault::Slow
        } else {
            Fault::None
        }
    }
}

/// A set of ticket ids as the worker sends them (lowercase).
fn lowercase(tickets: &[String]) -> BTreeSet<String> {
    tickets.iter().map(|t| t.to_lowercase()).collect()
}
