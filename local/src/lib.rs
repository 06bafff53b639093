//! Dev-only parts of the local stack (contract section 7), never deployed. The binaries
//! are thin so that the tests drive the same code in-process.
//!
//! - [`gateway`]: the receipts and payments services of contract section 3, idempotent on
//!   K, with fault injection (binary `gateway-emulator`).
//!   - `faults`: what can go wrong with a call, and the seeded draw that decides it.
//!   - `ledger`: one service's effects, keyed by K, so a replay has no second effect.
//!   - `call`: one `PUT` to a service, from its body to its (possibly delayed) answer.
//!   - `stats`: counters over all calls, for tests that check a fault happened.
//!   - `trace`: a call's trace headers, kept bounded and printable for the listings.
//!   - `routes`: the routing table, the admin endpoints and one log line per request.
//!   - `args`: the command line.
//! - [`event_source`]: what Lambda's SQS event source mapping does, against a local queue
//!   and `cargo lambda watch` (binary `event-source`).
//!   - `poll`: gathering a batch, a long poll then more within the batching window.
//!   - `event`: the SQS event Lambda builds from a batch, field for field.
//!   - `invoke`: calling the function through the Lambda Invoke API.
//!   - `settle`: what the function's answer means under `ReportBatchItemFailures` (pure).
//!   - `delete`: deleting the messages the function did not report failed.
//!   - `args`: the command line.
//! - [`http`]: the little hyper plumbing both servers (and the benchmarks' fakes) share,
//!   hyper rather than a framework so that a connection can be dropped unanswered.
//! - [`logging`]: log set-up and the shutdown signal the two binaries share.

pub mod event_source;
pub mod gateway;
pub mod http;
pub mod logging;
