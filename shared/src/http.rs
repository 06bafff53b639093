//! One HTTP stack for every outbound call: the AWS SDK clients and the gateway client.
//!
//! Why not the SDK's default HTTP client: at start-up it reads and parses the system's whole
//! certificate store (every file under `/etc/ssl/certs` here, the bundle on Lambda), 5 to 15
//! ms of init on a function whose own start is 2 ms, and it links aws-lc, a second copy of
//! the crypto the gateway client links anyway. Instead, both sides share:
//!
//! - rustls with the *ring* provider (no C library to build, about 1.5 MB less per bootstrap);
//! - Mozilla's roots compiled in ([`webpki_roots`]): trust anchors that need no parsing, so
//!   the trust store costs microseconds. AWS endpoints chain to Amazon Trust Services roots
//!   and the upstream services to public CAs, both in that set. The price: a private CA is
//!   not trusted (no `SSL_CERT_FILE`), and the roots change with a rebuild, not an OS update.
//! - reqwest as the SDK's transport, through the small [`HttpClient`] adapter below, so the
//!   binary carries one HTTP/1.1 client instead of two.
//!
//! `docs/BENCHMARKS.md` has the profile this design answers.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use aws_smithy_runtime_api::client::{
    http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    },
    orchestrator::{HttpRequest, HttpResponse},
    result::ConnectorError,
    runtime_components::RuntimeComponents,
};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;

/// The TLS configuration of every client: ring, Mozilla's roots, TLS 1.2 and 1.3. Built
/// once per process (the worker's SDK and gateway clients share it); a clone shares the
/// roots and the provider.
pub fn tls_config() -> rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            // ring supports both safe default versions; this cannot fail.
            .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"))
            .with_root_certificates(roots)
            .with_no_client_auth()
        })
        .clone()
}

/// A reqwest client builder with [`tls_config`], no proxy lookup and no redirects: a 3xx
/// from an AWS endpoint or an upstream service is a misconfiguration, not a place to go.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config())
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// Connect timeout of the AWS clients; each operation's attempt and total timeouts are
/// set by the client constructors (`queue::sqs_timeouts` and the like).
const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The SDK's HTTP client for every AWS client in this process: one connection pool and one
/// TLS configuration, built on first use. A failure to build it is a start-up failure.
pub fn aws_http_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let client = client_builder()
                .connect_timeout(AWS_CONNECT_TIMEOUT)
                .build()
                .unwrap_or_else(|e| panic!("cannot build the AWS HTTP client: {e}"));
            SharedHttpClient::new(SdkTransport(client))
        })
        .clone()
}

/// What a function hands the project's AWS client constructors: `aws_config::defaults`
/// (which honours `AWS_ENDPOINT_URL`) on the project's HTTP stack, with the region and
/// credentials taken straight from the environment when it has them, as Lambda's always
/// does. Left to itself, the loader builds the whole default credential chain at start-up
/// (an STS client for web identity, an IMDS client, profile parsing): most of its 0.8 ms
/// in the profile behind docs/BENCHMARKS.md, for providers a Lambda never asks. Without
/// those variables (a developer's machine) the default chains apply.
pub fn aws_config_loader() -> aws_config::ConfigLoader {
    aws_config_loader_from(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

fn aws_config_loader_from(env: impl Fn(&str) -> Option<String>) -> aws_config::ConfigLoader {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(aws_http_client());
    if let Some(region) = env("AWS_REGION") {
        loader = loader.region(aws_config::Region::new(region));
    }
    if env("AWS_ACCESS_KEY_ID").is_some() && env("AWS_SECRET_ACCESS_KEY").is_some() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader
}

/// reqwest as the SDK's transport.
#[derive(Debug, Clone)]
struct SdkTransport(reqwest::Client);

impl HttpClient for SdkTransport {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(SdkConnector {
            client: self.0.clone(),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug)]
struct SdkConnector {
    client: reqwest::Client,
    read_timeout: Option<Duration>,
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            // Every operation this project calls sends a body held in memory.
            let body = body.bytes().map(Bytes::copy_from_slice).ok_or_else(|| {
                ConnectorError::user("a streaming request body is not supported".into())
            })?;
            let mut outbound = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body);
            if let Some(timeout) = read_timeout {
                outbound = outbound.timeout(timeout);
            }
            let response = outbound.send().await.map_err(classify)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(classify)?;
            let mut answer = http::Response::new(SdkBody::from(body));
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The SDK retries timeouts and I/O errors (a refused or reset connection) as transient;
/// anything else is reported as it is.
fn classify(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn a_lambda_environment_gives_region_and_credentials_without_the_default_chains() {
        let lambda = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ];
        let env = |name: &str| {
            lambda
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let config = aws_config_loader_from(env).load().await;
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let provider = format!("{:?}", config.credentials_provider());
        assert!(
            provider.contains("EnvironmentVariableCredentialsProvider"),
            "{provider}"
        );

        let elsewhere = aws_config_loader_from(|_| None).load().await;
        let provider = format!("{:?}", elsewhere.credentials_provider());
        assert!(
            !provider.contains("EnvironmentVariableCredentialsProvider"),
            "without the variables the default chain applies: {provider}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        let client = client_builder().build().unwrap();
        let error = client
            .get(format!("http://127.0.0.1:{}/", closed_port()))
            .send()
            .await
            .unwrap_err();
        let classified = classify(error);
        assert!(classified.is_io(), "{classified:?}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts, then stays silent.
        let _held = tokio::spawn(async move {
            let _connection = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let client = client_builder().build().unwrap();
        let error = client
            .get(format!("http://{addr}/"))
            .timeout(Duration::from_millis(100))
            .send()
            .await
            .unwrap_err();
        let classified = classify(error);
        assert!(classified.is_timeout(), "{classified:?}");
    }

    #[tokio::test]
    async fn an_https_address_gets_a_tls_handshake() {
        // The client speaks TLS from the compiled-in configuration (reqwest has no crypto
        // provider of its own here): a plain-HTTP answer fails the handshake.
        let client = client_builder().build().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let error = client
            .get(format!("https://localhost:{}/", addr.port()))
            .send()
            .await
            .unwrap_err();
        assert!(error.is_connect(), "{error:?}");
    }
}
