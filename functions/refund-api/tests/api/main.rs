//! The API's every answer through its public entry point, `refund_api::handle`, against the
//! in-memory queue and refund store, and the adapters against moto (`moto`). One
//! test binary, a module per concept of the crate; `common` is what they share.

mod claims;
mod common;
mod cursor_key;
mod fuzz;
mod list;
mod logs;
mod moto;
mod put;
mod read;
mod request;
mod route;
