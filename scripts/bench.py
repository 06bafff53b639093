#!/usr/bin/env python3
"""`make bench`: measures the functions as they are deployed and writes docs/BENCHMARKS.md.

1. Cold start of each function and of a hello-world `lambda_runtime` function, built with
   the release profile in this run, under a local Runtime API (`refund-bench cold-start`).
2. The zipped arm64 bootstrap of each function (`cargo lambda build --release --arm64`).
3. Worker concurrency against the gateway emulator (`refund-bench worker-batch`).
4. API overhead: criterion with the in-memory queue, and against moto as a ratio of a bare
   SendMessage (`refund-bench api-overhead`).
5. 1,000 refunds end to end on the local stack.
6. Upstream calls per refund under the chaos fault mix (`scripts/chaos.py`, 200 tickets).
7. The cost per million refunds: Lambda from the measured durations, and API Gateway, SQS,
   DynamoDB and EventBridge from the billed units per refund (PER_REFUND), each priced.

The figures go between the markers in docs/BENCHMARKS.md; the prose around them, the
analysis of the goals, is written by people and kept.
"""

import argparse
import concurrent.futures
import json
import math
import os
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

# --- what a refund is billed: prices and billed units per refund --------------------------------
# Prices in USD, us-east-1, from each service's pricing page as read in 2026-12:
#   aws.amazon.com/lambda/pricing: arm64, first 7.5 billion GB-s a month; requests
#   aws.amazon.com/api-gateway/pricing: HTTP APIs, first 300 million requests a month
#   aws.amazon.com/sqs/pricing: standard queues, after the free first million requests a month;
#     every 64 KB chunk of a request's payload is one request
#   aws.amazon.com/dynamodb/pricing/on-demand: on-demand write and read request units
#     (a write of an item up to 1 KB is 1 WRU; a strongly consistent read up to 4 KB is 1 RRU)
#   aws.amazon.com/eventbridge/pricing: custom events, every 64 KB chunk one event
PRICE_PER_GB_S = 0.0000133334
USD_PER_MILLION = {
    "lambda_requests": 0.20,
    "http_api_requests": 1.00,
    "sqs_requests": 0.40,
    "dynamodb_wru": 0.625,
    "dynamodb_rru": 0.125,
    "eventbridge_events": 1.00,
}
# The worker's batch (the template's BatchSize): the cost counts full batches.
BATCH_SIZE = 10
# Billed units of one refund done at its first delivery (make bench's end-to-end run has no
# faults), from the code. Every message, command and event is a few hundred bytes: one 64 KB
# chunk each.
PER_REFUND = {
    # refund-api's invocation, and a tenth of refund-worker's
    "lambda_requests": 1 + 1 / BATCH_SIZE,
    # the PUT
    "http_api_requests": 1,
    # SendMessage by refund-api (shared/src/queue.rs); ReceiveMessage and DeleteMessageBatch by
    # the event source mapping, one of each per batch
    "sqs_requests": 1 + 1 / BATCH_SIZE + 1 / BATCH_SIZE,
    # shared/src/store: refund-api's accept, one UpdateItem creating the item (1 WRU, plus 1 in
    # each of the two indexes, projections ALL, which get the new item); refund-worker's begin
    # and ending (RefundStore::record), each a GetItem and a PutItem moving the status
    # (accepted -> processing -> succeeded): 1 WRU, 2 in by-status (its key holds the status:
    # a delete and a put), 1 in by-time. Items are about 0.8 KB here (a succeeded record with two
    # trail entries); see RETRY_NOTE for when they pass 1 KB
    "dynamodb_wru": 3 + 4 + 4,
    # the begin's and the ending's strongly consistent GetItem
    "dynamodb_rru": 1 + 1,
    # one TicketRefunded (PutEvents is one call per batch, billed per entry)
    "eventbridge_events": 1,
}
# What each retry (a transient failure, then another delivery) adds to PER_REFUND.
PER_RETRY = {
    "lambda_requests": 1 / BATCH_SIZE,
    # refund-worker's ChangeMessageVisibility (one per record); the next delivery's ReceiveMessage
    "sqs_requests": 1 + 1 / BATCH_SIZE,
    # the failed delivery's ending (a retry) and the next delivery's begin: processing stays
    # processing, so 1 WRU and 1 in each index, each after a GetItem
    "dynamodb_wru": 3 + 3,
    "dynamodb_rru": 2,
}
RETRY_NOTE = ("by an estimate from shared/src/store/item.rs, each delivery adds two trail entries of about 75 "
              "bytes to the item and a retry a `last_error` (a public reason of some 40 bytes), so a ticket "
              "retried twice or more has items over 1 KB, written at 2 WRU (3 with the full trail of 20 calls) "
              "in the table and in each index; long caller ids (a `sub` of up to 255 bytes, a Correlation-ID of "
              "up to 128) get there sooner. The figure per retry leaves that growth out")

