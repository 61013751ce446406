//! The Identity Center operations held to the rules of botocore's sso-admin model
//! (issue 9, items 8-12): dates in epoch seconds, paging, the status filter, the JSON
//! InternalServerException, and input validation. Time is passed in.

use idc_sim::model::{ApiError, Fault};
use idc_sim::{Assignment, Knobs, Model, Seed};
use serde_json::{Value, json};

const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40";
const OTHER_INSTANCE: &str = "arn:aws:sso:::instance/ssoins-1111222233334444";
const PS1: &str = "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b";
const PRINCIPAL: &str = "9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-1b6c5a3e7f10";
const ACCOUNT: &str = "111122223333";

/// A Monday in 2024, 09:00 UTC: where simulated time zero sits on the real calendar.
const EPOCH_AT_START: f64 = 1_717_405_200.0;

fn knobs() -> Knobs {
    Knobs {
        provisioning_min_seconds: 10.0,
        provisioning_max_seconds: 10.0,
        rate_per_second: 1e9,
        rate_burst: 1e9,
        ..Knobs::default()
    }
}

fn principal(n: usize) -> String {
    format!("9067a1b2c3-{n:08x}-1e0b-4b4b-9c3b-1b6c5a3e7f10")
}

fn permission_set(n: usize) -> String {
    format!("arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-{n:016x}")
}

fn model_with(knobs: Knobs) -> Model {
    let mut model = Model::new(knobs, 5);
    model.epoch_at_start = EPOCH_AT_START;
    model.seed(Seed {
        instances: vec![INSTANCE.to_owned(), OTHER_INSTANCE.to_owned()],
        permission_sets: (0..150)
            .map(permission_set)
            .chain([PS1.to_owned()])
            .collect(),
        principals: (0..250)
            .map(principal)
            .chain([PRINCIPAL.to_owned()])
            .collect(),
        assignments: (0..250)
            .map(|n| Assignment {
                instance_arn: INSTANCE.to_owned(),
                account_id: ACCOUNT.to_owned(),
                permission_set_arn: PS1.to_owned(),
                principal_type: "USER".to_owned(),
                principal_id: principal(n),
            })
            .collect(),
    });
    model
}

fn model() -> Model {
    model_with(knobs())
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

fn create_input(account: &str) -> Value {
    json!({"InstanceArn": INSTANCE, "TargetId": account, "TargetType": "AWS_ACCOUNT",
           "PermissionSetArn": PS1, "PrincipalType": "USER", "PrincipalId": PRINCIPAL})
}

fn account(n: usize) -> String {
    format!("{:012}", 100_000_000_000 + n)
}

// ---------------------------------------------------------------------------------
// 8. Dates

#[test]
fn created_dates_are_epoch_seconds_on_the_real_calendar() {
    let mut model = model();
    let answer = ok(model.call("CreateAccountAssignment", &create_input(ACCOUNT), 2.5));
    let status = &answer["AccountAssignmentCreationStatus"];
    assert_eq!(status["CreatedDate"], json!(EPOCH_AT_START + 2.5));
    let id = status["RequestId"].as_str().expect("id").to_owned();

    let described = ok(model.call(
        "DescribeAccountAssignmentCreationStatus",
        &json!({"InstanceArn": INSTANCE, "AccountAssignmentCreationRequestId": id}),
        4.0,
    ));
    assert_eq!(
        described["AccountAssignmentCreationStatus"]["CreatedDate"],
        json!(EPOCH_AT_START + 2.5)
    );
    let listed = ok(model.call(
        "ListAccountAssignmentCreationStatus",
        &json!({"InstanceArn": INSTANCE}),
        4.0,
    ));
    assert_eq!(
        listed["AccountAssignmentsCreationStatus"][0]["CreatedDate"],
        json!(EPOCH_AT_START + 2.5)
    );
    let created = ok(model.call(
        "CreatePermissionSet",
        &json!({"InstanceArn": INSTANCE, "Name": "Audit"}),
        7.25,
    ));
    assert_eq!(
        created["PermissionSet"]["CreatedDate"],
        json!(EPOCH_AT_START + 7.25)
    );
}

#[test]
fn a_new_model_starts_its_calendar_at_the_real_time() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let model = Model::new(Knobs::default(), 1);
    assert!(
        (before - 1.0..=before + 60.0).contains(&model.epoch_at_start),
        "epoch at start {} for a wall clock of {before}",
        model.epoch_at_start
    );
}

