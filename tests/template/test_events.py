"""The refund events' part of template.yaml (docs/CONTRACT.md section 9, docs/EVENTS.md): the bus and
its archive, the worker's one grant on it, the optional webhook, the alarms and the operator
dashboard, whose TicketRefunds metrics must be the ones refund-worker emits.

The emitted metrics and error codes are read from the Rust source, never listed here.
"""

import json
import re

import pytest

from test_template import (
    API,
    METRICS_RS,
    PARAMETERS,
    RESOURCES,
    ROOT,
    TEMPLATE,
    WORKER,
    actions,
    evaluate,
    ref,
    statements,
)

BUS = RESOURCES["RefundEventBus"]
ARCHIVE = RESOURCES["RefundEventArchive"]
BUS_ARN = {"Fn::GetAtt": ["RefundEventBus", "Arn"]}
SOURCE = "ticket-refunds"
DETAIL_TYPES = ["TicketRefunded", "TicketRefundFailed"]
WEBHOOK = ("WebhookConnection", "WebhookApiDestination", "WebhookInvokeRole", "WebhookDeadLetterQueue",
           "WebhookDeadLetterQueuePolicy", "WebhookRule", "WebhookDeadLetterAlarm")
A_URL = {"WebhookUrl": "https://hooks.example.com/refunds",
         "WebhookApiKeySecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:webhook-key-AbC123"}


def emitted_metrics():
    """The metric names refund-worker's EMF lines declare: the string literals given as a
    metric's "Name", directly or through a `for (name, ..) in [("Name", ..), ..]` list."""
    code = METRICS_RS.split("#[cfg(test)]", 1)[0]
    names = set(re.findall(r'"Name":\s*"(\w+)"', code))
    for variable in set(re.findall(r'"Name":\s*([a-z_]\w*)', code)):
        for pairs in re.findall(rf"for \({variable},[^)]*\) in \[(.*?)\]", code, re.S):
            names |= set(re.findall(r'\(\s*"(\w+)"', pairs))
    return names


def rust_str_const(name):
    (value,) = re.findall(rf'pub const {name}: &str = "([^"]+)";', METRICS_RS)
    return value


def error_codes():
    """The `error_code`s of shared/src/verdict.rs (ErrorCode::as_str)."""
    source = (ROOT / "shared/src/verdict.rs").read_text()
    block = source.split("impl ErrorCode {", 1)[1].split("\n}\n", 1)[0]
    return set(re.findall(r'Self::\w+\s*=>\s*"(\w+)"', block))


def test_the_scans_of_the_rust_source_find_what_it_emits():
    # Not vacuous: the metrics of the alarms and the codes of the runbook are all found.
    assert {"RefundsDone", "RefundsRetried", "RefundsDeadLettered", "VoidReceiptLatency", "RefundPaymentLatency",
            "StatusWriteFailed", "ForeignIdempotencyKey", "UpstreamUnauthorized"} <= emitted_metrics()
    assert {"invalid_command", "void_rejected", "refund_rejected", "retries_exhausted",
            "foreign_key_conflict"} <= error_codes()


# ------------------------------------------------------------------ bus and archive


def test_the_worker_publishes_to_the_stacks_own_bus():
    assert BUS["Type"] == "AWS::Events::EventBus"
    # The local stack names its bus as it names the queues: without the "<stack>-" prefix.
    name = BUS["Properties"]["Name"]["Fn::Sub"]
    assert name.removeprefix("${AWS::StackName}-") == "ticket-refunds" != name
    # Ref of a bus is its name, which is what EVENT_BUS_NAME holds (docs/CONTRACT.md section 5).
    assert WORKER["Properties"]["Environment"]["Variables"]["EVENT_BUS_NAME"] == ref("RefundEventBus")
    assert "EVENT_BUS_NAME" not in API["Properties"]["Environment"]["Variables"]
    outputs = TEMPLATE["Outputs"]
    assert outputs["EventBusName"]["Value"] == ref("RefundEventBus")
    assert outputs["EventBusArn"]["Value"] == BUS_ARN


def test_every_refund_event_is_archived_for_event_archive_days():
    assert ARCHIVE["Type"] == "AWS::Events::Archive"
    props = ARCHIVE["Properties"]
    assert props["SourceArn"] == BUS_ARN
    assert props["EventPattern"] == {"source": [SOURCE]}
    assert props["RetentionDays"] == ref("EventArchiveDays")
    parameter = PARAMETERS["EventArchiveDays"]
    # 0 is EventBridge's "indefinitely"; the default keeps a month to replay from.
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 30, 0)
    assert TEMPLATE["Outputs"]["EventArchiveArn"]["Value"] == {"Fn::GetAtt": ["RefundEventArchive", "Arn"]}


