//! AWS event-stream frames (`application/vnd.amazon.eventstream`) as the SDKs decode them for a
//! restJson1 streaming output: `:message-type` event with `:event-type` naming the union member,
//! or exception with `:exception-type` naming the modelled error member; JSON payloads.

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use serde_json::Value;

pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

fn frame(headers: [(&str, &str); 3], payload: &Value) -> Bytes {
    let mut message = Message::new(payload.to_string());
    for (name, value) in headers {
        message = message.add_header(Header::new(name.to_string(), HeaderValue::String(value.to_string().into())));
    }
    let mut buf = BytesMut::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut buf).expect("event-stream frames encode");
    buf.freeze()
}

/// One event of the stream's union, e.g. `messageStart`.
pub fn event(event_type: &str, payload: &Value) -> Bytes {
    frame([(":message-type", "event"), (":event-type", event_type), (":content-type", "application/json")], payload)
}

/// A modelled in-stream error, e.g. `modelStreamErrorException`.
pub fn exception(exception_type: &str, payload: &Value) -> Bytes {
    frame(
        [(":message-type", "exception"), (":exception-type", exception_type), (":content-type", "application/json")],
        payload,
    )
}

/// Decodes frames back into (`:event-type` or `:exception-type`, JSON payload); for tests.
#[cfg(test)]
pub fn decode_all(mut bytes: Bytes) -> Vec<(String, Value)> {
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
    let mut decoder = MessageFrameDecoder::new();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let DecodedFrame::Complete(message) = decoder.decode_frame(&mut bytes).expect("valid frame") else {
            panic!("incomplete frame");
        };
        let kind = message
            .headers()
            .iter()
            .find(|h| matches!(h.name().as_str(), ":event-type" | ":exception-type"))
            .and_then(|h| h.value().as_string().ok().map(|s| s.as_str().to_string()))
            .unwrap_or_default();
        out.push((kind, serde_json::from_slice(message.payload()).expect("JSON payload")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_and_exceptions_round_trip() {
        let mut all = BytesMut::new();
        all.extend_from_slice(&event("messageStart", &json!({"role": "assistant"})));
        all.extend_from_slice(&exception("modelStreamErrorException", &json!({"message": "boom"})));
        assert_eq!(
            decode_all(all.freeze()),
            vec![
                ("messageStart".to_string(), json!({"role": "assistant"})),
                ("modelStreamErrorException".to_string(), json!({"message": "boom"})),
            ]
        );
    }
}
