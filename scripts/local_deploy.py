#!/usr/bin/env python3
"""template.yaml, deployed into moto's CloudFormation: what the local stack is (docs/CONTRACT.md section 7).

Translates template.yaml with SAM's own translator (samtranslator, from the pinned aws-sam-cli),
deploys the result into moto's CloudFormation as stack `ticket-refunds-local`, waits for
CREATE_COMPLETE and reads back what the local stack runs on: every resource's physical id, each
function's deployed environment and role, and the event source mapping's settings. moto runs a
deployed mapping itself (it would consume the messages and try Docker), so the mapping is
disabled once read: scripts/local_stack.py's event source plays its part.

moto's CloudFormation creates the types of MOTO_CREATES and silently skips others while still
answering CREATE_COMPLETE (an environment variable that refers to a skipped resource is then
left out of the function). SKIPPED lists those, each with why the local stack does without it
or how this script creates it itself; a type of the translated template on neither list fails
the deployment, so the template cannot gain a resource the local stack silently lacks.
DEVIATIONS says where the deployed copy differs from template.yaml, and why.

    python3 scripts/local_deploy.py --endpoint-url http://127.0.0.1:4566   # prints the deployment
"""

import argparse
import copy
import dataclasses
import functools
import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import boto3
from cfnlint.decode import cfn_yaml

import local_iam

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
STACK = "ticket-refunds-local"
REGION = "us-east-1"
# Any key pair does while moto does not enforce IAM (local_iam.py).
LOCAL_CREDENTIALS = ("local", "local")
# The functions run under `cargo lambda watch`; moto only needs their code to exist.
CODE_BUCKET, CODE_KEY = f"{STACK}-code", "placeholder.zip"

# Parameters without a default that mean nothing locally: the worker's gateway address is a
# local override (scripts/local_stack.py), and the HTTP API with its JWT authorizer is skipped.
LOCAL_PARAMETERS = {
    "GatewayAddr": "https://gateway.invalid",
    "JwtIssuer": "https://jwt.invalid",
    "JwtAudience": "local",
}

# The types moto's CloudFormation creates (tests/e2e/test_local_deploy.py checks each against
# moto's own list of CloudFormation models).
MOTO_CREATES = (
    "AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::IAM::Role", "AWS::Lambda::Function",
    "AWS::Lambda::EventSourceMapping", "AWS::Lambda::Permission", "AWS::Logs::LogGroup",
    "AWS::SNS::Topic", "AWS::Events::EventBus", "AWS::Events::Archive", "AWS::Events::Rule",
    "AWS::CloudWatch::Dashboard",
)

# The types moto's CloudFormation skips (and still says CREATE_COMPLETE), each with what the
# local stack does about it.
SKIPPED = (
    ("AWS::SecretsManager::Secret", "created by this script from its SecretString or GenerateSecretString "
                                    "(refund-api reads the cursor key secret), every Ref to it replaced by its ARN"),
    ("AWS::CloudWatch::Alarm", "no alarms locally: nothing would watch them"),
    ("AWS::ApiGatewayV2::Api", "the HTTP API: the router of `cargo lambda watch` serves its routes "
                               "(no JWT authorizer, no CORS, no throttling)"),
    ("AWS::ApiGatewayV2::Stage", "the HTTP API's stage, as the HTTP API"),
    ("AWS::SNS::Subscription", "no alarm e-mail locally"),
    ("AWS::SQS::QueuePolicy", "the queues' resource policies, which moto would not enforce either"),
    ("AWS::Events::Connection", "the optional webhook (WebhookUrl), never set locally"),
    ("AWS::Events::ApiDestination", "the optional webhook (WebhookUrl), never set locally"),
)

# Where the deployed copy differs from template.yaml, for every deployment.
DEVIATIONS = (
    ("CodeUri", f"s3://{CODE_BUCKET}/{CODE_KEY}, a placeholder zip in moto's S3",
     "the functions run under `cargo lambda watch`; SAM's translator and moto only need a zip"),
    ("AWS::Events::Archive", "EventPattern left out", "moto 5.2.1's CloudFormation crashes on an archive's EventPattern"),
    ("AWS::Events::Archive", "ArchiveName <stack>-<logical id>",
     "moto's generated name (<stack>-<logical id>-<suffix>) exceeds the 48 characters archives may have"),
    ("AWS::SQS::Queue", "no RedriveAllowPolicy", "moto 5.2.1's CloudFormation does not set it (nor does moto "
                                                "enforce one): the local DLQ takes a redrive from any queue"),
    ("Ref of an AWS::Events::EventBus", "written as GetAtt Name (the same value in AWS: the bus's name)",
     "moto 5.2.1 answers Ref of a bus with an object, not the name"),
    *[(type_, "not created by moto's CloudFormation", why) for type_, why in SKIPPED],
)

# The keys of GenerateSecretString that GetRandomPassword takes as they are.
RANDOM_PASSWORD_KEYS = ("PasswordLength", "ExcludeCharacters", "ExcludeNumbers", "ExcludePunctuation",
                        "ExcludeUppercase", "ExcludeLowercase", "IncludeSpace", "RequireEachIncludedType")