def test_only_the_worker_may_put_events_and_only_on_its_bus():
    granted = {name: [s for s in statements(f) if any(a.startswith("events:") for a in actions(s))]
               for name, f in (("api", API), ("worker", WORKER))}
    assert granted == {
        "api": [],
        "worker": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": BUS_ARN}],
    }
    # No statement of any kind in the functions' policies names the bus but this one.
    for function in (API, WORKER):
        for statement in statements(function):
            if "RefundEventBus" in json.dumps(statement):
                assert actions(statement) == ["events:PutEvents"]


# ------------------------------------------------------------------ webhook


def test_the_webhook_exists_only_with_a_webhook_url():
    assert TEMPLATE["Conditions"]["HasWebhook"] == {"Fn::Not": [{"Fn::Equals": [ref("WebhookUrl"), ""]}]}
    for name in WEBHOOK:
        assert RESOURCES[name].get("Condition") == "HasWebhook", name
    # Nothing else is conditional on it, and every resource named Webhook* is listed above.
    assert {n for n, r in RESOURCES.items() if r.get("Condition") == "HasWebhook"} == set(WEBHOOK)
    assert {n for n in RESOURCES if n.startswith("Webhook")} == set(WEBHOOK)
    # So are the outputs that name them.
    outputs = {n: o for n, o in TEMPLATE["Outputs"].items() if "Webhook" in json.dumps(o["Value"])}
    assert set(outputs) == {"WebhookConnectionName", "WebhookRuleArn", "WebhookDeadLetterQueueUrl"}
    assert all(o["Condition"] == "HasWebhook" for o in outputs.values())
    assert (PARAMETERS["WebhookUrl"]["Type"], PARAMETERS["WebhookUrl"]["Default"]) == ("String", "")
    assert evaluate({"Fn::If": ["HasWebhook", True, False]}, {}) is False
    assert evaluate({"Fn::If": ["HasWebhook", True, False]}, A_URL) is True
    # API destinations call https only; the pattern says so before CloudFormation does.
    pattern = re.compile(PARAMETERS["WebhookUrl"]["AllowedPattern"])
    for good in ("", "https://hooks.example.com/refunds", "https://hooks.example.com:8443/a?b=c"):
        assert pattern.fullmatch(good), good
    for bad in ("http://hooks.example.com", "hooks.example.com", "https://a b"):
        assert not pattern.fullmatch(bad), bad


def test_a_webhook_url_needs_its_api_key_secret():
    rule = TEMPLATE["Rules"]["WebhookNeedsKey"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [ref("WebhookUrl"), ""]}]}
    assert [a["Assert"] for a in rule["Assertions"]] == [{"Fn::Not": [{"Fn::Equals": [ref("WebhookApiKeySecretArn"), ""]}]}]
    parameter = PARAMETERS["WebhookApiKeySecretArn"]
    assert (parameter["Type"], parameter["Default"]) == ("String", "")
    assert parameter["AllowedPattern"] == PARAMETERS["GatewayTokenSecretArn"]["AllowedPattern"]


def test_the_webhooks_api_key_is_resolved_from_the_secret_never_a_parameter_value():
    props = RESOURCES["WebhookConnection"]["Properties"]
    assert props["AuthorizationType"] == "API_KEY"
    assert props["AuthParameters"] == {"ApiKeyAuthParameters": {
        "ApiKeyName": ref("WebhookApiKeyHeader"),
        "ApiKeyValue": {"Fn::Sub": "{{resolve:secretsmanager:${WebhookApiKeySecretArn}:SecretString}}"},
    }}
    assert PARAMETERS["WebhookApiKeyHeader"]["Default"] == "x-api-key"
    assert re.fullmatch(PARAMETERS["WebhookApiKeyHeader"]["AllowedPattern"], "x-api-key")
    assert not re.fullmatch(PARAMETERS["WebhookApiKeyHeader"]["AllowedPattern"], "x-api-key: abc")
    # The secret's ARN is used by the dynamic reference alone (and the rule that needs it):
    # no function reads it, no output or environment carries it.
    users = [n for n, r in RESOURCES.items() if "WebhookApiKeySecretArn" in json.dumps(r)]
    assert users == ["WebhookConnection"]
    assert "WebhookApiKeySecretArn" not in json.dumps(TEMPLATE["Outputs"])


