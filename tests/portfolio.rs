//! Portfolio-principal requests through the handler (SPEC §9), with the in-memory
//! Service Catalog: every re-enqueued step is delivered again until the request ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use assignment_worker::adapters::memory::{
    CatalogCall, MemoryLedger, MemoryServiceCatalog, RecordingQueues, ScriptedIdentityCenter,
};
use assignment_worker::aws_call::{CallError, ErrorKind};
use assignment_worker::clock::WallClock;
use assignment_worker::config::Config;
use assignment_worker::handler::{Invocation, Worker, function_handler};
use assignment_worker::ledger::{
    AccessDecision, ClaimAnswer, DecisionOrder, Ledger, LedgerKey, LedgerResult, RecordAnswer,
    RecordedState,
};
use assignment_worker::portfolio_access::{ListedPrincipal, PortfolioPrincipalType};
use assignment_worker::queue::OutgoingMessage;
use assignment_worker::request::{PortfolioChange, Target, parse_request};
use assignment_worker::service_catalog::ServiceCatalog;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type TestWorker =
    Worker<ScriptedIdentityCenter, RecordingQueues, MemoryLedger, MemoryServiceCatalog>;

const PORTFOLIO: &str = "port-abcdefghijklm";
const ROLE: &str = "arn:aws:iam::111122223333:role/TeamA-dev";
const PATTERN: &str = "arn:aws:iam:::role/Team*";

fn iam(arn: &str) -> ListedPrincipal {
    ListedPrincipal {
        principal_type: PortfolioPrincipalType::Iam,
        principal_arn: arn.to_owned(),
    }
}

fn pattern(arn: &str) -> ListedPrincipal {
    ListedPrincipal {
        principal_type: PortfolioPrincipalType::IamPattern,
        principal_arn: arn.to_owned(),
    }
}

fn worker(catalog: MemoryServiceCatalog, extra: &[(&str, &str)]) -> TestWorker {
    let mut env: HashMap<&str, &str> = HashMap::from([
        (
            "WORK_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/1/work",
        ),
        (
            "DEAD_LETTER_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/1/dlq",
        ),
        (
            "OUTCOME_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/1/outcomes",
        ),
        ("LEDGER_TABLE", "assignment-ledger"),
    ]);
    env.extend(extra.iter().copied());
    let config = Config::from_lookup(|name| env.get(name).map(|v| (*v).to_owned()))
        .expect("test configuration is valid");
    Worker {
        identity_center: ScriptedIdentityCenter::default(),
        queues: RecordingQueues::default(),
        ledger: MemoryLedger::default(),
        service_catalog: catalog,
        config,
    }
}

fn request(action: &str, principal_type: &str, arn: &str, extra: Value) -> String {
    let mut body = json!({
        "action": action,
        "portfolioId": PORTFOLIO,
        "principalType": principal_type,
        "principalArn": arn,
        "correlationId": format!("CHG-{action}"),
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body.to_string()
}

fn record(body: &str, message_id: &str) -> SqsEvent {
    let sent_at = OffsetDateTime::now_utc();
    delivery(body, message_id, sent_at, 1)
}

/// The `receive_count`th delivery of a message SQS took at `sent_at`.
fn delivery(body: &str, message_id: &str, sent_at: OffsetDateTime, receive_count: u32) -> SqsEvent {
    let sent_ms = sent_at.unix_timestamp_nanos() / 1_000_000;
    serde_json::from_value(json!({"Records": [{
        "messageId": message_id,
        "receiptHandle": format!("rh-{message_id}"),
        "body": body,
        "attributes": {
            "SentTimestamp": sent_ms.to_string(),
            "ApproximateReceiveCount": receive_count.to_string(),
        },
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }]}))
    .expect("an SQS event")
}

fn json_of(message: &OutgoingMessage) -> Value {
    serde_json::from_str(&message.body).expect("JSON body")
}

/// Delivers `body`, then every step the worker re-enqueues, until none is left; an
/// expiry step is delivered once its grant's `notAfter` has passed.
async fn drive(worker: &TestWorker, body: &str) {
    deliver(worker, body, true).await;
}

/// As [`drive`], up to the grant's expiry step, which is returned undelivered.
async fn drive_to_expiry(worker: &TestWorker, body: &str) -> String {
    deliver(worker, body, false)
        .await
        .expect("the grant's expiry step")
}

async fn deliver(worker: &TestWorker, body: &str, expiry: bool) -> Option<String> {
    static DELIVERIES: AtomicUsize = AtomicUsize::new(0);
    let mut delivered = worker.queues.sent_to(&worker.config.work_queue).len();
    // Each body with the delay it was sent with.
    let mut next = vec![(body.to_owned(), 0)];
    for _ in 0..100 {
        let (body, delay_seconds) = next.pop()?;
        let envelope: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if envelope["progress"]["step"] == "expire-wait" && !expiry {
            return Some(body);
        }
        if envelope["progress"]["step"] == "expire-wait"
            && let Some(not_after) = envelope["request"]["notAfter"].as_str()
        {
            // At the grant's end, or later when the step was sent to wait for longer.
            let not_after = OffsetDateTime::parse(not_after, &Rfc3339).expect("notAfter");
            let wait = (not_after - OffsetDateTime::now_utc())
                .max(time::Duration::seconds(delay_seconds.into()));
            if wait.is_positive() {
                tokio::time::sleep(wait.unsigned_abs()).await;
            }
        }
        let response = function_handler(
            worker,
            LambdaEvent::new(
                record(
                    &body,
                    &format!("m-{}", DELIVERIES.fetch_add(1, Ordering::Relaxed)),
                ),
                Context::default(),
            ),
        )
        .await
        .expect("a batch response");
        assert!(response.batch_item_failures.is_empty(), "{body}");
        let work = worker.queues.sent_to(&worker.config.work_queue);
        next.extend(
            work[delivered..]
                .iter()
                .map(|m| (m.body.clone(), m.delay_seconds)),
        );
        delivered = work.len();
    }
    panic!("the request did not end within 100 steps");
}

fn outcomes(worker: &TestWorker) -> Vec<Value> {
    let queue = worker.config.outcome_queue.as_ref().expect("outcome queue");
    worker.queues.sent_to(queue).iter().map(json_of).collect()
}

/// A grant of ROLE decided at 10:00, before the removals of these tests.
fn earlier_grant() -> String {
    grant_at(ROLE, "10:00:00")
}

/// The removal decided later ended as `removal` says, the earlier grant superseded, and
/// the principal is gone.
fn assert_later_removal_won(worker: &TestWorker, removal: &str) {
    let outcomes: Vec<Value> = outcomes(worker)
        .into_iter()
        .map(|o| json!([o["action"], o["outcome"]]))
        .collect();
    assert_eq!(
        outcomes,
        [
            json!(["disassociate-portfolio-principal", removal]),
            json!(["associate-portfolio-principal", "superseded"])
        ]
    );
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
}

/// How many associates the worker has called so far.
fn associate_calls(worker: &TestWorker) -> usize {
    let calls = worker.service_catalog.calls();
    calls
        .iter()
        .filter(|call| matches!(call, CatalogCall::Associate(_)))
        .count()
}

fn only_outcome(worker: &TestWorker) -> Value {
    let mut all = outcomes(worker);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

/// The message of the one dead letter stored, which must be `permanent` with `code`.
fn only_permanent_dead_letter(worker: &TestWorker, code: &str) -> String {
    only_dead_letter(worker, "permanent", code)
}

/// The message of the one dead letter stored, which must be of `class` with `code`.
fn only_dead_letter(worker: &TestWorker, class: &str, code: &str) -> String {
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].attribute("ErrorClass"), Some(class));
    assert_eq!(dead[0].attribute("ErrorCode"), Some(code));
    dead[0]
        .attribute("ErrorMessage")
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn an_associate_is_confirmed_only_once_the_list_shows_it() {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![])
        .with_list_lag(2);
    let worker = worker(catalog, &[]);
    drive(
        &worker,
        &request("associate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    let outcome = only_outcome(&worker);
    assert_eq!(outcome["outcome"], "succeeded");
    assert_eq!(outcome["action"], "associate-portfolio-principal");
    assert_eq!(outcome["polls"], 2, "two lists lagged behind the associate");
    assert_eq!(
        worker.service_catalog.calls(),
        [
            CatalogCall::List,
            CatalogCall::Associate(ROLE.to_owned()),
            CatalogCall::List,
            CatalogCall::List,
            CatalogCall::List
        ]
    );
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(ROLE)])
    );
    let confirm = worker.queues.sent_to(&worker.config.work_queue);
    let progress = &json_of(&confirm[0])["progress"];
    assert_eq!(progress["step"], "confirm");
    assert_eq!(progress["operation"], "associate");
    assert!(progress.get("operationRequestId").is_none());
}

#[tokio::test]
async fn an_associate_of_a_listed_principal_is_made_again_and_already_satisfied() {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(ROLE)]);
    let worker = worker(catalog, &[]);
    drive(
        &worker,
        &request("associate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    assert_eq!(only_outcome(&worker)["outcome"], "already-satisfied");
    assert_eq!(
        worker.service_catalog.calls(),
        [CatalogCall::List, CatalogCall::Associate(ROLE.to_owned())]
    );
}

/// The list lags: a removal made elsewhere (the console, another tool) is not shown
/// yet when a grant reads it. The grant associates all the same, so the principal it
/// finds listed is there once the list catches up; trusting the list left it removed
/// with the grant reported done.
#[tokio::test]
async fn a_grant_that_finds_its_principal_listed_still_associates_it() {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(ROLE)])
        .with_list_lag(1);
    let worker = worker(catalog, &[]);
    let removal = request("disassociate-portfolio-principal", "IAM", ROLE, json!({}));
    let removal = parse_request(&removal).expect("a valid request");
    let (_, Target::Portfolio(change)) = removal.target() else {
        panic!("a portfolio request");
    };
    worker
        .service_catalog
        .disassociate_principal(change)
        .await
        .expect("removed elsewhere");

    drive(
        &worker,
        &request("associate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    assert_eq!(only_outcome(&worker)["outcome"], "already-satisfied");
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(ROLE)])
    );
}

/// The associate a listed principal still gets is a precaution: when AWS refuses it
/// (a role deleted since, say), the request is what the list said, `already-satisfied`
/// (SPEC §9), not a dead letter.
#[tokio::test]
async fn a_listed_principal_whose_associate_is_refused_is_already_satisfied() {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(ROLE)])
        .with_errors([
            None,
            service_error(ErrorKind::Rejected, "InvalidParametersException"),
        ]);
    let worker = worker(catalog, &[]);
    drive(
        &worker,
        &request("associate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    assert_eq!(only_outcome(&worker)["outcome"], "already-satisfied");
    assert_no_dead_letter(&worker);
}

#[tokio::test]
async fn removing_a_role_a_pattern_still_admits_reports_residual_access() {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(ROLE), pattern(PATTERN)])
        .with_list_lag(1);
    let worker = worker(catalog, &[]);
    drive(
        &worker,
        &request("disassociate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    let outcome = only_outcome(&worker);
    assert_eq!(outcome["outcome"], "succeeded");
    assert_eq!(
        outcome["residualAccess"],
        json!([{"principalType": "IAM_PATTERN", "principalArn": PATTERN}])
    );
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![pattern(PATTERN)])
    );
}

