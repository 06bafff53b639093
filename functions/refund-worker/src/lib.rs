//! `refund-worker`: SQS `RefundTicket` commands → void the receipt and refund the payment.
//!
//! A library as well as a binary so that `tests/` drives the real handler with scripted
//! and moto-backed ports; `main.rs` only wires the production adapters. "Contract section
//! N" in these docs is a section of `docs/CONTRACT.md`.
//!
//! One batch, in the order the code runs it:
//! - [`worker`]: the batch from its records to the response, and one ticket's refund
//!   top to bottom (`Worker::refund_ticket`): `begin`, the calls, each message's verdict
//!   and disposition, the closing status write, the events;
//! - [`delivery`]: an SQS record read defensively (nothing in it may panic the worker);
//! - [`group`]: the records sorted into units: a poison one, or every command of a ticket;
//! - [`calls`]: the void and the refund under K, and what each did;
//! - [`backoff`]: when a transiently failed message comes back;
//! - [`dead_letter`]: the copy of a message the worker gives up on;
//! - [`status`]: what the status record is told, every write bounded;
//! - [`publish`]: a ticket's refund events, and the batch's in one `PutEvents`;
//! - [`outcome`]: the dispositions, each record's log line, the batch response;
//! - [`deadline`]: when unfinished records are given up;
//! - [`metrics`]: the batch's CloudWatch metrics as EMF lines.

pub mod backoff;
pub mod calls;
pub mod dead_letter;
pub mod deadline;
pub mod delivery;
pub mod group;
pub mod metrics;
pub mod outcome;
pub mod publish;
pub mod status;
pub mod worker;

pub use outcome::{BatchOutcome, Disposition, EventTally, RecordOutcome};
pub use worker::{MAX_CONCURRENT_RECORDS, Settings, Worker};