// ---------------------------------------------------------------------------------
// 9. Paging

/// Every page of `operation`, the items under `key`, with `max_results` per page.
fn all_pages(
    model: &mut Model,
    operation: &str,
    request: &Value,
    key: &str,
    max_results: Option<u64>,
) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    for pages in 1..=1000 {
        let mut input = request.clone();
        if let Some(max) = max_results {
            input["MaxResults"] = json!(max);
        }
        if let Some(token) = &token {
            input["NextToken"] = json!(token);
        }
        let answer = ok(model.call(operation, &input, 1.0));
        let page = answer[key].as_array().expect("items");
        if let Some(max) = max_results {
            assert!(
                page.len() as u64 <= max,
                "{operation}: {} > {max}",
                page.len()
            );
        }
        items.extend(page.iter().cloned());
        match answer.get("NextToken").and_then(Value::as_str) {
            Some(next) => token = Some(next.to_owned()),
            None => return (items, pages),
        }
    }
    panic!("{operation}: more than 1000 pages");
}

#[test]
fn list_account_assignments_pages_by_max_results() {
    let mut model = model();
    let request = json!({"InstanceArn": INSTANCE, "AccountId": ACCOUNT, "PermissionSetArn": PS1});
    let (items, pages) = all_pages(
        &mut model,
        "ListAccountAssignments",
        &request,
        "AccountAssignments",
        Some(7),
    );
    assert_eq!((items.len(), pages), (250, 36));
    let mut ids: Vec<&str> = items
        .iter()
        .map(|a| a["PrincipalId"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 250, "a principal listed twice");
    // Without MaxResults: pages of at most 100.
    let (items, pages) = all_pages(
        &mut model,
        "ListAccountAssignments",
        &request,
        "AccountAssignments",
        None,
    );
    assert_eq!((items.len(), pages), (250, 3));
}

#[test]
fn list_permission_sets_and_instances_page() {
    let mut model = model();
    let (sets, pages) = all_pages(
        &mut model,
        "ListPermissionSets",
        &json!({"InstanceArn": INSTANCE}),
        "PermissionSets",
        Some(100),
    );
    assert_eq!((sets.len(), pages), (151, 2));
    let (instances, pages) = all_pages(
        &mut model,
        "ListInstances",
        &json!({}),
        "Instances",
        Some(1),
    );
    assert_eq!((instances.len(), pages), (2, 2));
    assert_ne!(instances[0]["InstanceArn"], instances[1]["InstanceArn"]);
}

#[test]
fn list_operation_statuses_page_in_submission_order() {
    let mut model = model();
    let mut created = Vec::new();
    for n in 0..12 {
        let answer = ok(model.call(
            "CreateAccountAssignment",
            &create_input(&account(n)),
            n as f64 * 0.01,
        ));
        created.push(answer["AccountAssignmentCreationStatus"]["RequestId"].clone());
    }
    let (items, pages) = all_pages(
        &mut model,
        "ListAccountAssignmentCreationStatus",
        &json!({"InstanceArn": INSTANCE}),
        "AccountAssignmentsCreationStatus",
        Some(5),
    );
    assert_eq!(pages, 3);
    let ids: Vec<Value> = items.iter().map(|s| s["RequestId"].clone()).collect();
    assert_eq!(ids, created);
}

#[test]
fn a_next_token_is_refused_when_made_up_or_used_on_another_listing() {
    let mut model = model();
    let request = json!({"InstanceArn": INSTANCE, "AccountId": ACCOUNT, "PermissionSetArn": PS1, "MaxResults": 10});
    let first = ok(model.call("ListAccountAssignments", &request, 0.0));
    let token = first["NextToken"].as_str().expect("a next page").to_owned();
    // Another listing's parameters with this token.
    let elsewhere = json!({"InstanceArn": INSTANCE, "AccountId": "444455556666", "PermissionSetArn": PS1, "NextToken": token});
    assert_eq!(
        err(model.call("ListAccountAssignments", &elsewhere, 0.0)).code,
        "ValidationException"
    );
    let other_operation = json!({"InstanceArn": INSTANCE, "NextToken": token});
    assert_eq!(
        err(model.call("ListPermissionSets", &other_operation, 0.0)).code,
        "ValidationException"
    );
    for made_up in ["abc", "0000000000000001", ""] {
        let mut input = request.clone();
        input["NextToken"] = json!(made_up);
        let e = err(model.call("ListAccountAssignments", &input, 0.0));
        assert_eq!(e.code, "ValidationException", "token {made_up:?}");
    }
    // The real one works, and again.
    for _ in 0..2 {
        let mut input = request.clone();
        input["NextToken"] = json!(token);
        let page = ok(model.call("ListAccountAssignments", &input, 0.0));
        assert_eq!(
            page["AccountAssignments"].as_array().map(Vec::len),
            Some(10)
        );
    }
}

#[test]
fn the_default_page_size_is_a_knob() {
    let mut model = model_with(Knobs {
        default_max_results: 4,
        ..knobs()
    });
    let request = json!({"InstanceArn": INSTANCE, "AccountId": ACCOUNT, "PermissionSetArn": PS1});
    let first = ok(model.call("ListAccountAssignments", &request, 0.0));
    assert_eq!(
        first["AccountAssignments"].as_array().map(Vec::len),
        Some(4)
    );
    assert!(first.get("NextToken").is_some());
}

// ---------------------------------------------------------------------------------
// 10. Filter.Status

#[test]
fn list_operation_statuses_honour_the_status_filter() {
    let mut model = model();
    ok(model.call("CreateAccountAssignment", &create_input(&account(0)), 0.0));
    ok(model.call("CreateAccountAssignment", &create_input(&account(1)), 5.0));
    // At 12 the first (provisioning 10 s) has succeeded, the second has not.
    let listed = |model: &mut Model, status: &str| -> Vec<String> {
        let answer = ok(model.call(
            "ListAccountAssignmentCreationStatus",
            &json!({"InstanceArn": INSTANCE, "Filter": {"Status": status}}),
            12.0,
        ));
        answer["AccountAssignmentsCreationStatus"]
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s["Status"].as_str().expect("status").to_owned())
            .collect()
    };
    assert_eq!(listed(&mut model, "SUCCEEDED"), ["SUCCEEDED"]);
    assert_eq!(listed(&mut model, "IN_PROGRESS"), ["IN_PROGRESS"]);
    assert!(listed(&mut model, "FAILED").is_empty());
    let all = ok(model.call(
        "ListAccountAssignmentCreationStatus",
        &json!({"InstanceArn": INSTANCE, "Filter": {}}),
        12.0,
    ));
    assert_eq!(
        all["AccountAssignmentsCreationStatus"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    ok(model.call("DeleteAccountAssignment", &create_input(&account(9)), 12.0));
    let failed = ok(model.call(
        "ListAccountAssignmentDeletionStatus",
        &json!({"InstanceArn": INSTANCE, "Filter": {"Status": "FAILED"}}),
        30.0,
    ));
    assert_eq!(
        failed["AccountAssignmentsDeletionStatus"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

// ---------------------------------------------------------------------------------
// 11. The JSON 500

#[test]
fn fault_internal_error_draws_a_json_500() {
    let mut model = model_with(Knobs {
        fault_internal_error: 1.0,
        ..knobs()
    });
    assert!((0..100).all(|_| model.draw_fault() == Fault::InternalError));
    assert_eq!(model.counters.internal_errors, 100);
    assert_eq!((model.counters.http_500, model.counters.dropped), (0, 0));

    // With the HTML 500 and drops: each kind turns up.
    let mut model = model_with(Knobs {
        fault_http_500: 0.3,
        fault_drop: 0.3,
        fault_internal_error: 0.4,
        ..knobs()
    });
    let draws: Vec<Fault> = (0..300).map(|_| model.draw_fault()).collect();
    assert!(!draws.contains(&Fault::None));
    assert!(draws.contains(&Fault::Http500) && draws.contains(&Fault::InternalError));
    let counters = &model.counters;
    assert_eq!(
        counters.http_500 + counters.dropped + counters.internal_errors,
        300
    );
}

// ---------------------------------------------------------------------------------
// 12. Validation

fn validation(model: &mut Model, operation: &str, input: &Value) {
    let e = err(model.call(operation, input, 0.0));
    assert_eq!(
        (e.status, e.code),
        (400, "ValidationException"),
        "{operation} {input}: {e:?}"
    );
}

#[test]
fn max_results_outside_one_to_a_hundred_is_refused_by_every_list() {
    let mut model = model();
    let lists = [
        (
            "ListAccountAssignments",
            json!({"InstanceArn": INSTANCE, "AccountId": ACCOUNT, "PermissionSetArn": PS1}),
        ),
        (
            "ListAccountAssignmentCreationStatus",
            json!({"InstanceArn": INSTANCE}),
        ),
        (
            "ListAccountAssignmentDeletionStatus",
            json!({"InstanceArn": INSTANCE}),
        ),
        ("ListInstances", json!({})),
        ("ListPermissionSets", json!({"InstanceArn": INSTANCE})),
    ];
    for (operation, request) in &lists {
        for max in [0, -1, 101] {
            let mut input = request.clone();
            input["MaxResults"] = json!(max);
            validation(&mut model, operation, &input);
        }
        for token in ["x".repeat(2049), "not a token!".to_owned()] {
            let mut input = request.clone();
            input["NextToken"] = json!(token);
            validation(&mut model, operation, &input);
        }
        for max in [1, 100] {
            let mut input = request.clone();
            input["MaxResults"] = json!(max);
            ok(model.call(operation, &input, 0.0));
        }
    }
}

#[test]
fn status_filter_values_outside_the_enum_are_refused() {
    let mut model = model();
    for operation in [
        "ListAccountAssignmentCreationStatus",
        "ListAccountAssignmentDeletionStatus",
    ] {
        for status in ["DONE", "in_progress", ""] {
            validation(
                &mut model,
                operation,
                &json!({"InstanceArn": INSTANCE, "Filter": {"Status": status}}),
            );
        }
    }
}

#[test]
fn list_account_assignments_checks_its_account_and_permission_set() {
    let mut model = model();
    for (account, permission_set) in [
        ("12345", PS1),
        ("11112222333a", PS1),
        ("1111222233334", PS1),
        (ACCOUNT, "arn:aws:sso:::permissionSet/ps-1"),
        (ACCOUNT, "not-an-arn"),
    ] {
        validation(
            &mut model,
            "ListAccountAssignments",
            &json!({"InstanceArn": INSTANCE, "AccountId": account, "PermissionSetArn": permission_set}),
        );
    }
    for missing in ["AccountId", "PermissionSetArn", "InstanceArn"] {
        let mut input =
            json!({"InstanceArn": INSTANCE, "AccountId": ACCOUNT, "PermissionSetArn": PS1});
        input.as_object_mut().expect("object").remove(missing);
        validation(&mut model, "ListAccountAssignments", &input);
    }
}

#[test]
fn an_uppercase_request_id_is_a_validation_error_not_not_found() {
    let mut model = model();
    let answer = ok(model.call("CreateAccountAssignment", &create_input(ACCOUNT), 0.0));
    let id = answer["AccountAssignmentCreationStatus"]["RequestId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(id, id.to_ascii_lowercase());
    validation(
        &mut model,
        "DescribeAccountAssignmentCreationStatus",
        &json!({"InstanceArn": INSTANCE, "AccountAssignmentCreationRequestId": id.to_ascii_uppercase()}),
    );
    validation(
        &mut model,
        "DescribeAccountAssignmentDeletionStatus",
        &json!({"InstanceArn": INSTANCE, "AccountAssignmentDeletionRequestId": "ABCDEF00-0000-4000-8000-000000000000"}),
    );
    // Lowercase and unknown: not found.
    let e = err(model.call(
        "DescribeAccountAssignmentDeletionStatus",
        &json!({"InstanceArn": INSTANCE, "AccountAssignmentDeletionRequestId": "abcdef00-0000-4000-8000-000000000000"}),
        0.0,
    ));
    assert_eq!(e.code, "ResourceNotFoundException");
}

#[test]
fn validation_comes_before_looking_things_up() {
    let mut model = model();
    let unknown_instance = "arn:aws:sso:::instance/ssoins-ffffffffffffffff";
    let mut input = create_input("12345");
    input["InstanceArn"] = json!(unknown_instance);
    validation(&mut model, "CreateAccountAssignment", &input);
    validation(
        &mut model,
        "DescribeAccountAssignmentCreationStatus",
        &json!({"InstanceArn": unknown_instance, "AccountAssignmentCreationRequestId": "NOT-A-UUID"}),
    );
    validation(
        &mut model,
        "ListAccountAssignmentCreationStatus",
        &json!({"InstanceArn": unknown_instance, "MaxResults": 0}),
    );
}

#[test]
fn create_permission_set_checks_every_member() {
    let mut model = model();
    let valid = json!({"InstanceArn": INSTANCE, "Name": "Read.Only+Ops@team", "Description": "Auditors, read-only",
                       "SessionDuration": "PT2H", "RelayState": "https://console.aws.amazon.com/s3/",
                       "Tags": [{"Key": "team", "Value": "ops"}, {"Key": "cost centre", "Value": ""}]});
    let answer = ok(model.call("CreatePermissionSet", &valid, 0.0));
    let set = &answer["PermissionSet"];
    assert_eq!(set["Description"], "Auditors, read-only");
    assert_eq!(set["SessionDuration"], "PT2H");
    assert_eq!(set["RelayState"], "https://console.aws.amazon.com/s3/");

    let with = |field: &str, value: Value| {
        let mut input = valid.clone();
        input[field] = value;
        input
    };
    let bad = [
        with("Name", json!("has space")),
        with("Name", json!("x".repeat(33))),
        with("Description", json!("")),
        with("Description", json!("x".repeat(701))),
        with("Description", json!("bell\u{7}")),
        with("SessionDuration", json!("")),
        with("SessionDuration", json!("2 hours")),
        with("SessionDuration", json!("P")),
        with("SessionDuration", json!("PT")),
        with("RelayState", json!("")),
        with("RelayState", json!("x".repeat(241))),
        with("RelayState", json!("tab\there")),
        with("Tags", json!(vec![json!({"Key": "k", "Value": "v"}); 76])),
        with("Tags", json!([{"Key": "k"}])),
        with("Tags", json!([{"Value": "v"}])),
        with("Tags", json!([{"Key": "", "Value": "v"}])),
        with("Tags", json!([{"Key": "k!", "Value": "v"}])),
        with("Tags", json!([{"Key": "k", "Value": "v".repeat(257)}])),
    ];
    for input in &bad {
        validation(&mut model, "CreatePermissionSet", input);
    }
    for duration in [
        "PT1H",
        "PT12H",
        "P1D",
        "PT30M",
        "-PT1H",
        "PT1.5S",
        "P1Y2M3DT4H5M6S",
    ] {
        ok(model.call(
            "CreatePermissionSet",
            &with("SessionDuration", json!(duration)),
            0.0,
        ));
    }
    for key in ["équipe", "a:b/c=d+e-f@g_h.i", "チーム"] {
        ok(model.call(
            "CreatePermissionSet",
            &with("Tags", json!([{"Key": key, "Value": key}])),
            0.0,
        ));
    }
}

#[test]
fn list_instances_checks_its_region_scope() {
    let mut model = model();
    for scope in ["CURRENT_REGION", "ALL_REGIONS"] {
        ok(model.call("ListInstances", &json!({"RegionScope": scope}), 0.0));
    }
    validation(
        &mut model,
        "ListInstances",
        &json!({"RegionScope": "EVERYWHERE"}),
    );
}