/// The portfolio lists the role's name under a path the removal does not name: AWS finds
/// no such association, but IAM names one role by that name whatever the path, so the
/// entry may still admit the role and the removal is not done (SPEC §9): a dead letter
/// names the ARN to send, and a removal with it is carried out (before, the removal
/// ended `already-satisfied`, the entry only reported).
#[tokio::test]
async fn removing_a_role_listed_under_another_path_is_not_done() {
    let pathed = "arn:aws:iam::111122223333:role/dev/teama-dev";
    let (worker, message) =
        remove_role_dead_lettered(vec![iam(pathed)], "PrincipalArnPathMismatch").await;
    assert!(
        message.contains("under another path")
            && message.ends_with(&format!("with principalArn {pathed}")),
        "{message}"
    );
    a_removal_as_listed_is_carried_out(&worker, pathed).await;
}

/// The entry `listed` alone is still listed, and a removal naming it, as the dead letter
/// says to send, removes it.
async fn a_removal_as_listed_is_carried_out(worker: &TestWorker, listed: &str) {
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(listed)])
    );
    drive(
        worker,
        &request("disassociate-portfolio-principal", "IAM", listed, json!({})),
    )
    .await;
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
}

/// A portfolio listing `listed`, and a removal of ROLE, which must end in one
/// `permanent` dead letter with `code`: the worker and that dead letter's message.
async fn remove_role_dead_lettered(
    listed: Vec<ListedPrincipal>,
    code: &str,
) -> (TestWorker, String) {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, listed);
    let worker = worker(catalog, &[]);
    drive(
        &worker,
        &request("disassociate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    let message = only_permanent_dead_letter(&worker, code);
    (worker, message)
}

/// A portfolio listing `listed` (a role named TeamA…), and a removal of it with the name
/// in lower case, which must end in one `PrincipalArnCaseMismatch` dead letter: the
/// worker and that dead letter's message.
async fn remove_in_lower_case(listed: &str) -> (TestWorker, String) {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(listed)]);
    let worker = worker(catalog, &[]);
    let lower = listed.replace("TeamA", "teama");
    drive(
        &worker,
        &request("disassociate-portfolio-principal", "IAM", &lower, json!({})),
    )
    .await;
    let message = only_permanent_dead_letter(&worker, "PrincipalArnCaseMismatch");
    (worker, message)
}

/// The request names the role in another case than the portfolio lists it: AWS finds no
/// such association, but IAM names the same role either way, so the role still has
/// access and the removal is not done (before, it ended `already-satisfied`). The dead
/// letter names the spelling to send, and a removal with it is carried out.
#[tokio::test]
async fn removing_a_role_listed_in_another_case_is_not_done() {
    let (worker, message) = remove_in_lower_case(ROLE).await;
    assert!(
        message.contains("spelled TeamA-dev:")
            && message.ends_with(&format!("with principalArn {ROLE}")),
        "{message}"
    );
    a_removal_as_listed_is_carried_out(&worker, ROLE).await;
}

/// The name listed in two other spellings (another case, another path): the removal's
/// dead letter names both ARNs to send, so neither entry is left unreported (before, it
/// named the first alone).
#[tokio::test]
async fn a_removal_whose_name_is_listed_in_two_other_spellings_names_both() {
    let lower = ROLE.replace("TeamA", "teama");
    let pathed = ROLE.replace("role/", "role/dev/");
    let (_, message) =
        remove_role_dead_lettered(vec![iam(&lower), iam(&pathed)], "PrincipalArnCaseMismatch")
            .await;
    assert!(
        message.contains(&format!(" {lower} ")) && message.ends_with(&format!(" {pathed}")),
        "{message}"
    );
}

/// One role is one ledger item however its name is spelled: a removal decided later,
/// spelled `role/teama-dev`, ran first and found nothing; the earlier grant, spelled
/// `role/TeamA-dev`, delivered after it, is superseded instead of leaving the role its
/// access (before, the two spellings were two items and the grant was carried out).
#[tokio::test]
async fn a_stale_grant_is_superseded_by_a_later_removal_spelled_in_another_case() {
    stale_grant_behind_a_later_removal_of("teama-dev").await;
}

/// IAM names one role by its name whatever the path: a removal decided later, naming
/// `role/dev/teama-dev`, ran first and found nothing; the earlier grant of
/// `role/TeamA-dev`, delivered after it, is superseded before its call (before, the
/// name's item took the path, and the grant was carried out against the removal).
#[tokio::test]
async fn a_stale_grant_is_superseded_by_a_later_removal_under_another_path() {
    stale_grant_behind_a_later_removal_of("dev/teama-dev").await;
}

/// A removal of `role/<name>` decided at 10:00:05 run on an empty portfolio, then the
/// earlier grant of ROLE delivered: superseded before its call.
async fn stale_grant_behind_a_later_removal_of(name: &str) {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]);
    let worker = worker(catalog, &[]);
    drive(&worker, &removal_at(name, "10:00:05")).await;
    drive(&worker, &earlier_grant()).await;
    assert_later_removal_won(&worker, "already-satisfied");
    let associates = associate_calls(&worker);
    assert_eq!(associates, 0, "superseded before its call");
}

/// One of a removal's name items: `key_of` its change (the item with the path set
/// aside, or the one with the path that builds before kept).
fn name_item(body: &str, key_of: fn(&PortfolioChange) -> Option<LedgerKey>) -> LedgerKey {
    let request = parse_request(body).expect("a request");
    let Target::Portfolio(change) = request.target().1 else {
        panic!("a portfolio change");
    };
    key_of(change).expect("a name item")
}

/// `removal` carried out by a worker of its own, and the decision it recorded under
/// `key`: to put in another worker's ledger as an older build, or another removal,
/// would have left it.
async fn removal_recorded_under(removal: &str, key: &LedgerKey) -> AccessDecision {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]);
    let elsewhere = worker(catalog, &[]);
    drive(&elsewhere, removal).await;
    elsewhere
        .ledger
        .latest(key)
        .await
        .expect("a read")
        .expect("the removal, recorded under that key")
}

/// A worker whose ledger holds `recorded` under each key, the portfolio empty.
async fn worker_with_name_items(recorded: &[(LedgerKey, AccessDecision)]) -> TestWorker {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]);
    let worker = worker(catalog, &[]);
    for (key, decision) in recorded {
        worker
            .ledger
            .claim(
                key,
                decision,
                RecordedState::Pending,
                OffsetDateTime::now_utc(),
            )
            .await
            .expect("a claim");
    }
    worker
}

/// The earlier grant (10:00:00) of `role/dev/TeamA-dev`, or at `time`.
fn pathed_grant_at(time: &str) -> String {
    grant_at(&ROLE.replace("role/", "role/dev/"), time)
}

/// A removal of `role/dev/teama-dev` that an older build recorded, under the name's
/// item with the path, still stops an earlier grant of `role/dev/TeamA-dev` delivered
/// after it: a grant reads that item too.
#[tokio::test]
async fn a_removal_an_older_build_recorded_with_its_path_still_stops_a_stale_grant() {
    let removal = removal_at("dev/teama-dev", "10:00:05");
    let older_key = name_item(&removal, LedgerKey::iam_name_with_path);
    // The removal as that build's worker recorded it: only under the key with the path.
    let recorded = removal_recorded_under(&removal, &older_key).await;
    let worker = worker_with_name_items(&[(older_key, recorded)]).await;
    drive(&worker, &pathed_grant_at("10:00:00")).await;
    assert_eq!(associate_calls(&worker), 0, "superseded before its call");
    let outcome = only_outcome(&worker);
    assert_eq!(outcome["outcome"], "superseded", "{outcome}");
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
}

/// The two name items disagree, one holding a removal decided at 10:00:01, the other a
/// removal at 10:00:05, either way round (an older build recorded one, with the path;
/// this build the other, the path set aside). A grant decided at 10:00:03 goes by the
/// later of the two, and is superseded.
#[tokio::test]
async fn a_grant_goes_by_the_later_of_the_two_name_items() {
    for later_with_path in [true, false] {
        let earlier = removal_at("dev/teama-dev", "10:00:01");
        let later = removal_at("dev/teama-dev", "10:00:05");
        let (set_aside_body, with_path_body) = if later_with_path {
            (&earlier, &later)
        } else {
            (&later, &earlier)
        };
        let set_aside = name_item(set_aside_body, LedgerKey::iam_name);
        let with_path = name_item(with_path_body, LedgerKey::iam_name_with_path);
        let recorded = [
            (
                set_aside.clone(),
                removal_recorded_under(set_aside_body, &set_aside).await,
            ),
            (
                with_path.clone(),
                removal_recorded_under(with_path_body, &with_path).await,
            ),
        ];
        let worker = worker_with_name_items(&recorded).await;
        drive(&worker, &pathed_grant_at("10:00:03")).await;
        assert_eq!(
            associate_calls(&worker),
            0,
            "superseded before its call (the later removal with the path: {later_with_path})"
        );
        let outcome = only_outcome(&worker);
        assert_eq!(outcome["outcome"], "superseded", "{outcome}");
    }
}

/// A portfolio id in capitals is the same ledger item as the id Service Catalog issued
/// (SPEC §2's pattern takes either case, and AWS's pages do not say whether Service
/// Catalog tells them apart): the earlier grant written so, delivered after the later
/// removal, is superseded before its call.
#[tokio::test]
async fn a_stale_grant_naming_the_portfolio_in_capitals_is_superseded_by_a_later_removal() {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]);
    let worker = worker(catalog, &[]);
    drive(&worker, &removal_at("TeamA-dev", "10:00:05")).await;
    let grant = earlier_grant().replace(PORTFOLIO, &PORTFOLIO.to_ascii_uppercase());
    assert_ne!(grant, earlier_grant());
    drive(&worker, &grant).await;
    assert_later_removal_won(&worker, "already-satisfied");
    let associates = associate_calls(&worker);
    assert_eq!(associates, 0, "superseded before its call");
}

/// A grant of `arn` decided at `time` (UTC, 2026-11-30).
fn grant_at(arn: &str, time: &str) -> String {
    request(
        "associate-portfolio-principal",
        "IAM",
        arn,
        json!({"requestedAt": format!("2026-11-30T{time}Z")}),
    )
}

/// A removal of `role/<name>` decided at `time` (UTC, 2026-11-30).
fn removal_at(name: &str, time: &str) -> String {
    request(
        "disassociate-portfolio-principal",
        "IAM",
        &format!("arn:aws:iam::111122223333:role/{name}"),
        json!({"requestedAt": format!("2026-11-30T{time}Z")}),
    )
}

/// A grant stopped by a later removal of its name in another spelling leaves its own
/// spelling's item as it was: a removal of that spelling decided between the two still
/// removes its entry (the removal of the other spelling does not).
#[tokio::test]
async fn a_removal_between_a_stopped_grant_and_the_later_removal_still_removes_its_spelling() {
    let lower = ROLE.replace("TeamA", "teama");
    let catalog =
        MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(ROLE), iam(&lower)]);
    let worker = worker(catalog, &[]);
    drive(&worker, &removal_at("teama-dev", "10:00:05")).await;
    drive(&worker, &earlier_grant()).await;
    drive(&worker, &removal_at("TeamA-dev", "10:00:02")).await;
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
    let removal = outcomes(&worker).pop().expect("the removal's outcome");
    assert_eq!(removal["outcome"], "succeeded", "{removal}");
}

/// The grant was associated and its confirm waits when a removal decided later, spelled
/// `role/teama-dev`, runs: its disassociate finds nothing and its list, lagging, does not
/// show `role/TeamA-dev` yet, so it ends `already-satisfied`. The grant's confirm then
/// sees its entry, and the later removal of the name: it removes the entry it added and
/// ends `superseded`, where it ended `succeeded` and the role kept its access.
#[tokio::test]
async fn a_grant_that_landed_before_a_later_removal_of_its_name_is_removed() {
    let (worker, _) = confirmed_after_removal_of("teama-dev").await;
    assert_later_removal_won(&worker, "already-satisfied");
}

