//! A function whose timings are known, the subject of the cold-start harness's own test
//! (`tests/cold_start.rs`): the harness must measure these pauses back, so its start-up
//! figure is shown to mean what it says. Never benchmarked.
//!
//! `FAKE_INIT_MS` is slept before the function asks for its first event;
//! `FAKE_INVOCATION_MS`, comma-separated, in the invocations in turn (the last value for
//! any beyond the list). Every invocation echoes its event.

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

/// The milliseconds in `text`, read from the variable `name`; a malformed value stops
/// the function at start-up, which the harness reports as a failed start.
fn millis(name: &str, text: &str) -> Result<Duration, Error> {
    text.trim()
        .parse()
        .map(Duration::from_millis)
        .map_err(|e| format!("{name}: {text:?}: {e}").into())
}

fn var(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|e| format!("{name}: {e}").into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let init = millis("FAKE_INIT_MS", &var("FAKE_INIT_MS")?)?;
    let invocations = var("FAKE_INVOCATION_MS")?
        .split(',')
        .map(|ms| millis("FAKE_INVOCATION_MS", ms))
        .collect::<Result<Vec<_>, _>>()?;
    let last = *invocations.last().ok_or("FAKE_INVOCATION_MS: no value")?;
    tokio::time::sleep(init).await;
    let mut done = 0_usize;
    run(service_fn(move |event: LambdaEvent<Value>| {
        let pause = invocations.get(done).copied().unwrap_or(last);
        done += 1;
        async move {
            tokio::time::sleep(pause).await;
            Ok::<_, Error>(event.payload)
        }
    }))
    .await
}
