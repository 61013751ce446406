//! The Service Catalog side of the model, driven directly with inputs shaped like the
//! real API's requests. Time is passed in, so every assertion is exact.

use idc_sim::model::ApiError;
use idc_sim::{
    Knobs, Model, PortfolioPrincipal, PortfolioPrincipalType, PortfolioSeed, SeedDocument,
};
use serde_json::{Value, json};

const ASSOCIATE: &str = "AssociatePrincipalWithPortfolio";
const DISASSOCIATE: &str = "DisassociatePrincipalFromPortfolio";
const LIST: &str = "ListPrincipalsForPortfolio";

const PORTFOLIO: &str = "port-abcdefghijklm";
const OTHER_PORTFOLIO: &str = "port-nopqrstuvwxyz";
const ROLE: &str = "arn:aws:iam::111122223333:role/Ops";
const PATTERN: &str = "arn:aws:iam:::role/Team*";
const SEEDED: &str = "arn:aws:iam::111122223333:role/Seeded";

use PortfolioPrincipalType::{Iam, IamPattern};

/// No rate limit in the way; a list lag of `lag` seconds.
fn knobs(lag: f64) -> Knobs {
    Knobs {
        list_lag_seconds: lag,
        rate_per_second: 1e9,
        rate_burst: 1e9,
        catalog_rate_per_second: 1e9,
        catalog_rate_burst: 1e9,
        ..Knobs::default()
    }
}

fn model(knobs: Knobs) -> Model {
    let mut model = Model::new(knobs, 7);
    model.seed_portfolios(vec![
        PortfolioSeed {
            portfolio_id: PORTFOLIO.to_owned(),
            principals: vec![PortfolioPrincipal::new(SEEDED, Iam)],
        },
        PortfolioSeed {
            portfolio_id: OTHER_PORTFOLIO.to_owned(),
            principals: Vec::new(),
        },
    ]);
    model
}

fn principal(arn: &str, principal_type: &str) -> Value {
    json!({"PortfolioId": PORTFOLIO, "PrincipalARN": arn, "PrincipalType": principal_type})
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

/// Every page of the listing at `now`, as (ARN, type) pairs.
fn listed(model: &mut Model, portfolio: &str, now: f64) -> Vec<(String, String)> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let mut input = json!({"PortfolioId": portfolio});
        if let Some(token) = &token {
            input["PageToken"] = json!(token);
        }
        let page = ok(model.catalog_call(LIST, &input, now));
        for p in page["Principals"].as_array().expect("Principals") {
            all.push((
                p["PrincipalARN"].as_str().expect("arn").to_owned(),
                p["PrincipalType"].as_str().expect("type").to_owned(),
            ));
        }
        match page.get("NextPageToken") {
            Some(next) => token = Some(next.as_str().expect("token").to_owned()),
            None => return all,
        }
    }
    panic!("more than 100 pages");
}

fn pair(arn: &str, principal_type: &str) -> (String, String) {
    (arn.to_owned(), principal_type.to_owned())
}

fn truth(model: &Model, portfolio: &str) -> Vec<PortfolioPrincipal> {
    model.portfolio_principals(portfolio).expect("portfolio")
}

// ---------------------------------------------------------------------------------
// Writes and the lagging list

#[test]
fn an_associate_acts_at_once_and_is_listed_only_after_the_lag() {
    let mut model = model(knobs(3.0));
    assert_eq!(
        ok(model.catalog_call(ASSOCIATE, &principal(ROLE, "IAM"), 10.0)),
        json!({})
    );
    assert_eq!(
        truth(&model, PORTFOLIO),
        vec![
            PortfolioPrincipal::new(ROLE, Iam),
            PortfolioPrincipal::new(SEEDED, Iam)
        ]
    );
    for now in [10.0, 11.0, 12.999] {
        assert_eq!(
            listed(&mut model, PORTFOLIO, now),
            vec![pair(SEEDED, "IAM")],
            "at {now}"
        );
    }
    assert_eq!(
        listed(&mut model, PORTFOLIO, 13.0),
        vec![pair(ROLE, "IAM"), pair(SEEDED, "IAM")]
    );
}

