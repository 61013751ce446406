//! The DynamoDB ledger adapter against the wire: the awsJson1_0 answers DynamoDB sends
//! (errors, conditional-check refusals with the old item, successes) fed through the real
//! `aws-sdk-dynamodb` client, so the error kinds the lifecycle acts on are checked against
//! what the SDK makes of those bytes, not against hand-built `SdkError`s.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use assignment_worker::adapters::dynamodb::DynamoDbLedger;
use assignment_worker::aws_call::{CallError, ErrorKind};
use assignment_worker::ledger::{
    AccessDecision, ClaimAnswer, DecisionOrder, Intent, Ledger, LedgerKey, RecordAnswer,
    RecordedState,
};
use assignment_worker::request::parse_request;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_smithy_http_client::test_util::{NeverClient, NeverTcpConnector, infallible_client_fn};
use aws_smithy_types::body::SdkBody;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const TABLE: &str = "assignment-ledger";
const JSON: &str = "application/x-amz-json-1.0";
/// DynamoDB's request ids are 52 characters of base32.
const HTTP_REQUEST_ID: &str = "2UPIJA2L0UE3OMFG40EFQEN4Q3VV4KQNSO5AEMVJF66Q9ASUAAJG";
const NOW: OffsetDateTime = datetime!(2026-11-30 10:00:03 UTC);
const HTML_503: &str = "<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>";

fn key() -> LedgerKey {
    let request = parse_request(
        &json!({
            "action": "create",
            "instanceArn": "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
            "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
            "targetId": "111122223333",
            "principalType": "USER",
            "principalId": "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10",
        })
        .to_string(),
    )
    .expect("the sample request is valid");
    LedgerKey::assignment(request.assignment().expect("an assignment").1)
}

/// The decision the calls under test carry: a grant, earlier than the stored revoke.
fn grant() -> AccessDecision {
    AccessDecision {
        order: DecisionOrder {
            requested_at: datetime!(2026-11-30 09:59:00 UTC),
            intent: Intent::Grant,
            correlation_id: Some("c-1".to_owned()),
            first_message_id: "m-1".to_owned(),
        },
        not_after: Some(datetime!(2026-11-30 18:00:00 UTC)),
    }
}

/// The later decision the stored item below records.
fn stored_revoke() -> AccessDecision {
    AccessDecision {
        order: DecisionOrder {
            requested_at: datetime!(2026-11-30 10:00:00 UTC),
            intent: Intent::Revoke,
            correlation_id: None,
            first_message_id: "m-2".to_owned(),
        },
        not_after: None,
    }
}

/// The stored item, as DynamoDB's JSON writes an attribute map.
fn stored_item() -> Value {
    json!({
        "pk": {"S": key().as_str()},
        "orderKey": {"S": stored_revoke().order.key()},
        "requestedAt": {"S": "2026-11-30T10:00:00Z"},
        "decision": {"S": "revoke"},
        "firstMessageId": {"S": "m-2"},
        "state": {"S": "absent"},
        "stateAt": {"S": "2026-11-30T10:00:05Z"},
    })
}

/// The refusal of a conditional write, with the item as it stood
/// (ReturnValuesOnConditionCheckFailure ALL_OLD) or without one (there was none).
fn refusal(item: Option<Value>) -> Answer {
    let mut body = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        "message": "The conditional request failed",
    });
    if let Some(item) = item {
        body["Item"] = item;
    }
    Answer::json(400, body.to_string())
}

/// What the client put on the wire.
#[derive(Debug, Clone)]
struct Sent {
    method: String,
    path: String,
    target: Option<String>,
    content_type: Option<String>,
    body: Value,
}

type Log = Arc<Mutex<Vec<Sent>>>;

/// One canned HTTP answer.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Answer {
    fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: JSON,
            body: body.into(),
        }
    }
}

fn config() -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .retry_config(RetryConfig::disabled())
}

fn adapter(http_client: SharedHttpClient) -> DynamoDbLedger {
    DynamoDbLedger::new(
        aws_sdk_dynamodb::Client::from_conf(config().http_client(http_client).build()),
        TABLE,
    )
}

