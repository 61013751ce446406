//! The model, driven directly with inputs shaped like the real API's requests. Time is
//! passed in, so every assertion here is exact: no sleeping, no real clock.

use idc_sim::model::{ApiError, Fault};
use idc_sim::{Assignment, DeleteMissing, Knobs, Model, Seed};
use serde_json::{Value, json};

const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40";
const PS1: &str = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
const PS2: &str = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-8b7a6f5e4d3c2b1a";
const PRINCIPAL: &str = "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10";
const GROUP: &str = "9067a1b2c3-0a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
const UNKNOWN_PRINCIPAL: &str = "9067a1b2c3-ffffffff-ffff-4fff-8fff-ffffffffffff";
const ACCOUNT: &str = "111122223333";
const OTHER_ACCOUNT: &str = "444455556666";

const CREATE: &str = "CreateAccountAssignment";
const DELETE: &str = "DeleteAccountAssignment";
const DESCRIBE_CREATE: &str = "DescribeAccountAssignmentCreationStatus";
const DESCRIBE_DELETE: &str = "DescribeAccountAssignmentDeletionStatus";
const CREATION_KEY: &str = "AccountAssignmentCreationStatus";
const DELETION_KEY: &str = "AccountAssignmentDeletionStatus";
const BUSY: &str = "There are too many requests processing. Please try again later.";

/// Default knobs with a fixed provisioning time and no rate limit in the way.
fn knobs(provisioning: f64) -> Knobs {
    Knobs {
        provisioning_min_seconds: provisioning,
        provisioning_max_seconds: provisioning,
        rate_per_second: 1e9,
        rate_burst: 1e9,
        ..Knobs::default()
    }
}

fn seed() -> Seed {
    Seed {
        instances: vec![INSTANCE.to_owned()],
        permission_sets: vec![PS1.to_owned(), PS2.to_owned()],
        principals: vec![PRINCIPAL.to_owned(), GROUP.to_owned()],
        assignments: Vec::new(),
    }
}

/// Where simulated time zero sits on the calendar, fixed so that answers repeat exactly.
const EPOCH_AT_START: f64 = 1_717_405_200.0;

fn model_with(knobs: Knobs, rng_seed: u64) -> Model {
    let mut model = Model::new(knobs, rng_seed);
    model.epoch_at_start = EPOCH_AT_START;
    model.seed(seed());
    model
}

fn model(knobs: Knobs) -> Model {
    model_with(knobs, 7)
}

fn input(account: &str, permission_set: &str, principal_type: &str, principal: &str) -> Value {
    json!({
        "InstanceArn": INSTANCE,
        "TargetId": account,
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": permission_set,
        "PrincipalType": principal_type,
        "PrincipalId": principal,
    })
}

fn user(account: &str, permission_set: &str) -> Value {
    input(account, permission_set, "USER", PRINCIPAL)
}

fn assignment(account: &str, permission_set: &str) -> Assignment {
    Assignment {
        instance_arn: INSTANCE.to_owned(),
        account_id: account.to_owned(),
        permission_set_arn: permission_set.to_owned(),
        principal_type: "USER".to_owned(),
        principal_id: PRINCIPAL.to_owned(),
    }
}

/// The `n`th distinct twelve-digit account.
fn account(n: usize) -> String {
    format!("{:012}", 100_000_000_000 + n)
}

fn ok(result: Result<Value, ApiError>) -> Value {
    result.unwrap_or_else(|e| panic!("expected success, got {e:?}"))
}

fn err(result: Result<Value, ApiError>) -> ApiError {
    match result {
        Ok(answer) => panic!("expected an error, got {answer}"),
        Err(e) => e,
    }
}

/// Submits a create and returns its request id.
fn create(model: &mut Model, input: &Value, now: f64) -> String {
    let answer = ok(model.call(CREATE, input, now));
    answer[CREATION_KEY]["RequestId"]
        .as_str()
        .expect("RequestId")
        .to_owned()
}

fn delete(model: &mut Model, input: &Value, now: f64) -> String {
    let answer = ok(model.call(DELETE, input, now));
    answer[DELETION_KEY]["RequestId"]
        .as_str()
        .expect("RequestId")
        .to_owned()
}

fn describe_create(model: &mut Model, id: &str, now: f64) -> Result<Value, ApiError> {
    model
        .call(
            DESCRIBE_CREATE,
            &json!({"InstanceArn": INSTANCE, "AccountAssignmentCreationRequestId": id}),
            now,
        )
        .map(|answer| answer[CREATION_KEY].clone())
}

fn describe_delete(model: &mut Model, id: &str, now: f64) -> Result<Value, ApiError> {
    model
        .call(
            DESCRIBE_DELETE,
            &json!({"InstanceArn": INSTANCE, "AccountAssignmentDeletionRequestId": id}),
            now,
        )
        .map(|answer| answer[DELETION_KEY].clone())
}

fn status(result: Result<Value, ApiError>) -> String {
    ok(result)["Status"].as_str().expect("Status").to_owned()
}

