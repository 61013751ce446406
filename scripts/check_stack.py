"""Stack check: template.yaml, translated by the SAM translator, is created as a stack in
moto's CloudFormation on loopback with two sets of parameters, and the resources it
resolves to are read back and checked: the role's policy (least privilege, no `*`
action, the guardrail Denies, only GetItem and UpdateItem on the ledger table, the X-Ray
statement only with Tracing=Active), the queues (encryption, visibility timeout, redrive),
the ledger table (key schema, billing mode), the event source mapping, the function's
environment, and the dashboard (its body, after !Sub, must be JSON with the panels README
"Metrics and dashboard" lists, on the stack's namespace and queues).

moto resolves the intrinsic functions independently of AWS; it does not model everything
(it keeps AWS::NoValue in lists as null, ignores Architectures, LoggingConfig and
TracingConfig, does not apply queue policies, ignores a table's point-in-time recovery and
reads its SSESpecification under the API's name, not CloudFormation's, and skips
AWS::CloudWatch::Alarm resources altogether), so those are read from the template instead.
Run by scripts/check-deploy with .venv-deploy's python; moto's server comes from .venv.
"""

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# Loopback only: the SAM translator and boto3 read the region from here; no profile.
os.environ.update({
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true",
})
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)

ROOT = Path(__file__).resolve().parent.parent
MOTO = ROOT / ".venv" / "bin" / "moto_server"
REGION = "us-east-1"
INSTANCE = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40"
PS = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-"

CASES = {
    "defaults-with-guardrails": {
        "IdentityCenterInstanceArn": INSTANCE,
        "SenderPrincipalArns": "arn:aws:iam::123456789012:role/approvals,arn:aws:iam::123456789012:role/ops",
        "ProtectedAccountIds": "111111111111,222222222222",
        "ProtectedPermissionSetArns": PS + "aaaaaaaaaaaaaaaa",
        "MaxConcurrency": "2",
        "IdentityCenterRatePerSecond": "10",
    },
    "listed-permission-sets-management-kms-no-outcomes-tracing-namespace": {
        "IdentityCenterInstanceArn": INSTANCE,
        "SenderPrincipalArns": "arn:aws:iam::123456789012:role/approvals",
        "SenderSourceArns": "arn:aws:sns:us-east-1:123456789012:access-requests",
        "PermissionSetArns": f"{PS}1a2b3c4d5e6f7a8b,{PS}9f8e7d6c5b4a3f2e",
        "AllowManagementAccountAssignments": "true",
        "IdentityCenterKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "CreateOutcomeQueue": "false",
        "Tracing": "Active",
        "MetricsNamespace": "Platform/Access Worker",
        "PortfolioIds": "port-abcdefghijklm,port-0123456789abc",
        "AllowIamPatternPrincipals": "true",
        "TimeToOutcomeAlarmMilliseconds": "600000",
        "OldestMessageAgeAlarmSeconds": "900",
    },
}

# The worker's metrics (README "Metrics and dashboard").
DEFAULT_NAMESPACE = "AssignmentWorker"
ERROR_CLASSES = ["invalid-request", "forbidden", "expired", "permanent", "failed", "exhausted", "timed-out"]
OUTCOMES = ["succeeded", "already-satisfied", "superseded", "dead-lettered"]
CALL_ANSWERS = ["Succeeded", "ThrottledRate", "ThrottledBusy", "Conflicts", "ServerErrors", "Timeouts",
                "ConnectionErrors", "OtherErrors"]
WORKER_COUNTERS = ["Retries", "Superseded", "ExpiryRevokes", "Undos", "ResidualAccessReports"]
XRAY_ACTIONS = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def statements(document):
    if isinstance(document, str):
        # moto returns the document as JSON or as a Python literal.
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            document = ast.literal_eval(document)
    return [s for s in document["Statement"] if s]


def as_list(value):
    return value if isinstance(value, list) else [value]


