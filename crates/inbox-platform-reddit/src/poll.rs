//! Polling the message inbox: `GET /message/inbox?mark=false&limit=100` (reading it must not
//! change what the user sees as unread; `mark=false` keeps it so, as PRAW sends it), newest
//! first (<https://www.reddit.com/dev/api#GET_message_inbox>).
//!
//! The inbox mixes private messages (`t4`) with comment replies and mentions (`t1`); only `t4`
//! items are messages. Their base-36 ids grow with time, so the cursor is the newest `t4` id
//! stored, plus a time floor: the inbox is sorted by date, and an item older than the newest
//! stored message (less a margin for Reddit's own clock) cannot be a new one, which ends the
//! reading even when the inbox holds no message to compare with. A backlog larger than one
//! poll reads continues in the next poll from Reddit's `after` fullname
//! (`{seen}:{floor}:{ceiling}:{after}`). A first poll stores nothing and starts at the newest
//! message.

use inbox_core::{
    AccountContext, BudgetCall, BudgetOperation, Error, PlatformKind, PollBatch, Result, Timestamp,
};
use serde_json::{Value, json};

use crate::{
    client::{Api, to_core},
    wire::Listing,
};

const PLATFORM: PlatformKind = PlatformKind::Reddit;

/// Margin under the time floor for items Reddit listed late.
const FLOOR_MARGIN_SECS: i64 = 600;

/// Where polling stands.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    /// The newest stored private message id (base 36), `0` for none.
    seen: u64,
    /// Unix seconds: items created before `floor - margin` are old.
    floor: i64,
    /// A catch-up in progress: messages up to `ceiling` are stored, and reading continues
    /// after the fullname `after`.
    resume: Option<(u64, String)>,
}

fn base36(text: &str) -> Option<u64> {
    u64::from_str_radix(text, 36).ok()
}

fn to_base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl Cursor {
    fn parse(text: &str) -> Option<Cursor> {
        let parts: Vec<&str> = text.split(':').collect();
        let seen = base36(parts.first()?)?;
        let floor = parts.get(1)?.parse().ok()?;
        let resume = match parts.len() {
            2 => None,
            4 if parts[3].starts_with("t") => Some((base36(parts[2])?, parts[3].to_owned())),
            _ => return None,
        };
        Some(Cursor {
            seen,
            floor,
            resume,
        })
    }

    fn render(&self) -> String {
        let base = format!("{}:{}", to_base36(self.seen), self.floor);
        match &self.resume {
            None => base,
            Some((ceiling, after)) => format!("{base}:{}:{after}", to_base36(*ceiling)),
        }
    }
}

/// What the adapter needs of one inbox item.
struct Item {
    kind: String,
    id: Option<u64>,
    created: Option<i64>,
}

fn item(value: &Value) -> Item {
    let data = value.get("data");
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Item {
        id: data
            .and_then(|d| d.get("id"))
            .and_then(Value::as_str)
            .and_then(base36),
        created: data
            .and_then(|d| d.get("created_utc"))
            .and_then(Value::as_f64)
            .map(|c| c as i64),
        kind,
    }
}

