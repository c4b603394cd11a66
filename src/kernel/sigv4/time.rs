//! Conversions between SigV4's basic ISO-8601 form (`20261124T221314Z`) and unix seconds.

use aws_smithy_types::date_time::{DateTime, Format};

/// `YYYYMMDDTHHMMSSZ` → unix seconds; `None` when malformed or not a real date and time.
pub fn amz_date_to_epoch(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    if !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit) {
        return None;
    }
    let number = |at: std::ops::Range<usize>| b[at].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let date = ::time::Date::from_calendar_date(
        i32::from(number(0..4)),
        ::time::Month::try_from(number(4..6) as u8).ok()?,
        number(6..8) as u8,
    )
    .ok()?;
    let time = ::time::Time::from_hms(number(9..11) as u8, number(11..13) as u8, number(13..15) as u8).ok()?;
    Some(::time::PrimitiveDateTime::new(date, time).assume_utc().unix_timestamp())
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
        assert_eq!(amz_date_to_epoch("20150230T123600Z"), None, "February has no 30th");
        assert_eq!(amz_date_to_epoch("20160229T000000Z"), Some(1456704000), "2016 is a leap year");
        assert_eq!(amz_date_to_epoch("20150830T243600Z"), None);
        assert_eq!(amz_date_to_epoch("20150830T126000Z"), None);
        assert_eq!(amz_date_to_epoch("19700101T000000Z"), Some(0));
    }
}
