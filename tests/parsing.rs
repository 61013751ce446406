//! SPEC §2 parsing, table-driven: every bad body must be refused with its own code and a
//! message naming the field or rule, and every envelope's valid form must parse with
//! `request.raw` holding the inner request exactly as written.

use std::collections::BTreeMap;

use assignment_worker::progress::Progress;
use assignment_worker::request::{
    AcceptLanguage, AssignmentAction, MAX_BODY_BYTES, Message, Operation, PortfolioAction,
    PortfolioPrincipal, PrincipalType, parse_body,
};
use serde_json::{Value, json};

const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40";
const PERMISSION_SET: &str =
    "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
const ACCOUNT: &str = "111122223333";
const PRINCIPAL_ID: &str = "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10";
const PORTFOLIO: &str = "port-abcdefghijklm";
const IAM_ARN: &str = "arn:aws:iam::111122223333:role/Auditor";
const IAM_PATTERN: &str = "arn:aws:iam:::role/Team*";
const OPERATION_REQUEST_ID: &str = "b5f9c1d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d";

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// A valid `create` request, camelCase.
fn create() -> Value {
    json!({
        "action": "create",
        "instanceArn": INSTANCE,
        "permissionSetArn": PERMISSION_SET,
        "targetId": ACCOUNT,
        "principalType": "USER",
        "principalId": PRINCIPAL_ID,
    })
}

/// A valid `associate-portfolio-principal` request with an `IAM` principal.
fn associate() -> Value {
    json!({
        "action": "associate-portfolio-principal",
        "portfolioId": PORTFOLIO,
        "principalType": "IAM",
        "principalArn": IAM_ARN,
    })
}

/// A valid progress half of the envelope: a `create` waiting on its second poll.
fn poll_progress() -> Value {
    json!({
        "step": "poll",
        "operation": "create",
        "operationRequestId": OPERATION_REQUEST_ID,
        "attempt": 2,
        "polls": 3,
        "firstReceivedAt": "2026-11-22T04:00:00Z",
        "submittedAt": "2026-11-22T04:00:05Z",
    })
}

/// `base` with `key` set to `value` (added or replaced).
fn with(mut base: Value, key: &str, value: Value) -> Value {
    if let Value::Object(object) = &mut base {
        object.insert(key.to_owned(), value);
    }
    base
}

/// `base` with `key` removed.
fn without(mut base: Value, key: &str) -> Value {
    if let Value::Object(object) = &mut base {
        object.remove(key);
    }
    base
}

fn sns(message: Value) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": "0f6c1a7e-5b1d-4c1e-9a57-3f0e1d2c3b4a",
        "TopicArn": "arn:aws:sns:eu-west-1:111122223333:assignments",
        "Message": message,
        "Timestamp": "2026-11-22T04:00:00.000Z",
        "SignatureVersion": "1",
    })
}

fn event_bridge() -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "AccountAssignmentRequested",
        "source": "com.example.access",
        "account": ACCOUNT,
        "time": "2026-11-22T04:00:00Z",
        "region": "eu-west-1",
        "resources": [],
    })
}

fn envelope(request: Value, progress: Value) -> Value {
    json!({ "request": request, "progress": progress })
}

