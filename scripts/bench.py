#!/usr/bin/env python3
"""`make bench`: measures the functions as they are deployed and writes docs/BENCHMARKS.md.

1. Cold start of each function and of a hello-world `lambda_runtime` function, built with
   the release profile in this run, under a local Runtime API (`refund-bench cold-start`).
2. The zipped arm64 bootstrap of each function (`cargo lambda build --release --arm64`).
3. Worker concurrency against the gateway emulator (`refund-bench worker-batch`).
4. API overhead: criterion with the in-memory queue, and against moto as a ratio of a bare
   SendMessage (`refund-bench api-overhead`).
5. 1,000 refunds end to end on the local stack.
6. A cost line from the measured durations.

The figures go between the markers in docs/BENCHMARKS.md; the prose around them, the
analysis of the goals, is written by people and kept.
"""

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

from cfnlint.decode import cfn_yaml

from running_stack import local_stack

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
OUT = TARGET / "bench"
DOC = ROOT / "docs/BENCHMARKS.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# AWS Lambda, arm64, us-east-1, first 7.5 billion GB-s a month (aws.amazon.com/lambda/pricing).
PRICE_PER_GB_S = 0.0000133334
PRICE_PER_MILLION_REQUESTS = 0.20

GOALS = {
    "startup_ratio": 1.5,
    "peak_rss_mb": 16,
    "zip_mb": 3,
    "batch_ratio": 1.2,
    "api_ratio": 1.1,
}


def say(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(*command, **kwargs):
    say(" ".join(str(c) for c in command))
    subprocess.run([str(c) for c in command], cwd=ROOT, check=True, **kwargs)


def bench_tool(report, *args):
    out = OUT / f"{report}.json"
    run(TARGET / "release/refund-bench", "--events", ROOT / "events", "--out", out, *args)
    return json.loads(out.read_text())


def cold_start(runs):
    reports = {r["name"]: r for r in bench_tool("cold-start", "cold-start", "--bin-dir", TARGET / "release",
                                                "--runs", runs)}
    return reports


def package_sizes():
    run(ROOT / ".venv/bin/cargo-lambda", "lambda", "build", "--release", "--arm64", "--locked",
        "--bin", "refund-api", "--bin", "refund-worker")
    sizes = {}
    for name in ("refund-api", "refund-worker"):
        bootstrap = TARGET / "lambda" / name / "bootstrap"
        # As SAM packages it: one deflated entry.
        archive = OUT / f"{name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(bootstrap, "bootstrap")
        sizes[name] = {"bootstrap": bootstrap.stat().st_size, "zip": archive.stat().st_size}
    return sizes


def criterion_median_ns():
    run("cargo", "bench", "--locked", "-p", "refund-bench", "--bench", "api_handler")
    estimates = TARGET / "criterion/api_handler_in_memory_queue/new/estimates.json"
    return json.loads(estimates.read_text())["median"]["point_estimate"]


def http_json(method, url, timeout=30):
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.status, json.loads(answer.read() or b"null")


def end_to_end(refunds, clients):
    """`refunds` PUTs on the local stack; each timed from its 202 to its last effect."""
    logs = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    with local_stack(logs, GATEWAY_FLAGS="") as stack:
        api, gateway = stack["api"], stack["gateway"]
        tickets = [str(uuid.uuid4()) for _ in range(refunds)]
        accepted_ms = {}

        def put(ticket):
            status, _ = http_json("PUT", f"{api}/ticket-refund/{ticket}")
            if status != 202:
                raise RuntimeError(f"PUT {ticket} answered {status}")
            accepted_ms[ticket] = time.time() * 1000

        started = time.time() * 1000
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            list(pool.map(put, tickets))
        say(f"{refunds} refunds accepted in {(time.time() * 1000 - started) / 1000:.1f} s")

        wanted = set(tickets)
        deadline = time.monotonic() + 900
        while True:
            voided = effects_at(f"{gateway}/receipts-api/voided")
            refunded = effects_at(f"{gateway}/payments-api/refunds")
            done = wanted & voided.keys() & refunded.keys()
            if len(done) == len(wanted):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(done)} of {refunds} refunds done after 900 s; logs in {logs}")
            time.sleep(0.5)
    finished = {t: max(voided[t], refunded[t]) for t in tickets}
    latencies = sorted(finished[t] - accepted_ms[t] for t in tickets)
    span_s = (max(finished.values()) - started) / 1000
    return {
        "refunds": refunds,
        "clients": clients,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1],
        "refunds_per_s": refunds / span_s,
    }


def effects_at(listing):
    """ticket id → when its effect happened, from one of the emulator's listings."""
    return {e["ticket_id"]: e["at_ms"] for e in http_json("GET", listing)[1]["items"]}


