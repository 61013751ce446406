//! What the worker writes to its queues: the progress envelope (SPEC §4), the dead
//! letter (SPEC §7) and the outcome event (SPEC §8).

use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ids::CorrelationId;
use crate::ledger::DecisionSummary;
use crate::lifecycle::{Completion, DeadLetter};
use crate::portfolio_access::ListedPrincipal;
use crate::progress::Progress;
use crate::queue::OutgoingMessage;

/// The most SQS stores in one message, body and attributes together (256 KiB).
pub const SQS_MAX_MESSAGE_BYTES: usize = 262_144;
/// SPEC §7 caps `ErrorMessage` at 1 KiB.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;
/// `ErrorCode` is cut to this: the worker's own codes and AWS's are far shorter, and
/// the bound keeps a dead letter's size known.
pub const MAX_ERROR_CODE_BYTES: usize = 128;
/// An operation request id is cut to this (the envelope accepts no longer one).
const MAX_REQUEST_ID_BYTES: usize = 256;

/// The longest RFC 3339 time the worker writes: `9999-12-31T23:59:59.999999999+23:59`.
const MAX_RFC3339_BYTES: usize = 35;
/// The most bytes the worker writes for one character of a later decision's correlation
/// id: U+FFFE or U+FFFF as a `\uXXXX` escape ([`sqs_json`]). Requests with them are
/// refused now, but ledger items and envelopes written before may still hold them.
const MAX_ESCAPED_CHAR_BYTES: usize = 6;

/// A JSON member `"name":"value",` whose value is a string of at most `value` bytes
/// once escaped (the comma counts for each member; the object's braces are added once).
const fn string_member(name: &str, value: usize) -> usize {
    name.len() + 3 + 2 + value + 1
}

/// A JSON member `"name":value,` whose value (a number, `true` or an object) is at most
/// `value` bytes.
const fn raw_member(name: &str, value: usize) -> usize {
    name.len() + 3 + value + 1
}

/// The longest `supersededBy`: a correlation id of 256 characters, each at its longest
/// escaped, and an RFC 3339 time.
const MAX_SUMMARY_BYTES: usize = 1
    + string_member("correlationId", 256 * MAX_ESCAPED_CHAR_BYTES)
    + string_member("requestedAt", MAX_RFC3339_BYTES);

/// The longest `progress` object, every member present and at its longest (SPEC §4):
/// request and message ids of 256 characters that all escape to two bytes (`"`, `\`),
/// u32 counters at their maximum.
const MAX_PROGRESS_BYTES: usize = 1
    + string_member("step", "expire-wait".len())
    + string_member("operation", "disassociate".len())
    + string_member("operationRequestId", 2 * MAX_REQUEST_ID_BYTES)
    + raw_member("attempt", "4294967295".len())
    + raw_member("polls", "4294967295".len())
    + string_member("firstReceivedAt", MAX_RFC3339_BYTES)
    + string_member("submittedAt", MAX_RFC3339_BYTES)
    + string_member("purpose", "restored-expiry".len())
    + string_member("requestedAt", MAX_RFC3339_BYTES)
    + string_member("firstMessageId", 2 * 256)
    + raw_member("maybeSubmitted", "true".len())
    + raw_member("resubmittedAfterFailure", "true".len())
    + raw_member("supersededBy", MAX_SUMMARY_BYTES);

/// The most a progress envelope adds to its request: `{"request":`, `,"progress":`,
/// the progress and `}`.
pub const MAX_ENVELOPE_OVERHEAD: usize =
    r#"{"request":"#.len() + r#","progress":"#.len() + MAX_PROGRESS_BYTES + "}".len();

/// The most a dead letter's attributes count against SQS's size limit (name, `String`
/// and value each): the class, the code, a 1 KiB message, the attempts, an operation
/// request id and a correlation id of 256 characters of at most 4 bytes.
pub const MAX_DEAD_LETTER_ATTRIBUTE_BYTES: usize =
    ("ErrorClass".len() + 6 + "invalid-request".len())
        + ("ErrorCode".len() + 6 + MAX_ERROR_CODE_BYTES)
        + ("ErrorMessage".len() + 6 + MAX_ERROR_MESSAGE_BYTES)
        + ("Attempts".len() + 6 + "4294967295".len())
        + ("OperationRequestId".len() + 6 + MAX_REQUEST_ID_BYTES)
        + ("CorrelationId".len() + 6 + 256 * 4);

