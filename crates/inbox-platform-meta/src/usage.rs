//! Meta's usage headers, which say how close an app, a business object or an ad account is to
//! being throttled (<https://developers.facebook.com/docs/graph-api/overview/rate-limiting>):
//!
//! * `X-App-Usage: {"call_count":28,"total_time":25,"total_cputime":25}` (percentages);
//! * `X-Business-Use-Case-Usage: {"<business id>": [{"type":"instagram","call_count":100,
//!   "total_cputime":1,"total_time":1,"estimated_time_to_regain_access":15}]}` (minutes);
//! * `X-Ad-Account-Usage: {"acc_id_util_pct":9.67,"reset_time_duration":0}` (seconds).
//!
//! Meta sends them only once enough calls were made: an absent header does not mean there is
//! headroom. A value of 100 means calls are refused until the regain time.

use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;

/// What the usage headers of one answer say.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// The highest usage percentage any header reports.
    pub max_percent: f64,
    /// When access comes back, where a header says so.
    pub regain_after: Option<Duration>,
}

impl Usage {
    /// Reads the usage headers of an answer; `None` when it carries none.
    pub fn from_headers(headers: &HeaderMap) -> Option<Usage> {
        let json = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|text| serde_json::from_str::<Value>(text).ok())
        };
        let mut usage = Usage::default();
        let mut seen = false;
        if let Some(app) = json("x-app-usage") {
            seen = true;
            usage.absorb_percentages(&app);
        }
        if let Some(business) = json("x-business-use-case-usage") {
            seen = true;
            for entries in business
                .as_object()
                .into_iter()
                .flat_map(|map| map.values())
            {
                for entry in entries.as_array().into_iter().flatten() {
                    usage.absorb_percentages(entry);
                    if let Some(minutes) =
                        number(entry.get("estimated_time_to_regain_access")).filter(|m| *m > 0.0)
                    {
                        usage.regain(Duration::from_secs_f64(minutes * 60.0));
                    }
                }
            }
        }
        if let Some(ads) = json("x-ad-account-usage") {
            seen = true;
            if let Some(pct) = number(ads.get("acc_id_util_pct")) {
                usage.max_percent = usage.max_percent.max(pct);
            }
            if let Some(seconds) = number(ads.get("reset_time_duration")).filter(|s| *s > 0.0) {
                usage.regain(Duration::from_secs_f64(seconds));
            }
        }
        seen.then_some(usage)
    }

    fn absorb_percentages(&mut self, object: &Value) {
        for key in ["call_count", "total_time", "total_cputime"] {
            if let Some(pct) = number(object.get(key)) {
                self.max_percent = self.max_percent.max(pct);
            }
        }
    }

    fn regain(&mut self, after: Duration) {
        self.regain_after = Some(
            self.regain_after
                .map_or(after, |current| current.max(after)),
        );
    }

    /// Whether Meta will refuse calls now (a usage of 100 % or a regain time).
    pub fn is_exhausted(&self) -> bool {
        self.max_percent >= 100.0 || self.regain_after.is_some()
    }
}

fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn all_three_headers_are_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(Usage::from_headers(&headers), None);
        headers.insert(
            "x-app-usage",
            HeaderValue::from_static(r#"{"call_count":28,"total_time":25,"total_cputime":25}"#),
        );
        let usage = Usage::from_headers(&headers).unwrap();
        assert_eq!(usage.max_percent, 28.0);
        assert!(!usage.is_exhausted());
        headers.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"17841400000000001":[{"type":"instagram","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":15}]}"#,
            ),
        );
        let usage = Usage::from_headers(&headers).unwrap();
        assert_eq!(usage.max_percent, 100.0);
        assert_eq!(usage.regain_after, Some(Duration::from_secs(900)));
        assert!(usage.is_exhausted());
        let mut ads = HeaderMap::new();
        ads.insert(
            "x-ad-account-usage",
            HeaderValue::from_static(r#"{"acc_id_util_pct":9.67,"reset_time_duration":"30"}"#),
        );
        let usage = Usage::from_headers(&ads).unwrap();
        assert_eq!(usage.regain_after, Some(Duration::from_secs(30)));
    }

    #[test]
    fn garbage_is_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert("x-app-usage", HeaderValue::from_static("not json"));
        assert_eq!(Usage::from_headers(&headers), None);
    }
}
