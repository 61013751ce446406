//! End to end for Service Catalog portfolio principals (SPEC §9): the worker binary,
//! run as Lambda runs it, against moto's SQS and DynamoDB and idc-sim's Service
//! Catalog. Every scenario asserts the simulator's final principals, not only the
//! outcome messages.

use std::time::Duration;

use idc_sim::{Knobs, PortfolioPrincipal, PortfolioPrincipalType, PortfolioSeed};
use local_stack::requests::{self, portfolio, portfolio_decision, role};
use local_stack::stack::{Collected, Options, Stack, fast_worker_env};
use serde_json::{Value, json};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(240);

fn iam(arn: &str) -> PortfolioPrincipal {
    PortfolioPrincipal::new(arn, PortfolioPrincipalType::Iam)
}

fn pattern(arn: &str) -> PortfolioPrincipal {
    PortfolioPrincipal::new(arn, PortfolioPrincipalType::IamPattern)
}

fn seeded(n: usize, principals: Vec<PortfolioPrincipal>) -> PortfolioSeed {
    PortfolioSeed {
        portfolio_id: portfolio(n),
        principals,
    }
}

fn options(knobs: Knobs, portfolios: Vec<PortfolioSeed>, env: &[(&str, &str)]) -> Options {
    let mut worker_env = fast_worker_env();
    worker_env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Options {
        knobs,
        seed: requests::seed(1, 1),
        portfolios,
        worker_env,
        ..Options::default()
    }
}

fn principals_of(stack: &Stack, n: usize) -> Vec<PortfolioPrincipal> {
    let mut principals = stack
        .simulator
        .with_model(|model| model.portfolio_principals(&portfolio(n)))
        .unwrap_or_default();
    principals.sort();
    principals
}

fn the_outcome<'a>(collected: &'a Collected, id: &str) -> &'a Value {
    collected
        .outcomes
        .iter()
        .find(|o| o["correlationId"].as_str() == Some(id) && o.get("trigger").is_none())
        .unwrap_or_else(|| panic!("{id} has no outcome: {:?}", collected.outcomes))
}

fn dead_letter_of(collected: &Collected, id: &str) -> (String, String, String) {
    let dead = collected
        .dead_letters
        .iter()
        .find(|d| d.correlation_id().as_deref() == Some(id))
        .unwrap_or_else(|| panic!("{id} has no dead letter: {:?}", collected.dead_letters));
    let attribute = |name: &str| dead.attributes.get(name).cloned().unwrap_or_default();
    (
        attribute("ErrorClass"),
        attribute("ErrorCode"),
        attribute("ErrorMessage"),
    )
}

