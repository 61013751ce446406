//! The DynamoDB ledger adapter (SPEC §11) against moto's DynamoDB on loopback: the real
//! aws-sdk-dynamodb client, the real conditional writes, read back through the `Ledger`
//! port and, for what the port does not show, through a raw GetItem.

mod support;

use std::collections::HashMap;

use assignment_worker::adapters::dynamodb::DynamoDbLedger;
use assignment_worker::adapters::memory::MemoryLedger;
use assignment_worker::aws_call::{CallError, ErrorKind};
use assignment_worker::ledger::{
    AccessDecision, ClaimAnswer, DecisionOrder, Intent, Ledger, LedgerKey, RecordAnswer,
    RecordedState,
};
use assignment_worker::request::parse_request;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use support::{Moto, create_ledger_table};
use time::macros::{datetime, offset};
use time::{Duration, OffsetDateTime};

const TABLE: &str = "assignment-ledger";
const NOW: OffsetDateTime = datetime!(2026-11-30 12:00:00 UTC);

type Item = HashMap<String, AttributeValue>;

struct Ledgers {
    _moto: Moto,
    /// The adapter under test, built as `aws_worker` builds it (retries off).
    ledger: DynamoDbLedger,
    /// A plain client on the same server, to read and write raw items.
    dynamodb: aws_sdk_dynamodb::Client,
}

async fn ledgers() -> Ledgers {
    let moto = Moto::start();
    let shared = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&shared);
    create_ledger_table(&dynamodb, TABLE).await;
    let ledger = DynamoDbLedger::new(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&shared)
                .retry_config(RetryConfig::disabled())
                .build(),
        ),
        TABLE,
    );
    Ledgers {
        _moto: moto,
        ledger,
        dynamodb,
    }
}

