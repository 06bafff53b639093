//! Cold start: a function binary run as Lambda runs it, under [`RuntimeApi`].
//!
//! Start-up cost = init (spawn → first `GET .../next`) + first invocation − a warm
//! invocation of the same event. Subtracting the warm call leaves only the work that
//! happens once per execution environment, wherever it happens: building clients in
//! `main`, or lazily on the first request (connection set-up, credential resolution).

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde::Serialize;

use crate::{
    runtime_api::RuntimeApi,
    stats::{Summary, micros},
};

/// A function to start: its binary, its own environment, and the event it is given.
pub struct Subject {
    pub name: String,
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
    pub event: Bytes,
}

/// One cold start, in microseconds, and the peak RSS in KiB.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    pub init_us: u64,
    pub first_us: u64,
    pub warm_us: u64,
    pub startup_cost_us: u64,
    pub peak_rss_kib: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub name: String,
    pub runs: usize,
    pub startup_cost_us: Summary,
    pub init_us: Summary,
    pub first_us: Summary,
    pub warm_us: Summary,
    pub peak_rss_kib: Summary,
    pub samples: Vec<Sample>,
}

/// What Lambda sets for every function, pointed at `runtime`; the same for every subject.
fn lambda_env(runtime: &RuntimeApi, subject: &Subject) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", subject.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", subject.name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "bench".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench".to_owned()),
        ("AWS_SESSION_TOKEN", "bench".to_owned()),
        ("TZ", ":UTC".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Warm invocations per start; their median is the warm figure.
pub const WARM_CALLS: usize = 5;

impl Sample {
    /// The sample of one start: the start-up cost is what the first event cost beyond a
    /// warm one, init included.
    fn new(init: Duration, first: Duration, warm: Duration, peak_rss_kib: u64) -> Self {
        let (init_us, first_us, warm_us) = (micros(init), micros(first), micros(warm));
        Self {
            init_us,
            first_us,
            warm_us,
            startup_cost_us: (init_us + first_us).saturating_sub(warm_us),
            peak_rss_kib,
        }
    }
}

/// Starts `subject` once, gives it the event 1 + [`WARM_CALLS`] times, and measures.
pub async fn measure(subject: &Subject, log: &Path) -> Result<Sample, String> {
    let mut runtime = RuntimeApi::start()
        .await
        .map_err(|e| format!("runtime API: {e}"))?;
    let (stdout, stderr) = log_files(log)?;
    let spawned = Instant::now();
    let mut child = tokio::process::Command::new(&subject.binary)
        .env_clear()
        .envs(lambda_env(&runtime, subject))
        .envs(subject.env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", subject.binary.display()))?;
    // Only a child that has been waited for has no id, and this one has not been yet.
    let pid = child
        .id()
        .ok_or_else(|| format!("{}: no process id", subject.name))?;
    // A function that exits (a failed start) is reported at once, not after the patience.
    let measured = tokio::select! {
        measured = sample(&mut runtime, spawned, &subject.event, pid) => measured,
        status = child.wait() => Err(match status {
            Ok(status) => format!("exited during the measurement ({status})"),
            Err(e) => format!("cannot wait for the process: {e}"),
        }),
    };
    let _ = child.kill().await;
    measured.map_err(|e| format!("{}: {e}", subject.name))
}

/// The function's stdout and stderr: both appended to `log`, kept for a failed start.
fn log_files(log: &Path) -> Result<(File, File), String> {
    let stdout = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let stderr = stdout.try_clone().map_err(|e| e.to_string())?;
    Ok((stdout, stderr))
}

/// Init (`spawned` to the first `GET .../next`), the first invocation, the median warm
/// one, and the peak RSS once the function is idle again, as a warm environment spends
/// most of its life between events.
async fn sample(
    runtime: &mut RuntimeApi,
    spawned: Instant,
    event: &Bytes,
    pid: u32,
) -> Result<Sample, String> {
    let init = runtime.next().await? - spawned;
    let first = invoke(runtime, "first", event).await?;
    let warm = warm_median(runtime, event).await?;
    runtime.next().await?;
    Ok(Sample::new(init, first, warm, peak_rss_kib(pid)?))
}

/// The median of [`WARM_CALLS`] warm invocations: one slow warm call would make the
/// start-up cost look smaller, and subtracted noise does not only add.
async fn warm_median(runtime: &mut RuntimeApi, event: &Bytes) -> Result<Duration, String> {
    let mut warm = Vec::with_capacity(WARM_CALLS);
    for n in 0..WARM_CALLS {
        runtime.next().await?;
        warm.push(invoke(runtime, &format!("warm-{n}"), event).await?);
    }
    warm.sort_unstable();
    Ok(warm[WARM_CALLS / 2])
}

async fn invoke(runtime: &mut RuntimeApi, id: &str, event: &Bytes) -> Result<Duration, String> {
    let sent = Instant::now();
    runtime.invoke(id, event.clone());
    Ok(runtime.answer(id).await? - sent)
}

/// `VmHWM` of a live process: the most resident memory it ever had, in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmHWM in /proc/{pid}/status"))
}

/// Runs every subject `runs` times, alternating, so that drift on the machine (another
/// build, thermal limits) reaches every subject alike.
pub async fn run(subjects: &[Subject], runs: usize, log: &Path) -> Result<Vec<Report>, String> {
    let mut samples: Vec<Vec<Sample>> = vec![Vec::with_capacity(runs); subjects.len()];
    for _ in 0..runs {
        for (subject, samples) in subjects.iter().zip(samples.iter_mut()) {
            samples.push(measure(subject, log).await?);
        }
    }
    Ok(subjects
        .iter()
        .zip(samples)
        .map(|(subject, samples)| {
            let of = |f: fn(&Sample) -> u64| Summary::of(samples.iter().map(f));
            Report {
                name: subject.name.clone(),
                runs,
                startup_cost_us: of(|s| s.startup_cost_us),
                init_us: of(|s| s.init_us),
                first_us: of(|s| s.first_us),
                warm_us: of(|s| s.warm_us),
                peak_rss_kib: of(|s| s.peak_rss_kib),
                samples,
            }
        })
        .collect())
}
