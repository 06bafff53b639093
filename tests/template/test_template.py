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
TABLE = RESOURCES["RefundTable"]
CURSOR_SECRET = RESOURCES["CursorKeySecret"]
TABLE_RS = (ROOT / "shared/src/status/table.rs").read_text()


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
    assert props["ApiId"] == ref("HttpApi")
    auth = RESOURCES["HttpApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "JwtAuthorizer"
    jwt = auth["Authorizers"]["JwtAuthorizer"]
    assert jwt["JwtConfiguration"] == {"issuer": ref("JwtIssuer"), "audience": ref("JwtAudience")}


def http_routes():
    """(method, path) -> the event's properties, for every HttpApi event of every function."""
    routes = {}
    for name, resource in RESOURCES.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                props = event["Properties"]
                routes[(props["Method"], props["Path"])] = (name, props)
    return routes


def test_status_routes_are_gets_on_refund_api_behind_the_jwt_authorizer():
    routes = http_routes()
    # Exactly the contract's routes (section 1 with the status issue), all on refund-api.
    assert set(routes) == {
        ("PUT", "/ticket-refund/{ticket_id}"),
        ("GET", "/ticket-refund/{ticket_id}"),
        ("GET", "/ticket-refunds"),
    }
    assert {name for name, _ in routes.values()} == {"RefundApiFunction"}
    for name, props in routes.values():
        assert props["ApiId"] == ref("HttpApi")
        assert props["Auth"]["Authorizer"] == "JwtAuthorizer"
        (scope,) = props["Auth"]["AuthorizationScopes"]
        assert scope["Ref"] in PARAMETERS
    # One ticket's record: whoever may ask for the refund (the PUT answers a refunded ticket
    # with the same record). The listing shows every caller's refunds: a scope of its own.
    get_one = routes[("GET", "/ticket-refund/{ticket_id}")][1]
    assert get_one["Auth"]["AuthorizationScopes"] == [ref("RequiredScope")]
    listing = routes[("GET", "/ticket-refunds")][1]
    assert listing["Auth"]["AuthorizationScopes"] == [ref("ListScope")]
    assert PARAMETERS["ListScope"]["Default"] != PARAMETERS["RequiredScope"]["Default"]


def test_cors_lets_browsers_send_the_contract_headers_and_read_the_answers():
    cors = RESOURCES["HttpApi"]["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == ref("CorsAllowedOrigins")
    assert "*" not in PARAMETERS["CorsAllowedOrigins"]["Default"]
    # Every routed method, so browsers' preflights for the status GETs pass too.
    assert {method for method, _ in http_routes()} <= set(cors["AllowMethods"])
    assert set(cors["AllowMethods"]) == {"GET", "PUT"}
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
    assert api_env == {"REFUND_QUEUE_URL", "REFUND_TABLE_NAME", "REFUND_CURSOR_KEY_SECRET_ARN"}
    assert api_env <= read, api_env - read
    assert worker_env <= read, worker_env - read
    # The cursor key itself (REFUND_CURSOR_KEY, local runs) never sits in the environment.
    assert "REFUND_CURSOR_KEY" not in api_env | worker_env
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


def resource_names(statement):
    """What a statement's Resource (one or a list) points at: a logical id or parameter,
    or for an ARN built with Fn::Sub, its text."""
    resources = statement["Resource"]
    for resource in resources if isinstance(resources, list) else [resources]:
        if "Fn::GetAtt" in resource:
            assert resource["Fn::GetAtt"][1] == "Arn"
            yield resource["Fn::GetAtt"][0]
        elif "Fn::Sub" in resource:
            yield resource["Fn::Sub"]
        else:
            yield resource["Ref"]


def actions(statement):
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def rust_const(source, name):
    (value,) = re.findall(rf'pub const {name}: &str = "([^"]+)";', source)
    return value


def index_arn(index):
    return "${RefundTable.Arn}/index/" + index


def test_least_privilege_and_no_wildcard_on_queue_actions():
    for function in (API, WORKER):
        assert all(set(p) == {"Statement"} for p in function["Properties"]["Policies"]), "no SAM policy templates"
        for statement in statements(function):
            assert statement["Effect"] == "Allow"
            assert all("*" not in str(r) for r in resource_names(statement))
            assert all("*" not in a for a in actions(statement))
    granted = {
        name: {(a, r) for s in statements(f) for a in actions(s) for r in resource_names(s)}
        for name, f in (("api", API), ("worker", WORKER))
    }
    by_status, by_time = rust_const(TABLE_RS, "BY_STATUS_INDEX"), rust_const(TABLE_RS, "BY_TIME_INDEX")
    assert granted["api"] == {
        ("sqs:SendMessage", "RefundQueue"),
        # accept (one conditional UpdateItem) and GET by id; listings query the indexes only.
        ("dynamodb:UpdateItem", "RefundTable"),
        ("dynamodb:GetItem", "RefundTable"),
        ("dynamodb:Query", index_arn(by_status)),
        ("dynamodb:Query", index_arn(by_time)),
        ("secretsmanager:GetSecretValue", "CursorKeySecret"),
    }
    assert granted["worker"] == {
        ("sqs:ReceiveMessage", "RefundQueue"),
        ("sqs:DeleteMessage", "RefundQueue"),
        ("sqs:GetQueueAttributes", "RefundQueue"),
        ("sqs:ChangeMessageVisibility", "RefundQueue"),
        ("sqs:SendMessage", "DeadLetterQueue"),
        # Every status write: a consistent read, then a version-conditioned whole-item put.
        ("dynamodb:GetItem", "RefundTable"),
        ("dynamodb:PutItem", "RefundTable"),
        ("secretsmanager:GetSecretValue", "GatewayTokenSecretArn"),
    }
    # Nothing that reads or deletes the table wholesale, for either function.
    every_action = {a for grants in granted.values() for a, _ in grants}
    for never in ("dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem",
                  "dynamodb:DeleteTable", "dynamodb:CreateTable", "dynamodb:PartiQLSelect"):
        assert never not in every_action, never


def dynamodb_operations(source):
    """The DynamoDB client calls a Rust source makes (`.get_item()`, `.query()`, ...)."""
    calls = re.findall(r"\.client\s*\.(\w+)\(\)", source)
    return {"dynamodb:" + "".join(part.title() for part in call.split("_")) for call in calls}


def test_the_granted_dynamodb_actions_are_the_ones_the_store_calls():
    # `create_table` is for tests and the local stack; in AWS the template creates the table.
    dynamo_rs = (ROOT / "shared/src/status/dynamo.rs").read_text()
    called = dynamodb_operations(dynamo_rs.split("#[cfg(test)]", 1)[0]) - {"dynamodb:CreateTable"}
    granted = {a for f in (API, WORKER) for s in statements(f) for a in actions(s) if a.startswith("dynamodb:")}
    assert granted == called


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
                assert actions(statement) == ["secretsmanager:GetSecretValue"]
                expected = ref("GatewayTokenSecretArn") if function is WORKER else ref("CursorKeySecret")
                assert statement["Resource"] == expected
    assert "GATEWAY_TOKEN_SECRET_ARN" not in API["Properties"]["Environment"]["Variables"]


def test_the_cursor_key_is_a_generated_secret_only_refund_api_reads():
    assert CURSOR_SECRET["Type"] == "AWS::SecretsManager::Secret"
    props = CURSOR_SECRET["Properties"]
    # Generated by Secrets Manager: the key is in no template, parameter or log.
    assert props["GenerateSecretString"] == {"PasswordLength": 64, "ExcludePunctuation": True}
    assert "SecretString" not in props
    cursor_rs = (ROOT / "shared/src/status/cursor.rs").read_text()
    (min_len,) = re.findall(r"pub const MIN_LEN: usize = (\d+);", cursor_rs)
    assert props["GenerateSecretString"]["PasswordLength"] >= int(min_len)
    # A generated name: a re-created stack never collides with a secret in its recovery window.
    assert "Name" not in props
    assert API["Properties"]["Environment"]["Variables"]["REFUND_CURSOR_KEY_SECRET_ARN"] == ref("CursorKeySecret")
    assert "REFUND_CURSOR_KEY_SECRET_ARN" not in WORKER["Properties"]["Environment"]["Variables"]


def key_schema(elements):
    return [(e["AttributeName"], e["KeyType"]) for e in elements]


def test_the_status_table_has_the_keys_and_indexes_the_code_uses():
    assert TABLE["Type"] == "AWS::DynamoDB::Table"
    props = TABLE["Properties"]
    attr = lambda name: rust_const(TABLE_RS, name)  # noqa: E731
    assert key_schema(props["KeySchema"]) == [(attr("TICKET_ID"), "HASH")]
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    assert indexes.keys() == {rust_const(TABLE_RS, "BY_STATUS_INDEX"), rust_const(TABLE_RS, "BY_TIME_INDEX")}
    by_status = indexes[rust_const(TABLE_RS, "BY_STATUS_INDEX")]
    by_time = indexes[rust_const(TABLE_RS, "BY_TIME_INDEX")]
    assert key_schema(by_status["KeySchema"]) == [(attr("STATUS_SHARD"), "HASH"), (attr("LIST_KEY"), "RANGE")]
    assert key_schema(by_time["KeySchema"]) == [(attr("ALL_SHARD"), "HASH"), (attr("LIST_KEY"), "RANGE")]
    # ALL: a page is one round of queries and no second read (module doc of shared/src/status).
    for index in indexes.values():
        assert index["Projection"] == {"ProjectionType": "ALL"}
        assert "ProvisionedThroughput" not in index
    # Every key attribute is a string, and only key attributes are declared (CloudFormation
    # refuses others).
    assert {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]} == {
        attr(name): "S" for name in ("TICKET_ID", "STATUS_SHARD", "ALL_SHARD", "LIST_KEY")
    }
    # The local stack creates its table from these properties, so they are plain values.
    for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode"):
        assert not intrinsics(props[key]), key


def intrinsics(node):
    """The intrinsic functions (Ref, Fn::...) anywhere in a template value."""
    if isinstance(node, dict):
        found = {k for k in node if k == "Ref" or k.startswith("Fn::")}
        return found.union(*(intrinsics(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(intrinsics(v) for v in node))
    return set()


def test_the_status_table_is_on_demand_recoverable_encrypted_and_retained():
    props = TABLE["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in props
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["SSESpecification"]["SSEType"] == "KMS"
    # Refund history is not disposable: kept when the stack is deleted or the table replaced.
    assert TABLE["DeletionPolicy"] == "Retain"
    assert TABLE["UpdateReplacePolicy"] == "Retain"
    assert props["DeletionProtectionEnabled"] is True
    # No TTL: records are the refund history, never expired.
    assert "TimeToLiveSpecification" not in props


def test_both_functions_record_in_the_status_table():
    for function in (API, WORKER):
        assert function["Properties"]["Environment"]["Variables"]["REFUND_TABLE_NAME"] == ref("RefundTable")
    tables = [k for k, v in RESOURCES.items() if v["Type"] == "AWS::DynamoDB::Table"]
    assert tables == ["RefundTable"]  # the local stack creates its table from the one table here


def test_alarms_cover_dlq_age_retries_errors_and_throttles():
    alarms = {k: v["Properties"] for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    metrics = {a.get("MetricName") for a in alarms.values()}
    assert {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "Errors", "Throttles"} <= metrics
    retry = alarms["RetryRateAlarm"]["Metrics"]
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in retry if "MetricStat" in m} == {"RefundsRetried", "RefundsDone"}
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [ref("AlarmTopic")]


def test_status_table_throttling_is_alarmed_on_the_table_and_both_indexes():
    alarm = RESOURCES["RefundTableThrottlesAlarm"]["Properties"]
    watched = set()
    for query in (m for m in alarm["Metrics"] if "MetricStat" in m):
        metric = query["MetricStat"]["Metric"]
        assert metric["Namespace"] == "AWS/DynamoDB"
        dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert dimensions.pop("TableName") == ref("RefundTable")
        watched.add((metric["MetricName"], dimensions.get("GlobalSecondaryIndexName")))
    indexes = [None, rust_const(TABLE_RS, "BY_STATUS_INDEX"), rust_const(TABLE_RS, "BY_TIME_INDEX")]
    assert watched == {(m, i) for m in ("ReadThrottleEvents", "WriteThrottleEvents") for i in indexes}
    (total,) = [m for m in alarm["Metrics"] if m.get("ReturnData", True)]
    assert total["Expression"] == "SUM(METRICS())"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_status_write_failures_are_alarmed_from_the_metric_the_worker_emits():
    alarm = RESOURCES["StatusWriteFailedAlarm"]["Properties"]
    metrics_rs = (ROOT / "functions/refund-worker/src/metrics.rs").read_text()
    assert f'NAMESPACE: &str = "{alarm["Namespace"]}"' in metrics_rs
    assert f'"Name": "{alarm["MetricName"]}"' in metrics_rs
    (dimension,) = alarm["Dimensions"]
    assert f'SERVICE: &str = "{dimension["Value"]}"' in metrics_rs
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_outputs():
    assert {"ApiUrl", "RefundQueueUrl", "DeadLetterQueueUrl"} <= set(TEMPLATE["Outputs"])
    outputs = TEMPLATE["Outputs"]
    assert outputs["RefundTableName"]["Value"] == ref("RefundTable")
    assert outputs["RefundTableArn"]["Value"] == {"Fn::GetAtt": ["RefundTable", "Arn"]}


def test_retry_rate_alarm_reads_the_metrics_the_worker_emits():
    metrics_rs = (ROOT / "functions/refund-worker/src/metrics.rs").read_text()
    retry = RESOURCES["RetryRateAlarm"]["Properties"]["Metrics"]
    for query in (m for m in retry if "MetricStat" in m):
        metric = query["MetricStat"]["Metric"]
        assert f'NAMESPACE: &str = "{metric["Namespace"]}"' in metrics_rs
        assert f'"Name": "{metric["MetricName"]}"' in metrics_rs
        (dimension,) = metric["Dimensions"]
        assert f'SERVICE: &str = "{dimension["Value"]}"' in metrics_rs
