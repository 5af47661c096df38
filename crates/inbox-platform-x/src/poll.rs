//! Polling `GET /2/dm_events` (<https://docs.x.com/x-api/direct-messages/lookup/integrate>).
//!
//! X lists DM events newest first and has no "since" parameter, so the cursor is the newest
//! event id already stored (ids are snowflakes: later events have larger ids). A poll reads
//! pages from the newest until it reaches that id, then stores what it found oldest first, so
//! no event between two polls is skipped. When more pages wait than one poll may read
//! ([`XConfig::max_pages`](crate::XConfig::max_pages)), the cursor remembers where to go on
//! (`{seen}:{ceiling}:{pagination_token}`) and the next poll continues downwards before it
//! looks at newer events again.
//!
//! A first poll (no cursor) stores nothing and starts at the newest event: connecting an
//! account does not replay its last 30 days.

use inbox_core::{
    AccountContext, BudgetCall, BudgetOperation, Error, PlatformKind, PollBatch, Result,
};
use serde_json::{Value, json};

use crate::{
    DM_LOOKUPS,
    client::{Api, Call, to_core},
    wire::{DmEventsPage, Includes},
};

const PLATFORM: PlatformKind = PlatformKind::X;

/// Where polling stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Every event with an id up to this one is stored.
    seen: u64,
    /// A catch-up in progress: events above `ceiling` are stored too, and reading continues
    /// from `token` down to `seen`.
    resume: Option<(u64, String)>,
}

impl Cursor {
    fn parse(text: &str) -> Option<Cursor> {
        let mut parts = text.splitn(3, ':');
        let seen = parts.next()?.parse().ok()?;
        match (parts.next(), parts.next()) {
            (None, None) => Some(Cursor { seen, resume: None }),
            (Some(ceiling), Some(token)) if !token.is_empty() => Some(Cursor {
                seen,
                resume: Some((ceiling.parse().ok()?, token.to_owned())),
            }),
            _ => None,
        }
    }

    fn render(&self) -> String {
        match &self.resume {
            None => self.seen.to_string(),
            Some((ceiling, token)) => format!("{}:{ceiling}:{token}", self.seen),
        }
    }
}

fn query(token: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("max_results", "100".to_owned()),
        ("event_types", "MessageCreate".to_owned()),
        (
            "dm_event.fields",
            "id,text,event_type,created_at,dm_conversation_id,sender_id,participant_ids,attachments"
                .to_owned(),
        ),
        (
            "expansions",
            "sender_id,participant_ids,attachments.media_keys".to_owned(),
        ),
        ("user.fields", crate::USER_FIELDS.to_owned()),
        (
            "media.fields",
            "media_key,type,url,preview_image_url,variants".to_owned(),
        ),
    ];
    if let Some(token) = token {
        query.push(("pagination_token", token.to_owned()));
    }
    query
}

/// One poll; see the module docs.
pub(crate) async fn poll(
    api: &Api,
    account: &AccountContext,
    access_token: &str,
    cursor: Option<&str>,
    max_pages: u32,
) -> Result<PollBatch> {
    let me = account.platform_account_id.as_str();
    let cursor = match cursor {
        None => None,
        Some(text) => Some(Cursor::parse(text).ok_or_else(|| {
            Error::invalid("cursor", format!("`{text}` is not an X poll cursor"))
        })?),
    };
    let budget = BudgetCall::new(PLATFORM, BudgetOperation::Read, me);
    let call = Call {
        idempotent: true,
        budget: Some((budget, DM_LOOKUPS)),
    };
    let read = |token: Option<String>| {
        let query = query(token.as_deref());
        async move {
            api.get::<DmEventsPage>("/2/dm_events", access_token, &query, call)
                .await
                .map_err(|err| {
                    tracing::warn!(account = %account.id, error = %err, "X dm_events poll failed; the cursor stays");
                    to_core(err)
                })
        }
    };

    let Some(cursor) = cursor else {
        // Start at the newest event; "0" when there is none (every later event is new).
        let page = read(None).await?;
        let newest = ids(account, page.data.as_deref().unwrap_or_default())?
            .into_iter()
            .max()
            .unwrap_or(0);
        return Ok(PollBatch {
            payloads: Vec::new(),
            next_cursor: Some(newest.to_string()),
        });
    };

    let mut token = cursor.resume.as_ref().map(|(_, token)| token.clone());
    let mut collected: Vec<(u64, Value)> = Vec::new();
    let mut includes = Includes::default();
    let mut pages = 0;
    let reached = loop {
        pages += 1;
        let page = read(token.take()).await?;
        let data = page.data.unwrap_or_default();
        let page_ids = ids(account, &data)?;
        let mut reached = false;
        for (id, event) in page_ids.into_iter().zip(data) {
            if id <= cursor.seen {
                // Newest first: everything after this one is older still.
                reached = true;
                break;
            }
            if !collected.iter().any(|(seen, _)| *seen == id) {
                collected.push((id, event));
            }
        }
        if let Some(more) = page.includes {
            includes.users.extend(more.users);
            includes.media.extend(more.media);
        }
        if reached {
            break true;
        }
        match page.meta.and_then(|meta| meta.next_token) {
            None => break true,
            Some(next) if pages >= max_pages => {
                token = Some(next);
                break false;
            }
            Some(next) => token = Some(next),
        }
    };

    let newest = collected.iter().map(|(id, _)| *id).max();
    let next = if reached {
        let ceiling = cursor.resume.as_ref().map(|(ceiling, _)| *ceiling);
        Cursor {
            seen: [Some(cursor.seen), ceiling, newest]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(cursor.seen),
            resume: None,
        }
    } else {
        let ceiling = cursor
            .resume
            .as_ref()
            .map(|(ceiling, _)| *ceiling)
            .or(newest)
            .unwrap_or(cursor.seen);
        tracing::info!(account = %account.id, pages, "X DM backlog larger than one poll reads; continuing next poll");
        Cursor {
            seen: cursor.seen,
            resume: Some((ceiling, token.unwrap_or_default())),
        }
    };
    let payloads = if collected.is_empty() {
        Vec::new()
    } else {
        collected.sort_by_key(|(id, _)| *id);
        let data: Vec<Value> = collected.into_iter().map(|(_, event)| event).collect();
        let payload = json!({"for_user_id": me, "data": data, "includes": includes});
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

/// The numeric ids of a page's events, in order. An event without a usable id cannot be
/// placed relative to the cursor, so the whole answer is refused (and polled again later)
/// rather than risk skipping events.
fn ids(account: &AccountContext, data: &[Value]) -> Result<Vec<u64>> {
    data.iter()
        .map(|event| {
            event
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| id.parse::<u64>().ok())
                .ok_or_else(|| {
                    tracing::warn!(account = %account.id, event = %event, "X returned a DM event without a valid id; skipping this answer");
                    Error::Platform {
                        platform: PLATFORM,
                        code: "malformed_response".into(),
                        message: "X returned a DM event without a valid id".into(),
                    }
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for text in ["0", "1582838499983564806", "15:20:18LAA581J5II7LA00000"] {
            assert_eq!(Cursor::parse(text).unwrap().render(), text);
        }
        for bad in ["", "x", "1:2", "1:x:tok", "1:2:"] {
            assert!(Cursor::parse(bad).is_none(), "{bad}");
        }
    }
}
