//! Parsing an SQS body into a validated request (SPEC §2).
//!
//! Fields are read one by one from a JSON object rather than through a serde derive, so
//! every refusal names the field and the rule (serde's type errors name neither).

use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ids::{
    AccountId, CorrelationId, IamPrincipalArn, IamPrincipalPattern, IdError, InstanceArn,
    PermissionSetArn, PortfolioId, PrincipalId,
};
use crate::portfolio_access::{ListedPrincipal, PortfolioPrincipalType};
use crate::progress::{Progress, Purpose, Resource, UndoReport};

/// Bodies above this are refused before any JSON is read; a real request is under 2 KiB.
/// The worker's own progress envelopes are bodies too.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Requests above this are refused, so that everything the worker writes about one fits
/// within [`MAX_BODY_BYTES`]: its progress envelope, read back as a body, and the dead
/// letter of an expiry or undo (that envelope and the dead letter's attributes).
pub const MAX_REQUEST_BYTES: usize = MAX_BODY_BYTES
    - crate::messages::MAX_ENVELOPE_OVERHEAD
    - crate::messages::MAX_DEAD_LETTER_ATTRIBUTE_BYTES;

/// Why a body is not a request. `code` goes to the dead-letter `ErrorCode` attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRequest {
    pub code: &'static str,
    pub message: String,
}

impl InvalidRequest {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn field(field: Field, error: &IdError) -> Self {
        Self::new(error.rule(), format!("{}: {error}", field.name()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentAction {
    Create,
    Delete,
}

impl AssignmentAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentAction::Create => "create",
            AssignmentAction::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortfolioAction {
    Associate,
    Disassociate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalType {
    User,
    Group,
}

impl PrincipalType {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::User => "USER",
            PrincipalType::Group => "GROUP",
        }
    }
}

/// One account assignment: who gets which permission set on which account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub instance: InstanceArn,
    pub permission_set: PermissionSetArn,
    pub account: AccountId,
    pub principal_type: PrincipalType,
    pub principal_id: PrincipalId,
}

/// A Service Catalog portfolio principal, typed by how it matches IAM principals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortfolioPrincipal {
    Iam(IamPrincipalArn),
    IamPattern(IamPrincipalPattern),
}

impl PortfolioPrincipal {
    pub fn principal_type(&self) -> PortfolioPrincipalType {
        match self {
            PortfolioPrincipal::Iam(_) => PortfolioPrincipalType::Iam,
            PortfolioPrincipal::IamPattern(_) => PortfolioPrincipalType::IamPattern,
        }
    }

    pub fn arn(&self) -> &str {
        match self {
            PortfolioPrincipal::Iam(arn) => arn.as_str(),
            PortfolioPrincipal::IamPattern(pattern) => pattern.as_str(),
        }
    }

