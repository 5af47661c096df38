//! Cursor pagination: `PageRequest` in, `Page` out, and the opaque cursor between them.
//!
//! A cursor names the last row of the previous page by its sort key and id (keyset
//! pagination), so pages stay stable while new rows arrive. On the wire it is base64url text;
//! anything that does not decode is `400 invalid_request` on `cursor`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;
use utoipa::ToSchema;

use crate::Error;

/// Default page size.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_PAGE_LIMIT: u32 = 100;

/// The position after which a page starts: the previous page's last sort key and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The sort column's value (unix milliseconds for every list here).
    pub sort_key: i64,
    /// The id, which breaks ties.
    pub id: String,
}

impl Cursor {
    /// The opaque wire form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1|{}|{}", self.sort_key, self.id))
    }

    /// Parses the wire form.
    ///
    /// # Errors
    /// `InvalidInput` on `cursor` for anything this module did not produce.
    pub fn decode(text: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::invalid(
                "cursor",
                "`cursor` is not a cursor this API returned; pass `nextCursor` from the previous page unchanged",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = text.splitn(3, '|');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("v1"), Some(sort_key), Some(id)) if !id.is_empty() => Ok(Cursor {
                sort_key: sort_key.parse().map_err(|_| invalid())?,
                id: id.to_owned(),
            }),
            _ => Err(invalid()),
        }
    }
}

/// Which page to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows per page, 1–100.
    pub limit: u32,
    /// Start after this position; `None` for the first page.
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// Builds a request from the raw `limit` and `cursor` query parameters.
    ///
    /// # Errors
    /// `InvalidInput` on `limit` outside 1–100 or on an undecodable `cursor`.
    pub fn from_query(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, Error> {
        let limit = match limit {
            None => DEFAULT_PAGE_LIMIT,
            Some(n) if (1..=i64::from(MAX_PAGE_LIMIT)).contains(&n) => n as u32,
            Some(n) => {
                return Err(Error::invalid(
                    "limit",
                    format!("`limit` must be between 1 and {MAX_PAGE_LIMIT}, got {n}"),
                ));
            }
        };
        let after = match cursor {
            None | Some("") => None,
            Some(text) => Some(Cursor::decode(text)?),
        };
        Ok(PageRequest { limit, after })
    }

    /// The first page of the default size.
    pub fn first() -> Self {
        PageRequest {
            limit: DEFAULT_PAGE_LIMIT,
            after: None,
        }
    }
}

/// One page of a list: `{"data": [...], "nextCursor": "…" | null}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The rows.
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row only signals that
    /// there is a next page, whose cursor is made from the last returned row by `key`.
    pub fn from_overfetched(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Self {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if has_more {
            rows.last().map(|row| key(row).encode())
        } else {
            None
        };
        Page {
            data: rows,
            next_cursor,
        }
    }

    /// Maps the rows, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let cursor = Cursor {
            sort_key: 1_736_937_001_250,
            id: "conv_01abc".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for garbage in [
            "",
            "!!!",
            "djF8eHw",
            "bm9wZQ",
            &URL_SAFE_NO_PAD.encode("v1|abc|x"),
        ] {
            assert!(matches!(
                Cursor::decode(garbage),
                Err(Error::InvalidInput { param: Some(p), .. }) if p == "cursor"
            ));
        }
    }

    #[test]
    fn limits_outside_the_range_are_rejected() {
        assert_eq!(PageRequest::from_query(None, None).unwrap().limit, 50);
        assert_eq!(PageRequest::from_query(Some(100), None).unwrap().limit, 100);
        assert!(PageRequest::from_query(Some(0), None).is_err());
        assert!(PageRequest::from_query(Some(101), None).is_err());
    }

    #[test]
    fn overfetched_rows_make_a_next_cursor() {
        let page = Page::from_overfetched(vec![1, 2, 3], 2, |n| Cursor {
            sort_key: *n,
            id: n.to_string(),
        });
        assert_eq!(page.data, vec![1, 2]);
        assert_eq!(
            Cursor::decode(page.next_cursor.as_deref().unwrap())
                .unwrap()
                .sort_key,
            2
        );
        let last = Page::from_overfetched(vec![1, 2], 2, |n| Cursor {
            sort_key: *n,
            id: "x".into(),
        });
        assert_eq!(last.next_cursor, None);
    }
}
