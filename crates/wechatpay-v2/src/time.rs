//! Beijing time, the only clock WeChat Pay V2 speaks.
//!
//! Every time field of the protocol (`time_start`, `time_expire`, `time_end`) is
//! `yyyyMMddHHmmss` in Beijing time (UTC+8, no daylight saving), bill dates are `yyyyMMdd`,
//! and refund times and bill rows are `yyyy-MM-dd HH:mm:ss`. This module owns the offset and
//! those formats: it formats an instant for the wire and parses wire text back into an instant,
//! refusing anything that is not a real date and time (`"99999999999999"`, a 13th month, a
//! 29 February outside leap years, a leap second). Everything else that needs Beijing time (the
//! simulator's ids, merchant order numbers, bill dates) calls these functions.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

/// Beijing's offset from UTC in seconds: +08:00 all year.
pub const BEIJING_UTC_OFFSET_SECONDS: i32 = 8 * 3600;

/// WeChat's `yyyyMMddHHmmss` as a chrono format.
const COMPACT_FORMAT: &str = "%Y%m%d%H%M%S";
/// WeChat's `yyyyMMdd` (bill dates) as a chrono format.
const DATE_FORMAT: &str = "%Y%m%d";
/// WeChat's `yyyy-MM-dd HH:mm:ss` (refund times, bill rows) as a chrono format.
const READABLE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Wire text that is not the time or date its field requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not {expected} (Beijing time)")]
pub struct TimeError {
    /// The text received.
    pub text: String,
    /// The format it should have had, e.g. `yyyyMMddHHmmss`.
    pub expected: &'static str,
}

/// Beijing time as a chrono offset.
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(BEIJING_UTC_OFFSET_SECONDS).expect("UTC+8 is a valid offset")
}

/// The current time as unix seconds in decimal: the `timeStamp`/`timestamp` of pay
/// parameters and V3's signed messages (unix time has no zone; it lives here with the clock).
pub fn unix_seconds_now() -> String {
    Utc::now().timestamp().to_string()
}

/// The current time in Beijing.
pub fn beijing_now() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&beijing())
}

/// Formats an instant as WeChat's `yyyyMMddHHmmss` in Beijing time, the format of
/// `time_start`, `time_expire` and `time_end`.
pub fn beijing_time<Tz: TimeZone>(instant: DateTime<Tz>) -> String {
    instant
        .with_timezone(&beijing())
        .format(COMPACT_FORMAT)
        .to_string()
}

/// Parses WeChat's `yyyyMMddHHmmss` (Beijing time) into an instant. Exactly fourteen ASCII
/// digits that name a real date and time; anything else is a [`TimeError`].
pub fn parse_beijing_time(text: &str) -> Result<DateTime<Utc>, TimeError> {
    let refused = || TimeError {
        text: text.to_owned(),
        expected: "yyyyMMddHHmmss",
    };
    // chrono alone would take a sign or a short year; WeChat's field is fixed-width digits.
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    let local = NaiveDateTime::parse_from_str(text, COMPACT_FORMAT).map_err(|_| refused())?;
    // chrono reads second 60 as a leap second; WeChat never writes one.
    if local.nanosecond() >= 1_000_000_000 {
        return Err(refused());
    }
    Ok(from_beijing_local(local))
}

/// The instant of a Beijing wall-clock time (unambiguous: Beijing has no daylight saving).
pub fn from_beijing_local(local: NaiveDateTime) -> DateTime<Utc> {
    beijing()
        .from_local_datetime(&local)
        .single()
        .expect("a fixed offset maps every local time to one instant")
        .with_timezone(&Utc)
}

/// The Beijing calendar date of an instant: the day a bill or a dated order number belongs to.
pub fn beijing_date<Tz: TimeZone>(instant: DateTime<Tz>) -> NaiveDate {
    instant.with_timezone(&beijing()).date_naive()
}

/// Formats a date as WeChat's `yyyyMMdd` (`bill_date`, the date inside ids).
pub fn format_date(date: NaiveDate) -> String {
    date.format(DATE_FORMAT).to_string()
}

/// Parses WeChat's `yyyyMMdd`: exactly eight ASCII digits naming a real date.
pub fn parse_date(text: &str) -> Result<NaiveDate, TimeError> {
    let refused = || TimeError {
        text: text.to_owned(),
        expected: "yyyyMMdd",
    };
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    NaiveDate::parse_from_str(text, DATE_FORMAT).map_err(|_| refused())
}