class DeployError(SystemExit):
    def __init__(self, message):
        super().__init__(f"local-deploy: {message}")


@dataclasses.dataclass
class Deployment:
    stack: str
    # logical id -> (type, physical id); the resources this script created in moto's place too.
    resources: dict
    outputs: dict
    # logical id -> {"name", "role", "environment"} of each AWS::Lambda::Function, as deployed.
    functions: dict
    # logical id -> the settings of each AWS::Lambda::EventSourceMapping, read before disabling it.
    mappings: dict
    # (what, how, why) for every difference between template.yaml and the deployed copy.
    deviations: list


def client(endpoint, service, credentials=LOCAL_CREDENTIALS):
    """A client of moto at `endpoint`: (key id, secret) or (key id, secret, session token)."""
    key, secret, *token = credentials
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token[0] if token else None)


def load_template(path=TEMPLATE):
    """The SAM template as plain JSON data (cfn-lint's loader reads the short-form tags)."""
    return json.loads(json.dumps(cfn_yaml.load(str(path))))


def translate(sam, parameters, aws):
    """The CloudFormation of a SAM template, by SAM's own translator; every function's code at
    the placeholder zip."""
    # samtranslator needs a region for the pseudo parameters (AWS::Region, AWS::Partition).
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    sam = copy.deepcopy(sam)
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = f"s3://{CODE_BUCKET}/{CODE_KEY}"
    return transform(sam, parameters, ManagedPolicyLoader(aws("iam")))


def check_types(cfn):
    """Fails on a resource type moto's CloudFormation neither creates nor is known to skip."""
    skipped = {type_ for type_, _ in SKIPPED}
    unknown = sorted(f"{logical} ({r['Type']})" for logical, r in cfn["Resources"].items()
                     if r["Type"] not in MOTO_CREATES and r["Type"] not in skipped)
    if unknown:
        raise DeployError(f"template.yaml has resources of types moto's CloudFormation neither creates "
                          f"(MOTO_CREATES) nor is known to skip (SKIPPED): {', '.join(unknown)}; add each type "
                          f"to one of the lists of scripts/local_deploy.py, with what the local stack does about it")


def replace(node, match, by):
    """`node` with every sub-node for which `match` is true replaced by `by(sub-node)`."""
    if match(node):
        return by(node)
    if isinstance(node, dict):
        return {k: replace(v, match, by) for k, v in node.items()}
    if isinstance(node, list):
        return [replace(v, match, by) for v in node]
    return node


def create_secret(aws, stack, logical, resource):
    """A secret moto's CloudFormation skips, created as CloudFormation would: its SecretString,
    or a random one drawn as its GenerateSecretString asks. Returns its ARN."""
    props = resource.get("Properties", {})
    if "Condition" in resource or "SecretStringTemplate" in props.get("GenerateSecretString", {}):
        raise DeployError(f"{logical}: a conditional secret or a SecretStringTemplate is not created locally yet")
    secrets = aws("secretsmanager")
    value = props.get("SecretString")
    if not isinstance(value, str):
        generate = props.get("GenerateSecretString", {})
        value = secrets.get_random_password(**{k: generate[k] for k in RANDOM_PASSWORD_KEYS if k in generate})[
            "RandomPassword"]
    return secrets.create_secret(Name=f"{stack}-{logical}", Description=props.get("Description", ""),
                                 SecretString=value)["ARN"]


# Skipped types the code needs: created by this script, their Refs replaced by the physical id.
CREATORS = {"AWS::SecretsManager::Secret": create_secret}


def local_copy(cfn, aws, stack):
    """The translated template as moto can deploy it (DEVIATIONS), and the resources this
    script created in moto's place: logical id -> (type, physical id)."""
    cfn = copy.deepcopy(cfn)
    created = {}
    for logical, resource in list(cfn["Resources"].items()):
        if resource["Type"] in CREATORS:
            created[logical] = (resource["Type"], CREATORS[resource["Type"]](aws, stack, logical, resource))
            del cfn["Resources"][logical]
        elif resource["Type"] == "AWS::Events::Archive":
            resource["Properties"].pop("EventPattern", None)
            resource["Properties"]["ArchiveName"] = f"{stack}-{logical}"[:48]
    buses = {logical for logical, r in cfn["Resources"].items() if r["Type"] == "AWS::Events::EventBus"}
    cfn = replace(cfn, lambda n: isinstance(n, dict) and n.keys() == {"Ref"} and n["Ref"] in buses,
                  lambda n: {"Fn::GetAtt": [n["Ref"], "Name"]})
    cfn = replace(cfn, lambda n: isinstance(n, dict) and n.keys() == {"Ref"} and n["Ref"] in created,
                  lambda n: created[n["Ref"]][1])
    return cfn, created


def upload_code(aws):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\necho 'runs under cargo lambda watch' >&2\nexit 1\n")
    s3 = aws("s3")
    s3.create_bucket(Bucket=CODE_BUCKET)
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=buffer.getvalue())


