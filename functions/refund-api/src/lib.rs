//! `refund-api` as a library, so the benchmarks (`bench/`) drive the same handler the
//! function runs. The function itself is `main.rs`.

pub mod cursor_key;
pub mod handler;
