//! The one time format of the refund records and events: RFC 3339 in UTC with exactly six
//! fractional digits (`2026-11-23T06:15:30.500000Z`). Microseconds are what every time is
//! cut to before it is stored, and the fixed width makes the text sort like the instant,
//! which the listing index relies on (see [`crate::store::table`]).

use serde::{Deserialize, Deserializer, Serializer};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Midnight of 0001-01-01 and the last microsecond of 9999: the range a four-digit
/// year can write. Times outside it (only a forged command could carry one) are clamped.
fn earliest() -> OffsetDateTime {
    PrimitiveDateTime::new(
        Date::from_calendar_date(1, Month::January, 1).unwrap_or(Date::MIN),
        Time::MIDNIGHT,
    )
    .assume_utc()
}

fn latest() -> OffsetDateTime {
    PrimitiveDateTime::new(
        Date::from_calendar_date(9999, Month::December, 31).unwrap_or(Date::MAX),
        Time::from_hms_micro(23, 59, 59, 999_999).unwrap_or(Time::MIDNIGHT),
    )
    .assume_utc()
}

/// The time in UTC, cut to the microsecond and clamped to years 1..=9999: what the
/// store keeps, so a time read back equals the time written, in the table and in the twin.
pub fn normalise(at: OffsetDateTime) -> OffsetDateTime {
    let Some(utc) = at.checked_to_offset(UtcOffset::UTC) else {
        return if at.year() < 1 { earliest() } else { latest() };
    };
    let utc = utc.clamp(earliest(), latest());
    utc.replace_nanosecond(utc.nanosecond() / 1_000 * 1_000)
        .unwrap_or(utc)
}

/// `2026-11-23T06:15:30.500000Z`, after [`normalise`].
pub fn format(at: OffsetDateTime) -> String {
    let at = normalise(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

/// Any RFC 3339 time, normalised.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(normalise)
}

pub fn serialize<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*at))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
}

/// The same for an optional time, written as `null` when absent.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        at: &Option<OffsetDateTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serializer.serialize_some(&format(*at)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(text) => parse(&text)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time")),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use crate::stamp;

    #[test]
    fn stamps_are_fixed_width_utc_and_sort_like_the_instant() {
        let early = datetime!(2026-01-02 03:04:05 +05:00);
        let late = datetime!(2026-01-02 00:00:00.000001 UTC);
        assert_eq!(stamp::format(early), "2026-01-01T22:04:05.000000Z");
        assert!(stamp::format(early) < stamp::format(late));
        assert_eq!(
            stamp::format(datetime!(0001-01-01 00:00 +01:00)),
            "0001-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            stamp::format(datetime!(9999-12-31 23:59:59.999999999 -01:00)),
            "9999-12-31T23:59:59.999999Z"
        );
        let parsed = stamp::parse("2026-11-23T08:15:30.123456789+02:00").unwrap();
        assert_eq!(stamp::format(parsed), "2026-11-23T06:15:30.123456Z");
        assert_eq!(stamp::parse("yesterday"), None);
    }
}