fn is_uuid(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

// ---------------------------------------------------------------------------------
// Asynchronous operations

#[test]
fn create_answers_in_progress_then_succeeds_at_its_provisioning_time() {
    let mut model = model(knobs(3.0));
    let answer = ok(model.call(CREATE, &user(ACCOUNT, PS1), 0.0));
    let status = &answer[CREATION_KEY];
    assert_eq!(status["Status"], "IN_PROGRESS");
    let id = status["RequestId"].as_str().expect("RequestId");
    assert!(is_uuid(id), "request id {id} is not UUID-shaped");
    assert_eq!(status["TargetId"], ACCOUNT);
    assert_eq!(status["TargetType"], "AWS_ACCOUNT");
    assert_eq!(status["PermissionSetArn"], PS1);
    assert_eq!(status["PrincipalType"], "USER");
    assert_eq!(status["PrincipalId"], PRINCIPAL);
    assert!(status.get("FailureReason").is_none());
    assert!(model.assignments(0.0).is_empty());
    assert_eq!(model.outstanding_creates(), 1);

    for now in [1.0, 2.0, 2.999] {
        assert_eq!(
            self::status(describe_create(&mut model, id, now)),
            "IN_PROGRESS",
            "at {now}"
        );
        assert!(
            model.assignments(now).is_empty(),
            "assignment exists early, at {now}"
        );
    }
    let done = ok(describe_create(&mut model, id, 3.0));
    assert_eq!(done["Status"], "SUCCEEDED");
    assert_eq!(done["RequestId"], id);
    assert!(done.get("FailureReason").is_none());
    assert_eq!(model.assignments(3.0), vec![assignment(ACCOUNT, PS1)]);
    assert_eq!(model.outstanding_creates(), 0);
}

#[test]
fn default_provisioning_time_is_between_one_and_six_seconds() {
    let mut model = model(Knobs {
        rate_per_second: 1e9,
        rate_burst: 1e9,
        ..Knobs::default()
    });
    let ids: Vec<String> = (0..10)
        .map(|n| create(&mut model, &user(&account(n), PS1), 0.0))
        .collect();
    for id in &ids {
        assert_eq!(
            status(describe_create(&mut model, id, 0.999)),
            "IN_PROGRESS"
        );
    }
    for id in &ids {
        assert_eq!(status(describe_create(&mut model, id, 6.0)), "SUCCEEDED");
    }
    assert_eq!(model.assignments(6.0).len(), 10);
}

#[test]
fn delete_answers_in_progress_then_removes_the_assignment() {
    let mut model = model(knobs(2.0));
    model.seed(Seed {
        assignments: vec![assignment(ACCOUNT, PS1)],
        ..Seed::default()
    });
    let answer = ok(model.call(DELETE, &user(ACCOUNT, PS1), 0.0));
    assert_eq!(answer[DELETION_KEY]["Status"], "IN_PROGRESS");
    let id = answer[DELETION_KEY]["RequestId"]
        .as_str()
        .expect("RequestId")
        .to_owned();
    assert_eq!(status(describe_delete(&mut model, &id, 1.0)), "IN_PROGRESS");
    assert_eq!(model.assignments(1.0).len(), 1);
    assert_eq!(status(describe_delete(&mut model, &id, 2.0)), "SUCCEEDED");
    assert!(model.assignments(2.0).is_empty());
}

#[test]
fn describe_answers_not_found_until_the_status_is_visible() {
    let mut model = model(Knobs {
        not_visible_seconds: 0.5,
        ..knobs(3.0)
    });
    let id = create(&mut model, &user(ACCOUNT, PS1), 10.0);
    for now in [10.0, 10.25, 10.499] {
        let e = err(describe_create(&mut model, &id, now));
        assert_eq!(e.code, "ResourceNotFoundException", "at {now}");
    }
    assert_eq!(
        status(describe_create(&mut model, &id, 10.5)),
        "IN_PROGRESS"
    );

    // Deletions too; and with the knob at zero the status is visible at once.
    model.knobs.not_visible_seconds = 0.0;
    model.seed(Seed {
        assignments: vec![assignment(OTHER_ACCOUNT, PS1)],
        ..Seed::default()
    });
    let id = delete(&mut model, &user(OTHER_ACCOUNT, PS1), 20.0);
    assert_eq!(
        status(describe_delete(&mut model, &id, 20.0)),
        "IN_PROGRESS"
    );
}

#[test]
fn describe_of_an_unknown_or_wrong_kind_request_id_is_not_found() {
    let mut model = model(knobs(1.0));
    let id = create(&mut model, &user(ACCOUNT, PS1), 0.0);
    let e = err(describe_create(
        &mut model,
        "00000000-0000-4000-8000-000000000000",
        100.0,
    ));
    assert_eq!(e.code, "ResourceNotFoundException");
    // A creation id is not a deletion id.
    let e = err(describe_delete(&mut model, &id, 100.0));
    assert_eq!(e.code, "ResourceNotFoundException");
}

// ---------------------------------------------------------------------------------
// Throttling

#[test]
fn rate_limit_allows_twenty_calls_at_an_instant_and_refills_with_time() {
    let mut model = model(Knobs::default());
    let list = json!({});
    for _ in 0..20 {
        assert!(
            ok(model.call("ListInstances", &list, 0.0))
                .get("Instances")
                .is_some()
        );
    }
    let e = err(model.call("ListInstances", &list, 0.0));
    assert_eq!(e.code, "ThrottlingException");
    assert_eq!(e.message, "Rate exceeded");
    assert_eq!(model.counters.throttled_rate, 1);
    assert_eq!(model.counters.throttled_busy, 0);

    // 0.25 s at 20 per second is 5 tokens; a throttled call does not spend one.
    for _ in 0..5 {
        ok(model.call("ListInstances", &list, 0.25));
    }
    assert_eq!(
        err(model.call("ListInstances", &list, 0.25)).message,
        "Rate exceeded"
    );

    // A long pause refills to the burst, not beyond.
    for _ in 0..20 {
        ok(model.call("ListInstances", &list, 100.0));
    }
    assert_eq!(
        err(model.call("ListInstances", &list, 100.0)).message,
        "Rate exceeded"
    );
    assert_eq!(model.counters.throttled_rate, 3);
}

#[test]
fn rate_limit_is_shared_by_every_operation() {
    let mut model = model(knobs(1.0));
    model.knobs.rate_per_second = 20.0;
    model.knobs.rate_burst = 20.0;
    // The bucket is clamped to the new burst at the next call.
    let first = create(&mut model, &user(ACCOUNT, PS1), 0.0);
    for _ in 0..9 {
        ok(model.call("ListInstances", &json!({}), 0.0));
    }
    for _ in 0..10 {
        let _ = describe_create(&mut model, &first, 0.0);
    }
    let e = err(model.call(CREATE, &user(OTHER_ACCOUNT, PS1), 0.0));
    assert_eq!(
        (e.code, e.message.as_str()),
        ("ThrottlingException", "Rate exceeded")
    );
    let e = err(model.call(DELETE, &user(OTHER_ACCOUNT, PS1), 0.0));
    assert_eq!(
        (e.code, e.message.as_str()),
        ("ThrottlingException", "Rate exceeded")
    );
    // The throttled create did not start anything.
    assert_eq!(model.outstanding_creates(), 1);
}

#[test]
fn rate_limit_knobs_are_honoured() {
    let mut model = model(Knobs {
        rate_per_second: 2.0,
        rate_burst: 3.0,
        ..Knobs::default()
    });
    // Constructed with a full bucket of `rate_burst`.
    for _ in 0..3 {
        ok(model.call("ListInstances", &json!({}), 0.0));
    }
    assert_eq!(
        err(model.call("ListInstances", &json!({}), 0.0)).code,
        "ThrottlingException"
    );
    ok(model.call("ListInstances", &json!({}), 0.5));
    assert_eq!(
        err(model.call("ListInstances", &json!({}), 0.5)).code,
        "ThrottlingException"
    );
}

#[test]
fn a_call_with_an_earlier_clock_reading_does_not_rewind_the_rate_limit() {
    // The server reads the clock before it takes the model's lock, so two concurrent
    // calls can reach the model with their times out of order. That must not give the
    // bucket the same span of time twice.
    let mut model = model(Knobs::default());
    for _ in 0..20 {
        ok(model.call("ListInstances", &json!({}), 0.0));
    }
    for _ in 0..10 {
        ok(model.call("ListInstances", &json!({}), 0.5));
    }
    // Arrives late, read at 0.25: no tokens.
    assert_eq!(
        err(model.call("ListInstances", &json!({}), 0.25)).code,
        "ThrottlingException"
    );
    // Still at 0.5: every token up to 0.5 has been spent already.
    assert_eq!(
        err(model.call("ListInstances", &json!({}), 0.5)).code,
        "ThrottlingException"
    );
    // Time moving on still refills.
    ok(model.call("ListInstances", &json!({}), 0.75));
}

#[test]
fn at_most_fifteen_creates_are_outstanding_and_deletes_are_not_limited() {
    let mut model = model(knobs(10.0));
    model.seed(Seed {
        assignments: (100..105).map(|n| assignment(&account(n), PS1)).collect(),
        ..Seed::default()
    });
    for n in 0..15 {
        create(&mut model, &user(&account(n), PS1), 0.0);
    }
    assert_eq!(model.outstanding_creates(), 15);
    let e = err(model.call(CREATE, &user(&account(15), PS1), 0.0));
    assert_eq!(e.code, "ThrottlingException");
    assert_eq!(e.message, BUSY);
    assert_eq!(model.counters.throttled_busy, 1);
    assert_eq!(model.counters.throttled_rate, 0);
    assert_eq!(model.counters.max_outstanding_creates_seen, 15);

    // Deletes are not held back by the outstanding creates.
    for n in 100..105 {
        delete(&mut model, &user(&account(n), PS1), 0.0);
    }
    assert_eq!(model.outstanding_creates(), 15);

    // Still full just before they complete; free once they have.
    assert_eq!(
        err(model.call(CREATE, &user(&account(15), PS1), 9.999)).message,
        BUSY
    );
    create(&mut model, &user(&account(15), PS1), 10.0);
    assert_eq!(model.outstanding_creates(), 1);
    assert_eq!(model.counters.throttled_busy, 2);
}

#[test]
fn outstanding_limit_is_a_knob_and_counts_only_creates() {
    let mut model = model(Knobs {
        max_outstanding_creates: 1,
        ..knobs(10.0)
    });
    model.seed(Seed {
        assignments: vec![assignment(OTHER_ACCOUNT, PS2)],
        ..Seed::default()
    });
    // An outstanding delete does not take a create's place.
    delete(&mut model, &user(OTHER_ACCOUNT, PS2), 0.0);
    create(&mut model, &user(&account(1), PS1), 0.0);
    assert_eq!(
        err(model.call(CREATE, &user(&account(2), PS1), 0.0)).message,
        BUSY
    );
}

// ---------------------------------------------------------------------------------
// Conflicts

#[test]
fn one_operation_at_a_time_per_account_and_permission_set() {
    let mut model = model(knobs(5.0));
    create(&mut model, &user(ACCOUNT, PS1), 0.0);

    // Another principal on the same account and permission set: conflict.
    let e = err(model.call(CREATE, &input(ACCOUNT, PS1, "GROUP", GROUP), 1.0));
    assert_eq!(e.code, "ConflictException");
    // A delete on it: conflict.
    let e = err(model.call(DELETE, &user(ACCOUNT, PS1), 1.0));
    assert_eq!(e.code, "ConflictException");
    assert_eq!(model.counters.conflicts, 2);

    // Another permission set, or another account: no conflict.
    create(&mut model, &user(ACCOUNT, PS2), 1.0);
    create(&mut model, &user(OTHER_ACCOUNT, PS1), 1.0);

    // Once the first is done, a different assignment on that target goes through.
    create(&mut model, &input(ACCOUNT, PS1, "GROUP", GROUP), 5.0);
    assert_eq!(model.counters.conflicts, 2);
}

#[test]
fn a_write_soon_after_the_previous_one_completed_conflicts_until_it_propagates() {
    let mut model = model(Knobs {
        propagation_seconds: 2.0,
        ..knobs(5.0)
    });
    let id = create(&mut model, &user(ACCOUNT, PS1), 0.0);
    assert_eq!(status(describe_create(&mut model, &id, 5.0)), "SUCCEEDED");
    // A revoke soon after the grant.
    for now in [5.0, 6.0, 6.999] {
        let e = err(model.call(DELETE, &user(ACCOUNT, PS1), now));
        assert_eq!(e.code, "ConflictException", "at {now}");
    }
    // Another assignment on the same target is not held back by propagation.
    create(&mut model, &input(ACCOUNT, PS1, "GROUP", GROUP), 6.999);
    // The first one's propagation is over at 7.0, but the group's create holds the target.
    assert_eq!(
        err(model.call(DELETE, &user(ACCOUNT, PS1), 7.0)).code,
        "ConflictException"
    );
    let id = delete(&mut model, &user(ACCOUNT, PS1), 12.0);
    assert_eq!(status(describe_delete(&mut model, &id, 17.0)), "SUCCEEDED");
    assert!(
        model
            .assignments(17.0)
            .iter()
            .all(|a| a.principal_id == GROUP)
    );
    assert_eq!(model.counters.conflicts, 4);

    // With the knob at zero there is no propagation window.
    let mut model = self::model(Knobs {
        propagation_seconds: 0.0,
        ..knobs(5.0)
    });
    create(&mut model, &user(ACCOUNT, PS1), 0.0);
    delete(&mut model, &user(ACCOUNT, PS1), 5.0);
}

// ---------------------------------------------------------------------------------
// Outcomes known only by polling

#[test]
fn create_of_an_existing_assignment_succeeds() {
    let mut model = model(knobs(1.0));
    model.seed(Seed {
        assignments: vec![assignment(ACCOUNT, PS1)],
        ..Seed::default()
    });
    let id = create(&mut model, &user(ACCOUNT, PS1), 0.0);
    let done = ok(describe_create(&mut model, &id, 1.0));
    assert_eq!(done["Status"], "SUCCEEDED");
    assert!(done.get("FailureReason").is_none());
    assert_eq!(model.assignments(1.0), vec![assignment(ACCOUNT, PS1)]);
}

#[test]
fn delete_of_a_missing_assignment_fails_with_a_404_reason() {
    let mut model = model(knobs(1.0));
    assert_eq!(model.knobs.delete_missing, DeleteMissing::Failed);
    let id = delete(&mut model, &user(ACCOUNT, PS1), 0.0);
    assert_eq!(status(describe_delete(&mut model, &id, 0.5)), "IN_PROGRESS");
    let done = ok(describe_delete(&mut model, &id, 1.0));
    assert_eq!(done["Status"], "FAILED");
    let reason = done["FailureReason"].as_str().expect("FailureReason");
    assert!(
        reason.starts_with("Received a 404 status error: EntitlementItem doesn't exist"),
        "reason: {reason}"
    );
}

#[test]
fn delete_of_a_missing_assignment_can_answer_not_found_at_once() {
    let mut model = model(Knobs {
        delete_missing: DeleteMissing::NotFound,
        ..knobs(1.0)
    });
    let e = err(model.call(DELETE, &user(ACCOUNT, PS1), 0.0));
    assert_eq!(e.code, "ResourceNotFoundException");
    assert_eq!(e.status, 400);
    // An existing one is still deleted.
    model.seed(Seed {
        assignments: vec![assignment(ACCOUNT, PS1)],
        ..Seed::default()
    });
    let id = delete(&mut model, &user(ACCOUNT, PS1), 0.0);
    assert_eq!(status(describe_delete(&mut model, &id, 1.0)), "SUCCEEDED");
    assert!(model.assignments(1.0).is_empty());
}

#[test]
fn create_for_an_unknown_principal_fails_when_polled() {
    let mut model = model(knobs(1.0));
    let answer = ok(model.call(CREATE, &user_with(UNKNOWN_PRINCIPAL), 0.0));
    assert_eq!(answer[CREATION_KEY]["Status"], "IN_PROGRESS");
    let id = answer[CREATION_KEY]["RequestId"]
        .as_str()
        .expect("RequestId");
    let done = ok(describe_create(&mut model, id, 1.0));
    assert_eq!(done["Status"], "FAILED");
    let reason = done["FailureReason"].as_str().expect("FailureReason");
    assert!(
        reason.contains("was not found in directory"),
        "reason: {reason}"
    );
    assert!(reason.contains(UNKNOWN_PRINCIPAL), "reason: {reason}");
    assert!(model.assignments(1.0).is_empty());

    // With no principals seeded, every principal id is known.
    let mut model = Model::new(knobs(1.0), 7);
    model.seed(Seed {
        principals: Vec::new(),
        ..seed()
    });
    let id = create(&mut model, &user_with(UNKNOWN_PRINCIPAL), 0.0);
    assert_eq!(status(describe_create(&mut model, &id, 1.0)), "SUCCEEDED");
}

/// The API model's partition rule `aws(-[a-z]{1,5}){0,3}`: a newer partition's ARNs
/// are well formed (this instance is simply unknown to the simulator).
#[test]
fn newer_partitions_pass_validation() {
    let mut model = model(knobs(1.0));
    for partition in ["aws-iso-f", "aws-eusc"] {
        let mut request = user(ACCOUNT, PS1);
        request["InstanceArn"] = json!(format!(
            "arn:{partition}:sso:::instance/ssoins-722326ba6a8a6d40"
        ));
        request["PermissionSetArn"] = json!(format!(
            "arn:{partition}:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b"
        ));
        if let Err(e) = model.call(CREATE, &request, 0.0) {
            assert_ne!(e.code, "ValidationException", "{partition}: {e:?}");
        }
    }
}

fn user_with(principal: &str) -> Value {
    input(ACCOUNT, PS1, "USER", principal)
}

// ---------------------------------------------------------------------------------
// Synchronous errors

#[test]
fn malformed_inputs_are_validation_errors() {
    let mut model = model(knobs(1.0));
    let with = |field: &str, value: Value| {
        let mut request = user(ACCOUNT, PS1);
        request[field] = value;
        request
    };
    let without = |field: &str| {
        let mut request = user(ACCOUNT, PS1);
        request.as_object_mut().expect("object").remove(field);
        request
    };
    let cases = [
        ("short account id", with("TargetId", json!("12345"))),
        (
            "non-numeric account id",
            with("TargetId", json!("11112222333a")),
        ),
        (
            "bad instance ARN",
            with("InstanceArn", json!("arn:aws:sso:::instance/nope")),
        ),
        (
            "instance ARN in a partition outside the API model's rule",
            with(
                "InstanceArn",
                json!("arn:aws-toolong:sso:::instance/ssoins-722326ba6a8a6d40"),
            ),
        ),
        (
            "instance ARN of another service",
            with(
                "InstanceArn",
                json!("arn:aws:iam:::instance/ssoins-722326ba6a8a6d40"),
            ),
        ),
        (
            "bad principal id",
            with("PrincipalId", json!("not-a-principal")),
        ),
        (
            "bad permission set ARN",
            with(
                "PermissionSetArn",
                json!("arn:aws:sso:::permissionSet/ps-1"),
            ),
        ),
        (
            "bad target type",
            with("TargetType", json!("ORGANIZATIONAL_UNIT")),
        ),
        ("bad principal type", with("PrincipalType", json!("ROLE"))),
        ("missing PrincipalId", without("PrincipalId")),
        ("missing TargetId", without("TargetId")),
        ("missing InstanceArn", without("InstanceArn")),
        ("missing PermissionSetArn", without("PermissionSetArn")),
    ];
    let mut expected = 0;
    for (what, request) in &cases {
        for operation in [CREATE, DELETE] {
            let e = err(model.call(operation, request, 0.0));
            assert_eq!(e.code, "ValidationException", "{operation}, {what}: {e:?}");
            assert_eq!(e.status, 400);
            assert_eq!(e.body()["__type"], "ValidationException");
            expected += 1;
        }
    }
    let e = err(model.call(CREATE, &without("PrincipalId"), 0.0));
    assert!(e.message.contains("must not be null"), "{}", e.message);
    let e = err(model.call(CREATE, &with("TargetId", json!("12345")), 0.0));
    assert!(
        e.message.contains("12345") && e.message.contains("targetId"),
        "{}",
        e.message
    );
    expected += 2;

    // Describe with a malformed request id.
    let e = err(describe_create(&mut model, "not-a-request-id", 0.0));
    assert_eq!(e.code, "ValidationException");
    expected += 1;

    assert_eq!(model.counters.validation_errors, expected);
    assert_eq!(model.outstanding_creates(), 0);
}

#[test]
fn unknown_permission_set_or_instance_is_not_found() {
    let mut model = model(knobs(1.0));
    let unknown_ps = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-ffffffffffffffff";
    for operation in [CREATE, DELETE] {
        let e = err(model.call(operation, &user(ACCOUNT, unknown_ps), 0.0));
        assert_eq!(e.code, "ResourceNotFoundException", "{operation}");
    }
    let mut request = user(ACCOUNT, PS1);
    request["InstanceArn"] = json!("arn:aws:sso:::instance/ssoins-ffffffffffffffff");
    assert_eq!(
        err(model.call(CREATE, &request, 0.0)).code,
        "ResourceNotFoundException"
    );
    assert_eq!(model.outstanding_creates(), 0);
}

#[test]
fn denied_accounts_answer_access_denied() {
    let mut model = model(Knobs {
        denied_accounts: vec![ACCOUNT.to_owned()],
        ..knobs(1.0)
    });
    for operation in [CREATE, DELETE] {
        let e = err(model.call(operation, &user(ACCOUNT, PS1), 0.0));
        assert_eq!(e.code, "AccessDeniedException", "{operation}");
    }
    assert_eq!(model.counters.access_denied, 2);
    create(&mut model, &user(OTHER_ACCOUNT, PS1), 0.0);
}

#[test]
fn unknown_operation_is_rejected() {
    let mut model = model(knobs(1.0));
    let e = err(model.call("DeleteInstance", &json!({}), 0.0));
    assert_eq!(e.code, "UnknownOperationException");
}

// ---------------------------------------------------------------------------------
// Injected faults

#[test]
fn fault_failed_makes_every_operation_fail_and_leaves_no_assignment() {
    let mut model = model(Knobs {
        fault_failed: 1.0,
        ..knobs(1.0)
    });
    model.seed(Seed {
        assignments: vec![assignment(OTHER_ACCOUNT, PS1)],
        ..Seed::default()
    });
    let creates: Vec<String> = (0..5)
        .map(|n| create(&mut model, &user(&account(n), PS1), 0.0))
        .collect();
    let removal = delete(&mut model, &user(OTHER_ACCOUNT, PS1), 0.0);
    assert_eq!(model.counters.injected_failures, 6);
    for id in &creates {
        let done = ok(describe_create(&mut model, id, 1.0));
        assert_eq!(done["Status"], "FAILED");
        assert!(
            done["FailureReason"]
                .as_str()
                .is_some_and(|r| !r.is_empty())
        );
    }
    let done = ok(describe_delete(&mut model, &removal, 1.0));
    assert_eq!(done["Status"], "FAILED");
    // No create left an assignment; the failed delete left the one it was meant to remove.
    assert_eq!(model.assignments(1.0), vec![assignment(OTHER_ACCOUNT, PS1)]);

    let mut model = self::model(knobs(1.0));
    let id = create(&mut model, &user(ACCOUNT, PS1), 0.0);
    assert_eq!(status(describe_create(&mut model, &id, 1.0)), "SUCCEEDED");
    assert_eq!(model.counters.injected_failures, 0);
}

#[test]
fn draw_fault_follows_the_fault_knobs() {
    let mut model = model(Knobs::default());
    assert!((0..200).all(|_| model.draw_fault() == Fault::None));
    assert_eq!((model.counters.http_500, model.counters.dropped), (0, 0));

    let mut model = self::model(Knobs {
        fault_http_500: 1.0,
        ..Knobs::default()
    });
    assert!((0..200).all(|_| model.draw_fault() == Fault::Http500));
    assert_eq!((model.counters.http_500, model.counters.dropped), (200, 0));

    let mut model = self::model(Knobs {
        fault_drop: 1.0,
        ..Knobs::default()
    });
    let draws: Vec<Fault> = (0..200).map(|_| model.draw_fault()).collect();
    assert!(
        draws
            .iter()
            .all(|f| matches!(f, Fault::DropBefore | Fault::DropAfter))
    );
    // Half before the call takes effect, half after: both kinds turn up.
    assert!(draws.contains(&Fault::DropBefore) && draws.contains(&Fault::DropAfter));
    assert_eq!((model.counters.http_500, model.counters.dropped), (0, 200));

    let mut model = self::model(Knobs {
        fault_http_500: 0.5,
        fault_drop: 0.5,
        ..Knobs::default()
    });
    let draws: Vec<Fault> = (0..200).map(|_| model.draw_fault()).collect();
    assert!(!draws.contains(&Fault::None));
    assert!(draws.contains(&Fault::Http500));
    assert_eq!(model.counters.http_500 + model.counters.dropped, 200);
}

// ---------------------------------------------------------------------------------
// Repeatability

/// A mixed run: creates on a few targets (some conflicting, one for an unknown
/// principal), deletes, polls and lists, at fixed times. Returns every answer.
fn scripted_run(rng_seed: u64) -> Vec<Result<Value, (String, String)>> {
    let mut model = model_with(
        Knobs {
            fault_failed: 0.3,
            max_outstanding_creates: 4,
            ..Knobs::default()
        },
        rng_seed,
    );
    let mut trace = Vec::new();
    let mut record = |result: Result<Value, ApiError>| {
        trace.push(result.map_err(|e| (e.code.to_owned(), e.message)))
    };
    let mut now = 0.0;
    let mut ids = Vec::new();
    for round in 0..6 {
        for n in 0..5 {
            let principal = if n == 4 { UNKNOWN_PRINCIPAL } else { PRINCIPAL };
            let request = input(
                &account(n),
                if round % 2 == 0 { PS1 } else { PS2 },
                "USER",
                principal,
            );
            let answer = model.call(CREATE, &request, now);
            if let Ok(answer) = &answer {
                ids.push(
                    answer[CREATION_KEY]["RequestId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            record(answer);
            record(model.call(DELETE, &user(&account(n + 1), PS1), now));
        }
        for id in &ids {
            record(model.call(
                DESCRIBE_CREATE,
                &json!({"InstanceArn": INSTANCE, "AccountAssignmentCreationRequestId": id}),
                now,
            ));
        }
        record(model.call(
            "ListAccountAssignmentCreationStatus",
            &json!({"InstanceArn": INSTANCE}),
            now,
        ));
        record(model.call(
            "ListAccountAssignmentDeletionStatus",
            &json!({"InstanceArn": INSTANCE}),
            now,
        ));
        now += 1.7;
    }
    record(Ok(json!(model.assignments(now))));
    record(Ok(json!(model.counters)));
    trace
}

#[test]
fn the_same_seed_and_calls_give_the_same_ids_and_outcomes() {
    let first = scripted_run(42);
    let second = scripted_run(42);
    assert_eq!(first.len(), second.len());
    if let Some(at) = (0..first.len()).find(|&i| first[i] != second[i]) {
        panic!(
            "runs differ at answer {at}:\n{:?}\n{:?}",
            first[at], second[at]
        );
    }
    // The run exercised more than the happy path.
    let codes: Vec<&str> = first
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| e.0.as_str())
        .collect();
    assert!(
        codes.contains(&"ConflictException") && codes.contains(&"ThrottlingException"),
        "{codes:?}"
    );
    let text = format!("{first:?}");
    assert!(text.contains("FAILED") && text.contains("SUCCEEDED"));

    // Another seed gives other request ids.
    assert_ne!(first, scripted_run(43));
}

#[test]
fn statuses_submitted_at_the_same_instant_list_in_submission_order() {
    // Listing must not depend on hash-map order, or two runs from one seed differ.
    let listed = |rng_seed: u64| {
        let mut model = model_with(knobs(5.0), rng_seed);
        let ids: Vec<String> = (0..12)
            .map(|n| create(&mut model, &user(&account(n), PS1), 0.0))
            .collect();
        let answer = ok(model.call(
            "ListAccountAssignmentCreationStatus",
            &json!({"InstanceArn": INSTANCE}),
            0.0,
        ));
        let listed: Vec<String> = answer["AccountAssignmentsCreationStatus"]
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s["RequestId"].as_str().expect("RequestId").to_owned())
            .collect();
        (ids, listed)
    };
    for _ in 0..5 {
        let (ids, listed) = listed(9);
        assert_eq!(ids, listed);
    }
}

// ---------------------------------------------------------------------------------
// Answer shapes of the other operations

#[test]
fn list_account_assignments_answers_in_the_api_shape() {
    let mut model = model(knobs(1.0));
    model.seed(Seed {
        assignments: vec![
            assignment(ACCOUNT, PS1),
            assignment(ACCOUNT, PS2),
            assignment(OTHER_ACCOUNT, PS1),
        ],
        ..Seed::default()
    });
    create(&mut model, &input(ACCOUNT, PS1, "GROUP", GROUP), 0.0);
    let request = json!({"InstanceArn": INSTANCE, "AccountId": ACCOUNT, "PermissionSetArn": PS1});
    // Before the group's create completes only the user is there.
    let answer = ok(model.call("ListAccountAssignments", &request, 0.5));
    assert_eq!(
        answer,
        json!({"AccountAssignments": [
            {"AccountId": ACCOUNT, "PermissionSetArn": PS1, "PrincipalType": "USER", "PrincipalId": PRINCIPAL},
        ]})
    );
    let answer = ok(model.call("ListAccountAssignments", &request, 1.0));
    let listed = answer["AccountAssignments"].as_array().expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&json!(
        {"AccountId": ACCOUNT, "PermissionSetArn": PS1, "PrincipalType": "GROUP", "PrincipalId": GROUP}
    )));
    let none =
        json!({"InstanceArn": INSTANCE, "AccountId": "999999999999", "PermissionSetArn": PS1});
    assert_eq!(
        ok(model.call("ListAccountAssignments", &none, 1.0)),
        json!({"AccountAssignments": []})
    );
}

