//! The errors a request can end in, named as AWS names them.
//!
//! The domain raises these without knowing HTTP; `api::response` turns them into the status code,
//! `x-amzn-ErrorType` header and JSON body that the SDKs map to their exception classes.

use std::fmt;

/// `ValidationException.reason`, as the model enumerates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationReason {
    CannotParse,
    FieldValidationFailed,
    IdempotentParameterMismatch,
}

impl ValidationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationReason::CannotParse => "CannotParse",
            ValidationReason::FieldValidationFailed => "FieldValidationFailed",
            ValidationReason::IdempotentParameterMismatch => "IdempotentParameterMismatchException",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub name: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    Validation {
        reason: ValidationReason,
        fields: Vec<FieldProblem>,
    },
    ResourceNotFound,
    Conflict,
    ServiceQuotaExceeded,
    Throttling,
    AccessDenied,
    /// A bearer token is missing or refused on a JWT-authorized runtime (401).
    Unauthorized,
    /// A secret in the token vault could not be decrypted (Identity's `DecryptionFailure`, 400).
    DecryptionFailure,
    RuntimeClientError,
    RetryableConflict,
    InternalServer,
    /// The server fault of operations that model it as `ServiceException` (Memory).
    Service,
    /// The request matches no operation this endpoint serves.
    UnknownOperation,
    /// Authentication failures carry their own AWS code (MissingAuthenticationTokenException, …).
    Auth {
        code: &'static str,
    },
    /// Another error shape of a service's model (e.g. Bedrock's ModelErrorException), with the
    /// status its `httpStatusCode` trait gives; the body carries `message` only.
    Modelled {
        code: &'static str,
        status: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Validation { reason: ValidationReason::FieldValidationFailed, fields: vec![] }, message)
    }

    /// A validation error about one named field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Error::new(
            ErrorKind::Validation {
                reason: ValidationReason::FieldValidationFailed,
                fields: vec![FieldProblem { name: field.to_string(), message: message.clone() }],
            },
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::ResourceNotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Conflict, message)
    }

    pub fn quota(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::ServiceQuotaExceeded, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InternalServer, message)
    }

    /// The AWS error code (the modelled shape name) for this error.
    pub fn code(&self) -> &'static str {
        match &self.kind {
            ErrorKind::Validation { .. } => "ValidationException",
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::Conflict => "ConflictException",
            ErrorKind::ServiceQuotaExceeded => "ServiceQuotaExceededException",
            ErrorKind::Throttling => "ThrottlingException",
            ErrorKind::AccessDenied => "AccessDeniedException",
            ErrorKind::Unauthorized => "UnauthorizedException",
            ErrorKind::DecryptionFailure => "DecryptionFailure",
            ErrorKind::RuntimeClientError => "RuntimeClientError",
            ErrorKind::RetryableConflict => "RetryableConflictException",
            ErrorKind::InternalServer => "InternalServerException",
            ErrorKind::Service => "ServiceException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::Auth { code } | ErrorKind::Modelled { code, .. } => code,
        }
    }

    /// HTTP status, from the model's error traits.
    pub fn status(&self) -> u16 {
        match &self.kind {
            ErrorKind::Validation { .. } | ErrorKind::DecryptionFailure => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::ResourceNotFound => 404,
            ErrorKind::Conflict | ErrorKind::RetryableConflict => 409,
            ErrorKind::ServiceQuotaExceeded => 402,
            ErrorKind::Throttling => 429,
            ErrorKind::AccessDenied | ErrorKind::Auth { .. } => 403,
            ErrorKind::RuntimeClientError => 424,
            ErrorKind::InternalServer | ErrorKind::Service => 500,
            ErrorKind::UnknownOperation => 404,
            ErrorKind::Modelled { status, .. } => *status,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::model;

    /// Our status table must agree with the `httpStatusCode` traits of the model.
    #[test]
    fn statuses_match_the_model() {
        let samples = [
            Error::validation("x"),
            Error::not_found("x"),
            Error::conflict("x"),
            Error::quota("x"),
            Error::new(ErrorKind::Throttling, "x"),
            Error::new(ErrorKind::AccessDenied, "x"),
            Error::new(ErrorKind::RetryableConflict, "x"),
            Error::internal("x"),
            Error::new(ErrorKind::Service, "x"),
        ];
        for e in samples {
            assert_eq!(model::control().error_status(e.code()), Some(e.status()), "{}", e.code());
        }
        let rce = Error::new(ErrorKind::RuntimeClientError, "x");
        assert_eq!(model::data().error_status(rce.code()), Some(rce.status()));
        for e in [Error::new(ErrorKind::Unauthorized, "x"), Error::new(ErrorKind::DecryptionFailure, "x")] {
            assert_eq!(model::control().error_status(e.code()), Some(e.status()), "{}", e.code());
        }
        let unauthorized = Error::new(ErrorKind::Unauthorized, "x");
        assert_eq!(model::data().error_status(unauthorized.code()), Some(401));
    }
}
