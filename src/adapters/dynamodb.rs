//! The ledger port over aws-sdk-dynamodb (SPEC §11): one item per assignment key, read
//! strongly consistent, written with conditions so that a decision never overwrites a
//! later one.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::call_error;
use crate::aws_call::{CallError, ErrorKind};
use crate::ledger::{
    AccessDecision, ClaimAnswer, DecisionOrder, Intent, Ledger, LedgerKey, LedgerResult,
    RecordAnswer, RecordedState,
};
use crate::messages::rfc3339;

/// Build the client with retries off: ledger errors are retried through the queue.
pub struct DynamoDbLedger {
    client: Client,
    table: String,
}

impl DynamoDbLedger {
    pub fn new(client: Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
        }
    }
}

type Item = HashMap<String, AttributeValue>;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

const UNREADABLE: &str = "UnreadableLedgerItem";

fn unreadable(problem: String) -> CallError {
    CallError {
        kind: ErrorKind::Rejected,
        code: UNREADABLE.to_owned(),
        message: problem,
    }
}

/// Puts the item's key in front of an unreadable item's problem: the dead letter then
/// names the item to mend or delete, which may be another principal's (the removal of
/// one spelling reads the items of the others).
fn naming_the_item(key: &LedgerKey) -> impl Fn(CallError) -> CallError + '_ {
    move |error| match error.code.as_str() {
        UNREADABLE => CallError {
            message: format!("ledger item `{}`: {}", key.as_str(), error.message),
            ..error
        },
        _ => error,
    }
}

/// The decision an item records. An item the worker did not write fails closed: the
/// request is dead-lettered rather than ordered against a guess.
fn decision_of(item: &Item) -> Result<AccessDecision, CallError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(Some(value.as_str())),
        None => Ok(None),
        Some(_) => Err(unreadable(format!("`{name}` is not a string"))),
    };
    let required =
        |name: &str| text(name)?.ok_or_else(|| unreadable(format!("`{name}` is missing")));
    let time = |name: &str, value: &str| {
        OffsetDateTime::parse(value, &Rfc3339)
            .map_err(|_| unreadable(format!("`{name}` is not RFC 3339: `{value}`")))
    };
    let intent = Intent::parse(required("decision")?)
        .ok_or_else(|| unreadable("`decision` must be grant or revoke".to_owned()))?;
    let decision = AccessDecision {
        order: DecisionOrder {
            requested_at: time("requestedAt", required("requestedAt")?)?,
            intent,
            correlation_id: text("correlationId")?.map(str::to_owned),
            first_message_id: required("firstMessageId")?.to_owned(),
        },
        not_after: text("notAfter")?
            .map(|value| time("notAfter", value))
            .transpose()?,
    };
    // The conditions compare only the key: one that is not the fields' would order this
    // item apart from the decision it is read back as.
    if required("orderKey")? != decision.order.key() {
        return Err(unreadable(
            "`orderKey` does not match its decision's fields".to_owned(),
        ));
    }
    Ok(decision)
}

/// The decision an item records and the state recorded for it.
fn recorded(item: &Item) -> Result<(AccessDecision, RecordedState), CallError> {
    let state = item
        .get("state")
        .and_then(|value| value.as_s().ok())
        .and_then(|text| RecordedState::parse(text))
        .ok_or_else(|| unreadable("`state` is missing or unknown".to_owned()))?;
    let ended_by_expiry = item
        .get(ENDED_BY_EXPIRY)
        .is_some_and(|mark| Some(mark) == item.get("orderKey"));
    let state = match state {
        RecordedState::Absent if ended_by_expiry => RecordedState::Revoked,
        state => state,
    };
    Ok((decision_of(item)?, state))
}

/// What a claim refused by its condition means, from the item as it stood.
fn claim_refused(item: Option<Item>, decision: &AccessDecision) -> Result<ClaimAnswer, CallError> {
    let Some(item) = item else {
        return Err(unreadable(
            "the claim on it was refused, but DynamoDB sent back none of its fields".to_owned(),
        ));
    };
    let recorded = decision_of(&item)?;
    if recorded.order == decision.order {
        Ok(ClaimAnswer::Claimed)
    } else if recorded.order > decision.order || recorded.is_another_delivery_of(decision) {
        Ok(ClaimAnswer::Superseded(recorded))
    } else {
        // Never read an earlier decision as the one that came later.
        Err(unreadable(
            "the claim was refused by an item holding an earlier decision".to_owned(),
        ))
    }
}

