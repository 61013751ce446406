//! How the worker reads a failed AWS call, whichever service made it: the error kinds
//! the lifecycle acts on (SPEC §3), shared by the Identity Center and ledger ports.

/// How the lifecycle must treat an error: the error *kind*, independent of which of the
/// four operations raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `ConflictException`: an earlier write on the same account has not propagated.
    Conflict,
    /// `ThrottlingException` "Rate exceeded": the 20-per-second API rate.
    RateLimited,
    /// `ThrottlingException` "too many requests processing": the 15 outstanding creates.
    Busy,
    /// `InternalServerException` or any HTTP 5xx.
    ServerError,
    /// The call did not complete in time.
    Timeout,
    /// The connection failed or dropped.
    Connection,
    Validation,
    AccessDenied,
    ResourceNotFound,
    ServiceQuotaExceeded,
    /// Any other error AWS returned: not safe to retry blindly.
    Rejected,
}

impl ErrorKind {
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Conflict
                | ErrorKind::RateLimited
                | ErrorKind::Busy
                | ErrorKind::ServerError
                | ErrorKind::Timeout
                | ErrorKind::Connection
        )
    }

    /// Whether the call may have been carried out although no answer said so: after a
    /// timeout, a dropped connection, a 5xx or an unreadable answer, AWS may have acted
    /// on it (SPEC §3, the `expired` row).
    pub fn may_have_taken_effect(self) -> bool {
        matches!(
            self,
            ErrorKind::ServerError | ErrorKind::Timeout | ErrorKind::Connection
        )
    }

    /// Classifies an error response by its `__type` code, message and HTTP status.
    pub fn classify(code: Option<&str>, message: Option<&str>, http_status: Option<u16>) -> Self {
        // The JSON protocol may qualify the code: `com.amazonaws.swbexternalservice#ConflictException`.
        let code = code.map(|c| c.rsplit('#').next().unwrap_or(c));
        match code {
            // DynamoDB: another writer's transaction or replication holds the item; the
            // worker's own write is safe to repeat.
            Some(
                "ConflictException"
                | "TransactionConflictException"
                | "ReplicatedWriteConflictException",
            ) => ErrorKind::Conflict,
            Some("ThrottlingException" | "ThrottledException" | "TooManyRequestsException") => {
                let message = plain_words(message.unwrap_or_default());
                if message.contains("too many requests") && message.contains("processing") {
                    ErrorKind::Busy
                } else {
                    ErrorKind::RateLimited
                }
            }
            // DynamoDB's throughput and request-rate refusals are rate limits too, as are
            // SQS's (its own, and its KMS key's for an encrypted queue).
            Some(
                "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "RequestThrottled"
                | "KMS.ThrottlingException",
            ) => ErrorKind::RateLimited,
            Some(
                "InternalServerException"
                | "InternalServerError"
                | "InternalFailure"
                | "ServiceUnavailable",
            ) => ErrorKind::ServerError,
            Some("ValidationException") => ErrorKind::Validation,
            Some("AccessDeniedException") => ErrorKind::AccessDenied,
            Some("ResourceNotFoundException") => ErrorKind::ResourceNotFound,
            Some("ServiceQuotaExceededException") => ErrorKind::ServiceQuotaExceeded,
            _ => match http_status {
                Some(500..=599) => ErrorKind::ServerError,
                // A 2xx is an error only when its body could not be read: the service
                // took the call, and repeating it is safe, as for a 5xx.
                Some(200..=299) => ErrorKind::ServerError,
                Some(429) => ErrorKind::RateLimited,
                _ => ErrorKind::Rejected,
            },
        }
    }
}

/// An AWS message as plain words, to match phrases in it however they are wrapped or
/// typeset: lower case, one space between words, typographic apostrophes as `'`, and
/// "does not" as "doesn't".
pub fn plain_words(message: &str) -> String {
    message
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .replace(['\u{2019}', '\u{2018}'], "'")
        .replace("does not", "doesn't")
}

/// An Identity Center call that did not answer with a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CallError {
    pub kind: ErrorKind,
    /// The AWS error code, or a description such as `HTTP 503` when there is none.
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_documented_errors() {
        let cases = [
            (
                Some("ConflictException"),
                None,
                Some(400),
                ErrorKind::Conflict,
            ),
            (
                Some("ThrottlingException"),
                Some("Rate exceeded"),
                Some(400),
                ErrorKind::RateLimited,
            ),
            (
                Some("ThrottlingException"),
                Some("There are too many requests processing. Please try again later."),
                Some(400),
                ErrorKind::Busy,
            ),
            // The same refusal worded or wrapped otherwise.
            (
                Some("ThrottlingException"),
                Some("There are too many requests\n  processing. Please try again later."),
                Some(400),
                ErrorKind::Busy,
            ),
            (
                Some("ThrottlingException"),
                Some("Too many requests are processing"),
                Some(400),
                ErrorKind::Busy,
            ),
            (
                Some("com.amazonaws.swbexternalservice#ConflictException"),
                None,
                None,
                ErrorKind::Conflict,
            ),
            (
                Some("InternalServerException"),
                None,
                Some(500),
                ErrorKind::ServerError,
            ),
            (
                Some("ValidationException"),
                None,
                Some(400),
                ErrorKind::Validation,
            ),
            (
                Some("AccessDeniedException"),
                None,
                Some(400),
                ErrorKind::AccessDenied,
            ),
            (
                Some("ResourceNotFoundException"),
                None,
                Some(400),
                ErrorKind::ResourceNotFound,
            ),
            (
                Some("ServiceQuotaExceededException"),
                None,
                Some(400),
                ErrorKind::ServiceQuotaExceeded,
            ),
            (None, None, Some(502), ErrorKind::ServerError),
            (
                Some("RequestThrottled"),
                Some("Request is throttled."),
                Some(403),
                ErrorKind::RateLimited,
            ),
            (
                Some("KMS.ThrottlingException"),
                Some("Rate exceeded"),
                Some(400),
                ErrorKind::RateLimited,
            ),
            (
                Some("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"),
                None,
                Some(400),
                ErrorKind::RateLimited,
            ),
            (
                Some("InternalServerError"),
                None,
                Some(500),
                ErrorKind::ServerError,
            ),
            (None, None, Some(200), ErrorKind::ServerError),
            (
                Some("UnrecognizedClientException"),
                None,
                Some(400),
                ErrorKind::Rejected,
            ),
        ];
        for (code, message, status, expected) in cases {
            assert_eq!(
                ErrorKind::classify(code, message, status),
                expected,
                "{code:?}"
            );
        }
    }
}
