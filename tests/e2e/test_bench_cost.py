"""The cost per million refunds of `scripts/bench.py` (its pure part) on fixed inputs: the
billed units per refund, the dollars per service and their total, and the report's lines. No
stack and no build: these run in a second (in `make e2e`, so in `make test`)."""

import pytest

import bench

# 55 ms of refund-api and a tenth of a 103 ms batch, both at 128 MB: the last bench run's.
GB_S = 0.055 * 128 / 1024 + 0.103 / 10 * 128 / 1024


@pytest.mark.parametrize("retries, expected", [
    (0, {"lambda_requests": 1.1, "http_api_requests": 1, "sqs_requests": 1.2, "dynamodb_wru": 11,
         "dynamodb_rru": 2, "eventbridge_events": 1}),
    (2, {"lambda_requests": 1.3, "http_api_requests": 1, "sqs_requests": 3.4, "dynamodb_wru": 23,
         "dynamodb_rru": 6, "eventbridge_events": 1}),
])
def test_billed_units_per_refund(retries, expected):
    assert bench.usage_per_refund(retries) == pytest.approx(expected)


@pytest.mark.parametrize("usage, gb_s, expected", [
    # the refund done at its first delivery
    (bench.usage_per_refund(), GB_S,
     {"lambda_gb_s": 0.10884, "lambda_requests": 0.22, "api_gateway": 1.00, "sqs": 0.48,
      "dynamodb": 11 * 0.625 + 2 * 0.125, "eventbridge": 1.00, "total": 9.93384}),
    # one unit of each: each service's own price per million
    ({"lambda_requests": 1, "http_api_requests": 1, "sqs_requests": 1, "dynamodb_wru": 1, "dynamodb_rru": 1,
      "eventbridge_events": 1}, 0.0,
     {"lambda_gb_s": 0.0, "lambda_requests": 0.20, "api_gateway": 1.00, "sqs": 0.40, "dynamodb": 0.75,
      "eventbridge": 1.00, "total": 3.35}),
    # nothing billed but one GB-s a refund
    ({unit: 0 for unit in bench.USD_PER_MILLION}, 1.0,
     {"lambda_gb_s": 13.3334, "lambda_requests": 0, "api_gateway": 0, "sqs": 0, "dynamodb": 0,
      "eventbridge": 0, "total": 13.3334}),
])
def test_cost_per_million(usage, gb_s, expected):
    assert bench.cost_per_million(usage, gb_s) == pytest.approx(expected, abs=1e-4)


def test_the_report_lists_every_service_and_the_total():
    dollars = bench.cost_per_million(bench.usage_per_refund(), GB_S)
    money = {"memory_mb": {"refund-api": 128, "refund-worker": 128}, "api_billed_ms": 55,
             "worker_batch_billed_ms": 103, "gb_s_per_million": GB_S * 1e6,
             "usage_per_refund": bench.usage_per_refund(), "usd_per_million": dollars,
             "usd_per_million_per_retry": 0.5}
    text = "\n".join(bench.cost_lines(money))
    assert text.startswith("$9.93 per million refunds")
    for row in ("| Lambda | 8162 GB-s", "| API Gateway (HTTP API) | 1 million requests | $1.00 |",
                "| SQS (standard) | 1.20 million requests", "| DynamoDB (on-demand) | 11 million WRU",
                "| EventBridge (custom events) | 1 million `TicketRefunded` | $1.00 |", "| **total** | | **$9.93** |"):
        assert row in text, row
    assert "Lambda $0.33, API Gateway $1.00, SQS $0.48, DynamoDB $7.12, EventBridge $1.00." in text
    assert "Each retry adds $0.50 per million" in text


@pytest.mark.parametrize("void, refund, failures, verdict, goal", [
    (1.06, 1.06, [], "every invariant held", "| 1.06 | 1.06 | met |"),
    (1.2, 1.7, [], "every invariant held", "| 1.20 | 1.70 | **not met** |"),
    (1.0, 1.0, ["the queue is empty"], "FAILED: the queue is empty", "| 1.00 | 1.00 | met |"),
])
def test_the_chaos_figures_hold_each_service_to_the_goal(void, refund, failures, verdict, goal):
    figures = {"refunded": 195, "kills_landed": 2, "goal": 1.6, "failures": failures,
               "calls_per_ticket": {"void": void, "refund": refund, "both": void + refund}}
    text = "\n".join(bench.chaos_lines(figures))
    assert "(195 refunded tickets; `scripts/chaos.py`, 2 worker kills; " + verdict + ")" in text
    assert goal in text