/// The request re-enqueued with its progress, to be received again after `delay_seconds`.
pub fn progress_message(
    request: &RawValue,
    progress: &Progress,
    delay_seconds: u32,
) -> Result<OutgoingMessage, serde_json::Error> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        request: &'a RawValue,
        progress: &'a Progress,
    }
    Ok(OutgoingMessage {
        body: sqs_json(serde_json::to_string(&Envelope { request, progress })?),
        delay_seconds,
        attributes: Vec::new(),
    })
}

/// The dead letter: `body` is the request as first received, so a redrive replays it
/// from the start.
pub fn dead_letter_message(
    body: &str,
    dead_letter: &DeadLetter,
    correlation_id: Option<&CorrelationId>,
) -> OutgoingMessage {
    // SQS refuses an empty body; an empty request is still dead-lettered, visibly. A
    // body SQS delivered holds only characters it accepts, but a request unwrapped from
    // an SNS `Message` string may not.
    let mut body = sqs_json(non_empty(body, "(empty body)"));
    // A body the queue took may still be too large to go with the attributes (one that
    // SQS took at its limit, which the worker refuses as too large): it is cut, or the
    // dead letter could not be stored, and SQS would move the record itself after its
    // receives, without the reason. Such a body could not be carried out anyway.
    let room = SQS_MAX_MESSAGE_BYTES - MAX_DEAD_LETTER_ATTRIBUTE_BYTES;
    let mut message = dead_letter.message.clone();
    if body.len() > room {
        let whole = body.len();
        body.truncate(body.floor_char_boundary(room));
        message = format!(
            "{message} (the body here is its first {} bytes of {whole})",
            body.len()
        );
    }
    // Replaced before the cut, so the cut sees the bytes that are sent.
    let message = sqs_text(&message);
    let mut attributes = vec![
        ("ErrorClass", dead_letter.class.as_str().to_owned()),
        (
            "ErrorCode",
            non_empty(
                truncate(&sqs_text(&dead_letter.code), MAX_ERROR_CODE_BYTES),
                "Unknown",
            ),
        ),
        (
            "ErrorMessage",
            non_empty(truncate(&message, MAX_ERROR_MESSAGE_BYTES), "(no message)"),
        ),
        ("Attempts", dead_letter.attempts.to_string()),
    ];
    if let Some(id) = &dead_letter.operation_request_id {
        attributes.push((
            "OperationRequestId",
            truncate(&sqs_text(id), MAX_REQUEST_ID_BYTES).to_owned(),
        ));
    }
    if let Some(id) = correlation_id {
        attributes.push(("CorrelationId", sqs_text(id.as_str())));
    }
    OutgoingMessage {
        body,
        delay_seconds: 0,
        attributes,
    }
}