def create_stack(aws, stack, cfn, parameters, timeout_s=120):
    """Creates the stack and waits for CREATE_COMPLETE; returns its outputs."""
    cloudformation = aws("cloudformation")
    declared = cfn.get("Parameters", {})
    try:
        cloudformation.create_stack(
            StackName=stack, TemplateBody=json.dumps(cfn),
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items() if k in declared],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
    except cloudformation.exceptions.ClientError as e:
        raise DeployError(f"moto's CloudFormation refused stack {stack}: {e}") from e
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        if found["StackStatus"] == "CREATE_COMPLETE":
            return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
        if not found["StackStatus"].endswith("IN_PROGRESS"):
            raise DeployError(f"stack {stack} is {found['StackStatus']}: {found.get('StackStatusReason')}")
        time.sleep(0.5)
    raise DeployError(f"stack {stack} not CREATE_COMPLETE within {timeout_s} s")


def stack_resources(aws, stack):
    """logical id -> (type, physical id) of what moto's CloudFormation created (it lists the
    resources it skipped without a logical id)."""
    cloudformation = aws("cloudformation")
    summaries = cloudformation.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: (r["ResourceType"], r.get("PhysicalResourceId", ""))
            for r in summaries if r["LogicalResourceId"]}


def read_functions(aws, cfn, resources):
    """Each function as deployed; fails when the deployment left out a variable the template
    sets unconditionally (one that refers to a resource moto skipped)."""
    lambda_ = aws("lambda")
    functions = {}
    for logical, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        config = lambda_.get_function_configuration(FunctionName=resources[logical][1])
        environment = {k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()}
        declared = resource["Properties"].get("Environment", {}).get("Variables", {})
        lost = sorted(k for k, v in declared.items() if k not in environment
                      and not (isinstance(v, dict) and "Fn::If" in v))
        if lost:
            raise DeployError(f"{logical} was deployed without {', '.join(lost)}: each refers to something moto's "
                              f"CloudFormation did not create (see SKIPPED and CREATORS in scripts/local_deploy.py)")
        functions[logical] = {"name": config["FunctionName"], "role": config["Role"], "environment": environment,
                              "metadata": resource.get("Metadata", {})}
    return functions


def read_and_disable_mappings(aws, resources):
    """The settings of every event source mapping, read, then the mapping disabled: moto would
    otherwise run it itself (take the messages, try Docker, let them go)."""
    lambda_ = aws("lambda")
    mappings = {}
    for logical, (type_, uuid) in resources.items():
        if type_ != "AWS::Lambda::EventSourceMapping":
            continue
        found = lambda_.get_event_source_mapping(UUID=uuid)
        mappings[logical] = {
            "uuid": uuid, "event_source_arn": found["EventSourceArn"], "function_arn": found["FunctionArn"],
            "batch_size": found["BatchSize"],
            "maximum_batching_window_s": found.get("MaximumBatchingWindowInSeconds", 0),
            "maximum_concurrency": found.get("ScalingConfig", {}).get("MaximumConcurrency"),
            "function_response_types": list(found.get("FunctionResponseTypes", [])),
        }
        lambda_.update_event_source_mapping(UUID=uuid, Enabled=False)
        if lambda_.get_event_source_mapping(UUID=uuid)["State"] != "Disabled":
            raise DeployError(f"{logical}: moto did not disable the event source mapping {uuid}")
    return mappings


def deploy(endpoint, parameters=None, customize=None, credentials=LOCAL_CREDENTIALS, strict_iam=False,
           template_path=TEMPLATE, stack=STACK):
    """Deploys template.yaml (after `customize(sam_template)`, which returns its own deviations)
    into moto at `endpoint` with `credentials` and returns the Deployment. `strict_iam`: the
    roles' statements as moto can enforce them (local_iam.IAM_DEVIATIONS)."""
    aws = functools.partial(client, endpoint, credentials=credentials)
    sam = load_template(template_path)
    deviations = [*DEVIATIONS, *(customize(sam) if customize else [])]
    parameters = {**LOCAL_PARAMETERS, **(parameters or {})}
    upload_code(aws)
    cfn = translate(sam, parameters, aws)
    check_types(cfn)
    deployed, created = local_copy(cfn, aws, stack)
    deviations += [(logical, f"created by scripts/local_deploy.py as {physical}, Refs to it replaced by that",
                    "moto's CloudFormation skips its type") for logical, (_, physical) in created.items()]
    if strict_iam:
        deployed = local_iam.strict_copy(deployed)
        deviations += local_iam.IAM_DEVIATIONS
    outputs = create_stack(aws, stack, deployed, parameters)
    resources = {**stack_resources(aws, stack), **created}
    if strict_iam:
        local_iam.reput_inline_policies(aws("iam"), [p for t, p in resources.values() if t == "AWS::IAM::Role"])
    return Deployment(stack=stack, resources=resources, outputs=outputs,
                      functions=read_functions(aws, deployed, resources),
                      mappings=read_and_disable_mappings(aws, resources), deviations=deviations)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint-url", default="http://127.0.0.1:4566", help="moto's address")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    deployment = deploy(args.endpoint_url, dict(p.split("=", 1) for p in args.parameter))
    json.dump(dataclasses.asdict(deployment), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