/// As above, but the grant's confirm runs out of attempts (its lists throttled) instead
/// of seeing its entry: a dead letter after an associate that landed yields to the later
/// removal of the name as it does to a later removal of its own spelling. It removes
/// its entry and ends `superseded`, where it was dead-lettered `exhausted` and the role
/// kept its access against the removal's `already-satisfied` (found by review).
#[tokio::test]
async fn a_grant_exhausted_at_its_confirm_yields_to_a_later_removal_of_its_name() {
    let (worker, confirm) = confirming_behind_a_removal_of_the_name(&earlier_grant()).await;
    drive(&worker, &confirm).await;
    assert_later_removal_won(&worker, "already-satisfied");
    assert_no_dead_letter(&worker);
}

/// A grant of ROLE associated, the list one call behind and the confirm's first two
/// lists throttled (with `MAX_ATTEMPTS` 2, all its attempts), then a removal of
/// `role/teama-dev` decided later carried out: the worker and the grant's confirm step.
async fn confirming_behind_a_removal_of_the_name(grant: &str) -> (TestWorker, String) {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![])
        .with_list_lag(1)
        // The grant's list and associate, the removal's disassociate and list, then the
        // confirm's two lists.
        .with_errors([None, None, None, None, throttled(), throttled()]);
    let worker = worker(catalog, &[("MAX_ATTEMPTS", "2")]);
    let confirm = deliver_once(&worker, grant, "g-1").await;
    drive(&worker, &removal_at("teama-dev", "10:00:05")).await;
    (worker, confirm)
}

/// Delivers `body` once: the one step it stores on the work queue.
async fn deliver_once(worker: &TestWorker, body: &str, message_id: &str) -> String {
    let before = worker.queues.sent_to(&worker.config.work_queue).len();
    function_handler(
        worker,
        LambdaEvent::new(record(body, message_id), Context::default()),
    )
    .await
    .expect("a batch response");
    let work = worker.queues.sent_to(&worker.config.work_queue);
    assert_eq!(work.len(), before + 1, "one next step");
    work[before].body.clone()
}

fn assert_no_dead_letter(worker: &TestWorker) {
    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
}

/// A grant with `notAfter`, associated, whose confirm runs out of attempts behind a later
/// removal of its name undoes its entry; when that undo is dead-lettered too (its ledger
/// reads failing), the grant's expiry still ends the entry at `notAfter`, as it did when
/// the grant itself was dead-lettered: nothing else takes that spelling away (found by
/// review).
#[tokio::test]
async fn a_timed_grant_whose_undo_toward_a_removal_of_its_name_is_dead_lettered_still_expires() {
    let not_after = OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let grant = request(
        "associate-portfolio-principal",
        "IAM",
        ROLE,
        json!({
            "requestedAt": "2026-11-30T10:00:00Z",
            "notAfter": not_after.format(&Rfc3339).expect("a time"),
        }),
    );
    let (worker, confirm) = confirming_behind_a_removal_of_the_name(&grant).await;
    let retry = deliver_once(&worker, &confirm, "c-1").await;
    let undo = deliver_once(&worker, &retry, "c-2").await;
    assert_eq!(json_of_body(&undo)["progress"]["purpose"], "undo", "{undo}");
    worker.ledger.set_faults([true, true]);
    drive(&worker, &undo).await;
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
    let ends: Vec<Value> = outcomes(&worker)
        .iter()
        .map(|o| json!([o["action"], o["trigger"], o["outcome"], o["errorClass"]]))
        .collect();
    assert_eq!(
        ends,
        [
            json!([
                "disassociate-portfolio-principal",
                null,
                "already-satisfied",
                null
            ]),
            json!([
                "associate-portfolio-principal",
                null,
                "dead-lettered",
                "exhausted"
            ]),
            json!([
                "disassociate-portfolio-principal",
                "expiry",
                "succeeded",
                null
            ])
        ]
    );
}

/// A removal of `role/TeamA-dev` whose disassociate landed runs out of attempts at its
/// confirm, behind a later grant of its spelling (associated again on a stale list) and a
/// still later removal of `role/teama-dev` (which found nothing, its list lagging). It
/// restores the later grant's state, as behind any later decision, and that undo goes by
/// the removal of the name: the entry ends removed. A removal does not end `superseded`
/// behind the removal of the name with nothing done, which left the entry listed with
/// nothing reported (found by review of the change that made dead letters read the name).
#[tokio::test]
async fn a_removal_exhausted_behind_a_later_grant_and_a_later_removal_of_the_name_removes_it() {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(ROLE)])
        .with_list_lag(1)
        // The removal's disassociate; the grant's list and associate; the later
        // removal's disassociate and list; the first removal's two confirm lists.
        .with_errors([None, None, None, None, None, throttled(), throttled()]);
    let worker = worker(catalog, &[("MAX_ATTEMPTS", "2")]);
    let confirm = deliver_once(&worker, &removal_at("TeamA-dev", "10:00:00"), "r-1").await;
    let grant = grant_at(ROLE, "10:00:01");
    drive(&worker, &grant).await;
    drive(&worker, &removal_at("teama-dev", "10:00:05")).await;
    drive(&worker, &confirm).await;
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
}

/// The grant above, undone toward the later removal, leaves its own spelling's item as
/// it was: a copy of its confirm step (SQS delivers at least once), finding the entry
/// gone, ends `superseded` at its first list, as behind a removal of its own spelling,
/// instead of listing on to the poll deadline and a `timed-out` dead letter.
#[tokio::test]
async fn a_copy_of_a_confirm_undone_toward_a_removal_of_the_name_ends_superseded() {
    let (worker, confirm) = confirmed_after_removal_of("teama-dev").await;
    drive(&worker, &confirm).await;
    let ends: Vec<Value> = outcomes(&worker)
        .iter()
        .map(|o| json!([o["action"], o["outcome"]]))
        .collect();
    assert_eq!(
        ends,
        [
            json!(["disassociate-portfolio-principal", "already-satisfied"]),
            json!(["associate-portfolio-principal", "superseded"]),
            json!(["associate-portfolio-principal", "superseded"])
        ]
    );
    assert_no_dead_letter(&worker);
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
}

/// Two grants of `role/TeamA-dev` confirming when a later removal of `role/teama-dev`
/// runs: the first one's confirm removes the entry; the second one's, finding it gone,
/// ends `superseded` too rather than waiting to see it listed.
#[tokio::test]
async fn two_grants_of_one_spelling_both_yield_to_a_later_removal_of_the_name() {
    let lower = ROLE.replace("TeamA", "teama");
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(&lower)])
        .with_list_lag(1);
    let worker = worker(catalog, &[]);
    let first = grant_at(ROLE, "09:59:00");
    for (grant, id) in [(first, "g-0"), (earlier_grant(), "g-1")] {
        function_handler(
            &worker,
            LambdaEvent::new(record(&grant, id), Context::default()),
        )
        .await
        .expect("a batch response");
    }
    let work = worker.queues.sent_to(&worker.config.work_queue);
    let [first_confirm, second_confirm] = work.as_slice() else {
        panic!("both grants confirming, not {work:#?}");
    };
    drive(&worker, &removal_at("teama-dev", "10:00:05")).await;
    drive(&worker, &first_confirm.body).await;
    drive(&worker, &second_confirm.body).await;
    let ends: Vec<Value> = outcomes(&worker)
        .iter()
        .map(|o| o["outcome"].clone())
        .collect();
    assert_eq!(ends, ["succeeded", "superseded", "superseded"]);
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
}

/// The grant's associate timed out without landing; a removal of the name decided later,
/// spelled otherwise, ran and found nothing. The grant's retry, which may have submitted,
/// is not carried out again: it ends `superseded`, with the entry it may have added
/// removed (before, it associated again and the role kept its access).
#[tokio::test]
async fn a_grant_retried_after_a_later_removal_of_its_name_is_not_carried_out() {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![])
        .with_errors([None, service_error(ErrorKind::Timeout, "Timeout")]);
    let worker = worker(catalog, &[]);
    function_handler(
        &worker,
        LambdaEvent::new(record(&earlier_grant(), "g-1"), Context::default()),
    )
    .await
    .expect("a batch response");
    let retry = worker.queues.sent_to(&worker.config.work_queue)[0]
        .body
        .clone();
    assert_eq!(json_of_body(&retry)["progress"]["maybeSubmitted"], true);
    drive(&worker, &removal_at("teama-dev", "10:00:05")).await;
    drive(&worker, &retry).await;
    assert_later_removal_won(&worker, "already-satisfied");
    let associates = associate_calls(&worker);
    assert_eq!(associates, 1, "only the associate that timed out");
}

fn json_of_body(body: &str) -> Value {
    serde_json::from_str(body).expect("JSON body")
}

/// A grant of `arn` whose `notAfter` is 3 s away.
fn grant_for_3_seconds(arn: &str) -> String {
    grant_for(arn, 3)
}

/// A grant of `arn` whose `notAfter` is `seconds` away.
fn grant_for(arn: &str, seconds: i64) -> String {
    let not_after = OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    request(
        "associate-portfolio-principal",
        "IAM",
        arn,
        json!({"notAfter": not_after.format(&Rfc3339).expect("a time")}),
    )
}

/// On a portfolio listing `listed`, a grant of `granted` for 3 s carried out, then a
/// removal of `removed` decided after it: the worker, and the grant's expiry step, not
/// yet delivered.
async fn grant_then_removal(listed: &str, granted: &str, removed: &str) -> (TestWorker, String) {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(listed)]);
    let worker = worker(catalog, &[]);
    let expiry = drive_to_expiry(&worker, &grant_for_3_seconds(granted)).await;
    drive(
        &worker,
        &request(
            "disassociate-portfolio-principal",
            "IAM",
            removed,
            json!({}),
        ),
    )
    .await;
    (worker, expiry)
}

/// The portfolio lists `role/teama-dev`; a grant of `role/TeamA-dev` with `notAfter`
/// adds that spelling, and a later removal of `role/teama-dev` leaves it (reported as
/// residual access). The grant's expiry still removes its entry at `notAfter`: the
/// removal, of another spelling, is not its own decision's end.
#[tokio::test]
async fn a_removal_in_another_case_does_not_cancel_a_grants_expiry() {
    let lower = ROLE.replace("TeamA", "teama");
    let (worker, expiry) = grant_then_removal(&lower, ROLE, &lower).await;
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(ROLE)])
    );
    let removal = outcomes(&worker).pop().expect("the removal's outcome");
    assert_eq!(removal["outcome"], "succeeded");
    assert_eq!(removal["residualAccess"], json!([iam(ROLE)]));

    drive(&worker, &expiry).await;
    let expired = outcomes(&worker).pop().expect("the expiry's outcome");
    assert_eq!(
        (&expired["trigger"], &expired["outcome"]),
        (&json!("expiry"), &json!("succeeded")),
        "{expired}"
    );
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
}

/// Two grants of one role in two spellings, the later one ending later: Service Catalog
/// lists the spellings apart, each with its own ledger item, so the earlier grant's
/// expiry removes the spelling it added at its own end, and the later one's at its.
#[tokio::test]
async fn an_earlier_grant_spelled_otherwise_ends_with_the_later_grant() {
    let lower = ROLE.replace("TeamA", "teama");
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]);
    let worker = worker(catalog, &[]);
    let earlier = drive_to_expiry(&worker, &grant_for_3_seconds(ROLE)).await;
    let later = drive_to_expiry(&worker, &grant_for(&lower, 5)).await;
    drive(&worker, &earlier).await;
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(&lower)]),
        "the earlier spelling removed at its own end"
    );
    drive(&worker, &later).await;
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
}