#[test]
fn a_disassociate_acts_at_once_and_leaves_the_list_only_after_the_lag() {
    let mut model = model(knobs(2.0));
    let seeded = principal(SEEDED, "IAM");
    assert_eq!(
        ok(model.catalog_call(DISASSOCIATE, &seeded, 5.0)),
        json!({})
    );
    assert!(truth(&model, PORTFOLIO).is_empty());
    // A second disassociate sees the true state, not the list.
    assert_eq!(
        err(model.catalog_call(DISASSOCIATE, &seeded, 5.5)).code,
        "ResourceNotFoundException"
    );
    assert_eq!(
        listed(&mut model, PORTFOLIO, 6.999),
        vec![pair(SEEDED, "IAM")]
    );
    assert!(listed(&mut model, PORTFOLIO, 7.0).is_empty());
}

#[test]
fn changes_are_listed_in_call_order_each_after_its_own_lag() {
    let mut model = model(knobs(1.0));
    ok(model.catalog_call(ASSOCIATE, &principal(ROLE, "IAM"), 0.0));
    ok(model.catalog_call(ASSOCIATE, &principal(PATTERN, "IAM_PATTERN"), 0.5));
    ok(model.catalog_call(DISASSOCIATE, &principal(ROLE, "IAM"), 0.75));
    assert_eq!(
        listed(&mut model, PORTFOLIO, 1.0),
        vec![pair(ROLE, "IAM"), pair(SEEDED, "IAM")]
    );
    assert_eq!(
        listed(&mut model, PORTFOLIO, 1.5),
        vec![
            pair(ROLE, "IAM"),
            pair(SEEDED, "IAM"),
            pair(PATTERN, "IAM_PATTERN")
        ]
    );
    assert_eq!(
        listed(&mut model, PORTFOLIO, 1.75),
        vec![pair(SEEDED, "IAM"), pair(PATTERN, "IAM_PATTERN")]
    );
}

#[test]
fn no_lag_lists_a_change_at_once() {
    let mut model = model(knobs(0.0));
    ok(model.catalog_call(ASSOCIATE, &principal(ROLE, "IAM"), 4.0));
    assert_eq!(
        listed(&mut model, PORTFOLIO, 4.0),
        vec![pair(ROLE, "IAM"), pair(SEEDED, "IAM")]
    );
}

#[test]
fn associating_again_succeeds_and_changes_nothing() {
    let mut model = model(knobs(0.0));
    for now in [0.0, 1.0, 2.0] {
        assert_eq!(
            ok(model.catalog_call(ASSOCIATE, &principal(ROLE, "IAM"), now)),
            json!({})
        );
    }
    assert_eq!(
        ok(model.catalog_call(ASSOCIATE, &principal(SEEDED, "IAM"), 3.0)),
        json!({})
    );
    assert_eq!(
        listed(&mut model, PORTFOLIO, 3.0),
        vec![pair(ROLE, "IAM"), pair(SEEDED, "IAM")]
    );
}

#[test]
fn the_same_arn_under_each_type_is_two_principals() {
    let mut model = model(knobs(0.0));
    let arn = "arn:aws:iam:::role/Ops";
    ok(model.catalog_call(ASSOCIATE, &principal(arn, "IAM_PATTERN"), 0.0));
    assert_eq!(
        truth(&model, PORTFOLIO),
        vec![
            PortfolioPrincipal::new(SEEDED, Iam),
            PortfolioPrincipal::new(arn, IamPattern)
        ]
    );
}

// ---------------------------------------------------------------------------------
// Disassociate: the (ARN, type) key and the default type

#[test]
fn disassociate_with_the_default_type_of_a_pattern_is_not_found() {
    let mut model = model(knobs(0.0));
    ok(model.catalog_call(ASSOCIATE, &principal(PATTERN, "IAM_PATTERN"), 0.0));

    // The trap: PrincipalType left out means IAM.
    let without_type = json!({"PortfolioId": PORTFOLIO, "PrincipalARN": PATTERN});
    let e = err(model.catalog_call(DISASSOCIATE, &without_type, 1.0));
    assert_eq!((e.status, e.code), (400, "ResourceNotFoundException"));
    let e = err(model.catalog_call(DISASSOCIATE, &principal(PATTERN, "IAM"), 1.0));
    assert_eq!(e.code, "ResourceNotFoundException");
    assert!(
        truth(&model, PORTFOLIO).contains(&PortfolioPrincipal::new(PATTERN, IamPattern)),
        "the pattern was removed by a wrong-type call"
    );

    ok(model.catalog_call(DISASSOCIATE, &principal(PATTERN, "IAM_PATTERN"), 2.0));
    assert_eq!(
        truth(&model, PORTFOLIO),
        vec![PortfolioPrincipal::new(SEEDED, Iam)]
    );
}