def test_eventbridge_may_invoke_the_webhook_destination_and_nothing_else():
    destination = RESOURCES["WebhookApiDestination"]["Properties"]
    assert destination["ConnectionArn"] == {"Fn::GetAtt": ["WebhookConnection", "Arn"]}
    assert (destination["HttpMethod"], destination["InvocationEndpoint"]) == ("POST", ref("WebhookUrl"))
    assert destination["InvocationRateLimitPerSecond"] > 0
    role = RESOURCES["WebhookInvokeRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert (trust["Effect"], trust["Principal"], trust["Action"]) == ("Allow", {"Service": "events.amazonaws.com"}, "sts:AssumeRole")
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}
    (policy,) = role["Policies"]
    # ArnForPolicy: that destination's ARN in IAM's resource format.
    assert policy["PolicyDocument"]["Statement"] == [{
        "Effect": "Allow",
        "Action": "events:InvokeApiDestination",
        "Resource": {"Fn::GetAtt": ["WebhookApiDestination", "ArnForPolicy"]},
    }]
    assert "ManagedPolicyArns" not in role


def test_the_webhook_rule_sends_both_events_with_retries_then_dead_letters_them():
    rule = RESOURCES["WebhookRule"]["Properties"]
    assert rule["EventBusName"] == ref("RefundEventBus")
    assert rule["EventPattern"] == {"source": [SOURCE], "detail-type": DETAIL_TYPES}
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["WebhookApiDestination", "Arn"]}
    assert target["RoleArn"] == {"Fn::GetAtt": ["WebhookInvokeRole", "Arn"]}
    retry = target["RetryPolicy"]
    assert set(retry) == {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"}
    assert 0 < retry["MaximumRetryAttempts"] <= 185 and 60 <= retry["MaximumEventAgeInSeconds"] <= 86400
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}}
    dlq = RESOURCES["WebhookDeadLetterQueue"]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "RedrivePolicy" not in dlq


def test_only_the_webhook_rule_may_dead_letter_to_the_webhook_queue():
    props = RESOURCES["WebhookDeadLetterQueuePolicy"]["Properties"]
    assert props["Queues"] == [ref("WebhookDeadLetterQueue")]
    assert props["PolicyDocument"]["Version"] == "2012-10-17"
    (statement,) = props["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
        "Allow", {"Service": "events.amazonaws.com"}, "sqs:SendMessage")
    assert statement["Resource"] == {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["WebhookRule", "Arn"]}}}


# ------------------------------------------------------------------ alarms


def alarm(name):
    props = RESOURCES[name]["Properties"]
    assert props["AlarmActions"] == [ref("AlarmTopic")]
    assert (props["Threshold"], props["ComparisonOperator"], props["TreatMissingData"]) == (0, "GreaterThanThreshold", "notBreaching")
    return props


def test_events_the_bus_refused_are_alarmed():
    props = alarm("EventsUnpublishedAlarm")
    assert (props["Namespace"], props["MetricName"]) == (rust_str_const("NAMESPACE"), "EventsUnpublished")
    assert props["Dimensions"] == [{"Name": "Service", "Value": rust_str_const("SERVICE")}]
    assert (props["Statistic"], props["Period"], props["EvaluationPeriods"]) == ("Sum", 300, 1)


def test_a_ticket_dead_lettered_voided_but_not_refunded_is_alarmed():
    # docs/CONTRACT.md section 4: the customer has neither ticket nor money. That the worker
    # emits the metric: test_every_alarm_on_the_workers_namespace_reads_a_metric_it_emits.
    props = alarm("VoidedNotRefundedAlarm")
    assert (props["Namespace"], props["MetricName"]) == (rust_str_const("NAMESPACE"), "VoidedNotRefunded")
    assert props["Dimensions"] == [{"Name": "Service", "Value": rust_str_const("SERVICE")}]
    assert (props["Statistic"], props["Period"], props["EvaluationPeriods"]) == ("Sum", 300, 1)


def test_events_the_webhook_did_not_take_are_alarmed():
    props = alarm("WebhookDeadLetterAlarm")
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum")
    assert props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["WebhookDeadLetterQueue", "QueueName"]}}]


def alarmed_metrics(namespace):
    """(alarm, metric name) for every alarm metric in the namespace, single or in Metrics."""
    for name, resource in RESOURCES.items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        if props.get("Namespace") == namespace:
            yield name, props["MetricName"]
        for query in props.get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == namespace:
                yield name, metric["MetricName"]


def test_every_alarm_on_the_workers_namespace_reads_a_metric_it_emits():
    alarmed = set(alarmed_metrics(rust_str_const("NAMESPACE")))
    assert ("EventsUnpublishedAlarm", "EventsUnpublished") in alarmed
    assert {(a, m) for a, m in alarmed if m not in emitted_metrics()} == set()


