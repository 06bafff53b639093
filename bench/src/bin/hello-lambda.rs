//! The anchor of the cold-start benchmark: the smallest useful `lambda_runtime` function.
//! It echoes its event, so its first and warm invocations cost only the runtime's own work.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
