//! The simulator over HTTP, driven by the real `aws-sdk-ssoadmin` client (the one the
//! worker uses) and, for the admin endpoints, by plain HTTP/1.1 requests.
//!
//! Nothing here depends on how fast the machine is: where an operation must still be in
//! progress, the simulated clock is frozen (`timeScale` 0) or provisioning takes a
//! million simulated seconds; where it must complete, time runs 1000 times faster and a
//! bounded loop polls for the final state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ssoadmin::Client;
use aws_sdk_ssoadmin::config::Credentials;
use aws_sdk_ssoadmin::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssoadmin::types::{
    AccountAssignmentOperationStatus, PrincipalType, StatusValues, TargetType,
};
use idc_sim::{Assignment, Knobs, Seed, Simulator, start};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40";
const PS1: &str = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
const PS2: &str = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-8b7a6f5e4d3c2b1a";
const PRINCIPAL: &str = "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10";
const ACCOUNT: &str = "111122223333";
const OTHER_ACCOUNT: &str = "444455556666";
const BUSY: &str = "There are too many requests processing. Please try again later.";

/// Upper bound on polls in a loop that waits for a state; never reached in practice.
const MAX_POLLS: usize = 2_000;
const POLL_PAUSE: Duration = Duration::from_millis(2);

fn seed() -> Seed {
    Seed {
        instances: vec![INSTANCE.to_owned()],
        permission_sets: vec![PS1.to_owned(), PS2.to_owned()],
        principals: vec![PRINCIPAL.to_owned()],
        assignments: Vec::new(),
    }
}

/// Fast time: provisioning (1-6 simulated seconds) takes a few real milliseconds.
fn fast() -> Knobs {
    Knobs {
        time_scale: 1000.0,
        ..Knobs::default()
    }
}

/// Frozen time and no rate limit: whatever is in progress stays in progress.
fn frozen() -> Knobs {
    Knobs {
        time_scale: 0.0,
        rate_per_second: 1e9,
        rate_burst: 1e9,
        ..Knobs::default()
    }
}

async fn serve(knobs: Knobs) -> (Arc<Simulator>, SocketAddr) {
    let simulator = Simulator::new(knobs, 11);
    simulator.with_model(|model| model.seed(seed()));
    let address = start(Arc::clone(&simulator), 0)
        .await
        .expect("bind 127.0.0.1");
    assert!(address.ip().is_loopback());
    (simulator, address)
}

/// The SDK client as the worker builds it: retries disabled, a bounded operation time.
fn client(address: SocketAddr) -> Client {
    let config = aws_sdk_ssoadmin::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDIDCSIMTEST",
            "idc-sim-test-secret",
            None,
            None,
            "idc-sim-test",
        ))
        .endpoint_url(format!("http://{address}"))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(20))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

fn create(client: &Client, account: &str, permission_set: &str) -> aws_sdk_ssoadmin::operation::create_account_assignment::builders::CreateAccountAssignmentFluentBuilder{
    client
        .create_account_assignment()
        .instance_arn(INSTANCE)
        .target_id(account)
        .target_type(TargetType::AwsAccount)
        .permission_set_arn(permission_set)
        .principal_type(PrincipalType::User)
        .principal_id(PRINCIPAL)
}

fn delete(client: &Client, account: &str, permission_set: &str) -> aws_sdk_ssoadmin::operation::delete_account_assignment::builders::DeleteAccountAssignmentFluentBuilder{
    client
        .delete_account_assignment()
        .instance_arn(INSTANCE)
        .target_id(account)
        .target_type(TargetType::AwsAccount)
        .permission_set_arn(permission_set)
        .principal_type(PrincipalType::User)
        .principal_id(PRINCIPAL)
}

/// What one Describe*Status call saw: the operation's status, or nothing yet.
type Seen = Option<AccountAssignmentOperationStatus>;

