//! The Service Catalog calls over HTTP, driven by the real `aws-sdk-servicecatalog`
//! client on the same port as the Identity Center calls.
//!
//! Time is frozen (`timeScale` 0) and moved with `POST /_sim/advance`, so the list lag
//! is checked at exact simulated instants, never by waiting.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_servicecatalog::Client;
use aws_sdk_servicecatalog::config::Credentials;
use aws_sdk_servicecatalog::config::http::HttpResponse;
use aws_sdk_servicecatalog::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_servicecatalog::operation::associate_principal_with_portfolio::AssociatePrincipalWithPortfolioError;
use aws_sdk_servicecatalog::types::PrincipalType;
use common::{admin, api};
use idc_sim::{Knobs, PortfolioPrincipal, PortfolioPrincipalType, PortfolioSeed, Simulator, start};
use serde_json::{Value, json};

const PORTFOLIO: &str = "port-abcdefghijklm";
const BIG_PORTFOLIO: &str = "port-bigbigbigbigbi";
const ROLE: &str = "arn:aws:iam::111122223333:role/Ops";
const PATTERN: &str = "arn:aws:iam:::role/Team*";

/// Frozen time, no rate limit in the way, a 5 s list lag.
fn frozen() -> Knobs {
    Knobs {
        time_scale: 0.0,
        list_lag_seconds: 5.0,
        catalog_rate_per_second: 1e9,
        catalog_rate_burst: 1e9,
        ..Knobs::default()
    }
}

fn role(n: usize) -> String {
    format!("arn:aws:iam::111122223333:role/r{n:03}")
}

async fn serve(knobs: Knobs) -> (Arc<Simulator>, SocketAddr) {
    let simulator = Simulator::new(knobs, 3);
    simulator.with_model(|model| {
        model.seed_portfolios(vec![
            PortfolioSeed {
                portfolio_id: PORTFOLIO.to_owned(),
                principals: Vec::new(),
            },
            PortfolioSeed {
                portfolio_id: BIG_PORTFOLIO.to_owned(),
                principals: (0..45)
                    .map(|n| PortfolioPrincipal::new(role(n), PortfolioPrincipalType::Iam))
                    .collect(),
            },
        ])
    });
    let address = start(Arc::clone(&simulator), 0)
        .await
        .expect("bind 127.0.0.1");
    assert!(address.ip().is_loopback());
    (simulator, address)
}

fn client_with(address: SocketAddr, retry: RetryConfig) -> Client {
    let config = aws_sdk_servicecatalog::Config::builder()
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
        .retry_config(retry)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(20))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// The client as the worker builds it: retries disabled.
fn client(address: SocketAddr) -> Client {
    client_with(address, RetryConfig::disabled())
}

async fn associate(
    client: &Client,
    portfolio: &str,
    arn: &str,
    principal_type: PrincipalType,
) -> Result<(), SdkError<AssociatePrincipalWithPortfolioError, HttpResponse>> {
    client
        .associate_principal_with_portfolio()
        .portfolio_id(portfolio)
        .principal_arn(arn)
        .principal_type(principal_type)
        .send()
        .await
        .map(|_| ())
}

