//! Invoking the function through the Lambda Invoke API that `cargo lambda watch` serves,
//! patient with a watch server that is still starting.

use std::time::{Duration, Instant};

use refund_shared::text::error_chain;
use serde_json::Value;

use super::{EventSource, InvokeError, settle, settle_whole_batch};

/// The path of the Lambda Invoke API, which `cargo lambda watch` serves (and
/// `cargo lambda invoke` calls) on its invoke port.
pub fn invoke_url(address: &str, port: u16, function: &str) -> String {
    format!("http://{address}:{port}/2015-03-31/functions/{function}/invocations")
}

impl EventSource {
    /// Invokes the function; a refused connection (the watch server starting or
    /// restarting) is retried for `connect_patience`.
    pub(super) async fn invoke<'a>(
        &self,
        event: &Value,
        ids: &[&'a str],
    ) -> Result<Vec<&'a str>, InvokeError> {
        let started = Instant::now();
        let mut refused = 0_u32;
        let response = loop {
            match self
                .http
                .post(&self.config.function_url)
                .json(event)
                .send()
                .await
            {
                Ok(response) => break response,
                Err(e) if e.is_connect() && started.elapsed() < self.config.connect_patience => {
                    // One line, not one a second: the watch server may take a while.
                    if refused == 0 {
                        tracing::info!(url = %self.config.function_url, "invoke API not up yet, retrying");
                    }
                    refused += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(InvokeError::Unreachable(error_chain(&e))),
            }
        };
        let status = response.status().as_u16();
        let function_error = response
            .headers()
            .get("X-Amz-Function-Error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| {
            InvokeError::Unreachable(format!("reading the answer: {}", error_chain(&e)))
        })?;
        if self.config.report_batch_item_failures {
            settle(ids, status, function_error.as_deref(), &body)
        } else {
            settle_whole_batch(ids, status, function_error.as_deref(), &body)
        }
    }
}