def percentile(sorted_values, q):
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def memory_sizes():
    template = cfn_yaml.load(str(ROOT / "template.yaml"))
    default = template.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
    resources = template["Resources"]
    return {
        name: resources[logical]["Properties"].get("MemorySize", default)
        for name, logical in (("refund-api", "RefundApiFunction"), ("refund-worker", "RefundWorkerFunction"))
    }


def cost(api, batch):
    """Billed GB-seconds per million refunds: one API call each (its median against moto with
    the status write, as deployed; moto answers about as fast as SQS and DynamoDB do), and a
    tenth of a batch of 10."""
    memory = memory_sizes()
    api_ms = math.ceil(api["moto"]["handler_with_status_us"]["median"] / 1000)
    worker_batch_ms = math.ceil(batch["batch_of_ten_us"]["median"] / 1000)
    gb_s = 1e6 * (api_ms / 1000 * memory["refund-api"] / 1024
                  + worker_batch_ms / 10 / 1000 * memory["refund-worker"] / 1024)
    return {
        "memory_mb": memory,
        "api_billed_ms": api_ms,
        "worker_batch_billed_ms": worker_batch_ms,
        "gb_s_per_million": gb_s,
        "usd_per_million": gb_s * PRICE_PER_GB_S,
        "request_usd_per_million": PRICE_PER_MILLION_REQUESTS * 1.1,
    }


def mark(ok):
    return "met" if ok else "**not met**"


