//! The Identity Center adapter against the wire: real awsJson1_1 answers (errors and
//! successes) fed through the real `aws-sdk-ssoadmin` client, so the classification in
//! `call_error` is checked against what the SDK actually makes of the bytes AWS sends,
//! not against hand-built `SdkError`s.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use assignment_worker::adapters::sso_admin::SsoAdminIdentityCenter;
use assignment_worker::identity_center::{
    CallError, CallResult, ErrorKind, IdentityCenter, OperationStatus, OperationSubject,
    StatusReport,
};
use assignment_worker::request::{Assignment, parse_request};
use aws_sdk_ssoadmin::config::retry::RetryConfig;
use aws_sdk_ssoadmin::config::timeout::TimeoutConfig;
use aws_sdk_ssoadmin::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_smithy_http_client::test_util::{NeverClient, NeverTcpConnector, infallible_client_fn};
use aws_smithy_types::body::SdkBody;
use serde_json::{Value, json};

const INSTANCE_ARN: &str = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40";
const PERMISSION_SET_ARN: &str =
    "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
const ACCOUNT: &str = "111122223333";
const PRINCIPAL_ID: &str = "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10";
/// The id of the asynchronous operation, as Create/Delete answer it.
const OPERATION_ID: &str = "b1b2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
/// The id of the HTTP exchange (`x-amzn-requestid`), unrelated to the operation id.
const HTTP_REQUEST_ID: &str = "6f1a8c2e-7b3d-4e5f-9a0b-1c2d3e4f5a6b";
const JSON: &str = "application/x-amz-json-1.1";
const HTML_500: &str = "<html><body><h1>500 Internal Server Error</h1></body></html>";

fn assignment() -> Assignment {
    let request = parse_request(
        &json!({
            "action": "create",
            "instanceArn": INSTANCE_ARN,
            "permissionSetArn": PERMISSION_SET_ARN,
            "targetId": ACCOUNT,
            "principalType": "USER",
            "principalId": PRINCIPAL_ID,
        })
        .to_string(),
    )
    .expect("the sample request is valid");
    request
        .assignment()
        .expect("the sample request is an assignment")
        .1
        .clone()
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
    /// An `x-amzn-errortype` header, which some AWS front ends add to errors.
    error_type: Option<&'static str>,
    body: String,
}

impl Answer {
    fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: JSON,
            error_type: None,
            body: body.into(),
        }
    }
}

fn config() -> aws_sdk_ssoadmin::config::Builder {
    aws_sdk_ssoadmin::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .retry_config(RetryConfig::disabled())
}

fn adapter(http_client: SharedHttpClient) -> SsoAdminIdentityCenter {
    SsoAdminIdentityCenter::new(aws_sdk_ssoadmin::Client::from_conf(
        config().http_client(http_client).build(),
    ))
}

/// An adapter whose every call is answered with `answer`; the log records the requests.
fn answering(answer: Answer) -> (SsoAdminIdentityCenter, Log) {
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
        let mut response = http::Response::builder()
            .status(answer.status)
            .header("content-type", answer.content_type)
            .header("x-amzn-requestid", HTTP_REQUEST_ID);
        if let Some(error_type) = answer.error_type {
            response = response.header("x-amzn-errortype", error_type);
        }
        response
            .body(SdkBody::from(answer.body.clone()))
            .expect("valid response")
    });
    (adapter(http_client), log)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Delete,
    DescribeCreation,
    DescribeDeletion,
}

impl Op {
    const ALL: [Op; 4] = [
        Op::Create,
        Op::Delete,
        Op::DescribeCreation,
        Op::DescribeDeletion,
    ];

