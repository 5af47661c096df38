//! `Retry-After` (RFC 9110 §10.2.3): either a number of seconds or an HTTP-date.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, header::RETRY_AFTER};

/// Parses a `Retry-After` value relative to `now`.
///
/// Accepts delay-seconds (`"120"`) and all three HTTP-date forms (`"Sun, 06 Nov 1994 08:49:37
/// GMT"` and the obsolete ones). A date in the past means "now" (zero). `None` for anything
/// else, including negative numbers.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate instead of failing: the hint still means "later".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` hint of a response's headers, if present and well-formed.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn seconds() {
        assert_eq!(
            parse_retry_after("120", at(0)),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", at(0)), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", at(0)),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn http_dates_in_every_form() {
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT (the RFC's example).
        let now = at(784_111_777 - 30);
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(form, now),
                Some(Duration::from_secs(30)),
                "{form}"
            );
        }
    }

    #[test]
    fn a_date_in_the_past_means_now() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at(2_000_000_000)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_is_ignored() {
        for value in ["", "-5", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(value, at(0)), None, "{value:?}");
        }
    }

    #[test]
    fn reads_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }
}

/// A platform's usage header as a number: finite and not negative, integer or decimal
/// (Reddit sends `"599.0"`). `None` when absent or anything else, so a garbled header is
/// ignored rather than read as "no calls left".
pub fn header_number(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
}

#[cfg(test)]
mod header_number_tests {
    use super::*;

    #[test]
    fn usage_numbers_are_finite_and_not_negative() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("a", " 599.0 "),
            ("b", "12"),
            ("c", "-1"),
            ("d", "NaN"),
            ("e", "x"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        assert_eq!(header_number(&headers, "a"), Some(599.0));
        assert_eq!(header_number(&headers, "b"), Some(12.0));
        for name in ["c", "d", "e", "missing"] {
            assert_eq!(header_number(&headers, name), None, "{name}");
        }
    }
}
