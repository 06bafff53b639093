//! `refund-worker`: SQS `RefundTicket` commands → void the receipt and refund the payment.
//!
//! A library as well as a binary so that `tests/` drives the real handler with scripted
//! and moto-backed ports; `main.rs` only wires the production adapters.
//!
//! One batch, in the order the code runs it:
//! - [`delivery`]: an SQS record read defensively (nothing in it may panic the worker);
//! - [`worker`]: the batch, from its records to the response;
//! - [`group`]: the records sorted into units: a poison one, or every command of a ticket;
//! - `ticket`: one unit, from its bodies to each record's [`Disposition`];
//! - `attempt`: a ticket's `begin`, the calls the record does not confirm, under K;
//! - [`backoff`]: when a transiently failed message comes back;
//! - [`dead_letter`]: the copy of a message the worker gives up on;
//! - [`recorder`]: what each delivery records in the refund store, every write bounded;
//! - `publish`: the batch's refund events in one `PutEvents`, and which done records'
//!   events were refused (the worker hands those back);
//! - [`outcome`]: the dispositions, each record's log line, the batch response;
//! - [`deadline`]: when unfinished records are given up;
//! - [`metrics`]: the batch's CloudWatch metrics as EMF lines.

mod attempt;
pub mod backoff;
pub mod dead_letter;
pub mod deadline;
pub mod delivery;
pub mod group;
pub mod metrics;
pub mod outcome;
mod publish;
pub mod recorder;
mod ticket;
pub mod worker;

pub use outcome::{BatchOutcome, Disposition, EventTally, RecordOutcome};
pub use worker::{MAX_CONCURRENT_RECORDS, Settings, Worker};