#[test]
fn list_operation_statuses_answer_in_the_api_shape() {
    let mut model = model(knobs(2.0));
    model.seed(Seed {
        assignments: vec![assignment(OTHER_ACCOUNT, PS1)],
        ..Seed::default()
    });
    let created = create(&mut model, &user(ACCOUNT, PS1), 0.0);
    let deleted = delete(&mut model, &user(OTHER_ACCOUNT, PS1), 1.0);
    let request = json!({"InstanceArn": INSTANCE});

    let answer = ok(model.call("ListAccountAssignmentCreationStatus", &request, 1.5));
    assert_eq!(
        answer,
        json!({"AccountAssignmentsCreationStatus": [{"Status": "IN_PROGRESS", "RequestId": created, "CreatedDate": EPOCH_AT_START}]})
    );
    let answer = ok(model.call("ListAccountAssignmentDeletionStatus", &request, 1.5));
    assert_eq!(
        answer,
        json!({"AccountAssignmentsDeletionStatus": [{"Status": "IN_PROGRESS", "RequestId": deleted, "CreatedDate": EPOCH_AT_START + 1.0}]})
    );
    let answer = ok(model.call("ListAccountAssignmentCreationStatus", &request, 3.0));
    assert_eq!(
        answer["AccountAssignmentsCreationStatus"][0]["Status"],
        "SUCCEEDED"
    );
    let answer = ok(model.call("ListAccountAssignmentDeletionStatus", &request, 3.0));
    assert_eq!(
        answer["AccountAssignmentsDeletionStatus"][0]["Status"],
        "SUCCEEDED"
    );
}

