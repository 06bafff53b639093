"""Invariants of template.yaml that cfn-lint cannot know: the contract's wiring.

Run by `make test` (pytest). The template is read with cfn-lint's own YAML loader, so the
short forms (!Ref, !GetAtt, !Sub) arrive as their long forms.
"""

import copy
import graphlib
import json
import re
import tomllib
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

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
TABLE_RS = (ROOT / "shared/src/store/table.rs").read_text()
METRICS_RS = (ROOT / "functions/refund-worker/src/metrics.rs").read_text()
# The status table's ARN as the policies name it: built from the table's fixed name, because
# the table's own policy names the functions' roles (GetAtt on the table there would be a cycle).
TABLE_ARN = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${AWS::StackName}-refunds"
# The roles SAM generates for the functions (<logical id>Role), named by the resource policies.
API_ROLE = {"Fn::GetAtt": ["RefundApiFunctionRole", "Arn"]}
WORKER_ROLE = {"Fn::GetAtt": ["RefundWorkerFunctionRole", "Arn"]}
# The operators' exception of both resource policies, left out when OperatorRoleArns is empty.
OPERATORS = {"Fn::If": ["HasOperatorRoleArns", {"aws:PrincipalArn": {"Ref": "OperatorRoleArns"}}, {"Ref": "AWS::NoValue"}]}
# What docs/CONTRACT.md sections 1a, 3 and 5 add with the trust-boundaries issue, read by the Rust code.
ISSUE_14_VARIABLES = {"RECORD_RETENTION_DAYS", "REQUEST_SCOPE", "SUPPORT_SCOPE", "ALLOW_UNAUTHENTICATED",
                      "GATEWAY_TOKEN_TTL_S"}



def ref(name):
    return {"Ref": name}


NO_VALUE = object()


