"""Invariants of template.yaml that cfn-lint cannot know: the contract's wiring.

Run by `make test` (pytest). The template is read with cfn-lint's own YAML loader, so the
short forms (!Ref, !GetAtt, !Sub) arrive as their long forms.
"""

import re
import tomllib
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = cfn_yaml.load(str(ROOT / "template.yaml"))
RESOURCES = TEMPLATE["Resources"]
PARAMETERS = TEMPLATE["Parameters"]
GLOBALS = TEMPLATE["Globals"]["Function"]

API = RESOURCES["RefundApiFunction"]
WORKER = RESOURCES["RefundWorkerFunction"]
QUEUE = RESOURCES["RefundQueue"]["Properties"]
DLQ = RESOURCES["DeadLetterQueue"]["Properties"]
SQS_EVENT = WORKER["Properties"]["Events"]["RefundTickets"]["Properties"]


def ref(name):
    return {"Ref": name}


def allowed_values(parameter):
    p = PARAMETERS[parameter]
    return range(int(p["MinValue"]), int(p["MaxValue"]) + 1)


def test_visibility_timeout_covers_six_worker_timeouts_plus_any_batching_window():
    timeout = WORKER["Properties"]["Timeout"]
    for window in allowed_values("BatchingWindowSeconds"):
        assert QUEUE["VisibilityTimeout"] >= 6 * timeout + window, window
    assert SQS_EVENT["MaximumBatchingWindowInSeconds"] == ref("BatchingWindowSeconds")