/// The item of a write refused by its condition (sent back through
/// ReturnValuesOnConditionCheckFailure), or `Err` for any other failure.
fn refused_item(
    error: aws_sdk_dynamodb::error::SdkError<
        UpdateItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
) -> Result<Option<Item>, CallError> {
    match error.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(refusal)) => {
            Ok(refusal.item().cloned())
        }
        _ => Err(call_error(error)),
    }
}

/// The mark of a grant its expiry took back after it was carried out
/// ([`RecordedState::Revoked`]), beside `state` `absent`: the `orderKey` of that grant, so
/// that a mark a build before it left under a later decision (its claims do not remove
/// it) names another decision and counts for nothing.
const ENDED_BY_EXPIRY: &str = "endedByExpiry";

/// A state as the item holds it: `Revoked` as `absent` (with [`ENDED_BY_EXPIRY`]), so
/// that builds before it read what they wrote.
fn stored_state(state: RecordedState) -> &'static str {
    match state {
        RecordedState::Revoked => RecordedState::Absent.as_str(),
        state => state.as_str(),
    }
}

/// A grant's `notAfter` as the ledger stores it: in UTC, since the claim's condition
/// compares it as text and one instant written with two offsets is one decision. As
/// written when its UTC form falls outside the years RFC 3339 can write (0000 to 9999).
fn stored_not_after(not_after: OffsetDateTime) -> String {
    rfc3339(
        not_after
            .checked_to_offset(time::UtcOffset::UTC)
            .filter(|utc| (0..=9999).contains(&utc.year()))
            .unwrap_or(not_after),
    )
}