def render(results):
    cold, sizes, batch, api, e2e, money = (results[k] for k in ("cold", "sizes", "batch", "api", "e2e", "cost"))
    hello = cold["hello-lambda"]["startup_cost_us"]
    lines = [
        f"Measured {results['when']} on {results['machine']}; `make bench` "
        f"(cold start: fastest and median of {cold['hello-lambda']['runs']} alternating runs).",
        "",
        "### Cold start under a local Runtime API (release build, this machine's architecture)",
        "",
        "| function | start-up cost, fastest | median | ratio to hello-world (fastest / median) "
        "| init (median) | first − warm (median) | peak RSS (max) | goal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("hello-lambda", "refund-api", "refund-worker"):
        r = cold[name]
        cost_us = r["startup_cost_us"]
        ratio_min, ratio_med = cost_us["min"] / hello["min"], cost_us["median"] / hello["median"]
        rss_mb = r["peak_rss_kib"]["max"] / 1024
        ok = name == "hello-lambda" or (ratio_min <= GOALS["startup_ratio"] and rss_mb <= GOALS["peak_rss_mb"])
        lines.append(
            f"| {name} | {cost_us['min'] / 1000:.2f} ms | {cost_us['median'] / 1000:.2f} ms "
            f"| {ratio_min:.2f} / {ratio_med:.2f} | {r['init_us']['median'] / 1000:.2f} ms "
            f"| {(r['first_us']['median'] - r['warm_us']['median']) / 1000:.2f} ms | {rss_mb:.1f} MB "
            f"| {'anchor' if name == 'hello-lambda' else mark(ok)} |")
    lines += [
        "",
        "### Package (arm64, `cargo lambda build --release --arm64`, zipped as SAM does)",
        "",
        "| function | bootstrap | zipped | goal (≤ 3 MB) |",
        "| --- | --- | --- | --- |",
    ]
    for name, s in sizes.items():
        lines.append(f"| {name} | {s['bootstrap'] / 1e6:.2f} MB | {s['zip'] / 1e6:.2f} MB "
                     f"| {mark(s['zip'] <= GOALS['zip_mb'] * 1e6)} |")
    one = batch["one_call_us"]["median"]
    ten = batch["batch_of_ten_us"]["median"]
    hang = batch["hanging"]
    lines += [
        "",
        f"### Worker concurrency ({batch['latency_ms']} ms per upstream call, median of "
        f"{batch['repetitions']})",
        "",
        "| measure | time | ratio to one call | goal |",
        "| --- | --- | --- | --- |",
        f"| one call (`void_receipt`) | {one / 1000:.1f} ms | 1.00 | |",
        f"| batch of 1 (both calls) | {batch['batch_of_one_us']['median'] / 1000:.1f} ms "
        f"| {batch['batch_of_one_us']['median'] / one:.2f} | |",
        f"| batch of 10 | {ten / 1000:.1f} ms | {ten / one:.2f} | {mark(ten / one <= GOALS['batch_ratio'])} |",
        f"| batch of 10, one upstream hanging: the other {hang['others_done']} done by "
        f"| {hang['others_done_us']['max'] / 1000:.1f} ms | {hang['others_done_us']['max'] / one:.2f} "
        f"| {mark(hang['others_done'] == 9 and hang['others_done_us']['max'] / one <= GOALS['batch_ratio'])} |",
        f"| that batch, ending at the upstream timeout ({batch['upstream_timeout_ms']} ms) "
        f"| {hang['batch_us'] / 1000:.0f} ms | | |",
    ]
    handler, bare = api["moto"]["handler_us"]["median"], api["moto"]["bare_send_us"]["median"]
    with_status = api["moto"]["handler_with_status_us"]["median"]
    lines += [
        "",
        "### API handler overhead",
        "",
        "| measure | median | goal |",
        "| --- | --- | --- |",
        f"| handler, in-memory queue (criterion) | {api['in_memory_ns'] / 1000:.1f} µs | |",
        f"| bare `SendMessage` to moto, same client | {bare / 1000:.2f} ms | |",
        f"| handler with the SQS adapter, moto | {handler / 1000:.2f} ms ({handler / bare:.3f}×) "
        f"| {mark(handler / bare <= GOALS['api_ratio'])} |",
        f"| handler with the status write (one conditional `UpdateItem`) and the SQS adapter, moto "
        f"| {with_status / 1000:.2f} ms ({with_status / handler:.2f}× the handler without it) | |",
        "",
        *(end_to_end_lines(e2e)),
        "### Cost",
        "",
        f"{money['gb_s_per_million']:.0f} GB-s per million refunds "
        f"(refund-api {money['api_billed_ms']} ms at {money['memory_mb']['refund-api']} MB; a tenth of a "
        f"{money['worker_batch_billed_ms']} ms batch of 10 at {money['memory_mb']['refund-worker']} MB), "
        f"${money['usd_per_million']:.2f} at ${PRICE_PER_GB_S} per GB-s (arm64, us-east-1), plus "
        f"${money['request_usd_per_million']:.2f} of requests (1.1 million: one API call per refund and "
        f"one worker invocation per ten).",
    ]
    return "\n".join(lines)


def end_to_end_lines(e2e):
    if e2e is None:
        return ["### End to end on the local stack", "", "Not measured in this run (`--skip-e2e`).", ""]
    return [
        f"### End to end on the local stack ({e2e['refunds']} refunds, {e2e['clients']} concurrent callers)",
        "",
        "| 202 → voided and refunded, p50 | p99 | max | refunds/s |",
        "| --- | --- | --- | --- |",
        f"| {e2e['p50_ms']:.0f} ms | {e2e['p99_ms']:.0f} ms | {e2e['max_ms']:.0f} ms | {e2e['refunds_per_s']:.1f} |",
        "",
    ]


def write_doc(table):
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        raise SystemExit(f"bench: {DOC} lost its {BEGIN} / {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 21)))
    parser.add_argument("--refunds", type=int, default=int(os.environ.get("BENCH_REFUNDS", 1000)))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--skip-e2e", action="store_true", help="leave out the 1,000 refunds on the local stack")
    parser.add_argument("--e2e-only", action="store_true",
                        help="run only the refunds on the local stack; the other figures are the reports the "
                             "last run left in target/bench (for an end-to-end run that was interrupted)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.e2e_only:
        results = json.loads((OUT / "results.json").read_text()) if (OUT / "results.json").exists() else {}
        results.update({
            "cold": {r["name"]: r for r in json.loads((OUT / "cold-start.json").read_text())},
            "batch": json.loads((OUT / "worker-batch.json").read_text()),
            "api": {"moto": json.loads((OUT / "api-overhead.json").read_text()),
                    "in_memory_ns": json.loads((TARGET / "criterion/api_handler_in_memory_queue/new/estimates.json")
                                               .read_text())["median"]["point_estimate"]},
            "sizes": {name: {"bootstrap": (TARGET / "lambda" / name / "bootstrap").stat().st_size,
                             "zip": (OUT / f"{name}.zip").stat().st_size}
                      for name in ("refund-api", "refund-worker")},
        })
        results.setdefault("when", time.strftime("%Y-%m-%d", time.gmtime()))
        results.setdefault("machine", f"{os.cpu_count()} cores, {os.uname().machine}")
        results["e2e"] = end_to_end(args.refunds, args.clients)
        finish(results)
        return

    # As `sam build` does (`--bin`, default members): the dev-only crates' features stay out.
    run("cargo", "build", "--release", "--locked", "--bin", "refund-api", "--bin", "refund-worker")
    run("cargo", "build", "--release", "--locked", "-p", "refund-bench", "--bins")
    results = {
        "when": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {os.uname().machine}",
        "cold": cold_start(args.runs),
        "batch": bench_tool("worker-batch", "worker-batch"),
        "api": {"moto": bench_tool("api-overhead", "api-overhead"), "in_memory_ns": criterion_median_ns()},
        "sizes": package_sizes(),
        "e2e": None if args.skip_e2e else end_to_end(args.refunds, args.clients),
    }
    finish(results)


def finish(results):
    results["cost"] = cost(results["api"], results["batch"])
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = render(results)
    print(table)
    write_doc(table)
    say(f"wrote {DOC.relative_to(ROOT)} and {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
