//! The refund pipeline's domain, shared by `refund-api` and `refund-worker`.
//!
//! The split is hexagonal: the command and its rules are plain types, the outside world is
//! reached through small ports that each have an AWS (or HTTP) adapter and an in-memory
//! twin, and the functions in `functions/` are thin adapters from Lambda events to this
//! crate. `docs/DESIGN.md` argues the larger decisions; "contract section N" in these
//! docs is a section of `docs/CONTRACT.md`, the wire contract the code implements.
//!
//! The domain:
//! - [`command`]: the `RefundTicket` command, its ticket id and its message attributes;
//! - [`idempotency`]: K, the one key per ticket, and the caller's own key;
//! - [`subject`]: who asked for a refund (the caller's JWT `sub`), bounded once;
//! - [`correlation`]: correlation ids and the rule every caller-supplied header follows;
//! - [`verdict`]: the one table of what every upstream answer and bad message means;
//! - [`trace`]: the X-Ray trace header a refund carries from the API to the services.
//!
//! The ports and their adapters:
//! - [`queue`]: sending commands and delaying redeliveries (SQS, in-memory);
//! - [`gateway`]: the receipts and payments calls (reqwest, with the bearer token, re-read
//!   after its TTL and after a 401);
//! - [`store`]: the status record of every refund (DynamoDB, in-memory), its transitions
//!   and the listing's signed cursor;
//! - [`announce`]: the refund events a refund's end publishes (EventBridge, in-memory);
//! - [`disabled`]: the store and the bus of a function that has neither.
//!
//! The plumbing:
//! - [`aws`]: how every AWS client is built;
//! - [`port`]: how an AWS port's call failed, "try later" or "will not work", sorted once;
//! - [`http`]: the one HTTP stack (rustls with ring, compiled-in roots) under every client;
//! - [`secret`]: a secret's string value from Secrets Manager;
//! - [`config`]: the environment, read and checked once at start-up;
//! - [`logging`]: Lambda's log subscriber, without the runtime's raw-event lines;
//! - [`stamp`]: the one time format of the records and the events;
//! - [`text`]: the one bound on text from outside, and the error-chain walker.

pub mod announce;
pub mod aws;
pub mod command;
pub mod config;
pub mod correlation;
pub mod disabled;
pub mod gateway;
pub mod http;
pub mod idempotency;
pub mod logging;
pub mod port;
pub mod queue;
pub mod secret;
pub mod stamp;
pub mod store;
pub mod subject;
pub mod text;
pub mod trace;
mod twin;
pub mod verdict;
