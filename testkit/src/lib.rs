//! Test support: adapters are tested against real servers, not mocks of the SDK.
//!
//! [`Moto`] starts a moto server (a real SQS endpoint speaking the JSON protocol) on a
//! free loopback port for one test and stops it when dropped, also when the test fails.
//! The same server answers DynamoDB and Secrets Manager.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aws_config::{BehaviorVersion, ConfigLoader, Region};
use aws_sdk_sqs::config::Credentials;

/// A running moto server, killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

/// The moto executable: `$MOTO_SERVER`, else the project's `.venv` (made by `make test`).
/// A missing server fails the test: an adapter test that silently skips proves nothing.
fn moto_executable() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server")
}

/// A port the OS considers free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("no free loopback port")
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        let executable = moto_executable();
        let child = Command::new(&executable)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (run `make test`, which installs moto in .venv, or set MOTO_SERVER)",
                    executable.display()
                )
            });
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto did not listen on {addr} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// An SQS client for this server, built by the project's own constructor so that it
    /// has the production timeouts.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        sqs_client_for(&self.endpoint).await
    }

    /// A Secrets Manager client for this server (moto serves every service on one port),
    /// for tests to create the secrets the code under test reads.
    pub async fn secretsmanager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&loader_for(&self.endpoint).load().await)
    }

    /// A DynamoDB client for this server, built by the project's own constructor so that
    /// it has the production timeouts.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        refund::status::dynamodb_client(loader_for(&self.endpoint)).await
    }

    /// Creates the refund status table `name`, with its indexes, from the project's own
    /// definition (`refund::status::table`).
    pub async fn create_refund_table(&self, name: &str) {
        refund::status::create_table(&self.dynamodb().await, name)
            .await
            .expect("create refund table");
    }

    /// Creates a queue and returns its URL.
    pub async fn create_queue(&self, name: &str) -> String {
        self.sqs()
            .await
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SQS client for any endpoint, with test credentials and the production timeouts.
pub async fn sqs_client_for(endpoint: &str) -> aws_sdk_sqs::Client {
    refund::queue::sqs_client(loader_for(endpoint)).await
}

/// What `aws_config::defaults` gives a function, pointed at `endpoint` with test
/// credentials and the project's HTTP stack: hand it to the project's own client
/// constructors, or load it for a client of a service the project does not wrap.
pub fn loader_for(endpoint: &str) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(refund::http::aws_http_client())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing", "testing", None, None, "testkit",
        ))
}

/// An in-memory log sink for tests that read what was logged: clones share one buffer,
/// so `.with_writer(move || buffer.clone())` hands the subscriber a writer and the test
/// keeps the reader.
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