GOALS = {
    "startup_ratio": 1.5,
    "peak_rss_mb": 16,
    "zip_mb": 3,
    "batch_ratio": 1.2,
    # the batch of 10 with its refund events published, to the same batch without a bus
    "events_ratio": 1.1,
    "api_ratio": 1.1,
}


def say(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(*command, check=True, **kwargs):
    say(" ".join(str(c) for c in command))
    subprocess.run([str(c) for c in command], cwd=ROOT, check=check, **kwargs)


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
    """`refunds` PUTs on the local stack (the deployed template under strict IAM, as the
    end-to-end tests run it); each timed from its 202 to its last effect."""
    logs = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    with local_stack(logs, GATEWAY_FLAGS="", STRICT_IAM="1") as stack:
        api, gateway = stack["api"], stack["gateway"]
        # The deployed mapping's, as the event source runs them (the ready line's).
        mapping = {k: int(stack[k]) for k in ("batch_size", "maximum_concurrency")}
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
        **mapping,
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


def usage_per_refund(retries=0):
    """Billed units per refund (PER_REFUND) with `retries` retries each (PER_RETRY)."""
    return {unit: PER_REFUND[unit] + retries * PER_RETRY.get(unit, 0) for unit in PER_REFUND}


def cost_per_million(usage, gb_s_per_refund, usd_per_million=USD_PER_MILLION, price_per_gb_s=PRICE_PER_GB_S):
    """USD per million refunds, per billed service, and their `total`, from the billed units per
    refund (`usage`, as usage_per_refund gives them) and the Lambda GB-seconds per refund."""
    def usd(unit):
        return usage[unit] * usd_per_million[unit]

    dollars = {
        "lambda_gb_s": gb_s_per_refund * 1e6 * price_per_gb_s,
        "lambda_requests": usd("lambda_requests"),
        "api_gateway": usd("http_api_requests"),
        "sqs": usd("sqs_requests"),
        "dynamodb": usd("dynamodb_wru") + usd("dynamodb_rru"),
        "eventbridge": usd("eventbridge_events"),
    }
    dollars["total"] = sum(dollars.values())
    return dollars


def cost(api, batch):
    """Cost per million refunds. Billed GB-seconds: one API call each (its median against moto
    with the status write, as deployed; moto answers about as fast as SQS and DynamoDB do), and a
    tenth of a batch of 10 with its events published, as deployed; every other service from the
    billed units per refund (PER_REFUND)."""
    memory = memory_sizes()
    api_ms = math.ceil(api["moto"]["handler_with_status_us"]["median"] / 1000)
    worker_batch_ms = math.ceil(batch["batch_of_ten_with_events_us"]["median"] / 1000)
    api_gb_s = api_ms / 1000 * memory["refund-api"] / 1024
    delivery_gb_s = worker_batch_ms / BATCH_SIZE / 1000 * memory["refund-worker"] / 1024
    dollars = cost_per_million(usage_per_refund(), api_gb_s + delivery_gb_s)
    with_a_retry = cost_per_million(usage_per_refund(retries=1), api_gb_s + 2 * delivery_gb_s)
    return {
        "memory_mb": memory,
        "api_billed_ms": api_ms,
        "worker_batch_billed_ms": worker_batch_ms,
        "gb_s_per_million": 1e6 * (api_gb_s + delivery_gb_s),
        "usage_per_refund": usage_per_refund(),
        "usd_per_million": dollars,
        "usd_per_million_per_retry": with_a_retry["total"] - dollars["total"],
    }


def cost_lines(money):
    """The report's cost section: each billed service's dollars per million refunds, the total."""
    usd, usage = money["usd_per_million"], money["usage_per_refund"]
    rows = [
        ("Lambda", f"{money['gb_s_per_million']:.0f} GB-s (refund-api {money['api_billed_ms']} ms at "
                   f"{money['memory_mb']['refund-api']} MB; a tenth of a {money['worker_batch_billed_ms']} ms "
                   f"batch of {BATCH_SIZE} at {money['memory_mb']['refund-worker']} MB) at ${PRICE_PER_GB_S} per "
                   f"GB-s (arm64), and {usage['lambda_requests']:.2f} million requests: one API call per refund, "
                   f"one worker invocation per {BATCH_SIZE}", usd["lambda_gb_s"] + usd["lambda_requests"]),
        ("API Gateway (HTTP API)", f"{usage['http_api_requests']:g} million requests", usd["api_gateway"]),
        ("SQS (standard)", f"{usage['sqs_requests']:.2f} million requests: `SendMessage` per refund, one "
                           f"`ReceiveMessage` and one `DeleteMessageBatch` per batch of {BATCH_SIZE}", usd["sqs"]),
        ("DynamoDB (on-demand)", f"{usage['dynamodb_wru']:g} million WRU (the accept, the worker's begin and "
                                 f"ending, each in the table and its two indexes) and {usage['dynamodb_rru']:g} "
                                 f"million RRU (the worker's two strongly consistent reads)", usd["dynamodb"]),
        ("EventBridge (custom events)", f"{usage['eventbridge_events']:g} million `TicketRefunded`",
         usd["eventbridge"]),
    ]
    return [
        f"${usd['total']:.2f} per million refunds, each done at its first delivery (us-east-1 prices of "
        f"2026-12; `scripts/bench.py`: USD_PER_MILLION, PER_REFUND): "
        + ", ".join(f"{service.split(' (')[0]} ${dollars:.2f}" for service, _, dollars in rows) + ".",
        "",
        "| service | billed | USD |",
        "| --- | --- | --- |",
        *(f"| {service} | {billed} | ${dollars:.2f} |" for service, billed, dollars in rows),
        f"| **total** | | **${usd['total']:.2f}** |",
        "",
        f"Each retry adds ${money['usd_per_million_per_retry']:.2f} per million (a `ChangeMessageVisibility`, "
        f"another delivery's share of a batch and its two status writes); {RETRY_NOTE}. Not counted: "
        "X-Ray (the functions trace actively; sampled traces are billed per trace), CloudWatch Logs ingestion "
        "and the custom metrics, Secrets Manager's calls (a token read per execution environment every "
        "`GATEWAY_TOKEN_TTL_S`), an API destination when `WebhookUrl` is set, the event archive (billed per GB "
        "archived and stored) and storage (the table and its point-in-time recovery), none of which this run "
        "measures.",
    ]


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
    # The void before the refund: one ticket's calls take two calls in sequence.
    ticket = 2 * one
    ten = batch["batch_of_ten_us"]["median"]
    ten_events = batch["batch_of_ten_with_events_us"]["median"]
    hang = batch["hanging"]
    lines += [
        "",
        f"### Worker concurrency ({batch['latency_ms']} ms per upstream call, median of "
        f"{batch['repetitions']})",
        "",
        "| measure | time | ratio to one ticket's two calls in sequence | goal |",
        "| --- | --- | --- | --- |",
        f"| one call (`void_receipt`) | {one / 1000:.1f} ms | {one / ticket:.2f} | |",
        f"| batch of 1 (the void, then the refund) | {batch['batch_of_one_us']['median'] / 1000:.1f} ms "
        f"| {batch['batch_of_one_us']['median'] / ticket:.2f} | |",
        f"| batch of 10 | {ten / 1000:.1f} ms | {ten / ticket:.2f} | {mark(ten / ticket <= GOALS['batch_ratio'])} |",
        f"| batch of 10, one upstream hanging: the other {hang['others_done']} done by "
        f"| {hang['others_done_us']['max'] / 1000:.1f} ms | {hang['others_done_us']['max'] / ticket:.2f} "
        f"| {mark(hang['others_done'] == 9 and hang['others_done_us']['max'] / ticket <= GOALS['batch_ratio'])} |",
        f"| that batch, ending at the upstream timeout ({batch['upstream_timeout_ms']} ms) "
        f"| {hang['batch_us'] / 1000:.0f} ms | | |",
        "",
        "| measure | time | ratio to the batch of 10 without events | goal (≤ "
        f"{GOALS['events_ratio']}×) |",
        "| --- | --- | --- | --- |",
        f"| batch of 10 with its 10 `TicketRefunded` published (one `PutEvents`, answered at once) "
        f"| {ten_events / 1000:.1f} ms | {ten_events / ten:.2f} | {mark(ten_events / ten <= GOALS['events_ratio'])} |",
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
        *(chaos_lines(results.get("chaos"))),
        "### Cost",
        "",
        *cost_lines(money),
    ]
    return "\n".join(lines)


def chaos(tickets):
    """Upstream calls per refund under the chaos fault mix: scripts/chaos.py on its own local
    stack (every command delivered twice, 28% of calls failing transiently, worker kills). A
    run whose invariants fail is reported as such; its figures are still the run's."""
    report = OUT / "chaos.json"
    report.unlink(missing_ok=True)
    # A kill every 5 s: with the mapping's concurrent batches 200 tickets drain in under a minute.
    run(sys.executable, ROOT / "scripts/chaos.py", "--tickets", tickets, "--kills", 2, "--kill-interval", 5,
        "--report", report, "--logs", OUT / "chaos-logs", check=False)
    if not report.exists():
        raise SystemExit("bench: the chaos run wrote no report (its output above says why)")
    return json.loads(report.read_text())


def chaos_lines(figures):
    if figures is None:
        return ["### Upstream calls per refund under the chaos fault mix", "", "Not measured in this run.", ""]
    calls, goal = figures["calls_per_ticket"], figures["goal"]
    verdict = "every invariant held" if not figures["failures"] else "FAILED: " + "; ".join(figures["failures"])
    return [
        f"### Upstream calls per refund under the chaos fault mix ({figures['refunded']} refunded tickets; "
        f"`scripts/chaos.py`, {figures['kills_landed']} worker kills; {verdict})",
        "",
        f"| `void_receipt` calls per ticket | `refund_payment` calls per ticket | goal (each ≤ {goal}) |",
        "| --- | --- | --- |",
        f"| {calls['void']:.2f} | {calls['refund']:.2f} | {mark(max(calls['void'], calls['refund']) <= goal)} |",
        "",
    ]


def end_to_end_lines(e2e):
    if e2e is None:
        return ["### End to end on the local stack", "", "Not measured in this run (`--skip-e2e`).", ""]
    return [
        f"### End to end on the local stack ({e2e['refunds']} refunds, {e2e['clients']} concurrent callers; "
        f"the deployed mapping: batches of {e2e['batch_size']}, MaximumConcurrency {e2e['maximum_concurrency']}; "
        "strict IAM)",
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
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 61)))
    parser.add_argument("--refunds", type=int, default=int(os.environ.get("BENCH_REFUNDS", 1000)))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--chaos-tickets", type=int, default=200)
    parser.add_argument("--skip-e2e", action="store_true",
                        help="leave out the steps on the local stack (the 1,000 refunds and the chaos run)")
    parser.add_argument("--only", choices=("e2e", "chaos"),
                        help="run only this step on the local stack; the other figures are the reports the "
                             "last run left in target/bench (for a run that was interrupted)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.only:
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
        if args.only == "e2e":
            results["e2e"] = end_to_end(args.refunds, args.clients)
        else:
            results["chaos"] = chaos(args.chaos_tickets)
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
        "chaos": None if args.skip_e2e else chaos(args.chaos_tickets),
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