/// An adapter whose every call is answered with `answer`; the log records the requests.
fn answering(answer: Answer) -> (DynamoDbLedger, Log) {
    let log: Log = Arc::default();
    let seen = Arc::clone(&log);
    let http_client = infallible_client_fn(move |request: http::Request<SdkBody>| {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|value| value.to_str().expect("ASCII header").to_owned())
        };
        let bytes = request.body().bytes().unwrap_or_default();
        seen.lock().expect("log lock").push(Sent {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            target: header("x-amz-target"),
            content_type: header("content-type"),
            body: serde_json::from_slice(bytes).unwrap_or(Value::Null),
        });
        http::Response::builder()
            .status(answer.status)
            .header("content-type", answer.content_type)
            .header("x-amzn-requestid", HTTP_REQUEST_ID)
            .body(SdkBody::from(answer.body.clone()))
            .expect("valid response")
    });
    (adapter(http_client), log)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Claim,
    Latest,
    Record,
}

/// What a call answered, whichever call it was.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Claim(ClaimAnswer),
    Latest(Option<AccessDecision>),
    Record(RecordAnswer),
}

impl Op {
    const ALL: [Op; 3] = [Op::Claim, Op::Latest, Op::Record];

    async fn call(self, ledger: &DynamoDbLedger) -> Result<Reply, CallError> {
        let key = key();
        match self {
            Op::Claim => ledger
                .claim(&key, &grant(), RecordedState::Pending, NOW)
                .await
                .map(Reply::Claim),
            Op::Latest => ledger.latest(&key).await.map(Reply::Latest),
            Op::Record => ledger
                .record(
                    &key,
                    &grant().order,
                    RecordedState::Present,
                    Some("b1b2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
                    NOW,
                )
                .await
                .map(Reply::Record),
        }
    }

    fn target(self) -> &'static str {
        match self {
            Op::Claim | Op::Record => "DynamoDB_20120810.UpdateItem",
            Op::Latest => "DynamoDB_20120810.GetItem",
        }
    }
}

/// Checks the one request a call sent; returns the problems found.
fn check_sent(op: Op, log: &Log) -> Vec<String> {
    let sent = log.lock().expect("log lock").clone();
    let [sent] = sent.as_slice() else {
        return vec![format!(
            "expected exactly one request (retries are off), got {}",
            sent.len()
        )];
    };
    let mut problems = Vec::new();
    if sent.method != "POST" || sent.path != "/" {
        problems.push(format!("sent {} {}, not POST /", sent.method, sent.path));
    }
    if sent.target.as_deref() != Some(op.target()) {
        problems.push(format!("x-amz-target was {:?}", sent.target));
    }
    if sent.content_type.as_deref() != Some(JSON) {
        problems.push(format!("content-type was {:?}", sent.content_type));
    }
    let body = &sent.body;
    let mut expect = |pointer: &str, expected: Value| {
        if body.pointer(pointer) != Some(&expected) {
            problems.push(format!(
                "{pointer} was {:?}, expected {expected}",
                body.pointer(pointer)
            ));
        }
    };
    expect("/TableName", json!(TABLE));
    expect("/Key", json!({"pk": {"S": key().as_str()}}));
    match op {
        Op::Latest => expect("/ConsistentRead", json!(true)),
        Op::Claim => {
            expect("/ReturnValuesOnConditionCheckFailure", json!("ALL_OLD"));
            expect(
                "/ExpressionAttributeValues/:order",
                json!({"S": grant().order.key()}),
            );
            expect("/ExpressionAttributeValues/:state", json!({"S": "pending"}));
        }
        Op::Record => {
            expect("/ReturnValuesOnConditionCheckFailure", json!("ALL_OLD"));
            expect("/ConditionExpression", json!("#order = :order"));
            expect(
                "/ExpressionAttributeValues/:order",
                json!({"S": grant().order.key()}),
            );
            expect("/ExpressionAttributeValues/:state", json!({"S": "present"}));
        }
    }
    problems
}