impl Ledgers {
    /// The item as stored, read strongly consistent.
    async fn raw(&self, key: &LedgerKey) -> Option<Item> {
        self.dynamodb
            .get_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S(key.as_str().to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("raw GetItem")
            .item()
            .cloned()
    }

    async fn put_raw(&self, item: Item) {
        self.dynamodb
            .put_item()
            .table_name(TABLE)
            .set_item(Some(item))
            .send()
            .await
            .expect("raw PutItem");
    }
}

/// The grant most tests record: at 10:00, correlation id `c-1`, first message `m-1`.
fn grant_c1(not_after: Option<OffsetDateTime>) -> AccessDecision {
    decision(
        datetime!(2026-11-30 10:00:00 UTC),
        Intent::Grant,
        Some("c-1"),
        "m-1",
        not_after,
    )
}

/// The ledger key of an assignment; `n` picks the principal, so each number is its own
/// key.
fn key(n: u32) -> LedgerKey {
    let request = parse_request(
        &json!({
            "action": "create",
            "instanceArn": "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40",
            "permissionSetArn": "arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-1a2b3c4d5e6f7a8b",
            "targetId": "111122223333",
            "principalType": "USER",
            "principalId": format!("9067a1b2c3-4c4f4a62-1e0b-4b4b-9c3b-{n:012x}"),
        })
        .to_string(),
    )
    .expect("the sample request is valid");
    LedgerKey::assignment(request.assignment().expect("an assignment").1)
}

fn decision(
    requested_at: OffsetDateTime,
    intent: Intent,
    correlation_id: Option<&str>,
    first_message_id: &str,
    not_after: Option<OffsetDateTime>,
) -> AccessDecision {
    AccessDecision {
        order: DecisionOrder {
            requested_at,
            intent,
            correlation_id: correlation_id.map(str::to_owned),
            first_message_id: first_message_id.to_owned(),
        },
        not_after,
    }
}

/// Records the grant of `key(1)` as carried out by operation "op-1".
async fn record_present(
    ledger: &impl Ledger,
    grant: &AccessDecision,
    at: OffsetDateTime,
) -> RecordAnswer {
    ledger
        .record(
            &key(1),
            &grant.order,
            RecordedState::Present,
            Some("op-1"),
            at,
        )
        .await
        .expect("record")
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.as_str()),
        None => None,
        Some(other) => panic!("`{name}` is not a string: {other:?}"),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

#[tokio::test]
async fn a_first_claim_is_read_back_exactly() {
    let ledgers = ledgers().await;
    let ledger = &ledgers.ledger;

    assert_eq!(ledger.latest(&key(1)).await.expect("latest"), None);

    // Nanoseconds and offsets other than UTC, on both times.
    let grant = decision(
        datetime!(2026-11-30 15:30:00.123456789 +05:30),
        Intent::Grant,
        Some("change-4711"),
        "059f36b4-87a3-44ab-83d2-661975830a7d",
        Some(datetime!(2026-12-01 07:00:00.5 -03:00)),
    );
    assert_eq!(
        ledger
            .claim(&key(1), &grant, RecordedState::Pending, NOW)
            .await
            .expect("claim"),
        ClaimAnswer::Claimed
    );
    let latest = ledger
        .latest(&key(1))
        .await
        .expect("latest")
        .expect("a decision");
    assert_eq!(latest, grant);
    // `OffsetDateTime`'s equality compares instants; requestedAt's offset comes back
    // too. notAfter is stored in UTC: the claim's condition compares it as text, and
    // one instant written with two offsets is one decision.
    assert_eq!(latest.order.requested_at.offset(), offset!(+05:30));
    assert_eq!(latest.not_after.expect("notAfter").offset(), offset!(UTC));
    assert_eq!(
        latest.order.requested_at.nanosecond(),
        123_456_789,
        "{latest:?}"
    );

    let item = ledgers.raw(&key(1)).await.expect("the item");
    assert_eq!(text(&item, "pk"), Some(key(1).as_str()));
    assert_eq!(text(&item, "orderKey"), Some(grant.order.key().as_str()));
    assert!(
        text(&item, "orderKey")
            .expect("orderKey")
            .starts_with("2026-11-30T10:00:00.123456789Z\u{1}0\u{1}change-4711\u{1}"),
        "the order key is in UTC: {item:?}"
    );
    assert_eq!(
        text(&item, "requestedAt"),
        Some("2026-11-30T15:30:00.123456789+05:30")
    );
    assert_eq!(text(&item, "decision"), Some("grant"));
    assert_eq!(text(&item, "correlationId"), Some("change-4711"));
    assert_eq!(
        text(&item, "firstMessageId"),
        Some("059f36b4-87a3-44ab-83d2-661975830a7d")
    );
    assert_eq!(text(&item, "notAfter"), Some("2026-12-01T10:00:00.5Z"));
    assert_eq!(text(&item, "state"), Some("pending"));
    assert_eq!(text(&item, "stateAt"), Some("2026-11-30T12:00:00Z"));
    assert_eq!(text(&item, "operationRequestId"), None);

    // A decision without correlation id or notAfter: both come back as none.
    let revoke = decision(
        datetime!(2026-11-30 10:00:00 UTC),
        Intent::Revoke,
        None,
        "7d2f1c4e-0b8a-4e55-9f3c-2a6b1d9e8c70",
        None,
    );
    assert_eq!(
        ledger
            .claim(&key(2), &revoke, RecordedState::Pending, NOW)
            .await
            .expect("claim"),
        ClaimAnswer::Claimed
    );
    assert_eq!(ledger.latest(&key(2)).await.expect("latest"), Some(revoke));
    let item = ledgers.raw(&key(2)).await.expect("the item");
    assert_eq!(text(&item, "decision"), Some("revoke"));
    assert_eq!(text(&item, "correlationId"), None);
    assert_eq!(text(&item, "notAfter"), None);
    // The first key is untouched by the second.
    assert_eq!(ledger.latest(&key(1)).await.expect("latest"), Some(grant));
}

#[tokio::test]
async fn the_same_decision_claims_again() {
    let ledgers = ledgers().await;
    let ledger = &ledgers.ledger;
    let grant = grant_c1(Some(datetime!(2026-11-30 18:00:00 UTC)));
    for _ in 0..3 {
        assert_eq!(
            ledger
                .claim(&key(1), &grant, RecordedState::Pending, NOW)
                .await
                .expect("claim"),
            ClaimAnswer::Claimed
        );
    }
    assert_eq!(
        ledger.latest(&key(1)).await.expect("latest"),
        Some(grant.clone())
    );
    // A claim of the decision already carried out keeps its state: another delivery of
    // the same request must still learn that it was done.
    record_present(ledger, &grant, NOW).await;
    assert_eq!(
        ledger
            .claim(&key(1), &grant, RecordedState::Pending, NOW)
            .await
            .expect("claim"),
        ClaimAnswer::Claimed
    );
    assert_eq!(
        ledger.latest_with_state(&key(1)).await.expect("read"),
        Some((grant, RecordedState::Present))
    );
}

/// A grant refused as `expired` is claimed `absent` in the claim's own write; claimed
/// again as pending (another delivery that came in time), it keeps `absent`; a pending
/// claim (an earlier attempt's) claimed again as `absent` takes it, and a state the
/// decision reached (`present`) stays. The memory ledger agrees.
#[tokio::test]
async fn a_claim_starts_in_the_state_asked_for_and_a_claim_again_keeps_it() {
    let ledgers = ledgers().await;
    let memory = MemoryLedger::default();
    let grant = grant_c1(Some(datetime!(2026-11-30 11:00:00 UTC)));
    for state in [RecordedState::Absent, RecordedState::Pending] {
        assert_eq!(
            ledgers
                .ledger
                .claim(&key(1), &grant, state, NOW)
                .await
                .expect("claim"),
            ClaimAnswer::Claimed
        );
        memory
            .claim(&key(1), &grant, state, NOW)
            .await
            .expect("claim");
        let expected = Some((grant.clone(), RecordedState::Absent));
        assert_eq!(
            ledgers
                .ledger
                .latest_with_state(&key(1))
                .await
                .expect("read"),
            expected
        );
        assert_eq!(
            memory.latest_with_state(&key(1)).await.expect("read"),
            expected
        );
    }
    let item = ledgers.raw(&key(1)).await.expect("the item");
    assert_eq!(text(&item, "state"), Some("absent"));

    for (n, reached, expected) in [
        (2, None, RecordedState::Absent),
        (3, Some(RecordedState::Present), RecordedState::Present),
    ] {
        claim_then_read(&ledgers.ledger, &key(n), &grant, reached, expected).await;
        claim_then_read(&memory, &key(n), &grant, reached, expected).await;
    }
}

/// An expiry's `revoked` is recorded over a grant recorded carried out (`present`, or
/// `revoked` by an earlier expiry), stored as `absent` with `endedByExpiry` (what builds
/// before it read as `absent`); over any other state nothing is written and the answer
/// names the decision itself. Any other state recorded after it, or a later decision's
/// claim, drops the mark. The memory ledger answers and stores alike.
#[tokio::test]
async fn an_expiry_records_revoked_only_over_a_grant_carried_out() {
    use RecordedState::{Absent, Failed, Pending, Present, Revoked};
    let ledgers = ledgers().await;
    let memory = MemoryLedger::default();
    let grant = grant_c1(Some(datetime!(2026-11-30 11:00:00 UTC)));
    let refused = RecordAnswer::NotLatest(Some(grant.clone()));
    let cases: [(u32, &[RecordedState], RecordedState); 6] = [
        (50, &[Present, Revoked], Revoked),
        (51, &[Revoked], Pending),
        (52, &[Failed, Revoked], Failed),
        (53, &[Present, Revoked, Revoked], Revoked),
        (54, &[Present, Revoked, Absent, Revoked], Absent),
        (55, &[Present, Revoked, Present], Present),
    ];
    for (n, records, expected) in cases {
        let dynamodb = claim_then_record(&ledgers.ledger, &key(n), &grant, records).await;
        let in_memory = claim_then_record(&memory, &key(n), &grant, records).await;
        assert_eq!(dynamodb, in_memory, "{n}: DynamoDB, then memory");
        let last_refused = matches!(n, 51 | 52 | 54);
        assert_eq!(
            dynamodb.last() == Some(&refused),
            last_refused,
            "{n}: {dynamodb:?}"
        );
        let read = ledgers
            .ledger
            .latest_with_state(&key(n))
            .await
            .expect("read");
        assert_eq!(read, memory.latest_with_state(&key(n)).await.expect("read"));
        assert_eq!(read, Some((grant.clone(), expected)), "{n}");
        let item = ledgers.raw(&key(n)).await.expect("the item");
        let stored = if expected == Revoked {
            "absent"
        } else {
            expected.as_str()
        };
        assert_eq!(text(&item, "state"), Some(stored), "{n}");
        assert_eq!(
            item.contains_key("endedByExpiry"),
            expected == Revoked,
            "{n}: {item:?}"
        );
    }
    // A later decision's claim drops the mark.
    let later = AccessDecision {
        order: DecisionOrder {
            requested_at: grant.order.requested_at + time::Duration::seconds(1),
            ..grant.order.clone()
        },
        not_after: None,
    };
    assert_eq!(
        ledgers
            .ledger
            .claim(&key(50), &later, Pending, NOW)
            .await
            .expect("claim"),
        ClaimAnswer::Claimed
    );
    let item = ledgers.raw(&key(50)).await.expect("the item");
    assert_eq!(item.get("endedByExpiry"), None);
}

/// Claims `grant` `pending`, then records each state in turn: the answers.
async fn claim_then_record<L: Ledger>(
    ledger: &L,
    key: &LedgerKey,
    grant: &AccessDecision,
    records: &[RecordedState],
) -> Vec<RecordAnswer> {
    ledger
        .claim(key, grant, RecordedState::Pending, NOW)
        .await
        .expect("claim");
    let mut answers = Vec::new();
    for state in records {
        answers.push(
            ledger
                .record(key, &grant.order, *state, Some("op-1"), NOW)
                .await
                .expect("record"),
        );
    }
    answers
}

/// A grant recorded `failed` (its chain ended FAILED) starts again on a claim of the
/// same decision, as a redrive makes, in either ledger: `pending` again, or the settled
/// state the claim asks for.
#[tokio::test]
async fn a_claim_of_the_same_decision_starts_a_failed_grant_again() {
    let ledgers = ledgers().await;
    let memory = MemoryLedger::default();
    let grant = grant_c1(None);
    for (n, again, expected) in [
        (10, RecordedState::Pending, RecordedState::Pending),
        (11, RecordedState::Absent, RecordedState::Absent),
    ] {
        claim_failed_then(&ledgers.ledger, &key(n), &grant, again, expected).await;
        claim_failed_then(&memory, &key(n), &grant, again, expected).await;
        // The failed create's operation is not the new chain's: both ledgers forget it.
        let item = ledgers.raw(&key(n)).await.expect("the item");
        assert_eq!(text(&item, "operationRequestId"), None);
        let item = memory.item(&key(n)).expect("the item");
        assert_eq!(item.operation_request_id, None);
    }
    let item = ledgers.raw(&key(10)).await.expect("the item");
    assert_eq!(text(&item, "state"), Some("pending"));
}

/// A claim of the same order that writes (over `failed`, or settling `pending`) writes
/// the whole decision in both ledgers, notAfter included, so the memory ledger the
/// property tests run on reads back what DynamoDB does.
#[tokio::test]
async fn a_claim_that_writes_over_the_same_order_writes_its_whole_decision() {
    let ledgers = ledgers().await;
    let memory = MemoryLedger::default();
    let first = grant_c1(Some(datetime!(2026-11-30 18:00:00 UTC)));
    let again = AccessDecision {
        not_after: None,
        ..first.clone()
    };
    for (n, reached, state) in [
        (40, Some(RecordedState::Failed), RecordedState::Pending),
        (41, None, RecordedState::Absent),
    ] {
        let dynamodb = claim_twice(&ledgers.ledger, &key(n), &first, reached, &again, state).await;
        let in_memory = claim_twice(&memory, &key(n), &first, reached, &again, state).await;
        assert_eq!(dynamodb, in_memory, "DynamoDB, then memory");
        assert_eq!(dynamodb, Some((again.clone(), state)));
    }
}

/// Claims `first` (pending), records `reached` if any, claims `again` as `state`, and
/// reads the item back.
async fn claim_twice<L: Ledger>(
    ledger: &L,
    key: &LedgerKey,
    first: &AccessDecision,
    reached: Option<RecordedState>,
    again: &AccessDecision,
    state: RecordedState,
) -> Option<(AccessDecision, RecordedState)> {
    ledger
        .claim(key, first, RecordedState::Pending, NOW)
        .await
        .expect("claim");
    if let Some(reached) = reached {
        assert_eq!(
            ledger
                .record(key, &first.order, reached, None, NOW)
                .await
                .expect("record"),
            RecordAnswer::Recorded
        );
    }
    assert_eq!(
        ledger.claim(key, again, state, NOW).await.expect("claim"),
        ClaimAnswer::Claimed
    );
    ledger.latest_with_state(key).await.expect("read")
}

/// Claims `pending`, records `failed`, claims again as `again`, and checks the state
/// read back.
async fn claim_failed_then<L: Ledger>(
    ledger: &L,
    key: &LedgerKey,
    grant: &AccessDecision,
    again: RecordedState,
    expected: RecordedState,
) {
    ledger
        .claim(key, grant, RecordedState::Pending, NOW)
        .await
        .expect("claim");
    let answer = ledger
        .record(
            key,
            &grant.order,
            RecordedState::Failed,
            Some("op-failed"),
            NOW,
        )
        .await
        .expect("record");
    assert_eq!(answer, RecordAnswer::Recorded);
    assert_eq!(
        ledger.latest_with_state(key).await.expect("read"),
        Some((grant.clone(), RecordedState::Failed))
    );
    assert_eq!(
        ledger.claim(key, grant, again, NOW).await.expect("claim"),
        ClaimAnswer::Claimed
    );
    assert_eq!(
        ledger.latest_with_state(key).await.expect("read"),
        Some((grant.clone(), expected))
    );
}

/// Claims `pending`, records `reached` if any, claims again as `absent`, and checks
/// the state read back.
async fn claim_then_read<L: Ledger>(
    ledger: &L,
    key: &LedgerKey,
    grant: &AccessDecision,
    reached: Option<RecordedState>,
    expected: RecordedState,
) {
    ledger
        .claim(key, grant, RecordedState::Pending, NOW)
        .await
        .expect("claim");
    if let Some(state) = reached {
        ledger
            .record(key, &grant.order, state, None, NOW)
            .await
            .expect("record");
    }
    assert_eq!(
        ledger
            .claim(key, grant, RecordedState::Absent, NOW)
            .await
            .expect("claim"),
        ClaimAnswer::Claimed
    );
    assert_eq!(
        ledger.latest_with_state(key).await.expect("read"),
        Some((grant.clone(), expected))
    );
}

/// Decisions for one assignment, each later than the one before it (SPEC §11): by
/// `requestedAt`, then a revoke above a grant, then the greater correlation id, then the
/// greater first message id.
fn decisions_in_order() -> Vec<AccessDecision> {
    let at = datetime!(2026-11-30 10:00:00 UTC);
    let until = Some(datetime!(2026-11-30 18:00:00 UTC));
    vec![
        decision(
            at - Duration::nanoseconds(1),
            Intent::Revoke,
            Some("z"),
            "m-9",
            None,
        ),
        decision(at, Intent::Grant, None, "m-9", until),
        decision(at, Intent::Grant, Some("c-1"), "m-1", until),
        decision(at, Intent::Grant, Some("c-1"), "m-2", until),
        // The same notAfter written with another offset is the same decision.
        decision(
            at,
            Intent::Grant,
            Some("c-1"),
            "m-3",
            Some(datetime!(2026-11-30 19:00:00 +01:00)),
        ),
        // A longer correlation id that starts with a shorter one is the later.
        decision(at, Intent::Grant, Some("c-10"), "m-1", until),
        decision(at, Intent::Grant, Some("c-2"), "m-1", None),
        decision(at, Intent::Revoke, None, "m-1", None),
        decision(at, Intent::Revoke, Some("c-1"), "m-1", None),
        decision(at, Intent::Revoke, Some("c-1"), "m-2", None),
        // The same instant written with another offset is the same requestedAt.
        decision(
            datetime!(2026-11-30 11:00:00 +01:00),
            Intent::Revoke,
            Some("c-2"),
            "m-1",
            None,
        ),
        decision(
            at + Duration::milliseconds(1),
            Intent::Grant,
            None,
            "m-1",
            until,
        ),
        decision(at + Duration::hours(1), Intent::Grant, None, "m-0", until),
    ]
}

#[tokio::test]
async fn a_later_decision_claims_over_an_earlier_one_never_the_reverse() {
    let ledgers = ledgers().await;
    let ledger = &ledgers.ledger;
    let decisions = decisions_in_order();
    for pair in decisions.windows(2) {
        assert!(pair[0].order < pair[1].order, "the fixture is in order");
    }
    let mut failures = Vec::new();
    let mut n = 0;
    for (i, earlier) in decisions.iter().enumerate() {
        for later in &decisions[i + 1..] {
            // The earlier first: the later one claims over it, unless it is the same
            // decision under another first message id (a redrive, say): the first to
            // claim keeps it, and the caller takes its id.
            n += 1;
            let forward = key(n);
            let first = ledger
                .claim(&forward, earlier, RecordedState::Pending, NOW)
                .await
                .expect("claim");
            let second = ledger
                .claim(&forward, later, RecordedState::Pending, NOW)
                .await
                .expect("claim");
            let stored = ledger.latest(&forward).await.expect("latest");
            let expected = if later.is_another_delivery_of(earlier) {
                (ClaimAnswer::Superseded(earlier.clone()), earlier)
            } else {
                (ClaimAnswer::Claimed, later)
            };
            if (&first, &second, &stored)
                != (
                    &ClaimAnswer::Claimed,
                    &expected.0,
                    &Some(expected.1.clone()),
                )
            {
                failures.push(format!(
                    "{earlier:?} then {later:?}: {first:?}, {second:?}, latest {stored:?}"
                ));
            }
            // The later first: the earlier one is superseded by it, and changes nothing.
            n += 1;
            let backward = key(n);
            let first = ledger
                .claim(&backward, later, RecordedState::Pending, NOW)
                .await
                .expect("claim");
            let second = ledger
                .claim(&backward, earlier, RecordedState::Pending, NOW)
                .await
                .expect("claim");
            let stored = ledger.latest(&backward).await.expect("latest");
            if (&first, &second, &stored)
                != (
                    &ClaimAnswer::Claimed,
                    &ClaimAnswer::Superseded(later.clone()),
                    &Some(later.clone()),
                )
            {
                failures.push(format!(
                    "{later:?} then {earlier:?}: {first:?}, {second:?}, latest {stored:?}"
                ));
            }
        }
    }
    assert_eq!(
        usize::try_from(n).expect("a small count"),
        decisions.len() * (decisions.len() - 1),
        "every ordered pair, both ways"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The fixture holds such pairs, so the rule above is exercised.
    assert!(decisions.iter().enumerate().any(|(i, a)| {
        decisions[i + 1..]
            .iter()
            .any(|b| b.is_another_delivery_of(a))
    }));
}

#[tokio::test]
async fn a_state_is_recorded_only_for_the_latest_decision() {
    let ledgers = ledgers().await;
    let ledger = &ledgers.ledger;
    let grant = grant_c1(Some(datetime!(2026-11-30 18:00:00 UTC)));
    let revoke = decision(
        datetime!(2026-11-30 10:05:00 UTC),
        Intent::Revoke,
        Some("c-2"),
        "m-2",
        None,
    );

    // Nothing recorded: nothing to record against, and no item is made.
    assert_eq!(
        record_present(ledger, &grant, NOW).await,
        RecordAnswer::NotLatest(None)
    );
    assert_eq!(ledgers.raw(&key(1)).await, None);

    ledger
        .claim(&key(1), &grant, RecordedState::Pending, NOW)
        .await
        .expect("claim");
    let later = NOW + Duration::seconds(7);
    assert_eq!(
        record_present(ledger, &grant, later).await,
        RecordAnswer::Recorded
    );
    // Read back with the state beside the decision.
    assert_eq!(
        ledger.latest_with_state(&key(1)).await.expect("read"),
        Some((grant.clone(), RecordedState::Present))
    );
    let item = ledgers.raw(&key(1)).await.expect("the item");
    assert_eq!(text(&item, "state"), Some("present"));
    assert_eq!(text(&item, "stateAt"), Some("2026-11-30T12:00:07Z"));
    assert_eq!(text(&item, "operationRequestId"), Some("op-1"));
    // Recording leaves the decision as it was.
    assert_eq!(text(&item, "orderKey"), Some(grant.order.key().as_str()));
    assert_eq!(text(&item, "decision"), Some("grant"));
    assert_eq!(text(&item, "requestedAt"), Some("2026-11-30T10:00:00Z"));
    assert_eq!(text(&item, "notAfter"), Some("2026-11-30T18:00:00Z"));
    assert_eq!(
        ledger.latest(&key(1)).await.expect("latest"),
        Some(grant.clone())
    );

    // A later decision takes the item: the grant's state is no longer recorded.
    ledger
        .claim(&key(1), &revoke, RecordedState::Pending, later)
        .await
        .expect("claim");
    let item = ledgers.raw(&key(1)).await.expect("the item");
    assert_eq!(text(&item, "state"), Some("pending"));
    assert_eq!(
        text(&item, "operationRequestId"),
        None,
        "a claim clears the previous decision's operation"
    );
    assert_eq!(
        ledger
            .record(
                &key(1),
                &grant.order,
                RecordedState::Absent,
                Some("op-2"),
                later
            )
            .await
            .expect("record"),
        RecordAnswer::NotLatest(Some(revoke.clone()))
    );
    let item = ledgers.raw(&key(1)).await.expect("the item");
    assert_eq!(text(&item, "state"), Some("pending"), "not recorded");
    assert_eq!(text(&item, "operationRequestId"), None, "not recorded");

    // The revoke's own record goes through.
    assert_eq!(
        ledger
            .record(
                &key(1),
                &revoke.order,
                RecordedState::Absent,
                Some("op-3"),
                later
            )
            .await
            .expect("record"),
        RecordAnswer::Recorded
    );
    let item = ledgers.raw(&key(1)).await.expect("the item");
    assert_eq!(text(&item, "state"), Some("absent"));
    assert_eq!(text(&item, "operationRequestId"), Some("op-3"));
}

#[tokio::test]
async fn a_revoke_without_correlation_id_clears_the_grants_attributes() {
    let ledgers = ledgers().await;
    let ledger = &ledgers.ledger;
    let grant = grant_c1(Some(datetime!(2026-11-30 18:00:00 UTC)));
    ledger
        .claim(&key(1), &grant, RecordedState::Pending, NOW)
        .await
        .expect("claim");
    record_present(ledger, &grant, NOW).await;
    let item = ledgers.raw(&key(1)).await.expect("the item");
    assert_eq!(text(&item, "notAfter"), Some("2026-11-30T18:00:00Z"));
    assert_eq!(text(&item, "correlationId"), Some("c-1"));

    let revoke = decision(
        datetime!(2026-11-30 10:00:01 UTC),
        Intent::Revoke,
        None,
        "m-2",
        None,
    );
    assert_eq!(
        ledger
            .claim(&key(1), &revoke, RecordedState::Pending, NOW)
            .await
            .expect("claim"),
        ClaimAnswer::Claimed
    );
    let item = ledgers.raw(&key(1)).await.expect("the item");
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "decision",
            "firstMessageId",
            "orderKey",
            "pk",
            "requestedAt",
            "state",
            "stateAt"
        ],
        "{item:?}"
    );
    assert_eq!(ledger.latest(&key(1)).await.expect("latest"), Some(revoke));
}

