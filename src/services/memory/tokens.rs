//! Opaque `nextToken`s: base64 of the list they belong to and a position in it.
//!
//! A token only works for the list (and memory, actor, session, query) it was issued for, so a
//! token passed to the wrong call is a ValidationException rather than a wrong page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::kernel::error::{Error, Result};

pub fn encode(list: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("m1\n{list}\n{position}"))
}

pub fn decode(token: &str, list: &str) -> Result<String> {
    let invalid = || {
        Error::invalid_field(
            "nextToken",
            format!("The nextToken '{token}' is not valid for this request; pass the nextToken returned by the previous call unchanged."),
        )
    };
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?).map_err(|_| invalid())?;
    let mut parts = raw.splitn(3, '\n');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("m1"), Some(l), Some(position)) if l == list => Ok(position.to_string()),
        _ => Err(invalid()),
    }
}

/// A numeric position (row numbers, offsets).
pub fn decode_number(token: Option<&str>, list: &str) -> Result<Option<i64>> {
    token
        .map(|t| {
            decode(t, list)?
                .parse::<i64>()
                .map_err(|_| Error::invalid_field("nextToken", "The nextToken is not valid for this request."))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_their_list() {
        let t = encode("events|m|a|s", "17:4");
        assert_eq!(decode(&t, "events|m|a|s").unwrap(), "17:4");
        assert!(decode(&t, "events|m|a|other").is_err());
        assert!(decode("garbage!", "x").is_err());
        assert_eq!(decode_number(Some(&encode("l", "5")), "l").unwrap(), Some(5));
    }
}
