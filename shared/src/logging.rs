//! The functions' log subscriber: Lambda's default, without the raw events.
//!
//! `lambda_runtime` logs every raw invocation event at TRACE ("raw JSON event received
//! from Lambda"). For refund-api that event holds the caller's `Authorization` header (a
//! JWT) and any request body; for refund-worker, every message body. Logs never carry
//! those, so whatever level `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` asks for, that one target
//! is held at DEBUG. Everything else is `lambda_runtime`'s `init_default_subscriber`:
//! JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`, INFO by default.

use std::str::FromStr;

use tracing_subscriber::{
    filter::{LevelFilter, Targets},
    layer::SubscriberExt,
    util::SubscriberInitExt,
};

/// The target under which `lambda_runtime` logs the raw events.
pub const RAW_EVENT_TARGET: &str = "lambda_runtime::layers::api_response";

/// The filter for a level (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`'s, else INFO) and the
/// `RUST_LOG` directives (`target=level` or a bare level), with the raw-event target held
/// at DEBUG. A [`Targets`] filter rather than `EnvFilter`: per-target levels are all a
/// function needs, and `EnvFilter` links a regex engine (about 1 MB of bootstrap).
pub fn log_filter(level: Option<&str>, rust_log: Option<&str>) -> Targets {
    let level = LevelFilter::from_str(level.unwrap_or("INFO")).unwrap_or(LevelFilter::INFO);
    let mut filter = Targets::new().with_default(level);
    // One directive at a time, so that a typo drops only itself.
    // (An empty directive would parse as "errors only".)
    for directive in rust_log.unwrap_or_default().split(',') {
        let directive = directive.trim();
        if directive.is_empty() {
            continue;
        }
        let Ok(parsed) = Targets::from_str(directive) else {
            continue;
        };
        if let Some(default) = parsed.default_level() {
            filter = filter.with_default(default);
        }
        filter = filter.with_targets(parsed);
    }
    // At most DEBUG, and never more than asked for; set last, so it wins over RUST_LOG.
    filter.with_target(RAW_EVENT_TARGET, level.min(LevelFilter::DEBUG))
}

/// Installs the subscriber; call once, first thing in `main`.
pub fn init() {
    let var = |name| std::env::var(name).ok();
    let rust_log = var("RUST_LOG");
    let level = var("AWS_LAMBDA_LOG_LEVEL").or_else(|| rust_log.clone());
    let filter = log_filter(level.as_deref(), rust_log.as_deref());
    // No colours: CloudWatch shows escape codes as they are.
    // The builder's own INFO ceiling off: `filter` alone decides.
    let collector = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_target(false)
        .without_time()
        .with_ansi(false);
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let installed = if json {
        collector.json().finish().with(filter).try_init()
    } else {
        collector.finish().with(filter).try_init()
    };
    // Only a second call fails, and the first subscriber then stays: nothing to do.
    drop(installed);
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    use testkit::LogBuffer as Buffer;

    fn logged(level: Option<&str>, rust_log: Option<&str>) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(LevelFilter::TRACE)
            .with_writer(move || writer.clone())
            .finish()
            .with(log_filter(level, rust_log));
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "Bearer eyJ.SECRET", "raw JSON event received from Lambda");
            tracing::debug!(target: "lambda_runtime::layers::api_response", "kept at debug");
            tracing::trace!(target: "refund_worker::handler", "own trace line");
            tracing::info!("own info line");
        });
        buffer.text()
    }

    /// One test, so no other thread swaps subscribers under it.
    #[test]
    fn raw_events_are_never_logged_whatever_the_level() {
        for (level, rust_log) in [
            (Some("TRACE"), None),
            (Some("trace"), Some("trace")),
            (None, Some("lambda_runtime=trace,trace")),
            (Some("DEBUG"), Some("info,lambda_runtime::layers=trace")),
            (
                Some("TRACE"),
                Some("lambda_runtime::layers::api_response=trace"),
            ),
            (
                None,
                Some("lambda_runtime::layers::api_response=trace,trace"),
            ),
        ] {
            let logs = logged(level, rust_log);
            assert!(!logs.contains("SECRET"), "{level:?} {rust_log:?}: {logs}");
            assert!(
                logs.contains("own info line"),
                "{level:?} {rust_log:?}: {logs}"
            );
        }
        // A typo drops itself only; an empty RUST_LOG is no directive at all.
        let typo = logged(Some("INFO"), Some("refund=loud,,info"));
        assert!(typo.contains("own info line"), "{typo}");
        let trace = logged(Some("TRACE"), None);
        assert!(trace.contains("own trace line") && trace.contains("kept at debug"));
        // INFO by default, and the raw-event target no chattier than the rest.
        let default = logged(None, None);
        assert!(default.contains("own info line"));
        assert!(!default.contains("own trace line") && !default.contains("kept at debug"));
    }
}
