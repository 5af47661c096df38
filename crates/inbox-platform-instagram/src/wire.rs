//! Instagram's JSON answers, as far as the adapter reads them. Unknown fields are ignored;
//! ids come as strings or numbers.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub(crate) fn lenient_id<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(inbox_platform_meta::messaging::id_text(
        Option::<Value>::deserialize(deserializer)?.as_ref(),
    ))
}

/// `GET /me?fields=user_id,username,name,…`. `user_id` is the id webhooks use; `id` is an
/// app-scoped id, used only when `user_id` is absent.
#[derive(Debug, Deserialize)]
pub(crate) struct Me {
    #[serde(default, deserialize_with = "lenient_id")]
    pub(crate) user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_id")]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
}

/// `ig_exchange_token` and `ig_refresh_token`: `{access_token, token_type, expires_in}`.
#[derive(Debug, Deserialize)]
pub(crate) struct LongLivedToken {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

/// The code exchange's token. The answer is seen both flat and wrapped in `data: [...]`
/// (UNCONFIRMED which is current), so both are read.
#[derive(Debug, Deserialize)]
pub(crate) struct ShortLivedToken {
    pub(crate) access_token: String,
    #[serde(default, deserialize_with = "lenient_id")]
    pub(crate) user_id: Option<String>,
}

pub(crate) fn short_lived_token(value: Value) -> Option<ShortLivedToken> {
    let inner = match value.get("data").and_then(Value::as_array) {
        Some(data) => data.first().cloned()?,
        None => value,
    };
    serde_json::from_value(inner).ok()
}

/// `GET /{IGSID}?fields=name,username,profile_pic`.
#[derive(Debug, Deserialize)]
pub(crate) struct Profile {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) profile_pic: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn both_code_exchange_shapes_parse() {
        let flat = short_lived_token(json!({"access_token": "IGQ", "user_id": 17_841_400_000_000_001_u64, "permissions": "x"})).unwrap();
        assert_eq!(flat.user_id.as_deref(), Some("17841400000000001"));
        let wrapped = short_lived_token(
            json!({"data": [{"access_token": "IGQ", "user_id": "1", "permissions": "x"}]}),
        )
        .unwrap();
        assert_eq!(wrapped.access_token, "IGQ");
        assert!(short_lived_token(json!({"data": []})).is_none());
    }
}
