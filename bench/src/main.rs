//! `refund-bench`: the measurements behind `make bench`. Each subcommand writes one JSON
//! report; `scripts/bench.py` (what `make bench` runs) calls the subcommands, reads their
//! reports and writes the figures into `docs/BENCHMARKS.md`, between its markers.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use refund_local::gateway::{self as emulator, GatewayConfig};

use refund_bench::{api_overhead, cold_start, fake_aws::FakeAws, worker_batch};

#[derive(Parser)]
#[command(
    name = "refund-bench",
    about = "Benchmarks of the refund functions (make bench)"
)]
struct Cli {
    /// The committed event fixtures.
    #[arg(long, default_value = "events")]
    events: PathBuf,
    /// Where the JSON report goes.
    #[arg(long)]
    out: PathBuf,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Start-up cost and peak RSS of each function and of the hello-world anchor.
    ColdStart {
        /// Directory with the release binaries refund-api, refund-worker, hello-lambda.
        #[arg(long)]
        bin_dir: PathBuf,
        #[arg(long, default_value_t = 21)]
        runs: usize,
    },
    /// A batch of 10 against upstream latency, and a batch with one hanging upstream.
    WorkerBatch {
        #[arg(long, default_value_t = 100)]
        latency_ms: u64,
        #[arg(long, default_value_t = 11)]
        repetitions: usize,
    },
    /// The API handler against moto SQS, as a ratio of a bare SendMessage.
    ApiOverhead {
        #[arg(long, default_value_t = 300)]
        calls: usize,
    },
}

fn fixture(events: &Path, name: &str) -> Result<String, String> {
    let path = events.join(name);
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

async fn cold_start(
    events: &Path,
    bin_dir: &Path,
    runs: usize,
    log: &Path,
) -> Result<serde_json::Value, String> {
    let aws = FakeAws::start()
        .await
        .map_err(|e| format!("fake AWS endpoint: {e}"))?;
    let refund_queue = aws.queue_url("RefundTicket");
    let dead_letter_queue = aws.queue_url("RefundTicket-dlq");
    let gateway = emulator::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        GatewayConfig::default(),
    )
    .await
    .map_err(|e| format!("gateway emulator: {e}"))?;
    let api_event = Bytes::from(fixture(events, "api-refund.json")?);
    // As deployed: the status table is set, so both functions build their DynamoDB client
    // at start-up and write the status on the first event; the worker also builds its
    // EventBridge client and announces the first refund.
    let common = vec![
        ("AWS_ENDPOINT_URL".to_owned(), aws.endpoint.clone()),
        ("REFUND_QUEUE_URL".to_owned(), refund_queue),
        ("REFUND_TABLE_NAME".to_owned(), "Refunds".to_owned()),
    ];
    let mut api_env = common.clone();
    // Read at the first listing only, never on the PUT measured here.
    api_env.push((
        "REFUND_CURSOR_KEY_SECRET_ARN".to_owned(),
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:cursor-key-AbCdEf".to_owned(),
    ));
    let mut worker_env = common.clone();
    worker_env.extend([
        ("DEAD_LETTER_QUEUE_URL".to_owned(), dead_letter_queue),
        ("GATEWAY_ADDR".to_owned(), gateway.url()),
        ("EVENT_BUS_NAME".to_owned(), "ticket-refunds".to_owned()),
    ]);
    let subject = |name: &str, env: Vec<(String, String)>, event: Bytes| cold_start::Subject {
        name: name.to_owned(),
        binary: bin_dir.join(name),
        env,
        event,
    };
    let subjects = [
        subject("hello-lambda", common.clone(), api_event.clone()),
        subject("refund-api", api_env, api_event),
        subject(
            "refund-worker",
            worker_env,
            Bytes::from(fixture(events, "sqs-one-record.json")?),
        ),
    ];
    let reports = cold_start::run(&subjects, runs, log).await?;
    serde_json::to_value(reports).map_err(|e| e.to_string())
}

fn json(report: impl serde::Serialize) -> Result<serde_json::Value, String> {
    serde_json::to_value(report).map_err(|e| e.to_string())
}

async fn bench(cli: &Cli) -> Result<serde_json::Value, String> {
    match &cli.bench {
        Bench::ColdStart { bin_dir, runs } => {
            cold_start(&cli.events, bin_dir, *runs, &cli.out.with_extension("log")).await
        }
        Bench::WorkerBatch {
            latency_ms,
            repetitions,
        } => json(worker_batch::run(*latency_ms, *repetitions).await?),
        Bench::ApiOverhead { calls } => {
            json(api_overhead::run(*calls, &fixture(&cli.events, "api-refund.json")?).await?)
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let written = bench(&cli).await.and_then(|report| {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(&cli.out, text + "\n").map_err(|e| format!("{}: {e}", cli.out.display()))
    });
    match written {
        Ok(()) => {
            println!("wrote {}", cli.out.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("refund-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
