//! Secrets read from a real Secrets Manager endpoint (moto): the upstream token (read at
//! start-up and again after a 401, sent as `Authorization: Bearer`, never part of an
//! error's text) and the cursor key.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use aws_sdk_secretsmanager::primitives::Blob;
use futures::future::BoxFuture;
use refund_shared::{
    aws::secrets_client,
    config::ConfigError,
    correlation::CorrelationId,
    gateway::{
        Gateway, GatewayToken, HttpGateway, RefundCall, SecretsManagerToken, TokenCache,
        TokenSource,
    },
    secret::SecretError,
    store::{
        Cursor, CursorCodec, CursorKey, InMemoryRefundStore, ListQuery, PageLimit, RefundRequest,
        RefundStore,
    },
};
use testkit::{Moto, loader_for};
use url::Url;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method},
};

const TOKEN: &str = "gw-T0ken.abc123";
const ROTATED: &str = "gw-T0ken.rotated456";

const TTL: Duration = Duration::from_secs(300);

async fn create_secret(moto: &Moto, name: &str, value: &str) -> String {
    secrets_client(moto.loader())
        .await
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("secret arn")
}

fn call() -> RefundCall {
    RefundCall {
        ticket_id: "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f".parse().unwrap(),
        idempotency_key: "2c2b4e45-5d0f-5c3e-9a1e-0b8c6f3d2a19".parse().unwrap(),
        correlation_id: CorrelationId::parse("corr-secret").unwrap(),
        trace: None,
    }
}

/// A `TokenSource` that counts the reads it passes on.
struct Counting<S> {
    inner: S,
    reads: Arc<AtomicUsize>,
}

impl<S: TokenSource> TokenSource for Counting<S> {
    fn read(&self) -> BoxFuture<'_, Result<GatewayToken, SecretError>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read()
    }
}

/// What `main` does, then a rotation: the secret is read at start-up, and after the
/// rotation the next call's 401 makes the gateway read the secret once more and repeat the
/// call with the new token; the calls after it send the new token without a read.
#[tokio::test]
async fn after_a_rotation_a_401_re_reads_the_secret_once_and_the_call_succeeds() {
    let moto = Moto::start();
    // Pasted with a trailing newline, as secrets often are.
    let arn = create_secret(&moto, "gateway-token", &format!("{TOKEN}\n")).await;
    let reads = Arc::new(AtomicUsize::new(0));
    let source = Counting {
        inner: SecretsManagerToken::new(secrets_client(moto.loader()).await, &arn),
        reads: reads.clone(),
    };
    let tokens = TokenCache::read_from(source, Duration::from_secs(300))
        .await
        .unwrap();
    assert!(!format!("{tokens:?}").contains(TOKEN));
    assert_eq!(reads.load(Ordering::SeqCst), 1, "read at start-up");

    let server = MockServer::start().await;
    let accept = |token: &str| {
        Mock::given(method("PUT"))
            .and(header("authorization", format!("Bearer {token}").as_str()))
            .respond_with(ResponseTemplate::new(200))
    };
    accept(TOKEN).mount(&server).await;
    let gateway = HttpGateway::new(&Url::parse(&server.uri()).unwrap(), Duration::from_secs(5))
        .unwrap()
        .with_tokens(Some(tokens));
    assert_eq!(gateway.void_receipt(&call()).await, Ok(200));

    // The rotation: the secret gets a new value, and the services accept only that one.
    secrets_client(moto.loader())
        .await
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(ROTATED)
        .send()
        .await
        .unwrap();
    server.reset().await;
    accept(ROTATED).mount(&server).await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(401))
        .with_priority(10)
        .mount(&server)
        .await;

    assert_eq!(gateway.refund_payment(&call()).await, Ok(200));
    assert_eq!(reads.load(Ordering::SeqCst), 2, "one re-read after the 401");
    assert_eq!(gateway.void_receipt(&call()).await, Ok(200));
    assert_eq!(reads.load(Ordering::SeqCst), 2);
    let sent: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let bearer = |token: &str| format!("Bearer {token}");
    assert_eq!(sent, [bearer(TOKEN), bearer(ROTATED), bearer(ROTATED)]);
}