/// One poll; see the module docs.
pub(crate) async fn poll(
    api: &Api,
    account: &AccountContext,
    access_token: &str,
    cursor: Option<&str>,
    max_pages: u32,
) -> Result<PollBatch> {
    let cursor = match cursor {
        None => None,
        Some(text) => Some(Cursor::parse(text).ok_or_else(|| {
            Error::invalid("cursor", format!("`{text}` is not a Reddit poll cursor"))
        })?),
    };
    let budget = BudgetCall::new(
        PLATFORM,
        BudgetOperation::Read,
        &account.platform_account_id,
    );
    let read = |after: Option<String>| async move {
        let mut query = vec![("limit", "100".to_owned()), ("mark", "false".to_owned())];
        if let Some(after) = after {
            query.push(("after", after));
        }
        api.get::<Listing>("/message/inbox", access_token, &query, Some(budget))
            .await
            .map_err(|err| {
                tracing::warn!(account = %account.id, error = %err, "Reddit inbox poll failed; the cursor stays");
                to_core(err)
            })
    };

    let Some(cursor) = cursor else {
        let page = read(None).await?;
        let messages: Vec<Item> = page
            .data
            .children
            .iter()
            .map(item)
            .filter(|i| i.kind == "t4")
            .collect();
        let newest = messages.iter().filter_map(|i| i.id).max().unwrap_or(0);
        let floor = messages
            .iter()
            .filter_map(|i| i.created)
            .max()
            .unwrap_or_else(|| Timestamp::now().unix_seconds());
        return Ok(PollBatch {
            payloads: Vec::new(),
            next_cursor: Some(
                Cursor {
                    seen: newest,
                    floor,
                    resume: None,
                }
                .render(),
            ),
        });
    };

    let mut after = cursor.resume.as_ref().map(|(_, after)| after.clone());
    let mut collected: Vec<(u64, Value)> = Vec::new();
    let mut newest_created = None::<i64>;
    let mut pages = 0;
    let reached = loop {
        pages += 1;
        let page = read(after.take()).await?;
        let mut reached = false;
        for child in &page.data.children {
            let info = item(child);
            if info
                .created
                .is_some_and(|created| created < cursor.floor - FLOOR_MARGIN_SECS)
            {
                reached = true;
                break;
            }
            if info.kind != "t4" {
                continue;
            }
            let Some(id) = info.id else {
                // A message without an id cannot be placed; keep it raw for inspection and
                // read on (the date floor still ends the reading).
                tracing::warn!(account = %account.id, item = %child, "Reddit listed a private message without an id");
                collected.push((0, child.clone()));
                continue;
            };
            if id <= cursor.seen {
                reached = true;
                break;
            }
            if !collected.iter().any(|(seen, _)| *seen == id) {
                newest_created = newest_created.max(info.created);
                collected.push((id, child.clone()));
            }
        }
        if reached {
            break true;
        }
        match page.data.after {
            None => break true,
            Some(next) if pages >= max_pages => {
                after = Some(next);
                break false;
            }
            Some(next) => after = Some(next),
        }
    };

    let newest = collected.iter().map(|(id, _)| *id).max();
    let floor = cursor.floor.max(newest_created.unwrap_or(cursor.floor));
    let next = if reached {
        let ceiling = cursor.resume.as_ref().map(|(ceiling, _)| *ceiling);
        Cursor {
            seen: [Some(cursor.seen), ceiling, newest]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(cursor.seen),
            floor,
            resume: None,
        }
    } else {
        tracing::info!(account = %account.id, pages, "Reddit inbox backlog larger than one poll reads; continuing next poll");
        Cursor {
            seen: cursor.seen,
            floor: cursor.floor,
            resume: Some((
                cursor
                    .resume
                    .as_ref()
                    .map(|(ceiling, _)| *ceiling)
                    .or(newest)
                    .unwrap_or(cursor.seen),
                after.unwrap_or_default(),
            )),
        }
    };
    let payloads = if collected.is_empty() {
        Vec::new()
    } else {
        // Oldest first, as the gateway stores them.
        collected.reverse();
        let messages: Vec<Value> = collected.into_iter().map(|(_, v)| v).collect();
        let payload = json!({"account": account.platform_account_id, "messages": messages});
        vec![
            serde_json::to_vec(&payload)
                .map_err(|err| Error::internal("a polled page does not serialise", err))?,
        ]
    };
    Ok(PollBatch {
        payloads,
        next_cursor: Some(next.render()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(base36("2r17c8r"), Some(5_988_173_499));
        assert_eq!(to_base36(5_988_173_499), "2r17c8r");
        for text in [
            "0:1747841818",
            "2r17c8r:1747841818",
            "2r17c8r:1747841818:2r1zzzz:t4_2r1aaaa",
        ] {
            assert_eq!(Cursor::parse(text).unwrap().render(), text);
        }
        for bad in ["", "2r17c8r", "2r17c8r:x", "a:1:b", "a:1:b:c"] {
            assert!(Cursor::parse(bad).is_none(), "{bad}");
        }
    }
}
