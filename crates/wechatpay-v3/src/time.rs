//! API v3's time formats, on top of the Beijing clock that `wechatpay_v2::time` owns.
//!
//! V3 writes instants as RFC 3339 with the Beijing offset (`2026-01-02T04:30:05+08:00`:
//! `time_expire`, `success_time`, `create_time`) and bill dates as `yyyy-MM-dd`. Received
//! instants may carry any offset; they are read into UTC.

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use wechatpay_v2::time::{TimeError, beijing};

/// Formats an instant as RFC 3339 in Beijing time, to the second: `2026-01-02T04:30:05+08:00`.
pub fn rfc3339_beijing<Tz: TimeZone>(instant: DateTime<Tz>) -> String {
    instant
        .with_timezone(&beijing())
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Parses an RFC 3339 instant with its offset (`2026-01-02T04:30:05+08:00`, `…Z`).
pub fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, TimeError> {
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|_| TimeError {
            text: text.to_owned(),
            expected: "RFC 3339 (yyyy-MM-ddTHH:mm:ss+08:00)",
        })
}

/// Formats a bill date, `yyyy-MM-dd`.
pub fn format_bill_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_beijing_offsets_and_reads_any() {
        let instant = Utc.with_ymd_and_hms(2026, 1, 1, 20, 30, 5).unwrap();
        assert_eq!(rfc3339_beijing(instant), "2026-01-02T04:30:05+08:00");
        assert_eq!(parse_rfc3339("2026-01-02T04:30:05+08:00"), Ok(instant));
        assert_eq!(parse_rfc3339("2026-01-01T20:30:05Z"), Ok(instant));
        for bad in [
            "2026-01-02 04:30:05",
            "20260102043005",
            "2026-02-30T00:00:00+08:00",
            "",
        ] {
            let error = parse_rfc3339(bad).unwrap_err();
            assert!(error.to_string().contains("RFC 3339"), "{error}");
        }
        assert_eq!(
            format_bill_date(NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()),
            "2026-03-09"
        );
    }
}