    /// The principal as ListPrincipalsForPortfolio would name it.
    pub fn listed(&self) -> ListedPrincipal {
        ListedPrincipal {
            principal_type: self.principal_type(),
            principal_arn: self.arn().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptLanguage {
    En,
    Jp,
    Zh,
}

impl AcceptLanguage {
    pub fn as_str(self) -> &'static str {
        match self {
            AcceptLanguage::En => "en",
            AcceptLanguage::Jp => "jp",
            AcceptLanguage::Zh => "zh",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortfolioChange {
    pub portfolio: PortfolioId,
    pub principal: PortfolioPrincipal,
    pub accept_language: Option<AcceptLanguage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Assignment(AssignmentAction, Assignment),
    Portfolio(PortfolioAction, PortfolioChange),
}

/// A request that passed every rule of SPEC §2.
#[derive(Debug, Clone)]
pub struct Request {
    pub operation: Operation,
    pub correlation_id: Option<CorrelationId>,
    /// When the upstream made the decision; orders decisions for one assignment.
    pub requested_at: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    /// The request's JSON exactly as the upstream wrote it: what a dead letter carries
    /// and what the progress envelope forwards.
    pub raw: Box<RawValue>,
}

impl Request {
    pub fn action_name(&self) -> &'static str {
        match &self.operation {
            Operation::Assignment(action, _) => action.as_str(),
            Operation::Portfolio(PortfolioAction::Associate, _) => "associate-portfolio-principal",
            Operation::Portfolio(PortfolioAction::Disassociate, _) => {
                "disassociate-portfolio-principal"
            }
        }
    }

    pub fn assignment(&self) -> Option<(AssignmentAction, &Assignment)> {
        match &self.operation {
            Operation::Assignment(action, assignment) => Some((*action, assignment)),
            Operation::Portfolio(..) => None,
        }
    }

    /// What the request changes, and which way: `Create` makes the access present
    /// (create, associate), `Delete` absent (delete, disassociate).
    pub fn target(&self) -> (AssignmentAction, Target<'_>) {
        match &self.operation {
            Operation::Assignment(action, assignment) => (*action, Target::Assignment(assignment)),
            Operation::Portfolio(action, change) => (
                match action {
                    PortfolioAction::Associate => AssignmentAction::Create,
                    PortfolioAction::Disassociate => AssignmentAction::Delete,
                },
                Target::Portfolio(change),
            ),
        }
    }
}

/// The access a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Assignment(&'a Assignment),
    Portfolio(&'a PortfolioChange),
}

impl Target<'_> {
    pub fn resource(&self) -> Resource {
        match self {
            Target::Assignment(_) => Resource::Assignment,
            Target::Portfolio(_) => Resource::Portfolio,
        }
    }

    /// The name of the operation that moves this access in `direction`.
    pub fn operation_name(&self, direction: AssignmentAction) -> &'static str {
        match (self, direction) {
            (Target::Assignment(_), action) => action.as_str(),
            (Target::Portfolio(_), AssignmentAction::Create) => "associate-portfolio-principal",
            (Target::Portfolio(_), AssignmentAction::Delete) => "disassociate-portfolio-principal",
        }
    }
}

/// A message from the work queue: a request, and where it stands if it was re-enqueued.
#[derive(Debug, Clone)]
pub struct Message {
    pub request: Request,
    pub progress: Option<Progress>,
    /// When the SNS notification that carried the request was published (its
    /// `Timestamp`), when it says so in RFC 3339. SNS delivers late and more than once,
    /// each delivery a new SQS message: a request without `requestedAt` is ordered by
    /// this, not by when a delivery reached the queue.
    pub published_at: Option<OffsetDateTime>,
}

impl Message {
    /// Where a request without `requestedAt` that SNS carried stands: at its publish
    /// time. `Timestamp` is to the millisecond, so decisions published in one millisecond
    /// (a FIFO topic's PublishBatch) tie on it, and the tie would go by correlation id. A
    /// decision that ends access (a revoke, a grant with `notAfter`) is placed at the end
    /// of its millisecond and a permanent grant at its start, so that a permanent grant
    /// never outranks one of them there. (Two timed grants there still tie, as two
    /// decisions with one `requestedAt` do.)
    pub fn published_order_time(&self) -> Option<OffsetDateTime> {
        const LAST_NANOSECOND: i64 = 999_999;
        let published = self.published_at?;
        let start =
            published - time::Duration::nanoseconds(i64::from(published.nanosecond() % 1_000_000));
        let (action, _) = self.request.target();
        let ends_access = action == AssignmentAction::Delete || self.request.not_after.is_some();
        if ends_access {
            return start.checked_add(time::Duration::nanoseconds(LAST_NANOSECOND));
        }
        Some(start)
    }
}

/// The request's fields, each under its camelCase name and its API (PascalCase) alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Action,
    InstanceArn,
    PermissionSetArn,
    TargetId,
    TargetType,
    PrincipalType,
    PrincipalId,
    PortfolioId,
    PrincipalArn,
    AcceptLanguage,
    CorrelationId,
    RequestedAt,
    NotAfter,
}

const FIELDS: [(Field, &str, &str); 13] = [
    (Field::Action, "action", "Action"),
    (Field::InstanceArn, "instanceArn", "InstanceArn"),
    (
        Field::PermissionSetArn,
        "permissionSetArn",
        "PermissionSetArn",
    ),
    (Field::TargetId, "targetId", "TargetId"),
    (Field::TargetType, "targetType", "TargetType"),
    (Field::PrincipalType, "principalType", "PrincipalType"),
    (Field::PrincipalId, "principalId", "PrincipalId"),
    (Field::PortfolioId, "portfolioId", "PortfolioId"),
    (Field::PrincipalArn, "principalArn", "PrincipalARN"),
    (Field::AcceptLanguage, "acceptLanguage", "AcceptLanguage"),
    (Field::CorrelationId, "correlationId", "CorrelationId"),
    (Field::RequestedAt, "requestedAt", "RequestedAt"),
    (Field::NotAfter, "notAfter", "NotAfter"),
];

impl Field {
    fn name(self) -> &'static str {
        FIELDS
            .iter()
            .find(|(field, _, _)| *field == self)
            .map_or("?", |(_, camel, _)| camel)
    }