/// A grant whose expiry removed its spelling while the portfolio still lists the name
/// spelled otherwise is recorded as ended, like any expired grant: its record delivered
/// again afterwards (sent before `notAfter`) is refused, not carried out a second time.
#[tokio::test]
async fn a_grant_delivered_again_after_its_expiry_is_not_carried_out_again() {
    let lower = ROLE.replace("TeamA", "teama");
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(ROLE)]);
    let worker = worker(catalog, &[]);
    let sent_at = OffsetDateTime::now_utc();
    let grant = grant_for_3_seconds(&lower);
    drive(&worker, &grant).await;
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(ROLE)])
    );
    let associates = || associate_calls(&worker);
    assert_eq!(associates(), 1);
    let before = worker.queues.sent_to(&worker.config.work_queue).len();

    function_handler(
        &worker,
        LambdaEvent::new(delivery(&grant, "again", sent_at, 2), Context::default()),
    )
    .await
    .expect("a batch response");
    let steps = worker.queues.sent_to(&worker.config.work_queue);
    for step in &steps[before..] {
        drive(&worker, &step.body).await;
    }
    assert_eq!(associates(), 1, "associated again after notAfter");
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(ROLE)])
    );
}

/// A grant's expiry that finds its own spelling gone (removed by hand) while the name is
/// listed in another spelling is done, with that spelling reported: it removes only the
/// entry its grant added, and the other is not its own (before, a dead letter said the
/// removal was not done).
#[tokio::test]
async fn an_expiry_that_finds_its_spelling_gone_reports_the_other() {
    expiry_finding_its_spelling_gone_reports_role(&ROLE.replace("TeamA", "teama")).await;
}

/// As above, the grant naming the role under another path.
#[tokio::test]
async fn an_expiry_that_finds_its_path_gone_reports_the_entry_under_another() {
    expiry_finding_its_spelling_gone_reports_role(&ROLE.replace("role/", "role/dev/")).await;
}

/// A timed grant of `granted` while the portfolio lists ROLE, its entry removed by hand
/// before its expiry: the expiry ends `already-satisfied` reporting ROLE, which stays.
async fn expiry_finding_its_spelling_gone_reports_role(granted: &str) {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(ROLE)]);
    let worker = worker(catalog, &[]);
    let grant = grant_for_3_seconds(granted);
    let expiry = drive_to_expiry(&worker, &grant).await;
    let parsed = parse_request(&grant).expect("valid");
    let Target::Portfolio(change) = parsed.target().1 else {
        panic!("a portfolio request");
    };
    worker
        .service_catalog
        .disassociate_principal(change)
        .await
        .expect("removed by hand");
    drive(&worker, &expiry).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert!(dead.is_empty(), "{dead:#?}");
    let expired = outcomes(&worker).pop().expect("the expiry's outcome");
    assert_eq!(expired["trigger"], "expiry", "{expired}");
    assert_eq!(expired["outcome"], "already-satisfied", "{expired}");
    assert_eq!(expired["residualAccess"], json!([iam(ROLE)]));
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(ROLE)])
    );
}

/// A removal of ROLE decided at 10:00:00, delivered after a grant of `granted` (the
/// same role spelled otherwise) decided at 10:00:05 was carried out: the latest decision
/// about the role is that grant, so the removal ends `already-satisfied` and reports the
/// grant's entry, which stays; no dead letter tells the operator to remove it. The
/// removal's ledger calls fail as `faults` scripts them (`true` fails one).
async fn stale_removal_after_a_later_grant_of(granted: &str, faults: &[bool]) {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]);
    let worker = worker(catalog, &[]);
    let grant = grant_at(granted, "10:00:05");
    drive(&worker, &grant).await;
    worker.ledger.set_faults(faults.iter().copied());
    drive(&worker, &removal_at("TeamA-dev", "10:00:00")).await;
    assert_no_dead_letter(&worker);
    let removal = outcomes(&worker).pop().expect("the removal's outcome");
    assert_eq!(removal["outcome"], "already-satisfied", "{removal}");
    assert_eq!(removal["residualAccess"], json!([iam(granted)]));
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(granted)])
    );
}

/// Before, the removal was dead-lettered `PrincipalArnCaseMismatch`, naming the grant's
/// entry to remove against the latest decision (found by review).
#[tokio::test]
async fn a_stale_removal_reports_the_entry_a_later_grant_in_another_case_made() {
    stale_removal_after_a_later_grant_of(&ROLE.replace("TeamA", "teama"), &[]).await;
}

/// Before, `PrincipalArnPathMismatch`, as above.
#[tokio::test]
async fn a_stale_removal_reports_the_entry_a_later_grant_under_another_path_made() {
    stale_removal_after_a_later_grant_of(&ROLE.replace("role/", "role/dev/"), &[]).await;
}

/// A stale removal of ROLE (decided 2026-11-30) delivered, on a clock two hours on,
/// after a later grant of the role under another path whose `notAfter` has passed and
/// whose expiry has not run yet: that grant no longer asks for access, so its entry is
/// named to remove (`PrincipalArnPathMismatch`), as any other entry of the name is.
#[tokio::test]
async fn a_stale_removal_names_the_entry_of_a_later_grant_past_its_end() {
    let pathed = ROLE.replace("role/", "role/dev/");
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]);
    let worker = worker(catalog, &[]);
    drive_to_expiry(&worker, &grant_for(&pathed, 3600)).await;
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(&pathed)])
    );
    let later = Invocation {
        clock: WallClock::ahead_by(time::Duration::hours(2)),
        ..Invocation::default()
    };
    worker
        .handle(record(&removal_at("TeamA-dev", "10:00:00"), "r-1"), &later)
        .await;
    let message = only_permanent_dead_letter(&worker, "PrincipalArnPathMismatch");
    assert!(message.ends_with(&format!(" {pathed}")), "{message}");
}

/// The list still shows the removed principal (it lags a disassociate made elsewhere),
/// beside the name in another case: the step asks again (`ListLag`) and reads no other
/// entry's item, whose answer could not change that (two ledger calls: the removal's
/// claim and its name's claim; before, a third read each attempt).
#[tokio::test]
async fn a_lagging_list_reads_no_other_spellings_item() {
    let lower = ROLE.replace("TeamA", "teama");
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(ROLE), iam(&lower)])
        .with_errors([service_error(
            ErrorKind::ResourceNotFound,
            "ResourceNotFoundException",
        )]);
    let worker = worker(catalog, &[]);
    let removal = request("disassociate-portfolio-principal", "IAM", ROLE, json!({}));
    let again = deliver_once(&worker, &removal, "r-1").await;
    assert_eq!(json_of_body(&again)["progress"]["attempt"], 2, "{again}");
    assert_eq!(worker.ledger.calls(), 2);
}

/// As `a_stale_removal_reports_the_entry_a_later_grant_under_another_path_made`, the
/// read of the grant's entry failing once (after the removal's claim and its name's
/// claim): the step repeats, where the entry it could not read was named to
/// remove, against the later grant (found by review).
#[tokio::test]
async fn a_stale_removal_that_cannot_read_the_later_grant_repeats_rather_than_name_it() {
    stale_removal_after_a_later_grant_of(
        &ROLE.replace("role/", "role/dev/"),
        &[false, false, true],
    )
    .await;
}

/// The name as listed is never cut off the message: with an ARN too long for it, the
/// ARN is named as the request's, with the name spelled as listed, last.
#[tokio::test]
async fn the_name_listed_in_another_case_is_never_cut_from_the_message() {
    let long = format!("arn:aws:iam::111122223333:role/{}/TeamA", "p".repeat(950));
    let (_, message) = remove_in_lower_case(&long).await;
    assert!(
        message.ends_with("the request's principalArn, its name spelled TeamA"),
        "{message}"
    );
}

#[tokio::test]
async fn removing_a_pattern_reports_the_roles_it_covered_that_stay() {
    let other = "arn:aws:iam::444455556666:role/Finance";
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(ROLE), pattern(PATTERN), iam(other)]);
    let worker = worker(catalog, &[]);
    drive(
        &worker,
        &request(
            "disassociate-portfolio-principal",
            "IAM_PATTERN",
            PATTERN,
            json!({}),
        ),
    )
    .await;
    let outcome = only_outcome(&worker);
    assert_eq!(outcome["outcome"], "succeeded");
    assert_eq!(
        outcome["residualAccess"],
        json!([{"principalType": "IAM", "principalArn": ROLE}])
    );
}

#[tokio::test]
async fn a_principal_not_associated_is_already_satisfied() {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]);
    let worker = worker(catalog, &[]);
    drive(
        &worker,
        &request("disassociate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    let outcome = only_outcome(&worker);
    assert_eq!(outcome["outcome"], "already-satisfied");
    assert_eq!(outcome["residualAccess"], json!([]));
    assert_eq!(
        worker.service_catalog.calls(),
        [
            CatalogCall::Disassociate(ROLE.to_owned()),
            CatalogCall::List
        ]
    );
}

/// The trap of the seed page: an association under the other type answers
/// ResourceNotFound, which must not pass for "already gone".
#[tokio::test]
async fn an_association_under_the_other_type_is_a_principal_type_mismatch() {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![pattern(ROLE)]);
    let worker = worker(catalog, &[]);
    drive(
        &worker,
        &request("disassociate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    let message = only_permanent_dead_letter(&worker, "PrincipalTypeMismatch");
    // The advice is one that can be followed: the worker refuses a request naming
    // IAM_PATTERN for an ARN with an account id, so the association is removed by hand.
    assert!(
        message.contains("principal type IAM_PATTERN")
            && message.contains("--principal-type IAM_PATTERN")
            && message.ends_with(&format!("--principal-arn '{ROLE}'"))
            && !message.contains("send the request again"),
        "{message}"
    );
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![pattern(ROLE)])
    );
    drive(
        &worker,
        &request(
            "disassociate-portfolio-principal",
            "IAM_PATTERN",
            ROLE,
            json!({}),
        ),
    )
    .await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[1].attribute("ErrorClass"), Some("invalid-request"));
}

/// The command fits the dead letter's 1,024-byte message whatever the ARN's length:
/// an ARN too long for it is named as the request's instead of being cut short.
#[tokio::test]
async fn the_command_for_an_association_under_the_other_type_is_never_cut() {
    let long = format!(
        "arn:aws:iam::111122223333:role/{}TeamA",
        "path-segment/".repeat(74)
    );
    assert!(long.len() > 990 && long.len() <= 1000, "{}", long.len());
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![pattern(&long)]);
    let worker = worker(catalog, &[]);
    drive(
        &worker,
        &request("disassociate-portfolio-principal", "IAM", &long, json!({})),
    )
    .await;
    let message = only_permanent_dead_letter(&worker, "PrincipalTypeMismatch");
    assert!(
        message.contains("--principal-type IAM_PATTERN")
            && message.ends_with("--principal-arn <the request's principalArn, quoted>"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_portfolio_is_permanent() {
    let worker = worker(MemoryServiceCatalog::default(), &[]);
    for action in [
        "associate-portfolio-principal",
        "disassociate-portfolio-principal",
    ] {
        drive(&worker, &request(action, "IAM", ROLE, json!({}))).await;
    }
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    let codes: Vec<_> = dead
        .iter()
        .map(|m| (m.attribute("ErrorClass"), m.attribute("ErrorCode")))
        .collect();
    assert_eq!(
        codes,
        [(Some("permanent"), Some("ResourceNotFoundException")); 2]
    );
}

#[tokio::test]
async fn patterns_need_the_allow_flag_to_be_associated_but_not_to_be_removed() {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![pattern(PATTERN)]);
    let worker = worker(catalog, &[]);
    let associate = request(
        "associate-portfolio-principal",
        "IAM_PATTERN",
        "arn:aws:iam:::role/Other*",
        json!({}),
    );
    drive(&worker, &associate).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("forbidden"));
    assert_eq!(dead[0].attribute("ErrorCode"), Some("IamPatternNotAllowed"));
    assert!(worker.service_catalog.calls().is_empty());

    drive(
        &worker,
        &request(
            "disassociate-portfolio-principal",
            "IAM_PATTERN",
            PATTERN,
            json!({}),
        ),
    )
    .await;
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));

    let allowed = self::worker(
        MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]),
        &[("ALLOW_IAM_PATTERN_PRINCIPALS", "true")],
    );
    drive(&allowed, &associate).await;
    assert_eq!(only_outcome(&allowed)["outcome"], "succeeded");
}