#[test]
fn list_instances_answers_in_the_api_shape() {
    let mut model = model(knobs(1.0));
    let answer = ok(model.call("ListInstances", &json!({}), 0.0));
    let instances = answer["Instances"].as_array().expect("Instances");
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0]["InstanceArn"], INSTANCE);
    assert_eq!(instances[0]["Status"], "ACTIVE");
    let store = instances[0]["IdentityStoreId"]
        .as_str()
        .expect("IdentityStoreId");
    assert!(
        store.len() == 12
            && store.starts_with("d-")
            && store[2..].chars().all(|c| c.is_ascii_hexdigit()),
        "identity store id {store}"
    );
}

#[test]
fn created_permission_sets_are_listed_and_usable() {
    let mut model = model(knobs(1.0));
    let answer = ok(model.call(
        "CreatePermissionSet",
        &json!({"InstanceArn": INSTANCE, "Name": "ReadOnly"}),
        0.0,
    ));
    let set = &answer["PermissionSet"];
    assert_eq!(set["Name"], "ReadOnly");
    let arn = set["PermissionSetArn"]
        .as_str()
        .expect("PermissionSetArn")
        .to_owned();
    let prefix = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-";
    assert!(
        arn.starts_with(prefix) && arn.len() == prefix.len() + 16,
        "{arn}"
    );
    assert!(set.get("CreatedDate").is_some());

    let answer = ok(model.call("ListPermissionSets", &json!({"InstanceArn": INSTANCE}), 0.0));
    let listed: Vec<&str> = answer["PermissionSets"]
        .as_array()
        .expect("PermissionSets")
        .iter()
        .map(|v| v.as_str().expect("ARN string"))
        .collect();
    assert_eq!(listed.len(), 3);
    for expected in [PS1, PS2, arn.as_str()] {
        assert!(listed.contains(&expected), "{expected} not in {listed:?}");
    }

    // The new set is a valid target for an assignment.
    let id = create(&mut model, &user(ACCOUNT, &arn), 0.0);
    assert_eq!(status(describe_create(&mut model, &id, 1.0)), "SUCCEEDED");

    for name in ["", "a-name-that-is-longer-than-32-chars"] {
        let e = err(model.call(
            "CreatePermissionSet",
            &json!({"InstanceArn": INSTANCE, "Name": name}),
            0.0,
        ));
        assert_eq!(e.code, "ValidationException", "name {name:?}");
    }
}

