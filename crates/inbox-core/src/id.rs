//! Prefixed, time-sortable identifiers (`ws_`, `key_`, `acc_`, `conv_`, `msg_`, `evt_`, `whk_`,
//! `dlv_`, plus the internal `raw_` and `att_`).
//!
//! An id is its prefix followed by a lowercase ULID: 48 bits of milliseconds and 80 bits that
//! increase monotonically within a millisecond in one process, so ids sort by creation time as
//! plain strings. Lowercasing keeps that order because Crockford base32 digits sort before its
//! letters in both cases.

use std::{fmt, str::FromStr, sync::Mutex};

use serde::{Deserialize, Serialize};
use ulid::{Generator, Ulid};

/// Why a string is not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{value}` is not a valid {kind} id (expected `{prefix}` followed by 26 base32 characters)"
)]
pub struct IdParseError {
    /// The kind of id that was expected, e.g. `conversation`.
    pub kind: &'static str,
    /// The prefix that was expected, e.g. `conv_`.
    pub prefix: &'static str,
    /// The rejected input, shortened to a safe length.
    pub value: String,
}

static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);

/// A new lowercase ULID that sorts after every ULID this process made before it.
fn next_ulid() -> String {
    let mut guard = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let generator = guard.get_or_insert_with(Generator::new);
    // The monotonic generator only fails when 2^80 ids are made in one millisecond; a fresh
    // random ULID is then still unique, merely not ordered within that millisecond.
    let ulid = generator.generate().unwrap_or_else(|_| Ulid::new());
    ulid.to_string().to_ascii_lowercase()
}

fn is_ulid_body(body: &str) -> bool {
    body.len() == 26 && Ulid::from_string(&body.to_ascii_uppercase()).is_ok()
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new id, later than every id of any kind this process made before.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(format!("{}{}", $prefix, next_ulid()))
            }

            /// The smallest id made at `at`: every id made earlier sorts before it, every id
            /// made at `at` or later sorts at or after it. For range queries over time
            /// (ids are ULIDs: time first).
            pub fn first_at(at: crate::Timestamp) -> Self {
                let millis = u64::try_from(at.unix_millis()).unwrap_or(0);
                let ulid = Ulid::from_parts(millis, 0).to_string().to_ascii_lowercase();
                Self(format!("{}{}", $prefix, ulid))
            }

            /// Parses an id, checking its prefix and body.
            pub fn parse(value: &str) -> Result<Self, IdParseError> {
                match value.strip_prefix($prefix) {
                    Some(body) if is_ulid_body(body) => Ok(Self(value.to_ascii_lowercase())),
                    _ => Err(IdParseError {
                        kind: $kind,
                        prefix: $prefix,
                        value: value.chars().take(80).collect(),
                    }),
                }
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdParseError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "[0-9a-z]{26}$")))
                    .examples([serde_json::json!(concat!($prefix, "01jd3k5n8q2w4e6r8t0y2u4i6o"))])
                    .description(Some(concat!("A ", $kind, " id.")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

prefixed_id!(
    /// A workspace: the tenant everything else belongs to.
    WorkspaceId, "ws_", "workspace"
);
prefixed_id!(
    /// An API key's public id (the key itself is secret and only its hash is stored).
    ApiKeyId, "key_", "API key"
);
prefixed_id!(
    /// A connected platform account.
    AccountId, "acc_", "account"
);
prefixed_id!(
    /// A conversation (one thread with one participant on one account).
    ConversationId, "conv_", "conversation"
);
prefixed_id!(
    /// A message, incoming or outgoing.
    MessageId, "msg_", "message"
);
prefixed_id!(
    /// An outbound event (`message.received`, …); also the Standard Webhooks `webhook-id`.
    EventId, "evt_", "event"
);
prefixed_id!(
    /// A customer webhook endpoint.
    EndpointId, "whk_", "webhook endpoint"
);
prefixed_id!(
    /// One event's delivery to one endpoint, with its attempts.
    DeliveryId, "dlv_", "delivery"
);
prefixed_id!(
    /// A verified raw inbound payload, persisted before it is acknowledged.
    RawEventId, "raw_", "raw event"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_round_trip() {
        let id = MessageId::new();
        assert!(id.as_str().starts_with("msg_"));
        assert_eq!(id.as_str().len(), 4 + 26);
        assert_eq!(MessageId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn the_first_id_at_a_time_bounds_the_ids_made_before_and_after() {
        let earlier = RawEventId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let now = crate::Timestamp::now();
        let bound = RawEventId::first_at(now);
        let later = RawEventId::new();
        assert!(
            earlier < bound && bound <= later,
            "{earlier} {bound} {later}"
        );
        assert!(bound.as_str().starts_with("raw_"));
        assert_eq!(RawEventId::parse(bound.as_str()).unwrap(), bound);
    }

    #[test]
    fn ids_sort_by_creation_order() {
        let ids: Vec<EventId> = (0..1000).map(|_| EventId::new()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn wrong_prefix_or_body_is_rejected() {
        let conversation = ConversationId::new();
        let err = MessageId::parse(conversation.as_str()).unwrap_err();
        assert_eq!(err.prefix, "msg_");
        assert!(MessageId::parse("msg_short").is_err());
        assert!(MessageId::parse("msg_01jd3k5n8q2w4e6r8t0y2u4i6!").is_err());
        assert!(MessageId::parse("").is_err());
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = AccountId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        let back: AccountId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<AccountId>("\"conv_x\"").is_err());
    }
}
