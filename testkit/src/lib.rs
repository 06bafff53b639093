//! Test support: adapters are tested against real servers, not mocks of the SDK.
//!
//! [`Moto`] starts a moto server (a real SQS endpoint speaking the JSON protocol) on a
//! free loopback port for one test and stops it when dropped, also when the test fails.
//! The same server answers DynamoDB and Secrets Manager.
//!
//! testkit knows nothing of refund-shared (so that crate's own tests can use it without a
//! dependency cycle): [`Moto::loader`] is the SDK configuration of a function pointed at
//! the server, which tests hand to the project's own client constructors
//! (`refund_shared::aws::sqs_client(moto.loader())`), so the clients under test have the
//! production HTTP stack and timeouts.

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

    /// What `aws_config::defaults` gives a function, pointed at this server with test
    /// credentials; the project's client constructors add the HTTP stack and timeouts.
    pub fn loader(&self) -> ConfigLoader {
        loader_for(&self.endpoint)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// [`Moto::loader`] for any endpoint (a second server, a closed port).
pub fn loader_for(endpoint: &str) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing", "testing", None, None, "testkit",
        ))
}

/// Creates a queue and returns its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// An in-memory log sink for tests that read what was logged: clones share one buffer,
/// so `.with_writer(move || buffer.clone())` hands the subscriber a writer and the test
/// keeps the reader.
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// A plain-text `tracing` subscriber (no colours) that writes every line up to `level` into
    /// this buffer; install it globally, per thread or per closure, as the test needs.
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }

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
