"""IAM on the local stack: an administrator, each function's own role credentials, and strict
IAM (docs/CONTRACT.md section 7).

The administrator (a user with `*` on `*`) is made first; it deploys the stack, and its
credentials go to one file for the operator's tools and the tests. Each function then runs
with the credentials of its own deployed execution role, from STS AssumeRole, as Lambda gives
them. Under strict IAM moto checks every later call's signature and actions against the
caller's policies (moto's INITIAL_NO_AUTH_ACTION_COUNT, set to 0 once the set-up is done), so
an action missing from a role fails locally as it would in AWS. moto's checks differ from
AWS's in two ways, so the local copy of the template differs too (IAM_DEVIATIONS).
"""

import ast
import json
import urllib.request

ADMIN_USER = "local-admin"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

IAM_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
# SQS's batch actions, which AWS authorizes by the action of one message.
BATCH_ACTIONS = {"sqs:SendMessage": "sqs:SendMessageBatch", "sqs:DeleteMessage": "sqs:DeleteMessageBatch",
                 "sqs:ChangeMessageVisibility": "sqs:ChangeMessageVisibilityBatch"}

IAM_DEVIATIONS = (
    ("IAM statements of other services than SQS", "Resource widened to *",
     "moto matches resource ARNs for SQS only: a DynamoDB, Secrets Manager or EventBridge statement "
     "scoped to an exact ARN would be denied; the actions stay exactly the template's"),
    ("IAM statements granting " + ", ".join(BATCH_ACTIONS), "the batch action added beside each",
     "AWS authorizes SQS's batch calls by the action of one message, moto by the batch action's own name"),
    ("AWS::IAM::Role inline policies", "put again through IAM's API once deployed (reput_inline_policies)",
     "moto 5.2.1's CloudFormation keeps them as Python objects, which its enforcement cannot read"),
)


def create_admin(iam):
    """The local account's administrator: its (access key id, secret access key)."""
    iam.create_user(UserName=ADMIN_USER)
    iam.put_user_policy(UserName=ADMIN_USER, PolicyName="administrator", PolicyDocument=json.dumps(ADMIN_POLICY))
    key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def write_credentials(path, credentials):
    """The administrator's credentials as a shared credentials file (AWS_SHARED_CREDENTIALS_FILE)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[default]\naws_access_key_id = {credentials[0]}\naws_secret_access_key = {credentials[1]}\n")
    path.chmod(0o600)
    return path


def read_credentials(path):
    """(access key id, secret access key) of a file write_credentials wrote."""
    fields = dict(line.split(" = ", 1) for line in path.read_text().splitlines() if " = " in line)
    return fields["aws_access_key_id"], fields["aws_secret_access_key"]


def role_credentials(sts, role_arn, session_name):
    """The environment variables of a session of the role, as Lambda gives a function its
    execution role's credentials."""
    found = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
    return {"AWS_ACCESS_KEY_ID": found["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": found["SecretAccessKey"],
            "AWS_SESSION_TOKEN": found["SessionToken"]}


def enforce(endpoint):
    """From the next call on, moto checks every call's credentials and actions: its
    INITIAL_NO_AUTH_ACTION_COUNT set to 0 (and its count of calls reset) through its
    /moto-api/reset-auth. Done after the set-up because moto cannot assume a role that trusts
    a service under enforcement (its trust check fails with a 500)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        if answer.status != 200:
            raise SystemExit(f"local-iam: moto refused to enforce IAM: {answer.status}")


def reput_inline_policies(iam, roles):
    """moto's CloudFormation keeps a role's inline policies as Python objects (IAM answers their
    repr), which its IAM enforcement cannot read (every call of the role fails with a 500), and
    a statement that is `AWS::NoValue` as a null: each policy is put again as the JSON document
    AWS would hold."""
    for role in roles:
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            stored = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            document = ast.literal_eval(stored) if isinstance(stored, str) else stored
            document["Statement"] = [s for s in as_list(document["Statement"]) if s is not None]
            # SAM writes none; moto's PutRolePolicy refuses the default (2008-10-17), and the
            # documents use no policy variables, the only difference between the two.
            document.setdefault("Version", "2012-10-17")
            iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))


def as_list(value):
    return value if isinstance(value, list) else [value]


def strict_statement(statement):
    """One statement as moto can check it (IAM_DEVIATIONS); an `Fn::If` is followed into both
    branches."""
    if isinstance(statement, dict) and "Fn::If" in statement:
        condition, yes, no = statement["Fn::If"]
        return {"Fn::If": [condition, strict_statement(yes), strict_statement(no)]}
    if not isinstance(statement, dict) or "Action" not in statement:
        return statement
    actions = as_list(statement["Action"])
    if not all(isinstance(a, str) and a.startswith("sqs:") for a in actions):
        statement = {**statement, "Resource": "*"}
    added = [BATCH_ACTIONS[a] for a in actions if a in BATCH_ACTIONS and BATCH_ACTIONS[a] not in actions]
    if added:
        statement = {**statement, "Action": [*actions, *added]}
    return statement


def strict_copy(cfn):
    """The translated template with every role's and policy's statements as strict_statement
    makes them."""
    for resource in cfn["Resources"].values():
        if resource["Type"] not in IAM_TYPES:
            continue
        props = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for document in documents:
            document["Statement"] = [strict_statement(s) for s in as_list(document["Statement"])]
    return cfn
