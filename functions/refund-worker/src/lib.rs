//! `refund-worker`: SQS `RefundTicket` commands → void the receipt and refund the payment.
//!
//! A library as well as a binary so that `tests/` drives the real handler with scripted
//! and moto-backed ports; `main.rs` only wires the production adapters.

pub mod backoff;
pub mod dead_letter;
pub mod delivery;
pub mod handler;
pub mod metrics;
pub mod status;

pub use handler::{BatchOutcome, Disposition, RecordOutcome, Settings, Worker};