/// Calls `describe` until the operation is terminal; a not-yet-visible status counts
/// as pending.
async fn poll_until_terminal<F, Fut>(
    what: &str,
    id: &str,
    describe: F,
) -> (StatusValues, Option<String>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Seen>,
{
    for _ in 0..MAX_POLLS {
        if let Some(status) = describe().await {
            match status.status() {
                Some(StatusValues::InProgress) => {}
                Some(terminal) => {
                    return (terminal.clone(), status.failure_reason().map(str::to_owned));
                }
                None => panic!("no Status in {status:?}"),
            }
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    panic!("{what} {id} still pending after {MAX_POLLS} polls");
}

/// The status an answer carries; a ResourceNotFoundException as nothing yet; any
/// other error fails the test.
fn seen<T, E, R>(
    what: &str,
    answer: Result<T, SdkError<E, R>>,
    status: impl FnOnce(&T) -> Option<&AccountAssignmentOperationStatus>,
) -> Seen
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match answer {
        Ok(output) => Some(status(&output).expect("status").clone()),
        Err(e) if e.code() == Some("ResourceNotFoundException") => None,
        Err(e) => panic!("describe {what}: {e:?}"),
    }
}

async fn creation_outcome(client: &Client, id: &str) -> (StatusValues, Option<String>) {
    poll_until_terminal("creation", id, || async {
        let answer = client
            .describe_account_assignment_creation_status()
            .instance_arn(INSTANCE)
            .account_assignment_creation_request_id(id)
            .send()
            .await;
        seen("creation", answer, |a| {
            a.account_assignment_creation_status()
        })
    })
    .await
}

async fn deletion_outcome(client: &Client, id: &str) -> (StatusValues, Option<String>) {
    poll_until_terminal("deletion", id, || async {
        let answer = client
            .describe_account_assignment_deletion_status()
            .instance_arn(INSTANCE)
            .account_assignment_deletion_request_id(id)
            .send()
            .await;
        seen("deletion", answer, |a| {
            a.account_assignment_deletion_status()
        })
    })
    .await
}

/// One plain HTTP/1.1 request; answers the status code and the body as JSON.
async fn admin(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        response
    };
    let response = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("admin request timed out");
    let text = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("admin body {body:?}: {e}"));
    (status, body)
}

async fn state(address: SocketAddr) -> Value {
    let (status, body) = admin(address, "GET", "/_sim/state", "").await;
    assert_eq!(status, 200, "{body}");
    body
}

// ---------------------------------------------------------------------------------

#[tokio::test]
async fn create_and_delete_reach_succeeded_through_the_sdk() {
    let (_simulator, address) = serve(fast()).await;
    let client = client(address);

    let answer = create(&client, ACCOUNT, PS1).send().await.expect("create");
    let status = answer
        .account_assignment_creation_status()
        .expect("creation status");
    assert_eq!(status.status(), Some(&StatusValues::InProgress));
    assert_eq!(status.target_id(), Some(ACCOUNT));
    assert_eq!(status.target_type(), Some(&TargetType::AwsAccount));
    assert_eq!(status.permission_set_arn(), Some(PS1));
    assert_eq!(status.principal_type(), Some(&PrincipalType::User));
    assert_eq!(status.principal_id(), Some(PRINCIPAL));
    assert!(status.created_date().is_some());
    let id = status.request_id().expect("request id").to_owned();

    assert_eq!(
        creation_outcome(&client, &id).await,
        (StatusValues::Succeeded, None)
    );

    let listed = client
        .list_account_assignments()
        .instance_arn(INSTANCE)
        .account_id(ACCOUNT)
        .permission_set_arn(PS1)
        .send()
        .await
        .expect("list assignments");
    let assignments = listed.account_assignments();
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0].account_id(), Some(ACCOUNT));
    assert_eq!(assignments[0].permission_set_arn(), Some(PS1));
    assert_eq!(assignments[0].principal_type(), Some(&PrincipalType::User));
    assert_eq!(assignments[0].principal_id(), Some(PRINCIPAL));

    let listed = client
        .list_account_assignment_creation_status()
        .instance_arn(INSTANCE)
        .send()
        .await
        .expect("list creation statuses");
    let statuses = listed.account_assignments_creation_status();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].request_id(), Some(id.as_str()));
    assert_eq!(statuses[0].status(), Some(&StatusValues::Succeeded));

    // The revoke may meet the grant's propagation window: retry on ConflictException,
    // as a caller must (the SDK does not).
    let mut deletion = None;
    for _ in 0..MAX_POLLS {
        match delete(&client, ACCOUNT, PS1).send().await {
            Ok(answer) => {
                let status = answer
                    .account_assignment_deletion_status()
                    .expect("deletion status");
                deletion = status.request_id().map(str::to_owned);
                break;
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conflict_exception()) =>
            {
                tokio::time::sleep(POLL_PAUSE).await;
            }
            Err(e) => panic!("delete: {e:?}"),
        }
    }
    let deletion = deletion.expect("delete accepted");
    assert_eq!(
        deletion_outcome(&client, &deletion).await,
        (StatusValues::Succeeded, None)
    );
    assert_eq!(state(address).await["assignments"], json!([]));
}

