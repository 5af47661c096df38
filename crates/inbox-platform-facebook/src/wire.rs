//! The Graph answers the Facebook adapter reads. Unknown fields are ignored; ids come as
//! strings or numbers.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

fn lenient_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(inbox_platform_meta::messaging::id_text(
        Option::<Value>::deserialize(deserializer)?.as_ref(),
    ))
}

/// `GET /{page-id}?fields=id,name,username`.
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    #[serde(default, deserialize_with = "lenient_id")]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) username: Option<String>,
}

/// One Page of `GET /me/accounts` (with the Page's own token).
#[derive(Debug, Deserialize)]
pub(crate) struct GrantedPage {
    #[serde(default, deserialize_with = "lenient_id")]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    /// The tasks the user may perform on the Page; messaging needs `MESSAGING` (older
    /// answers list `MANAGE`, which includes it). Absent in some answers: then it is not
    /// checked.
    #[serde(default)]
    pub(crate) tasks: Option<Vec<String>>,
}

/// `GET /me/accounts`: `{data: [...], paging: {next}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Accounts {
    #[serde(default)]
    pub(crate) data: Vec<GrantedPage>,
    #[serde(default)]
    pub(crate) paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Paging {
    #[serde(default)]
    pub(crate) next: Option<String>,
}

/// `GET /oauth/access_token`: `{access_token, token_type, expires_in}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Token {
    pub(crate) access_token: String,
}

/// `GET /{PSID}?fields=first_name,last_name,name,profile_pic`.
#[derive(Debug, Deserialize)]
pub(crate) struct Profile {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) first_name: Option<String>,
    #[serde(default)]
    pub(crate) last_name: Option<String>,
    #[serde(default)]
    pub(crate) profile_pic: Option<String>,
}

impl Profile {
    /// `name`, else first and last name joined.
    pub(crate) fn display_name(&self) -> Option<String> {
        if let Some(name) = self.name.as_ref().filter(|n| !n.is_empty()) {
            return Some(name.clone());
        }
        let parts: Vec<&str> = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|p| !p.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}