/// PROTECTED_ACCOUNT_IDS names accounts the worker never grants anything in: a role of
/// one (its ARN's account) is not associated with a portfolio either. Its removal, which
/// only takes access away, is carried out.
#[tokio::test]
async fn a_principal_of_a_protected_account_is_never_associated() {
    let settings = [("PROTECTED_ACCOUNT_IDS", "444455556666,111122223333")];
    let granting = worker(
        MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]),
        &settings,
    );
    drive(
        &granting,
        &request("associate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    let dead = granting.queues.sent_to(&granting.config.dead_letter_queue);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("forbidden"));
    assert_eq!(dead[0].attribute("ErrorCode"), Some("ProtectedAccount"));
    assert!(granting.service_catalog.calls().is_empty());

    let listed = worker(
        MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(ROLE)]),
        &settings,
    );
    drive(
        &listed,
        &request("disassociate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    assert_eq!(only_outcome(&listed)["outcome"], "succeeded");
    assert_eq!(listed.service_catalog.principals(PORTFOLIO), Some(vec![]));
}

/// An undo written to associate (restoring a later grant of a role of a protected
/// account) whose fence finds a still later removal turns into a disassociate, which
/// PROTECTED_ACCOUNT_IDS allows. Judged as the associate its envelope wrote, it was
/// refused, and the role kept the access the latest decision removes.
#[tokio::test]
async fn an_undo_turned_into_a_removal_is_carried_out_for_a_protected_account() {
    use assignment_worker::ledger::{DecisionOrder, Intent, LedgerKey, RecordedState};
    let worker = worker(
        MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(ROLE)]),
        &[("PROTECTED_ACCOUNT_IDS", "111122223333")],
    );
    let removal = removal_at("TeamA-dev", "10:00:00");
    let still_later = removal_at("TeamA-dev", "10:00:09");
    let parsed = parse_request(&still_later).expect("valid");
    let order = DecisionOrder {
        requested_at: parsed.requested_at.expect("requestedAt"),
        intent: Intent::Revoke,
        correlation_id: Some("CHG-r-3".to_owned()),
        first_message_id: "r-3".to_owned(),
    };
    record_decision(
        &worker,
        &LedgerKey::of(parsed.target().1),
        order,
        RecordedState::Pending,
    )
    .await;
    let undo = json!({
        "request": json_of_body(&removal),
        "progress": {"step": "submit", "operation": "associate", "attempt": 1,
                     "firstReceivedAt": "2026-11-30T10:00:01Z",
                     "purpose": "undo", "requestedAt": "2026-11-30T10:00:00Z",
                     "firstMessageId": "r-1",
                     "supersededBy": {"correlationId": "CHG-g-1",
                                      "requestedAt": "2026-11-30T10:00:05Z"}},
    });
    drive(&worker, &undo.to_string()).await;

    assert_no_dead_letter(&worker);
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
}

#[tokio::test]
async fn a_portfolio_outside_the_allowed_list_is_forbidden() {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(ROLE)]);
    let worker = worker(catalog, &[("ALLOWED_PORTFOLIO_IDS", "port-other")]);
    drive(
        &worker,
        &request("disassociate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead[0].attribute("ErrorCode"), Some("PortfolioNotAllowed"));
    assert!(worker.service_catalog.calls().is_empty());
}

/// A removal naming the allowed portfolio in capitals is the same portfolio to the
/// ledger; refused as outside ALLOWED_PORTFOLIO_IDS it would leave the principal's
/// access in place.
#[tokio::test]
async fn a_removal_naming_an_allowed_portfolio_in_capitals_is_carried_out() {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(ROLE)]);
    let worker = worker(catalog, &[("ALLOWED_PORTFOLIO_IDS", PORTFOLIO)]);
    drive(
        &worker,
        &request(
            "disassociate-portfolio-principal",
            "IAM",
            ROLE,
            json!({ "portfolioId": PORTFOLIO.to_ascii_uppercase() }),
        ),
    )
    .await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert!(
        dead.iter()
            .all(|dead| dead.attribute("ErrorCode") != Some("PortfolioNotAllowed")),
        "{:?}",
        dead[0].attribute("ErrorCode")
    );
    assert!(!worker.service_catalog.calls().is_empty());
}

/// Service Catalog's answer to a call over its rate.
fn throttled() -> Option<CallError> {
    service_error(ErrorKind::RateLimited, "ThrottlingException")
}

fn service_error(kind: ErrorKind, code: &str) -> Option<CallError> {
    Some(CallError {
        kind,
        code: code.to_owned(),
        message: format!("{code} from the test"),
    })
}

#[tokio::test]
async fn the_pattern_limit_is_permanent_and_throttling_is_retried() {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![])
        .with_errors([
            None,
            service_error(ErrorKind::Rejected, "LimitExceededException"),
        ]);
    let worker = worker(catalog, &[("ALLOW_IAM_PATTERN_PRINCIPALS", "true")]);
    drive(
        &worker,
        &request(
            "associate-portfolio-principal",
            "IAM_PATTERN",
            PATTERN,
            json!({}),
        ),
    )
    .await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("permanent"));
    assert_eq!(
        dead[0].attribute("ErrorCode"),
        Some("LimitExceededException")
    );

    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(ROLE)])
        .with_errors([throttled(), throttled()]);
    let worker = self::worker(catalog, &[("BACKOFF_BASE_SECONDS", "1")]);
    drive(
        &worker,
        &request("disassociate-portfolio-principal", "IAM", ROLE, json!({})),
    )
    .await;
    let outcome = only_outcome(&worker);
    assert_eq!(outcome["outcome"], "succeeded");
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
    let retries = worker.queues.sent_to(&worker.config.work_queue);
    assert_eq!(json_of(&retries[0])["progress"]["step"], "submit");
    assert_eq!(json_of(&retries[1])["progress"]["attempt"], 3);
}

/// The list before an associate reads; it changes nothing. A timeout there is no
/// associate that may have landed: the grant stays refusable once its notAfter passes
/// (SPEC §3, `expired`), where it was carried out past it.
#[tokio::test]
async fn a_timed_out_list_before_an_associate_is_no_possible_submit() {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![])
        .with_errors([service_error(ErrorKind::Timeout, "Timeout")]);
    let worker = worker(catalog, &[]);
    let not_after = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let not_after = not_after.format(&Rfc3339).expect("a time");
    let grant = request(
        "associate-portfolio-principal",
        "IAM",
        ROLE,
        json!({"notAfter": not_after}),
    );
    function_handler(
        &worker,
        LambdaEvent::new(record(&grant, "g-1"), Context::default()),
    )
    .await
    .expect("a batch response");
    assert_eq!(worker.service_catalog.calls(), [CatalogCall::List]);
    let retry = json_of(&worker.queues.sent_to(&worker.config.work_queue)[0]);
    assert_eq!(retry["progress"]["step"], "submit");
    assert_eq!(retry["progress"]["attempt"], 2);
    assert_eq!(retry["progress"].get("maybeSubmitted"), None, "{retry}");
}

/// SPEC §11 for a portfolio principal: a later revoke delivered first wins over the
/// older grant delivered after it.
#[tokio::test]
async fn the_latest_decision_wins_for_a_portfolio_principal() {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(ROLE)]);
    let worker = worker(catalog, &[]);
    let revoke = removal_at("TeamA-dev", "10:00:05");
    let grant = earlier_grant();
    drive(&worker, &revoke).await;
    drive(&worker, &grant).await;
    assert_later_removal_won(&worker, "succeeded");
}

/// A removal superseded by a later grant changed nothing and listed nothing: its outcome
/// claims no residual access either way (an empty list would say nobody admits the
/// principal, which nothing checked).
#[tokio::test]
async fn a_superseded_removal_reports_no_residual_access() {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(ROLE), pattern(PATTERN)]);
    let worker = worker(catalog, &[]);
    let grant = grant_at(ROLE, "10:00:05");
    let removal = removal_at("TeamA-dev", "10:00:00");
    drive(&worker, &grant).await;
    drive(&worker, &removal).await;
    let outcome = outcomes(&worker)
        .into_iter()
        .find(|o| o["action"] == "disassociate-portfolio-principal")
        .expect("the removal's outcome");
    assert_eq!(outcome["outcome"], "superseded");
    assert!(outcome.get("residualAccess").is_none(), "{outcome}");
}

/// An associate of ROLE with `notAfter` 5 s away, driven to its end through its expiry,
/// on a portfolio that starts with `principals`: its two outcomes, the expiry's checked.
async fn associate_until_expiry(principals: Vec<ListedPrincipal>) -> Vec<Value> {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, principals);
    let worker = worker(catalog, &[]);
    // Far enough for the associate to be made well before it, on a loaded machine.
    let not_after = OffsetDateTime::now_utc() + time::Duration::seconds(5);
    let not_after = not_after.format(&Rfc3339).expect("a time");
    drive(
        &worker,
        &request(
            "associate-portfolio-principal",
            "IAM",
            ROLE,
            json!({"notAfter": not_after}),
        ),
    )
    .await;
    let outcomes = outcomes(&worker);
    assert_ne!(
        outcomes.first().map(|outcome| &outcome["errorClass"]),
        Some(&json!("expired")),
        "the set-up outran the grant's end"
    );
    assert_eq!(outcomes.len(), 2, "{outcomes:#?}");
    assert_eq!(outcomes[0]["expiresAt"], not_after.as_str());
    assert_eq!(outcomes[1]["trigger"], "expiry");
    assert_eq!(outcomes[1]["action"], "disassociate-portfolio-principal");
    assert_eq!(outcomes[1]["outcome"], "succeeded");
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
    outcomes
}

#[tokio::test]
async fn an_associate_with_not_after_is_removed_by_its_expiry() {
    let outcomes = associate_until_expiry(vec![]).await;
    assert_eq!(outcomes[0]["outcome"], "succeeded");
    assert_eq!(outcomes[1]["residualAccess"], json!([]));
}

#[tokio::test]
async fn an_associate_with_not_after_of_a_listed_principal_still_expires() {
    // The latest decision grants until `notAfter`, whatever granted the principal
    // before: without its expiry the principal would keep the portfolio for good.
    let outcomes = associate_until_expiry(vec![iam(ROLE)]).await;
    assert_eq!(outcomes[0]["outcome"], "already-satisfied");
}

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The samples in events/ make their change and wait for the list to confirm it.
#[tokio::test]
async fn the_portfolio_samples_make_their_change_and_wait_for_the_list() {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(ROLE), pattern(PATTERN)])
        .with_list_lag(5);
    let worker = worker(catalog, &[]);
    for name in ["associate.json", "disassociate.json"] {
        let response =
            function_handler(&worker, LambdaEvent::new(fixture(name), Context::default()))
                .await
                .expect("a batch response");
        assert!(response.batch_item_failures.is_empty(), "{name}");
    }
    let steps: Vec<Value> = worker
        .queues
        .sent_to(&worker.config.work_queue)
        .iter()
        .map(|m| {
            let progress = &json_of(m)["progress"];
            json!([progress["step"], progress["operation"]])
        })
        .collect();
    assert_eq!(
        steps,
        [
            json!(["confirm", "associate"]),
            json!(["confirm", "disassociate"])
        ]
    );
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![
            pattern(PATTERN),
            iam("arn:aws:iam::111122223333:role/Auditor")
        ])
    );
}