#[tokio::test]
async fn failures_found_only_by_polling_come_back_through_the_sdk() {
    let (simulator, address) = serve(fast()).await;
    let client = client(address);

    // Delete of an assignment that does not exist: accepted, then FAILED with a 404.
    let answer = delete(&client, ACCOUNT, PS1).send().await.expect("delete");
    let id = answer
        .account_assignment_deletion_status()
        .and_then(|s| s.request_id())
        .expect("id")
        .to_owned();
    let (status, reason) = deletion_outcome(&client, &id).await;
    assert_eq!(status, StatusValues::Failed);
    let reason = reason.expect("failure reason");
    assert!(
        reason.starts_with("Received a 404 status error: EntitlementItem doesn't exist"),
        "{reason}"
    );

    // Injected failure.
    simulator.set_knobs(Knobs {
        fault_failed: 1.0,
        ..fast()
    });
    let answer = create(&client, OTHER_ACCOUNT, PS2)
        .send()
        .await
        .expect("create");
    let id = answer
        .account_assignment_creation_status()
        .and_then(|s| s.request_id())
        .expect("id")
        .to_owned();
    let (status, reason) = creation_outcome(&client, &id).await;
    assert_eq!(status, StatusValues::Failed);
    assert!(reason.is_some_and(|r| !r.is_empty()));
    assert_eq!(state(address).await["assignments"], json!([]));
}

#[tokio::test]
async fn the_sdk_parses_each_error_shape() {
    let (simulator, address) = serve(Knobs {
        max_outstanding_creates: 2,
        denied_accounts: vec!["999999999999".to_owned()],
        ..frozen()
    })
    .await;
    let client = client(address);

    create(&client, ACCOUNT, PS1)
        .send()
        .await
        .expect("first create");

    // Same account and permission set while the first is in progress (time is frozen).
    let e = create(&client, ACCOUNT, PS1)
        .send()
        .await
        .expect_err("conflict");
    let service = e.as_service_error().expect("service error");
    assert!(service.is_conflict_exception(), "{e:?}");
    assert_eq!(service.code(), Some("ConflictException"));
    assert!(service.message().is_some_and(|m| !m.is_empty()));
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));

    // The outstanding-creates limit.
    create(&client, OTHER_ACCOUNT, PS1)
        .send()
        .await
        .expect("second create");
    let e = create(&client, ACCOUNT, PS2)
        .send()
        .await
        .expect_err("busy");
    let service = e.as_service_error().expect("service error");
    assert!(service.is_throttling_exception(), "{e:?}");
    assert_eq!(service.code(), Some("ThrottlingException"));
    assert_eq!(service.message(), Some(BUSY));

    // Validation: a malformed account id.
    let e = create(&client, "12345", PS1)
        .send()
        .await
        .expect_err("validation");
    let service = e.as_service_error().expect("service error");
    assert!(service.is_validation_exception(), "{e:?}");
    assert_eq!(service.code(), Some("ValidationException"));

    // Unknown permission set; unknown request id.
    let unknown_ps = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-ffffffffffffffff";
    let e = create(&client, OTHER_ACCOUNT, unknown_ps)
        .send()
        .await
        .expect_err("not found");
    assert!(
        e.as_service_error()
            .is_some_and(|s| s.is_resource_not_found_exception()),
        "{e:?}"
    );
    let e = client
        .describe_account_assignment_creation_status()
        .instance_arn(INSTANCE)
        .account_assignment_creation_request_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .expect_err("not found");
    let service = e.as_service_error().expect("service error");
    assert!(service.is_resource_not_found_exception(), "{e:?}");
    assert_eq!(service.code(), Some("ResourceNotFoundException"));

    // A denied account.
    let e = delete(&client, "999999999999", PS1)
        .send()
        .await
        .expect_err("denied");
    let service = e.as_service_error().expect("service error");
    assert!(service.is_access_denied_exception(), "{e:?}");
    assert_eq!(service.code(), Some("AccessDeniedException"));

    // The rate: with an empty bucket every call answers "Rate exceeded".
    simulator.set_knobs(Knobs {
        rate_burst: 0.0,
        ..frozen()
    });
    let e = client.list_instances().send().await.expect_err("rate");
    let service = e.as_service_error().expect("service error");
    assert!(service.is_throttling_exception(), "{e:?}");
    assert_eq!(service.message(), Some("Rate exceeded"));

    let counters = &state(address).await["counters"];
    assert_eq!(counters["conflicts"], 1);
    assert_eq!(counters["throttledBusy"], 1);
    assert_eq!(counters["throttledRate"], 1);
    assert_eq!(counters["validationErrors"], 1);
    assert_eq!(counters["accessDenied"], 1);
}

