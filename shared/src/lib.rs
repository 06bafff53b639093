//! The refund pipeline's domain, shared by `refund-api` and `refund-worker`.
//!
//! The split follows a hexagonal design: the command and its rules live here as plain
//! types ([`command`], [`idempotency`], [`correlation`]), the outside world is reached
//! through small ports ([`queue`], [`gateway`]) that have an AWS adapter and an in-memory twin, and
//! the functions in `functions/` are thin adapters from Lambda events to this crate.
//! [`outcome`] is the one table of what every upstream answer and bad message means.

pub mod command;
pub mod config;
pub mod correlation;
pub mod gateway;
pub mod http;
pub mod idempotency;
pub mod logging;
pub mod outcome;
pub mod queue;
/// Secrets Manager: the upstream bearer token and the listing cursor's key.
pub mod secret;
/// The refund status store: the record of every refund, fetched by id and listed by status.
pub mod status;
pub mod text;