/// SPEC §4: a confirm envelope from the future would list forever; it ends at once.
#[tokio::test]
async fn a_confirm_envelope_submitted_in_the_future_ends_without_a_call() {
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]);
    let worker = worker(catalog, &[]);
    let future = (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&Rfc3339)
        .expect("a time");
    let body = json!({
        "request": serde_json::from_str::<Value>(&request(
            "associate-portfolio-principal", "IAM", ROLE, json!({})
        )).expect("JSON"),
        "progress": {"step": "confirm", "operation": "associate", "attempt": 1, "polls": 0,
                     "firstReceivedAt": future, "submittedAt": future},
    })
    .to_string();
    drive(&worker, &body).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead[0].attribute("ErrorClass"), Some("invalid-request"));
    assert_eq!(dead[0].attribute("ErrorCode"), Some("SubmittedAtInFuture"));
    assert!(worker.service_catalog.calls().is_empty());
}

/// A grant of ROLE (requestedAt 10:00:00) on an empty portfolio whose list lags `lag`
/// lists behind, run for its first step only: associated, its confirm step waiting on
/// the queue. The worker, the grant and the confirm step.
async fn associated_awaiting_confirm(lag: u32) -> (TestWorker, String, String) {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![])
        .with_list_lag(lag);
    let worker = worker(catalog, &[]);
    let grant = earlier_grant();
    function_handler(
        &worker,
        LambdaEvent::new(record(&grant, "g-1"), Context::default()),
    )
    .await
    .expect("a batch response");
    let confirm = worker.queues.sent_to(&worker.config.work_queue)[0]
        .body
        .clone();
    assert_eq!(
        serde_json::from_str::<Value>(&confirm).expect("JSON")["progress"]["step"],
        "confirm"
    );
    (worker, grant, confirm)
}

/// A grant of ROLE associated with its confirm waiting (the list one behind), then a
/// removal of `role/<name>` decided later carried out, then the confirm delivered: the
/// worker and the confirm step, to deliver again.
async fn confirmed_after_removal_of(name: &str) -> (TestWorker, String) {
    let (worker, _, confirm) = associated_awaiting_confirm(1).await;
    drive(&worker, &removal_at(name, "10:00:05")).await;
    drive(&worker, &confirm).await;
    (worker, confirm)
}

/// As `a_grant_that_landed_before_a_later_removal_of_its_name_is_removed`, for a
/// removal of the name under another path (`role/dev/TeamA-dev`) that found nothing:
/// the grant's confirm sees its entry and that removal, removes the entry, and ends
/// `superseded`.
#[tokio::test]
async fn a_grant_that_landed_before_a_later_removal_under_another_path_is_removed() {
    let (worker, _) = confirmed_after_removal_of("dev/TeamA-dev").await;
    assert_later_removal_won(&worker, "already-satisfied");
}

/// The list shows a principal's state, not an operation: once a later decision removed
/// the principal, a grant still confirming its associate would wait to the poll
/// deadline. It ends superseded instead (found by the chaos run).
#[tokio::test]
async fn a_confirm_overtaken_by_a_later_removal_ends_superseded() {
    let (worker, _) = confirmed_after_removal_of("TeamA-dev").await;
    assert_later_removal_won(&worker, "succeeded");
}

/// The associate landed after a later removal had run and found nothing (a slow
/// associate), and the list still lags behind it: the confirm sees the principal absent
/// and the removal as the latest decision. The principal is there all the same, so the
/// removal's state must be restored, not the grant merely reported superseded.
#[tokio::test]
async fn a_confirm_overtaken_by_a_removal_that_found_nothing_removes_the_principal() {
    use assignment_worker::ledger::{DecisionOrder, Intent, LedgerKey, RecordedState};
    let (worker, grant, confirm) = associated_awaiting_confirm(2).await;
    // The removal, decided later, claimed and found nothing before the associate landed.
    let parsed = assignment_worker::request::parse_request(&grant).expect("valid");
    let key = LedgerKey::of(parsed.target().1);
    let removal = DecisionOrder {
        requested_at: OffsetDateTime::parse("2026-11-30T10:00:05Z", &Rfc3339).expect("a time"),
        intent: Intent::Revoke,
        correlation_id: Some("CHG-removal".to_owned()),
        first_message_id: "r-1".to_owned(),
    };
    record_decision(&worker, &key, removal, RecordedState::Absent).await;

    drive(&worker, &confirm).await;
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
    let outcomes = outcomes(&worker);
    assert_eq!(
        outcomes.last().expect("an outcome")["outcome"],
        "superseded"
    );
}

/// Records `order` in the ledger as claimed and carried out to `state`, as another
/// request of the same principal would have.
async fn record_decision(
    worker: &TestWorker,
    key: &LedgerKey,
    order: DecisionOrder,
    state: RecordedState,
) {
    use assignment_worker::ledger::{AccessDecision, Ledger, RecordedState};
    let now = OffsetDateTime::now_utc();
    let decision = AccessDecision {
        order: order.clone(),
        not_after: None,
    };
    worker
        .ledger
        .claim(key, &decision, RecordedState::Pending, now)
        .await
        .expect("claim");
    worker
        .ledger
        .record(key, &order, state, None, now)
        .await
        .expect("record");
}

/// A removal's disassociate landed; a later grant then associated the principal again
/// and was recorded carried out. The removal's confirm lists the principal, which it
/// would wait to see gone until the poll deadline: overtaken by the grant, it makes the
/// grant's state again (an undo, here an associate that changes nothing) and ends
/// `superseded`, with the principal in place.
#[tokio::test]
async fn a_removal_overtaken_by_a_later_grant_ends_superseded_with_the_principal_in_place() {
    removal_overtaken_by_a_later_grant(&[]).await;
}

/// As above when the read of the name's item fails (after the entry's own item is read):
/// the confirm goes by the entry's own latest decision, as it did before the name's item
/// was read there, rather than listing once more for nothing.
#[tokio::test]
async fn a_confirm_whose_read_of_the_name_fails_goes_by_the_entrys_own_decision() {
    removal_overtaken_by_a_later_grant(&[false, true]).await;
}

/// The test above, with `ledger_faults` scripted for the calls of the removal's confirm.
async fn removal_overtaken_by_a_later_grant(ledger_faults: &[bool]) {
    use assignment_worker::ledger::{DecisionOrder, Intent, LedgerKey, RecordedState};
    let catalog = MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(ROLE)]);
    let worker = worker(catalog, &[]);
    let removal = request(
        "disassociate-portfolio-principal",
        "IAM",
        ROLE,
        json!({"requestedAt": "2026-11-30T09:00:00Z"}),
    );
    function_handler(
        &worker,
        LambdaEvent::new(record(&removal, "r-1"), Context::default()),
    )
    .await
    .expect("a batch response");
    let confirm = worker.queues.sent_to(&worker.config.work_queue)[0]
        .body
        .clone();
    assert_eq!(worker.service_catalog.principals(PORTFOLIO), Some(vec![]));
    // The grant, decided later: associated, and recorded as carried out.
    let parsed = parse_request(&removal).expect("valid");
    let (_, target) = parsed.target();
    let Target::Portfolio(change) = target else {
        panic!("a portfolio request");
    };
    worker
        .service_catalog
        .associate_principal(change)
        .await
        .expect("associated");
    let key = LedgerKey::of(target);
    let grant = DecisionOrder {
        requested_at: OffsetDateTime::parse("2026-11-30T10:00:00Z", &Rfc3339).expect("a time"),
        intent: Intent::Grant,
        correlation_id: Some("CHG-grant".to_owned()),
        first_message_id: "g-1".to_owned(),
    };
    record_decision(&worker, &key, grant, RecordedState::Present).await;

    worker.ledger.set_faults(ledger_faults.iter().copied());
    drive(&worker, &confirm).await;
    // At its first list (the second confirms the undo), not at the poll deadline.
    let lists = worker.service_catalog.calls();
    let lists = lists
        .iter()
        .filter(|call| **call == CatalogCall::List)
        .count();
    assert_eq!(lists, 2);
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(ROLE)])
    );
    assert_eq!(
        outcomes(&worker).last().expect("an outcome")["outcome"],
        "superseded"
    );
}

/// A removal of `role/TeamA-dev` undone toward a later grant of that spelling (its
/// associate landed), while a still later removal of `role/teama-dev` is the latest
/// decision about the role. On the undo's last attempt the confirm's read of the name's
/// item fails, and so does the read before its dead letter: not knowing the name's
/// latest decision, the undo is dead-lettered, not ended `superseded` by the entry's own
/// grant with the entry left listed behind the later removal of its name.
#[tokio::test]
async fn an_undo_whose_reads_of_the_name_fail_is_dead_lettered_not_ended_by_the_entrys_own_grant() {
    use assignment_worker::ledger::{DecisionOrder, Intent, LedgerKey, RecordedState};
    let worker = worker(
        MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![iam(ROLE)]),
        &[("MAX_ATTEMPTS", "2")],
    );
    let decided = |body: &str, intent, message_id: &str| {
        let parsed = parse_request(body).expect("valid");
        let order = DecisionOrder {
            requested_at: parsed.requested_at.expect("requestedAt"),
            intent,
            correlation_id: Some(format!("CHG-{message_id}")),
            first_message_id: message_id.to_owned(),
        };
        let Target::Portfolio(change) = parsed.target().1 else {
            panic!("a portfolio change");
        };
        let name = LedgerKey::iam_name(change).expect("an IAM name");
        (LedgerKey::of(parsed.target().1), name, order)
    };
    let removal = removal_at("TeamA-dev", "10:00:00");
    let grant = grant_at(ROLE, "10:00:01");
    let (entry, _, earlier) = decided(&removal, Intent::Revoke, "r-1");
    record_decision(&worker, &entry, earlier, RecordedState::Absent).await;
    let (entry, _, later_grant) = decided(&grant, Intent::Grant, "g-1");
    record_decision(&worker, &entry, later_grant, RecordedState::Present).await;
    let (_, name, of_the_name) =
        decided(&removal_at("teama-dev", "10:00:05"), Intent::Revoke, "n-1");
    record_decision(&worker, &name, of_the_name, RecordedState::Absent).await;
    let ago = |seconds| {
        (OffsetDateTime::now_utc() - time::Duration::seconds(seconds))
            .format(&Rfc3339)
            .expect("a time")
    };
    let confirm = json!({
        "request": json_of_body(&removal),
        "progress": {"step": "confirm", "operation": "associate", "attempt": 2, "polls": 0,
                     "firstReceivedAt": ago(60), "submittedAt": ago(30),
                     "purpose": "undo", "requestedAt": "2026-11-30T10:00:00Z",
                     "firstMessageId": "r-1",
                     "supersededBy": {"correlationId": "CHG-g-1",
                                      "requestedAt": "2026-11-30T10:00:01Z"}},
    });
    // The confirm's read of the entry's item passes, of the name's fails; so again for
    // the reads before the dead letter.
    worker.ledger.set_faults([false, true, false, true]);
    drive(&worker, &confirm.to_string()).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "{:?}", outcomes(&worker));
}