/// How the `CallError`'s message is checked.
#[derive(Debug, Clone, Copy)]
enum Message {
    /// Exactly this text (the service's own message).
    Is(&'static str),
    /// The SDK's error context, which must mention this.
    Mentions(&'static str),
}

struct ErrorCase {
    name: &'static str,
    answer: Answer,
    kind: ErrorKind,
    transient: bool,
    code: &'static str,
    message: Message,
}

const PROVISIONED: &str = "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.";
const ON_DEMAND: &str = "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your table or index so please try again shortly. If exceptions persist, check if you have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html";
const GSI: &str = "Throughput exceeds the current capacity for one or more global secondary indexes. DynamoDB is automatically scaling your index so please try again shortly.";
const ACCOUNT_LIMIT: &str = "Throughput exceeds the current throughput limit for your account. Please contact AWS Support at https://aws.amazon.com/support request a limit increase";
const DENIED: &str = "User: arn:aws:sts::111122223333:assumed-role/assignment-worker-role/assignment-worker is not authorized to perform: dynamodb:UpdateItem on resource: arn:aws:dynamodb:us-east-1:111122223333:table/assignment-ledger because no identity-based policy allows the dynamodb:UpdateItem action";

fn error_cases() -> Vec<ErrorCase> {
    let table_arn = "arn:aws:dynamodb:us-east-1:111122223333:table/assignment-ledger";
    vec![
        ErrorCase {
            name: "ProvisionedThroughputExceededException",
            answer: Answer::json(
                400,
                json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                    "message": PROVISIONED,
                })
                .to_string(),
            ),
            kind: ErrorKind::RateLimited,
            transient: true,
            code: "ProvisionedThroughputExceededException",
            message: Message::Is(PROVISIONED),
        },
        ErrorCase {
            name: "ProvisionedThroughputExceededException with ThrottlingReasons",
            answer: Answer::json(
                400,
                json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                    "message": PROVISIONED,
                    "ThrottlingReasons": [{
                        "reason": "TableWriteProvisionedThroughputExceeded",
                        "resource": table_arn,
                    }],
                })
                .to_string(),
            ),
            kind: ErrorKind::RateLimited,
            transient: true,
            code: "ProvisionedThroughputExceededException",
            message: Message::Is(PROVISIONED),
        },
        ErrorCase {
            name: "ThrottlingException, on-demand table",
            answer: Answer::json(
                400,
                json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                    "message": ON_DEMAND,
                    "throttlingReasons": [{
                        "reason": "TableWriteKeyRangeThroughputExceeded",
                        "resource": table_arn,
                    }],
                })
                .to_string(),
            ),
            kind: ErrorKind::RateLimited,
            transient: true,
            code: "ThrottlingException",
            message: Message::Is(ON_DEMAND),
        },
        ErrorCase {
            name: "ThrottlingException, global secondary index, coral namespace",
            answer: Answer::json(
                400,
                json!({
                    "__type": "com.amazon.coral.availability#ThrottlingException",
                    "message": GSI,
                })
                .to_string(),
            ),
            kind: ErrorKind::RateLimited,
            transient: true,
            code: "ThrottlingException",
            message: Message::Is(GSI),
        },
        ErrorCase {
            name: "RequestLimitExceeded",
            answer: Answer::json(
                400,
                json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded",
                    "message": ACCOUNT_LIMIT,
                })
                .to_string(),
            ),
            kind: ErrorKind::RateLimited,
            transient: true,
            code: "RequestLimitExceeded",
            message: Message::Is(ACCOUNT_LIMIT),
        },
        ErrorCase {
            name: "InternalServerError",
            answer: Answer::json(
                500,
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#,
            ),
            kind: ErrorKind::ServerError,
            transient: true,
            code: "InternalServerError",
            message: Message::Is("Internal server error"),
        },
        ErrorCase {
            name: "503 with an empty body",
            answer: Answer::json(503, ""),
            kind: ErrorKind::ServerError,
            transient: true,
            code: "HTTP 503",
            message: Message::Mentions("503"),
        },
        ErrorCase {
            name: "503 with an HTML body",
            answer: Answer {
                status: 503,
                content_type: "text/html",
                body: HTML_503.to_owned(),
            },
            kind: ErrorKind::ServerError,
            transient: true,
            code: "HTTP 503",
            message: Message::Mentions("503"),
        },
        ErrorCase {
            name: "ResourceNotFoundException (no such table)",
            answer: Answer::json(
                400,
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
            ),
            kind: ErrorKind::ResourceNotFound,
            transient: false,
            code: "ResourceNotFoundException",
            message: Message::Is("Requested resource not found"),
        },
        ErrorCase {
            name: "AccessDeniedException",
            answer: Answer::json(
                400,
                json!({
                    "__type": "com.amazon.coral.service#AccessDeniedException",
                    "Message": DENIED,
                })
                .to_string(),
            ),
            kind: ErrorKind::AccessDenied,
            transient: false,
            code: "AccessDeniedException",
            message: Message::Is(DENIED),
        },
        ErrorCase {
            name: "ValidationException",
            answer: Answer::json(
                400,
                r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"One or more parameter values were invalid: An AttributeValue may not contain an empty string"}"#,
            ),
            kind: ErrorKind::Validation,
            transient: false,
            code: "ValidationException",
            message: Message::Is(
                "One or more parameter values were invalid: An AttributeValue may not contain an empty string",
            ),
        },
        ErrorCase {
            name: "UnrecognizedClientException",
            answer: Answer::json(
                400,
                r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
            ),
            kind: ErrorKind::Rejected,
            transient: false,
            code: "UnrecognizedClientException",
            message: Message::Is("The security token included in the request is invalid."),
        },
        ErrorCase {
            // The worker runs no transactions on the table, so only someone else's
            // could cause this; the worker's write is safe to repeat.
            name: "TransactionConflictException",
            answer: Answer::json(
                400,
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionConflictException","message":"Transaction is ongoing for the item"}"#,
            ),
            kind: ErrorKind::Conflict,
            transient: true,
            code: "TransactionConflictException",
            message: Message::Is("Transaction is ongoing for the item"),
        },
    ]
}