    fn from_key(key: &str) -> Option<Field> {
        FIELDS
            .iter()
            .find(|(_, camel, pascal)| key == *camel || key == *pascal)
            .map(|(field, _, _)| *field)
    }
}

const ASSIGNMENT_FIELDS: &[Field] = &[
    Field::InstanceArn,
    Field::PermissionSetArn,
    Field::TargetId,
    Field::TargetType,
    Field::PrincipalId,
];
const PORTFOLIO_FIELDS: &[Field] = &[
    Field::PortfolioId,
    Field::PrincipalArn,
    Field::AcceptLanguage,
];

/// Parses one SQS body (raw request or any envelope of SPEC §2) into a message.
pub fn parse_body(body: &str) -> Result<Message, InvalidRequest> {
    if body.len() > MAX_BODY_BYTES {
        return Err(InvalidRequest::new(
            "BodyTooLarge",
            format!(
                "body is {} bytes; the limit is {MAX_BODY_BYTES}",
                body.len()
            ),
        ));
    }
    if body.is_empty() {
        return Err(InvalidRequest::new("EmptyBody", "body is empty"));
    }
    if body.trim().is_empty() {
        return Err(InvalidRequest::new(
            "EmptyBody",
            "body is blank (only whitespace)",
        ));
    }
    if body.starts_with('\u{feff}') {
        return Err(InvalidRequest::new(
            "NotJson",
            "body starts with a byte-order mark (U+FEFF); send plain UTF-8 JSON",
        ));
    }
    let object = JsonObject::parse(body, "body")?;

    if object.get("request").is_some() && object.get("progress").is_some() {
        return parse_progress_envelope(body);
    }
    match object.get("Type") {
        Some(Value::String(kind)) if kind == "Notification" => {
            let Some(Value::String(message)) = object.get("Message") else {
                return Err(InvalidRequest::new(
                    "BadEnvelope",
                    "SNS notification: `Message` must be a string holding the request JSON",
                ));
            };
            let request = parse_request(message).map_err(|e| within("SNS notification", e))?;
            return Ok(Message {
                published_at: publication_time(object.get("Timestamp")),
                request,
                progress: None,
            });
        }
        Some(Value::String(kind)) if object.get("TopicArn").is_some() => {
            return Err(InvalidRequest::new(
                "BadEnvelope",
                format!(
                    "SNS message of type `{kind}` is not a Notification and carries no request \
                     (confirm SNS subscriptions outside the worker)"
                ),
            ));
        }
        _ => {}
    }
    if object.get("detail-type").is_some() || object.get("detail").is_some() {
        return match object.get("detail") {
            None => Err(InvalidRequest::new(
                "BadEnvelope",
                "EventBridge event: `detail` is missing",
            )),
            Some(Value::Object(_)) => {
                #[derive(serde::Deserialize)]
                struct EventBridge<'a> {
                    #[serde(borrow)]
                    detail: &'a RawValue,
                }
                let event: EventBridge<'_> = serde_json::from_str(body).map_err(|e| {
                    InvalidRequest::new("BadEnvelope", format!("EventBridge event: {e}"))
                })?;
                let request = parse_request(event.detail.get())
                    .map_err(|e| within("EventBridge event", e))?;
                // EventBridge's `time` is to the second, too coarse to order one
                // decision against another made within it (two grants, one with
                // `notAfter`, say): its events are ordered by their SentTimestamp, as raw
                // requests are. README asks its senders for `requestedAt`.
                Ok(Message {
                    request,
                    progress: None,
                    published_at: None,
                })
            }
            Some(other) => Err(InvalidRequest::new(
                "BadEnvelope",
                format!(
                    "EventBridge event: `detail` must be an object holding the request, got {}",
                    json_kind(other)
                ),
            )),
        };
    }
    Ok(Message {
        request: parse_request(body)?,
        progress: None,
        published_at: None,
    })
}

