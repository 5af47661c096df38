//! The Bot API's JSON, as far as the adapter reads it. Crate-private and lenient: unknown fields
//! are ignored, and optional fields are `Option` because Telegram omits them rather than
//! sending `null` (<https://core.telegram.org/bots/api#available-types>).
//!
//! Ids are `i64`: Telegram documents them as fitting in 52 bits but exceeding 32.

use serde::Deserialize;

/// Every Bot API answer: `{"ok":true,"result":…}` or
/// `{"ok":false,"error_code":…,"description":…,"parameters":{…}}`
/// (<https://core.telegram.org/bots/api#making-requests>).
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) ok: bool,
    #[serde(default)]
    pub(crate) result: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) error_code: Option<i64>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) parameters: Option<ResponseParameters>,
}

/// <https://core.telegram.org/bots/api#responseparameters>
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResponseParameters {
    /// Seconds to wait after flood control.
    #[serde(default)]
    pub(crate) retry_after: Option<u64>,
}

/// <https://core.telegram.org/bots/api#user>
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct User {
    pub(crate) id: i64,
    #[serde(default)]
    pub(crate) first_name: String,
    #[serde(default)]
    pub(crate) last_name: Option<String>,
    #[serde(default)]
    pub(crate) username: Option<String>,
}

/// <https://core.telegram.org/bots/api#chat>
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Chat {
    pub(crate) id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) first_name: Option<String>,
    #[serde(default)]
    pub(crate) last_name: Option<String>,
    #[serde(default)]
    pub(crate) username: Option<String>,
}

/// <https://core.telegram.org/bots/api#message>, the fields the inbox maps.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Message {
    pub(crate) message_id: i64,
    pub(crate) date: i64,
    #[serde(default)]
    pub(crate) edit_date: Option<i64>,
    pub(crate) chat: Chat,
    /// Absent for channel posts; messages from anonymous admins carry `sender_chat` instead.
    #[serde(default)]
    pub(crate) from: Option<User>,
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) caption: Option<String>,
    /// Sizes of one photo, smallest first.
    #[serde(default)]
    pub(crate) photo: Option<Vec<PhotoSize>>,
    #[serde(default)]
    pub(crate) document: Option<FileRef>,
    #[serde(default)]
    pub(crate) animation: Option<FileRef>,
    #[serde(default)]
    pub(crate) video: Option<FileRef>,
    #[serde(default)]
    pub(crate) video_note: Option<FileRef>,
    #[serde(default)]
    pub(crate) audio: Option<FileRef>,
    #[serde(default)]
    pub(crate) voice: Option<FileRef>,
    #[serde(default)]
    pub(crate) sticker: Option<Sticker>,
    #[serde(default)]
    pub(crate) location: Option<Location>,
    /// The full replied-to message in Telegram's JSON; only its id matters here.
    #[serde(default)]
    pub(crate) reply_to_message: Option<MessageRef>,
}

/// The id of a message referenced from another.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MessageRef {
    pub(crate) message_id: i64,
}

/// <https://core.telegram.org/bots/api#photosize>
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PhotoSize {
    pub(crate) file_id: String,
}

/// The common part of `Document`, `Animation`, `Video`, `VideoNote`, `Audio` and `Voice`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FileRef {
    pub(crate) file_id: String,
    #[serde(default)]
    pub(crate) file_name: Option<String>,
    #[serde(default)]
    pub(crate) mime_type: Option<String>,
}

/// <https://core.telegram.org/bots/api#sticker>
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Sticker {
    pub(crate) file_id: String,
    #[serde(default)]
    pub(crate) is_animated: bool,
    #[serde(default)]
    pub(crate) is_video: bool,
}

/// <https://core.telegram.org/bots/api#location>
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Location {
    pub(crate) latitude: f64,
    pub(crate) longitude: f64,
}

/// <https://core.telegram.org/bots/api#file>
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct File {
    /// Absent when the file cannot be downloaded (over the Bot API's 20 MB limit).
    #[serde(default)]
    pub(crate) file_path: Option<String>,
}