impl Ledger for DynamoDbLedger {
    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn claim(
        &self,
        key: &LedgerKey,
        decision: &AccessDecision,
        state: RecordedState,
        now: OffsetDateTime,
    ) -> LedgerResult<ClaimAnswer> {
        let order = &decision.order;
        let mut set = vec![
            "#order = :order",
            "#requestedAt = :requestedAt",
            "#decision = :decision",
            "#firstMessageId = :firstMessageId",
            "#state = :state",
            "#stateAt = :now",
        ];
        let mut remove = vec!["#operationRequestId", "#endedByExpiry"];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key.as_str()))
            // Strictly later: the same decision claimed again (another delivery of the
            // same request) must not reset the state it reached; the refusal below
            // reads it as claimed. Nor does a delivery under another first message id
            // claim over the recorded one, in either order
            // (`AccessDecision::is_another_delivery_of`): the caller takes its id. A
            // pending claim of the same decision takes a settled state the caller asks
            // for, and so does one that ended failed (a redrive starts it again).
            .condition_expression(format!(
                "attribute_not_exists(pk) OR (#order < :order AND NOT \
                 (begins_with(#order, :decision_prefix) AND {})){}",
                match decision.not_after {
                    // Items written before notAfter was stored in UTC hold it as the
                    // request wrote it.
                    Some(_) => "(#notAfter = :notAfter OR #notAfter = :notAfterAsWritten)",
                    None => "attribute_not_exists(#notAfter)",
                },
                match state {
                    RecordedState::Pending | RecordedState::Failed => {
                        " OR (#order = :order AND #state = :failed)"
                    }
                    RecordedState::Present | RecordedState::Absent | RecordedState::Revoked => {
                        " OR (#order = :order AND (#state = :pending OR #state = :failed))"
                    }
                }
            ))
            .expression_attribute_values(":decision_prefix", s(order.key_before_message_id()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#order", "orderKey")
            .expression_attribute_names("#requestedAt", "requestedAt")
            .expression_attribute_names("#decision", "decision")
            .expression_attribute_names("#firstMessageId", "firstMessageId")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#stateAt", "stateAt")
            .expression_attribute_names("#operationRequestId", "operationRequestId")
            .expression_attribute_names("#endedByExpiry", ENDED_BY_EXPIRY)
            .expression_attribute_names("#correlationId", "correlationId")
            .expression_attribute_names("#notAfter", "notAfter")
            .expression_attribute_values(":order", s(order.key()))
            .expression_attribute_values(":requestedAt", s(rfc3339(order.requested_at)))
            .expression_attribute_values(":decision", s(order.intent.as_str()))
            .expression_attribute_values(":firstMessageId", s(&order.first_message_id))
            .expression_attribute_values(":state", s(stored_state(state)))
            .expression_attribute_values(":now", s(rfc3339(now)));
        request = request.expression_attribute_values(":failed", s(RecordedState::Failed.as_str()));
        if matches!(
            state,
            RecordedState::Present | RecordedState::Absent | RecordedState::Revoked
        ) {
            request =
                request.expression_attribute_values(":pending", s(RecordedState::Pending.as_str()));
        }
        match &order.correlation_id {
            Some(id) => {
                set.push("#correlationId = :correlationId");
                request = request.expression_attribute_values(":correlationId", s(id));
            }
            None => remove.push("#correlationId"),
        }
        match decision.not_after {
            Some(not_after) => {
                set.push("#notAfter = :notAfter");
                request = request
                    .expression_attribute_values(":notAfter", s(stored_not_after(not_after)))
                    .expression_attribute_values(":notAfterAsWritten", s(rfc3339(not_after)));
            }
            None => remove.push("#notAfter"),
        }
        let expression = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
        match request.update_expression(expression).send().await {
            Ok(_) => Ok(ClaimAnswer::Claimed),
            Err(error) => {
                claim_refused(refused_item(error)?, decision).map_err(naming_the_item(key))
            }
        }
    }

    async fn latest(&self, key: &LedgerKey) -> LedgerResult<Option<AccessDecision>> {
        Ok(self
            .latest_with_state(key)
            .await?
            .map(|(decision, _)| decision))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn latest_with_state(
        &self,
        key: &LedgerKey,
    ) -> LedgerResult<Option<(AccessDecision, RecordedState)>> {
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(call_error)?;
        let Some(item) = answer.item() else {
            return Ok(None);
        };
        recorded(item).map(Some).map_err(naming_the_item(key))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn record(
        &self,
        key: &LedgerKey,
        order: &DecisionOrder,
        state: RecordedState,
        operation_request_id: Option<&str>,
        now: OffsetDateTime,
    ) -> LedgerResult<RecordAnswer> {
        // `Revoked` is written as `absent` with `endedByExpiry`
        // ([`RecordedState::Revoked`]), and only over a grant recorded carried out; any
        // other state removes that mark.
        let revoking = state == RecordedState::Revoked;
        let condition = if revoking {
            "#order = :order AND (#state = :present OR (#state = :absent AND #endedByExpiry = \
             :order))"
        } else {
            "#order = :order"
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key.as_str()))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#order", "orderKey")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#stateAt", "stateAt")
            .expression_attribute_names("#endedByExpiry", ENDED_BY_EXPIRY)
            .expression_attribute_names("#operationRequestId", "operationRequestId")
            .expression_attribute_values(":order", s(order.key()))
            .expression_attribute_values(":state", s(stored_state(state)))
            .expression_attribute_values(":now", s(rfc3339(now)));
        let mut set = vec!["#state = :state", "#stateAt = :now"];
        // The state is this answer's alone: an operation id from an earlier state (the
        // grant's create, say, under an expiry that found nothing) must go.
        let mut remove = vec![];
        match operation_request_id {
            Some(id) => {
                set.push("#operationRequestId = :operationRequestId");
                request = request.expression_attribute_values(":operationRequestId", s(id));
            }
            None => remove.push("#operationRequestId"),
        }
        if revoking {
            request = request
                .expression_attribute_values(":present", s(RecordedState::Present.as_str()))
                .expression_attribute_values(":absent", s(RecordedState::Absent.as_str()));
            set.push("#endedByExpiry = :order");
        } else {
            remove.push("#endedByExpiry");
        }
        let expression = if remove.is_empty() {
            format!("SET {}", set.join(", "))
        } else {
            format!("SET {} REMOVE {}", set.join(", "), remove.join(", "))
        };
        match request.update_expression(expression).send().await {
            Ok(_) => Ok(RecordAnswer::Recorded),
            Err(error) => refused_item(error)?
                .as_ref()
                .map(decision_of)
                .transpose()
                .map(RecordAnswer::NotLatest)
                .map_err(naming_the_item(key)),
        }
    }
}