/// As `a_grant_exhausted_at_its_confirm_yields_to_a_later_removal_of_its_name`, but the
/// read of the name's item before the dead letter fails (the entry's own item is read
/// fine). Without that read the grant is dead-lettered by the entry's own decision,
/// though the associate landed behind a later removal of the name; its redrive (the
/// bare request) ends `superseded` and removes nothing. The message must say to check
/// the access.
#[tokio::test]
async fn a_grant_whose_name_read_fails_at_its_dead_letter_says_to_check_the_access() {
    let (worker, confirm) = confirming_behind_a_removal_of_the_name(&earlier_grant()).await;
    // The confirm's first attempt makes no ledger call (its list is throttled); on the
    // second, the entry's item is read, then the name's, which fails.
    worker.ledger.set_faults([false, true]);
    drive(&worker, &confirm).await;
    let removed = worker.service_catalog.principals(PORTFOLIO) == Some(vec![]);
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    let warned = dead.iter().any(|d| {
        d.attribute("ErrorMessage")
            .is_some_and(|m| m.contains("Check the access before redriving"))
    });
    assert!(
        removed || warned,
        "the role stays and the dead letter gives no sign: {dead:#?}"
    );
}

/// The `PrincipalArnCaseMismatch` message for a removal of `listed` spelled `teama`
/// whose first disassociate timed out (it may have landed), retried: the retry's
/// disassociate finds nothing, the list shows `listed`, and the ledger read before the
/// dead letter fails, so the redrive caution goes in front.
async fn cautioned_case_mismatch(listed: &str) -> String {
    let lower = listed.replace("TeamA", "teama");
    cautioned_mismatch(&lower, listed, "PrincipalArnCaseMismatch").await
}

/// As [`cautioned_case_mismatch`], for a removal of `removed` while the list shows
/// `listed`, which must end in one `permanent` dead letter with `code`.
async fn cautioned_mismatch(removed: &str, listed: &str, code: &str) -> String {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(listed)])
        .with_errors([service_error(ErrorKind::Timeout, "Timeout")]);
    let worker = worker(catalog, &[]);
    let removal = request(
        "disassociate-portfolio-principal",
        "IAM",
        removed,
        json!({}),
    );
    let retry = deliver_once(&worker, &removal, "r-1").await;
    assert_eq!(
        json_of_body(&retry)["progress"]["maybeSubmitted"],
        true,
        "{retry}"
    );
    // The retry's claim, its name's claims (two for an ARN with a path: the item with
    // the path set aside, and the one older builds keep) and the read of the listed
    // entry's item pass; the read before the dead letter fails.
    let name_claims = if removed.matches('/').count() > 1 {
        2
    } else {
        1
    };
    let passing = 1 + name_claims + 1;
    worker
        .ledger
        .set_faults((0..=passing).map(|call| call == passing));
    drive(&worker, &retry).await;
    let message = only_permanent_dead_letter(&worker, code);
    assert!(
        message.starts_with("Check the access before redriving: "),
        "{message}"
    );
    message
}

/// A removal in lower case whose first disassociate timed out (it may have landed),
/// retried; the retry's disassociate finds nothing and the list shows the name spelled
/// `TeamA` under a long path, so `PrincipalArnCaseMismatch` names the ARN to send. The
/// ledger read before the dead letter fails, so the redrive caution is put in front:
/// the message is sized for that, and never names a truncated ARN (another principal's).
#[tokio::test]
async fn a_cautioned_case_mismatch_never_cuts_the_listed_arn() {
    let listed = format!("arn:aws:iam::111122223333:role/{}/TeamA", "p".repeat(700));
    let message = cautioned_case_mismatch(&listed).await;
    assert!(
        message.ends_with("its name spelled TeamA"),
        "the listed ARN cut: {message}"
    );
}

/// A grant associated (the list lagging), a removal of the name decided later, spelled
/// `role/teama-dev`, run (it found nothing), and the grant's last confirm, at its poll
/// deadline, unable to read the name's item: `timed-out`. The associate landed behind
/// that removal, and a redrive (the bare request) ends `superseded` behind it and
/// removes nothing: the dead letter must say to check the access.
#[tokio::test]
async fn a_timed_out_grant_behind_a_later_removal_of_its_name_says_to_check_the_access() {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![])
        .with_list_lag(100);
    let worker = worker(catalog, &[]);
    let confirm = deliver_once(&worker, &earlier_grant(), "g-1").await;
    drive(&worker, &removal_at("teama-dev", "10:00:05")).await;
    assert_eq!(
        worker.service_catalog.principals(PORTFOLIO),
        Some(vec![iam(ROLE)])
    );
    // The confirm step at its poll deadline.
    let mut confirm = json_of_body(&confirm);
    let submitted_at = (OffsetDateTime::now_utc() - time::Duration::minutes(16))
        .format(&Rfc3339)
        .expect("a time");
    confirm["progress"]["submittedAt"] = json!(submitted_at);
    confirm["progress"]["polls"] = json!(12);
    // The confirm reads the entry's item, then fails to read the name's; the read
    // before the dead letter succeeds.
    worker.ledger.set_faults([false, true, false]);
    drive(&worker, &confirm.to_string()).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].attribute("ErrorClass"), Some("timed-out"));
    let message = dead[0]
        .attribute("ErrorMessage")
        .unwrap_or_default()
        .to_owned();
    // The operator redrives the dead letter: its body, the bare request.
    drive(&worker, &dead[0].body).await;
    let removed = worker.service_catalog.principals(PORTFOLIO) == Some(vec![]);
    assert!(
        removed || message.contains("Check the access before redriving"),
        "the role stays and the dead letter gave no sign: {message}"
    );
}

/// The `forbidden` dead letter's ErrorMessage for an IAM_PATTERN grant (its pattern
/// `pattern_bytes` long, within the 1,000 the worker takes) whose associate timed out, so
/// it may have landed, retried after ALLOW_IAM_PATTERN_PRINCIPALS was turned off. With
/// `read_fails`, the ledger read before the dead letter fails on the retry's last
/// attempt, so the redrive caution goes in front.
async fn refused_after_a_submit(pattern_bytes: usize, read_fails: bool) -> String {
    let long = format!("arn:aws:iam:::role/{}*", "p".repeat(pattern_bytes));
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![])
        .with_errors([None, service_error(ErrorKind::Timeout, "Timeout")]);
    let mut worker = worker(
        catalog,
        &[
            ("ALLOW_IAM_PATTERN_PRINCIPALS", "true"),
            ("MAX_ATTEMPTS", "2"),
        ],
    );
    let grant = request(
        "associate-portfolio-principal",
        "IAM_PATTERN",
        &long,
        json!({}),
    );
    let retry = deliver_once(&worker, &grant, "g-1").await;
    assert_eq!(
        json_of_body(&retry)["progress"]["maybeSubmitted"],
        true,
        "{retry}"
    );
    worker.config.guardrails.allow_iam_pattern_principals = false;
    if read_fails {
        worker.ledger.set_faults([true]);
    }
    drive(&worker, &retry).await;
    only_dead_letter(&worker, "forbidden", "IamPatternNotAllowed")
}

const REFUSED_AFTER_A_SUBMIT: &str = "Refused after an earlier submit of this change, which \
    may have carried it out all the same (check the access): associating an IAM_PATTERN \
    principal needs ALLOW_IAM_PATTERN_PRINCIPALS=true";

/// A 900-byte pattern: the note that an earlier submit may have carried the grant out
/// survives the 1 KiB cut, or the dead letter would read as a refusal that changed
/// nothing while the pattern may stay associated.
#[tokio::test]
async fn a_refusal_after_a_long_patterns_submit_still_says_to_check_the_access() {
    let message = refused_after_a_submit(900, false).await;
    assert!(
        message.starts_with("Refused after an earlier submit"),
        "a refusal after a submit that may have landed, with no sign: {message}"
    );
}

/// As above: behind the note that comes first, the refusal still names the setting
/// that refused it.
#[tokio::test]
async fn a_refusal_after_a_long_patterns_submit_still_names_the_flag() {
    let message = refused_after_a_submit(900, false).await;
    assert!(
        message.starts_with(REFUSED_AFTER_A_SUBMIT),
        "the refusal's reason is cut: {message}"
    );
}

/// A 600-byte pattern, the ledger read before the dead letter failing: the redrive
/// caution goes in front, and the note the README tells the operator to look for (the
/// guardrail was tightened while the request was under way) follows it, not cut.
#[tokio::test]
async fn a_cautioned_refusal_after_a_submit_keeps_its_note() {
    let message = refused_after_a_submit(600, true).await;
    let behind_the_caution = message
        .strip_prefix("Check the access before redriving: ")
        .and_then(|caution| caution.split_once("without undoing the change. "));
    assert!(
        behind_the_caution.is_some_and(|(_, note)| note.starts_with(REFUSED_AFTER_A_SUBMIT)),
        "the note the README names is cut behind the caution: {message}"
    );
}

/// As above with a 700-byte pattern: the setting the refusal names is not cut.
#[tokio::test]
async fn a_cautioned_refusal_after_a_submit_still_names_the_flag() {
    let message = refused_after_a_submit(700, true).await;
    assert!(
        message.starts_with("Check the access before redriving: ")
            && message.contains(REFUSED_AFTER_A_SUBMIT),
        "the refusal's reason is cut behind caution and note: {message}"
    );
}

/// A worker that ran a request naming a pattern-shaped ARN of 1,000 bytes (the most the
/// worker and AWS take) with `action` and `principal_type`, and the message of its one
/// dead letter, which must be of `class` with `code`.
async fn longest_pattern_dead_letter(
    action: &str,
    principal_type: &str,
    class: &str,
    code: &str,
) -> (TestWorker, String) {
    let long = format!("arn:aws:iam:::role/{}*", "p".repeat(980));
    assert_eq!(long.len(), 1000);
    let worker = worker(
        MemoryServiceCatalog::default().with_portfolio(PORTFOLIO, vec![]),
        &[],
    );
    drive(&worker, &request(action, principal_type, &long, json!({}))).await;
    let message = only_dead_letter(&worker, class, code);
    (worker, message)
}

/// A first delivery, nothing in front: a pattern of 1,000 bytes does not push "needs
/// ALLOW_IAM_PATTERN_PRINCIPALS=true" past the cut.
#[tokio::test]
async fn a_refused_pattern_of_the_longest_length_still_names_the_flag() {
    let (_, message) = longest_pattern_dead_letter(
        "associate-portfolio-principal",
        "IAM_PATTERN",
        "forbidden",
        "IamPatternNotAllowed",
    )
    .await;
    assert!(
        message.contains("ALLOW_IAM_PATTERN_PRINCIPALS"),
        "the flag to set is cut: {message}"
    );
}