/// An SNS notification's publish time (`Timestamp`, to the millisecond, as SQS's
/// SentTimestamp is). SPEC §2 names no rule for the envelope's own fields, so one that is
/// missing or unreadable is no error: the request is ordered as a raw one.
fn publication_time(value: Option<&Value>) -> Option<OffsetDateTime> {
    match value {
        Some(Value::String(text)) => OffsetDateTime::parse(text, &Rfc3339).ok(),
        _ => None,
    }
}

fn within(envelope: &str, error: InvalidRequest) -> InvalidRequest {
    InvalidRequest::new(error.code, format!("{envelope}: {}", error.message))
}

/// A JSON object's members in order, keeping repeated keys: serde_json's map keeps only
/// the last, which would let `{"targetId":"A","targetId":"B"}` pass as B unnoticed.
struct JsonObject(Vec<(String, Value)>);

impl JsonObject {
    fn parse(text: &str, what: &str) -> Result<Self, InvalidRequest> {
        let value: ObjectOrOther = serde_json::from_str(text).map_err(|e| {
            InvalidRequest::new("NotJson", format!("{what} is not valid JSON: {e}"))
        })?;
        let members = match value {
            ObjectOrOther::Object(members) => members,
            ObjectOrOther::Other(Value::String(_)) => {
                return Err(InvalidRequest::new(
                    "NotAnObject",
                    format!("{what} is a JSON string, not an object (double-encoded JSON?)"),
                ));
            }
            ObjectOrOther::Other(other) => {
                return Err(InvalidRequest::new(
                    "NotAnObject",
                    format!("{what} must be a JSON object, got {}", json_kind(&other)),
                ));
            }
        };
        for (index, (key, _)) in members.iter().enumerate() {
            if members[..index].iter().any(|(seen, _)| seen == key) {
                return Err(InvalidRequest::new(
                    "DuplicateField",
                    format!("`{key}` appears more than once in the {what}"),
                ));
            }
        }
        Ok(Self(members))
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// A JSON object as its members in order (repeated keys kept), or any other value.
enum ObjectOrOther {
    Object(Vec<(String, Value)>),
    Other(Value),
}

impl<'de> serde::Deserialize<'de> for ObjectOrOther {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ObjectOrOther;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(ObjectOrOther::Object(members))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                let items = serde::Deserialize::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?;
                Ok(ObjectOrOther::Other(Value::Array(items)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ObjectOrOther::Other(Value::String(v.to_owned())))
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ObjectOrOther::Other(Value::Bool(v)))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ObjectOrOther::Other(Value::from(v)))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ObjectOrOther::Other(Value::from(v)))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ObjectOrOther::Other(Value::from(v)))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(ObjectOrOther::Other(Value::Null))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_progress_envelope(body: &str) -> Result<Message, InvalidRequest> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope<'a> {
        #[serde(borrow)]
        request: &'a RawValue,
        #[serde(borrow)]
        progress: &'a RawValue,
    }
    let envelope: Envelope<'_> = serde_json::from_str(body)
        .map_err(|e| InvalidRequest::new("BadEnvelope", format!("progress envelope: {e}")))?;
    // Read on its own so that an error names `progress` and counts columns within it.
    let progress: Progress = serde_json::from_str(envelope.progress.get()).map_err(|e| {
        InvalidRequest::new("BadEnvelope", format!("progress envelope: progress: {e}"))
    })?;
    let request = parse_request_from(envelope.request.get(), Writer::Worker)
        .map_err(|e| within("progress envelope", e))?;
    // A decision's own steps carry out its action; an expiry revokes a grant; an undo
    // may carry out either, but one that reports as an expiry belongs to a grant with
    // notAfter, as the expiry it started from.
    let (action, target) = request.target();
    let grant_with_end = action == AssignmentAction::Create && request.not_after.is_some();
    let fits = target.resource() == progress.resource()
        && match &progress.purpose {
            Purpose::Decision => action == progress.operation(),
            Purpose::Expiry => action == AssignmentAction::Create,
            Purpose::Undo {
                reports: UndoReport::Expiry,
                ..
            } => grant_with_end,
            Purpose::Undo { .. } => true,
        };
    if !fits {
        return Err(InvalidRequest::new(
            "BadEnvelope",
            format!(
                "progress envelope: a {} step of `{}` does not belong to a `{}` request",
                progress.purpose_name(),
                progress.operation_name(),
                request.action_name()
            ),
        ));
    }
    Ok(Message {
        request,
        progress: Some(progress),
        published_at: None,
    })
}

