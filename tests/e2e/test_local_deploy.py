"""template.yaml deployed into moto's CloudFormation (scripts/local_deploy.py), each test on a
fresh moto server: the stack the local stack runs on, as the template describes it, and a
deployment that fails when the template has what moto would silently leave out."""

import json

import local_deploy
import pytest
from cfnlint.decode import cfn_yaml
from local_deploy import client

TEMPLATE = cfn_yaml.load(str(local_deploy.TEMPLATE))
PARAMETERS = TEMPLATE["Parameters"]


def queue_attributes(moto, deployment, logical):
    url = deployment.resources[logical][1]
    return client(moto, "sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_the_template_deploys_with_every_resource_the_functions_need(moto):
    deployment = local_deploy.deploy(moto)
    assert client(moto, "cloudformation").describe_stacks(StackName=local_deploy.STACK)["Stacks"][0][
        "StackStatus"] == "CREATE_COMPLETE"
    types = {logical: type_ for logical, (type_, _) in deployment.resources.items()}
    assert {types[k] for k in ("RefundQueue", "DeadLetterQueue")} == {"AWS::SQS::Queue"}
    assert types["RefundTable"] == "AWS::DynamoDB::Table"
    assert types["CursorKeySecret"] == "AWS::SecretsManager::Secret"  # created by the script
    assert set(deployment.functions) == {"RefundApiFunction", "RefundWorkerFunction"}

    # Every variable the template sets is deployed, its Refs resolved to the stack's resources.
    api = deployment.functions["RefundApiFunction"]
    worker = deployment.functions["RefundWorkerFunction"]
    for logical, function in deployment.functions.items():
        declared = TEMPLATE["Resources"][logical]["Properties"]["Environment"]["Variables"]
        unconditional = {k for k, v in declared.items() if not (isinstance(v, dict) and "Fn::If" in v)}
        assert unconditional <= set(function["environment"]), logical
        assert function["role"].endswith(deployment.resources[f"{logical}Role"][1])
    assert api["environment"]["REFUND_QUEUE_URL"] == deployment.resources["RefundQueue"][1]
    assert worker["environment"]["DEAD_LETTER_QUEUE_URL"] == deployment.resources["DeadLetterQueue"][1]
    assert worker["environment"]["REFUND_TABLE_NAME"] == deployment.resources["RefundTable"][1]
    assert worker["environment"]["EVENT_BUS_NAME"] == deployment.outputs["EventBusName"]
    assert worker["environment"]["MAX_RECEIVE_COUNT"] == str(PARAMETERS["MaxReceiveCount"]["Default"])
    # The cursor key secret moto skips: created as its GenerateSecretString asks.
    key = client(moto, "secretsmanager").get_secret_value(
        SecretId=api["environment"]["REFUND_CURSOR_KEY_SECRET_ARN"])["SecretString"]
    assert len(key) == 64 and key.isalnum()

    index_names = {i["IndexName"] for i in client(moto, "dynamodb").describe_table(
        TableName=deployment.outputs["RefundTableName"])["Table"]["GlobalSecondaryIndexes"]}
    assert index_names == {"by-status", "by-time"}


def test_the_mapping_is_read_with_the_templates_settings_then_disabled(moto):
    deployment = local_deploy.deploy(moto, {"BatchSize": 4, "BatchingWindowSeconds": 2, "MaxWorkerConcurrency": 3})
    (mapping,) = deployment.mappings.values()
    assert mapping["batch_size"] == 4
    assert mapping["maximum_batching_window_s"] == 2
    assert mapping["maximum_concurrency"] == 3
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["function_arn"].endswith(deployment.functions["RefundWorkerFunction"]["name"])
    assert mapping["event_source_arn"] == queue_attributes(moto, deployment, "RefundQueue")["QueueArn"]
    found = client(moto, "lambda").get_event_source_mapping(UUID=mapping["uuid"])
    assert found["State"] == "Disabled"


@pytest.mark.parametrize("parameters, max_receive", [({}, PARAMETERS["MaxReceiveCount"]["Default"]),
                                                     ({"MaxReceiveCount": 7}, 7)])
def test_the_queues_carry_the_templates_redrive_policy(moto, parameters, max_receive):
    deployment = local_deploy.deploy(moto, parameters)
    queue = queue_attributes(moto, deployment, "RefundQueue")
    dlq = queue_attributes(moto, deployment, "DeadLetterQueue")
    declared = TEMPLATE["Resources"]["RefundQueue"]["Properties"]
    assert json.loads(queue["RedrivePolicy"]) == {"deadLetterTargetArn": dlq["QueueArn"],
                                                  "maxReceiveCount": max_receive}
    assert queue["VisibilityTimeout"] == str(declared["VisibilityTimeout"])
    assert queue["MessageRetentionPeriod"] == str(declared["MessageRetentionPeriod"])
    assert dlq["MessageRetentionPeriod"] == str(
        TEMPLATE["Resources"]["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"])
    assert queue["SqsManagedSseEnabled"] == dlq["SqsManagedSseEnabled"] == "true"
    # The DLQ's RedriveAllowPolicy is one moto's CloudFormation does not set (DEVIATIONS).
    assert any(what == "AWS::SQS::Queue" and "RedriveAllowPolicy" in how for what, how, _ in deployment.deviations)
    assert deployment.functions["RefundWorkerFunction"]["environment"]["MAX_RECEIVE_COUNT"] == str(max_receive)


def adding(logical, resource):
    def customize(sam):
        sam["Resources"][logical] = resource
        return [(logical, "added", "by the test")]

    return customize


@pytest.mark.parametrize("resource", [
    # A type moto has no model for at all.
    {"Type": "AWS::Pipes::Pipe", "Properties": {"Source": "a", "Target": "b", "RoleArn": "c"}},
    # One moto does create, but that MOTO_CREATES has never been checked for.
    {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": "x"}},
])
def test_a_resource_type_on_neither_list_fails_the_deployment(moto, resource):
    with pytest.raises(SystemExit, match=rf"\(MOTO_CREATES\) nor .* \(SKIPPED\): Surprise \({resource['Type']}\)"):
        local_deploy.deploy(moto, customize=adding("Surprise", resource))
    assert client(moto, "cloudformation").list_stacks()["StackSummaries"] == []


def test_a_variable_moto_would_leave_out_fails_the_deployment(moto):
    """moto skips alarms and drops a variable that refers to one: the deployment says so."""
    def customize(sam):
        variables = sam["Resources"]["RefundApiFunction"]["Properties"]["Environment"]["Variables"]
        variables["ALARM_NAME"] = {"Ref": "DeadLetterQueueNotEmptyAlarm"}
        return []

    with pytest.raises(SystemExit, match="RefundApiFunction was deployed without ALARM_NAME"):
        local_deploy.deploy(moto, customize=customize)


def test_the_lists_agree_with_moto():
    """MOTO_CREATES only names types moto has a CloudFormation model for, SKIPPED none."""
    from moto.cloudformation.parsing import get_model_map

    models = set(get_model_map())
    assert set(local_deploy.MOTO_CREATES) <= models
    assert not {type_ for type_, _ in local_deploy.SKIPPED} & models
