//! Opaque `nextToken`s: base64 of a position, checked on the way back in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::kernel::error::{Error, Result};

/// Page size when the caller gives no `maxResults` (the model allows 1–100).
pub const DEFAULT_MAX_RESULTS: usize = 100;

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub max_results: usize,
    /// Position after which the page starts; `None` for the first page.
    pub after: Option<i64>,
}

impl Page {
    pub fn new(max_results: Option<i64>, next_token: Option<&str>, list: &str) -> Result<Page> {
        let after = next_token.map(|t| decode(t, list)).transpose()?;
        Ok(Page { max_results: max_results.map(|m| m as usize).unwrap_or(DEFAULT_MAX_RESULTS), after })
    }
}

pub fn encode(list: &str, position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1|{list}|{position}"))
}

fn decode(token: &str, list: &str) -> Result<i64> {
    let invalid = || {
        Error::invalid_field("nextToken", format!("The nextToken '{token}' is not valid for this request; pass the nextToken returned by the previous call unchanged."))
    };
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let mut parts = raw.split('|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(l), Some(p), None) if l == list => p.parse().map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// Trim a fetched page of `max + 1` items and produce the token for the next one.
pub fn finish<T>(mut items: Vec<T>, page: &Page, list: &str, position: impl Fn(&T) -> i64) -> (Vec<T>, Option<String>) {
    if items.len() > page.max_results {
        items.truncate(page.max_results);
        let next = items.last().map(|last| encode(list, position(last)));
        (items, next)
    } else {
        (items, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_list() {
        let t = encode("runtimes", 42);
        assert_eq!(Page::new(Some(5), Some(&t), "runtimes").unwrap().after, Some(42));
        assert!(Page::new(None, Some(&t), "endpoints:x").is_err());
        assert!(Page::new(None, Some("garbage!"), "runtimes").is_err());
    }
}