/// Who wrote a request: the upstream, or the worker, into its own envelope (where an
/// earlier build may have kept what the rules now refuse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Upstream,
    Worker,
}

/// Parses and validates the request object itself (no envelope).
pub fn parse_request(text: &str) -> Result<Request, InvalidRequest> {
    parse_request_from(text, Writer::Upstream)
}

fn parse_request_from(text: &str, writer: Writer) -> Result<Request, InvalidRequest> {
    if text.len() > MAX_REQUEST_BYTES {
        return Err(InvalidRequest::new(
            "RequestTooLarge",
            format!(
                "request is {} bytes; the limit is {MAX_REQUEST_BYTES}, leaving room for \
                 the worker's progress envelope",
                text.len()
            ),
        ));
    }
    let object = JsonObject::parse(text, "request")?;
    let mut fields: Vec<(Field, String)> = Vec::with_capacity(object.0.len());
    for (key, value) in &object.0 {
        let field = Field::from_key(key)
            .ok_or_else(|| InvalidRequest::new("UnknownField", format!("unknown field `{key}`")))?;
        if fields.iter().any(|(seen, _)| *seen == field) {
            return Err(InvalidRequest::new(
                "DuplicateField",
                format!("{} is given twice (camelCase and API name)", field.name()),
            ));
        }
        let Value::String(text) = value else {
            return Err(InvalidRequest::new(
                "WrongType",
                format!(
                    "{}: must be a string, got {}",
                    field.name(),
                    json_kind(value)
                ),
            ));
        };
        fields.push((field, text.clone()));
    }
    let get = |wanted: Field| {
        fields
            .iter()
            .find(|(field, _)| *field == wanted)
            .map(|(_, value)| value.as_str())
    };
    let required = |wanted: Field, action: &str| {
        get(wanted).ok_or_else(|| {
            InvalidRequest::new(
                "MissingField",
                format!("{}: required for action `{action}`", wanted.name()),
            )
        })
    };

    let action = get(Field::Action)
        .ok_or_else(|| InvalidRequest::new("MissingField", "action: required"))?;
    let operation = match action {
        "create" | "delete" => {
            reject_fields(&get, PORTFOLIO_FIELDS, action)?;
            let action_kind = if action == "create" {
                AssignmentAction::Create
            } else {
                AssignmentAction::Delete
            };
            let instance = InstanceArn::parse(required(Field::InstanceArn, action)?)
                .map_err(|e| InvalidRequest::field(Field::InstanceArn, &e))?;
            let permission_set =
                PermissionSetArn::parse(required(Field::PermissionSetArn, action)?)
                    .map_err(|e| InvalidRequest::field(Field::PermissionSetArn, &e))?;
            if !permission_set.belongs_to(&instance) {
                return Err(InvalidRequest::new(
                    "InstanceMismatch",
                    "permissionSetArn: belongs to another instance than instanceArn",
                ));
            }
            let account = AccountId::parse(required(Field::TargetId, action)?)
                .map_err(|e| InvalidRequest::field(Field::TargetId, &e))?;
            if let Some(target_type) = get(Field::TargetType)
                && target_type != "AWS_ACCOUNT"
            {
                return Err(InvalidRequest::new(
                    "BadValue",
                    format!("targetType: must be AWS_ACCOUNT, got `{target_type}`"),
                ));
            }
            let principal_type = match required(Field::PrincipalType, action)? {
                "USER" => PrincipalType::User,
                "GROUP" => PrincipalType::Group,
                other => {
                    return Err(InvalidRequest::new(
                        "BadValue",
                        format!(
                            "principalType: must be USER or GROUP for `{action}`, got `{other}`"
                        ),
                    ));
                }
            };
            let principal_id = PrincipalId::parse(required(Field::PrincipalId, action)?)
                .map_err(|e| InvalidRequest::field(Field::PrincipalId, &e))?;
            Operation::Assignment(
                action_kind,
                Assignment {
                    instance,
                    permission_set,
                    account,
                    principal_type,
                    principal_id,
                },
            )
        }
        "associate-portfolio-principal" | "disassociate-portfolio-principal" => {
            reject_fields(&get, ASSIGNMENT_FIELDS, action)?;
            let action_kind = if action.starts_with("associate") {
                PortfolioAction::Associate
            } else {
                PortfolioAction::Disassociate
            };
            let portfolio = PortfolioId::parse(required(Field::PortfolioId, action)?)
                .map_err(|e| InvalidRequest::field(Field::PortfolioId, &e))?;
            let arn = required(Field::PrincipalArn, action)?;
            // An ARN that fits the other type is named as such: a disassociate under the
            // wrong type answers ResourceNotFound and would look like "already gone". The
            // ARN last, so that the 1 KiB cut of ErrorMessage cannot take the type to send.
            let mismatch = |fits: &str| {
                InvalidRequest::new(
                    "PrincipalTypeMismatch",
                    format!(
                        "principalArn is shaped like a principalType {fits} principal; send \
                         principalType {fits}: `{arn}`"
                    ),
                )
            };
            let principal = match required(Field::PrincipalType, action)? {
                "IAM" => PortfolioPrincipal::Iam(IamPrincipalArn::parse(arn).map_err(|e| {
                    if IamPrincipalPattern::parse(arn).is_ok() {
                        mismatch("IAM_PATTERN")
                    } else {
                        InvalidRequest::field(Field::PrincipalArn, &e)
                    }
                })?),
                "IAM_PATTERN" => PortfolioPrincipal::IamPattern(
                    IamPrincipalPattern::parse(arn).map_err(|e| {
                        if IamPrincipalArn::parse(arn).is_ok() {
                            mismatch("IAM")
                        } else {
                            InvalidRequest::field(Field::PrincipalArn, &e)
                        }
                    })?,
                ),
                other => {
                    return Err(InvalidRequest::new(
                        "BadValue",
                        format!(
                            "principalType: must be IAM or IAM_PATTERN for `{action}`, got `{other}`"
                        ),
                    ));
                }
            };
            let accept_language = match get(Field::AcceptLanguage) {
                None => None,
                Some("en") => Some(AcceptLanguage::En),
                Some("jp") => Some(AcceptLanguage::Jp),
                Some("zh") => Some(AcceptLanguage::Zh),
                Some(other) => {
                    return Err(InvalidRequest::new(
                        "BadValue",
                        format!("acceptLanguage: must be en, jp or zh, got `{other}`"),
                    ));
                }
            };
            Operation::Portfolio(
                action_kind,
                PortfolioChange {
                    portfolio,
                    principal,
                    accept_language,
                },
            )
        }
        other => {
            return Err(InvalidRequest::new(
                "UnknownAction",
                format!(
                    "action: must be create, delete, associate-portfolio-principal or \
                     disassociate-portfolio-principal, got `{other}`"
                ),
            ));
        }
    };

    let correlation_id = get(Field::CorrelationId)
        .map(match writer {
            Writer::Upstream => CorrelationId::parse,
            Writer::Worker => CorrelationId::parse_recorded,
        })
        .transpose()
        .map_err(|e| InvalidRequest::field(Field::CorrelationId, &e))?;
    let timestamp = |field: Field| {
        get(field)
            .map(|text| {
                OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                    InvalidRequest::new(
                        "BadTimestamp",
                        format!(
                            "{}: must be an RFC 3339 time such as 2026-11-22T18:00:00Z, got `{text}`",
                            field.name()
                        ),
                    )
                })
            })
            .transpose()
    };
    let requested_at = timestamp(Field::RequestedAt)?;
    let not_after = timestamp(Field::NotAfter)?;
    let raw = RawValue::from_string(text.to_owned())
        .map_err(|e| InvalidRequest::new("NotJson", format!("request is not valid JSON: {e}")))?;
    Ok(Request {
        operation,
        correlation_id,
        requested_at,
        not_after,
        raw,
    })
}

fn reject_fields<'a>(
    get: &impl Fn(Field) -> Option<&'a str>,
    fields: &[Field],
    action: &str,
) -> Result<(), InvalidRequest> {
    match fields.iter().find(|field| get(**field).is_some()) {
        Some(field) => Err(InvalidRequest::new(
            "FieldNotAllowed",
            format!("{}: not allowed for action `{action}`", field.name()),
        )),
        None => Ok(()),
    }
}
