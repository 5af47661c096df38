//! Operators' budget overrides (`INBOX_RATE_BUDGETS`): a comma-separated list of
//! `platform.budget=COUNT/PERIOD` entries, each optionally followed by `burst N`.
//!
//! ```text
//! INBOX_RATE_BUDGETS="telegram.send_per_chat=2/10s burst 2, reddit.requests=100/60s"
//! ```
//!
//! `PERIOD` is a number with a unit — `ms`, `s`, `m` (or `min`), `h`, `d` — or a bare unit
//! meaning one of it (`30/s`, `200/h`). Without `burst`, an override keeps the adapter's
//! declared burst (capped at the new count). Whether `platform.budget` names a budget the
//! adapter declares is checked when the budgets are registered; everything else here.

use std::time::Duration;

use inbox_core::PlatformKind;

use crate::Quota;

/// One override: replace `platform.budget` with `count` per `period` (burst `burst`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetOverride {
    /// The platform.
    pub platform: PlatformKind,
    /// The budget's name as the adapter declares it (`send_per_chat`).
    pub budget: String,
    /// Calls allowed in any window of `period`.
    pub count: u32,
    /// The window.
    pub period: Duration,
    /// Calls that may go back to back; `None` keeps the declared burst.
    pub burst: Option<u32>,
}

impl BudgetOverride {
    /// `platform.budget`, as written.
    pub fn name(&self) -> String {
        format!("{}.{}", self.platform, self.budget)
    }
}

fn parse_period(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let amount: f64 = if number.is_empty() {
        1.0
    } else {
        number.parse().ok()?
    };
    let unit_secs = match unit {
        "ms" => 0.001,
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3_600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    let secs = amount * unit_secs;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

fn parse_entry(entry: &str) -> Result<BudgetOverride, String> {
    let shape = "write entries as platform.budget=COUNT/PERIOD, optionally followed by `burst N` \
                 (e.g. telegram.send_per_chat=2/10s burst 2)";
    let (name, value) = entry
        .split_once('=')
        .ok_or_else(|| format!("`{entry}` has no `=`; {shape}"))?;
    let (platform, budget) = name
        .trim()
        .split_once('.')
        .ok_or_else(|| format!("`{}` is not platform.budget; {shape}", name.trim()))?;
    let platform: PlatformKind = platform
        .parse()
        .map_err(|_| format!("`{platform}` in `{entry}` is not a platform"))?;
    let budget = budget.trim();
    if budget.is_empty()
        || !budget
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!("`{budget}` in `{entry}` is not a budget name"));
    }
    let mut words = value.split_whitespace();
    let rate = words
        .next()
        .ok_or_else(|| format!("`{entry}` has no rate; {shape}"))?;
    let burst = match (words.next(), words.next(), words.next()) {
        (None, _, _) => None,
        (Some("burst"), Some(n), None) => Some(
            n.parse::<u32>()
                .map_err(|_| format!("the burst `{n}` in `{entry}` is not a whole number"))?,
        ),
        _ => return Err(format!("`{}` is not a rate; {shape}", value.trim())),
    };
    let (count, period) = rate
        .split_once('/')
        .ok_or_else(|| format!("`{rate}` in `{entry}` is not COUNT/PERIOD; {shape}"))?;
    let count: u32 = count
        .parse()
        .map_err(|_| format!("the count `{count}` in `{entry}` is not a whole number"))?;
    let period = parse_period(period).ok_or_else(|| {
        format!(
            "the period `{period}` in `{entry}` is not a duration such as 500ms, 10s, 15m, 1h or 1d"
        )
    })?;
    // The count and period must make a quota on their own; the burst is checked again
    // against the declared budget when it is kept.
    Quota::within_window(count, period, burst.unwrap_or(1))
        .map_err(|err| format!("`{entry}`: {err}"))?;
    Ok(BudgetOverride {
        platform,
        budget: budget.to_owned(),
        count,
        period,
        burst,
    })
}

/// Parses `INBOX_RATE_BUDGETS`. Entries are separated by commas, semicolons or new lines;
/// blank entries are ignored.
///
/// # Errors
/// What is wrong with the first bad entry, for a one-line start-up error.
pub fn parse_overrides(text: &str) -> Result<Vec<BudgetOverride>, String> {
    let mut overrides: Vec<BudgetOverride> = Vec::new();
    for entry in text.split([',', ';', '\n']).map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        let parsed = parse_entry(entry)?;
        if overrides
            .iter()
            .any(|o| o.platform == parsed.platform && o.budget == parsed.budget)
        {
            return Err(format!("`{}` is overridden twice", parsed.name()));
        }
        overrides.push(parsed);
    }
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_with_and_without_burst() {
        let parsed = parse_overrides(
            "telegram.send_per_chat=2/10s burst 2, reddit.requests = 100/60s;x.dm_lookups=15/15m\n whatsapp.send_per_number=80/s",
        )
        .unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(
            parsed[0],
            BudgetOverride {
                platform: PlatformKind::Telegram,
                budget: "send_per_chat".into(),
                count: 2,
                period: Duration::from_secs(10),
                burst: Some(2),
            }
        );
        assert_eq!(parsed[1].name(), "reddit.requests");
        assert_eq!(parsed[1].period, Duration::from_secs(60));
        assert_eq!(parsed[1].burst, None);
        assert_eq!(parsed[2].period, Duration::from_secs(900));
        assert_eq!(parsed[3].period, Duration::from_secs(1));
        assert_eq!(parse_overrides("  ").unwrap(), vec![]);
        assert_eq!(
            parse_overrides("telegram.a=1/500ms").unwrap()[0].period,
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_overrides("telegram.a=1/2h").unwrap()[0].period,
            Duration::from_secs(7_200)
        );
    }

    #[test]
    fn each_bad_entry_says_what_is_wrong() {
        let cases = [
            ("telegram.send_per_chat", "no `=`"),
            ("telegram=1/s", "not platform.budget"),
            ("myspace.send=1/s", "not a platform"),
            ("telegram.send per chat=1/s", "not a budget name"),
            ("telegram.send=", "no rate"),
            ("telegram.send=1", "not COUNT/PERIOD"),
            ("telegram.send=x/s", "count `x`"),
            ("telegram.send=-1/s", "count `-1`"),
            ("telegram.send=0/s", "count must be at least 1"),
            ("telegram.send=1/10", "period `10`"),
            ("telegram.send=1/10y", "period `10y`"),
            ("telegram.send=1/0s", "period `0s`"),
            ("telegram.send=1/400d", "period must be"),
            ("telegram.send=2/s burst", "not a rate"),
            ("telegram.send=2/s burst x", "burst `x`"),
            ("telegram.send=2/s burst 3", "burst must be"),
            ("telegram.send=2/s burst 0", "burst must be"),
            ("telegram.send=2/s bursts 1", "not a rate"),
            ("telegram.a=1/s, telegram.a=2/s", "overridden twice"),
        ];
        for (text, expected) in cases {
            let err = parse_overrides(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
