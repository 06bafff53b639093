//! An SQS `SendMessage` and DynamoDB item endpoint that answers in constant time, for the
//! cold-start runs.
//!
//! moto is the real SQS and DynamoDB of the tests, but its answer time wanders by
//! milliseconds from one call to the next; start-up cost subtracts a warm call from the
//! first, so that noise would be as large as the cost being measured. This endpoint answers
//! `SendMessage` (JSON protocol) with the body's MD5 and a fresh id, and DynamoDB's
//! `GetItem`, `PutItem` and `UpdateItem` as a table without the item (`{}`: the API's
//! accept creates the record, the worker's writes find none and put theirs), and nothing
//! else; the adapters' real behaviour is what the moto tests check.

use std::{net::SocketAddr, sync::Arc};

use hyper::{Request, StatusCode, body::Incoming};
use md5::{Digest, Md5};
use refund_local::http::{self, DropConnection};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

pub struct FakeSqs {
    pub endpoint: String,
    task: JoinHandle<()>,
}

impl FakeSqs {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let handler = Arc::new(|request: Request<Incoming>| async move {
            Ok::<_, DropConnection>(answer(request).await)
        });
        let task = tokio::spawn(async move {
            http::serve(listener, handler).await;
        });
        Ok(Self { endpoint, task })
    }

    /// A queue URL on this endpoint.
    pub fn queue_url(&self, name: &str) -> String {
        format!("{}/123456789012/{name}", self.endpoint)
    }
}

impl Drop for FakeSqs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(request: Request<Incoming>) -> hyper::Response<http::Body> {
    // No target is a request for nothing served here, answered as such below.
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = match http::read_body(request).await {
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        None => Value::Null,
    };
    if matches!(
        target.as_str(),
        "DynamoDB_20120810.GetItem" | "DynamoDB_20120810.PutItem" | "DynamoDB_20120810.UpdateItem"
    ) {
        return http::json(StatusCode::OK, &json!({}));
    }
    let Some(message) = body["MessageBody"]
        .as_str()
        .filter(|_| target == "AmazonSQS.SendMessage")
    else {
        return http::json(
            StatusCode::BAD_REQUEST,
            &json!({"__type": "com.amazonaws.sqs#InvalidAction", "message": format!("{target} is not served here")}),
        );
    };
    let digest = Md5::digest(message.as_bytes());
    let md5: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    http::json(
        StatusCode::OK,
        &json!({"MD5OfMessageBody": md5, "MessageId": uuid::Uuid::new_v4().to_string()}),
    )
}
