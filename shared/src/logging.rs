//! The functions' log subscriber: Lambda's default, without the raw events.
//!
//! `lambda_runtime` logs every raw invocation event at TRACE ("raw JSON event received
//! from Lambda"). For refund-api that event holds the caller's `Authorization` header (a
//! JWT) and any request body; for refund-worker, every message body. Logs never carry
//! those, so whatever level `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` asks for, that one target
//! is held at DEBUG. Everything else is `lambda_runtime`'s `init_default_subscriber`:
//! JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`, INFO by default.

use std::str::FromStr;

use tracing_subscriber::filter::{Directive, EnvFilter, LevelFilter};

/// The target under which `lambda_runtime` logs the raw events.
pub const RAW_EVENT_TARGET: &str = "lambda_runtime::layers::api_response";

/// The filter for a level (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`'s, else INFO) and the
/// `RUST_LOG` directives, with the raw-event target held at DEBUG.
pub fn env_filter(level: Option<&str>, rust_log: Option<&str>) -> EnvFilter {
    let level = LevelFilter::from_str(level.unwrap_or("INFO")).unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy(rust_log.unwrap_or_default());
    // At most DEBUG, and never more than asked for.
    let raw_events = level.min(LevelFilter::DEBUG);
    match Directive::from_str(&format!("{RAW_EVENT_TARGET}={raw_events}")) {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// Installs the subscriber; call once, first thing in `main`.
pub fn init() {
    let var = |name| std::env::var(name).ok();
    let rust_log = var("RUST_LOG");
    let level = var("AWS_LAMBDA_LOG_LEVEL").or_else(|| rust_log.clone());
    let collector = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(env_filter(level.as_deref(), rust_log.as_deref()));
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        collector.json().init();
    } else {
        collector.init();
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
    };

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(level: Option<&str>, rust_log: Option<&str>) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(env_filter(level, rust_log))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "Bearer eyJ.SECRET", "raw JSON event received from Lambda");
            tracing::debug!(target: "lambda_runtime::layers::api_response", "kept at debug");
            tracing::trace!(target: "refund_worker::handler", "own trace line");
            tracing::info!("own info line");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    /// One test, so no other thread swaps subscribers under it.
    #[test]
    fn raw_events_are_never_logged_whatever_the_level() {
        for (level, rust_log) in [
            (Some("TRACE"), None),
            (Some("trace"), Some("trace")),
            (None, Some("lambda_runtime=trace,trace")),
            (Some("DEBUG"), Some("info,lambda_runtime::layers=trace")),
        ] {
            let logs = logged(level, rust_log);
            assert!(!logs.contains("SECRET"), "{level:?} {rust_log:?}: {logs}");
            assert!(logs.contains("own info line"), "{logs}");
        }
        let trace = logged(Some("TRACE"), None);
        assert!(trace.contains("own trace line") && trace.contains("kept at debug"));
        // INFO by default, and the raw-event target no chattier than the rest.
        let default = logged(None, None);
        assert!(default.contains("own info line"));
        assert!(!default.contains("own trace line") && !default.contains("kept at debug"));
    }
}