def test_worker_reports_batch_item_failures_with_bounded_batches_and_concurrency():
    assert SQS_EVENT["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert SQS_EVENT["Queue"] == {"Fn::GetAtt": ["RefundQueue", "Arn"]}
    assert SQS_EVENT["BatchSize"] == ref("BatchSize")
    assert max(allowed_values("BatchSize")) <= 10
    assert SQS_EVENT["ScalingConfig"]["MaximumConcurrency"] == ref("MaxWorkerConcurrency")
    assert min(allowed_values("MaxWorkerConcurrency")) >= 2  # SQS's own minimum


def test_dead_letter_wiring_and_retentions():
    assert QUEUE["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": ref("MaxReceiveCount"),
    }
    assert WORKER["Properties"]["Environment"]["Variables"]["MAX_RECEIVE_COUNT"] == ref("MaxReceiveCount")
    assert QUEUE["MessageRetentionPeriod"] == 4 * 24 * 3600
    assert DLQ["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert DLQ["MessageRetentionPeriod"] > QUEUE["MessageRetentionPeriod"]
    assert QUEUE["SqsManagedSseEnabled"] and DLQ["SqsManagedSseEnabled"]
    # Redrive back is allowed from the refund queue, named as the queue is named.
    allow = DLQ["RedriveAllowPolicy"]
    assert allow["redrivePermission"] == "byQueue"
    (source,) = allow["sourceQueueArns"]
    assert source["Fn::Sub"].endswith(":" + QUEUE["QueueName"]["Fn::Sub"])


def test_route_is_put_behind_the_jwt_authorizer_with_the_required_scope():
    event = API["Properties"]["Events"]["RefundTicket"]
    assert event["Type"] == "HttpApi"
    props = event["Properties"]
    assert (props["Method"], props["Path"]) == ("PUT", "/ticket-refund/{ticket_id}")
    assert props["Auth"] == {"Authorizer": "JwtAuthorizer", "AuthorizationScopes": [ref("RequiredScope")]}
    auth = RESOURCES["HttpApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "JwtAuthorizer"
    jwt = auth["Authorizers"]["JwtAuthorizer"]
    assert jwt["JwtConfiguration"] == {"issuer": ref("JwtIssuer"), "audience": ref("JwtAudience")}


def test_cors_lets_browsers_send_the_contract_headers_and_read_the_answers():
    cors = RESOURCES["HttpApi"]["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == ref("CorsAllowedOrigins")
    assert "*" not in PARAMETERS["CorsAllowedOrigins"]["Default"]
    assert "PUT" in cors["AllowMethods"]
    assert {"authorization", "idempotency-key", "correlation-id"} <= set(cors["AllowHeaders"])
    assert {"correlation-id", "retry-after"} <= set(cors["ExposeHeaders"])


def test_api_is_throttled_and_logged():
    props = RESOURCES["HttpApi"]["Properties"]
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    assert props["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}


def workspace_binaries():
    names = set()
    for manifest in ROOT.glob("functions/*/Cargo.toml"):
        names.update(b["name"] for b in tomllib.loads(manifest.read_text()).get("bin", []))
    return names


@pytest.mark.parametrize("function,binary", [(API, "refund-api"), (WORKER, "refund-worker")])
def test_functions_build_the_workspace_binaries_for_arm64(function, binary):
    assert function["Metadata"] == {"BuildMethod": "rust-cargolambda", "BuildProperties": {"Binary": binary}}
    assert binary in workspace_binaries()
    assert GLOBALS["Runtime"] == "provided.al2023"
    assert GLOBALS["Architectures"] == ["arm64"]
    assert function["Properties"]["LoggingConfig"]["LogFormat"] == "JSON"


def names_read_by(source):
    text = (ROOT / source).read_text()
    return set(re.findall(r'"([A-Z][A-Z0-9_]+)"', text)) - {"INFO"}


def test_environment_variables_are_the_ones_the_code_reads():
    read = names_read_by("shared/src/config.rs")
    api_env = set(API["Properties"]["Environment"]["Variables"])
    worker_env = set(WORKER["Properties"]["Environment"]["Variables"])
    assert api_env == {"REFUND_QUEUE_URL"}
    assert worker_env <= read, worker_env - read
    assert {"REFUND_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "GATEWAY_ADDR", "MAX_RECEIVE_COUNT"} <= worker_env
    # The deployed worker never talks plain http to a remote gateway.
    assert "ALLOW_INSECURE_GATEWAY" not in worker_env
    assert PARAMETERS["GatewayAddr"]["AllowedPattern"].startswith("^https://")


def statements(function):
    """Every statement; a conditional one (Fn::If with AWS::NoValue) as its granted branch."""
    for policy in function["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            if "Fn::If" in statement:
                _, granted, otherwise = statement["Fn::If"]
                assert otherwise == ref("AWS::NoValue")
                yield granted
            else:
                yield statement


def resource_name(statement):
    """The logical id or parameter a statement's Resource points at."""
    resource = statement["Resource"]
    if "Fn::GetAtt" in resource:
        return resource["Fn::GetAtt"][0]
    return resource["Ref"]


def actions(statement):
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def test_least_privilege_and_no_wildcard_on_queue_actions():
    for function in (API, WORKER):
        for statement in statements(function):
            assert statement["Resource"] != "*"
            assert all("*" not in a for a in actions(statement))
    granted = {
        name: {(a, resource_name(s)) for s in statements(f) for a in actions(s)}
        for name, f in (("api", API), ("worker", WORKER))
    }
    assert granted["api"] == {("sqs:SendMessage", "RefundQueue")}
    assert granted["worker"] == {
        ("sqs:ReceiveMessage", "RefundQueue"),
        ("sqs:DeleteMessage", "RefundQueue"),
        ("sqs:GetQueueAttributes", "RefundQueue"),
        ("sqs:ChangeMessageVisibility", "RefundQueue"),
        ("sqs:SendMessage", "DeadLetterQueue"),
        ("secretsmanager:GetSecretValue", "GatewayTokenSecretArn"),
    }


def test_the_gateway_token_secret_is_optional_and_the_only_secret_the_worker_may_read():
    parameter = PARAMETERS["GatewayTokenSecretArn"]
    assert parameter["Default"] == ""
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch("arn:aws:secretsmanager:eu-west-1:123456789012:secret:gateway-token-AbC123")
    for bad in ("*", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:*x y", "gateway-token",
                "arn:aws:sqs:eu-west-1:123456789012:RefundTicket"):
        assert not pattern.fullmatch(bad), bad
    assert TEMPLATE["Conditions"]["HasGatewayTokenSecret"] == {
        "Fn::Not": [{"Fn::Equals": [ref("GatewayTokenSecretArn"), ""]}]
    }
    # The variable exists only when a secret is given: unset means no Authorization header.
    variables = WORKER["Properties"]["Environment"]["Variables"]
    assert variables["GATEWAY_TOKEN_SECRET_ARN"] == {
        "Fn::If": ["HasGatewayTokenSecret", ref("GatewayTokenSecretArn"), ref("AWS::NoValue")]
    }
    # Read on that one secret, granted only under the same condition, and nothing else.
    conditional = [s["Fn::If"] for p in WORKER["Properties"]["Policies"] for s in p["Statement"] if "Fn::If" in s]
    assert conditional == [[
        "HasGatewayTokenSecret",
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": ref("GatewayTokenSecretArn")},
        ref("AWS::NoValue"),
    ]]
    for function in (API, WORKER):
        for statement in statements(function):
            if any(a.startswith("secretsmanager:") for a in actions(statement)):
                assert function is WORKER
                assert statement["Resource"] == ref("GatewayTokenSecretArn")
    assert "GATEWAY_TOKEN_SECRET_ARN" not in API["Properties"]["Environment"]["Variables"]


def test_alarms_cover_dlq_age_retries_errors_and_throttles():
    alarms = {k: v["Properties"] for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    metrics = {a.get("MetricName") for a in alarms.values()}
    assert {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "Errors", "Throttles"} <= metrics
    retry = alarms["RetryRateAlarm"]["Metrics"]
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in retry if "MetricStat" in m} == {"RefundsRetried", "RefundsDone"}
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [ref("AlarmTopic")]


def test_outputs():
    assert {"ApiUrl", "RefundQueueUrl", "DeadLetterQueueUrl"} <= set(TEMPLATE["Outputs"])


def test_retry_rate_alarm_reads_the_metrics_the_worker_emits():
    metrics_rs = (ROOT / "functions/refund-worker/src/metrics.rs").read_text()
    retry = RESOURCES["RetryRateAlarm"]["Properties"]["Metrics"]
    for query in (m for m in retry if "MetricStat" in m):
        metric = query["MetricStat"]["Metric"]
        assert f'NAMESPACE: &str = "{metric["Namespace"]}"' in metrics_rs
        assert f'"Name": "{metric["MetricName"]}"' in metrics_rs
        (dimension,) = metric["Dimensions"]
        assert f'SERVICE: &str = "{dimension["Value"]}"' in metrics_rs
