//! `Timestamp`: a UTC instant with millisecond precision, written as RFC 3339.
//!
//! Millisecond precision is what every store column holds (`BIGINT` unix milliseconds in both
//! SQLite and PostgreSQL), so a value read back from the database equals the value written. The
//! JSON form is RFC 3339 in UTC with a `Z`, without fractional digits when there are none
//! (`2025-01-15T10:30:01Z`), as in SPEC.md's examples.

use std::{
    fmt,
    ops::{Add, Sub},
    time::Duration,
};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant, millisecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, truncated to milliseconds.
    pub fn now() -> Self {
        Self::from_unix_millis(Utc::now().timestamp_millis())
    }

    /// From unix milliseconds; values outside chrono's range saturate to the epoch.
    pub fn from_unix_millis(millis: i64) -> Self {
        Self(
            Utc.timestamp_millis_opt(millis)
                .single()
                .unwrap_or_default(),
        )
    }

    /// From unix seconds, as most platforms send them.
    pub fn from_unix_seconds(seconds: i64) -> Self {
        Self::from_unix_millis(seconds.saturating_mul(1000))
    }

    /// Unix milliseconds, the stored form.
    pub fn unix_millis(self) -> i64 {
        self.0.timestamp_millis()
    }

    /// Unix seconds (the Standard Webhooks `webhook-timestamp` form).
    pub fn unix_seconds(self) -> i64 {
        self.0.timestamp()
    }

    /// Parses RFC 3339 (any offset), keeping millisecond precision.
    pub fn parse_rfc3339(value: &str) -> Result<Self, chrono::ParseError> {
        let parsed = DateTime::parse_from_rfc3339(value)?;
        Ok(Self::from_unix_millis(parsed.timestamp_millis()))
    }

    /// The chrono value, for arithmetic the helpers here do not cover.
    pub fn as_datetime(self) -> DateTime<Utc> {
        self.0
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(
            u64::try_from(self.unix_millis() - earlier.unix_millis()).unwrap_or(0),
        )
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        let millis = i64::try_from(rhs.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_unix_millis(self.unix_millis().saturating_add(millis))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        let millis = i64::try_from(rhs.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_unix_millis(self.unix_millis().saturating_sub(millis))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(|err| {
            serde::de::Error::custom(format!("`{text}` is not an RFC 3339 timestamp: {err}"))
        })
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .examples([serde_json::json!("2025-01-15T10:30:01Z")])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_have_no_fraction_and_millis_keep_three_digits() {
        assert_eq!(
            Timestamp::from_unix_seconds(1_736_937_001).to_string(),
            "2025-01-15T10:30:01Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(1_736_937_001_250).to_string(),
            "2025-01-15T10:30:01.250Z"
        );
    }

    #[test]
    fn parsing_accepts_offsets_and_round_trips_through_json() {
        let t = Timestamp::parse_rfc3339("2025-01-15T12:30:01+02:00").unwrap();
        assert_eq!(t, Timestamp::from_unix_seconds(1_736_937_001));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn now_round_trips_through_millis() {
        let now = Timestamp::now();
        assert_eq!(Timestamp::from_unix_millis(now.unix_millis()), now);
    }
}