#[tokio::test]
async fn other_operations_parse_through_the_sdk() {
    let (_simulator, address) = serve(frozen()).await;
    let client = client(address);

    let instances = client
        .list_instances()
        .send()
        .await
        .expect("list instances");
    let instances = instances.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].instance_arn(), Some(INSTANCE));
    assert!(
        instances[0]
            .identity_store_id()
            .is_some_and(|id| id.starts_with("d-"))
    );

    let created = client
        .create_permission_set()
        .instance_arn(INSTANCE)
        .name("ReadOnly")
        .send()
        .await
        .expect("create permission set");
    let set = created.permission_set().expect("permission set");
    assert_eq!(set.name(), Some("ReadOnly"));
    let arn = set.permission_set_arn().expect("arn").to_owned();

    let listed = client
        .list_permission_sets()
        .instance_arn(INSTANCE)
        .send()
        .await
        .expect("list permission sets");
    let listed = listed.permission_sets();
    assert_eq!(listed.len(), 3);
    assert!(listed.contains(&arn) && listed.iter().any(|p| p == PS1));

    let answer = delete(&client, ACCOUNT, &arn)
        .send()
        .await
        .expect("delete on the new set");
    let id = answer
        .account_assignment_deletion_status()
        .and_then(|s| s.request_id())
        .expect("id")
        .to_owned();
    let listed = client
        .list_account_assignment_deletion_status()
        .instance_arn(INSTANCE)
        .send()
        .await
        .expect("list deletion statuses");
    let statuses = listed.account_assignments_deletion_status();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].request_id(), Some(id.as_str()));
    assert_eq!(statuses[0].status(), Some(&StatusValues::InProgress));
}

#[tokio::test]
async fn fault_http_500_answers_an_html_500() {
    let (_simulator, address) = serve(Knobs {
        fault_http_500: 1.0,
        ..frozen()
    })
    .await;
    let client = client(address);
    let e = create(&client, ACCOUNT, PS1).send().await.expect_err("500");
    let raw = e
        .raw_response()
        .unwrap_or_else(|| panic!("no raw response in {e:?}"));
    assert_eq!(raw.status().as_u16(), 500);
    assert_eq!(raw.headers().get("content-type"), Some("text/html"));
    let body = raw
        .body()
        .bytes()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    assert!(body.contains("<html>"), "{body}");
    assert!(
        !e.as_service_error()
            .is_some_and(|s| s.is_conflict_exception() || s.is_throttling_exception())
    );

    // The call never reached the model.
    let state = state(address).await;
    assert_eq!(state["counters"]["http500"], 1);
    assert_eq!(state["counters"]["calls"], json!({}));
    assert_eq!(state["outstandingCreates"], 0);
}

