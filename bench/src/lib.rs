//! The measurements behind `make bench`, as a library so `tests/` can check the harness
//! itself against real function binaries: the hello-world anchor, and a fake function
//! whose timings are known.
//!
//! - [`cold_start`]: a function binary started as Lambda starts it, and its start-up cost
//!   (init + first invocation − the warm median) and peak RSS.
//! - [`runtime_api`]: the Lambda Runtime API on loopback, timestamping what the function
//!   does, so the cold start is measured without Lambda.
//! - [`fake_aws`]: SQS, DynamoDB and EventBridge answering in constant time, so moto's
//!   wandering answer time does not swamp the start-up cost.
//! - [`worker_batch`]: the real worker against the gateway emulator with a fixed latency:
//!   a batch of ten costs about one call, and a hanging upstream holds back no other record.
//! - [`api_overhead`]: the API handler against moto, as a ratio of a bare `SendMessage`.
//! - [`stats`]: the order statistics every report gives, and the unit they are in.
//!
//! The binaries: `refund-bench` (one subcommand per measurement, one JSON report each),
//! `hello-lambda` (the anchor start-up cost is compared to) and `fake-function` (the
//! harness's test subject).

pub mod api_overhead;
pub mod cold_start;
pub mod fake_aws;
pub mod runtime_api;
pub mod stats;
pub mod worker_batch;