/// Whether SQS accepts `c` in a message body or attribute value: #x9, #xA, #xD,
/// #x20 to #xD7FF, #xE000 to #xFFFD, #x10000 to #x10FFFF.
pub fn sqs_accepts(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// `text` with every character SQS refuses replaced by U+FFFD (SPEC §7): for attribute
/// values, which are plain text.
pub fn sqs_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if sqs_accepts(c) {
                c
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

/// JSON `text` with every character SQS refuses written as a `\uXXXX` escape: the same
/// JSON value, now storable. serde_json escapes control characters but writes U+FFFE
/// and U+FFFF raw, and a request decoded from an SNS `Message` string may hold them raw.
/// In JSON such characters can only stand inside strings, where the escape means the
/// same; every character SQS refuses is in the Basic Multilingual Plane, so one
/// escape each does.
pub fn sqs_json(text: String) -> String {
    if text.chars().all(sqs_accepts) {
        return text;
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if sqs_accepts(c) {
            escaped.push(c);
        } else {
            escaped.push_str(&format!("\\u{:04x}", u32::from(c)));
        }
    }
    escaped
}

/// SQS refuses empty attribute values and bodies.
fn non_empty(value: &str, placeholder: &str) -> String {
    if value.is_empty() { placeholder } else { value }.to_owned()
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// The terminal outcome of one request.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    Completed(&'a Completion),
    DeadLettered(&'a DeadLetter),
}

/// What an outcome event says about the request it reports on.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeContext<'a> {
    pub correlation_id: Option<&'a CorrelationId>,
    pub action: Option<&'static str>,
    pub request: Option<&'a RawValue>,
    pub operation_request_id: Option<&'a str>,
    pub attempts: u32,
    pub polls: u32,
    pub received_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    /// The decision's place in the order (SPEC §11).
    pub requested_at: Option<OffsetDateTime>,
    /// A grant's `notAfter`, on the outcome of a grant that succeeded.
    pub expires_at: Option<OffsetDateTime>,
    /// `expiry` on the outcome of a grant's expiry step.
    pub trigger: Option<&'static str>,
    /// After a portfolio principal's removal: who still has access through the
    /// portfolio's other principals (SPEC §9); empty when nobody does.
    pub residual_access: Option<&'a [ListedPrincipal]>,
}

pub fn outcome_message(
    context: &OutcomeContext<'_>,
    outcome: Outcome<'_>,
) -> Result<OutgoingMessage, serde_json::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OutcomeEvent<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        action: Option<&'a str>,
        outcome: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        operation_request_id: Option<&'a str>,
        attempts: u32,
        polls: u32,
        received_at: String,
        finished_at: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        requested_at: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        trigger: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        superseded_by: Option<&'a DecisionSummary>,
        #[serde(skip_serializing_if = "Option::is_none")]
        residual_access: Option<&'a [ListedPrincipal]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_class: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_code: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_message: Option<&'a str>,
    }
    let (name, dead_letter, superseded_by) = match outcome {
        Outcome::Completed(Completion::Superseded(later)) => ("superseded", None, Some(later)),
        Outcome::Completed(completion) => (completion.as_str(), None, None),
        Outcome::DeadLettered(dead_letter) => ("dead-lettered", Some(dead_letter), None),
    };
    let event = OutcomeEvent {
        correlation_id: context.correlation_id.map(CorrelationId::as_str),
        action: context.action,
        outcome: name,
        request: context.request,
        operation_request_id: context.operation_request_id,
        attempts: context.attempts,
        polls: context.polls,
        received_at: rfc3339(context.received_at),
        finished_at: rfc3339(context.finished_at),
        requested_at: context.requested_at.map(rfc3339),
        expires_at: context.expires_at.map(rfc3339),
        trigger: context.trigger,
        superseded_by,
        residual_access: context.residual_access,
        error_class: dead_letter.map(|d| d.class.as_str()),
        error_code: dead_letter.map(|d| d.code.as_str()),
        error_message: dead_letter.map(|d| truncate(&d.message, MAX_ERROR_MESSAGE_BYTES)),
    };
    let mut attributes = vec![("Outcome", name.to_owned())];
    if let Some(id) = context.correlation_id {
        attributes.push(("CorrelationId", sqs_text(id.as_str())));
    }
    Ok(OutgoingMessage {
        body: sqs_json(serde_json::to_string(&event)?),
        delay_seconds: 0,
        attributes,
    })
}

