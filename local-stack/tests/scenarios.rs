//! End to end: the real worker binary, run as Lambda runs it, against moto's SQS and
//! the simulated Identity Center. Each scenario starts its own stack; they run one at a
//! time so that two cores are enough.

use std::io::Write as _;
use std::time::Duration;

use idc_sim::{Assignment, Knobs, PortfolioPrincipal, PortfolioPrincipalType, PortfolioSeed};
use local_stack::requests::{self, assignment, request, request_with};
use local_stack::stack::{Collected, Options, Stack, fast_worker_env};
use local_stack::tally::{
    Intent, PortfolioDecision, Stamped, Tally, outcomes_by_id, wrong_effect_list, wrong_effects,
    wrong_end_states, wrong_portfolio_end_states,
};
use serde_json::Value;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(240);

fn options(knobs: Knobs) -> Options {
    Options {
        knobs,
        seed: requests::seed(4, 600),
        worker_env: fast_worker_env(),
        ..Options::default()
    }
}

fn scaled(time_scale: f64) -> Knobs {
    Knobs {
        time_scale,
        ..Knobs::default()
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

/// Grant requests for `targets`, one per target, with ids `prefix-0000`...
fn grants(prefix: &str, targets: &[Assignment]) -> (Vec<String>, Vec<String>, Vec<Intent>) {
    let ids = ids(prefix, targets.len());
    let bodies = targets
        .iter()
        .zip(&ids)
        .map(|(t, id)| request(true, t, id))
        .collect();
    let intents = targets
        .iter()
        .zip(&ids)
        .map(|(t, id)| Intent {
            correlation_id: id.clone(),
            assignment: t.clone(),
            create: true,
        })
        .collect();
    (ids, bodies, intents)
}

fn outcome_of<'a>(collected: &'a Collected, id: &str) -> Vec<&'a Value> {
    collected
        .outcomes
        .iter()
        .filter(|o| o["correlationId"].as_str() == Some(id))
        .collect()
}

fn final_assignments(stack: &Stack) -> Vec<Assignment> {
    let now = stack.simulator.now();
    stack.simulator.with_model(|model| model.assignments(now))
}

