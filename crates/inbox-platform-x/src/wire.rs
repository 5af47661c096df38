//! X's JSON, as far as the adapter reads it. Every field the gateway does not strictly need is
//! optional and unknown fields are ignored, so X adding or dropping a field never breaks
//! decoding; what a field means is documented at the source cited on each type.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A v2 user (<https://docs.x.com/x-api/users/lookup/introduction>), as `includes.users[]`,
/// `GET /2/users/me` and XAA's `users[id].data` carry it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) profile_image_url: Option<String>,
}

/// `{"data": …}`, the envelope of single-object v2 answers.
#[derive(Debug, Deserialize)]
pub(crate) struct Data<T> {
    pub(crate) data: T,
}

/// A v2 DM event from `GET /2/dm_events` (OpenAPI `DmEvent`). `id` is the only field X always
/// sends; the rest are asked for with `dm_event.fields`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DmEvent {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) event_type: Option<String>,
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) sender_id: Option<String>,
    #[serde(default)]
    pub(crate) dm_conversation_id: Option<String>,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    #[serde(default)]
    pub(crate) attachments: Option<DmAttachments>,
}

/// `attachments` of a v2 DM event.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DmAttachments {
    #[serde(default)]
    pub(crate) media_keys: Vec<String>,
}

/// A v2 media object (`includes.media[]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Media {
    pub(crate) media_key: String,
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) url: Option<String>,
    #[serde(default)]
    pub(crate) preview_image_url: Option<String>,
    #[serde(default)]
    pub(crate) variants: Vec<Value>,
}

/// `includes` of a `GET /2/dm_events` page.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Includes {
    #[serde(default)]
    pub(crate) users: Vec<Value>,
    #[serde(default)]
    pub(crate) media: Vec<Value>,
}

/// `meta` of a `GET /2/dm_events` page.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub(crate) next_token: Option<String>,
}

/// One page of `GET /2/dm_events`, newest first
/// (<https://docs.x.com/x-api/direct-messages/lookup/integrate>). Events are kept as raw JSON
/// so they are stored exactly as X sent them.
#[derive(Debug, Deserialize)]
pub(crate) struct DmEventsPage {
    #[serde(default)]
    pub(crate) data: Option<Vec<Value>>,
    #[serde(default)]
    pub(crate) includes: Option<Includes>,
    #[serde(default)]
    pub(crate) meta: Option<Meta>,
}

/// What a DM send answers (`201`, OpenAPI `CreateDmEventResponse`).
#[derive(Debug, Deserialize)]
pub(crate) struct CreatedDm {
    pub(crate) dm_conversation_id: String,
    pub(crate) dm_event_id: String,
}

/// The OAuth 2.0 token endpoint's answer
/// (<https://docs.x.com/fundamentals/authentication/oauth-2-0/user-access-token>).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

/// Every error shape X answers with: v2 problems (`title`, `detail`, `type`, `status`),
/// legacy `{"errors":[{"code","message"}]}`, and OAuth's `{"error","error_description"}`
/// (<https://docs.x.com/x-api/fundamentals/response-codes-and-errors>).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) title: Option<String>,
    #[serde(default)]
    pub(crate) detail: Option<String>,
    #[serde(default)]
    pub(crate) errors: Vec<ErrorItem>,
    #[serde(default)]
    pub(crate) error: Option<String>,
    #[serde(default)]
    pub(crate) error_description: Option<String>,
}

/// One entry of `errors[]`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorItem {
    #[serde(default)]
    pub(crate) code: Option<Value>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) detail: Option<String>,
}

// ----- webhooks -----------------------------------------------------------------------------

/// A legacy (v1.1-shaped) DM event, as the Account Activity API and the X Activity API's
/// `dm.*` payloads carry it (<https://docs.x.com/x-api/account-activity/introduction>).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LegacyEvent {
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) created_timestamp: Option<Value>,
    #[serde(default)]
    pub(crate) message_create: Option<MessageCreate>,
}

/// `message_create` of a legacy DM event.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MessageCreate {
    #[serde(default)]
    pub(crate) target: Option<Target>,
    pub(crate) sender_id: String,
    #[serde(default)]
    pub(crate) message_data: Option<MessageData>,
}

/// `message_create.target`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Target {
    pub(crate) recipient_id: String,
}

/// `message_create.message_data`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct MessageData {
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) attachment: Option<LegacyAttachment>,
}

/// `message_data.attachment`: `{"type":"media","media":{…v1.1 media entity…}}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LegacyAttachment {
    #[serde(default)]
    pub(crate) media: Option<LegacyMedia>,
}

/// The v1.1 media entity fields the adapter reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LegacyMedia {
    #[serde(default)]
    pub(crate) id_str: Option<String>,
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) media_url_https: Option<String>,
    #[serde(default)]
    pub(crate) video_info: Option<Value>,
}

/// A legacy user of the Account Activity `users` map.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct LegacyUser {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) screen_name: Option<String>,
    #[serde(default)]
    pub(crate) profile_image_url_https: Option<String>,
}

/// An Account Activity API delivery (`for_user_id` and one or more event arrays).
#[derive(Debug, Deserialize)]
pub(crate) struct AccountActivity {
    pub(crate) for_user_id: String,
    #[serde(default)]
    pub(crate) direct_message_events: Option<Vec<Value>>,
    #[serde(default)]
    pub(crate) users: HashMap<String, LegacyUser>,
}

/// An X Activity API delivery (<https://docs.x.com/x-api/activity/event-payloads>).
#[derive(Debug, Deserialize)]
pub(crate) struct ActivityEnvelope {
    pub(crate) data: Activity,
}

/// `data` of an X Activity API delivery.
#[derive(Debug, Deserialize)]
pub(crate) struct Activity {
    pub(crate) event_type: String,
    #[serde(default)]
    pub(crate) filter: Option<ActivityFilter>,
    #[serde(default)]
    pub(crate) payload: Option<ActivityPayload>,
}

/// `data.filter`: the subscribed user.
#[derive(Debug, Deserialize)]
pub(crate) struct ActivityFilter {
    #[serde(default)]
    pub(crate) user_id: Option<String>,
}

/// `data.payload` of `dm.*` events: legacy DM events and a users map whose values wrap a v2
/// user in `{"data": …}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ActivityPayload {
    #[serde(default)]
    pub(crate) direct_message_events: Vec<Value>,
    #[serde(default)]
    pub(crate) users: HashMap<String, Data<User>>,
}
