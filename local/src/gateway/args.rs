//! The emulator's command line: the address and the starting faults, every one of which
//! can also be changed at run time through `PUT /admin/faults`.

use std::{collections::BTreeSet, net::SocketAddr};

use super::{DEFAULT_SLOW_MS, Faults, GatewayConfig, parse_rate};

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
    /// A ticket whose void-receipt is always answered 400; its refund is served as any
    /// other ticket's (repeatable).
    #[arg(long = "reject-void-ticket", value_name = "UUID")]
    pub reject_void_tickets: Vec<uuid::Uuid>,
    /// A ticket always answered after --slow-ms (repeatable).
    #[arg(long = "slow-ticket", value_name = "UUID")]
    pub slow_tickets: Vec<uuid::Uuid>,
    /// Seed of the fault RNG; random (and logged) when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The bearer token both calls must carry (401 otherwise); any call when absent.
    #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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
                reject_tickets: hyphenated(&self.reject_tickets),
                reject_void_tickets: hyphenated(&self.reject_void_tickets),
                slow_tickets: hyphenated(&self.slow_tickets),
            },
            seed: self.seed,
            token: self.token.clone(),
        }
    }
}

/// Hyphenated lowercase: the form the worker sends (contract section 1).
fn hyphenated(tickets: &[uuid::Uuid]) -> BTreeSet<String> {
    tickets.iter().map(|t| t.hyphenated().to_string()).collect()
}