def evaluate(node, parameters):
    """A template value as CloudFormation resolves it for the given parameter values (strings;
    a CommaDelimitedList's as the text given): Ref to parameters, Fn::If, Fn::Join, AWS::NoValue
    (dropped), and the Conditions they use. Other intrinsics (GetAtt, Sub) are left as they are."""
    values = {name: p.get("Default") for name, p in PARAMETERS.items()} | parameters

    def param(name):
        value = values[name]
        if PARAMETERS[name]["Type"] == "CommaDelimitedList":
            return str(value).split(",")
        return str(value)

    def condition(name):
        return bool(walk(TEMPLATE["Conditions"][name]))

    def walk(node):
        if isinstance(node, list):
            return [v for v in map(walk, node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if node == ref("AWS::NoValue"):
            return NO_VALUE
        if set(node) == {"Ref"} and node["Ref"] in PARAMETERS:
            return param(node["Ref"])
        if set(node) == {"Condition"}:
            return condition(node["Condition"])
        if "Fn::If" in node:
            name, yes, no = node["Fn::If"]
            return walk(yes if condition(name) else no)
        if "Fn::Equals" in node:
            a, b = walk(node["Fn::Equals"])
            return str(a) == str(b)
        if "Fn::Not" in node:
            return not walk(node["Fn::Not"][0])
        if "Fn::And" in node:
            return all(walk(node["Fn::And"]))
        if "Fn::Join" in node:
            separator, items = node["Fn::Join"]
            return separator.join(walk(items))
        return {k: w for k, v in node.items() if (w := walk(v)) is not NO_VALUE}

    return walk(node)


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


def test_route_is_put_behind_the_jwt_authorizer_with_either_scope():
    event = API["Properties"]["Events"]["RefundTicket"]
    assert event["Type"] == "HttpApi"
    props = event["Properties"]
    assert (props["Method"], props["Path"]) == ("PUT", "/ticket-refund/{ticket_id}")
    # A customer-facing client asks for its refunds; support may ask for anyone's.
    assert props["Auth"] == {
        "Authorizer": "JwtAuthorizer",
        "AuthorizationScopes": [ref("RequestScope"), ref("SupportScope")],
    }
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
        scopes = props["Auth"]["AuthorizationScopes"]
        assert scopes and all(scope["Ref"] in PARAMETERS for scope in scopes)
    # docs/CONTRACT.md section 1a: one ticket's record, like the PUT, for either scope (the function
    # then shows a RequestScope caller its own refunds only). The listing shows every
    # caller's refunds: SupportScope only.
    assert {route: [s["Ref"] for s in props["Auth"]["AuthorizationScopes"]] for route, (_, props) in routes.items()} == {
        ("PUT", "/ticket-refund/{ticket_id}"): ["RequestScope", "SupportScope"],
        ("GET", "/ticket-refund/{ticket_id}"): ["RequestScope", "SupportScope"],
        ("GET", "/ticket-refunds"): ["SupportScope"],
    }
    assert PARAMETERS["SupportScope"]["Default"] != PARAMETERS["RequestScope"]["Default"]


def test_the_scopes_are_request_and_support_one_token_each_and_never_equal():
    assert not {"RequiredScope", "ListScope"} & set(PARAMETERS)
    assert PARAMETERS["RequestScope"]["Default"] == "refunds/request"
    assert PARAMETERS["SupportScope"]["Default"] == "refunds/support"
    for name in ("RequestScope", "SupportScope"):
        assert PARAMETERS[name]["Type"] == "String"
        # One RFC 6749 scope-token: a space would make it two scopes to the function.
        pattern = re.compile(PARAMETERS[name]["AllowedPattern"])
        assert pattern.fullmatch(PARAMETERS[name]["Default"])
        assert pattern.fullmatch("https://api.example.com/refunds.support")
        for bad in ("", "refunds/request refunds/support", 'refunds"', "refunds\\x", "refunds\t"):
            assert not pattern.fullmatch(bad), bad
    # Equal scopes would make every requester support: CloudFormation refuses them.
    rule = TEMPLATE["Rules"]["ScopesDiffer"]
    assert "RuleCondition" not in rule
    assert [a["Assert"] for a in rule["Assertions"]] == [
        {"Fn::Not": [{"Fn::Equals": [ref("RequestScope"), ref("SupportScope")]}]}
    ]


def every_environment():
    """(resource, variables) for every function's environment, Globals' included."""
    yield "Globals", GLOBALS.get("Environment", {}).get("Variables", {})
    for name, resource in RESOURCES.items():
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            yield name, resource["Properties"].get("Environment", {}).get("Variables", {})


def test_refund_api_never_runs_unauthenticated():
    # ALLOW_UNAUTHENTICATED (the local stack's, docs/CONTRACT.md section 1a) is never set by the
    # template: in no environment, under no condition, not even in a comment or a string.
    environments = dict(every_environment())
    assert {"Globals", "RefundApiFunction", "RefundWorkerFunction"} <= set(environments)
    for name, variables in environments.items():
        assert "ALLOW_UNAUTHENTICATED" not in variables, name
    assert "ALLOW_UNAUTHENTICATED" not in (ROOT / "template.yaml").read_text()


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
    path = ROOT / source
    text = path.read_text() + "".join(p.read_text() for p in sorted(path.with_suffix("").glob("*.rs")))
    return set(re.findall(r'"([A-Z][A-Z0-9_]+)"', text)) - {"INFO"}


def test_environment_variables_are_the_ones_the_code_reads():
    read = names_read_by("shared/src/config.rs")
    api_env = set(API["Properties"]["Environment"]["Variables"])
    worker_env = set(WORKER["Properties"]["Environment"]["Variables"])
    assert api_env == {"REFUND_QUEUE_URL", "REFUND_TABLE_NAME", "REFUND_CURSOR_KEY_SECRET_ARN",
                       "RECORD_RETENTION_DAYS", "REQUEST_SCOPE", "SUPPORT_SCOPE"}
    # The function checks the scopes itself with the very values the routes use.
    assert API["Properties"]["Environment"]["Variables"]["REQUEST_SCOPE"] == ref("RequestScope")
    assert API["Properties"]["Environment"]["Variables"]["SUPPORT_SCOPE"] == ref("SupportScope")
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
    or for an ARN built with Fn::Sub, its text (the status table's ARN built from its name:
    RefundTable)."""
    resources = statement["Resource"]
    for resource in resources if isinstance(resources, list) else [resources]:
        if "Fn::GetAtt" in resource:
            assert resource["Fn::GetAtt"][1] == "Arn"
            yield resource["Fn::GetAtt"][0]
        elif "Fn::Sub" in resource:
            yield "RefundTable" if resource["Fn::Sub"] == TABLE_ARN else resource["Fn::Sub"]
        else:
            yield resource["Ref"]


def actions(statement):
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def rust_const(source, name):
    (value,) = re.findall(rf'pub const {name}: &str = "([^"]+)";', source)
    return value


def index_arn(index):
    return TABLE_ARN + "/index/" + index


def test_the_policies_name_the_status_table_by_its_own_arn():
    # TABLE_ARN is the table's: the name the table is given, in the table's ARN format.
    assert TABLE["Properties"]["TableName"] == {"Fn::Sub": "${AWS::StackName}-refunds"}
    assert TABLE_ARN == "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/" + TABLE["Properties"]["TableName"]["Fn::Sub"]
    # No role policy points at the table through the table itself (that is the cycle).
    for function in (API, WORKER):
        for statement in statements(function):
            assert "RefundTable" not in str(statement["Resource"]), statement


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
        # accept, requeue and unqueue (one conditional UpdateItem each), GET by id, and the
        # withdrawal after SQS refused a command (read, then versioned put); listings query
        # the indexes only.
        ("dynamodb:UpdateItem", "RefundTable"),
        ("dynamodb:GetItem", "RefundTable"),
        ("dynamodb:PutItem", "RefundTable"),
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
        # Only when the token secret has a customer managed key (its own test).
        ("kms:Decrypt", "TokenSecretKmsKeyArn"),
        # The refund events, on the stack's bus only (tests/template/test_events.py).
        ("events:PutEvents", "RefundEventBus"),
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
    store = ROOT / "shared/src/store"
    sources = [path.read_text().split("#[cfg(test)]", 1)[0] for path in sorted(store.glob("*.rs"))]
    called = set().union(*map(dynamodb_operations, sources)) - {"dynamodb:CreateTable"}
    # The API reaches every one of them (accept, requeue, unqueue, withdraw, get, list), so
    # its role alone must grant them all; the worker's share is the read and the put.
    granted = {name: {a for s in statements(f) for a in actions(s) if a.startswith("dynamodb:")}
               for name, f in (("api", API), ("worker", WORKER))}
    assert granted["api"] == called
    assert granted["worker"] == {"dynamodb:GetItem", "dynamodb:PutItem"} <= called


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
    # Read on that one secret, granted only under the same condition, and nothing else (the
    # other conditional grant, kms:Decrypt for its key, has a test of its own).
    conditional = [s["Fn::If"] for p in WORKER["Properties"]["Policies"] for s in p["Statement"] if "Fn::If" in s]
    assert [c for c in conditional if c[0] != "HasTokenSecretKmsKey"] == [[
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
    cursor_rs = (ROOT / "shared/src/store/cursor.rs").read_text()
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
    # ALL: a page is one round of queries and no second read (module doc of shared/src/store).
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
    # Records expire only as RecordRetentionDays says: test_completed_records_expire_after_the_retention.


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


def test_the_worker_re_reads_its_token_after_the_ttl_parameter_with_the_codes_bounds():
    # config.rs and its modules (config/worker.rs holds the worker's variables).
    config_rs = "".join(p.read_text() for p in [ROOT / "shared/src/config.rs", *sorted((ROOT / "shared/src/config").glob("*.rs"))])
    variables = WORKER["Properties"]["Environment"]["Variables"]
    assert variables["GATEWAY_TOKEN_TTL_S"] == ref("GatewayTokenTtlSeconds")
    parameter = PARAMETERS["GatewayTokenTtlSeconds"]
    assert parameter["Type"] == "Number"
    (default,) = re.findall(r"pub const DEFAULT_GATEWAY_TOKEN_TTL_S: u64 = (\d+);", config_rs)
    assert parameter["Default"] == int(default) == 300
    # The template allows exactly what the worker accepts at start-up (1..=86_400 in config.rs).
    (low, high) = re.findall(r"GATEWAY_TOKEN_TTL_S,\s*DEFAULT_GATEWAY_TOKEN_TTL_S,\s*(\d+)\.\.=([\d_]+),", config_rs)[0]
    assert (parameter["MinValue"], parameter["MaxValue"]) == (int(low), int(high.replace("_", "")))
    assert "GATEWAY_TOKEN_TTL_S" not in API["Properties"]["Environment"]["Variables"]


def test_a_token_the_upstream_refuses_after_its_re_read_is_alarmed_from_the_metric_the_worker_emits():
    alarm = RESOURCES["UpstreamUnauthorizedAlarm"]["Properties"]
    assert alarm["MetricName"] == "UpstreamUnauthorized"
    assert f'NAMESPACE: &str = "{alarm["Namespace"]}"' in METRICS_RS
    assert f'"Name": "{alarm["MetricName"]}"' in METRICS_RS
    (dimension,) = alarm["Dimensions"]
    assert dimension["Name"] == "Service"
    assert f'SERVICE: &str = "{dimension["Value"]}"' in METRICS_RS
    # The same namespace and dimensions as the worker's other EMF alarm.
    status = RESOURCES["StatusWriteFailedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["Dimensions"]) == (status["Namespace"], status["Dimensions"])
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == ("Sum", 0, "GreaterThanThreshold")
    # Emitted only when there were any: no data is the healthy state.
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [ref("AlarmTopic")]


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


# ------------------------------------------------------------------ trust boundaries (issue 14)


def sam_transformed():
    """The template as SAM's own translator (from the pinned aws-sam-cli) turns it into
    CloudFormation, offline: a placeholder code location, no managed policy look-ups."""
    template = json.loads(json.dumps(copy.deepcopy(TEMPLATE)))
    template["Globals"]["Function"]["CodeUri"] = "s3://placeholder/code.zip"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name="us-east-1"))
    return translator.translate(template, parameter_values={}, get_managed_policy_map=lambda: {})


def dependencies(node):
    """The logical ids (and parameters) a value refers to: Ref, GetAtt and Sub."""
    if isinstance(node, list):
        return set().union(*map(dependencies, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set()
    for key, value in node.items():
        if key == "Ref":
            found.add(value)
        elif key == "Fn::GetAtt":
            found.add(value[0] if isinstance(value, list) else value.split(".")[0])
        elif key == "Fn::Sub":
            text, variables = (value, {}) if isinstance(value, str) else value
            found |= {v.split(".")[0] for v in re.findall(r"\$\{([^}!][^}]*)\}", text)} - set(variables)
            found |= dependencies(variables)
        else:
            found |= dependencies(value)
    return found


def test_the_resource_policies_name_roles_the_stack_really_has_and_make_no_cycle():
    """cfn-lint skips cycles through SAM resources (E3004), so the transformed stack is checked:
    the functions run with the roles the policies name, and nothing depends on itself."""
    transformed = sam_transformed()["Resources"]
    for function, role in (("RefundApiFunction", API_ROLE), ("RefundWorkerFunction", WORKER_ROLE)):
        assert "Role" not in RESOURCES[function]["Properties"], "the policies name SAM's generated role"
        assert transformed[function]["Properties"]["Role"] == role
        assert transformed[role["Fn::GetAtt"][0]]["Type"] == "AWS::IAM::Role"
    graph = {}
    for name, resource in transformed.items():
        depends_on = resource.get("DependsOn", [])
        refs = dependencies(resource) | set(depends_on if isinstance(depends_on, list) else [depends_on])
        graph[name] = refs & set(transformed)
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on a cycle
    assert {"RefundApiFunctionRole", "RefundWorkerFunctionRole"} <= graph["RefundTable"]


def test_operator_role_arns_is_an_optional_list_of_exact_role_arns():
    parameter = PARAMETERS["OperatorRoleArns"]
    assert (parameter["Type"], parameter["Default"]) == ("CommaDelimitedList", "")
    # CloudFormation matches the pattern against each ARN of the list.
    pattern = re.compile(parameter["AllowedPattern"])
    for good in ("", "arn:aws:iam::123456789012:role/refund-operator",
                 "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Operator_0a1b2c3d4e5f6a7b"):
        assert pattern.fullmatch(good), good
    # No wildcard (every role of an account), no user, no session, no other service.
    for bad in ("*", "arn:aws:iam::123456789012:role/*", "arn:aws:iam::*:role/refund-operator",
                "arn:aws:iam::123456789012:role/refund-?", "arn:aws:iam::123456789012:user/alice",
                "arn:aws:sts::123456789012:assumed-role/refund-operator/alice", "arn:aws:iam::123456789012:root",
                "arn:aws:iam::123456789012:role/a b"):
        assert not pattern.fullmatch(bad), bad
    # Empty, the list is [""]: the condition is false and the operators' exception left out.
    assert TEMPLATE["Conditions"]["HasOperatorRoleArns"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", ref("OperatorRoleArns")]}, ""]}]
    }
    assert evaluate({"Fn::If": ["HasOperatorRoleArns", True, False]}, {"OperatorRoleArns": ""}) is False
    assert evaluate({"Fn::If": ["HasOperatorRoleArns", True, False]}, {"OperatorRoleArns": "arn:aws:iam::1:role/o"}) is True


def deny_statement(policy):
    (statement,) = policy["Statement"]
    assert policy["Version"] == "2012-10-17"
    assert (statement["Effect"], statement["Principal"]) == ("Deny", "*")
    return statement


def assert_no_empty_string(node, where):
    if isinstance(node, dict):
        for v in node.values():
            assert_no_empty_string(v, where)
    elif isinstance(node, list):
        for v in node:
            assert_no_empty_string(v, where)
    else:
        assert node != "", where


@pytest.mark.parametrize("operators", ["", "arn:aws:iam::123456789012:role/ops",
                                       "arn:aws:iam::123456789012:role/ops,arn:aws:iam::123456789012:role/oncall"])
def test_only_refund_api_and_the_operators_may_send_to_the_refund_queue(operators):
    # The refund queue's policy (the webhook's dead-letter queue has one of its own).
    (name,) = [k for k, v in RESOURCES.items()
               if v["Type"] == "AWS::SQS::QueuePolicy" and ref("RefundQueue") in v["Properties"]["Queues"]]
    props = RESOURCES[name]["Properties"]
    assert props["Queues"] == [ref("RefundQueue")]
    statement = deny_statement(props["PolicyDocument"])
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["RefundQueue", "Arn"]}
    # Everyone is refused but refund-api's role and the operators (the DLQ redrive sends
    # with the operator's permissions). The worker sends to the DLQ only: not excepted.
    assert statement["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": API_ROLE}, "ArnNotLike": OPERATORS}
    resolved = evaluate(statement["Condition"], {"OperatorRoleArns": operators})
    if operators:
        assert resolved["ArnNotLike"] == {"aws:PrincipalArn": operators.split(",")}
    else:
        assert set(resolved) == {"ArnNotEquals"}  # no [""]: an empty ARN is no valid policy
    assert_no_empty_string(resolved, operators)
    # refund-api's role is the only one granted the send.
    senders = [f for f in (API, WORKER) for s in statements(f)
               if "sqs:SendMessage" in actions(s) and "RefundQueue" in set(resource_names(s))]
    assert senders == [API]


TABLE_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
                "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"}


@pytest.mark.parametrize("operators", ["", "arn:aws:iam::123456789012:role/ops"])
def test_only_the_functions_and_the_operators_may_write_the_status_tables_items(operators):
    statement = deny_statement(TABLE["Properties"]["ResourcePolicy"]["PolicyDocument"])
    assert set(actions(statement)) == TABLE_WRITES
    # Reads (the status routes, the worker's consistent reads) stay as IAM grants them.
    assert not any(a.endswith(("GetItem", "Query", "Scan", "PartiQLSelect")) for a in actions(statement))
    # The policy of the table itself, named from its name (GetAtt on itself is no value here).
    assert statement["Resource"] == {"Fn::Sub": TABLE_ARN}
    assert statement["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": [API_ROLE, WORKER_ROLE]},
        "ArnNotLike": OPERATORS,
    }
    resolved = evaluate(statement["Condition"], {"OperatorRoleArns": operators})
    assert ("ArnNotLike" in resolved) == bool(operators)
    assert_no_empty_string(resolved, operators)
    # Every item write the functions are granted is one the policy guards.
    granted = {a for f in (API, WORKER) for s in statements(f) for a in actions(s) if a.startswith("dynamodb:")}
    assert granted & TABLE_WRITES == {"dynamodb:UpdateItem", "dynamodb:PutItem"}


def test_completed_records_expire_after_the_retention_or_never():
    parameter = PARAMETERS["RecordRetentionDays"]
    assert (parameter["Type"], parameter["Default"]) == ("String", "365")
    ttl = TABLE["Properties"]["TimeToLiveSpecification"]
    # expires_at: epoch seconds, written by the code on completed records only.
    assert ttl == {"AttributeName": "expires_at", "Enabled": {"Fn::If": ["KeepsRecordsForever", False, True]}}
    assert TEMPLATE["Conditions"]["KeepsRecordsForever"] == {"Fn::Equals": [ref("RecordRetentionDays"), "0"]}
    # 0 keeps every record: TTL is off, so not even an expires_at written earlier deletes one.
    assert evaluate(ttl, {"RecordRetentionDays": "0"})["Enabled"] is False
    assert evaluate(ttl, {"RecordRetentionDays": "365"})["Enabled"] is True
    # Not a key attribute: never declared, never in the local stack's table definition.
    assert "expires_at" not in {a["AttributeName"] for a in TABLE["Properties"]["AttributeDefinitions"]}
    for function in (API, WORKER):
        assert function["Properties"]["Environment"]["Variables"]["RECORD_RETENTION_DAYS"] == ref("RecordRetentionDays")


def test_records_are_kept_forever_or_at_least_as_long_as_the_services_keep_keys():
    # docs/CONTRACT.md section 8: 0 or 31..36500, by pattern (a Number cannot say it).
    parameter = PARAMETERS["RecordRetentionDays"]
    pattern = re.compile(parameter["AllowedPattern"])
    for good in ("0", "31", "365", "36500", parameter["Default"]):
        assert pattern.fullmatch(good), good
    for bad in ("1", "30", "36501", "-1", "", "00", "031", " 365", "365.0", "1e3"):
        assert not pattern.fullmatch(bad), bad
    assert "31" in parameter["ConstraintDescription"]
    # Exactly what the functions accept at start-up (shared/src/config.rs), value by value.
    config_rs = (ROOT / "shared/src/config.rs").read_text()
    (floor,) = re.findall(r"pub const MIN_RECORD_RETENTION_DAYS: u32 = (\d+);", config_rs)
    (high,) = re.findall(r"RECORD_RETENTION_DAYS, 0, 0\.\.=([\d_]+),", config_rs)
    high = int(high.replace("_", ""))
    accepted = {n for n in range(high + 100) if pattern.fullmatch(str(n))}
    assert accepted == {0} | set(range(int(floor), high + 1))


def test_worker_reserved_concurrency_covers_the_event_sources_maximum():
    reserved, maximum = PARAMETERS["WorkerReservedConcurrency"], PARAMETERS["MaxWorkerConcurrency"]
    assert SQS_EVENT["ScalingConfig"]["MaximumConcurrency"] == ref("MaxWorkerConcurrency")
    assert (reserved["Type"], reserved["MinValue"]) == ("Number", 0)
    assert reserved["Default"] == maximum["Default"]
    # Reserved (non-zero) below MaximumConcurrency throttles the mapping's invocations, and
    # throttled messages come back and may be dead-lettered; every maximum can be covered.
    if reserved["Default"]:
        assert reserved["Default"] >= maximum["Default"]
    assert reserved["MaxValue"] >= maximum["MaxValue"]
    assert WORKER["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasWorkerReservedConcurrency", ref("WorkerReservedConcurrency"), ref("AWS::NoValue")]
    }
    assert TEMPLATE["Conditions"]["HasWorkerReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [ref("WorkerReservedConcurrency"), "0"]}]
    }
    # 0 (new accounts, whose quota of 10 leaves nothing to reserve): no reservation at all.
    assert "ReservedConcurrentExecutions" not in evaluate(WORKER["Properties"], {"WorkerReservedConcurrency": "0"})
    assert evaluate(WORKER["Properties"], {"WorkerReservedConcurrency": "7"})["ReservedConcurrentExecutions"] == "7"
    assert "ReservedConcurrentExecutions" not in API["Properties"]


def test_the_token_secrets_kms_key_decrypts_through_secrets_manager_only_for_that_secret():
    parameter = PARAMETERS["TokenSecretKmsKeyArn"]
    assert (parameter["Type"], parameter["Default"]) == ("String", "")
    pattern = re.compile(parameter["AllowedPattern"])
    for good in ("", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                 "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"):
        assert pattern.fullmatch(good), good
    for bad in ("*", "arn:aws:kms:eu-west-1:123456789012:key/*", "arn:aws:kms:eu-west-1:123456789012:alias/token",
                "1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:kms:eu-west-1:123456789012:key/x y"):
        assert not pattern.fullmatch(bad), bad
    # Granted only with both a secret and its key (a key alone decrypts nothing of ours).
    assert TEMPLATE["Conditions"]["HasTokenSecretKmsKey"] == {
        "Fn::And": [{"Condition": "HasGatewayTokenSecret"}, {"Fn::Not": [{"Fn::Equals": [ref("TokenSecretKmsKeyArn"), ""]}]}]
    }
    rule = TEMPLATE["Rules"]["TokenSecretKmsKeyNeedsTheSecret"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [ref("TokenSecretKmsKeyArn"), ""]}]}
    assert [a["Assert"] for a in rule["Assertions"]] == [{"Fn::Not": [{"Fn::Equals": [ref("GatewayTokenSecretArn"), ""]}]}]
    conditional = [s["Fn::If"] for p in WORKER["Properties"]["Policies"] for s in p["Statement"] if "Fn::If" in s]
    assert [c for c in conditional if c[0] == "HasTokenSecretKmsKey"] == [[
        "HasTokenSecretKmsKey",
        {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": ref("TokenSecretKmsKeyArn"),
            "Condition": {"StringEquals": {
                "kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"},
                "kms:EncryptionContext:SecretARN": ref("GatewayTokenSecretArn"),
            }},
        },
        ref("AWS::NoValue"),
    ]]
    # No kms: action anywhere else, for either function.
    kms = [(f is WORKER, s) for f in (API, WORKER) for s in statements(f) if any(a.startswith("kms:") for a in actions(s))]
    assert [(w, actions(s)) for w, s in kms] == [(True, ["kms:Decrypt"])]
    secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gateway-token-AbC123"
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    policies = WORKER["Properties"]["Policies"]
    granted = lambda values: [s for p in evaluate(policies, values) for s in p["Statement"] if s["Action"] == "kms:Decrypt"]  # noqa: E731
    assert granted({"GatewayTokenSecretArn": secret, "TokenSecretKmsKeyArn": ""}) == []
    assert granted({"GatewayTokenSecretArn": "", "TokenSecretKmsKeyArn": key}) == []
    assert [s["Resource"] for s in granted({"GatewayTokenSecretArn": secret, "TokenSecretKmsKeyArn": key})] == [key]


def test_the_code_reads_the_trust_boundary_variables():
    assert ISSUE_14_VARIABLES <= names_read_by("shared/src/config.rs"), ISSUE_14_VARIABLES - names_read_by("shared/src/config.rs")


def test_the_code_writes_the_ttl_attribute_the_table_expires_on():
    assert rust_const(TABLE_RS, "EXPIRES_AT") == TABLE["Properties"]["TimeToLiveSpecification"]["AttributeName"]


def test_every_environment_reserves_at_least_its_maximum_worker_concurrency():
    import tomllib
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    checked = False
    for env, section in config.items():
        if not isinstance(section, dict):
            continue  # `version`
        overrides = section.get("deploy", {}).get("parameters", {}).get("parameter_overrides")
        if not overrides:
            continue
        values = dict(re.findall(r'(\w+)="([^"]*)"', overrides))
        maximum = int(values.get("MaxWorkerConcurrency", PARAMETERS["MaxWorkerConcurrency"]["Default"]))
        reserved = int(values.get("WorkerReservedConcurrency", PARAMETERS["WorkerReservedConcurrency"]["Default"]))
        assert reserved == 0 or reserved >= maximum, (env, reserved, maximum)
        checked = True
    assert checked