/// Formats an instant as WeChat's `yyyy-MM-dd HH:mm:ss` in Beijing time, the format of
/// `refund_success_time`, `success_time` and bill rows.
pub fn beijing_readable_time<Tz: TimeZone>(instant: DateTime<Tz>) -> String {
    instant
        .with_timezone(&beijing())
        .format(READABLE_FORMAT)
        .to_string()
}

/// Parses WeChat's `yyyy-MM-dd HH:mm:ss` (Beijing time, the format of bill rows and refund
/// times) into an instant: exactly that shape, naming a real date and time.
pub fn parse_beijing_readable_time(text: &str) -> Result<DateTime<Utc>, TimeError> {
    let refused = || TimeError {
        text: text.to_owned(),
        expected: "yyyy-MM-dd HH:mm:ss",
    };
    // chrono alone would take a short year or a one-digit month; the field is fixed-width.
    let shape_ok = text.len() == 19
        && text.bytes().enumerate().all(|(at, byte)| match at {
            4 | 7 => byte == b'-',
            10 => byte == b' ',
            13 | 16 => byte == b':',
            _ => byte.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(refused());
    }
    let local = NaiveDateTime::parse_from_str(text, READABLE_FORMAT).map_err(|_| refused())?;
    if local.nanosecond() >= 1_000_000_000 {
        return Err(refused());
    }
    Ok(from_beijing_local(local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_now_is_the_decimal_unix_time() {
        let before = Utc::now().timestamp();
        let now: i64 = unix_seconds_now().parse().unwrap();
        assert!(before <= now && now <= Utc::now().timestamp(), "{now}");
    }

    fn utc(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn formats_in_utc_plus_eight() {
        let instant = utc("2026-01-01T20:30:05Z");
        assert_eq!(beijing_time(instant), "20260102043005");
        assert_eq!(
            beijing_time(instant.with_timezone(&beijing())),
            "20260102043005"
        );
        assert_eq!(beijing_readable_time(instant), "2026-01-02 04:30:05");
        assert_eq!(format_date(beijing_date(instant)), "20260102");
    }

    #[test]
    fn parses_what_it_formats() {
        let instant = utc("2026-02-28T16:00:00Z");
        assert_eq!(parse_beijing_time(&beijing_time(instant)), Ok(instant));
        assert_eq!(parse_beijing_time("20260301000000"), Ok(instant));
        assert_eq!(
            parse_date("20240229"),
            Ok(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        );
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for text in [
            "99999999999999",
            "20261301000000",
            "20260229000000",
            "20260101240000",
            "20260101006000",
            "20261231235960",
            "2026010100000",
            "202601010000000",
            "+2026010100000",
            "2026-01-01 00:0",
            "２０２６０１０１０００",
            "",
        ] {
            let error = parse_beijing_time(text).unwrap_err();
            assert_eq!(error.expected, "yyyyMMddHHmmss", "{text}");
            assert!(error.to_string().contains("yyyyMMddHHmmss"), "{error}");
        }
        for text in ["20261399", "20260230", "2026011", "+2026011", "99999999"] {
            assert_eq!(parse_date(text).unwrap_err().expected, "yyyyMMdd", "{text}");
        }
    }

    #[test]
    fn readable_times_parse_back() {
        let instant = utc("2026-01-01T20:30:05Z");
        assert_eq!(
            parse_beijing_readable_time(&beijing_readable_time(instant)),
            Ok(instant)
        );
        for text in [
            "2026-01-02  04:30:05",
            "2026-1-02 04:30:05",
            "2026-02-29 00:00:00",
            "2026-01-01 24:00:00",
            "2026-01-01 23:59:60",
            "2026/01/01 00:00:00",
            "20260101000000",
            "",
        ] {
            let error = parse_beijing_readable_time(text).unwrap_err();
            assert_eq!(error.expected, "yyyy-MM-dd HH:mm:ss", "{text}");
        }
    }

    #[test]
    fn local_times_are_eight_hours_ahead() {
        let local = NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert_eq!(from_beijing_local(local), utc("2025-12-31T16:00:00Z"));
    }
}
