//! Reddit's JSON, as far as the adapter reads it (shapes from reddit's `jsontemplates.py` and
//! PRAW's recorded cassettes). Optional fields stay optional and unknown fields are ignored.

use serde::Deserialize;
use serde_json::Value;

/// A Listing (`{"kind":"Listing","data":{"after","before","children":[…]}}`).
#[derive(Debug, Deserialize)]
pub(crate) struct Listing {
    pub(crate) data: ListingData,
}

/// `data` of a Listing.
#[derive(Debug, Deserialize)]
pub(crate) struct ListingData {
    #[serde(default)]
    pub(crate) after: Option<String>,
    pub(crate) children: Vec<Value>,
}

/// A thing: `{"kind": "t4", "data": {…}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Thing {
    pub(crate) kind: String,
    pub(crate) data: Value,
}

/// A private message (`t4`) as `MessageJsonTemplate` renders it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Message {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) author: Option<String>,
    #[serde(default)]
    pub(crate) dest: Option<String>,
    #[serde(default)]
    pub(crate) body: Option<String>,
    #[serde(default)]
    pub(crate) created_utc: Option<f64>,
    #[serde(default)]
    pub(crate) first_message_name: Option<String>,
    #[serde(default)]
    pub(crate) parent_id: Option<String>,
}

/// The token endpoint's answer: the tokens, or `{"error": "invalid_grant"}` (with HTTP 200 or
/// 400) when the refresh token is dead.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
    #[serde(default)]
    pub(crate) error: Option<Value>,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// `GET /api/v1/me`.
#[derive(Debug, Deserialize)]
pub(crate) struct Me {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) subreddit: Option<Profile>,
}

/// The user's profile subreddit, whose `title` is the display name.
#[derive(Debug, Deserialize)]
pub(crate) struct Profile {
    #[serde(default)]
    pub(crate) title: Option<String>,
}

/// `{"json": {"errors": [[code, message, field], …], "data": {…}}}`, what `api_type=json`
/// POSTs answer.
#[derive(Debug, Deserialize)]
pub(crate) struct JsonAnswer {
    pub(crate) json: JsonBody,
}

/// The `json` member of an `api_type=json` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct JsonBody {
    #[serde(default)]
    pub(crate) errors: Vec<Vec<Value>>,
    #[serde(default)]
    pub(crate) data: Option<JsonData>,
}

/// `json.data` of a `/api/comment` answer: the new thing.
#[derive(Debug, Deserialize)]
pub(crate) struct JsonData {
    #[serde(default)]
    pub(crate) things: Vec<Thing>,
}

/// The HTTP-level error body: `{"message": "Forbidden", "error": 403}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) error: Option<Value>,
}