fn check_error(case: &ErrorCase, result: &Result<Reply, CallError>) -> Vec<String> {
    let error = match result {
        Ok(reply) => return vec![format!("expected an error, got Ok({reply:?})")],
        Err(error) => error,
    };
    let mut problems = Vec::new();
    if error.kind != case.kind {
        problems.push(format!("kind {:?}, expected {:?}", error.kind, case.kind));
    }
    if error.kind.is_transient() != case.transient {
        problems.push(format!(
            "is_transient {}, expected {}",
            error.kind.is_transient(),
            case.transient
        ));
    }
    if error.code != case.code {
        problems.push(format!("code {:?}, expected {:?}", error.code, case.code));
    }
    match case.message {
        Message::Is(text) if error.message != text => {
            problems.push(format!("message {:?}, expected {text:?}", error.message));
        }
        Message::Mentions(text) if !error.message.contains(text) => {
            problems.push(format!(
                "message {:?} does not mention {text:?}",
                error.message
            ));
        }
        _ => {}
    }
    problems
}

#[tokio::test]
async fn real_error_answers_are_classified_for_every_call() {
    let cases = error_cases();
    let mut failures = Vec::new();
    let mut runs = 0;
    for case in &cases {
        for op in Op::ALL {
            let (ledger, log) = answering(case.answer.clone());
            let result = op.call(&ledger).await;
            runs += 1;
            let mut problems = check_error(case, &result);
            problems.extend(check_sent(op, &log));
            if !problems.is_empty() {
                failures.push(format!(
                    "{} / {op:?}: {} (got {result:?})",
                    case.name,
                    problems.join("; ")
                ));
            }
        }
    }
    assert_eq!(runs, cases.len() * Op::ALL.len());
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_refused_claim_answers_the_later_decision_from_the_old_item() {
    let (ledger, log) = answering(refusal(Some(stored_item())));
    assert_eq!(
        Op::Claim.call(&ledger).await,
        Ok(Reply::Claim(ClaimAnswer::Superseded(stored_revoke())))
    );
    assert_eq!(check_sent(Op::Claim, &log), Vec::<String>::new());
}

#[tokio::test]
async fn a_refused_claim_reads_correlation_id_and_not_after_from_the_old_item() {
    let mut item = stored_item();
    item["decision"] = json!({"S": "grant"});
    item["correlationId"] = json!({"S": "CHG-0042"});
    item["requestedAt"] = json!({"S": "2026-11-30T11:00:00.25+01:00"});
    item["notAfter"] = json!({"S": "2026-11-30T20:00:00+02:00"});
    let expected = AccessDecision {
        order: DecisionOrder {
            requested_at: datetime!(2026-11-30 10:00:00.25 UTC),
            intent: Intent::Grant,
            correlation_id: Some("CHG-0042".to_owned()),
            first_message_id: "m-2".to_owned(),
        },
        not_after: Some(datetime!(2026-11-30 18:00:00 UTC)),
    };
    item["orderKey"] = json!({"S": expected.order.key()});
    let (ledger, _log) = answering(refusal(Some(item)));
    assert_eq!(
        Op::Claim.call(&ledger).await,
        Ok(Reply::Claim(ClaimAnswer::Superseded(expected)))
    );
}

#[tokio::test]
async fn a_refused_record_answers_the_latest_decision_from_the_old_item() {
    let (ledger, log) = answering(refusal(Some(stored_item())));
    assert_eq!(
        Op::Record.call(&ledger).await,
        Ok(Reply::Record(RecordAnswer::NotLatest(
            Some(stored_revoke())
        )))
    );
    assert_eq!(check_sent(Op::Record, &log), Vec::<String>::new());
}

#[tokio::test]
async fn a_refused_record_without_an_item_answers_that_none_is_recorded() {
    let (ledger, log) = answering(refusal(None));
    assert_eq!(
        Op::Record.call(&ledger).await,
        Ok(Reply::Record(RecordAnswer::NotLatest(None)))
    );
    assert_eq!(check_sent(Op::Record, &log), Vec::<String>::new());
}

/// A claim is refused only by a later item, so a refusal without one, or with one the
/// worker did not write, cannot be ordered against and fails closed.
#[tokio::test]
async fn a_refusal_the_adapter_cannot_read_fails_closed() {
    let mut maybe = stored_item();
    maybe["decision"] = json!({"S": "maybe"});
    let mut bad_time = stored_item();
    bad_time["requestedAt"] = json!({"S": "2026-11-30 10:00"});
    let cases = [
        (Op::Claim, None),
        (Op::Claim, Some(maybe.clone())),
        (Op::Claim, Some(bad_time.clone())),
        (Op::Record, Some(maybe)),
        (Op::Record, Some(bad_time)),
    ];
    for (op, item) in cases {
        let (ledger, _log) = answering(refusal(item.clone()));
        let error = op
            .call(&ledger)
            .await
            .expect_err("an unreadable refusal is an error");
        assert_eq!(error.kind, ErrorKind::Rejected, "{op:?} {item:?}");
        assert!(!error.kind.is_transient(), "{op:?} {item:?}");
        assert_eq!(error.code, "UnreadableLedgerItem", "{op:?} {item:?}");
        assert_names_the_item(&error.message, &format!("{op:?} {item:?}"));
    }
}

/// An operator reads the dead letter's message to find the item to mend or delete, so
/// it names the item's key whichever item it was (another spelling's, say).
fn assert_names_the_item(message: &str, case: &str) {
    let pk = key();
    let named = format!("ledger item `{}`", pk.as_str());
    assert!(
        message.contains(&named),
        "{case}: {message:?} names no {named}"
    );
}

#[tokio::test]
async fn successful_answers() {
    let cases = [
        (Op::Claim, "{}", Reply::Claim(ClaimAnswer::Claimed)),
        (Op::Record, "{}", Reply::Record(RecordAnswer::Recorded)),
        (Op::Latest, "{}", Reply::Latest(None)),
    ];
    for (op, body, expected) in cases {
        let (ledger, log) = answering(Answer::json(200, body));
        assert_eq!(op.call(&ledger).await, Ok(expected), "{op:?}");
        assert_eq!(check_sent(op, &log), Vec::<String>::new(), "{op:?}");
    }
    let (ledger, log) = answering(Answer::json(
        200,
        json!({ "Item": stored_item() }).to_string(),
    ));
    assert_eq!(
        Op::Latest.call(&ledger).await,
        Ok(Reply::Latest(Some(stored_revoke())))
    );
    assert_eq!(check_sent(Op::Latest, &log), Vec::<String>::new());
}

#[tokio::test]
async fn an_item_the_worker_did_not_write_fails_closed_on_read() {
    let mut maybe = stored_item();
    maybe["decision"] = json!({"S": "maybe"});
    let mut unknown_state = stored_item();
    unknown_state["state"] = json!({"S": "granted"});
    for item in [maybe, unknown_state] {
        let (ledger, _log) = answering(Answer::json(200, json!({ "Item": item }).to_string()));
        let error = Op::Latest
            .call(&ledger)
            .await
            .expect_err("an unreadable item is an error");
        assert_eq!(error.kind, ErrorKind::Rejected, "{item:?}");
        assert_eq!(error.code, "UnreadableLedgerItem", "{item:?}");
        assert_names_the_item(&error.message, &format!("{item:?}"));
    }
}

/// A 2xx whose body cannot be read is a server fault to retry, not a rejection.
#[tokio::test]
async fn an_unreadable_200_is_a_server_error() {
    let bodies = [
        ("text/html", "<html><body>OK</body></html>"),
        (JSON, r#"{"Item":{"pk":{"S":"assign"#),
    ];
    for op in Op::ALL {
        for (content_type, body) in bodies {
            let (ledger, log) = answering(Answer {
                status: 200,
                content_type,
                body: body.to_owned(),
            });
            let error = op
                .call(&ledger)
                .await
                .expect_err("an unreadable answer is an error");
            assert_eq!(
                error.kind,
                ErrorKind::ServerError,
                "{op:?} {body}: {error:?}"
            );
            assert!(error.kind.is_transient());
            assert_eq!(error.code, "HTTP 200", "{op:?} {body}");
            assert_eq!(check_sent(op, &log), Vec::<String>::new(), "{op:?}");
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_error() {
    // The SDK's own HTTP client, aimed at a closed loopback port: the connect is refused.
    let ledger = DynamoDbLedger::new(
        aws_sdk_dynamodb::Client::from_conf(
            config()
                .endpoint_url("http://127.0.0.1:1")
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(1))
                        .operation_timeout(Duration::from_secs(2))
                        .build(),
                )
                .build(),
        ),
        TABLE,
    );
    for op in Op::ALL {
        let error = op
            .call(&ledger)
            .await
            .expect_err("nothing listens on port 1");
        assert_eq!(error.kind, ErrorKind::Connection, "{op:?}: {error:?}");
        assert_eq!(error.code, "ConnectionError", "{op:?}");
        assert!(error.kind.is_transient());
    }
}

#[tokio::test]
async fn a_connect_that_never_completes_is_a_timeout() {
    let ledger = DynamoDbLedger::new(
        aws_sdk_dynamodb::Client::from_conf(
            config()
                .http_client(NeverTcpConnector::new().into_client())
                .endpoint_url("http://127.0.0.1:1")
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_millis(100))
                        .operation_timeout(Duration::from_secs(2))
                        .build(),
                )
                .build(),
        ),
        TABLE,
    );
    for op in Op::ALL {
        let error = op
            .call(&ledger)
            .await
            .expect_err("the connect never completes");
        assert_eq!(error.kind, ErrorKind::Timeout, "{op:?}: {error:?}");
        assert_eq!(error.code, "Timeout", "{op:?}");
        assert!(error.kind.is_transient());
    }
}

#[tokio::test]
async fn an_answer_that_never_comes_is_a_timeout() {
    let ledger = DynamoDbLedger::new(
        aws_sdk_dynamodb::Client::from_conf(
            config()
                .http_client(NeverClient::new())
                .timeout_config(
                    TimeoutConfig::builder()
                        .operation_timeout(Duration::from_millis(100))
                        .build(),
                )
                .build(),
        ),
        TABLE,
    );
    for op in Op::ALL {
        let error = op.call(&ledger).await.expect_err("no answer ever comes");
        assert_eq!(error.kind, ErrorKind::Timeout, "{op:?}: {error:?}");
        assert_eq!(error.code, "Timeout", "{op:?}");
        assert!(error.kind.is_transient());
    }
}