def template_checks(template):
    """What moto does not model, read from the template itself."""
    function = template["Resources"]["AssignmentWorkerFunction"]["Properties"]
    check(function["Architectures"] == ["arm64"], "function is not arm64")
    check(function["Runtime"] == "provided.al2023", "runtime is not provided.al2023")
    check(function["LoggingConfig"]["LogFormat"] == "JSON", "logs are not JSON")
    # Lambda's log filter reads a line without "level" as INFO. The metric documents and
    # the start-up error have none, so a filter above INFO would drop them, and every
    # alarm with them: the operator's level goes to the worker's own filter instead.
    lambda_level = function["LoggingConfig"].get("ApplicationLogLevel")
    check(lambda_level in ("TRACE", "DEBUG", "INFO"), f"Lambda's log filter at {lambda_level} drops the metrics")
    variables = function["Environment"]["Variables"]
    check(variables.get("RUST_LOG") == {"Ref": "LogLevel"}, "LogLevel does not reach the worker's filter (RUST_LOG)")
    # The handler is sized for 10 records (BATCH_CALLS, the 60 s timeout); a larger batch
    # leaves records for redelivery until SQS dead-letters them with no reason.
    parameters = template["Parameters"]
    check(int(parameters["BatchSize"]["MaxValue"]) <= 10, "BatchSize may pass the 10 records the handler is sized for")
    window = int(parameters["MaximumBatchingWindowInSeconds"]["MaxValue"])
    visibility = template["Resources"]["WorkQueue"]["Properties"]["VisibilityTimeout"]
    check(visibility >= 6 * function["Timeout"] + window,
          f"visibility timeout {visibility} is under 6 x the function's timeout plus a {window} s batching window")
    # A waiting expiry is a message on the work queue, and a dead letter an access change
    # still owed: both are kept for days, should the function stop consuming. SQS keeps a
    # message it moves to the dead-letter queue under its first enqueue time, so the
    # dead-letter queue must keep messages well beyond the work queue.
    work_retention = template["Resources"]["WorkQueue"]["Properties"].get("MessageRetentionPeriod", 345600)
    dead_retention = template["Resources"]["DeadLetterQueue"]["Properties"].get("MessageRetentionPeriod", 345600)
    check(work_retention >= 7 * 86400, f"WorkQueue keeps messages {work_retention} s, under 7 days")
    check(dead_retention == 14 * 86400, f"DeadLetterQueue keeps messages {dead_retention} s, not the 14 days SQS allows")
    # Parameters whose low end stops the worker from working: one receive before SQS
    # dead-letters without a reason, retries at once that spend their budget in a burst,
    # a poll deadline before the first poll.
    for name, least in (("MaxReceiveCount", 3), ("BackoffBaseSeconds", 1), ("BusyBackoffMinSeconds", 1),
                        ("PollDeadlineSeconds", 60)):
        check(int(parameters[name]["MinValue"]) >= least, f"{name} may be set below {least}")
    mapping = template["Mappings"]["EventSourceConcurrency"]
    allowed = template["Parameters"]["MaxConcurrency"]["AllowedValues"]
    for value in allowed:
        functions = mapping[value]["Functions"]
        check(2 <= functions and functions * int(value) < 15,
              f"MAX_CONCURRENCY {value} x event-source concurrency {functions} is not under 15")
    role = template["Resources"]["WorkerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    consume = [s for s in role if s.get("Sid") == "ConsumeWorkQueue"]
    check(len(consume) == 1 and sorted(consume[0]["Action"]) == ["sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                                                  "sqs:ReceiveMessage"],
          "the role consumes the work queue with more than the event source needs")
    policy = template["Resources"]["WorkQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in policy if isinstance(s, dict) and s.get("Effect") == "Deny"]
    check(len(deny) == 1 and deny[0]["Action"] == "sqs:SendMessage", "work queue has no sender Deny")
    # Dead letters and outcome events are the worker's word: nobody else may send them
    # (the redrive principals, SenderPrincipalArns, may put dead letters back).
    for queue, exempt in (("DeadLetterQueue", {"WorkerRole", "SenderPrincipalArns"}), ("OutcomeQueue", {"WorkerRole"})):
        policies = [r for r in template["Resources"].values()
                    if r.get("Type") == "AWS::SQS::QueuePolicy" and r["Properties"]["Queues"] == [{"Ref": queue}]]
        check(len(policies) == 1, f"{queue} has {len(policies)} queue policies")
        if len(policies) != 1:
            continue
        check(policies[0].get("Condition") == template["Resources"][queue].get("Condition"),
              f"{queue} policy's condition differs from the queue's")
        document = policies[0]["Properties"]["PolicyDocument"]["Statement"]
        check(all(s.get("Effect") == "Deny" for s in document), f"{queue} policy allows something")
        deny = [s for s in document if s.get("Effect") == "Deny" and s.get("Action") == "sqs:SendMessage"
                and s.get("Principal") == "*" and s.get("Resource") == {"Fn::GetAtt": [queue, "Arn"]}]
        check(len(deny) == 1 and list(deny[0].get("Condition", {})) == ["ArnNotLike"],
              f"{queue} has no Deny of sqs:SendMessage to every other principal")
        if len(deny) == 1:
            principals = json.dumps(deny[0]["Condition"].get("ArnNotLike", {}).get("aws:PrincipalArn"))
            named = {name for name in ("WorkerRole", "SenderPrincipalArns") if name in principals}
            check(named == exempt, f"{queue} Deny exempts {sorted(named)}, not {sorted(exempt)}")
    ledger = template["Resources"]["LedgerTable"]
    check(ledger.get("DeletionPolicy") == "Retain" and ledger.get("UpdateReplacePolicy") == "Retain",
          "ledger table is not retained on stack deletion and replacement")
    table = ledger["Properties"]
    check(table.get("PointInTimeRecoverySpecification") == {"PointInTimeRecoveryEnabled": True},
          "ledger table without point-in-time recovery")
    check(table.get("DeletionProtectionEnabled") is True, "ledger table without deletion protection")
    check(table.get("SSESpecification") == {"SSEEnabled": True}, "ledger table without SSESpecification SSEEnabled")

    parameters = template["Parameters"]
    namespace = parameters["MetricsNamespace"]
    check(namespace.get("Default") == DEFAULT_NAMESPACE, f"MetricsNamespace default {namespace.get('Default')}")
    pattern = re.compile(namespace["AllowedPattern"])
    for value, allowed in [(DEFAULT_NAMESPACE, True), ("Platform/Access Worker", True), ("AWS", True),
                           ("AWSWorker", True), ("aws/worker", True), ("AWS/Worker", False), ("AWS/", False),
                           ("", False), ("x" * 255, True), ("x" * 256, False), ('a"b', False), ("a\\b", False),
                           ("tab\tname", False), ("a", True), (" Worker", False), ("Worker ", False),
                           # The alarms and the dashboard take the parameter as it is; the
                           # worker trims its variables: a blank at either end parts them.
                           (" ", False), ("x" * 254 + " ", False)]:
        check(bool(pattern.fullmatch(value)) == allowed,
              f"MetricsNamespace pattern {'refuses' if allowed else 'allows'} {value[:20]!r}")
    # The worker refuses a longest poll delay under the first one at cold start: no pair
    # the template allows may be one the worker refuses.
    check(int(parameters["PollInitialDelaySeconds"]["MaxValue"]) <= int(parameters["PollMaxDelaySeconds"]["MinValue"]),
          "PollInitialDelaySeconds and PollMaxDelaySeconds allow a pair the worker refuses (longest under first)")
    tracing = parameters["Tracing"]
    check(tracing.get("Default") == "PassThrough" and sorted(tracing.get("AllowedValues", [])) == ["Active", "PassThrough"],
          f"Tracing parameter {tracing}")
    check(function.get("Tracing") == {"Ref": "Tracing"}, f"function Tracing {function.get('Tracing')}")
    check(parameters["TimeToOutcomeAlarmMilliseconds"].get("Default") == 900000,
          "TimeToOutcomeAlarmMilliseconds default is not 900000")

    # Alarms: moto's CloudFormation skips them, so their properties are read here.
    resources = template["Resources"]
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    actions = alarms["DeadLetterQueueAlarm"]["AlarmActions"], alarms["DeadLetterQueueAlarm"]["OKActions"]
    check(actions[0] == actions[1] and actions[0]["Fn::If"][0] == "HasAlarmTopic", f"DeadLetterQueueAlarm actions {actions}")
    by_class = {}
    for name, alarm in alarms.items():
        check((alarm.get("AlarmActions"), alarm.get("OKActions")) == actions, f"alarm {name}: actions differ")
        if alarm.get("MetricName") == "Requests":
            dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            by_class.setdefault(dimensions.get("ErrorClass"), []).append(name)
            check(alarm.get("Namespace") == {"Ref": "MetricsNamespace"}, f"alarm {name}: namespace {alarm.get('Namespace')}")
            check(len(alarm["Dimensions"]) == 2 and dimensions.get("Outcome") == "dead-lettered",
                  f"alarm {name}: dimensions {alarm['Dimensions']}")
            check((alarm.get("Statistic"), alarm.get("Period"), alarm.get("EvaluationPeriods"), alarm.get("Threshold"),
                   alarm.get("ComparisonOperator"), alarm.get("TreatMissingData"))
                  == ("Sum", 300, 1, 1, "GreaterThanOrEqualToThreshold", "notBreaching"),
                  f"alarm {name}: not Sum over 5 minutes >= 1, missing data not breaching")
    check(sorted(by_class) == sorted(ERROR_CLASSES) and all(len(v) == 1 for v in by_class.values()),
          f"dead-letter alarms by class {by_class}")
    # SQS drops a dead letter after 14 days: an alarm well before that, since the one on
    # the count fires once, when the first arrives.
    # A message SQS moved there counts its age from the move, but is dropped by its first
    # enqueue time: the alarm must come before the dead-letter queue's retention less the
    # work queue's, with a day to act.
    aged = [alarm for alarm in alarms.values() if alarm.get("MetricName") == "ApproximateAgeOfOldestMessage"
            and alarm.get("Dimensions") == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]]
    check(len(aged) == 1, f"{len(aged)} alarms on the age of the oldest dead letter")
    if len(aged) == 1:
        alarm = aged[0]
        threshold = alarm.get("Threshold")
        check(isinstance(threshold, int) and 0 < threshold <= dead_retention - work_retention - 86400,
              f"dead-letter age alarm at {threshold} s: not a day before a moved message is dropped")
        check((alarm.get("Namespace"), alarm.get("Statistic"), alarm.get("ComparisonOperator"),
               alarm.get("TreatMissingData"), alarm.get("EvaluationPeriods"))
              == ("AWS/SQS", "Maximum", "GreaterThanThreshold", "notBreaching", 1),
              f"dead-letter age alarm: not the Maximum over one period above its threshold: {alarm}")
    time_alarms = [name for name, alarm in alarms.items() if alarm.get("MetricName") == "TimeToOutcome"]
    check(len(time_alarms) == 1, f"TimeToOutcome alarms {time_alarms}")
    for name in time_alarms:
        alarm = alarms[name]
        check(alarm.get("Namespace") == {"Ref": "MetricsNamespace"} and "Dimensions" not in alarm
              and alarm.get("ExtendedStatistic") == "p99" and "Statistic" not in alarm
              and alarm.get("Threshold") == {"Ref": "TimeToOutcomeAlarmMilliseconds"}
              and alarm.get("ComparisonOperator") == "GreaterThanThreshold"
              and alarm.get("TreatMissingData") == "notBreaching",
              f"alarm {name}: not p99 of TimeToOutcome without dimensions above TimeToOutcomeAlarmMilliseconds")


def translated_checks(translated):
    """What the SAM translator made of the function: the tracing mode follows the parameter."""
    function = translated["Resources"]["AssignmentWorkerFunction"]["Properties"]
    check(function.get("TracingConfig") == {"Mode": {"Ref": "Tracing"}},
          f"translated TracingConfig {function.get('TracingConfig')}")


def dashboard_checks(name, params, outputs, cfn, cloudwatch, stack):
    """The dashboard as moto's CloudFormation resolved it: JSON, with the panels."""
    resources = cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    dashboards = [r for r in resources if r["ResourceType"] == "AWS::CloudWatch::Dashboard"]
    check(len(dashboards) == 1, f"{name}: {len(dashboards)} dashboards")
    if len(dashboards) != 1:
        return
    body = cloudwatch.get_dashboard(DashboardName=dashboards[0]["PhysicalResourceId"])["DashboardBody"]
    check("${" not in body, f"{name}: dashboard body has an unresolved ${{...}}")
    try:
        widgets = json.loads(body)["widgets"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        failures.append(f"{name}: dashboard body is not JSON with widgets: {error}")
        return
    namespace = params.get("MetricsNamespace", DEFAULT_NAMESPACE)
    work = outputs["WorkQueueUrl"].rsplit("/", 1)[-1]
    dead = outputs["DeadLetterQueueUrl"].rsplit("/", 1)[-1]

    def panel(title_start):
        found = [w["properties"] for w in widgets if w["properties"]["title"].startswith(title_start)]
        check(len(found) == 1, f"{name}: {len(found)} dashboard panels titled {title_start!r}")
        return found[0] if found else {"metrics": []}

    def series(properties):
        """(metric row without its options, options) of each plain metric, and the expressions."""
        rows = [(tuple(m[:-1]) if isinstance(m[-1], dict) else tuple(m), m[-1] if isinstance(m[-1], dict) else {})
                for m in properties["metrics"] if isinstance(m[0], str)]
        expressions = [m[0]["expression"] for m in properties["metrics"] if isinstance(m[0], dict)]
        return rows, expressions

    def search(schema, metric):
        return f"SEARCH('{{\"{namespace}\",{schema}}} MetricName=\"{metric}\""

    for w in widgets:
        check(w["properties"].get("region") == REGION, f"{name}: panel {w['properties'].get('title')} region")
    check(len({(w["x"], w["y"]) for w in widgets}) == len(widgets), f"{name}: dashboard panels overlap")

    rows, expressions = series(panel("Outcomes by kind"))
    check({r for r, _ in rows} == {(namespace, "Requests", "Outcome", o) for o in OUTCOMES if o != "dead-lettered"},
          f"{name}: outcomes panel {rows}")
    check(any(e.startswith(f"SUM({search('Outcome,ErrorClass', 'Requests')} Outcome=\"dead-lettered\"")
              for e in expressions), f"{name}: outcomes panel has no dead-lettered total {expressions}")
    rows, _ = series(panel("Dead letters by ErrorClass"))
    check(sorted(r for r, _ in rows)
          == sorted((namespace, "Requests", "Outcome", "dead-lettered", "ErrorClass", c) for c in ERROR_CLASSES),
          f"{name}: dead letters panel {rows}")
    time_panel = panel("Time to outcome")
    rows, _ = series(time_panel)
    check(sorted((r, o.get("stat")) for r, o in rows)
          == [((namespace, "TimeToOutcome"), "p50"), ((namespace, "TimeToOutcome"), "p99")],
          f"{name}: time to outcome panel {rows}")
    threshold = int(params.get("TimeToOutcomeAlarmMilliseconds", "900000"))
    check(time_panel.get("annotations", {}).get("horizontal", [{}])[0].get("value") == threshold,
          f"{name}: time to outcome panel threshold {time_panel.get('annotations')}")
    rows, _ = series(panel("Retries, superseded"))
    check(sorted(r for r, _ in rows) == sorted((namespace, m) for m in WORKER_COUNTERS), f"{name}: worker panel {rows}")
    _, expressions = series(panel("AWS calls by answer"))
    for answer in CALL_ANSWERS:
        check(any(e.startswith(f"SUM({search('Api', answer)}'") for e in expressions),
              f"{name}: calls panel without {answer}")
    for title, metrics in (("AWS calls by API", ["Calls"]), ("Throttled AWS calls by API", ["Throttled", "Deferred"])):
        _, expressions = series(panel(title))
        check(len(expressions) == len(metrics)
              and all(e.startswith(search("Api", m) + "'") for e, m in zip(expressions, metrics)),
              f"{name}: {title} panel {expressions}")
    # Each SEARCH there returns a line per API; without its own label, a Throttled line
    # and a Deferred line of the same API would both be called by the API's name alone.
    labels = [m[0].get("label") for m in panel("Throttled AWS calls by API")["metrics"] if isinstance(m[0], dict)]
    check(labels == ["Throttled", "Deferred"], f"{name}: throttled panel labels {labels}")
    rows, _ = series(panel("Work queue depth"))
    check(sorted(r for r, _ in rows) == sorted(("AWS/SQS", m, "QueueName", work) for m in (
        "ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesDelayed")), f"{name}: work queue panel {rows}")
    age = panel("Work queue: age of oldest message")
    rows, _ = series(age)
    check([r for r, _ in rows] == [("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", work)],
          f"{name}: oldest message panel {rows}")
    check(age.get("annotations", {}).get("horizontal", [{}])[0].get("value")
          == int(params.get("OldestMessageAgeAlarmSeconds", "1800")), f"{name}: oldest message panel threshold")
    rows, _ = series(panel("Dead-letter queue depth"))
    check([r for r, _ in rows] == [("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dead)],
          f"{name}: dead-letter queue panel {rows}")


def stack_checks(name, params, outputs, clients):
    iam, sqs, lam, dynamodb = clients
    timeout = 60
    role = outputs["WorkerRoleArn"].split("/")[-1]
    policy = []
    for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        policy += statements(iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"])
    by_sid = {s["Sid"]: s for s in policy}
    for s in policy:
        for action in as_list(s["Action"]):
            check("*" not in action, f"{name}: wildcard action {action} in {s['Sid']}")
        # X-Ray's two write actions have no resource type: "*" is the only resource they take.
        if s["Effect"] == "Allow" and s["Sid"] != "WriteXRayTraces":
            check(s["Resource"] != "*" and "*" not in as_list(s["Resource"]), f"{name}: {s['Sid']} on every resource")

    tracing = params.get("Tracing", "PassThrough") == "Active"
    xray = [s for s in policy if any(a.startswith("xray:") for a in as_list(s["Action"]))]
    if tracing:
        check(len(xray) == 1 and xray[0]["Sid"] == "WriteXRayTraces" and xray[0]["Effect"] == "Allow"
              and sorted(as_list(xray[0]["Action"])) == XRAY_ACTIONS and as_list(xray[0]["Resource"]) == ["*"],
              f"{name}: X-Ray statements {xray}")
    else:
        check(not xray and "WriteXRayTraces" not in by_sid, f"{name}: X-Ray statement without Tracing=Active")

    submit = by_sid["SubmitAssignmentChanges"]
    if params.get("PermissionSetArns"):
        expected_ps = params["PermissionSetArns"].split(",")
    else:
        expected_ps = ["arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/*"]
    check(sorted(submit["Resource"]) == sorted([INSTANCE, "arn:aws:sso:::account/*", *expected_ps]),
          f"{name}: submit resources {submit['Resource']}")
    check(as_list(by_sid["PollAssignmentStatus"]["Resource"]) == [INSTANCE], f"{name}: poll resources")

    protected = [a for a in params.get("ProtectedAccountIds", "").split(",") if a]
    if protected:
        deny = by_sid.get("NeverChangeProtectedAccounts", {})
        check(deny.get("Effect") == "Deny"
              and sorted(as_list(deny.get("Resource"))) == sorted(f"arn:*:sso:::account/{a}" for a in protected),
              f"{name}: protected-account Deny {deny}")
    else:
        check("NeverChangeProtectedAccounts" not in by_sid, f"{name}: Deny without protected accounts")
    if params.get("ProtectedPermissionSetArns"):
        deny = by_sid.get("NeverGrantProtectedPermissionSets", {})
        check(deny.get("Effect") == "Deny" and as_list(deny.get("Action")) == ["sso:CreateAccountAssignment"]
              and as_list(deny.get("Resource")) == params["ProtectedPermissionSetArns"].split(","),
              f"{name}: protected-permission-set Deny {deny}")
    management = params.get("AllowManagementAccountAssignments") == "true"
    check(("ManagementAccountPermissionSetRoles" in by_sid) == management
          and ("ManagementAccountSamlProvider" in by_sid) == management,
          f"{name}: management-account statements present={not management}")
    if management:
        check(by_sid["ManagementAccountPermissionSetRoles"]["Resource"]
              == "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/*",
              f"{name}: management role resource")
    check(("DecryptIdentityCenterData" in by_sid) == bool(params.get("IdentityCenterKmsKeyArn")),
          f"{name}: kms statement")

    # Service Catalog: the three portfolio-principal actions on the listed portfolios only.
    portfolios = [p for p in params.get("PortfolioIds", "").split(",") if p]
    catalog = [s for s in policy if any(a.startswith("servicecatalog:") for a in as_list(s["Action"]))]
    if portfolios:
        check(len(catalog) == 1 and catalog[0]["Effect"] == "Allow"
              and sorted(as_list(catalog[0]["Action"])) == [
                  "servicecatalog:AssociatePrincipalWithPortfolio",
                  "servicecatalog:DisassociatePrincipalFromPortfolio",
                  "servicecatalog:ListPrincipalsForPortfolio"]
              and sorted(as_list(catalog[0]["Resource"])) == sorted(
                  f"arn:*:catalog:*:*:portfolio/{p}" for p in portfolios),
              f"{name}: Service Catalog statements {catalog}")
    else:
        check(not catalog, f"{name}: Service Catalog statements without PortfolioIds: {catalog}")
    # Portfolio principals need no IAM reads (only the management-account statements,
    # for Identity Center's own roles, read IAM).
    iam_reads = [a for s in policy if not s["Sid"].startswith("ManagementAccount")
                 for a in as_list(s["Action"]) if a.startswith("iam:")]
    check(not iam_reads, f"{name}: IAM reads {iam_reads}")

    # The ledger: one table keyed by the string pk, on demand; the role may read and
    # conditionally write its items and nothing else of DynamoDB.
    table = dynamodb.describe_table(TableName=outputs["LedgerTableName"])["Table"]
    check(table["TableArn"] == outputs["LedgerTableArn"], f"{name}: ledger table ARN {table['TableArn']}")
    check(table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}],
          f"{name}: ledger key schema {table['KeySchema']}")
    check(table["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}],
          f"{name}: ledger attribute definitions {table['AttributeDefinitions']}")
    check(table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST",
          f"{name}: ledger billing mode {table.get('BillingModeSummary')}")
    check(table.get("DeletionProtectionEnabled") is True, f"{name}: ledger deletion protection")
    dynamodb_statements = [s for s in policy if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    check([s["Sid"] for s in dynamodb_statements] == ["KeepLedger"],
          f"{name}: DynamoDB statements {[s['Sid'] for s in dynamodb_statements]}")
    ledger = by_sid.get("KeepLedger", {})
    check(ledger.get("Effect") == "Allow"
          and sorted(as_list(ledger.get("Action"))) == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
          and as_list(ledger.get("Resource")) == [outputs["LedgerTableArn"]],
          f"{name}: ledger statement {ledger}")

    queues = {
        "work": outputs["WorkQueueUrl"],
        "dead-letter": outputs["DeadLetterQueueUrl"],
    }
    outcome = params.get("CreateOutcomeQueue", "true") == "true"
    check(("OutcomeQueueUrl" in outputs) == outcome, f"{name}: outcome queue output")
    if outcome:
        queues["outcome"] = outputs["OutcomeQueueUrl"]
    attributes = {
        q: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for q, url in queues.items()
    }
    for q, attrs in attributes.items():
        check(attrs.get("SqsManagedSseEnabled") == "true", f"{name}: {q} queue not encrypted")
    work = attributes["work"]
    check(int(work["VisibilityTimeout"]) >= 6 * timeout, f"{name}: visibility timeout {work['VisibilityTimeout']}")
    redrive = json.loads(work["RedrivePolicy"])
    check(redrive["deadLetterTargetArn"] == outputs["DeadLetterQueueArn"] and int(redrive["maxReceiveCount"]) >= 1,
          f"{name}: redrive policy {redrive}")
    check(attributes["dead-letter"]["MessageRetentionPeriod"] == "1209600", f"{name}: DLQ retention")
    send = by_sid["SendToOwnQueues"]
    expected_send = [outputs["WorkQueueArn"], outputs["DeadLetterQueueArn"]] + ([outputs["OutcomeQueueArn"]] if outcome else [])
    check(sorted(r for r in as_list(send["Resource"]) if r) == sorted(expected_send), f"{name}: send resources")
    check(as_list(by_sid["ConsumeWorkQueue"]["Resource"]) == [outputs["WorkQueueArn"]], f"{name}: consume resources")

    function = lam.get_function_configuration(FunctionName=outputs["FunctionArn"])
    check(function["Timeout"] == timeout and function["MemorySize"] == 128, f"{name}: timeout/memory")
    env = {k: str(v) for k, v in function["Environment"]["Variables"].items()}
    check(env["WORK_QUEUE_URL"] == outputs["WorkQueueUrl"], f"{name}: WORK_QUEUE_URL")
    check(env["DEAD_LETTER_QUEUE_URL"] == outputs["DeadLetterQueueUrl"], f"{name}: DEAD_LETTER_QUEUE_URL")
    check(env["OUTCOME_QUEUE_URL"] == (outputs.get("OutcomeQueueUrl") or ""), f"{name}: OUTCOME_QUEUE_URL")
    check(env["ALLOWED_INSTANCE_ARNS"] == INSTANCE, f"{name}: ALLOWED_INSTANCE_ARNS")
    check(env["PROTECTED_ACCOUNT_IDS"] == params.get("ProtectedAccountIds", ""), f"{name}: PROTECTED_ACCOUNT_IDS")
    check(env.get("ALLOWED_PORTFOLIO_IDS") == params.get("PortfolioIds", ""), f"{name}: ALLOWED_PORTFOLIO_IDS")
    check(env.get("ALLOW_IAM_PATTERN_PRINCIPALS") == params.get("AllowIamPatternPrincipals", "false"),
          f"{name}: ALLOW_IAM_PATTERN_PRINCIPALS")
    check(env["MAX_CONCURRENCY"] == params.get("MaxConcurrency", "4"), f"{name}: MAX_CONCURRENCY")
    check(env.get("IDENTITY_CENTER_RATE_PER_SECOND") == params.get("IdentityCenterRatePerSecond", "20"),
          f"{name}: IDENTITY_CENTER_RATE_PER_SECOND {env.get('IDENTITY_CENTER_RATE_PER_SECOND')}")
    check(env.get("LEDGER_TABLE") == outputs["LedgerTableName"], f"{name}: LEDGER_TABLE {env.get('LEDGER_TABLE')}")
    check(env.get("METRICS_NAMESPACE") == params.get("MetricsNamespace", DEFAULT_NAMESPACE),
          f"{name}: METRICS_NAMESPACE {env.get('METRICS_NAMESPACE')}")
    for variable in ("MAX_ATTEMPTS", "POLL_DEADLINE_SECONDS", "POLL_INITIAL_DELAY_SECONDS",
                     "POLL_MAX_DELAY_SECONDS", "BACKOFF_BASE_SECONDS", "BUSY_BACKOFF_MIN_SECONDS",
                     "PROTECTED_PERMISSION_SET_ARNS"):
        check(variable in env, f"{name}: {variable} missing")

    mappings = [m for m in lam.list_event_source_mappings()["EventSourceMappings"]
                if m["FunctionArn"] == outputs["FunctionArn"]]
    check(len(mappings) == 1, f"{name}: {len(mappings)} event source mappings")
    if mappings:
        m = mappings[0]
        check(m["EventSourceArn"] == outputs["WorkQueueArn"], f"{name}: mapping source")
        check(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"], f"{name}: ReportBatchItemFailures")
        check(m["ScalingConfig"]["MaximumConcurrency"] * int(env["MAX_CONCURRENCY"]) < 15,
              f"{name}: {m['ScalingConfig']} x MAX_CONCURRENCY {env['MAX_CONCURRENCY']}")
        # The pacer's share is only right when it divides by the processes that really run.
        check(env.get("FUNCTION_CONCURRENCY") == str(m["ScalingConfig"]["MaximumConcurrency"]),
              f"{name}: FUNCTION_CONCURRENCY {env.get('FUNCTION_CONCURRENCY')} is not the event source's "
              f"{m['ScalingConfig']}")


def main():
    workdir = Path(tempfile.mkdtemp(prefix="check-stack."))
    log_path = workdir / "moto.log"
    moto = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", "0"], stdout=subprocess.DEVNULL,
                            stderr=open(log_path, "w"), start_new_session=True)
    try:
        port = None
        for _ in range(600):
            found = re.search(r"Running on http://127\.0\.0\.1:(\d+)", log_path.read_text())
            if found:
                port = found.group(1)
                break
            time.sleep(0.1)
        if not port:
            raise SystemExit("moto_server did not start:\n" + log_path.read_text())
        kw = dict(endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
                  aws_access_key_id="local", aws_secret_access_key="local")
        s3 = boto3.client("s3", **kw)
        s3.create_bucket(Bucket="code")
        s3.put_object(Bucket="code", Key="bootstrap.zip", Body=b"PK\x05\x06" + b"\0" * 18)

        source = yaml_parse((ROOT / "template.yaml").read_text())
        template_checks(source)
        source["Resources"]["AssignmentWorkerFunction"]["Properties"]["CodeUri"] = "s3://code/bootstrap.zip"

        class NoManagedPolicies:
            def load(self):
                return {}

        translated = transform(source, {}, NoManagedPolicies())
        translated_checks(translated)
        print(f"template: {'ok' if not failures else 'FAILED'}")
        cfn = boto3.client("cloudformation", **kw)
        cloudwatch = boto3.client("cloudwatch", **kw)
        clients = (boto3.client("iam", **kw), boto3.client("sqs", **kw), boto3.client("lambda", **kw),
                   boto3.client("dynamodb", **kw))
        for index, (name, params) in enumerate(CASES.items()):
            stack = f"worker{index}"
            cfn.create_stack(
                StackName=stack, TemplateBody=json.dumps(translated), Capabilities=["CAPABILITY_IAM"],
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            )
            for _ in range(240):
                status = cfn.describe_stacks(StackName=stack)["Stacks"][0]
                if not status["StackStatus"].endswith("IN_PROGRESS"):
                    break
                time.sleep(0.25)
            before = len(failures)
            if status["StackStatus"] != "CREATE_COMPLETE":
                failures.append(f"{name}: {status['StackStatus']} {status.get('StackStatusReason')}")
            else:
                outputs = {o["OutputKey"]: o["OutputValue"] for o in status["Outputs"]}
                stack_checks(name, params, outputs, clients)
                dashboard_checks(name, params, outputs, cfn, cloudwatch, stack)
            print(f"stack {name}: {'ok' if len(failures) == before else 'FAILED'}")
    finally:
        moto.send_signal(signal.SIGTERM)
        moto.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)
    passed = sum(1 for case in CASES if not any(f.startswith(f"{case}: ") for f in failures))
    print(f"{passed} passed, {len(CASES) - passed} failed")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
