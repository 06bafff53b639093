//! The cold-start harness against real function binaries, in the build profile of the test
//! run: the hello-world anchor, and a fake function whose pauses are known, so that the
//! figures `make bench` reports are shown to mean what they say.

use bytes::Bytes;
use refund_bench::cold_start::{Subject, WARM_CALLS, measure};

#[tokio::test]
async fn a_function_is_started_invoked_twice_and_measured() {
    let log = std::env::temp_dir().join(format!("cold-start-{}.log", std::process::id()));
    let subject = Subject {
        name: "hello-lambda".into(),
        binary: env!("CARGO_BIN_EXE_hello-lambda").into(),
        env: vec![],
        event: Bytes::from_static(br#"{"hello": "world"}"#),
    };
    let sample = measure(&subject, &log).await.expect("measured");
    assert!(
        sample.init_us > 0 && sample.first_us > 0 && sample.warm_us > 0,
        "{sample:?}"
    );
    // A live process holds at least a few hundred KiB; zero would mean the read failed.
    assert!(sample.peak_rss_kib > 256, "{sample:?}");
}

#[tokio::test]
async fn a_binary_that_never_reaches_the_runtime_api_is_an_error() {
    let log = std::env::temp_dir().join(format!("cold-start-false-{}.log", std::process::id()));
    let subject = Subject {
        name: "false".into(),
        binary: "/bin/false".into(),
        env: vec![],
        event: Bytes::from_static(b"{}"),
    };
    // `false` exits at once; the harness must say so rather than report a time.
    let error = measure(&subject, &log).await.expect_err("no sample");
    assert!(error.contains("false"), "{error}");
}

/// What the fake function sleeps, in milliseconds: before its first `GET .../next`, in its
/// first invocation, and in its warm ones, one of which is far slower than the others.
const INIT_MS: u64 = 600;
const FIRST_MS: u64 = 1200;
const WARM_MS: u64 = 600;
const SLOW_WARM_MS: u64 = 2700;
/// What process start, loopback HTTP and a loaded machine may add to a measured pause.
/// Each figure is checked against it, and each wrong formula misses by more: leaving out
/// the warm subtraction adds WARM_MS, leaving out init takes INIT_MS away, and a mean of
/// the warm calls instead of their median adds (SLOW_WARM_MS - WARM_MS) / WARM_CALLS.
const SLACK_MS: u64 = 300;

fn within(name: &str, measured_us: u64, expected_ms: u64, below_ms: u64) {
    let (low, high) = (
        (expected_ms - below_ms) * 1000,
        (expected_ms + SLACK_MS) * 1000,
    );
    assert!(
        (low..=high).contains(&measured_us),
        "{name}: {measured_us} µs, expected {expected_ms} ms (-{below_ms}/+{SLACK_MS} ms)"
    );
}

#[tokio::test]
async fn the_start_up_cost_is_init_plus_the_first_call_minus_the_warm_median() {
    let log = std::env::temp_dir().join(format!("cold-start-fake-{}.log", std::process::id()));
    let mut invocations = vec![FIRST_MS.to_string()];
    invocations.extend((0..WARM_CALLS).map(|n| {
        if n == WARM_CALLS / 2 {
            SLOW_WARM_MS
        } else {
            WARM_MS
        }
        .to_string()
    }));
    let subject = Subject {
        name: "fake-function".into(),
        binary: env!("CARGO_BIN_EXE_fake-function").into(),
        env: vec![
            ("FAKE_INIT_MS".into(), INIT_MS.to_string()),
            ("FAKE_INVOCATION_MS".into(), invocations.join(",")),
        ],
        event: Bytes::from_static(br#"{"hello": "fake"}"#),
    };
    let sample = measure(&subject, &log).await.expect("measured");
    // A pause is never cut short, so no figure falls below it; the cost can, by as much as
    // the warm median it subtracts overshoots.
    within("init", sample.init_us, INIT_MS, 0);
    within("first invocation", sample.first_us, FIRST_MS, 0);
    within("warm median", sample.warm_us, WARM_MS, 0);
    within(
        "start-up cost",
        sample.startup_cost_us,
        INIT_MS + FIRST_MS - WARM_MS,
        SLACK_MS,
    );
}
