//! The AWS calls the functions make, answered in constant time: SQS `SendMessage`,
//! DynamoDB's item calls and EventBridge's `PutEvents`, for the cold-start runs and the
//! worker's batch with events.
//!
//! moto is the real SQS, DynamoDB and EventBridge of the tests, but its answer time wanders
//! by milliseconds from one call to the next; start-up cost subtracts a warm call from the
//! first, so that noise would be as large as the cost being measured. This endpoint answers
//! `SendMessage` (JSON protocol) with the body's MD5 and a fresh id, DynamoDB's `GetItem`,
//! `PutItem` and `UpdateItem` as a table without the item (`{}`: the API's accept creates
//! the record, the worker's writes find none and put theirs), `PutEvents` by accepting
//! every entry with a fresh id, and nothing else; the adapters' real behaviour is what the
//! moto tests check.

use std::{net::SocketAddr, sync::Arc};

use hyper::{Request, StatusCode, body::Incoming};
use md5::{Digest, Md5};
use refund_local::http::{self, DropConnection};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

pub struct FakeAws {
    pub endpoint: String,
    task: JoinHandle<()>,
}

impl FakeAws {
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

/// Every entry accepted, each with its own id, as EventBridge answers.
fn put_events_answer(request: &Value) -> Value {
    let entries = request["Entries"].as_array().map_or(0, Vec::len);
    let ids: Vec<Value> = (0..entries)
        .map(|_| json!({"EventId": uuid::Uuid::new_v4().to_string()}))
        .collect();
    json!({"FailedEntryCount": 0, "Entries": ids})
}

impl Drop for FakeAws {
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
    if target == "AWSEvents.PutEvents" {
        return http::json(StatusCode::OK, &put_events_answer(&body));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_events_accepts_every_entry_with_its_own_id() {
        for entries in [0, 1, 10] {
            let request = json!({"Entries": vec![json!({"Source": "refunds"}); entries]});
            let answer = put_events_answer(&request);
            assert_eq!(answer["FailedEntryCount"], 0);
            let ids: std::collections::HashSet<_> = answer["Entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["EventId"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(ids.len(), entries, "{answer}");
        }
    }
}