#[test]
fn disassociate_defaults_to_iam() {
    let mut model = model(knobs(0.0));
    let without_type = json!({"PortfolioId": PORTFOLIO, "PrincipalARN": SEEDED});
    assert_eq!(
        ok(model.catalog_call(DISASSOCIATE, &without_type, 0.0)),
        json!({})
    );
    assert!(truth(&model, PORTFOLIO).is_empty());
}

#[test]
fn disassociate_of_a_principal_never_associated_is_not_found() {
    let mut model = model(knobs(0.0));
    let e = err(model.catalog_call(DISASSOCIATE, &principal(ROLE, "IAM"), 0.0));
    assert_eq!(e.code, "ResourceNotFoundException");
    assert_eq!(model.counters.catalog_not_found, 1);
}

#[test]
fn disassociate_does_not_check_the_arn_shape() {
    // A principal seeded under the type its shape does not fit (associated before AWS
    // checked shapes) can still be removed with the type it was associated under.
    let mut model = model(knobs(0.0));
    let arn = "arn:aws:iam::111122223333:role/Legacy*";
    model.seed_portfolios(vec![PortfolioSeed {
        portfolio_id: PORTFOLIO.to_owned(),
        principals: vec![PortfolioPrincipal::new(arn, IamPattern)],
    }]);
    assert_eq!(
        err(model.catalog_call(DISASSOCIATE, &principal(arn, "IAM"), 0.0)).code,
        "ResourceNotFoundException"
    );
    ok(model.catalog_call(DISASSOCIATE, &principal(arn, "IAM_PATTERN"), 0.0));
}

// ---------------------------------------------------------------------------------
// Unknown portfolios, the pattern limit, validation

#[test]
fn an_unknown_portfolio_is_not_found_on_every_call() {
    let mut model = model(knobs(0.0));
    let unknown = "port-doesnotexist1";
    let calls = [
        (
            ASSOCIATE,
            json!({"PortfolioId": unknown, "PrincipalARN": ROLE, "PrincipalType": "IAM"}),
        ),
        (
            DISASSOCIATE,
            json!({"PortfolioId": unknown, "PrincipalARN": ROLE, "PrincipalType": "IAM"}),
        ),
        (LIST, json!({"PortfolioId": unknown})),
    ];
    for (operation, input) in calls {
        let e = err(model.catalog_call(operation, &input, 0.0));
        assert_eq!(
            (e.status, e.code),
            (400, "ResourceNotFoundException"),
            "{operation}"
        );
        assert!(e.message.contains(unknown), "{}", e.message);
    }
    assert_eq!(model.portfolio_principals(unknown), None);
    assert_eq!(model.counters.catalog_not_found, 3);
}

fn pattern(n: usize) -> String {
    format!("arn:aws:iam:::role/team-{n}/*")
}

#[test]
fn at_most_ten_patterns_per_portfolio() {
    let mut model = model(knobs(0.0));
    for n in 0..10 {
        ok(model.catalog_call(ASSOCIATE, &principal(&pattern(n), "IAM_PATTERN"), 0.0));
    }
    let e = err(model.catalog_call(ASSOCIATE, &principal(&pattern(10), "IAM_PATTERN"), 0.0));
    assert_eq!((e.status, e.code), (400, "LimitExceededException"));
    assert_eq!(model.counters.catalog_limit_exceeded, 1);

    // Not a new pattern: idempotent. IAM principals are not limited.
    ok(model.catalog_call(ASSOCIATE, &principal(&pattern(9), "IAM_PATTERN"), 0.0));
    for n in 0..12 {
        let arn = format!("arn:aws:iam::111122223333:role/r{n}");
        ok(model.catalog_call(ASSOCIATE, &principal(&arn, "IAM"), 0.0));
    }
    // The other portfolio has its own ten.
    let mut other = principal(&pattern(10), "IAM_PATTERN");
    other["PortfolioId"] = json!(OTHER_PORTFOLIO);
    ok(model.catalog_call(ASSOCIATE, &other, 0.0));

    // Room again once one is removed.
    ok(model.catalog_call(DISASSOCIATE, &principal(&pattern(0), "IAM_PATTERN"), 1.0));
    ok(model.catalog_call(ASSOCIATE, &principal(&pattern(10), "IAM_PATTERN"), 1.0));
    let patterns = truth(&model, PORTFOLIO)
        .iter()
        .filter(|p| p.principal_type == IamPattern)
        .count();
    assert_eq!(patterns, 10);
}

