//! Conversions between SigV4's basic ISO-8601 form (`20261124T221314Z`) and unix seconds.

use aws_smithy_types::date_time::{DateTime, Format};

/// `YYYYMMDDTHHMMSSZ` → unix seconds; `None` when malformed.
pub fn amz_date_to_epoch(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    if !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit) {
        return None;
    }
    let extended = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &value[0..4],
        &value[4..6],
        &value[6..8],
        &value[9..11],
        &value[11..13],
        &value[13..15]
    );
    DateTime::from_str(&extended, Format::DateTime).ok().map(|d| d.secs())
}

/// Unix seconds → `YYYYMMDDTHHMMSSZ`.
pub fn epoch_to_amz_date(secs: i64) -> String {
    let iso = DateTime::from_secs(secs).fmt(Format::DateTime).unwrap_or_default();
    // `2026-11-24T22:13:14Z` → `20261124T221314Z`
    iso.chars().filter(|c| *c != '-' && *c != ':').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(amz_date_to_epoch("20150830T123600Z"), Some(1440938160));
        assert_eq!(epoch_to_amz_date(1440938160), "20150830T123600Z");
        assert_eq!(amz_date_to_epoch("2015-08-30T12:36:00Z"), None);
        assert_eq!(amz_date_to_epoch("20151330T123600Z"), None);
    }
}