pub fn rfc3339(time: OffsetDateTime) -> String {
    // Formatting a UTC time as RFC 3339 fails only for years outside 0..=9999.
    time.format(&Rfc3339)
        .unwrap_or_else(|_| time.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_characters_sqs_accepts_pass() {
        for c in [
            '\t',
            '\n',
            '\r',
            ' ',
            '\u{d7ff}',
            '\u{e000}',
            '\u{fffd}',
            '\u{10000}',
            '\u{10ffff}',
        ] {
            assert!(sqs_accepts(c), "{c:?}");
        }
        for c in [
            '\0', '\u{1}', '\u{8}', '\u{b}', '\u{1f}', '\u{fffe}', '\u{ffff}',
        ] {
            assert!(!sqs_accepts(c), "{c:?}");
        }
        assert_eq!(sqs_text("a\u{1}b\u{fffe}c\td"), "a\u{fffd}b\u{fffd}c\td");
    }

    #[test]
    fn json_keeps_its_value_with_refused_characters_escaped() {
        let value = serde_json::json!({"id": "x\u{fffe}y\u{ffff}\u{1}", "n": "é😀"});
        let raw = serde_json::to_string(&value).expect("JSON");
        assert!(raw.contains('\u{fffe}'), "serde_json writes U+FFFE raw");
        let sendable = sqs_json(raw);
        assert!(sendable.chars().all(sqs_accepts), "{sendable}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&sendable).expect("JSON"),
            value
        );
        assert_eq!(sqs_json("{\"a\":\"b\"}".to_owned()), "{\"a\":\"b\"}");
    }

    #[test]
    fn a_dead_letter_of_hostile_text_is_sendable_and_within_its_limit() {
        let dead_letter = DeadLetter::before_any_call(
            crate::lifecycle::ErrorClass::InvalidRequest,
            "Unknown\u{fffe}Code",
            "\u{1}".repeat(2000),
        );
        assert!(CorrelationId::parse("CHG-\u{fffe}").is_err());
        let id = CorrelationId::parse("CHG-\u{fffd}").expect("printable");
        let message = dead_letter_message("{\"a\":\"\u{ffff}\"}", &dead_letter, Some(&id));
        assert!(message.body.chars().all(sqs_accepts));
        for (name, value) in &message.attributes {
            assert!(value.chars().all(sqs_accepts), "{name}: {value:?}");
        }
        let error_message = message.attribute("ErrorMessage").unwrap_or_default();
        assert!(error_message.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert_eq!(message.attribute("CorrelationId"), Some(id.as_str()));
    }

    #[test]
    fn the_longest_envelope_fits_its_computed_overhead() {
        // Every member at its longest that a Progress can hold.
        let id = "\\".repeat(256);
        let progress: Progress = serde_json::from_value(serde_json::json!({
            "step": "poll", "operation": "delete", "operationRequestId": "\"".repeat(256),
            "attempt": u32::MAX, "polls": u32::MAX,
            "firstReceivedAt": "9999-12-31T23:59:59.999999999+23:59",
            "submittedAt": "9999-12-31T23:59:59.999999999+23:59",
            "purpose": "restored-expiry",
            "requestedAt": "9999-12-31T23:59:59.999999999+23:59",
            "firstMessageId": id, "maybeSubmitted": true,
            "resubmittedAfterFailure": true,
            "supersededBy": {"correlationId": "\u{fffe}".repeat(256),
                             "requestedAt": "9999-12-31T23:59:59.999999999+23:59"},
        }))
        .expect("a valid progress");
        let request = RawValue::from_string("{}".to_owned()).expect("JSON");
        let envelope = progress_message(&request, &progress, 0).expect("encodable");
        let overhead = envelope.body.len() - 2;
        assert!(
            overhead <= MAX_ENVELOPE_OVERHEAD,
            "{overhead} > {MAX_ENVELOPE_OVERHEAD}"
        );
        // Only "expire-wait" and "disassociate" are longer than what a poll of a
        // restored-expiry chain holds.
        assert!(
            MAX_ENVELOPE_OVERHEAD - overhead < 16,
            "{overhead} vs {MAX_ENVELOPE_OVERHEAD}"
        );
    }

    #[test]
    fn the_longest_dead_letter_attributes_fit_their_bound() {
        let dead_letter = DeadLetter {
            class: crate::lifecycle::ErrorClass::InvalidRequest,
            code: "C".repeat(1000),
            message: "\u{1}".repeat(2000),
            attempts: u32::MAX,
            operation_request_id: Some("r".repeat(1000)),
        };
        let id = CorrelationId::parse(&"😀".repeat(256)).expect("printable");
        let message = dead_letter_message("x", &dead_letter, Some(&id));
        let attributes = message.size() - message.body.len();
        assert!(
            attributes <= MAX_DEAD_LETTER_ATTRIBUTE_BYTES,
            "{attributes}"
        );
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(
            truncate(&"é".repeat(1000), MAX_ERROR_MESSAGE_BYTES).len(),
            1024
        );
    }
}
