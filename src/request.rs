//! Parsing an SQS body into a validated request (SPEC §2).
//!
//! Fields are read one by one from a JSON object rather than through a serde derive, so
//! every refusal names the field and the rule (serde's type errors name neither).

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ids::{
    AccountId, CorrelationId, IamPrincipalArn, IamPrincipalPattern, IdError, InstanceArn,
    PermissionSetArn, PortfolioId, PrincipalId,
};
use crate::progress::Progress;

/// Bodies above this are refused before any JSON is read; a real request is under 2 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptLanguage {
    En,
    Jp,
    Zh,
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
}

/// A message from the work queue: a request, and where it stands if it was re-enqueued.
#[derive(Debug, Clone)]
pub struct Message {
    pub request: Request,
    pub progress: Option<Progress>,
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
    NotAfter,
}

const FIELDS: [(Field, &str, &str); 12] = [
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
    if body.trim().is_empty() {
        return Err(InvalidRequest::new("EmptyBody", "body is empty"));
    }
    let object = parse_object(body, "body")?;

    if object.contains_key("progress") || object.contains_key("request") {
        return parse_progress_envelope(body);
    }
    if object.get("Type").and_then(Value::as_str) == Some("Notification") {
        let message = match object.get("Message") {
            Some(Value::String(message)) => message,
            _ => {
                return Err(InvalidRequest::new(
                    "BadEnvelope",
                    "SNS notification: `Message` must be a string holding the request JSON",
                ));
            }
        };
        let request = parse_request(message).map_err(|e| within("SNS notification", e))?;
        return Ok(Message {
            request,
            progress: None,
        });
    }
    if object.contains_key("detail-type") || object.contains_key("detail") {
        #[derive(serde::Deserialize)]
        struct EventBridge<'a> {
            #[serde(borrow)]
            detail: Option<&'a RawValue>,
        }
        let event: EventBridge<'_> = serde_json::from_str(body)
            .map_err(|e| InvalidRequest::new("BadEnvelope", format!("EventBridge event: {e}")))?;
        let detail = event.detail.ok_or_else(|| {
            InvalidRequest::new("BadEnvelope", "EventBridge event: `detail` is missing")
        })?;
        let request = parse_request(detail.get()).map_err(|e| within("EventBridge event", e))?;
        return Ok(Message {
            request,
            progress: None,
        });
    }
    Ok(Message {
        request: parse_request(body)?,
        progress: None,
    })
}

fn within(envelope: &str, error: InvalidRequest) -> InvalidRequest {
    InvalidRequest::new(error.code, format!("{envelope}: {}", error.message))
}

fn parse_object(text: &str, what: &str) -> Result<Map<String, Value>, InvalidRequest> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| InvalidRequest::new("NotJson", format!("{what} is not valid JSON: {e}")))?;
    match value {
        Value::Object(object) => Ok(object),
        Value::String(_) => Err(InvalidRequest::new(
            "NotAnObject",
            format!("{what} is a JSON string, not an object (double-encoded JSON?)"),
        )),
        other => Err(InvalidRequest::new(
            "NotAnObject",
            format!("{what} must be a JSON object, got {}", json_kind(&other)),
        )),
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
    struct Envelope {
        request: Box<RawValue>,
        progress: Progress,
    }
    let envelope: Envelope = serde_json::from_str(body)
        .map_err(|e| InvalidRequest::new("BadEnvelope", format!("progress envelope: {e}")))?;
    let request =
        parse_request(envelope.request.get()).map_err(|e| within("progress envelope", e))?;
    let expected = request.assignment().map(|(action, _)| action);
    if expected != Some(envelope.progress.operation()) {
        return Err(InvalidRequest::new(
            "BadEnvelope",
            format!(
                "progress envelope: progress is for `{}` but the request is `{}`",
                envelope.progress.operation().as_str(),
                request.action_name()
            ),
        ));
    }
    Ok(Message {
        request,
        progress: Some(envelope.progress),
    })
}

/// Parses and validates the request object itself (no envelope).
pub fn parse_request(text: &str) -> Result<Request, InvalidRequest> {
    let object = parse_object(text, "request")?;
    let mut fields: Vec<(Field, String)> = Vec::with_capacity(object.len());
    for (key, value) in &object {
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
            let principal = match required(Field::PrincipalType, action)? {
                "IAM" => PortfolioPrincipal::Iam(
                    IamPrincipalArn::parse(arn)
                        .map_err(|e| InvalidRequest::field(Field::PrincipalArn, &e))?,
                ),
                "IAM_PATTERN" => PortfolioPrincipal::IamPattern(
                    IamPrincipalPattern::parse(arn)
                        .map_err(|e| InvalidRequest::field(Field::PrincipalArn, &e))?,
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
        .map(CorrelationId::parse)
        .transpose()
        .map_err(|e| InvalidRequest::field(Field::CorrelationId, &e))?;
    let not_after = get(Field::NotAfter)
        .map(|text| OffsetDateTime::parse(text, &Rfc3339))
        .transpose()
        .map_err(|e| {
            InvalidRequest::new(
                "BadTimestamp",
                format!("notAfter: must be an RFC 3339 time: {e}"),
            )
        })?;
    let raw = RawValue::from_string(text.trim().to_owned())
        .map_err(|e| InvalidRequest::new("NotJson", format!("request is not valid JSON: {e}")))?;
    Ok(Request {
        operation,
        correlation_id,
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