#[test]
fn the_pattern_limit_is_a_knob() {
    let mut model = model(Knobs {
        catalog_max_pattern_principals: 2,
        ..knobs(0.0)
    });
    ok(model.catalog_call(ASSOCIATE, &principal(&pattern(0), "IAM_PATTERN"), 0.0));
    ok(model.catalog_call(ASSOCIATE, &principal(&pattern(1), "IAM_PATTERN"), 0.0));
    assert_eq!(
        err(model.catalog_call(ASSOCIATE, &principal(&pattern(2), "IAM_PATTERN"), 0.0)).code,
        "LimitExceededException"
    );
}

#[test]
fn associate_accepts_the_shapes_of_the_api_reference() {
    let mut model = model(knobs(0.0));
    let accepted = [
        ("arn:aws:iam::111122223333:role/Ops", "IAM"),
        ("arn:aws:iam::111122223333:user/alice", "IAM"),
        ("arn:aws:iam::111122223333:group/admins", "IAM"),
        (
            "arn:aws:iam::111122223333:role/service-role/path/Ops",
            "IAM",
        ),
        ("arn:aws-us-gov:iam::111122223333:role/Ops", "IAM"),
        ("arn:aws-iso-f:iam::111122223333:role/Ops", "IAM"),
        ("arn:aws:iam:::role/ResourceName", "IAM_PATTERN"),
        (
            "arn:aws:iam:::role/resource-path/ResourceName",
            "IAM_PATTERN",
        ),
        ("arn:aws:iam:::role/ResourceName_*", "IAM_PATTERN"),
        ("arn:aws:iam:::role/*/ResourceName_?", "IAM_PATTERN"),
        ("arn:aws:iam:::user/*", "IAM_PATTERN"),
        ("arn:aws-cn:iam:::group/Dev?", "IAM_PATTERN"),
    ];
    for (arn, principal_type) in accepted {
        let mut model_input = principal(arn, principal_type);
        model_input["AcceptLanguage"] = json!("jp");
        assert_eq!(
            ok(model.catalog_call(ASSOCIATE, &model_input, 0.0)),
            json!({}),
            "{arn} as {principal_type}"
        );
    }
}

#[test]
fn associate_refuses_an_arn_whose_shape_does_not_fit_its_type() {
    let mut model = model(knobs(0.0));
    let refused = [
        // IAM needs the account id, a user, group or role, and no wildcard.
        ("arn:aws:iam:::role/Ops", "IAM"),
        ("arn:aws:iam::111122223333:role/Team*", "IAM"),
        ("arn:aws:iam::111122223333:role/Team?", "IAM"),
        ("arn:aws:iam::111122223333:policy/Ops", "IAM"),
        ("arn:aws:iam::111122223333:root", "IAM"),
        ("arn:aws:iam::11112222333:role/Ops", "IAM"),
        ("arn:aws:sts::111122223333:assumed-role/Ops/session", "IAM"),
        ("Ops", "IAM"),
        // IAM_PATTERN has no account id, a concrete partition and resource type.
        ("arn:aws:iam::111122223333:role/Team*", "IAM_PATTERN"),
        ("arn:aws:iam:::*/ResourceName", "IAM_PATTERN"),
        ("arn:aws:iam:::ro*/ResourceName", "IAM_PATTERN"),
        ("arn:*:iam:::role/Team", "IAM_PATTERN"),
        ("arn:aws:*:::role/Team", "IAM_PATTERN"),
        ("arn:aws:iam:::role/", "IAM_PATTERN"),
        ("arn:aws:iam:::role/Team Ops", "IAM_PATTERN"),
    ];
    for (arn, principal_type) in refused {
        let e = err(model.catalog_call(ASSOCIATE, &principal(arn, principal_type), 0.0));
        assert_eq!(
            (e.status, e.code),
            (400, "InvalidParametersException"),
            "{arn} as {principal_type}"
        );
    }
    assert_eq!(
        truth(&model, PORTFOLIO),
        vec![PortfolioPrincipal::new(SEEDED, Iam)]
    );
    assert_eq!(model.counters.catalog_invalid_parameters, 15);
}