// ---------------------------------------------------------------------------------
// Counters

#[test]
fn counters_count_calls_per_operation_and_each_kind_of_refusal() {
    let mut model = model(Knobs {
        max_outstanding_creates: 2,
        denied_accounts: vec!["999999999999".to_owned()],
        ..knobs(5.0)
    });
    let first = create(&mut model, &user(ACCOUNT, PS1), 0.0);
    create(&mut model, &user(OTHER_ACCOUNT, PS1), 0.0);
    let _ = model.call(CREATE, &user(ACCOUNT, PS1), 0.0); // conflict
    let _ = model.call(CREATE, &user(ACCOUNT, PS2), 0.0); // busy
    let _ = model.call(DELETE, &user("999999999999", PS1), 0.0); // denied
    let _ = model.call(DELETE, &user("12", PS1), 0.0); // validation
    let _ = describe_create(&mut model, &first, 1.0);
    let _ = describe_create(&mut model, &first, 2.0);
    let _ = model.call("ListInstances", &json!({}), 2.0);
    model.knobs.rate_burst = 0.0;
    let _ = model.call("ListInstances", &json!({}), 3.0); // rate

    let counters = &model.counters;
    let calls: Vec<(&str, u64)> = counters
        .calls
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        calls,
        [
            (CREATE, 4),
            (DELETE, 2),
            (DESCRIBE_CREATE, 2),
            ("ListInstances", 2)
        ]
    );
    assert_eq!(counters.conflicts, 1);
    assert_eq!(counters.throttled_busy, 1);
    assert_eq!(counters.throttled_rate, 1);
    assert_eq!(counters.access_denied, 1);
    assert_eq!(counters.validation_errors, 1);
    assert_eq!(counters.max_outstanding_creates_seen, 2);

    let serialized = json!(counters);
    for key in [
        "calls",
        "throttledRate",
        "throttledBusy",
        "conflicts",
        "accessDenied",
        "validationErrors",
        "http500",
        "dropped",
        "injectedFailures",
        "maxOutstandingCreatesSeen",
    ] {
        assert!(
            serialized.get(key).is_some(),
            "counter {key} missing from {serialized}"
        );
    }
}
