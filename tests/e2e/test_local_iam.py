"""Strict IAM on the deployed template (scripts/local_iam.py): the local copy's statements as
moto can check them, and, on a fresh moto enforcing IAM, each function's role credentials
allowed what its role says and denied the rest."""

import json

import botocore.exceptions
import local_deploy
import local_iam
import pytest

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf"
TABLE = {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/t"}


@pytest.mark.parametrize("statement, expected", [
    # SQS statements keep their ARN (moto matches it); batch actions join their single ones.
    ({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "q"},
     {"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:SendMessageBatch"], "Resource": "q"}),
    ({"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
      "Resource": "q"},
     {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                                    "sqs:DeleteMessageBatch", "sqs:ChangeMessageVisibilityBatch"], "Resource": "q"}),
    ({"Effect": "Allow", "Action": ["sqs:DeleteMessage", "sqs:DeleteMessageBatch"], "Resource": "q"},
     {"Effect": "Allow", "Action": ["sqs:DeleteMessage", "sqs:DeleteMessageBatch"], "Resource": "q"}),
    ({"Effect": "Allow", "Action": "sqs:GetQueueAttributes", "Resource": "q"},
     {"Effect": "Allow", "Action": "sqs:GetQueueAttributes", "Resource": "q"}),
    # Any other service's statement: every resource, the same actions.
    ({"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": TABLE},
     {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": "*"}),
    ({"Effect": "Allow", "Action": "dynamodb:Query", "Resource": [TABLE, TABLE]},
     {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": "*"}),
    # Mixed: not SQS only, so widened.
    ({"Effect": "Allow", "Action": ["sqs:SendMessage", "events:PutEvents"], "Resource": "x"},
     {"Effect": "Allow", "Action": ["sqs:SendMessage", "events:PutEvents", "sqs:SendMessageBatch"], "Resource": "*"}),
    # A conditional statement: both branches.
    ({"Fn::If": ["C", {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": SECRET},
                 {"Ref": "AWS::NoValue"}]},
     {"Fn::If": ["C", {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
                 {"Ref": "AWS::NoValue"}]}),
])
def test_a_statement_as_moto_can_check_it(statement, expected):
    assert local_iam.strict_statement(statement) == expected


def test_only_iam_policies_are_changed():
    cfn = {"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [
            {"PolicyName": "p", "PolicyDocument": {"Statement": {"Effect": "Allow", "Action": "events:PutEvents",
                                                                  "Resource": "bus"}}}]}},
        "QueuePolicy": {"Type": "AWS::SQS::QueuePolicy", "Properties": {"PolicyDocument": {"Statement": [
            {"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": "t"}]}}},
    }}
    strict = local_iam.strict_copy(cfn)
    assert strict["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": "events:PutEvents", "Resource": "*"}]
    assert strict["Resources"]["QueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Resource"] == "t"


@pytest.fixture
def strict(moto):
    """The template deployed by the administrator, each function's role assumed, then IAM
    enforced: (deployment, admin credentials, role credentials by function logical id)."""
    admin = local_iam.create_admin(local_deploy.client(moto, "iam"))
    deployment = local_deploy.deploy(moto, credentials=admin, strict_iam=True)
    sts = local_deploy.client(moto, "sts", admin)
    roles = {logical: local_iam.role_credentials(sts, f["role"], logical)
             for logical, f in deployment.functions.items()}
    local_iam.enforce(moto)
    return deployment, admin, roles


def as_role(moto, roles, logical, service):
    env = roles[logical]
    return local_deploy.client(moto, service, (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                                               env["AWS_SESSION_TOKEN"]))


def denied(call):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.value
    return True


def test_each_function_may_do_what_its_role_says_and_nothing_else(moto, strict):
    deployment, admin, roles = strict
    queue, dlq = (local_deploy.client(moto, "sqs", admin).get_queue_url(QueueName=url.rsplit("/", 1)[1])["QueueUrl"]
                  for url in (deployment.outputs["RefundQueueUrl"], deployment.outputs["DeadLetterQueueUrl"]))
    table = deployment.outputs["RefundTableName"]
    api_sqs, worker_sqs = (as_role(moto, roles, f, "sqs") for f in ("RefundApiFunction", "RefundWorkerFunction"))

    api_sqs.send_message(QueueUrl=queue, MessageBody="{}")
    assert denied(lambda: api_sqs.send_message(QueueUrl=dlq, MessageBody="{}"))
    assert denied(lambda: api_sqs.receive_message(QueueUrl=queue))

    (message,) = worker_sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    handle = message["ReceiptHandle"]
    worker_sqs.change_message_visibility_batch(QueueUrl=queue, Entries=[
        {"Id": "1", "ReceiptHandle": handle, "VisibilityTimeout": 0}])
    worker_sqs.send_message(QueueUrl=dlq, MessageBody="{}")
    worker_sqs.delete_message_batch(QueueUrl=queue, Entries=[{"Id": "1", "ReceiptHandle": handle}])
    assert denied(lambda: worker_sqs.send_message(QueueUrl=queue, MessageBody="{}"))

    key = {"ticket_id": {"S": "t"}}
    worker_db = as_role(moto, roles, "RefundWorkerFunction", "dynamodb")
    worker_db.put_item(TableName=table, Item=key)
    worker_db.get_item(TableName=table, Key=key)
    assert denied(lambda: worker_db.update_item(TableName=table, Key=key))
    assert denied(lambda: worker_db.query(TableName=table, IndexName="by-time", KeyConditionExpression="all_shard = :s",
                                          ExpressionAttributeValues={":s": {"S": "all#0"}}))
    as_role(moto, roles, "RefundApiFunction", "dynamodb").query(
        TableName=table, IndexName="by-time", KeyConditionExpression="all_shard = :s",
        ExpressionAttributeValues={":s": {"S": "all#0"}})

    bus = deployment.outputs["EventBusName"]
    entry = {"Source": "ticket-refunds", "DetailType": "t", "Detail": json.dumps({}), "EventBusName": bus}
    as_role(moto, roles, "RefundWorkerFunction", "events").put_events(Entries=[entry])
    assert denied(lambda: as_role(moto, roles, "RefundApiFunction", "events").put_events(Entries=[entry]))


def test_unknown_credentials_are_refused_and_the_administrator_may_do_anything(moto, strict):
    _, admin, _ = strict
    assert denied(lambda: local_deploy.client(moto, "sqs").list_queues())
    assert local_deploy.client(moto, "sqs", admin).list_queues()["QueueUrls"]
