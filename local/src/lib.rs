//! Dev-only parts of the local stack (contract section 7), never deployed.
//!
//! - [`gateway`]: the receipts and payments services of contract section 3, idempotent on
//!   K, with fault injection (binary `gateway-emulator`).
//! - [`event_source`]: what Lambda's SQS event source mapping does, against a local queue
//!   and `cargo lambda watch` (binary `event-source`).
//!
//! The binaries are thin so that the tests drive the same code in-process.

pub mod event_source;
pub mod gateway;
pub mod http;
pub mod logging;