fn parse_ok(body: &str) -> Message {
    match parse_body(body) {
        Ok(message) => message,
        Err(error) => panic!(
            "valid body refused ({}: {})\n{body}",
            error.code, error.message
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Bad bodies
// ---------------------------------------------------------------------------------------

struct Bad {
    name: &'static str,
    body: String,
    code: &'static str,
    /// A substring the message must contain: the field name or the rule.
    says: String,
}

fn row(name: &'static str, body: impl Into<String>, code: &'static str, says: &str) -> Bad {
    Bad {
        name,
        body: body.into(),
        code,
        says: says.to_owned(),
    }
}

/// `row` for a body built as a JSON value.
fn json_row(name: &'static str, body: Value, code: &'static str, says: &str) -> Bad {
    row(name, body.to_string(), code, says)
}

fn bad_bodies() -> Vec<Bad> {
    let long_instance = format!("arn:aws:sso:::instance/ssoins-{}", "a".repeat(1225 - 30));
    let huge = with(create(), "correlationId", json!("x".repeat(300 * 1024)));
    let limit = format!("the limit is {MAX_BODY_BYTES}");

    vec![
        // --- Not a JSON object at all -------------------------------------------------
        row(
            "not JSON",
            "action=create&targetId=111122223333",
            "NotJson",
            "body is not valid JSON",
        ),
        row(
            "truncated JSON",
            r#"{"action": "create", "targetId": "111122223333""#,
            "NotJson",
            "body is not valid JSON",
        ),
        row(
            "UTF-8 byte order mark before the object",
            format!("\u{feff}{}", create()),
            "NotJson",
            "byte-order mark",
        ),
        row("empty body", "", "EmptyBody", "empty"),
        row(
            "whitespace-only body",
            " \n\t \r\n",
            "EmptyBody",
            "blank (only whitespace)",
        ),
        json_row(
            "JSON array",
            json!([create()]),
            "NotAnObject",
            "got an array",
        ),
        row("JSON number", "42", "NotAnObject", "got a number"),
        row("JSON null", "null", "NotAnObject", "got null"),
        json_row(
            "double-encoded JSON",
            json!(create().to_string()),
            "NotAnObject",
            "double-encoded",
        ),
        // --- Wrong JSON types ---------------------------------------------------------
        json_row(
            "targetId is a number",
            with(create(), "targetId", json!(111_122_223_333_u64)),
            "WrongType",
            "targetId: must be a string, got a number",
        ),
        json_row(
            "action is an object",
            with(create(), "action", json!({ "name": "create" })),
            "WrongType",
            "action: must be a string, got an object",
        ),
        json_row(
            "principalType is a boolean",
            with(create(), "principalType", json!(true)),
            "WrongType",
            "principalType: must be a string, got a boolean",
        ),
        json_row(
            "correlationId is null",
            with(create(), "correlationId", Value::Null),
            "WrongType",
            "correlationId: must be a string, got null",
        ),
        // --- Required fields of an account assignment ---------------------------------
        json_row(
            "create without action",
            without(create(), "action"),
            "MissingField",
            "action: required",
        ),
        json_row(
            "create without instanceArn",
            without(create(), "instanceArn"),
            "MissingField",
            "instanceArn: required for action `create`",
        ),
        json_row(
            "create without permissionSetArn",
            without(create(), "permissionSetArn"),
            "MissingField",
            "permissionSetArn: required for action `create`",
        ),
        json_row(
            "create without targetId",
            without(create(), "targetId"),
            "MissingField",
            "targetId: required for action `create`",
        ),
        json_row(
            "create without principalType",
            without(create(), "principalType"),
            "MissingField",
            "principalType: required for action `create`",
        ),
        json_row(
            "create without principalId",
            without(create(), "principalId"),
            "MissingField",
            "principalId: required for action `create`",
        ),
        // --- Required fields of a portfolio principal ---------------------------------
        json_row(
            "associate without portfolioId",
            without(associate(), "portfolioId"),
            "MissingField",
            "portfolioId: required for action `associate-portfolio-principal`",
        ),
        json_row(
            "associate without principalArn",
            without(associate(), "principalArn"),
            "MissingField",
            "principalArn: required for action `associate-portfolio-principal`",
        ),
        json_row(
            "associate without principalType",
            without(associate(), "principalType"),
            "MissingField",
            "principalType: required for action `associate-portfolio-principal`",
        ),
        // --- Patterns -------------------------------------------------------------------
        json_row(
            "instanceArn of another service",
            with(
                create(),
                "instanceArn",
                json!("arn:aws:iam:::instance/ssoins-722326ba6a8a6d40"),
            ),
            "BadPattern",
            "instanceArn",
        ),
        json_row(
            "instanceArn in a partition outside the API model's rule",
            with(
                create(),
                "instanceArn",
                json!("arn:aws-toolong:sso:::instance/ssoins-722326ba6a8a6d40"),
            ),
            "BadPattern",
            "instanceArn",
        ),
        json_row(
            "instanceArn with a short instance id",
            with(
                create(),
                "instanceArn",
                json!("arn:aws:sso:::instance/ssoins-722326ba"),
            ),
            "BadPattern",
            "instanceArn",
        ),
        json_row(
            "permissionSetArn without its instance",
            with(
                create(),
                "permissionSetArn",
                json!("arn:aws:sso:::permissionSet/ps-1a2b3c4d5e6f7a8b"),
            ),
            "BadPattern",
            "permissionSetArn",
        ),
        json_row(
            "targetId with a letter",
            with(create(), "targetId", json!("11112222333a")),
            "BadPattern",
            "targetId",
        ),
        json_row(
            "targetId of 11 digits",
            with(create(), "targetId", json!("11112222333")),
            "BadLength",
            "targetId: must be 12..12 characters long, got 11",
        ),
        json_row(
            "targetId of 13 digits",
            with(create(), "targetId", json!("1111222233334")),
            "BadLength",
            "targetId: must be 12..12 characters long, got 13",
        ),
        json_row(
            "principalId not a UUID",
            with(create(), "principalId", json!("alice@example.com")),
            "BadPattern",
            "principalId",
        ),
        json_row(
            "portfolioId with a space",
            with(associate(), "portfolioId", json!("port abcdefghijklm")),
            "BadPattern",
            "portfolioId",
        ),
        json_row(
            "IAM principalArn without an account id",
            with(
                associate(),
                "principalArn",
                json!("arn:aws:iam:::role/Auditor"),
            ),
            "PrincipalTypeMismatch",
            "send principalType IAM_PATTERN:",
        ),
        json_row(
            "IAM_PATTERN principalArn that is a full ARN",
            with(
                with(associate(), "principalType", json!("IAM_PATTERN")),
                "principalArn",
                json!("arn:aws:iam::111122223333:role/Auditor"),
            ),
            "PrincipalTypeMismatch",
            "send principalType IAM:",
        ),
        json_row(
            "IAM_PATTERN principalArn with a wildcard partition",
            with(
                with(associate(), "principalType", json!("IAM_PATTERN")),
                "principalArn",
                json!("arn:*:iam:::role/X"),
            ),
            "BadPattern",
            "principalArn",
        ),
        json_row(
            "IAM_PATTERN principalArn with an account id",
            with(
                with(associate(), "principalType", json!("IAM_PATTERN")),
                "principalArn",
                json!("arn:aws:iam::111122223333:role/Team*"),
            ),
            "BadPattern",
            "principalArn",
        ),
        // --- Lengths one over the limit -------------------------------------------------
        json_row(
            "principalId of 48 characters",
            with(create(), "principalId", json!(format!("{PRINCIPAL_ID}0"))),
            "BadLength",
            "principalId: must be 1..47 characters long, got 48",
        ),
        json_row(
            "portfolioId of 101 characters",
            with(associate(), "portfolioId", json!("p".repeat(101))),
            "BadLength",
            "portfolioId: must be 1..100 characters long, got 101",
        ),
        json_row(
            "correlationId of 257 characters",
            with(create(), "correlationId", json!("c".repeat(257))),
            "BadLength",
            "correlationId: must be 1..256 characters long, got 257",
        ),
        json_row(
            "instanceArn of 1225 characters",
            with(create(), "instanceArn", json!(long_instance)),
            "BadLength",
            "instanceArn: must be 10..1224 characters long, got 1225",
        ),
        json_row(
            "empty principalId",
            with(create(), "principalId", json!("")),
            "BadLength",
            "principalId: must be 1..47 characters long, got 0",
        ),
        // --- Cross-field and value rules -------------------------------------------------
        json_row(
            "permission set of another instance",
            with(
                create(),
                "permissionSetArn",
                json!("arn:aws:sso:::permissionSet/ssoins-ffffffffffffffff/ps-1a2b3c4d5e6f7a8b"),
            ),
            "InstanceMismatch",
            "permissionSetArn: belongs to another instance",
        ),
        json_row(
            "unknown action",
            with(create(), "action", json!("update")),
            "UnknownAction",
            "got `update`",
        ),
        json_row(
            "unknown field (princpalId typo)",
            with(
                without(create(), "principalId"),
                "princpalId",
                json!(PRINCIPAL_ID),
            ),
            "UnknownField",
            "unknown field `princpalId`",
        ),
        json_row(
            "targetId given as targetId and TargetId",
            with(create(), "TargetId", json!(ACCOUNT)),
            "DuplicateField",
            "targetId is given twice",
        ),
        json_row(
            "principalArn given as principalArn and PrincipalARN",
            with(associate(), "PrincipalARN", json!(IAM_ARN)),
            "DuplicateField",
            "principalArn is given twice",
        ),
        json_row(
            "targetType not AWS_ACCOUNT",
            with(create(), "targetType", json!("AWS_OU")),
            "BadValue",
            "targetType: must be AWS_ACCOUNT",
        ),
        json_row(
            "principalType GROUP for a portfolio action",
            with(associate(), "principalType", json!("GROUP")),
            "BadValue",
            "principalType: must be IAM or IAM_PATTERN",
        ),
        json_row(
            "principalType IAM for an assignment",
            with(create(), "principalType", json!("IAM")),
            "BadValue",
            "principalType: must be USER or GROUP",
        ),
        json_row(
            "acceptLanguage fr",
            with(associate(), "acceptLanguage", json!("fr")),
            "BadValue",
            "acceptLanguage: must be en, jp or zh",
        ),
        json_row(
            "notAfter not RFC 3339",
            with(create(), "notAfter", json!("2026-11-22 04:00")),
            "BadTimestamp",
            "notAfter: must be an RFC 3339 time",
        ),
        json_row(
            "correlationId with a control character",
            with(create(), "correlationId", json!("CHG\u{7}0042")),
            "NotPrintable",
            "correlationId: must not contain control characters, U+FFFE or U+FFFF (found U+0007)",
        ),
        json_row(
            "correlationId with U+FFFF",
            with(create(), "correlationId", json!("CHG-\u{ffff}")),
            "NotPrintable",
            "correlationId: must not contain control characters, U+FFFE or U+FFFF (found U+FFFF)",
        ),
        json_row(
            "portfolio field on an assignment action",
            with(create(), "portfolioId", json!(PORTFOLIO)),
            "FieldNotAllowed",
            "portfolioId: not allowed for action `create`",
        ),
        json_row(
            "assignment field on a portfolio action",
            with(associate(), "targetId", json!(ACCOUNT)),
            "FieldNotAllowed",
            "targetId: not allowed for action `associate-portfolio-principal`",
        ),
        row(
            "body over MAX_BODY_BYTES",
            huge.to_string(),
            "BodyTooLarge",
            &limit,
        ),
        // --- SNS notification ------------------------------------------------------------
        json_row(
            "SNS Message is garbage",
            sns(json!("this is not a request")),
            "NotJson",
            "SNS notification: request is not valid JSON",
        ),
        json_row(
            "SNS Message is not a string",
            sns(create()),
            "BadEnvelope",
            "SNS notification: `Message` must be a string",
        ),
        json_row(
            "SNS Message holds an invalid request",
            sns(json!(with(create(), "targetId", json!("1111")).to_string())),
            "BadLength",
            "SNS notification: targetId",
        ),
        // --- EventBridge event -----------------------------------------------------------
        json_row(
            "EventBridge event without detail",
            event_bridge(),
            "BadEnvelope",
            "EventBridge event: `detail` is missing",
        ),
        json_row(
            "EventBridge detail is a string",
            with(event_bridge(), "detail", json!(create().to_string())),
            "BadEnvelope",
            "`detail` must be an object holding the request, got a string",
        ),
        json_row(
            "EventBridge detail is null",
            with(event_bridge(), "detail", Value::Null),
            "BadEnvelope",
            "`detail` must be an object holding the request, got null",
        ),
        row(
            "the same key twice (last would win)",
            format!(
                r#"{{"action":"create","instanceArn":"{INSTANCE}","permissionSetArn":"{PERMISSION_SET}","targetId":"999999999999","targetId":"{ACCOUNT}","principalType":"USER","principalId":"{PRINCIPAL_ID}"}}"#
            ),
            "DuplicateField",
            "`targetId` appears more than once in the body",
        ),
        json_row(
            "SNS subscription confirmation",
            json!({
                "Type": "SubscriptionConfirmation",
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:access-requests",
                "Message": "You have chosen to subscribe to the topic",
                "SubscribeURL": "https://example.invalid/confirm",
                "Token": "2336412f37"
            }),
            "BadEnvelope",
            "type `SubscriptionConfirmation` is not a Notification",
        ),
        json_row(
            "progress step submit with a leftover operationRequestId",
            envelope(
                create(),
                with(
                    with(poll_progress(), "step", json!("submit")),
                    "submittedAt",
                    Value::Null,
                ),
            ),
            "BadEnvelope",
            "belong to steps poll and confirm only",
        ),
        json_row(
            "EventBridge detail holds an invalid request",
            with(
                event_bridge(),
                "detail",
                with(create(), "principalType", json!("ROLE")),
            ),
            "BadValue",
            "EventBridge event: principalType",
        ),
        // --- Progress envelope -----------------------------------------------------------
        json_row(
            "progress envelope with an unknown field",
            with(envelope(create(), poll_progress()), "note", json!("retry")),
            "BadEnvelope",
            "unknown field `note`",
        ),
        json_row(
            "raw request with a stray `request` member",
            without(envelope(create(), poll_progress()), "progress"),
            "UnknownField",
            "unknown field `request`",
        ),
        json_row(
            "progress step poll without operationRequestId",
            envelope(create(), without(poll_progress(), "operationRequestId")),
            "BadEnvelope",
            "operationRequestId",
        ),
        json_row(
            "progress attempt 0",
            envelope(create(), with(poll_progress(), "attempt", json!(0))),
            "BadEnvelope",
            "attempt starts at 1",
        ),
        json_row(
            "progress operation disagrees with the request's action",
            envelope(with(create(), "action", json!("delete")), poll_progress()),
            "BadEnvelope",
            "a decision step of `create` does not belong to a `delete` request",
        ),
        json_row(
            "progress envelope around a portfolio request",
            envelope(associate(), poll_progress()),
            "BadEnvelope",
            "does not belong to a `associate-portfolio-principal` request",
        ),
        json_row(
            "progress envelope whose request is invalid",
            envelope(without(create(), "targetId"), poll_progress()),
            "MissingField",
            "progress envelope: targetId: required",
        ),
    ]
}

#[test]
fn the_table_is_big_enough_and_names_are_unique() {
    let rows = bad_bodies();
    assert!(rows.len() >= 45, "only {} rows", rows.len());
    let mut names: Vec<&str> = rows.iter().map(|bad| bad.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), rows.len(), "two rows share a name");
}

#[test]
fn the_oversized_body_really_is_oversized() {
    let rows = bad_bodies();
    let huge = rows
        .iter()
        .find(|bad| bad.code == "BodyTooLarge")
        .map_or(0, |bad| bad.body.len());
    assert!(huge >= 300 * 1024, "{huge} bytes");
    assert!(huge > MAX_BODY_BYTES, "{huge} bytes is within the limit");
}

#[test]
fn every_bad_body_is_refused_with_its_code_and_reason() {
    let mut failures = Vec::new();
    for bad in bad_bodies() {
        match parse_body(&bad.body) {
            Ok(message) => failures.push(format!(
                "{}: accepted as `{}`",
                bad.name,
                message.request.action_name()
            )),
            Err(error) if error.code != bad.code || !error.message.contains(&bad.says) => {
                failures.push(format!(
                    "{}: expected {} containing {:?}, got {}: {}",
                    bad.name, bad.code, bad.says, error.code, error.message
                ));
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} row(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_bad_body_gives_its_own_reason() {
    let mut by_message: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let rows = bad_bodies();
    for bad in &rows {
        let message = match parse_body(&bad.body) {
            Ok(_) => format!("(accepted: {})", bad.name),
            Err(error) => error.message,
        };
        by_message.entry(message).or_default().push(bad.name);
    }
    let shared: Vec<String> = by_message
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(message, names)| format!("{names:?} all say {message:?}"))
        .collect();
    assert!(
        shared.is_empty(),
        "{} message(s) shared by several bad bodies:\n{}",
        shared.len(),
        shared.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Valid forms
// ---------------------------------------------------------------------------------------

/// A raw request as an upstream might write it: its own spacing, key order and newlines.
const RAW_CREATE: &str = r#"{ "action": "create",
  "instanceArn": "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
  "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
  "targetId": "111122223333", "targetType": "AWS_ACCOUNT",
  "principalType": "GROUP", "principalId": "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",
  "correlationId": "CHG-0042", "notAfter": "2026-11-23T04:00:00Z" }"#;

#[test]
fn raw_create_in_camel_case() {
    let message = parse_ok(RAW_CREATE);
    let request = &message.request;
    assert!(message.progress.is_none());
    assert_eq!(request.action_name(), "create");
    let Some((action, assignment)) = request.assignment() else {
        panic!("not an assignment: {:?}", request.operation);
    };
    assert_eq!(action, AssignmentAction::Create);
    assert_eq!(assignment.instance.as_str(), INSTANCE);
    assert_eq!(assignment.permission_set.as_str(), PERMISSION_SET);
    assert_eq!(assignment.account.as_str(), ACCOUNT);
    assert_eq!(assignment.principal_type, PrincipalType::Group);
    assert_eq!(assignment.principal_id.as_str(), PRINCIPAL_ID);
    assert_eq!(
        request.correlation_id.as_ref().map(|id| id.as_str()),
        Some("CHG-0042")
    );
    assert_eq!(
        request.not_after,
        Some(time::macros::datetime!(2026-11-23 04:00:00 UTC))
    );
    assert_eq!(request.raw.get(), RAW_CREATE);
}

#[test]
fn raw_create_with_the_api_pascal_case_names() {
    let body = r#"{"action":"create","InstanceArn":"arn:aws:sso:::instance/ssoins-722326ba6a8a6d40","PermissionSetArn":"arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b","TargetId":"111122223333","TargetType":"AWS_ACCOUNT","PrincipalType":"USER","PrincipalId":"9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10"}"#;
    let message = parse_ok(body);
    let Some((action, assignment)) = message.request.assignment() else {
        panic!("not an assignment: {:?}", message.request.operation);
    };
    assert_eq!(action, AssignmentAction::Create);
    assert_eq!(assignment.instance.as_str(), INSTANCE);
    assert_eq!(assignment.permission_set.as_str(), PERMISSION_SET);
    assert_eq!(assignment.account.as_str(), ACCOUNT);
    assert_eq!(assignment.principal_type, PrincipalType::User);
    assert_eq!(assignment.principal_id.as_str(), PRINCIPAL_ID);
    assert!(message.request.correlation_id.is_none());
    assert!(message.request.not_after.is_none());
    assert_eq!(message.request.raw.get(), body);
}

#[test]
fn raw_delete() {
    let body = with(
        with(create(), "action", json!("delete")),
        "correlationId",
        json!("REQ-7"),
    )
    .to_string();
    let message = parse_ok(&body);
    assert_eq!(message.request.action_name(), "delete");
    let Some((action, assignment)) = message.request.assignment() else {
        panic!("not an assignment: {:?}", message.request.operation);
    };
    assert_eq!(action, AssignmentAction::Delete);
    assert_eq!(assignment.account.as_str(), ACCOUNT);
    assert_eq!(
        message
            .request
            .correlation_id
            .as_ref()
            .map(|id| id.as_str()),
        Some("REQ-7")
    );
    assert_eq!(message.request.raw.get(), body);
}

#[test]
fn associate_portfolio_principal_with_iam() {
    let body = with(associate(), "acceptLanguage", json!("jp")).to_string();
    let message = parse_ok(&body);
    assert_eq!(
        message.request.action_name(),
        "associate-portfolio-principal"
    );
    assert!(message.request.assignment().is_none());
    let Operation::Portfolio(action, change) = &message.request.operation else {
        panic!("not a portfolio change: {:?}", message.request.operation);
    };
    assert_eq!(*action, PortfolioAction::Associate);
    assert_eq!(change.portfolio.as_str(), PORTFOLIO);
    assert!(
        matches!(&change.principal, PortfolioPrincipal::Iam(arn) if arn.as_str() == IAM_ARN),
        "{:?}",
        change.principal
    );
    assert_eq!(change.accept_language, Some(AcceptLanguage::Jp));
    assert_eq!(message.request.raw.get(), body);
}

#[test]
fn associate_portfolio_principal_with_iam_pattern() {
    let body = r#"{"Action":"associate-portfolio-principal","PortfolioId":"port-abcdefghijklm","PrincipalType":"IAM_PATTERN","PrincipalARN":"arn:aws:iam:::role/Team*","CorrelationId":"CHG-9"}"#;
    let message = parse_ok(body);
    let Operation::Portfolio(action, change) = &message.request.operation else {
        panic!("not a portfolio change: {:?}", message.request.operation);
    };
    assert_eq!(*action, PortfolioAction::Associate);
    assert_eq!(change.portfolio.as_str(), PORTFOLIO);
    assert!(
        matches!(&change.principal, PortfolioPrincipal::IamPattern(p) if p.as_str() == IAM_PATTERN),
        "{:?}",
        change.principal
    );
    assert_eq!(change.accept_language, None);
    assert_eq!(
        message
            .request
            .correlation_id
            .as_ref()
            .map(|id| id.as_str()),
        Some("CHG-9")
    );
    assert_eq!(message.request.raw.get(), body);
}

#[test]
fn sns_wrapped_request() {
    // The Message string keeps the upstream's own formatting; raw must be exactly it.
    let inner = "{\n  \"action\": \"delete\",\n  \"instanceArn\": \"arn:aws:sso:::instance/ssoins-722326ba6a8a6d40\",\n  \"permissionSetArn\": \"arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b\",\n  \"targetId\": \"111122223333\",\n  \"principalType\": \"USER\",\n  \"principalId\": \"9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10\",\n  \"correlationId\": \"SNS-1\"\n}";
    let body = sns(json!(inner)).to_string();
    let message = parse_ok(&body);
    assert!(message.progress.is_none());
    let Some((action, assignment)) = message.request.assignment() else {
        panic!("not an assignment: {:?}", message.request.operation);
    };
    assert_eq!(action, AssignmentAction::Delete);
    assert_eq!(assignment.account.as_str(), ACCOUNT);
    assert_eq!(
        message
            .request
            .correlation_id
            .as_ref()
            .map(|id| id.as_str()),
        Some("SNS-1")
    );
    assert_eq!(message.request.raw.get(), inner);
}

#[test]
fn event_bridge_wrapped_request() {
    // Written by hand so the detail's own spacing and key order survive into raw.
    let detail = r#"{ "targetId" : "111122223333",
      "action" : "create", "principalType" : "USER",
      "principalId" : "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",
      "instanceArn" : "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
      "permissionSetArn" : "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
      "correlationId" : "EB-1" }"#;
    let body = format!(
        r#"{{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"AccountAssignmentRequested","source":"com.example.access","account":"111122223333","time":"2026-11-22T04:00:00Z","region":"eu-west-1","resources":[],"detail":{detail}}}"#
    );
    let message = parse_ok(&body);
    assert!(message.progress.is_none());
    let Some((action, assignment)) = message.request.assignment() else {
        panic!("not an assignment: {:?}", message.request.operation);
    };
    assert_eq!(action, AssignmentAction::Create);
    assert_eq!(assignment.account.as_str(), ACCOUNT);
    assert_eq!(
        message
            .request
            .correlation_id
            .as_ref()
            .map(|id| id.as_str()),
        Some("EB-1")
    );
    assert_eq!(message.request.raw.get(), detail);
}

#[test]
fn progress_envelope_at_poll() {
    let inner = r#"{"action": "create", "instanceArn": "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40", "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b", "targetId": "111122223333", "principalType": "USER", "principalId": "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10", "correlationId": "CHG-0042"}"#;
    let body = format!(r#"{{"request": {inner}, "progress": {}}}"#, poll_progress());
    let message = parse_ok(&body);
    let Some((action, assignment)) = message.request.assignment() else {
        panic!("not an assignment: {:?}", message.request.operation);
    };
    assert_eq!(action, AssignmentAction::Create);
    assert_eq!(assignment.account.as_str(), ACCOUNT);
    assert_eq!(
        message
            .request
            .correlation_id
            .as_ref()
            .map(|id| id.as_str()),
        Some("CHG-0042")
    );
    assert_eq!(message.request.raw.get(), inner);

    let Some(progress) = &message.progress else {
        panic!("the progress envelope lost its progress");
    };
    assert_eq!(progress.step_name(), "poll");
    assert_eq!(progress.operation(), AssignmentAction::Create);
    assert_eq!(progress.operation_request_id(), Some(OPERATION_REQUEST_ID));
    assert_eq!(progress.attempt, 2);
    assert_eq!(progress.polls(), 3);
    assert_eq!(
        progress.first_received_at,
        time::macros::datetime!(2026-11-22 04:00:00 UTC)
    );

    // The progress half round-trips through its own wire format.
    let rewritten: Progress = serde_json::from_value(poll_progress()).unwrap();
    assert_eq!(&rewritten, progress);
}
