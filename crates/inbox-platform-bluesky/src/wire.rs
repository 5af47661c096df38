//! The AT Protocol JSON the adapter reads (lexicons `com.atproto.server.createSession`,
//! `chat.bsky.convo.defs`, `chat.bsky.actor.defs`). `$type` is accepted anywhere and required
//! nowhere outside unions; unknown fields are ignored, as the XRPC spec asks of clients
//! (<https://atproto.com/specs/lexicon>).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `createSession` / `refreshSession` output.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Session {
    pub(crate) access_jwt: String,
    pub(crate) refresh_jwt: String,
    pub(crate) handle: String,
    pub(crate) did: String,
    #[serde(default)]
    pub(crate) did_doc: Option<Value>,
}

/// An XRPC error body: `{"error": "<Name>", "message": "…"}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct XrpcError {
    #[serde(default)]
    pub(crate) error: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// `chat.bsky.actor.defs#profileViewBasic` (and `app.bsky.actor.getProfile`'s output, which
/// has the same core fields).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Profile {
    pub(crate) did: String,
    #[serde(default)]
    pub(crate) handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) avatar: Option<String>,
}

/// `chat.bsky.convo.getLog` output. Logs stay raw: they are an open union.
#[derive(Debug, Deserialize)]
pub(crate) struct LogPage {
    #[serde(default)]
    pub(crate) cursor: Option<String>,
    pub(crate) logs: Vec<Value>,
}

/// `chat.bsky.convo.defs#convoView`, as far as the adapter reads it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Convo {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) members: Vec<Profile>,
}

/// `{"convo": convoView}`: `getConvo` and `getConvoForMembers` output.
#[derive(Debug, Deserialize)]
pub(crate) struct ConvoOutput {
    pub(crate) convo: Convo,
}

/// `chat.bsky.convo.defs#messageView`: `sendMessage` output (not wrapped).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageView {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) sent_at: Option<String>,
}

/// `com.atproto.identity.resolveHandle` output.
#[derive(Debug, Deserialize)]
pub(crate) struct ResolvedHandle {
    pub(crate) did: String,
}