fn assert_clean(tally: &Tally) {
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert_eq!(tally.contradictory, 0, "{tally:?}");
    assert_eq!(tally.wrong_effects, 0, "{tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_delete() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start(options(scaled(10.0))).await.expect("stack");
    let target = assignment(1, 0, 1);
    stack
        .send(&[request(true, &target, "GRANT-1")])
        .await
        .expect("send");
    let collected = stack
        .collect(&["GRANT-1".to_owned()], WAIT)
        .await
        .expect("collect");
    assert_eq!(outcome_of(&collected, "GRANT-1")[0]["outcome"], "succeeded");
    assert_eq!(final_assignments(&stack), std::slice::from_ref(&target));

    stack
        .send(&[request(false, &target, "REVOKE-1")])
        .await
        .expect("send");
    let collected = stack
        .collect(&["REVOKE-1".to_owned()], WAIT)
        .await
        .expect("collect");
    assert_eq!(
        outcome_of(&collected, "REVOKE-1")[0]["outcome"],
        "succeeded"
    );
    assert!(final_assignments(&stack).is_empty());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_progress_for_several_polls() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let knobs = Knobs {
        provisioning_min_seconds: 5.0,
        provisioning_max_seconds: 6.0,
        ..scaled(1.0)
    };
    let stack = Stack::start(options(knobs)).await.expect("stack");
    stack
        .send(&[request(true, &assignment(2, 0, 2), "SLOW-1")])
        .await
        .expect("send");
    let collected = stack
        .collect(&["SLOW-1".to_owned()], WAIT)
        .await
        .expect("collect");
    let outcome = outcome_of(&collected, "SLOW-1")[0];
    assert_eq!(outcome["outcome"], "succeeded");
    assert!(
        outcome["polls"].as_u64().is_some_and(|polls| polls >= 2),
        "{outcome}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_storm_on_one_account_and_permission_set() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start(options(scaled(5.0))).await.expect("stack");
    let targets: Vec<Assignment> = (0..20).map(|i| assignment(3, 1, i)).collect();
    let (ids, bodies, intents) = grants("STORM", &targets);
    stack.send(&bodies).await.expect("send");
    let collected = stack.collect(&ids, WAIT).await.expect("collect");
    let mut tally = Tally::of(&ids, &collected);
    tally.wrong_effects = wrong_effects(&intents, &[], &collected, &final_assignments(&stack));
    assert_clean(&tally);
    assert_eq!(tally.succeeded, 20, "{tally:?}");
    let conflicts = stack.simulator.with_model(|m| m.counters.conflicts);
    assert!(
        conflicts > 0,
        "20 writes on one account and permission set must conflict"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_storm_of_200_creates() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Operations long enough in real time that the 15 outstanding slots always fill.
    let stack = Stack::start(options(scaled(2.0))).await.expect("stack");
    let targets: Vec<Assignment> = (0..200).map(|i| assignment(100 + i, i % 4, i)).collect();
    let (ids, bodies, intents) = grants("FLOOD", &targets);
    stack.send(&bodies).await.expect("send");
    let collected = stack.collect(&ids, WAIT).await.expect("collect");
    let mut tally = Tally::of(&ids, &collected);
    tally.wrong_effects = wrong_effects(&intents, &[], &collected, &final_assignments(&stack));
    assert_clean(&tally);
    assert_eq!(tally.succeeded, 200, "{tally:?}");
    // The storm reached Identity Center's limit: the 15 outstanding creates filled, or a
    // call went over and was throttled. A worker that paces itself well may never be
    // throttled at all.
    let counters = stack.simulator.with_model(|m| m.counters.clone());
    assert!(
        counters.max_outstanding_creates_seen == 15
            || counters.throttled_busy + counters.throttled_rate > 0,
        "{counters:?}"
    );
    assert!(counters.max_outstanding_creates_seen <= 15);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_access_denied_are_dead_lettered_then_redriven_once_fixed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let management = 999;
    let knobs = Knobs {
        denied_accounts: vec![requests::account(management)],
        ..scaled(10.0)
    };
    let stack = Stack::start(options(knobs.clone())).await.expect("stack");
    let unknown_principal = assignment(4, 0, 5000);
    let denied = assignment(management, 0, 1);
    stack
        .send(&[
            request(true, &unknown_principal, "GHOST-1"),
            request(true, &denied, "MGMT-1"),
        ])
        .await
        .expect("send");
    let ids = ["GHOST-1".to_owned(), "MGMT-1".to_owned()];
    let collected = stack.collect(&ids, WAIT).await.expect("collect");
    let dead = |id: &str| {
        collected
            .dead_letters
            .iter()
            .find(|d| d.attributes.get("CorrelationId").map(String::as_str) == Some(id))
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in the DLQ: {collected:?}"))
    };
    let ghost = dead("GHOST-1");
    assert_eq!(ghost.attributes["ErrorClass"], "failed");
    assert_eq!(ghost.attributes["ErrorCode"], "FAILED");
    assert!(ghost.attributes["ErrorMessage"].contains("was not found in directory"));
    assert!(ghost.attributes.contains_key("OperationRequestId"));
    assert_eq!(ghost.attributes["Attempts"], "1");
    let management_dead = dead("MGMT-1");
    assert_eq!(management_dead.attributes["ErrorClass"], "permanent");
    assert_eq!(
        management_dead.attributes["ErrorCode"],
        "AccessDeniedException"
    );
    let body: Value =
        serde_json::from_str(&management_dead.body).expect("the DLQ body is the request");
    assert_eq!(body["correlationId"], "MGMT-1");

    // The cause is fixed (the worker is allowed in that account): redrive the DLQ.
    stack.simulator.set_knobs(Knobs {
        denied_accounts: Vec::new(),
        ..knobs
    });
    stack.forget_collected().await;
    stack
        .redrive(&collected.dead_letters)
        .await
        .expect("redrive");
    let collected = stack.collect(&ids, WAIT).await.expect("collect");
    assert_eq!(outcome_of(&collected, "MGMT-1")[0]["outcome"], "succeeded");
    assert_eq!(
        outcome_of(&collected, "GHOST-1")[0]["errorClass"],
        "failed",
        "still unknown"
    );
    assert!(final_assignments(&stack).contains(&denied));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_nothing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start(options(scaled(5.0))).await.expect("stack");
    let targets: Vec<Assignment> = (0..40).map(|i| assignment(200 + i, 2, i)).collect();
    let (ids, bodies, intents) = grants("KILL", &targets);
    stack.send(&bodies).await.expect("send");
    assert!(
        stack.kill_worker_mid_batch(0).await,
        "worker 0 never got a batch"
    );
    let collected = stack.collect(&ids, WAIT).await.expect("collect");
    let mut tally = Tally::of(&ids, &collected);
    tally.wrong_effects = wrong_effects(&intents, &[], &collected, &final_assignments(&stack));
    assert_clean(&tally);
    assert_eq!(tally.succeeded, 40, "{tally:?}");
    assert!(stack.restarts.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_then_a_revoke_of_the_same_assignment_leave_no_assignment() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start(options(scaled(5.0))).await.expect("stack");
    let target = assignment(5, 3, 3);
    // One SendMessageBatch, grant first. Without requestedAt both are ordered by their
    // SentTimestamp: the revoke's is the same or later, and at the same instant a
    // revoke outranks a grant. Either the grant is carried out and then revoked, or it
    // is superseded; the assignment ends absent both ways.
    stack
        .send(&[
            request(true, &target, "PAIR-GRANT"),
            request(false, &target, "PAIR-REVOKE"),
        ])
        .await
        .expect("send");
    let ids = ["PAIR-GRANT".to_owned(), "PAIR-REVOKE".to_owned()];
    let collected = stack.collect(&ids, WAIT).await.expect("collect");
    let tally = Tally::of(&ids, &collected);
    assert_clean(&tally);
    let grant = &the_outcome(&collected, "PAIR-GRANT")["outcome"];
    assert!(grant == "succeeded" || grant == "superseded", "{grant}");
    let revoke = &the_outcome(&collected, "PAIR-REVOKE")["outcome"];
    assert!(
        revoke == "succeeded" || revoke == "already-satisfied",
        "{revoke}"
    );
    assert!(final_assignments(&stack).is_empty());
    stack.shutdown().await;
}

/// The chaos run: 500 requests, 420 of them each the only decision about its assignment
/// (before duplicates are dropped) and 80 shared by 16 assignments.
const SINGLE_REQUESTS: usize = 420;
const SHARED_REQUESTS: usize = 80;
const SHARED_ASSIGNMENTS: usize = 16;
const PORTFOLIO_REQUESTS: usize = 40;
/// Roles per portfolio index: 40 decisions on 4 portfolios x 5 roles, 2 per principal.
const PORTFOLIO_PRINCIPALS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_500_mixed_requests_with_every_fault_on() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let knobs = Knobs {
        fault_http_500: 0.05,
        fault_drop: 0.04,
        fault_failed: 0.03,
        denied_accounts: vec![requests::account(998)],
        ..scaled(10.0)
    };
    let mut options = options(knobs);
    // Deletes of assignments that exist before the run.
    let seeded: Vec<Assignment> = (0..125).map(|i| assignment(3000 + i, i % 4, i)).collect();
    options.seed.assignments = seeded.clone();
    options.sim_seed = 7;
    // Kept apart from the other scenarios' logs, which would replace them.
    options.log_dir = local_stack::workspace_root().join("target/local-stack/chaos");
    options.portfolios = (0..4)
        .map(|n| PortfolioSeed {
            portfolio_id: requests::portfolio(n),
            principals: Vec::new(),
        })
        .collect();
    let stack = Stack::start(options).await.expect("stack");

    let mut bodies = Vec::new();
    let mut intents = Vec::new();
    let mut rng = fastrand::Rng::with_seed(7);
    // Temporary grants end within the run, while workers are killed and calls fail.
    let temporary_end = rfc3339_in(TEMPORARY_SECONDS);
    let temporary_ends_at =
        std::time::Instant::now() + Duration::from_secs(TEMPORARY_SECONDS.unsigned_abs() + 1);
    for i in 0..SINGLE_REQUESTS {
        let id = format!("CHAOS-{i:04}");
        let (create, target, not_after) = match i % 10 {
            // Grants of new assignments; one in ten of them for a principal the
            // directory does not know, one for the denied account, one expired, one in
            // twenty temporary.
            2 if i % 20 == 2 => (
                true,
                assignment(1000 + i, i % 4, i),
                Some(temporary_end.as_str()),
            ),
            0..=3 => (true, assignment(1000 + i, i % 4, i), None),
            4 => (true, assignment(1000 + i, i % 4, 5000 + i), None),
            5 if i % 20 == 5 => (true, assignment(998, i % 4, i), None),
            5 => (true, assignment(1000 + i, i % 4, i), Some(EXPIRED_END)),
            // Revokes: of seeded assignments, and of assignments that never existed.
            6..=7 => (
                false,
                seeded[(i / 10) * 2 % 125 + (i % 10 - 6)].clone(),
                None,
            ),
            _ => (false, assignment(2000 + i, i % 4, i), None),
        };
        bodies.push(request_with(create, &target, &id, not_after));
        intents.push(Intent {
            correlation_id: id,
            assignment: target,
            create,
        });
    }
    // Seeded revokes may repeat a target; keep each assignment to one request.
    let mut seen = std::collections::HashSet::new();
    let keep: Vec<bool> = intents
        .iter()
        .map(|intent| seen.insert(intent.assignment.clone()))
        .collect();
    let (mut bodies, intents): (Vec<String>, Vec<Intent>) = bodies
        .into_iter()
        .zip(intents)
        .zip(keep)
        .filter(|(_, keep)| *keep)
        .map(|(pair, _)| pair)
        .unzip();
    let expired: Vec<bool> = bodies.iter().map(|b| b.contains(EXPIRED_END)).collect();
    let temporary: Vec<bool> = bodies.iter().map(|b| b.contains(&temporary_end)).collect();

    // Grants and revokes of the same assignments, decided at random times (ties
    // included), for SPEC §11's ordering to sort out.
    let mut shared = Vec::new();
    for i in 0..SHARED_REQUESTS {
        let target = assignment(
            4000 + i % SHARED_ASSIGNMENTS,
            i % 4,
            500 + i % SHARED_ASSIGNMENTS,
        );
        let intent = Intent {
            correlation_id: format!("SHARED-{i:04}"),
            assignment: target,
            create: rng.bool(),
        };
        let requested_at = format!("2026-01-05T09:{:02}:{:02}Z", rng.u8(0..2), rng.u8(0..6));
        bodies.push(requests::decision(
            intent.create,
            &intent.assignment,
            &intent.correlation_id,
            Some(&requested_at),
            None,
        ));
        shared.push(Stamped {
            intent,
            requested_at,
        });
    }
    let ids: Vec<String> = intents
        .iter()
        .map(|i| i.correlation_id.clone())
        .chain(shared.iter().map(|s| s.intent.correlation_id.clone()))
        .collect();
    // Grants and revokes of portfolio principals, decided at random times, on 4
    // portfolios whose list lags the changes.
    let mut portfolio_decisions = Vec::new();
    for i in 0..PORTFOLIO_REQUESTS {
        let decision = PortfolioDecision {
            correlation_id: format!("PORTFOLIO-{i:04}"),
            portfolio: requests::portfolio(i % 4),
            principal: PortfolioPrincipal::new(
                requests::role(&format!("Chaos{}", i % PORTFOLIO_PRINCIPALS)),
                PortfolioPrincipalType::Iam,
            ),
            add: rng.bool(),
            requested_at: format!("2026-01-05T09:{:02}:{:02}Z", rng.u8(0..2), rng.u8(0..6)),
        };
        bodies.push(requests::portfolio_decision(
            decision.add,
            &decision.portfolio,
            &decision.principal,
            &decision.correlation_id,
            Some(&decision.requested_at),
        ));
        portfolio_decisions.push(decision);
    }
    let ids: Vec<String> = ids
        .into_iter()
        .chain(portfolio_decisions.iter().map(|d| d.correlation_id.clone()))
        .collect();
    // Any delivery order.
    rng.shuffle(&mut bodies);

    let send = bodies.clone();
    stack.send(&send[..bodies.len() / 2]).await.expect("send");
    // Two kills at random moments of the run.
    let first = rng.usize(0..2);
    assert!(stack.kill_worker_mid_batch(first).await);
    stack.send(&send[bodies.len() / 2..]).await.expect("send");
    tokio::time::sleep(Duration::from_millis(rng.u64(200..2000))).await;
    assert!(stack.kill_worker_mid_batch(1 - first).await);

    let collected = stack.collect(&ids, WAIT).await.expect("collect");
    let mut tally = Tally::of(&ids, &collected);
    let finals = final_assignments(&stack);
    // The shared assignments are judged by their latest decision, the rest one by one.
    // Temporary grants are judged after their end, below.
    let temporary_intents: Vec<&Intent> = intents
        .iter()
        .zip(&temporary)
        .filter(|(_, temporary)| **temporary)
        .map(|(intent, _)| intent)
        .collect();
    let single_finals: Vec<Assignment> = finals
        .iter()
        .filter(|a| !shared.iter().any(|s| &s.intent.assignment == *a))
        .filter(|a| !temporary_intents.iter().any(|t| &t.assignment == *a))
        .cloned()
        .collect();
    let lasting: Vec<Intent> = intents
        .iter()
        .zip(&temporary)
        .filter(|(_, temporary)| !**temporary)
        .map(|(intent, _)| intent.clone())
        .collect();
    let wrong = wrong_effect_list(&lasting, &seeded, &collected, &single_finals);
    for assignment in &wrong {
        let requests: Vec<&str> = lasting
            .iter()
            .filter(|intent| &intent.assignment == assignment)
            .map(|intent| intent.correlation_id.as_str())
            .collect();
        let present = single_finals.contains(assignment);
        let operations = stack
            .simulator
            .with_model(|model| model.operations_on(assignment));
        println!(
            "chaos: wrong effect on {assignment:?} (present: {present}; requests {requests:?}; \
             operations {operations:#?})"
        );
    }
    tally.wrong_effects = wrong.len();
    let portfolio_finals: std::collections::BTreeSet<(String, PortfolioPrincipal)> = stack
        .simulator
        .with_model(|model| model.portfolios())
        .into_iter()
        .flat_map(|(id, principals)| principals.into_iter().map(move |p| (id.clone(), p)))
        .collect();
    tally.wrong_end_states = wrong_end_states(&shared, &collected, &finals)
        + wrong_portfolio_end_states(&portfolio_decisions, &collected, &portfolio_finals);
    tally.portfolio_requests = portfolio_decisions.len();
    // Straight to stderr, past the test harness's capture: the run's summary line.
    let _ = writeln!(std::io::stderr(), "{tally}");
    let by_id = outcomes_by_id(&collected);
    for (id, (outcomes, records)) in &by_id {
        if outcomes.len() > 1 {
            println!("chaos: {id} has {records} records with outcomes {outcomes:?}");
        }
    }
    for id in ids.iter().filter(|id| !by_id.contains_key(*id)) {
        println!("chaos: {id} has no terminal record");
    }
    println!(
        "chaos: {} single-decision requests kept (one per assignment) and {SHARED_REQUESTS} on {SHARED_ASSIGNMENTS} shared assignments, duplicates {}, restarts {}, simulator {:?}",
        intents.len(),
        tally.duplicates,
        stack.restarts.load(std::sync::atomic::Ordering::Relaxed),
        stack.simulator.with_model(|m| m.counters.clone())
    );
    assert_clean(&tally);
    assert_eq!(tally.wrong_end_states, 0, "{tally:?}");
    // Every outcome is one the request could have: no grant of an unknown principal
    // succeeded, and no expired grant was carried out.
    let by_id = outcomes_by_id(&collected);
    for (index, intent) in intents.iter().enumerate() {
        let outcome = by_id
            .get(&intent.correlation_id)
            .and_then(|(o, _)| o.iter().next().cloned());
        if intent
            .assignment
            .principal_id
            .starts_with("9067a1b2c3-0000138")
            || expired[index]
        {
            assert_eq!(
                outcome.as_deref(),
                Some("dead-lettered"),
                "{}",
                intent.correlation_id
            );
        }
    }
    // Grants with notAfter end by themselves, whatever was killed or failed on the way:
    // once their end has passed, none of them is left, unless its expiry's own revoke
    // was dead-lettered (and so reported).
    tokio::time::sleep_until(temporary_ends_at.into()).await;
    // Most of them carried out before their end, or the check below proves little.
    let granted = temporary_intents
        .iter()
        .filter(|grant| {
            by_id
                .get(&grant.correlation_id)
                .is_some_and(|(outcomes, _)| outcomes.contains("succeeded"))
        })
        .count();
    println!(
        "chaos: {granted} of {} temporary grants carried out",
        temporary_intents.len()
    );
    assert!(granted >= 15, "{granted} of {}", temporary_intents.len());
    let left = until_gone(&stack, &temporary_intents, &ids).await;
    assert!(
        left.is_empty(),
        "temporary grants still present after their notAfter: {left:?}"
    );
    stack.shutdown().await;
}

/// When a chaos run's temporary grants end, in seconds after their requests are made.
const TEMPORARY_SECONDS: i64 = 40;
/// The `notAfter` of the chaos run's grants that expired before they were sent.
const EXPIRED_END: &str = "2020-01-01T00:00:00Z";

/// Waits (at most [`WAIT`]) until none of the grants' assignments is present, except
/// those whose expiry was dead-lettered; returns the grants still present.
async fn until_gone(stack: &Stack, grants: &[&Intent], ids: &[String]) -> Vec<String> {
    let started = std::time::Instant::now();
    loop {
        let collected = stack.collect(ids, Duration::ZERO).await.expect("collect");
        let failed_expiries: Vec<String> = collected
            .dead_letters
            .iter()
            .filter(|record| record.is_expiry())
            .filter_map(|record| record.correlation_id())
            .collect();
        let finals = final_assignments(stack);
        let left: Vec<String> = grants
            .iter()
            .filter(|grant| finals.contains(&grant.assignment))
            .filter(|grant| !failed_expiries.contains(&grant.correlation_id))
            .map(|grant| grant.correlation_id.clone())
            .collect();
        if left.is_empty() || started.elapsed() > WAIT {
            if !failed_expiries.is_empty() {
                println!("chaos: expiries dead-lettered for {failed_expiries:?}");
            }
            return left;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// SPEC §11: the latest decision wins, and grants with notAfter end by themselves.

/// Waits until `condition` holds for the simulator (checked every 50 ms), or fails.
async fn wait_for(stack: &Stack, what: &str, condition: impl Fn(&idc_sim::Model) -> bool) {
    let started = std::time::Instant::now();
    while !stack.simulator.with_model(|model| condition(model)) {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// RFC 3339, `seconds` from now (negative: in the past), in whole seconds.
fn rfc3339_in(seconds: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a year in range")
}

fn the_outcome<'a>(collected: &'a Collected, id: &str) -> &'a Value {
    outcome_of(collected, id)
        .into_iter()
        .find(|o| o.get("trigger").is_none())
        .unwrap_or_else(|| panic!("{id} has no outcome: {:?}", collected.outcomes))
}

fn expiry_outcome<'a>(collected: &'a Collected, id: &str) -> Option<&'a Value> {
    outcome_of(collected, id)
        .into_iter()
        .find(|o| o["trigger"] == "expiry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_grant_does_not_outlive_the_revoke_sent_after_it() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // No outstanding slot: every create is refused as busy and waits in backoff.
    let knobs = Knobs {
        max_outstanding_creates: 0,
        ..scaled(10.0)
    };
    let stack = Stack::start(options(knobs.clone())).await.expect("stack");
    let target = assignment(6, 0, 6);
    stack
        .send(&[request(true, &target, "STALE-GRANT")])
        .await
        .expect("send");
    wait_for(&stack, "the grant to be throttled", |m| {
        m.counters.throttled_busy > 0
    })
    .await;
    stack
        .send(&[request(false, &target, "STALE-REVOKE")])
        .await
        .expect("send");
    let collected = stack
        .collect(&["STALE-REVOKE".to_owned()], WAIT)
        .await
        .expect("collect");
    assert_eq!(
        the_outcome(&collected, "STALE-REVOKE")["outcome"],
        "already-satisfied"
    );
    // The slots free up: the grant's next attempt finds the later revoke recorded.
    stack.simulator.set_knobs(Knobs {
        max_outstanding_creates: 15,
        ..knobs
    });
    let collected = stack
        .collect(&["STALE-GRANT".to_owned()], WAIT)
        .await
        .expect("collect");
    let grant = the_outcome(&collected, "STALE-GRANT");
    assert_eq!(grant["outcome"], "superseded", "{grant}");
    assert_eq!(grant["supersededBy"]["correlationId"], "STALE-REVOKE");
    assert!(
        final_assignments(&stack).is_empty(),
        "the revoke is the latest decision"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_ordered_by_requested_at_whatever_the_arrival() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start(options(scaled(10.0))).await.expect("stack");
    let replayed = assignment(7, 0, 7);
    let revoke_first = assignment(8, 0, 8);
    let regranted = assignment(9, 0, 9);
    let (t1, t2) = (Some("2026-01-05T09:00:00Z"), Some("2026-01-05T09:05:00Z"));
    let decide = |create, target: &Assignment, id: &str, at| {
        requests::decision(create, target, id, at, None)
    };

    // A grant, its revoke, then the old grant again (a replay or a late duplicate).
    stack
        .send(&[decide(true, &replayed, "REPLAY-G", t1)])
        .await
        .expect("send");
    stack
        .collect(&["REPLAY-G".to_owned()], WAIT)
        .await
        .expect("collect");
    stack
        .send(&[decide(false, &replayed, "REPLAY-R", t2)])
        .await
        .expect("send");
    stack
        .collect(&["REPLAY-R".to_owned()], WAIT)
        .await
        .expect("collect");
    stack.forget_collected().await;
    stack
        .send(&[decide(true, &replayed, "REPLAY-G", t1)])
        .await
        .expect("send");
    let collected = stack
        .collect(&["REPLAY-G".to_owned()], WAIT)
        .await
        .expect("collect");
    assert_eq!(the_outcome(&collected, "REPLAY-G")["outcome"], "superseded");

    // The later revoke arrives before the grant it revokes.
    stack
        .send(&[decide(false, &revoke_first, "EARLY-R", t2)])
        .await
        .expect("send");
    stack
        .collect(&["EARLY-R".to_owned()], WAIT)
        .await
        .expect("collect");
    stack
        .send(&[decide(true, &revoke_first, "LATE-G", t1)])
        .await
        .expect("send");
    let collected = stack
        .collect(&["LATE-G".to_owned()], WAIT)
        .await
        .expect("collect");
    assert_eq!(the_outcome(&collected, "LATE-G")["outcome"], "superseded");

    // A revoke, then a re-grant decided after it: the access is back.
    stack
        .send(&[decide(false, &regranted, "RE-R", t1)])
        .await
        .expect("send");
    stack
        .collect(&["RE-R".to_owned()], WAIT)
        .await
        .expect("collect");
    stack
        .send(&[decide(true, &regranted, "RE-G", t2)])
        .await
        .expect("send");
    let collected = stack
        .collect(&["RE-G".to_owned()], WAIT)
        .await
        .expect("collect");
    assert_eq!(the_outcome(&collected, "RE-G")["outcome"], "succeeded");

    assert_eq!(final_assignments(&stack), vec![regranted]);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_with_not_after_end_by_themselves_unless_extended() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start(options(scaled(10.0))).await.expect("stack");
    let temporary = assignment(10, 0, 10);
    let extended = assignment(11, 0, 11);
    let (first_end, later_end) = (rfc3339_in(6), rfc3339_in(14));
    stack
        .send(&[
            requests::decision(true, &temporary, "TEMP", None, Some(&first_end)),
            requests::decision(
                true,
                &extended,
                "EXT-1",
                Some(&rfc3339_in(-60)),
                Some(&first_end),
            ),
        ])
        .await
        .expect("send");
    let collected = stack
        .collect(&["TEMP".to_owned(), "EXT-1".to_owned()], WAIT)
        .await
        .expect("collect");
    assert_eq!(
        the_outcome(&collected, "TEMP")["expiresAt"],
        first_end.as_str()
    );
    // A later grant of the same assignment with a later end.
    stack
        .send(&[requests::decision(
            true,
            &extended,
            "EXT-2",
            Some(&rfc3339_in(-30)),
            Some(&later_end),
        )])
        .await
        .expect("send");

    // At the first end: TEMP is revoked; EXT-1's expiry finds EXT-2 and leaves it.
    let collected = stack.collect_outcomes(5, WAIT).await.expect("collect");
    let temp_expiry = expiry_outcome(&collected, "TEMP").expect("TEMP's expiry");
    assert_eq!(temp_expiry["outcome"], "succeeded", "{temp_expiry}");
    assert_eq!(temp_expiry["action"], "delete");
    let first_expiry = expiry_outcome(&collected, "EXT-1").expect("EXT-1's expiry");
    assert_eq!(first_expiry["outcome"], "superseded", "{first_expiry}");
    assert_eq!(first_expiry["supersededBy"]["correlationId"], "EXT-2");
    assert_eq!(final_assignments(&stack), vec![extended.clone()]);

    // At the later end the extension ends too.
    let collected = stack.collect_outcomes(6, WAIT).await.expect("collect");
    let last = expiry_outcome(&collected, "EXT-2").expect("EXT-2's expiry");
    assert_eq!(last["outcome"], "succeeded", "{last}");
    assert!(final_assignments(&stack).is_empty());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_whose_answer_was_lost_near_not_after_is_never_expired_and_ends_absent() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let knobs = Knobs {
        fault_drop: 1.0,
        ..scaled(10.0)
    };
    let stack = Stack::start(options(knobs.clone())).await.expect("stack");
    let target = assignment(12, 0, 12);
    let end_at = std::time::Instant::now() + Duration::from_secs(3);
    let end = rfc3339_in(2);
    stack
        .send(&[requests::decision(true, &target, "LOST", None, Some(&end))])
        .await
        .expect("send");
    // Every call drops its connection (half of them after taking effect) until notAfter
    // has passed; then Identity Center answers again.
    wait_for(&stack, "a dropped create", |m| m.counters.dropped > 0).await;
    tokio::time::sleep_until(end_at.into()).await;
    stack.simulator.set_knobs(Knobs {
        fault_drop: 0.0,
        ..knobs
    });
    let collected = stack.collect_outcomes(2, WAIT).await.expect("collect");
    let grant = the_outcome(&collected, "LOST");
    assert_ne!(grant["errorClass"], "expired", "{grant}");
    assert_eq!(grant["outcome"], "succeeded", "{grant}");
    let expiry = expiry_outcome(&collected, "LOST").expect("the expiry ran");
    assert!(
        expiry["outcome"] == "succeeded" || expiry["outcome"] == "already-satisfied",
        "{expiry}"
    );
    assert!(final_assignments(&stack).is_empty());
    stack.shutdown().await;
}