    fn target(self) -> &'static str {
        match self {
            Op::Create => "SWBExternalService.CreateAccountAssignment",
            Op::Delete => "SWBExternalService.DeleteAccountAssignment",
            Op::DescribeCreation => "SWBExternalService.DescribeAccountAssignmentCreationStatus",
            Op::DescribeDeletion => "SWBExternalService.DescribeAccountAssignmentDeletionStatus",
        }
    }

    /// The member of a successful answer that holds the operation status.
    fn status_member(self) -> &'static str {
        match self {
            Op::Create | Op::DescribeCreation => "AccountAssignmentCreationStatus",
            Op::Delete | Op::DescribeDeletion => "AccountAssignmentDeletionStatus",
        }
    }

    async fn call(self, identity_center: &SsoAdminIdentityCenter) -> CallResult {
        let assignment = assignment();
        match self {
            Op::Create => identity_center.create_assignment(&assignment).await,
            Op::Delete => identity_center.delete_assignment(&assignment).await,
            Op::DescribeCreation => {
                identity_center
                    .describe_creation_status(&assignment, OPERATION_ID)
                    .await
            }
            Op::DescribeDeletion => {
                identity_center
                    .describe_deletion_status(&assignment, OPERATION_ID)
                    .await
            }
        }
    }

    /// The JSON body this operation must send for the sample assignment.
    fn expected_body(self) -> Value {
        match self {
            Op::Create | Op::Delete => json!({
                "InstanceArn": INSTANCE_ARN,
                "TargetId": ACCOUNT,
                "TargetType": "AWS_ACCOUNT",
                "PermissionSetArn": PERMISSION_SET_ARN,
                "PrincipalType": "USER",
                "PrincipalId": PRINCIPAL_ID,
            }),
            Op::DescribeCreation => json!({
                "InstanceArn": INSTANCE_ARN,
                "AccountAssignmentCreationRequestId": OPERATION_ID,
            }),
            Op::DescribeDeletion => json!({
                "InstanceArn": INSTANCE_ARN,
                "AccountAssignmentDeletionRequestId": OPERATION_ID,
            }),
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
    if sent.body != op.expected_body() {
        problems.push(format!("body was {}", sent.body));
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
    code: &'static str,
    message: Message,
}

fn error_cases() -> Vec<ErrorCase> {
    vec![
        ErrorCase {
            name: "ConflictException",
            answer: Answer::json(
                400,
                r#"{"__type":"ConflictException","Message":"Operation on the account is in progress. Please try again later."}"#,
            ),
            kind: ErrorKind::Conflict,
            code: "ConflictException",
            message: Message::Is(
                "Operation on the account is in progress. Please try again later.",
            ),
        },
        ErrorCase {
            name: "ConflictException, namespace-qualified __type",
            answer: Answer::json(
                400,
                r#"{"__type":"com.amazonaws.swbexternalservice#ConflictException","Message":"Conflicting operation"}"#,
            ),
            kind: ErrorKind::Conflict,
            code: "ConflictException",
            message: Message::Is("Conflicting operation"),
        },
        ErrorCase {
            name: "ThrottlingException Rate exceeded",
            answer: Answer::json(
                400,
                r#"{"__type":"ThrottlingException","Message":"Rate exceeded"}"#,
            ),
            kind: ErrorKind::RateLimited,
            code: "ThrottlingException",
            message: Message::Is("Rate exceeded"),
        },
        ErrorCase {
            name: "ThrottlingException Rate exceeded, lowercase message",
            answer: Answer::json(
                400,
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            ),
            kind: ErrorKind::RateLimited,
            code: "ThrottlingException",
            message: Message::Is("Rate exceeded"),
        },
        ErrorCase {
            name: "ThrottlingException too many requests processing",
            answer: Answer::json(
                400,
                r#"{"__type":"ThrottlingException","Message":"There are too many requests processing. Please try again later."}"#,
            ),
            kind: ErrorKind::Busy,
            code: "ThrottlingException",
            message: Message::Is("There are too many requests processing. Please try again later."),
        },
        ErrorCase {
            name: "ThrottlingException too many requests processing, lowercase message",
            answer: Answer::json(
                400,
                r#"{"__type":"ThrottlingException","message":"There are too many requests processing. Please try again later."}"#,
            ),
            kind: ErrorKind::Busy,
            code: "ThrottlingException",
            message: Message::Is("There are too many requests processing. Please try again later."),
        },
        ErrorCase {
            name: "ThrottlingException named only by x-amzn-errortype",
            answer: Answer {
                error_type: Some(
                    "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/",
                ),
                ..Answer::json(400, r#"{"message":"Rate exceeded"}"#)
            },
            kind: ErrorKind::RateLimited,
            code: "ThrottlingException",
            message: Message::Is("Rate exceeded"),
        },
        ErrorCase {
            name: "ValidationException",
            answer: Answer::json(
                400,
                r#"{"__type":"ValidationException","Message":"The value of PrincipalId is not valid"}"#,
            ),
            kind: ErrorKind::Validation,
            code: "ValidationException",
            message: Message::Is("The value of PrincipalId is not valid"),
        },
        ErrorCase {
            name: "AccessDeniedException",
            answer: Answer::json(
                400,
                r#"{"__type":"AccessDeniedException","Message":"User: arn:aws:sts::111122223333:assumed-role/worker/fn is not authorized to perform: sso:CreateAccountAssignment"}"#,
            ),
            kind: ErrorKind::AccessDenied,
            code: "AccessDeniedException",
            message: Message::Is(
                "User: arn:aws:sts::111122223333:assumed-role/worker/fn is not authorized to perform: sso:CreateAccountAssignment",
            ),
        },
        ErrorCase {
            name: "ResourceNotFoundException",
            answer: Answer::json(
                400,
                r#"{"__type":"ResourceNotFoundException","Message":"Could not find PermissionSet with PermissionSetArn"}"#,
            ),
            kind: ErrorKind::ResourceNotFound,
            code: "ResourceNotFoundException",
            message: Message::Is("Could not find PermissionSet with PermissionSetArn"),
        },
        ErrorCase {
            name: "InternalServerException",
            answer: Answer::json(
                500,
                r#"{"__type":"InternalServerException","Message":"An internal failure occurred"}"#,
            ),
            kind: ErrorKind::ServerError,
            code: "InternalServerException",
            message: Message::Is("An internal failure occurred"),
        },
        ErrorCase {
            name: "ServiceQuotaExceededException 402",
            answer: Answer::json(
                402,
                r#"{"__type":"ServiceQuotaExceededException","Message":"Account assignment limit exceeded"}"#,
            ),
            kind: ErrorKind::ServiceQuotaExceeded,
            code: "ServiceQuotaExceededException",
            message: Message::Is("Account assignment limit exceeded"),
        },
        ErrorCase {
            name: "ServiceQuotaExceededException 400",
            answer: Answer::json(
                400,
                r#"{"__type":"ServiceQuotaExceededException","message":"Account assignment limit exceeded"}"#,
            ),
            kind: ErrorKind::ServiceQuotaExceeded,
            code: "ServiceQuotaExceededException",
            message: Message::Is("Account assignment limit exceeded"),
        },
        ErrorCase {
            name: "HTML 500 from a front end",
            answer: Answer {
                status: 500,
                content_type: "text/html",
                error_type: None,
                body: HTML_500.to_owned(),
            },
            kind: ErrorKind::ServerError,
            code: "HTTP 500",
            message: Message::Mentions("500"),
        },
        ErrorCase {
            name: "503 with an empty body",
            answer: Answer::json(503, ""),
            kind: ErrorKind::ServerError,
            code: "HTTP 503",
            message: Message::Mentions("503"),
        },
        ErrorCase {
            name: "502 with a JSON body without __type",
            answer: Answer::json(502, r#"{"message":"Bad Gateway"}"#),
            kind: ErrorKind::ServerError,
            code: "HTTP 502",
            // Without a code the SDK keeps the parsed message inside its `Unhandled`
            // source, so the adapter falls back to the whole error context.
            message: Message::Mentions("Bad Gateway"),
        },
        ErrorCase {
            name: "429 with an empty body",
            answer: Answer::json(429, ""),
            kind: ErrorKind::RateLimited,
            code: "HTTP 429",
            message: Message::Mentions("429"),
        },
        ErrorCase {
            name: "unknown __type UnrecognizedClientException",
            answer: Answer::json(
                400,
                r#"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
            ),
            kind: ErrorKind::Rejected,
            code: "UnrecognizedClientException",
            message: Message::Is("The security token included in the request is invalid."),
        },
    ]
}

fn check_error(case: &ErrorCase, result: &CallResult) -> Vec<String> {
    let error = match result {
        Ok(report) => return vec![format!("expected an error, got Ok({report:?})")],
        Err(error) => error,
    };
    let mut problems = Vec::new();
    if error.kind != case.kind {
        problems.push(format!("kind {:?}, expected {:?}", error.kind, case.kind));
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
async fn real_error_answers_are_classified_for_every_operation() {
    let cases = error_cases();
    let mut failures = Vec::new();
    let mut runs = 0;
    for case in &cases {
        for op in Op::ALL {
            let (identity_center, log) = answering(case.answer.clone());
            let result = op.call(&identity_center).await;
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
async fn an_html_500_is_a_server_error_named_by_its_status() {
    let (identity_center, _log) = answering(Answer {
        status: 500,
        content_type: "text/html",
        error_type: None,
        body: HTML_500.to_owned(),
    });
    let error = Op::Create
        .call(&identity_center)
        .await
        .expect_err("a 500 is an error");
    println!("HTML 500 -> {error:?}");
    assert_eq!(error.kind, ErrorKind::ServerError);
    assert!(error.kind.is_transient());
    assert_eq!(error.code, "HTTP 500");
    assert!(!error.message.is_empty());
}

/// A 4xx whose body cannot be read as AWS's error (cut off, or a front end's page) may
/// be a throttle or a conflict, which Identity Center also answers with a 400: it is
/// retried, as a connection error is, not dead-lettered as a rejection.
#[tokio::test]
async fn an_unreadable_400_is_retried() {
    let bodies = [
        (
            JSON,
            r#"{"__type":"ThrottlingException","message":"Rate exc"#,
        ),
        (JSON, ""),
        ("text/html", "<html><body>400 Bad Request</body></html>"),
    ];
    for op in Op::ALL {
        for (content_type, body) in bodies {
            let (error, _log) = unreadable_answer(op, 400, content_type, body).await;
            assert!(error.kind.is_transient(), "{op:?} {body}: {error:?}");
            assert!(error.kind.may_have_taken_effect(), "{op:?} {body}");
            assert_eq!(error.code, "HTTP 400", "{op:?} {body}");
        }
    }
}

/// The error `op` meets when its call is answered `status` with `body`, which is no
/// answer the client can read; the log records the request.
async fn unreadable_answer(
    op: Op,
    status: u16,
    content_type: &'static str,
    body: &str,
) -> (CallError, Log) {
    let (identity_center, log) = answering(Answer {
        status,
        content_type,
        error_type: None,
        body: body.to_owned(),
    });
    let error = op
        .call(&identity_center)
        .await
        .expect_err("an unreadable answer is an error");
    (error, log)
}

/// The assignment every full answer in these tests names.
fn full_subject() -> OperationSubject {
    OperationSubject {
        target_id: Some(ACCOUNT.to_owned()),
        target_type: Some("AWS_ACCOUNT".to_owned()),
        permission_set_arn: Some(PERMISSION_SET_ARN.to_owned()),
        principal_type: Some("USER".to_owned()),
        principal_id: Some(PRINCIPAL_ID.to_owned()),
    }
}

#[tokio::test]
async fn create_in_progress() {
    let (identity_center, log) = answering(Answer::json(
        200,
        r#"{"AccountAssignmentCreationStatus":{"Status":"IN_PROGRESS","RequestId":"b1b2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d","TargetId":"111122223333","TargetType":"AWS_ACCOUNT","PermissionSetArn":"arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b","PrincipalType":"USER","PrincipalId":"9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10","CreatedDate":1.718035200123E9}}"#,
    ));
    let result = Op::Create.call(&identity_center).await;
    assert_eq!(
        result,
        Ok(StatusReport {
            created_at: time::OffsetDateTime::from_unix_timestamp(1_718_035_200).ok(),
            status: OperationStatus::InProgress,
            request_id: Some(OPERATION_ID.to_owned()),
            failure_reason: None,
            subject: full_subject(),
        })
    );
    assert_eq!(check_sent(Op::Create, &log), Vec::<String>::new());
}

#[tokio::test]
async fn describe_creation_failed_carries_the_reason() {
    let reason = "Received a 404 status error: Not supported account. The account is a member of an organization that does not support this feature.";
    let body = json!({
        "AccountAssignmentCreationStatus": {
            "Status": "FAILED",
            "RequestId": OPERATION_ID,
            "FailureReason": reason,
            "TargetId": ACCOUNT,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": PERMISSION_SET_ARN,
            "PrincipalType": "USER",
            "PrincipalId": PRINCIPAL_ID,
            "CreatedDate": 1.718035200123e9,
        }
    })
    .to_string();
    let (identity_center, log) = answering(Answer::json(200, body));
    let result = Op::DescribeCreation.call(&identity_center).await;
    assert_eq!(
        result,
        Ok(StatusReport {
            created_at: time::OffsetDateTime::from_unix_timestamp(1_718_035_200).ok(),
            status: OperationStatus::Failed,
            request_id: Some(OPERATION_ID.to_owned()),
            failure_reason: Some(reason.to_owned()),
            subject: full_subject(),
        })
    );
    assert_eq!(check_sent(Op::DescribeCreation, &log), Vec::<String>::new());
}

#[tokio::test]
async fn delete_succeeded() {
    let (identity_center, log) = answering(Answer::json(
        200,
        r#"{"AccountAssignmentDeletionStatus":{"Status":"SUCCEEDED","RequestId":"b1b2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d","TargetId":"111122223333","TargetType":"AWS_ACCOUNT","PermissionSetArn":"arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b","PrincipalType":"USER","PrincipalId":"9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10","CreatedDate":1718035200}}"#,
    ));
    let result = Op::Delete.call(&identity_center).await;
    assert_eq!(
        result,
        Ok(StatusReport {
            created_at: time::OffsetDateTime::from_unix_timestamp(1_718_035_200).ok(),
            status: OperationStatus::Succeeded,
            request_id: Some(OPERATION_ID.to_owned()),
            failure_reason: None,
            subject: full_subject(),
        })
    );
    assert_eq!(check_sent(Op::Delete, &log), Vec::<String>::new());
}

#[tokio::test]
async fn every_status_value_from_every_operation() {
    let statuses = [
        ("IN_PROGRESS", OperationStatus::InProgress),
        ("SUCCEEDED", OperationStatus::Succeeded),
        ("FAILED", OperationStatus::Failed),
    ];
    for op in Op::ALL {
        for (wire, expected) in statuses {
            let body = json!({
                op.status_member(): {"Status": wire, "RequestId": OPERATION_ID, "TargetId": ACCOUNT}
            })
            .to_string();
            let (identity_center, log) = answering(Answer::json(200, body));
            let result = op.call(&identity_center).await;
            assert_eq!(
                result,
                Ok(StatusReport {
                    created_at: None,
                    status: expected,
                    request_id: Some(OPERATION_ID.to_owned()),
                    failure_reason: None,
                    subject: OperationSubject {
                        target_id: Some(ACCOUNT.to_owned()),
                        ..OperationSubject::default()
                    },
                }),
                "{op:?} {wire}"
            );
            assert_eq!(check_sent(op, &log), Vec::<String>::new(), "{op:?}");
        }
    }
}

#[tokio::test]
async fn an_answer_without_a_status_object_is_a_server_error() {
    for op in Op::ALL {
        // `{}`, and the other operation's status member (which this one does not read).
        let other = if op.status_member() == "AccountAssignmentCreationStatus" {
            r#"{"AccountAssignmentDeletionStatus":{"Status":"SUCCEEDED"}}"#
        } else {
            r#"{"AccountAssignmentCreationStatus":{"Status":"SUCCEEDED"}}"#
        };
        for body in ["{}", other] {
            let (identity_center, _log) = answering(Answer::json(200, body));
            let error = op
                .call(&identity_center)
                .await
                .expect_err("no status is an error");
            assert_eq!(error.kind, ErrorKind::ServerError, "{op:?} {body}");
            assert_eq!(error.code, "MissingStatus", "{op:?} {body}");
        }
    }
}

#[tokio::test]
async fn an_unknown_status_value_is_a_server_error() {
    for op in Op::ALL {
        let body = json!({ op.status_member(): {"Status": "PENDING", "RequestId": OPERATION_ID} })
            .to_string();
        let (identity_center, _log) = answering(Answer::json(200, body));
        let error = op
            .call(&identity_center)
            .await
            .expect_err("an unknown status is an error");
        assert_eq!(error.kind, ErrorKind::ServerError, "{op:?}");
        assert_eq!(error.code, "UnknownStatus", "{op:?}");
    }
}

/// A 2xx whose body cannot be read is a server fault to retry, like a missing status
/// object, not a rejection to dead-letter.
#[tokio::test]
async fn an_unreadable_200_is_a_server_error() {
    let bodies = [
        ("text/html", "<html><body>OK</body></html>"),
        (
            JSON,
            r#"{"AccountAssignmentCreationStatus":{"Status":"IN_PRO"#,
        ),
        (
            JSON,
            r#"{"AccountAssignmentDeletionStatus":{"Status":"IN_PRO"#,
        ),
    ];
    for op in Op::ALL {
        for (content_type, body) in bodies {
            let (error, log) = unreadable_answer(op, 200, content_type, body).await;
            assert_eq!(
                error.kind,
                ErrorKind::ServerError,
                "{op:?} {body}: {error:?}"
            );
            assert!(error.kind.is_transient());
            assert_eq!(error.code, "HTTP 200", "{op:?} {body}");
            assert!(!error.message.is_empty(), "{op:?} {body}");
            assert_eq!(check_sent(op, &log), Vec::<String>::new(), "{op:?}");
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_error() {
    // The SDK's own HTTP client, aimed at a closed loopback port: the connect is refused.
    let client = aws_sdk_ssoadmin::Client::from_conf(
        config()
            .endpoint_url("http://127.0.0.1:1")
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build(),
    );
    let identity_center = SsoAdminIdentityCenter::new(client);
    for op in Op::ALL {
        let error: CallError = op
            .call(&identity_center)
            .await
            .expect_err("nothing listens on port 1");
        assert_eq!(error.kind, ErrorKind::Connection, "{op:?}: {error:?}");
        assert_eq!(error.code, "ConnectionError", "{op:?}");
        assert!(error.kind.is_transient());
    }
}

#[tokio::test]
async fn a_connect_that_never_completes_is_a_timeout() {
    let client = aws_sdk_ssoadmin::Client::from_conf(
        config()
            .http_client(NeverTcpConnector::new().into_client())
            .endpoint_url("http://127.0.0.1:1")
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(100))
                    .operation_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build(),
    );
    let error = SsoAdminIdentityCenter::new(client)
        .create_assignment(&assignment())
        .await
        .expect_err("the connect never completes");
    assert_eq!(error.kind, ErrorKind::Timeout, "{error:?}");
    assert_eq!(error.code, "Timeout");
}

#[tokio::test]
async fn an_answer_that_never_comes_is_a_timeout() {
    let client = aws_sdk_ssoadmin::Client::from_conf(
        config()
            .http_client(NeverClient::new())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_millis(100))
                    .build(),
            )
            .build(),
    );
    let identity_center = SsoAdminIdentityCenter::new(client);
    for op in Op::ALL {
        let error = op
            .call(&identity_center)
            .await
            .expect_err("no answer ever comes");
        assert_eq!(error.kind, ErrorKind::Timeout, "{op:?}: {error:?}");
        assert_eq!(error.code, "Timeout", "{op:?}");
    }
}