/// One stack, one portfolio per case, every case of the issue but the storm: the list
/// lags 4 s behind each change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portfolio_principals_end_as_decided_and_report_what_is_left() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let leaver = role("Leaver");
    let team = pattern("arn:aws:iam:::role/Team*");
    let team_role = role("TeamA-dev");
    let ten_patterns: Vec<PortfolioPrincipal> = (0..10)
        .map(|i| pattern(&format!("arn:aws:iam:::role/Squad{i}-*")))
        .collect();
    let knobs = Knobs {
        list_lag_seconds: 4.0,
        ..Knobs::default()
    };
    let portfolios = vec![
        seeded(1, vec![]),
        seeded(2, vec![iam(&team_role), team.clone()]),
        // An association made before AWS checked shapes: a full ARN as a pattern.
        seeded(3, vec![pattern(&leaver)]),
        seeded(4, vec![iam(&role("Other"))]),
        seeded(5, vec![]),
        seeded(6, ten_patterns.clone()),
        seeded(7, vec![iam(&leaver)]),
    ];
    let stack = Stack::start(options(
        knobs,
        portfolios,
        &[("ALLOW_IAM_PATTERN_PRINCIPALS", "false")],
    ))
    .await
    .expect("stack");
    let (t1, t2) = (Some("2026-11-30T09:00:00Z"), Some("2026-11-30T09:05:00Z"));
    let bodies = [
        portfolio_decision(true, &portfolio(1), &iam(&leaver), "P-ASSOCIATE", None),
        portfolio_decision(false, &portfolio(2), &iam(&team_role), "P-RESIDUAL", None),
        portfolio_decision(false, &portfolio(3), &iam(&leaver), "P-WRONG-TYPE", None),
        portfolio_decision(false, &portfolio(4), &iam(&leaver), "P-NOT-THERE", None),
        portfolio_decision(
            true,
            &portfolio(5),
            &pattern("arn:aws:iam:::role/Ops*"),
            "P-PATTERN",
            None,
        ),
        // §11: the later revoke goes out first; the grant decided before it follows.
        portfolio_decision(false, &portfolio(7), &iam(&leaver), "P-REVOKE", t2),
    ];
    stack.send(&bodies).await.expect("send");
    let ids: Vec<String> = [
        "P-ASSOCIATE",
        "P-RESIDUAL",
        "P-WRONG-TYPE",
        "P-NOT-THERE",
        "P-PATTERN",
        "P-REVOKE",
    ]
    .map(str::to_owned)
    .to_vec();
    let collected = stack.collect(&ids, WAIT).await.expect("collect");
    // Spelled in lower case: IAM names it the same role, so the later revoke, recorded
    // as the latest removal of the name, still stops it.
    stack
        .send(&[portfolio_decision(
            true,
            &portfolio(7),
            &iam(&role("leaver")),
            "P-LATE-GRANT",
            t1,
        )])
        .await
        .expect("send");
    let late = stack
        .collect(&["P-LATE-GRANT".to_owned()], WAIT)
        .await
        .expect("collect");

    // Confirmed only once the lagging list showed it.
    let associate = the_outcome(&collected, "P-ASSOCIATE");
    assert_eq!(associate["outcome"], "succeeded", "{associate}");
    assert!(associate["polls"].as_u64() >= Some(1), "{associate}");
    assert_eq!(principals_of(&stack, 1), vec![iam(&leaver)]);

    let residual = the_outcome(&collected, "P-RESIDUAL");
    assert_eq!(residual["outcome"], "succeeded", "{residual}");
    assert_eq!(
        residual["residualAccess"],
        json!([{"principalType": "IAM_PATTERN", "principalArn": team.principal_arn}])
    );
    assert_eq!(principals_of(&stack, 2), vec![team.clone()]);

    let (class, code, message) = dead_letter_of(&collected, "P-WRONG-TYPE");
    assert_eq!(
        (class.as_str(), code.as_str()),
        ("permanent", "PrincipalTypeMismatch")
    );
    assert!(
        message.contains("--principal-type IAM_PATTERN"),
        "{message}"
    );
    assert_eq!(principals_of(&stack, 3), vec![pattern(&leaver)]);

    let not_there = the_outcome(&collected, "P-NOT-THERE");
    assert_eq!(not_there["outcome"], "already-satisfied", "{not_there}");
    assert_eq!(not_there["residualAccess"], json!([]));

    let (class, code, _) = dead_letter_of(&collected, "P-PATTERN");
    assert_eq!(
        (class.as_str(), code.as_str()),
        ("forbidden", "IamPatternNotAllowed")
    );
    assert!(principals_of(&stack, 5).is_empty());

    assert_eq!(the_outcome(&collected, "P-REVOKE")["outcome"], "succeeded");
    assert_eq!(the_outcome(&late, "P-LATE-GRANT")["outcome"], "superseded");
    assert!(principals_of(&stack, 7).is_empty());
    stack.shutdown().await;

    // The 11th pattern, with patterns allowed.
    let stack = Stack::start(options(
        Knobs::default(),
        vec![seeded(6, ten_patterns.clone())],
        &[("ALLOW_IAM_PATTERN_PRINCIPALS", "true")],
    ))
    .await
    .expect("stack");
    let eleventh = pattern("arn:aws:iam:::role/Squad10-*");
    stack
        .send(&[portfolio_decision(
            true,
            &portfolio(6),
            &eleventh,
            "P-ELEVENTH",
            None,
        )])
        .await
        .expect("send");
    let collected = stack
        .collect(&["P-ELEVENTH".to_owned()], WAIT)
        .await
        .expect("collect");
    let (class, code, _) = dead_letter_of(&collected, "P-ELEVENTH");
    assert_eq!(
        (class.as_str(), code.as_str()),
        ("permanent", "LimitExceededException")
    );
    assert_eq!(principals_of(&stack, 6).len(), 10);
    stack.shutdown().await;
}

/// 20 changes on 4 portfolios against a Service Catalog that allows 3 calls a second
/// (each change makes at least 3): throttled, backed off, and all done, each portfolio
/// as decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_ends_with_every_request_done() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let knobs = Knobs {
        catalog_rate_per_second: 3.0,
        catalog_rate_burst: 3.0,
        list_lag_seconds: 1.0,
        ..Knobs::default()
    };
    let portfolios: Vec<PortfolioSeed> = (0..4).map(|n| seeded(n, vec![])).collect();
    let stack = Stack::start(options(knobs, portfolios, &[]))
        .await
        .expect("stack");
    let mut bodies = Vec::new();
    let mut ids = Vec::new();
    for n in 0..4 {
        for i in 0..5 {
            let id = format!("STORM-{n}-{i}");
            bodies.push(portfolio_decision(
                true,
                &portfolio(n),
                &iam(&role(&format!("Member{i}"))),
                &id,
                None,
            ));
            ids.push(id);
        }
    }
    stack.send(&bodies).await.expect("send");
    let collected = stack.collect(&ids, WAIT).await.expect("collect");
    for id in &ids {
        // A change whose step ran twice (a redelivery) may report already-satisfied.
        let outcome = &the_outcome(&collected, id)["outcome"];
        assert!(
            outcome == "succeeded" || outcome == "already-satisfied",
            "{id}: {outcome}"
        );
    }
    assert!(
        collected.dead_letters.is_empty(),
        "{:?}",
        collected.dead_letters
    );
    for n in 0..4 {
        assert_eq!(principals_of(&stack, n).len(), 5, "portfolio {n}");
    }
    let throttled = stack.simulator.with_model(|m| m.counters.catalog_throttled);
    assert!(throttled > 0, "3 calls a second must throttle 20 changes");
    stack.shutdown().await;
}