/// Every page through the SDK's paginator, as (ARN, type) pairs.
async fn listed(client: &Client, portfolio: &str) -> Vec<(String, String)> {
    let pages: Vec<_> = client
        .list_principals_for_portfolio()
        .portfolio_id(portfolio)
        .into_paginator()
        .send()
        .collect()
        .await;
    pages
        .into_iter()
        .map(|page| page.expect("list page"))
        .flat_map(|page| {
            page.principals()
                .iter()
                .map(|p| {
                    (
                        p.principal_arn().expect("arn").to_owned(),
                        p.principal_type().expect("type").as_str().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn truth(address: SocketAddr, portfolio: &str) -> Value {
    let (status, body) = admin(address, "GET", &format!("/_sim/portfolios/{portfolio}"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["portfolioId"], portfolio);
    body["principals"].clone()
}

async fn advance(address: SocketAddr, seconds: f64) {
    let (status, body) = admin(
        address,
        "POST",
        "/_sim/advance",
        &json!({"seconds": seconds}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

fn pair(arn: &str, principal_type: &str) -> (String, String) {
    (arn.to_owned(), principal_type.to_owned())
}

// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_change_is_listed_only_after_the_lag() {
    let (_simulator, address) = serve(frozen()).await;
    let client = client(address);

    associate(&client, PORTFOLIO, ROLE, PrincipalType::Iam)
        .await
        .expect("associate");
    // True at once for the admin API, not yet listed.
    assert_eq!(
        truth(address, PORTFOLIO).await,
        json!([{"principalArn": ROLE, "principalType": "IAM"}])
    );
    assert!(listed(&client, PORTFOLIO).await.is_empty());
    advance(address, 4.5).await;
    assert!(listed(&client, PORTFOLIO).await.is_empty());
    advance(address, 0.5).await;
    assert_eq!(listed(&client, PORTFOLIO).await, vec![pair(ROLE, "IAM")]);

    client
        .disassociate_principal_from_portfolio()
        .portfolio_id(PORTFOLIO)
        .principal_arn(ROLE)
        .principal_type(PrincipalType::Iam)
        .send()
        .await
        .expect("disassociate");
    assert_eq!(truth(address, PORTFOLIO).await, json!([]));
    assert_eq!(listed(&client, PORTFOLIO).await, vec![pair(ROLE, "IAM")]);
    advance(address, 5.0).await;
    assert!(listed(&client, PORTFOLIO).await.is_empty());
}

#[tokio::test]
async fn pages_of_twenty_carry_more_than_twenty_principals() {
    let (_simulator, address) = serve(frozen()).await;
    let client = client(address);

    let first = client
        .list_principals_for_portfolio()
        .portfolio_id(BIG_PORTFOLIO)
        .send()
        .await
        .expect("first page");
    assert_eq!(first.principals().len(), 20);
    assert_eq!(
        first.principals()[0].principal_arn(),
        Some(role(0).as_str())
    );
    assert_eq!(
        first.principals()[0].principal_type(),
        Some(&PrincipalType::Iam)
    );
    let token = first.next_page_token().expect("a next page");

    let second = client
        .list_principals_for_portfolio()
        .portfolio_id(BIG_PORTFOLIO)
        .page_token(token)
        .page_size(7)
        .send()
        .await
        .expect("second page");
    let arns: Vec<&str> = second
        .principals()
        .iter()
        .filter_map(|p| p.principal_arn())
        .collect();
    assert_eq!(arns, (20..27).map(role).collect::<Vec<_>>());
    assert!(second.next_page_token().is_some());

    let all = listed(&client, BIG_PORTFOLIO).await;
    assert_eq!(
        all,
        (0..45).map(|n| pair(&role(n), "IAM")).collect::<Vec<_>>()
    );

    // Out of range, or a token that was never given.
    for size in [21, -1] {
        let e = client
            .list_principals_for_portfolio()
            .portfolio_id(BIG_PORTFOLIO)
            .page_size(size)
            .send()
            .await
            .expect_err("page size out of range");
        assert!(
            e.as_service_error()
                .is_some_and(|s| s.is_invalid_parameters_exception()),
            "{e:?}"
        );
    }
    let e = client
        .list_principals_for_portfolio()
        .portfolio_id(BIG_PORTFOLIO)
        .page_token("made-up")
        .send()
        .await
        .expect_err("made-up token");
    assert!(
        e.as_service_error()
            .is_some_and(|s| s.is_invalid_parameters_exception()),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_eleventh_pattern_exceeds_the_limit() {
    let (_simulator, address) = serve(frozen()).await;
    let client = client(address);
    for n in 0..10 {
        associate(
            &client,
            PORTFOLIO,
            &format!("arn:aws:iam:::role/team-{n}/*"),
            PrincipalType::IamPattern,
        )
        .await
        .expect("pattern within the limit");
    }
    let e = client
        .associate_principal_with_portfolio()
        .portfolio_id(PORTFOLIO)
        .principal_arn("arn:aws:iam:::role/team-10/*")
        .principal_type(PrincipalType::IamPattern)
        .send()
        .await
        .expect_err("limit");
    let service = e.as_service_error().expect("service error");
    assert!(service.is_limit_exceeded_exception(), "{e:?}");
    assert_eq!(service.code(), Some("LimitExceededException"));
    assert!(service.message().is_some_and(|m| !m.is_empty()));
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(
        truth(address, PORTFOLIO).await.as_array().map(Vec::len),
        Some(10)
    );
}

#[tokio::test]
async fn disassociating_a_pattern_with_the_default_type_is_not_found() {
    let (_simulator, address) = serve(frozen()).await;
    let client = client(address);
    associate(&client, PORTFOLIO, PATTERN, PrincipalType::IamPattern)
        .await
        .expect("associate pattern");

    // PrincipalType left out: IAM.
    let e = client
        .disassociate_principal_from_portfolio()
        .portfolio_id(PORTFOLIO)
        .principal_arn(PATTERN)
        .send()
        .await
        .expect_err("wrong type");
    let service = e.as_service_error().expect("service error");
    assert!(service.is_resource_not_found_exception(), "{e:?}");
    assert_eq!(service.code(), Some("ResourceNotFoundException"));
    assert_eq!(
        truth(address, PORTFOLIO).await,
        json!([{"principalArn": PATTERN, "principalType": "IAM_PATTERN"}])
    );

    client
        .disassociate_principal_from_portfolio()
        .portfolio_id(PORTFOLIO)
        .principal_arn(PATTERN)
        .principal_type(PrincipalType::IamPattern)
        .send()
        .await
        .expect("disassociate with the right type");
    assert_eq!(truth(address, PORTFOLIO).await, json!([]));
}

#[tokio::test]
async fn an_unknown_portfolio_is_not_found_on_each_call() {
    let (_simulator, address) = serve(frozen()).await;
    let client = client(address);
    let unknown = "port-unknownunknown";

    let e = associate(&client, unknown, ROLE, PrincipalType::Iam)
        .await
        .expect_err("associate");
    assert_eq!(e.code(), Some("ResourceNotFoundException"), "{e:?}");
    let e = client
        .disassociate_principal_from_portfolio()
        .portfolio_id(unknown)
        .principal_arn(ROLE)
        .send()
        .await
        .expect_err("disassociate");
    assert!(
        e.as_service_error()
            .is_some_and(|s| s.is_resource_not_found_exception()),
        "{e:?}"
    );
    let e = client
        .list_principals_for_portfolio()
        .portfolio_id(unknown)
        .send()
        .await
        .expect_err("list");
    assert!(
        e.as_service_error()
            .is_some_and(|s| s.is_resource_not_found_exception()),
        "{e:?}"
    );
    let (status, _) = admin(address, "GET", &format!("/_sim/portfolios/{unknown}"), "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_arn_that_does_not_fit_its_type_is_invalid() {
    let (_simulator, address) = serve(frozen()).await;
    let client = client(address);
    for (arn, principal_type) in [
        (PATTERN, PrincipalType::Iam),
        (ROLE, PrincipalType::IamPattern),
        ("arn:aws:iam:::*/Team", PrincipalType::IamPattern),
    ] {
        let e = client
            .associate_principal_with_portfolio()
            .portfolio_id(PORTFOLIO)
            .principal_arn(arn)
            .principal_type(principal_type.clone())
            .send()
            .await
            .expect_err("invalid");
        let service = e.as_service_error().expect("service error");
        assert!(service.is_invalid_parameters_exception(), "{arn}: {e:?}");
        assert_eq!(service.code(), Some("InvalidParametersException"));
    }
    assert_eq!(truth(address, PORTFOLIO).await, json!([]));
}

#[tokio::test]
async fn throttling_is_parsed_by_the_sdk_as_throttling_exception() {
    let (simulator, address) = serve(Knobs {
        catalog_rate_per_second: 0.0,
        catalog_rate_burst: 0.0,
        ..frozen()
    })
    .await;
    let e = client(address)
        .list_principals_for_portfolio()
        .portfolio_id(PORTFOLIO)
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(e.code(), Some("ThrottlingException"), "{e:?}");
    assert_eq!(e.message(), Some("Rate exceeded"));
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert!(matches!(e, SdkError::ServiceError(_)), "{e:?}");

    // The SDK's own retry classifier sees it as throttling: with standard retries it
    // tries again (three attempts in all), as it would not for a plain client error.
    let retrying = client_with(
        address,
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(5)),
    );
    let e = retrying
        .list_principals_for_portfolio()
        .portfolio_id(PORTFOLIO)
        .send()
        .await
        .expect_err("still throttled");
    assert_eq!(e.code(), Some("ThrottlingException"));
    let throttled = simulator.with_model(|m| m.counters.catalog_throttled);
    assert_eq!(throttled, 4);

    // The Identity Center rate is a separate bucket: its calls still pass.
    let answer = api(address, "SWBExternalService.ListInstances", "{}").await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // A client error is not retried. (The bucket refills only as simulated time passes.)
    simulator.set_knobs(frozen());
    simulator.advance(1.0);
    let e = retrying
        .list_principals_for_portfolio()
        .portfolio_id("port-unknownunknown")
        .send()
        .await
        .expect_err("not found");
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
    let calls = simulator.with_model(|m| m.counters.catalog_not_found);
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn error_bodies_are_awsjson_with_a_namespaced_type() {
    let (simulator, address) = serve(frozen()).await;
    let answer = api(
        address,
        "AWS242ServiceCatalogService.ListPrincipalsForPortfolio",
        r#"{"PortfolioId": "port-unknownunknown"}"#,
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.header("content-type"),
        Some("application/x-amz-json-1.1")
    );
    let body = answer.json();
    assert_eq!(
        body["__type"],
        "com.amazonaws.servicecatalog#ResourceNotFoundException"
    );
    assert!(body["Message"].as_str().is_some_and(|m| !m.is_empty()));

    simulator.set_knobs(Knobs {
        catalog_rate_burst: 0.0,
        ..frozen()
    });
    let answer = api(
        address,
        "AWS242ServiceCatalogService.ListPrincipalsForPortfolio",
        &json!({"PortfolioId": PORTFOLIO}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json(),
        json!({"__type": "com.amazon.coral.availability#ThrottlingException", "message": "Rate exceeded"})
    );
}

#[tokio::test]
async fn transport_faults_apply_to_service_catalog_calls() {
    let (simulator, address) = serve(Knobs {
        fault_http_500: 1.0,
        ..frozen()
    })
    .await;
    let client = client(address);
    let e = associate(&client, PORTFOLIO, ROLE, PrincipalType::Iam)
        .await
        .expect_err("500");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(truth(address, PORTFOLIO).await, json!([]));

    simulator.set_knobs(Knobs {
        fault_drop: 1.0,
        ..frozen()
    });
    for _ in 0..6 {
        let e = associate(&client, PORTFOLIO, ROLE, PrincipalType::Iam)
            .await
            .expect_err("dropped");
        assert!(matches!(e, SdkError::DispatchFailure(_)), "{e:?}");
    }
    // Drops after the call took effect associated the principal unseen.
    let took_effect = simulator.with_model(|m| {
        m.counters
            .calls
            .get("AssociatePrincipalWithPortfolio")
            .copied()
            .unwrap_or(0)
    });
    let expected = if took_effect > 0 {
        json!([{"principalArn": ROLE, "principalType": "IAM"}])
    } else {
        json!([])
    };
    assert_eq!(truth(address, PORTFOLIO).await, expected);
    let counters = simulator.with_model(|m| m.counters.clone());
    assert_eq!((counters.http_500, counters.dropped), (1, 6));
}

#[tokio::test]
async fn admin_api_seeds_portfolios_and_reports_their_principals() {
    let simulator = Simulator::new(frozen(), 9);
    let address = start(Arc::clone(&simulator), 0)
        .await
        .expect("bind 127.0.0.1");
    let seed = json!({
        "instances": ["arn:aws:sso:::instance/ssoins-722326ba6a8a6d40"],
        "portfolios": [{"portfolioId": PORTFOLIO, "principals": [
            {"principalArn": PATTERN, "principalType": "IAM_PATTERN"},
        ]}],
    });
    let (status, body) = admin(address, "POST", "/_sim/seed", &seed.to_string()).await;
    assert_eq!((status, body), (200, json!({"ok": true})));
    for bad in [
        json!({"portfolios": [{"portfolioId": PORTFOLIO, "principals": [{"principalArn": ROLE}]}]}),
        json!({"portfolios": {}}),
        json!({"portfolioz": []}),
    ] {
        let (status, body) = admin(address, "POST", "/_sim/seed", &bad.to_string()).await;
        assert_eq!(status, 400, "{bad} answered {body}");
    }

    let client = client(address);
    // Seeded principals are listed at once.
    assert_eq!(
        listed(&client, PORTFOLIO).await,
        vec![pair(PATTERN, "IAM_PATTERN")]
    );
    associate(&client, PORTFOLIO, ROLE, PrincipalType::Iam)
        .await
        .expect("associate");
    let expected = json!([
        {"principalArn": ROLE, "principalType": "IAM"},
        {"principalArn": PATTERN, "principalType": "IAM_PATTERN"},
    ]);
    assert_eq!(truth(address, PORTFOLIO).await, expected);
    let (status, state) = admin(address, "GET", "/_sim/state", "").await;
    assert_eq!(status, 200);
    assert_eq!(state["portfolios"], json!({PORTFOLIO: expected}));
    assert_eq!(
        state["counters"]["calls"]["AssociatePrincipalWithPortfolio"],
        1
    );
    assert_eq!(state["knobs"]["listLagSeconds"], 5.0);

    // The clock moves only forward, and only by a number.
    let (status, body) = admin(address, "POST", "/_sim/advance", r#"{"seconds": 2.5}"#).await;
    assert_eq!((status, body), (200, json!({"simSeconds": 2.5})));
    for bad in [r#"{"seconds": -1}"#, r#"{"secs": 1}"#, "[]"] {
        let (status, _) = admin(address, "POST", "/_sim/advance", bad).await;
        assert_eq!(status, 400, "{bad}");
    }
    assert_eq!(simulator.now(), 2.5);
}

#[tokio::test]
async fn fault_internal_error_answers_a_json_internal_failure() {
    let (simulator, address) = serve(Knobs {
        fault_internal_error: 1.0,
        ..frozen()
    })
    .await;
    let e = associate(&client(address), PORTFOLIO, ROLE, PrincipalType::Iam)
        .await
        .expect_err("500");
    assert_eq!(e.code(), Some("InternalFailure"), "{e:?}");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(truth(address, PORTFOLIO).await, json!([]));
    assert_eq!(simulator.with_model(|m| m.counters.internal_errors), 1);
}
