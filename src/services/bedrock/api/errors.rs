//! Bedrock's errors: the ones raised before an answer starts (plain restJson1 errors carrying only
//! `message`, as every Bedrock error shape does), and the modelled in-stream exceptions once it
//! has started.

use bytes::Bytes;
use serde_json::json;

use super::eventstream;
use crate::kernel::error::{Error, ErrorKind};
use crate::services::bedrock::reply::ModelFailure;

fn modelled(code: &'static str, status: u16, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Modelled { code, status }, message)
}

pub fn validation(message: impl Into<String>) -> Error {
    modelled("ValidationException", 400, message)
}

/// A binding or model-validation error of the kernel, reshaped as Bedrock's ValidationException
/// (Bedrock's has no `reason` or `fieldList`); other errors pass through.
pub fn reshape(e: Error) -> Error {
    match e.kind {
        ErrorKind::Validation { .. } => validation(e.message),
        _ => e,
    }
}

/// The error a call that failed before answering ends with.
pub fn before_answer(f: &ModelFailure) -> Error {
    match f {
        ModelFailure::Invalid(m) => validation(m.clone()),
        ModelFailure::Upstream { message, .. } => modelled("ModelErrorException", 424, message.clone()),
        ModelFailure::Interrupted(m) => modelled("ModelErrorException", 424, m.clone()),
        ModelFailure::Unreachable(m) => modelled("ServiceUnavailableException", 503, m.clone()),
        ModelFailure::TimedOut(m) => modelled("ModelTimeoutException", 408, m.clone()),
    }
}

/// Which stream an in-stream exception goes into: ConverseStream's union has no
/// `modelTimeoutException`, InvokeModelWithResponseStream's has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Converse,
    InvokeModel,
}

/// The in-stream exception frame for a failure after the answer started, and its error code.
pub fn in_stream(f: &ModelFailure, kind: StreamKind) -> (Bytes, &'static str) {
    let (member, code, payload) = match f {
        ModelFailure::Invalid(m) => ("validationException", "ValidationException", json!({"message": m})),
        ModelFailure::Unreachable(m) => {
            ("serviceUnavailableException", "ServiceUnavailableException", json!({"message": m}))
        }
        ModelFailure::TimedOut(m) if kind == StreamKind::InvokeModel => {
            ("modelTimeoutException", "ModelTimeoutException", json!({"message": m}))
        }
        ModelFailure::Upstream { status, message } => (
            "modelStreamErrorException",
            "ModelStreamErrorException",
            json!({"message": message, "originalStatusCode": status}),
        ),
        ModelFailure::TimedOut(m) | ModelFailure::Interrupted(m) => {
            ("modelStreamErrorException", "ModelStreamErrorException", json!({"message": m}))
        }
    };
    (eventstream::exception(member, &payload), code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_bedrock_codes() {
        assert_eq!(before_answer(&ModelFailure::Invalid("x".into())).code(), "ValidationException");
        assert_eq!(before_answer(&ModelFailure::Unreachable("x".into())).status(), 503);
        assert_eq!(before_answer(&ModelFailure::Upstream { status: 500, message: "x".into() }).status(), 424);
        assert_eq!(before_answer(&ModelFailure::TimedOut("x".into())).code(), "ModelTimeoutException");
        let (frame, code) =
            in_stream(&ModelFailure::Upstream { status: 502, message: "bad".into() }, StreamKind::Converse);
        assert_eq!(code, "ModelStreamErrorException");
        assert_eq!(
            eventstream::decode_all(frame),
            vec![("modelStreamErrorException".to_string(), json!({"message": "bad", "originalStatusCode": 502}))]
        );
        let (_, code) = in_stream(&ModelFailure::TimedOut("slow".into()), StreamKind::Converse);
        assert_eq!(code, "ModelStreamErrorException");
        assert!(
            reshape(Error::validation("v")).kind == ErrorKind::Modelled { code: "ValidationException", status: 400 }
        );
    }
}