/// An item written before notAfter was stored in UTC holds it as the request wrote it:
/// another delivery of that decision is still refused (a redrive must not reset the
/// state its first delivery reached), and a notAfter whose UTC form is past year 9999 or
/// before year 0 is stored as written rather than failing the claim or the reads after it.
#[tokio::test]
async fn a_not_after_stored_as_written_is_still_the_same_decision() {
    let ledgers = ledgers().await;
    let ledger = &ledgers.ledger;
    let written = |message: &str| {
        decision(
            datetime!(2026-11-30 10:00:00 UTC),
            Intent::Grant,
            Some("c-1"),
            message,
            Some(datetime!(2026-11-30 19:00:00 +01:00)),
        )
    };
    let first = written("m-1");
    ledger
        .claim(&key(1), &first, RecordedState::Pending, NOW)
        .await
        .expect("claim");
    record_present(ledger, &first, NOW).await;
    let mut item = ledgers.raw(&key(1)).await.expect("the item");
    item.insert("notAfter".to_owned(), s("2026-11-30T19:00:00+01:00"));
    ledgers.put_raw(item).await;
    assert_eq!(
        ledger
            .claim(&key(1), &written("m-2"), RecordedState::Pending, NOW)
            .await
            .expect("claim"),
        ClaimAnswer::Superseded(first.clone())
    );
    assert_eq!(
        ledger.latest_with_state(&key(1)).await.expect("read"),
        Some((first, RecordedState::Present))
    );

    // Past year 9999 in UTC, and before year 0: stored as written, and read back.
    for (n, end) in [
        (2, datetime!(9999-12-31 23:00:00 -05:00)),
        (3, datetime!(0000-01-01 00:00:00 +23:59)),
    ] {
        let far = decision(
            datetime!(2026-11-30 10:00:00 UTC),
            Intent::Grant,
            None,
            "m-1",
            Some(end),
        );
        for _ in 0..2 {
            assert_eq!(
                ledger
                    .claim(&key(n), &far, RecordedState::Pending, NOW)
                    .await
                    .expect("claim"),
                ClaimAnswer::Claimed
            );
        }
        assert_eq!(ledger.latest(&key(n)).await.expect("latest"), Some(far));
    }
}