#[test]
fn model_constraints_are_enforced_on_every_call() {
    let mut model = model(knobs(0.0));
    let long_arn = format!("arn:aws:iam::111122223333:role/{}", "a".repeat(1000));
    let mut cases: Vec<(&str, Value)> = Vec::new();
    for operation in [ASSOCIATE, DISASSOCIATE] {
        let with = |field: &str, value: Value| {
            let mut input = principal(ROLE, "IAM");
            input[field] = value;
            input
        };
        let without = |field: &str| {
            let mut input = principal(ROLE, "IAM");
            input.as_object_mut().expect("object").remove(field);
            input
        };
        cases.extend([
            (operation, without("PortfolioId")),
            (operation, without("PrincipalARN")),
            (operation, with("PortfolioId", json!(""))),
            (operation, with("PortfolioId", json!("a".repeat(101)))),
            (operation, with("PortfolioId", json!("port-abc!"))),
            (operation, with("PrincipalARN", json!(""))),
            (operation, with("PrincipalARN", json!(long_arn))),
            (operation, with("PrincipalType", json!("ROLE"))),
            (operation, with("AcceptLanguage", json!("x".repeat(101)))),
        ]);
    }
    let mut no_type = principal(ROLE, "IAM");
    no_type
        .as_object_mut()
        .expect("object")
        .remove("PrincipalType");
    cases.push((ASSOCIATE, no_type));
    let list = |extra: Value| {
        let mut input = json!({"PortfolioId": PORTFOLIO});
        if let (Value::Object(input), Value::Object(extra)) = (&mut input, extra) {
            input.extend(extra);
        }
        input
    };
    cases.extend([
        (LIST, json!({})),
        (LIST, json!({"PortfolioId": ""})),
        (LIST, json!({"PortfolioId": "port abc"})),
        (LIST, list(json!({"PageSize": 21}))),
        (LIST, list(json!({"PageSize": -1}))),
        (LIST, list(json!({"PageToken": "x".repeat(2025)}))),
        (LIST, list(json!({"PageToken": "\u{1}"}))),
        (LIST, list(json!({"PageToken": "not-a-token"}))),
        (LIST, list(json!({"AcceptLanguage": "x".repeat(101)}))),
    ]);
    for (operation, input) in &cases {
        let e = err(model.catalog_call(operation, input, 0.0));
        assert_eq!(
            (e.status, e.code),
            (400, "InvalidParametersException"),
            "{operation} {input}"
        );
    }
    assert_eq!(
        model.counters.catalog_invalid_parameters,
        cases.len() as u64
    );
    assert_eq!(
        truth(&model, PORTFOLIO),
        vec![PortfolioPrincipal::new(SEEDED, Iam)]
    );

    // Wrong JSON types are not parameters at all.
    for input in [
        json!({"PortfolioId": 5}),
        list(json!({"PageSize": "5"})),
        list(json!({"PageSize": 2.5})),
    ] {
        let e = err(model.catalog_call(LIST, &input, 0.0));
        assert_eq!(e.code, "SerializationException", "{input}");
    }
}

// ---------------------------------------------------------------------------------
// Paging

fn seeded_with(count: usize) -> Model {
    let mut model = model(knobs(0.0));
    model.seed_portfolios(vec![PortfolioSeed {
        portfolio_id: OTHER_PORTFOLIO.to_owned(),
        principals: (0..count)
            .map(|n| {
                PortfolioPrincipal::new(format!("arn:aws:iam::111122223333:role/r{n:03}"), Iam)
            })
            .collect(),
    }]);
    model
}

fn page(model: &mut Model, size: Option<i64>, token: Option<&str>) -> Value {
    let mut input = json!({"PortfolioId": OTHER_PORTFOLIO});
    if let Some(size) = size {
        input["PageSize"] = json!(size);
    }
    if let Some(token) = token {
        input["PageToken"] = json!(token);
    }
    ok(model.catalog_call(LIST, &input, 0.0))
}