# ------------------------------------------------------------------ dashboard


def placeholders(node):
    """Every Fn::Sub text with its ${...} as <...>, so the body can be parsed as JSON."""
    if isinstance(node, list):
        return [placeholders(v) for v in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
        return re.sub(r"\$\{([^}!][^}]*)\}", r"<\1>", node["Fn::Sub"])
    return {k: placeholders(v) for k, v in node.items()}


def dashboard(parameters):
    body = RESOURCES["OperatorDashboard"]["Properties"]["DashboardBody"]
    return json.loads(evaluate(placeholders(body), parameters))


def plotted(parameters=A_URL):
    """(namespace, metric, dimensions, options) of every metric line of every widget."""
    lines = []
    for widget in dashboard(parameters)["widgets"]:
        if widget["type"] != "metric":
            continue
        assert widget["properties"]["region"] == "<AWS::Region>"
        for row in widget["properties"]["metrics"]:
            options = row[-1] if isinstance(row[-1], dict) else {}
            row = row[:-1] if options else row
            # Explicit lines only: no "..." shorthand, no expression a name could hide in.
            assert len(row) % 2 == 0 and "." not in row[:2] and "expression" not in options, row
            lines.append((row[0], row[1], dict(zip(row[2::2], row[3::2])), options))
    return lines


def test_the_dashboard_is_valid_json_with_or_without_a_webhook():
    without, with_webhook = dashboard({}), dashboard(A_URL)
    titles = lambda d: [w["properties"].get("title") for w in d["widgets"]]  # noqa: E731
    assert titles(with_webhook) == titles(without) + ["Webhook dead-letter queue depth"]
    assert "Webhook" not in json.dumps(without)
    url = TEMPLATE["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert url == ("https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}"
                   "#dashboards:name=${OperatorDashboard}")


def test_every_worker_metric_the_dashboard_plots_is_one_the_worker_emits_and_the_other_way_round():
    namespace, service = rust_str_const("NAMESPACE"), rust_str_const("SERVICE")
    lines = [line for line in plotted() if line[0] == namespace]
    assert all(dims["Service"] == service and set(dims) <= {"Service", "ErrorCode"} for _, _, dims, _ in lines)
    shown = {metric for _, metric, _, _ in lines}
    assert {"EventsPublished", "EventsUnpublished"} <= shown
    assert shown - emitted_metrics() == set(), "plotted but never emitted"
    assert emitted_metrics() - shown == set(), "emitted but not on the dashboard"


def test_the_dashboard_shows_the_dead_lettered_records_by_every_error_code():
    codes = {dims["ErrorCode"] for _, metric, dims, _ in plotted() if "ErrorCode" in dims and metric == "RefundsDeadLettered"}
    assert "event_unpublished" in codes  # docs/CONTRACT.md section 4, with the events issue
    assert codes == error_codes()


def test_the_dashboard_shows_the_queues_the_api_and_the_upstream_latencies():
    lines = plotted()
    sqs = {(metric, dims["QueueName"]) for ns, metric, dims, _ in lines if ns == "AWS/SQS"}
    assert {("ApproximateNumberOfMessagesVisible", "<RefundQueue.QueueName>"),
            ("ApproximateAgeOfOldestMessage", "<RefundQueue.QueueName>"),
            ("ApproximateNumberOfMessagesVisible", "<DeadLetterQueue.QueueName>"),
            ("ApproximateNumberOfMessagesVisible", "<WebhookDeadLetterQueue.QueueName>")} <= sqs
    api = {(metric, options.get("stat")) for ns, metric, dims, options in lines
           if ns == "AWS/ApiGateway" and dims == {"ApiId": "<HttpApi>"}}
    assert {("4xx", None), ("5xx", None), ("Latency", "p50"), ("Latency", "p99")} <= api
    latencies = {(metric, options["stat"]) for _, metric, _, options in lines if metric.endswith("Latency") and "stat" in options}
    for call in ("VoidReceiptLatency", "RefundPaymentLatency"):
        assert {(call, "p50"), (call, "p99")} <= latencies


@pytest.mark.parametrize("parameters", [{}, A_URL])
def test_the_dashboard_names_only_resources_the_stack_has(parameters):
    text = json.dumps(dashboard(parameters))
    named = {n.split(".")[0] for n in re.findall(r"<([^>]+)>", text)} - {"AWS::Region", "AWS::StackName"}
    assert named <= set(RESOURCES)
    assert ("WebhookDeadLetterQueue" in named) == bool(parameters)
