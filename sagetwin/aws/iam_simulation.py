"""``iam:SimulatePrincipalPolicy`` for the twin's roles and users, which moto does not implement
(SageMaker SDK v3 checks an execution role with it before it trains). The principal's inline and
attached policies are evaluated as IAM evaluates identity policies: an explicit Deny wins, then an
Allow whose action and resource match, else ``implicitDeny``. A statement with a ``Condition``
is not judged without the context the caller gave none of: its keys are reported in
``MissingContextValues``, as the simulator reports them, and it neither allows nor denies."""

from __future__ import annotations

import fnmatch
import json
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from sagetwin.aws.replies import Reply

NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
# What the twin's SageMaker execution role may do: the core of AWS's AmazonSageMakerFullAccess
# managed policy, which the role a SageMaker notebook gets usually carries.
EXECUTION_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Resource": "*", "Action": [
        "sagemaker:*", "application-autoscaling:*", "cloudwatch:PutMetricData", "cloudwatch:GetMetricData",
        "cloudwatch:GetMetricStatistics", "cloudwatch:ListMetrics", "logs:CreateLogGroup", "logs:CreateLogStream",
        "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:GetLogEvents", "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage",
        "ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
        "ec2:DeleteNetworkInterfacePermission", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
        "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
        "s3:CreateBucket", "s3:GetBucketLocation", "s3:ListBucket", "s3:ListAllMyBuckets"]},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
     "Resource": ["arn:aws:s3:::*SageMaker*", "arn:aws:s3:::*Sagemaker*", "arn:aws:s3:::*sagemaker*"]},
    {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::*:role/*",
     "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},
]}


def form_of(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def _members(form: dict[str, list[str]], name: str) -> list[str]:
    found = sorted((int(key.rsplit(".", 1)[1]), values[0]) for key, values in form.items()
                   if key.startswith(f"{name}.member.") and key.rsplit(".", 1)[1].isdigit())
    return [value for _, value in found]


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _matches(patterns: list[str], value: str, *, case: bool) -> bool:
    if case:
        return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)
    return any(fnmatch.fnmatchcase(value.lower(), pattern.lower()) for pattern in patterns)


def _applies(statement: dict[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        action_ok = _matches(_listed(statement["Action"]), action, case=False)
    else:
        action_ok = not _matches(_listed(statement.get("NotAction")), action, case=False)
    if "Resource" in statement:
        resource_ok = _matches(_listed(statement["Resource"]), resource, case=True)
    else:
        resource_ok = "NotResource" in statement and not _matches(_listed(statement["NotResource"]), resource,
                                                                  case=True)
    return action_ok and resource_ok


def decide(documents: list[dict[str, Any]], action: str, resource: str) -> tuple[str, list[str]]:
    """(EvalDecision, condition keys left unjudged) for one action on one resource."""
    missing: list[str] = []
    allowed = False
    for document in documents:
        for statement in _listed_statements(document):
            if not _applies(statement, action, resource):
                continue
            if statement.get("Condition"):
                missing += [key for operator in statement["Condition"].values() for key in operator]
                continue
            if statement.get("Effect") == "Deny":
                return "explicitDeny", []
            allowed = allowed or statement.get("Effect") == "Allow"
    return ("allowed" if allowed else "implicitDeny"), sorted(set(missing))


def _listed_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def principal_policies(iam: Any, arn: str) -> list[dict[str, Any]] | Reply:
    """The policy documents of a role or user (by ARN) in the twin's IAM, or the service's error."""
    kind, _, name = arn.split(":", 5)[-1].partition("/")
    name = name.rsplit("/", 1)[-1]
    if kind not in ("role", "user") or not name or not arn.startswith("arn:aws:iam::"):
        return _error(400, "InvalidInput", f"Invalid Entity Arn: {arn} does not clearly define entity type and name.")
    try:
        if kind == "role":
            inline = [iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
                      for p in iam.list_role_policies(RoleName=name)["PolicyNames"]]
            attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        else:
            inline = [iam.get_user_policy(UserName=name, PolicyName=p)["PolicyDocument"]
                      for p in iam.list_user_policies(UserName=name)["PolicyNames"]]
            attached = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
    except iam.exceptions.NoSuchEntityException:
        return _error(404, "NoSuchEntity", f"The {kind} with name {name} cannot be found.")
    documents = [json.loads(unquote(d)) if isinstance(d, str) else d for d in inline]
    for policy in attached:
        version = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
        documents.append(json.loads(unquote(document)) if isinstance(document, str) else document)
    return documents


def simulate(iam: Any, body: bytes) -> Reply:
    form = form_of(body)
    arn = (form.get("PolicySourceArn") or [""])[0]
    actions, resources = _members(form, "ActionNames"), _members(form, "ResourceArns") or ["*"]
    if not actions:
        return _error(400, "ValidationError", "1 validation error detected: Value null at 'actionNames' failed to "
                                              "satisfy constraint: Member must not be null")
    documents = principal_policies(iam, arn)
    if isinstance(documents, Reply):
        return documents
    members = []
    for action in actions:
        for resource in resources:
            decision, missing = decide(documents, action, resource)
            context = "".join(f"<member>{escape(key)}</member>" for key in missing)
            members.append(f"<member><EvalActionName>{escape(action)}</EvalActionName>"
                           f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
                           f"<EvalDecision>{decision}</EvalDecision><MatchedStatements/>"
                           f"<MissingContextValues>{context}</MissingContextValues></member>")
    xml = (f'<SimulatePrincipalPolicyResponse xmlns="{NAMESPACE}"><SimulatePrincipalPolicyResult>'
           f"<IsTruncated>false</IsTruncated><EvaluationResults>{''.join(members)}</EvaluationResults>"
           f"</SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
           "</ResponseMetadata></SimulatePrincipalPolicyResponse>")
    return Reply(200, xml.encode(), {"Content-Type": "text/xml"})


def _error(status: int, code: str, message: str) -> Reply:
    xml = (f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>Sender</Type><Code>{code}</Code>'
           f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return Reply(status, xml.encode(), {"Content-Type": "text/xml"})
