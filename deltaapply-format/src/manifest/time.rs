//! The manifest's instants ([`Timestamp`]): RFC 3339 UTC date-times in whole seconds,
//! and the proleptic Gregorian calendar arithmetic that converts them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An instant, in whole seconds since the Unix epoch, written in TOML as a UTC offset
/// date-time (`2026-11-21T10:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
    }

    /// Parses `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let dt: toml::value::Datetime = s.parse().ok()?;
        Timestamp::from_datetime(&dt)
    }

    fn from_datetime(dt: &toml::value::Datetime) -> Option<Timestamp> {
        use toml::value::Offset;
        let (Some(date), Some(time), Some(Offset::Z)) = (dt.date, dt.time, dt.offset) else {
            return None;
        };
        if !(1970..=9999).contains(&date.year)
            || time.second.is_none_or(|s| s > 59)
            || time.nanosecond.is_some_and(|n| n != 0)
        {
            return None;
        }
        let days = days_from_civil(i64::from(date.year), date.month.into(), date.day.into())?;
        let secs = days * 86_400
            + i64::from(time.hour) * 3600
            + i64::from(time.minute) * 60
            + i64::from(time.second.unwrap_or(0));
        u64::try_from(secs).ok().map(Timestamp)
    }

    fn to_datetime(self) -> toml::value::Datetime {
        use toml::value::{Date, Datetime, Offset, Time};
        let days = (self.0 / 86_400) as i64;
        let rem = self.0 % 86_400;
        let (year, month, day) = civil_from_days(days);
        Datetime {
            date: Some(Date {
                year: year as u16,
                month: month as u8,
                day: day as u8,
            }),
            time: Some(Time {
                hour: (rem / 3600) as u8,
                minute: (rem / 60 % 60) as u8,
                second: Some((rem % 60) as u8),
                nanosecond: None,
            }),
            offset: Some(Offset::Z),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_datetime())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_datetime().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dt = toml::value::Datetime::deserialize(d)?;
        Timestamp::from_datetime(&dt).ok_or_else(|| {
            serde::de::Error::custom(
                "expected a UTC date-time in whole seconds, like 2026-11-21T10:00:00Z, from 1970 to 9999",
            )
        })
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm);
/// `None` for an impossible date.
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn timestamps_round_trip() {
        for (text, secs) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T12:34:56Z", 951_827_696),
            ("2026-11-21T10:00:00Z", 1_795_255_200),
        ] {
            let t = Timestamp::parse(text).unwrap();
            assert_eq!(t.0, secs, "{text}");
            assert_eq!(t.to_string(), text);
        }
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-11-21T10:00:00+01:00",
            "2026-11-21T10:00:00",
            "2026-11-21",
            "2026-11-21T10:00:00.5Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
        for days in [0, 1, 365, 10_957, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
    }
}