fn arns(page: &Value) -> Vec<String> {
    page["Principals"]
        .as_array()
        .expect("Principals")
        .iter()
        .map(|p| p["PrincipalARN"].as_str().expect("arn").to_owned())
        .collect()
}

fn role(n: usize) -> String {
    format!("arn:aws:iam::111122223333:role/r{n:03}")
}

#[test]
fn pages_hold_twenty_by_default_and_the_last_has_no_token() {
    let mut model = seeded_with(45);
    let first = page(&mut model, None, None);
    assert_eq!(arns(&first), (0..20).map(role).collect::<Vec<_>>());
    let token = first["NextPageToken"].as_str().expect("token").to_owned();
    let second = page(&mut model, None, Some(&token));
    assert_eq!(arns(&second), (20..40).map(role).collect::<Vec<_>>());
    let token = second["NextPageToken"].as_str().expect("token").to_owned();
    let third = page(&mut model, None, Some(&token));
    assert_eq!(arns(&third), (40..45).map(role).collect::<Vec<_>>());
    assert!(third.get("NextPageToken").is_none(), "{third}");

    // Zero is the default; an exact multiple ends without a token.
    assert_eq!(arns(&page(&mut model, Some(0), None)).len(), 20);
    let mut model = seeded_with(20);
    let only = page(&mut model, Some(20), None);
    assert_eq!(arns(&only).len(), 20);
    assert!(only.get("NextPageToken").is_none());
}

#[test]
fn page_size_is_honoured() {
    let mut model = seeded_with(10);
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let answer = page(&mut model, Some(3), token.as_deref());
        let got = arns(&answer);
        assert!(got.len() <= 3);
        seen.extend(got);
        pages += 1;
        match answer.get("NextPageToken").and_then(Value::as_str) {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, (0..10).map(role).collect::<Vec<_>>());
}

#[test]
fn a_page_token_continues_after_the_last_principal_shown_whatever_changed() {
    let mut model = seeded_with(6);
    let first = page(&mut model, Some(3), None);
    let token = first["NextPageToken"].as_str().expect("token").to_owned();
    // The last principal shown and an earlier one leave; a later one arrives.
    for (operation, n) in [(DISASSOCIATE, 2), (DISASSOCIATE, 0), (ASSOCIATE, 7)] {
        let input = json!({"PortfolioId": OTHER_PORTFOLIO, "PrincipalARN": role(n), "PrincipalType": "IAM"});
        ok(model.catalog_call(operation, &input, 0.0));
    }
    let rest = page(&mut model, Some(20), Some(&token));
    assert_eq!(arns(&rest), vec![role(3), role(4), role(5), role(7)]);
}

#[test]
fn a_page_token_is_refused_elsewhere_or_when_made_up() {
    let mut model = seeded_with(25);
    let first = page(&mut model, None, None);
    let token = first["NextPageToken"].as_str().expect("token").to_owned();
    let elsewhere = json!({"PortfolioId": PORTFOLIO, "PageToken": token});
    let e = err(model.catalog_call(LIST, &elsewhere, 0.0));
    assert_eq!(e.code, "InvalidParametersException");
    let mut altered = token.clone();
    altered.replace_range(0..1, if token.starts_with('0') { "1" } else { "0" });
    for bad in [altered.as_str(), "", "AAAA"] {
        let input = json!({"PortfolioId": OTHER_PORTFOLIO, "PageToken": bad});
        let e = err(model.catalog_call(LIST, &input, 0.0));
        assert_eq!(e.code, "InvalidParametersException", "token {bad:?}");
    }
    // The real token still works, more than once.
    for _ in 0..2 {
        assert_eq!(arns(&page(&mut model, None, Some(&token))).len(), 5);
    }
}

// ---------------------------------------------------------------------------------
// Rate, seeding, error bodies

