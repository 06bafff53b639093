//! The measurements behind `make bench`, as a library so `tests/` can check the harness
//! itself against a real function binary.

pub mod api_overhead;
pub mod cold_start;
pub mod fake_sqs;
pub mod runtime_api;
pub mod stats;
pub mod worker_batch;
