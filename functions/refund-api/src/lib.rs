//! `refund-api`, the HTTP Lambda behind API Gateway:
//!
//! - `PUT /ticket-refund/{ticket_id}`: accept a refund and queue the `RefundTicket` command;
//! - `GET /ticket-refund/{ticket_id}`: the refund's record (contract section 8);
//! - `GET /ticket-refunds?status=&limit=&cursor=`: the records, newest first, a page at a time.
//!
//! A library, so the benchmarks (`bench/`) and the tests drive the same [`handle`] the
//! function (`main.rs`) runs, over any [`refund_shared::queue::CommandQueue`] and
//! [`refund_shared::store::RefundStore`]: every answer of the contract is tested against the
//! in-memory twins ("contract section N" is a section of `docs/CONTRACT.md`). The modules,
//! one concept each:
//!
//! - [`handler`]: [`handle`], the one entry point, so a failure or a panic anywhere still
//!   answers in the contract's shape and echoes the `Correlation-ID`.
//! - [`route`]: which resource and method a request is for, so each endpoint sees only its
//!   own requests, a wrong method gets that resource's `Allow` and a path that is neither
//!   resource a 404.
//! - `put`: the PUT: the accept write, the quiet period's re-queue, the command on the
//!   queue, and the undo that keeps a record from naming a command the queue refused.
//! - `read`: the GETs, one record by ticket id and the signed listing; they only read.
//! - [`records`]: the refund records feature (store and cursor keys) as one value, so
//!   without `REFUND_TABLE_NAME` it is simply absent.
//! - [`cursor_key`]: the listing's signing key, read at the first listing so the 202 path
//!   never waits for Secrets Manager.
//! - [`error`]: [`ApiError`], every answer other than 200 and 202, classified once so no
//!   endpoint invents a status, a code or a message; it imports none of these modules.
//! - `caller`: who is asking (the verified `sub`) and what its scopes let it see, checked
//!   by the function itself whatever the routes let through.
//! - `request`: what a request says about itself (ids, headers, verified caller), parsed
//!   once, so the endpoints only see valid values.
//! - `render`: the one JSON answer constructor, so every answer has the same `Content-Type`,
//!   and the one error shape every [`ApiError`] is answered in.

mod caller;
pub mod cursor_key;
pub mod error;
pub mod handler;
mod put;
mod read;
pub mod records;
mod render;
mod request;
pub mod route;

pub use cursor_key::CursorKeys;
pub use error::ApiError;
pub use handler::handle;
pub use records::{NO_RECORDS, RefundRecords};
