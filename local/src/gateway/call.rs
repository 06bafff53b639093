//! One call to a service (`PUT /receipts-api/void-receipt` or `PUT /payments-api/refunds`):
//! its body read as the Go clients send it, its fault and its effect decided under the
//! lock, then its answer, after any injected delay.

use std::time::Duration;

use hyper::{Request, Response, StatusCode, body::Incoming};
use serde_json::json;

use super::{
    Gateway,
    faults::Fault,
    ledger::{Applied, Call},
    routes::LogLine,
};
use crate::http::{self, Body, DropConnection};
use refund_shared::{command::TicketId, idempotency::IdempotencyKey};

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

/// What a valid call comes to, decided under the lock; the answer is sent after it.
pub(super) enum Verdict {
    /// Not the current token: 401, before any fault and without an effect.
    Unauthorized,
    /// 400: the setting that refuses the ticket (its flag's name).
    Rejected(&'static str),
    Reset,
    Error(StatusCode),
    /// The ledger was updated; `true` when the answer is to be slow.
    Done(Applied, bool),
}

/// A verdict and the delays in force when it was reached: the answer waits for them
/// outside the lock.
struct Decision {
    verdict: Verdict,
    latency: Duration,
    slow: Duration,
}

impl Gateway {
    /// One call to a service: validation, fault, effect, answer.
    pub(super) async fn call(
        &self,
        service: Service,
        request: Request<Incoming>,
        line: &mut LogLine,
    ) -> Result<Response<Body>, DropConnection> {
        let bearer = bearer_token(&request);
        let parsed = http::read_body(request)
            .await
            .ok_or_else(|| "unreadable body".to_owned())
            .and_then(|body| parse_call(service, &body));
        let decision = match self.decide(service, parsed, bearer.as_deref(), line) {
            Ok(decision) => decision,
            Err(message) => {
                line.outcome = Some("invalid");
                return Ok(http::error(StatusCode::BAD_REQUEST, message));
            }
        };
        if !decision.latency.is_zero() {
            tokio::time::sleep(decision.latency).await;
        }
        match decision.verdict {
            Verdict::Unauthorized => {
                line.outcome = Some("unauthorized");
                Ok(http::error(
                    StatusCode::UNAUTHORIZED,
                    "not the current gateway token",
                ))
            }
            Verdict::Rejected(setting) => {
                line.outcome = Some("rejected");
                Ok(http::error(
                    StatusCode::BAD_REQUEST,
                    format!("ticket rejected by the emulator ({setting})"),
                ))
            }
            Verdict::Reset => {
                line.outcome = Some("reset");
                Err(DropConnection)
            }
            Verdict::Error(status) => {
                line.outcome = Some("error");
                Ok(http::error(status, "injected failure (--error-rate)"))
            }
            Verdict::Done(applied, slowly) => {
                if slowly {
                    tokio::time::sleep(decision.slow).await;
                }
                Ok(effect_answer(&applied, slowly, line))
            }
        }
    }

    /// Counts the call and, when it is valid and carries the token, draws its fault and
    /// applies its effect, all under one lock so that the counters and the ledgers never
    /// disagree. `Err` is the reason an invalid call is refused.
    fn decide(
        &self,
        service: Service,
        parsed: Result<Call, String>,
        bearer: Option<&str>,
        line: &mut LogLine,
    ) -> Result<Decision, String> {
        let mut state = self.lock();
        state.stats.calls += 1;
        let call = parsed.inspect_err(|_| state.stats.invalid += 1)?;
        state.ticket_calls.count(service, &call.ticket_id);
        line.ticket_id = Some(call.ticket_id.clone());
        line.key = Some(call.key.clone());
        if !is_the_tickets_key(&call) {
            state.stats.foreign_keys += 1;
        }
        let authorized = state
            .token
            .as_deref()
            .is_none_or(|token| bearer == Some(token));
        let fault = authorized.then(|| state.draw_fault(service, &call.ticket_id));
        let verdict = match fault {
            None => Verdict::Unauthorized,
            Some(Fault::Reject(setting)) => Verdict::Rejected(setting),
            Some(Fault::Reset) => Verdict::Reset,
            Some(Fault::Error(status)) => Verdict::Error(status),
            Some(Fault::None) => Verdict::Done(state.apply(service, &call, line), false),
            Some(Fault::Slow) => Verdict::Done(state.apply(service, &call, line), true),
        };
        state.stats.count(&verdict);
        Ok(Decision {
            verdict,
            latency: Duration::from_millis(state.faults.latency_ms),
            slow: Duration::from_millis(state.faults.slow_ms),
        })
    }
}

/// The answer to a call that reached the ledger.
fn effect_answer(applied: &Applied, slowly: bool, line: &mut LogLine) -> Response<Body> {
    match applied {
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
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(request: &Request<Incoming>) -> Option<String> {
    let value = request.headers().get(hyper::header::AUTHORIZATION)?;
    let token = value.to_str().ok()?.strip_prefix("Bearer ")?;
    Some(token.to_owned())
}

/// Whether the call's key is K of its ticket (a ticket id that is not a UUID has none).
fn is_the_tickets_key(call: &Call) -> bool {
    call.ticket_id
        .parse::<TicketId>()
        .is_ok_and(|ticket| IdempotencyKey::for_ticket(ticket).to_string() == call.key)
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