#[tokio::test]
async fn fault_drop_closes_the_connection_without_an_answer() {
    let (_simulator, address) = serve(Knobs {
        fault_drop: 1.0,
        ..frozen()
    })
    .await;
    let client = client(address);
    for n in 0..6 {
        let e = create(&client, &format!("{:012}", 100_000_000_000u64 + n), PS1)
            .send()
            .await
            .expect_err("dropped");
        assert!(matches!(e, SdkError::DispatchFailure(_)), "{e:?}");
        assert!(e.raw_response().is_none());
    }
    let state = state(address).await;
    assert_eq!(state["counters"]["dropped"], 6);
    // Drops after the call took effect started an operation the caller never heard of.
    let took_effect = state["counters"]["calls"]["CreateAccountAssignment"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(state["outstandingCreates"].as_u64(), Some(took_effect));
}

#[tokio::test]
async fn admin_endpoints_seed_patch_knobs_and_report_state() {
    let simulator = Simulator::new(fast(), 5);
    let address = start(Arc::clone(&simulator), 0)
        .await
        .expect("bind 127.0.0.1");
    let client = client(address);

    // Seed over HTTP.
    let seeded = json!({
        "instances": [INSTANCE],
        "permissionSets": [PS1, PS2],
        "principals": [PRINCIPAL],
        "assignments": [{
            "instanceArn": INSTANCE, "accountId": OTHER_ACCOUNT, "permissionSetArn": PS2,
            "principalType": "USER", "principalId": PRINCIPAL,
        }],
    });
    let (status, body) = admin(address, "POST", "/_sim/seed", &seeded.to_string()).await;
    assert_eq!((status, body), (200, json!({"ok": true})));
    let (status, body) = admin(address, "POST", "/_sim/seed", r#"{"instance": []}"#).await;
    assert_eq!(status, 400, "{body}");

    let state = self::state(address).await;
    let expected = Assignment {
        instance_arn: INSTANCE.to_owned(),
        account_id: OTHER_ACCOUNT.to_owned(),
        permission_set_arn: PS2.to_owned(),
        principal_type: "USER".to_owned(),
        principal_id: PRINCIPAL.to_owned(),
    };
    assert_eq!(state["assignments"], json!([expected]));
    assert_eq!(state["knobs"]["timeScale"], 1000.0);
    assert!(state["simSeconds"].as_f64().is_some_and(|s| s >= 0.0));

    // A partial patch changes only what it names.
    let (status, knobs) = admin(
        address,
        "POST",
        "/_sim/knobs",
        r#"{"maxOutstandingCreates": 3, "deleteMissing": "not-found"}"#,
    )
    .await;
    assert_eq!(status, 200, "{knobs}");
    assert_eq!(knobs["maxOutstandingCreates"], 3);
    assert_eq!(knobs["deleteMissing"], "not-found");
    assert_eq!(knobs["timeScale"], 1000.0);
    assert_eq!(knobs["rateBurst"], 20.0);
    let current = simulator.with_model(|model| model.knobs.clone());
    assert_eq!(
        current,
        Knobs {
            max_outstanding_creates: 3,
            delete_missing: idc_sim::DeleteMissing::NotFound,
            ..fast()
        }
    );
    // The patched behaviour is live: a delete of a missing assignment is not found at once.
    let e = delete(&client, ACCOUNT, PS1)
        .send()
        .await
        .expect_err("not found");
    assert!(
        e.as_service_error()
            .is_some_and(|s| s.is_resource_not_found_exception()),
        "{e:?}"
    );

    // Patches that are not valid knobs are refused and change nothing.
    for bad in [
        r#"{"timescale": 5}"#,
        r#"{"timeScale": "fast"}"#,
        r#"{"timeScale": "#,
        "[1, 2]",
    ] {
        let (status, body) = admin(address, "POST", "/_sim/knobs", bad).await;
        assert_eq!(status, 400, "patch {bad} answered {body}");
    }
    assert_eq!(
        simulator.with_model(|model| model.knobs.max_outstanding_creates),
        3
    );
    assert_eq!(simulator.with_model(|model| model.knobs.time_scale), 1000.0);

    // Counters and assignments after some SDK traffic.
    let answer = create(&client, ACCOUNT, PS1).send().await.expect("create");
    let id = answer
        .account_assignment_creation_status()
        .and_then(|s| s.request_id())
        .expect("id")
        .to_owned();
    assert_eq!(
        creation_outcome(&client, &id).await.0,
        StatusValues::Succeeded
    );
    let state = self::state(address).await;
    assert_eq!(state["assignments"].as_array().map(Vec::len), Some(2));
    assert_eq!(state["outstandingCreates"], 0);
    let calls = &state["counters"]["calls"];
    assert_eq!(calls["CreateAccountAssignment"], 1);
    assert_eq!(calls["DeleteAccountAssignment"], 1);
    assert!(
        calls["DescribeAccountAssignmentCreationStatus"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    );

    // Unknown admin routes.
    let (status, _) = admin(address, "GET", "/_sim/nothing", "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn changing_the_time_scale_keeps_the_clock_continuous() {
    // Frozen: nothing completes, whatever the wall clock does.
    let (simulator, address) = serve(Knobs {
        provisioning_min_seconds: 1.0,
        provisioning_max_seconds: 1.0,
        not_visible_seconds: 0.0,
        ..frozen()
    })
    .await;
    let client = client(address);
    let answer = create(&client, ACCOUNT, PS1).send().await.expect("create");
    let id = answer
        .account_assignment_creation_status()
        .and_then(|s| s.request_id())
        .expect("id")
        .to_owned();
    let before = state(address).await;
    assert_eq!(before["simSeconds"], 0.0);
    assert_eq!(before["outstandingCreates"], 1);
    assert_eq!(simulator.now(), 0.0);

    // Unfrozen over the admin API: the clock resumes from where it stood, and the
    // operation completes.
    let (status, _) = admin(address, "POST", "/_sim/knobs", r#"{"timeScale": 1000}"#).await;
    assert_eq!(status, 200);
    assert_eq!(
        creation_outcome(&client, &id).await.0,
        StatusValues::Succeeded
    );
    assert!(simulator.now() >= 1.0);
}

#[tokio::test]
async fn fault_internal_error_answers_a_json_internal_server_exception() {
    let (_simulator, address) = serve(Knobs {
        fault_internal_error: 1.0,
        ..frozen()
    })
    .await;
    let client = client(address);
    let e = create(&client, ACCOUNT, PS1).send().await.expect_err("500");
    let service = e.as_service_error().expect("a modelled service error");
    assert!(service.is_internal_server_exception(), "{e:?}");
    assert_eq!(service.code(), Some("InternalServerException"));
    assert!(service.message().is_some_and(|m| !m.is_empty()));
    let raw = e.raw_response().expect("raw response");
    assert_eq!(raw.status().as_u16(), 500);
    assert_eq!(
        raw.headers().get("content-type"),
        Some("application/x-amz-json-1.1")
    );
    // The call never reached the model.
    let state = state(address).await;
    assert_eq!(state["counters"]["internalErrors"], 1);
    assert_eq!(state["counters"]["http500"], 0);
    assert_eq!(state["counters"]["calls"], json!({}));
}

#[tokio::test]
async fn list_operations_page_and_filter_through_the_sdk() {
    let (simulator, address) = serve(Knobs {
        provisioning_min_seconds: 1.0,
        provisioning_max_seconds: 1.0,
        not_visible_seconds: 0.0,
        ..frozen()
    })
    .await;
    let principals: Vec<String> = (0..45)
        .map(|n| format!("9067a1b2c3-{n:08x}-1e0b-4b4b-9c3b-1b6c5a3e7f10"))
        .collect();
    simulator.with_model(|model| {
        model.seed(Seed {
            principals: principals.clone(),
            assignments: principals
                .iter()
                .map(|p| Assignment {
                    instance_arn: INSTANCE.to_owned(),
                    account_id: OTHER_ACCOUNT.to_owned(),
                    permission_set_arn: PS2.to_owned(),
                    principal_type: "USER".to_owned(),
                    principal_id: p.clone(),
                })
                .collect(),
            ..Seed::default()
        })
    });
    let client = client(address);

    let pages: Vec<_> = client
        .list_account_assignments()
        .instance_arn(INSTANCE)
        .account_id(OTHER_ACCOUNT)
        .permission_set_arn(PS2)
        .max_results(10)
        .into_paginator()
        .send()
        .collect()
        .await;
    assert_eq!(pages.len(), 5);
    let mut listed: Vec<String> = pages
        .into_iter()
        .map(|page| page.expect("page"))
        .flat_map(|page| {
            page.account_assignments()
                .iter()
                .filter_map(|a| a.principal_id().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    listed.sort();
    let mut expected = principals.clone();
    expected.sort();
    assert_eq!(listed, expected);

    // Two creates; the first completes once time moves past its provisioning.
    create(&client, ACCOUNT, PS1).send().await.expect("create");
    simulator.advance(1.0);
    create(&client, OTHER_ACCOUNT, PS1)
        .send()
        .await
        .expect("create");
    for (status, count) in [
        (StatusValues::Succeeded, 1),
        (StatusValues::InProgress, 1),
        (StatusValues::Failed, 0),
    ] {
        let listed = client
            .list_account_assignment_creation_status()
            .instance_arn(INSTANCE)
            .filter(
                aws_sdk_ssoadmin::types::OperationStatusFilter::builder()
                    .status(status.clone())
                    .build(),
            )
            .send()
            .await
            .expect("list statuses");
        let statuses = listed.account_assignments_creation_status();
        assert_eq!(statuses.len(), count, "{status:?}");
        assert!(statuses.iter().all(|s| s.status() == Some(&status)));
        // CreatedDate is a date on today's calendar, not the simulator's uptime.
        for s in statuses {
            let created = s.created_date().expect("CreatedDate").secs();
            assert!(created > 1_700_000_000, "CreatedDate {created}");
        }
    }

    // An uppercase request id is malformed, not unknown.
    let e = client
        .describe_account_assignment_creation_status()
        .instance_arn(INSTANCE)
        .account_assignment_creation_request_id("ABCDEF00-0000-4000-8000-000000000000")
        .send()
        .await
        .expect_err("validation");
    assert!(
        e.as_service_error()
            .is_some_and(|s| s.is_validation_exception()),
        "{e:?}"
    );
}