#[test]
fn service_catalog_has_its_own_rate() {
    let mut model = model(Knobs {
        catalog_rate_per_second: 1.0,
        catalog_rate_burst: 2.0,
        rate_per_second: 1.0,
        rate_burst: 1.0,
        ..knobs(0.0)
    });
    let list = json!({"PortfolioId": PORTFOLIO});
    ok(model.catalog_call(LIST, &list, 0.0));
    ok(model.catalog_call(LIST, &list, 0.0));
    let e = err(model.catalog_call(LIST, &list, 0.0));
    assert_eq!(
        (e.status, e.code, e.message.as_str()),
        (400, "ThrottlingException", "Rate exceeded")
    );
    // Identity Center's bucket is untouched by Service Catalog calls, and the reverse.
    ok(model.call("ListInstances", &json!({}), 0.0));
    assert_eq!(
        err(model.call("ListInstances", &json!({}), 0.0)).code,
        "ThrottlingException"
    );
    ok(model.catalog_call(LIST, &list, 1.0));
    let e = err(model.catalog_call(ASSOCIATE, &principal(ROLE, "IAM"), 1.0));
    assert_eq!(e.code, "ThrottlingException");
    // A throttled call changed nothing.
    assert_eq!(
        truth(&model, PORTFOLIO),
        vec![PortfolioPrincipal::new(SEEDED, Iam)]
    );
    assert_eq!(model.counters.catalog_throttled, 2);
    assert_eq!(model.counters.throttled_rate, 1);
    assert_eq!(model.counters.calls.get(LIST), Some(&4));
    assert_eq!(model.counters.calls.get(ASSOCIATE), Some(&1));
}

#[test]
fn error_bodies_have_the_service_catalog_shape() {
    let mut model = model(Knobs {
        catalog_rate_burst: 1.0,
        catalog_rate_per_second: 0.0,
        ..knobs(0.0)
    });
    let e = err(model.catalog_call(LIST, &json!({"PortfolioId": "port-unknown"}), 0.0));
    assert_eq!(
        e.catalog_body(),
        json!({"__type": "com.amazonaws.servicecatalog#ResourceNotFoundException", "Message": e.message})
    );
    let e = err(model.catalog_call(LIST, &json!({"PortfolioId": PORTFOLIO}), 0.0));
    assert_eq!(
        e.catalog_body(),
        json!({"__type": "com.amazon.coral.availability#ThrottlingException", "message": "Rate exceeded"})
    );
}

#[test]
fn an_unknown_operation_is_refused() {
    let mut model = model(knobs(0.0));
    let e = err(model.catalog_call("CreatePortfolio", &json!({}), 0.0));
    assert_eq!(e.code, "UnknownOperationException");
}

#[test]
fn a_seed_document_holds_both_services() {
    let document: SeedDocument = serde_json::from_value(json!({
        "instances": ["arn:aws:sso:::instance/ssoins-722326ba6a8a6d40"],
        "portfolios": [
            {"portfolioId": PORTFOLIO, "principals": [
                {"principalArn": ROLE, "principalType": "IAM"},
                {"principalArn": PATTERN, "principalType": "IAM_PATTERN"},
            ]},
            {"portfolioId": OTHER_PORTFOLIO},
        ],
    }))
    .expect("seed document");
    assert_eq!(document.seed.instances.len(), 1);
    assert_eq!(document.portfolios.len(), 2);
    let mut model = Model::new(knobs(5.0), 1);
    model.seed_document(document);
    // Seeded principals are listed at once, lag or not.
    assert_eq!(
        listed(&mut model, PORTFOLIO, 0.0),
        vec![pair(ROLE, "IAM"), pair(PATTERN, "IAM_PATTERN")]
    );
    assert!(listed(&mut model, OTHER_PORTFOLIO, 0.0).is_empty());
    assert_eq!(
        json!(model.portfolios()),
        json!({
            PORTFOLIO: [
                {"principalArn": ROLE, "principalType": "IAM"},
                {"principalArn": PATTERN, "principalType": "IAM_PATTERN"},
            ],
            OTHER_PORTFOLIO: [],
        })
    );

    for bad in [
        json!({"portfolio": []}),
        json!({"instance": []}),
        json!({"portfolios": [{"portfolioId": PORTFOLIO, "principals": [{"principalArn": ROLE, "principalType": "ROLE"}]}]}),
        json!({"portfolios": [{"id": PORTFOLIO}]}),
        json!([]),
    ] {
        assert!(
            serde_json::from_value::<SeedDocument>(bad.clone()).is_err(),
            "{bad} was accepted"
        );
    }
}