/// README: `PrincipalTypeMismatch` (invalid-request) "names the type to send". A
/// pattern-shaped ARN of 1,000 bytes sent as `IAM`: the type to send is not cut (in the
/// dead letter and in the outcome event).
#[tokio::test]
async fn a_long_principal_type_mismatch_still_names_the_type_to_send() {
    let (worker, message) = longest_pattern_dead_letter(
        "disassociate-portfolio-principal",
        "IAM",
        "invalid-request",
        "PrincipalTypeMismatch",
    )
    .await;
    assert!(
        message.contains("send principalType IAM_PATTERN"),
        "the type to send is cut: {message}"
    );
    let outcome = only_outcome(&worker);
    assert!(
        outcome["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("send principalType IAM_PATTERN")),
        "{outcome}"
    );
}

/// A removal whose role the list shows under a long path, behind the redrive caution:
/// `PrincipalArnPathMismatch` says to send the ARN as listed, and never names it cut
/// (another principal's ARN) when it does not fit.
#[tokio::test]
async fn a_cautioned_path_mismatch_never_cuts_the_listed_arn() {
    let listed = format!(
        "arn:aws:iam::111122223333:role/{}/TeamA-dev",
        "p".repeat(700)
    );
    let message = cautioned_mismatch(ROLE, &listed, "PrincipalArnPathMismatch").await;
    assert!(
        message.starts_with("Check the access before redriving: ")
            && message.ends_with(
                "the principalArn ListPrincipalsForPortfolio lists for that name (not one a \
                 later grant still in force made)"
            )
            && !message.contains("ppp"),
        "the listed ARN cut: {message}"
    );
}

/// `spelled_as_listed`'s fallback (ARN too long to name): a long name (within the 1,000
/// bytes the worker takes for the ARN) does not push "send a
/// disassociate-portfolio-principal request" past the cut.
#[tokio::test]
async fn a_long_name_listed_in_another_case_keeps_the_instruction() {
    let listed = format!("arn:aws:iam::111122223333:role/TeamA{}", "x".repeat(900));
    assert!(listed.len() <= 1000);
    let (_, message) = remove_in_lower_case(&listed).await;
    assert!(
        message.contains("send a disassociate-portfolio-principal request"),
        "the instruction is cut: {message}"
    );
}

/// As above behind the redrive caution (a removal whose disassociate timed out, the read
/// before the dead letter failing): a name of 760 bytes is not cut; too long to fit, it
/// is left out rather than cut.
#[tokio::test]
async fn a_cautioned_long_name_listed_in_another_case_is_not_cut() {
    let name = format!("TeamA{}", "x".repeat(760));
    let listed = format!("arn:aws:iam::111122223333:role/{name}");
    let message = cautioned_case_mismatch(&listed).await;
    assert!(
        message.starts_with("Check the access before redriving: "),
        "{message}"
    );
    assert!(
        message.ends_with("its name spelled as ListPrincipalsForPortfolio lists it")
            && !message.contains("TeamA"),
        "the name as listed is cut: {message}"
    );
}
/// The in-memory Service Catalog, with each associate held until `release`: another
/// invocation runs meanwhile, as a concurrent Lambda would between a step's list and its
/// associate.
#[derive(Default)]
struct HeldAssociate {
    catalog: MemoryServiceCatalog,
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl ServiceCatalog for HeldAssociate {
    async fn associate_principal(&self, change: &PortfolioChange) -> Result<(), CallError> {
        self.reached.notify_one();
        self.release.notified().await;
        self.catalog.associate_principal(change).await
    }

    async fn disassociate_principal(&self, change: &PortfolioChange) -> Result<(), CallError> {
        self.catalog.disassociate_principal(change).await
    }

    async fn list_principals(
        &self,
        change: &PortfolioChange,
    ) -> Result<Vec<ListedPrincipal>, CallError> {
        self.catalog.list_principals(change).await
    }
}

/// The in-memory ledger, whose reads of an IAM name's item (`LedgerKey::iam_name`)
/// answer `AccessDeniedException` (not transient) at the reads `refused` picks, counted
/// from 0: an IAM policy or a table's key policy changed under the function, say.
struct NameReadRefused {
    ledger: MemoryLedger,
    name_reads: AtomicUsize,
    refused: fn(usize) -> bool,
    /// Throttled (transient) instead of refused for good.
    transient: bool,
}

impl NameReadRefused {
    fn check(&self, key: &LedgerKey) -> Result<(), CallError> {
        if key.as_str().starts_with("portfolio-iam-name|")
            && (self.refused)(self.name_reads.fetch_add(1, Ordering::SeqCst))
        {
            let transient = self.transient;
            return Err(CallError {
                kind: if transient {
                    ErrorKind::RateLimited
                } else {
                    ErrorKind::AccessDenied
                },
                code: if transient {
                    "ThrottlingException"
                } else {
                    "AccessDeniedException"
                }
                .to_owned(),
                message: "not authorized to perform dynamodb:GetItem".to_owned(),
            });
        }
        Ok(())
    }
}

impl Ledger for NameReadRefused {
    async fn claim(
        &self,
        key: &LedgerKey,
        decision: &AccessDecision,
        state: RecordedState,
        now: OffsetDateTime,
    ) -> LedgerResult<ClaimAnswer> {
        self.ledger.claim(key, decision, state, now).await
    }

    async fn latest(&self, key: &LedgerKey) -> LedgerResult<Option<AccessDecision>> {
        self.check(key)?;
        self.ledger.latest(key).await
    }

    async fn latest_with_state(
        &self,
        key: &LedgerKey,
    ) -> LedgerResult<Option<(AccessDecision, RecordedState)>> {
        self.check(key)?;
        self.ledger.latest_with_state(key).await
    }

    async fn record(
        &self,
        key: &LedgerKey,
        order: &DecisionOrder,
        state: RecordedState,
        operation_request_id: Option<&str>,
        now: OffsetDateTime,
    ) -> LedgerResult<RecordAnswer> {
        self.ledger
            .record(key, order, state, operation_request_id, now)
            .await
    }
}

type RefusingWorker =
    Worker<ScriptedIdentityCenter, RecordingQueues, NameReadRefused, HeldAssociate>;

/// The grant of `role/TeamA-dev` (10:00:00) finds its principal listed (the list still
/// lags a removal made elsewhere), so no confirm step follows its associate. Between its
/// list and its associate, the later removal spelled `role/teama-dev` (10:00:05) runs:
/// its disassociate finds nothing, its list no longer shows `role/TeamA-dev`, and it ends
/// `already-satisfied`. The grant's associate then lands. The ledger's reads of the
/// name's item are refused as `refused` says (read 0 is the grant's fence, read 1 the
/// read once AWS answered its associate; `transient`: throttled, else refused for good);
/// every step is delivered until the worker is idle.
async fn listed_grant_racing_a_removal(
    refused: fn(usize) -> bool,
    transient: bool,
) -> RefusingWorker {
    let catalog = MemoryServiceCatalog::default()
        .with_portfolio(PORTFOLIO, vec![iam(ROLE)])
        .with_list_lag(1);
    let elsewhere = request("disassociate-portfolio-principal", "IAM", ROLE, json!({}));
    let elsewhere = parse_request(&elsewhere).expect("a valid request");
    let (_, Target::Portfolio(change)) = elsewhere.target() else {
        panic!("a portfolio request");
    };
    catalog
        .disassociate_principal(change)
        .await
        .expect("removed elsewhere");
    let TestWorker {
        identity_center,
        queues,
        config,
        ..
    } = worker(MemoryServiceCatalog::default(), &[]);
    let worker = Worker {
        identity_center,
        queues,
        ledger: NameReadRefused {
            ledger: MemoryLedger::default(),
            name_reads: AtomicUsize::new(0),
            refused,
            transient,
        },
        config,
        service_catalog: HeldAssociate {
            catalog,
            ..HeldAssociate::default()
        },
    };
    let grant = earlier_grant();
    let removal = removal_at("teama-dev", "10:00:05");
    let grant_run = function_handler(
        &worker,
        LambdaEvent::new(record(&grant, "g-1"), Context::default()),
    );
    let removal_run = async {
        worker.service_catalog.reached.notified().await;
        let response = function_handler(
            &worker,
            LambdaEvent::new(record(&removal, "r-1"), Context::default()),
        )
        .await;
        worker.service_catalog.release.notify_one();
        response
    };
    let (granted, removed) = tokio::join!(grant_run, removal_run);
    assert!(
        granted
            .expect("a batch response")
            .batch_item_failures
            .is_empty()
    );
    assert!(
        removed
            .expect("a batch response")
            .batch_item_failures
            .is_empty()
    );
    let mut delivered = 0;
    while let Some(step) = worker
        .queues
        .sent_to(&worker.config.work_queue)
        .get(delivered)
        .map(|step| step.body.clone())
    {
        delivered += 1;
        assert!(delivered < 20, "the worker is not idle after 20 steps");
        let response = function_handler(
            &worker,
            LambdaEvent::new(record(&step, &format!("s-{delivered}")), Context::default()),
        );
        let response = async {
            worker.service_catalog.release.notify_one();
            response.await
        };
        assert!(
            response
                .await
                .expect("a batch response")
                .batch_item_failures
                .is_empty()
        );
    }
    worker
}

fn outcome_pairs(worker: &RefusingWorker) -> Vec<Value> {
    let queue = worker.config.outcome_queue.as_ref().expect("outcome queue");
    worker
        .queues
        .sent_to(queue)
        .iter()
        .map(|o| {
            let o = json_of(o);
            json!([o["action"], o["outcome"], o["errorCode"]])
        })
        .collect()
}

/// SPEC §11: once idle, access is what the latest decision asks. The grant, with no
/// confirm to come, reads the removal of the name once AWS answered its associate, as a
/// confirm does (`a_grant_that_landed_before_a_later_removal_of_its_name_is_removed`), and
/// undoes it, ending `superseded`; without that read the role kept the access the later
/// removal took away, and both requests reported `already-satisfied`.
#[tokio::test]
async fn a_grant_found_listed_whose_associate_lands_after_a_later_removal_of_its_name_is_removed() {
    let worker = listed_grant_racing_a_removal(|_| false, false).await;
    assert_eq!(
        worker.service_catalog.catalog.principals(PORTFOLIO),
        Some(vec![])
    );
    assert_eq!(
        outcome_pairs(&worker),
        [
            json!([
                "disassociate-portfolio-principal",
                "already-satisfied",
                null
            ]),
            json!(["associate-portfolio-principal", "superseded", null]),
        ]
    );
}

/// As above, the read once AWS answered the associate refused for good once: the step is
/// judged as one whose associate may have landed, so its dead letter reads the entry's
/// later decisions through the name and yields to the later removal. Judged as the
/// submit it was (`maybeSubmitted` false), it was dead-lettered `permanent` as if nothing
/// had been done, and the role kept the access.
#[tokio::test]
async fn a_listed_grant_whose_read_of_the_name_is_refused_after_its_associate_still_yields_to_a_later_removal()
 {
    let worker = listed_grant_racing_a_removal(|read| read == 1, false).await;
    let outcomes = outcome_pairs(&worker);
    assert_eq!(
        worker.service_catalog.catalog.principals(PORTFOLIO),
        Some(vec![]),
        "the later removal of the name must stand; outcomes: {outcomes:?}"
    );
}

/// The name's item unreadable from the read once AWS answered the associate on: the
/// dead letter of a grant whose associate was made (the role listed again behind a later
/// removal of its name) tells the operator to check the access before a redrive, as a
/// confirm's would: its redrive would be superseded at its fence with no call and leave
/// the entry.
#[tokio::test]
async fn a_listed_grant_dead_lettered_after_its_associate_says_to_check_the_access() {
    let worker = listed_grant_racing_a_removal(|read| read >= 1, false).await;
    let dead = worker.queues.sent_to(&worker.config.dead_letter_queue);
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(
        worker.service_catalog.catalog.principals(PORTFOLIO),
        Some(vec![iam(ROLE)]),
        "the associate re-added the entry"
    );
    let message = dead[0].attribute("ErrorMessage").unwrap_or_default();
    assert!(
        message.starts_with("Check the access before redriving"),
        "class {:?} code {:?}: {message}",
        dead[0].attribute("ErrorClass"),
        dead[0].attribute("ErrorCode"),
    );
}

/// As above, the read throttled once (transient): the step repeats as one whose associate
/// may have landed, its fence finds the later removal, and it undoes.
#[tokio::test]
async fn a_listed_grant_whose_read_of_the_name_is_throttled_after_its_associate_undoes_it() {
    let worker = listed_grant_racing_a_removal(|read| read == 1, true).await;
    let outcomes = outcome_pairs(&worker);
    assert_eq!(
        worker.service_catalog.catalog.principals(PORTFOLIO),
        Some(vec![]),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[1],
        json!(["associate-portfolio-principal", "superseded", null])
    );
    assert!(
        worker
            .queues
            .sent_to(&worker.config.dead_letter_queue)
            .is_empty()
    );
}
