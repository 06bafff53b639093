//! The ledger of one service: idempotency on K. The first call with a key has the effect,
//! every later call with that key only counts a call, and a key reused for another
//! ticket is refused.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::trace::{MAX_TRACES_PER_EFFECT, Trace};

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
    /// The trace headers of the call that had the effect (each `None` when it had none).
    #[serde(flatten)]
    pub trace: Trace,
    /// Every distinct trace seen with this key, in order of arrival, at most
    /// [`MAX_TRACES_PER_EFFECT`]: a retry of one message repeats its trace, a redrive or a
    /// second command brings another.
    pub traces: Vec<Trace>,
    /// Calls answered for this key: 1 + the replays.
    pub calls: u64,
    /// When the effect happened, in milliseconds since the Unix epoch: how `make bench`
    /// times a refund from its 202 to its effects.
    pub at_ms: u64,
}

/// A valid call to one of the two services.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) ticket_id: String,
    pub(super) key: String,
    pub(super) reason: String,
}

/// Effects of one service, in order of arrival.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    pub(super) effects: Vec<Effect>,
    by_key: HashMap<String, usize>,
}

/// What happened to a call that reached the ledger.
pub(super) enum Applied {
    First,
    Replay,
    /// The key already belongs to another ticket: a real service refuses that.
    Conflict,
}

impl Ledger {
    pub(super) fn apply(
        &mut self,
        call: &Call,
        correlation_id: Option<&str>,
        trace: &Trace,
    ) -> Applied {
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
            effect.remember(trace);
            return Applied::Replay;
        }
        self.by_key.insert(call.key.clone(), self.effects.len());
        self.effects.push(Effect {
            key: call.key.clone(),
            ticket_id: call.ticket_id.clone(),
            reason: call.reason.clone(),
            correlation_id: correlation_id.map(str::to_owned),
            correlation_ids: correlation_id.map(str::to_owned).into_iter().collect(),
            trace: trace.clone(),
            traces: Some(trace.clone())
                .filter(|t| !t.is_empty())
                .into_iter()
                .collect(),
            calls: 1,
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        });
        Applied::First
    }
}

impl Effect {
    /// Adds a call's trace to `traces` when it is new and there is room.
    fn remember(&mut self, trace: &Trace) {
        if !trace.is_empty()
            && self.traces.len() < MAX_TRACES_PER_EFFECT
            && !self.traces.contains(trace)
        {
            self.traces.push(trace.clone());
        }
    }
}