/// What the in-memory fake keeps after a second record for the same decision without
/// an operation id (an expiry revoke that found the access already gone, after the
/// grant recorded its create's id): no operation id, in both ledgers.
#[tokio::test]
async fn a_record_without_operation_id_leaves_none_as_the_memory_ledger_does() {
    let ledgers = ledgers().await;
    let memory = MemoryLedger::default();
    let grant = decision(
        datetime!(2026-11-30 10:00:00 UTC),
        Intent::Grant,
        None,
        "m-1",
        Some(datetime!(2026-11-30 11:00:00 UTC)),
    );
    ledgers
        .ledger
        .claim(&key(1), &grant, RecordedState::Pending, NOW)
        .await
        .expect("claim");
    memory
        .claim(&key(1), &grant, RecordedState::Pending, NOW)
        .await
        .expect("claim");
    for (state, operation) in [
        (RecordedState::Present, Some("op-create")),
        (RecordedState::Absent, None),
    ] {
        assert_eq!(
            ledgers
                .ledger
                .record(&key(1), &grant.order, state, operation, NOW)
                .await
                .expect("record"),
            RecordAnswer::Recorded
        );
        memory
            .record(&key(1), &grant.order, state, operation, NOW)
            .await
            .expect("record");
    }
    let in_memory = memory.item(&key(1)).expect("the memory item");
    assert_eq!(in_memory.state, RecordedState::Absent);
    assert_eq!(in_memory.operation_request_id, None);
    let item = ledgers.raw(&key(1)).await.expect("the item");
    assert_eq!(text(&item, "state"), Some("absent"));
    assert_eq!(
        text(&item, "operationRequestId"),
        in_memory.operation_request_id.as_deref(),
        "{item:?}"
    );
}

