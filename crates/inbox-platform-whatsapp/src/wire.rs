//! The Cloud API answers the WhatsApp adapter reads. Unknown fields are ignored.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

fn lenient_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(inbox_platform_meta::messaging::id_text(
        Option::<Value>::deserialize(deserializer)?.as_ref(),
    ))
}

/// `GET /{phone-number-id}?fields=display_phone_number,verified_name` (field names
/// UNCONFIRMED beyond these two, which every SDK reads).
#[derive(Debug, Deserialize)]
pub(crate) struct PhoneNumber {
    #[serde(default, deserialize_with = "lenient_id")]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) display_phone_number: Option<String>,
    #[serde(default)]
    pub(crate) verified_name: Option<String>,
}

/// The send answer: `{messaging_product, contacts: [{input, wa_id | user_id}], messages: [{id}]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Sent {
    #[serde(default)]
    pub(crate) contacts: Vec<SentContact>,
    #[serde(default)]
    pub(crate) messages: Vec<SentId>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SentContact {
    #[serde(default, deserialize_with = "lenient_id")]
    pub(crate) wa_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_id")]
    pub(crate) user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SentId {
    pub(crate) id: String,
}

/// `GET /{media-id}`: `{url, mime_type, sha256, file_size, id, messaging_product}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Media {
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) mime_type: Option<String>,
}
