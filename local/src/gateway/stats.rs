//! The counters over all calls to the two services, served on `GET /admin/stats` for the
//! tests that check a fault happened, and the calls per ticket, on `GET /admin/calls`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Service, call::Verdict, ledger::Applied};

/// Counters over all calls to the two services, for tests that check a fault happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Calls to the two `PUT` endpoints.
    pub calls: u64,
    /// Calls with a body that is not the service's JSON.
    pub invalid: u64,
    /// Calls refused because their ticket is in `reject_tickets`, or is in
    /// `reject_void_tickets` and the call is a void.
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
    /// Calls refused 401: no `Authorization: Bearer` with the current token.
    pub unauthorized: u64,
    /// Calls whose key is not their ticket's K (`UUIDv5` of the ticket id, contract
    /// section 3), whatever came of them.
    pub foreign_keys: u64,
}

impl Stats {
    pub(super) fn count(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Unauthorized => self.unauthorized += 1,
            Verdict::Rejected(_) => self.rejected += 1,
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

/// Every valid call per service and ticket (as the call spelled it), whatever came of it:
/// refused, failed, dropped, slow or served. The listings count only the calls that reached
/// a ledger, so a call that was refused or failed shows only here; a test that asserts a
/// call was never made reads this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketCalls {
    pub receipts: BTreeMap<String, u64>,
    pub payments: BTreeMap<String, u64>,
}

impl TicketCalls {
    pub(super) fn count(&mut self, service: Service, ticket_id: &str) {
        let calls = match service {
            Service::Receipts => &mut self.receipts,
            Service::Payments => &mut self.payments,
        };
        *calls.entry(ticket_id.to_owned()).or_default() += 1;
    }
}