#[tokio::test]
async fn no_arn_means_no_token_and_no_call_to_secrets_manager() {
    // Nothing listens at this endpoint: a read would fail.
    let loader = loader_for("http://127.0.0.1:9");
    assert!(TokenCache::load(None, loader, TTL).await.unwrap().is_none());
}

#[tokio::test]
async fn an_unreadable_secret_stops_start_up_naming_the_variable() {
    let moto = Moto::start();
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nowhere-AbCdEf";

    let error = TokenCache::load(Some(missing), moto.loader(), TTL)
        .await
        .unwrap_err();

    let text = error.to_string();
    assert!(matches!(error, ConfigError::Unusable { .. }), "{error:?}");
    assert!(
        text.starts_with("GATEWAY_TOKEN_SECRET_ARN: cannot read the secret"),
        "{text}"
    );
    assert!(!text.contains('\n'), "one line: {text}");
}

#[tokio::test]
async fn a_binary_or_unusable_secret_is_refused_without_repeating_it() {
    let moto = Moto::start();
    let client = secrets_client(moto.loader()).await;
    let binary = client
        .create_secret()
        .name("binary-token")
        .secret_binary(Blob::new(TOKEN.as_bytes()))
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    assert!(matches!(
        GatewayToken::read(&client, &binary).await,
        Err(SecretError::NotAString)
    ));

    let unusable_value = format!("{TOKEN} with spaces");
    let unusable = create_secret(&moto, "unusable-token", &unusable_value).await;
    let error = GatewayToken::read(&client, &unusable).await.unwrap_err();
    assert!(matches!(error, SecretError::Unusable(_)), "{error:?}");
    let at_start_up = TokenCache::load(Some(&unusable), moto.loader(), TTL)
        .await
        .unwrap_err();
    let texts = [
        error.to_string(),
        format!("{error:?}"),
        at_start_up.to_string(),
    ];
    for text in texts {
        assert!(!text.contains(TOKEN), "{text}");
    }
}

#[tokio::test]
async fn the_cursor_key_is_read_from_its_secret_and_a_short_one_is_refused() {
    let moto = Moto::start();
    let client = secrets_client(moto.loader()).await;
    let key = "generated-by-cloudformation-0123456789abcdefghijkl";
    let arn = create_secret(&moto, "cursor-key", key).await;
    let codec = CursorCodec::new(CursorKey::read(&client, &arn).await.unwrap());
    let same = CursorCodec::new(CursorKey::from_bytes(key.as_bytes()).unwrap());
    let other = CursorCodec::new(CursorKey::from_bytes(&[7; 32]).unwrap());
    let cursor = a_cursor().await;
    let text = codec.encode(&cursor);
    assert_eq!(same.decode(&text, None), Ok(cursor));
    assert!(other.decode(&text, None).is_err());

    let short = create_secret(&moto, "short-cursor-key", "too-short").await;
    let error = CursorKey::read(&client, &short).await.unwrap_err();
    assert!(matches!(error, SecretError::Unusable(_)), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("too-short"));
}

/// A real cursor: the second page of a listing of two refunds.
async fn a_cursor() -> Cursor {
    let store = InMemoryRefundStore::new();
    for ticket in [
        "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f",
        "1f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f",
    ] {
        let request = RefundRequest {
            ticket_id: ticket.parse().unwrap(),
            idempotency_key: "2c2b4e45-5d0f-5c3e-9a1e-0b8c6f3d2a19".parse().unwrap(),
            correlation_id: CorrelationId::parse("corr-secret").unwrap(),
            requested_by: None,
            accepted_at: time::OffsetDateTime::now_utc(),
            command_id: uuid::Uuid::new_v4(),
        };
        store.accept(request).await.unwrap();
    }
    let query = ListQuery {
        limit: PageLimit::new(1).unwrap(),
        ..ListQuery::default()
    };
    store.list(query).await.unwrap().next_cursor.unwrap()
}