#[tokio::test]
async fn an_item_the_worker_did_not_write_fails_closed() {
    let ledgers = ledgers().await;
    let ledger = &ledgers.ledger;
    let good = grant_c1(Some(datetime!(2026-11-30 18:00:00 UTC)));
    // A revoke at the grant's time, which outranks it, so a claim is refused and reads
    // the item; its order key is the one its fields give, so each case fails for its own
    // field.
    let revoke = decision(
        datetime!(2026-11-30 10:00:00 UTC),
        Intent::Revoke,
        None,
        "m-1",
        None,
    );
    let base = |n: u32| -> Item {
        HashMap::from([
            ("pk".to_owned(), s(key(n).as_str())),
            ("orderKey".to_owned(), s(&revoke.order.key())),
            ("requestedAt".to_owned(), s("2026-11-30T10:00:00Z")),
            ("decision".to_owned(), s("revoke")),
            ("firstMessageId".to_owned(), s("m-1")),
            ("state".to_owned(), s("pending")),
            ("stateAt".to_owned(), s("2026-11-30T10:00:00Z")),
        ])
    };
    let cases: Vec<(&str, Item)> = vec![
        ("decision maybe", {
            let mut item = base(1);
            item.insert("decision".to_owned(), s("maybe"));
            item
        }),
        ("decision missing", {
            let mut item = base(2);
            item.remove("decision");
            item
        }),
        ("requestedAt not RFC 3339", {
            let mut item = base(3);
            item.insert("requestedAt".to_owned(), s("30/11/2026 10:00"));
            item
        }),
        ("requestedAt a number", {
            let mut item = base(4);
            item.insert(
                "requestedAt".to_owned(),
                AttributeValue::N("1796032800".to_owned()),
            );
            item
        }),
        ("firstMessageId missing", {
            let mut item = base(5);
            item.remove("firstMessageId");
            item
        }),
        ("notAfter not RFC 3339", {
            let mut item = base(6);
            item.insert("notAfter".to_owned(), s("tomorrow"));
            item
        }),
        ("correlationId a list", {
            let mut item = base(7);
            item.insert("correlationId".to_owned(), AttributeValue::L(vec![]));
            item
        }),
        (
            "only the key",
            HashMap::from([("pk".to_owned(), s(key(8).as_str()))]),
        ),
    ];
    // The item whole reads as its revoke, and refuses the grant's claim with it.
    ledgers.put_raw(base(50)).await;
    assert_eq!(
        ledger.latest(&key(50)).await.expect("read"),
        Some(revoke.clone())
    );
    assert_eq!(
        ledger
            .claim(&key(50), &good, RecordedState::Pending, NOW)
            .await
            .expect("claim"),
        ClaimAnswer::Superseded(revoke.clone())
    );
    let mut failures = Vec::new();
    for (n, (name, item)) in (1..).zip(cases) {
        ledgers.put_raw(item).await;
        // Each case refused for its own field, which the error names.
        let field = name.split(' ').next().unwrap_or_default();
        let names_field =
            |error: &CallError| n == 8 || error.message.contains(&format!("`{field}`"));
        match ledger.latest(&key(n)).await {
            Err(error)
                if error.kind == ErrorKind::Rejected
                    && !error.kind.is_transient()
                    && names_field(&error) => {}
            other => failures.push(format!("{name}: latest answered {other:?}")),
        }
        // A claim refused by such an item cannot say what superseded it.
        if n != 8 {
            match ledger
                .claim(&key(n), &good, RecordedState::Pending, NOW)
                .await
            {
                Err(error) if error.kind == ErrorKind::Rejected && names_field(&error) => {}
                other => failures.push(format!("{name}: claim answered {other:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An item whose order key is missing or later than its fields (a hand repair, a
/// restore) fails closed when read: DynamoDB's conditions compare only the key, so a
/// refused claim would otherwise read an older grant as the decision that superseded a
/// revoke, which would end with no call and leave the access. (A key earlier than its
/// fields lets an earlier decision's claim write over the item unread: the README says
/// to repair items whole.)
#[tokio::test]
async fn an_item_whose_order_key_is_missing_or_later_than_its_fields_fails_closed() {
    let ledgers = ledgers().await;
    let ledger = &ledgers.ledger;
    let grant = grant_c1(None);
    let revoke = decision(
        datetime!(2026-11-30 11:00:00 UTC),
        Intent::Revoke,
        Some("c-2"),
        "m-2",
        None,
    );
    let item = |n: u32, order_key: Option<AttributeValue>| -> Item {
        let mut item = HashMap::from([
            ("pk".to_owned(), s(key(n).as_str())),
            ("requestedAt".to_owned(), s("2026-11-30T10:00:00Z")),
            ("decision".to_owned(), s("grant")),
            ("correlationId".to_owned(), s("c-1")),
            ("firstMessageId".to_owned(), s("m-1")),
            ("state".to_owned(), s("present")),
            ("stateAt".to_owned(), s("2026-11-30T10:00:05Z")),
        ]);
        if let Some(order_key) = order_key {
            item.insert("orderKey".to_owned(), order_key);
        }
        item
    };
    let cases = [
        ("orderKey missing", None),
        (
            "orderKey later than the fields",
            Some(s("9999-12-31T23:59:59.999999999Z\u{1}1\u{1}\u{1}")),
        ),
    ];
    let mut failures = Vec::new();
    for (n, (name, order_key)) in (20..).zip(cases) {
        ledgers.put_raw(item(n, order_key)).await;
        match ledger.latest(&key(n)).await {
            Err(error) if error.kind == ErrorKind::Rejected => {}
            other => failures.push(format!("{name}: latest answered {other:?}")),
        }
        match ledger
            .claim(&key(n), &revoke, RecordedState::Pending, NOW)
            .await
        {
            Err(error) if error.kind == ErrorKind::Rejected => {}
            other => failures.push(format!("{name}: claim answered {other:?}")),
        }
    }
    // The same item with the key the worker writes reads as the grant it records.
    ledgers.put_raw(item(30, Some(s(&grant.order.key())))).await;
    assert_eq!(
        ledger.latest(&key(30)).await.expect("read"),
        Some(grant.clone())
    );
    assert_eq!(
        ledger
            .claim(&key(30), &revoke, RecordedState::Pending, NOW)
            .await
            .expect("claim"),
        ClaimAnswer::Claimed
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_table_that_does_not_exist_is_a_permanent_error() {
    let moto = Moto::start();
    let shared = moto.sdk_config().await;
    let ledger = DynamoDbLedger::new(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&shared)
                .retry_config(RetryConfig::disabled())
                .build(),
        ),
        "no-such-ledger",
    );
    let grant = decision(
        datetime!(2026-11-30 10:00:00 UTC),
        Intent::Grant,
        None,
        "m-1",
        None,
    );
    let errors = [
        ledger.latest(&key(1)).await.map(|_| ()),
        ledger
            .claim(&key(1), &grant, RecordedState::Pending, NOW)
            .await
            .map(|_| ()),
        ledger
            .record(&key(1), &grant.order, RecordedState::Present, None, NOW)
            .await
            .map(|_| ()),
    ];
    for (call, result) in ["latest", "claim", "record"].into_iter().zip(errors) {
        let error = result.expect_err(call);
        assert_eq!(error.kind, ErrorKind::ResourceNotFound, "{call}: {error:?}");
        assert_eq!(error.code, "ResourceNotFoundException", "{call}");
        assert!(!error.kind.is_transient(), "{call}");
    }
}

/// A rollback to a build before `endedByExpiry`, then forward again. The old build's
/// claim (here of a later timed grant refused `expired`: `absent` in the claim's write)
/// does not know the attribute and leaves it on the item; the mark names the grant it
/// belongs to, so the later grant, never carried out, still reads `absent`. (As a plain
/// flag it read `revoked`, and a copy of its record reported it `succeeded`.)
#[tokio::test]
async fn a_mark_a_build_before_it_left_under_a_later_decision_counts_for_nothing() {
    let ledgers = ledgers().await;
    let k = key(70);
    let g2 = marked_then_a_later_grant(&ledgers, &k).await;
    old_build_claim(&ledgers, &k, &g2, "absent").await;
    let item = ledgers.raw(&k).await.expect("the item");
    assert!(item.contains_key("endedByExpiry"), "the old build left it");
    assert_eq!(
        ledgers.ledger.latest_with_state(&k).await.expect("read"),
        Some((g2.clone(), RecordedState::Absent))
    );
}

/// The same rollback, the later grant claimed `pending` and recorded `failed` by the
/// old build: forward again, its expiry's `revoked` is refused (the grant was never
/// carried out), whatever mark the old build left.
#[tokio::test]
async fn an_expiry_over_a_grant_the_old_build_recorded_failed_is_not_marked() {
    let ledgers = ledgers().await;
    let k = key(72);
    let g2 = marked_then_a_later_grant(&ledgers, &k).await;
    old_build_claim(&ledgers, &k, &g2, "pending").await;
    old_build_record(&ledgers, &k, &g2, "failed").await;
    assert_eq!(
        ledgers
            .ledger
            .record(&k, &g2.order, RecordedState::Revoked, None, NOW)
            .await
            .expect("record"),
        RecordAnswer::NotLatest(Some(g2.clone()))
    );
    assert_eq!(
        ledgers.ledger.latest_with_state(&k).await.expect("read"),
        Some((g2.clone(), RecordedState::Failed))
    );
}

/// A grant carried out and taken back by its expiry (marked) under `k`, by this build;
/// the later timed grant the tests above then hand to a build before the mark.
async fn marked_then_a_later_grant(ledgers: &Ledgers, k: &LedgerKey) -> AccessDecision {
    let g1 = grant_c1(Some(datetime!(2026-11-30 11:00:00 UTC)));
    claim_then_record(
        &ledgers.ledger,
        k,
        &g1,
        &[RecordedState::Present, RecordedState::Revoked],
    )
    .await;
    decision(
        datetime!(2026-11-30 11:30:00 UTC),
        Intent::Grant,
        Some("c-2"),
        "m-2",
        Some(datetime!(2026-11-30 11:45:00 UTC)),
    )
}

/// The claim of a build before `endedByExpiry` (84e68a6's `DynamoDbLedger::claim`,
/// expression for expression), of a timed grant `g` in `state`.
async fn old_build_claim(ledgers: &Ledgers, k: &LedgerKey, g: &AccessDecision, state: &str) {
    use assignment_worker::messages::rfc3339;
    let order = &g.order;
    let not_after = g.not_after.expect("timed");
    ledgers
        .dynamodb
        .update_item()
        .table_name(TABLE)
        .key("pk", s(k.as_str()))
        .condition_expression(
            "attribute_not_exists(pk) OR (#order < :order AND NOT \
             (begins_with(#order, :decision_prefix) AND \
             (#notAfter = :notAfter OR #notAfter = :notAfterAsWritten))) \
             OR (#order = :order AND (#state = :pending OR #state = :failed))",
        )
        .update_expression(
            "SET #order = :order, #requestedAt = :requestedAt, #decision = :decision, \
             #firstMessageId = :firstMessageId, #state = :state, #stateAt = :now, \
             #correlationId = :correlationId, #notAfter = :notAfter \
             REMOVE #operationRequestId",
        )
        .expression_attribute_names("#order", "orderKey")
        .expression_attribute_names("#requestedAt", "requestedAt")
        .expression_attribute_names("#decision", "decision")
        .expression_attribute_names("#firstMessageId", "firstMessageId")
        .expression_attribute_names("#state", "state")
        .expression_attribute_names("#stateAt", "stateAt")
        .expression_attribute_names("#operationRequestId", "operationRequestId")
        .expression_attribute_names("#correlationId", "correlationId")
        .expression_attribute_names("#notAfter", "notAfter")
        .expression_attribute_values(":decision_prefix", s(&order.key_before_message_id()))
        .expression_attribute_values(":order", s(&order.key()))
        .expression_attribute_values(":requestedAt", s(&rfc3339(order.requested_at)))
        .expression_attribute_values(":decision", s(order.intent.as_str()))
        .expression_attribute_values(":firstMessageId", s(&order.first_message_id))
        .expression_attribute_values(":state", s(state))
        .expression_attribute_values(":now", s(&rfc3339(NOW)))
        .expression_attribute_values(":failed", s("failed"))
        .expression_attribute_values(":pending", s("pending"))
        .expression_attribute_values(
            ":correlationId",
            s(order.correlation_id.as_deref().unwrap_or_default()),
        )
        .expression_attribute_values(":notAfter", s(&rfc3339(not_after)))
        .expression_attribute_values(":notAfterAsWritten", s(&rfc3339(not_after)))
        .send()
        .await
        .expect("the old build's claim");
}

/// The old build's record (84e68a6's `DynamoDbLedger::record`, no operation id).
async fn old_build_record(ledgers: &Ledgers, k: &LedgerKey, g: &AccessDecision, state: &str) {
    use assignment_worker::messages::rfc3339;
    ledgers
        .dynamodb
        .update_item()
        .table_name(TABLE)
        .key("pk", s(k.as_str()))
        .condition_expression("#order = :order")
        .update_expression("SET #state = :state, #stateAt = :now REMOVE #operationRequestId")
        .expression_attribute_names("#order", "orderKey")
        .expression_attribute_names("#state", "state")
        .expression_attribute_names("#stateAt", "stateAt")
        .expression_attribute_names("#operationRequestId", "operationRequestId")
        .expression_attribute_values(":order", s(&g.order.key()))
        .expression_attribute_values(":state", s(state))
        .expression_attribute_values(":now", s(&rfc3339(NOW)))
        .send()
        .await
        .expect("the old build's record");
}
