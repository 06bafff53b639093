//! The cold-start harness against a real function binary (the hello-world anchor, in the
//! build profile of the test run): the figures `make bench` reports must mean something.

use bytes::Bytes;
use refund_bench::cold_start::{Subject, measure};

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
    assert_eq!(
        sample.startup_cost_us,
        (sample.init_us + sample.first_us).saturating_sub(sample.warm_us)
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
