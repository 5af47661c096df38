//! The API's resources, one module each, and what their handlers share: finding a platform's
//! adapter, calling it under the send deadline, and presenting stored rows as the API shows
//! them (messaging-window expiry filled in, platform media references hidden behind the
//! attachment route).

use std::future::Future;

use inbox_core::{
    Account, AccountContext, Conversation, DynPlatform, Error, Message, Participant, PlatformKind,
    Timestamp,
};
use serde::Deserialize;
use utoipa::IntoParams;

use tracing::Instrument;

use crate::{AppState, layers};

pub mod accounts;
pub mod connect;
pub mod conversations;
pub mod messages;
pub mod ops;
pub mod webhooks;

/// `limit` and `cursor`, shared by every list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows per page, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `nextCursor` from the previous page, unchanged.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The store's page request.
    pub fn page(&self) -> Result<inbox_core::PageRequest, Error> {
        inbox_core::PageRequest::from_query(self.limit, self.cursor.as_deref())
    }
}

/// Declares `{"data": [...], "nextCursor": ...}` for one row type, with its own schema name.
macro_rules! list_type {
    ($(#[$doc:meta])* $name:ident, $row:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// The rows of this page.
            pub data: Vec<$row>,
            /// Pass as `cursor` to get the next page; null on the last page.
            pub next_cursor: Option<String>,
        }

        impl From<inbox_core::Page<$row>> for $name {
            fn from(page: inbox_core::Page<$row>) -> Self {
                $name { data: page.data, next_cursor: page.next_cursor }
            }
        }
    };
}
pub(crate) use list_type;

/// The adapter for an account's platform. An account whose platform is no longer configured
/// on this gateway cannot be served; that is the operator's to fix, so it is `503`.
pub(crate) fn adapter(state: &AppState, kind: PlatformKind) -> Result<DynPlatform, Error> {
    state
        .platforms
        .get(kind)
        .cloned()
        .map_err(|_| Error::Unavailable {
            message: format!("the {kind} platform is not configured on this gateway"),
            retry_after: None,
        })
}

/// Runs a synchronous platform call under `ApiConfig::send_deadline`, so the API answers
/// inside the SDKs' 30 s timeout even when the platform hangs.
pub(crate) async fn within_deadline<T>(
    state: &AppState,
    platform: PlatformKind,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let deadline = state.config.send_deadline;
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unavailable {
                message: format!(
                    "{platform} did not answer within {} s; the outcome is unknown, so list the \
                 conversation's messages before retrying",
                    deadline.as_secs_f64()
                ),
                retry_after: None,
            })
        })
}

/// After the platform says the credentials are gone for good: mark the account (the store
/// emits `account.disconnected` only on the first change) and pass the error on.
pub(crate) async fn note_reauth(state: &AppState, account: &Account, err: Error) -> Error {
    if let Error::ReauthRequired { message, .. } = &err
        && let Err(mark_err) = state
            .store
            .mark_account_reauth_required(&account.id, message)
            .await
    {
        tracing::error!(error = %mark_err, account_id = %account.id, "could not mark the account reauth_required");
    }
    err
}

/// Runs one platform call for `account` under the API's deadline, with its current
/// credentials. When the platform says they expired and the platform renews credentials
/// (X, Reddit, Bluesky, Instagram), they are refreshed once (single-flight across replicas)
/// and the call is retried; a refusal that survives the refresh marks the account
/// `reauth_required` (one `account.disconnected`) and is passed on.
pub(crate) async fn call_platform<T, F, Fut>(
    state: &AppState,
    account: &Account,
    platform: &DynPlatform,
    call: F,
) -> Result<T, Error>
where
    F: Fn(AccountContext) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let attempt = async {
        let context = state.store.account_context(&account.id).await?;
        match call(context).await {
            Err(Error::ReauthRequired { .. })
                if platform.capabilities().credential_refresh.is_some() =>
            {
                state.hooks.refresh_credentials(account).await?;
                let context = state.store.account_context(&account.id).await?;
                call(context).await
            }
            other => other,
        }
    };
    match within_deadline(state, account.platform, attempt).await {
        Ok(value) => Ok(value),
        Err(err) => Err(note_reauth(state, account, err).await),
    }
}

/// Runs `work` to completion even if the client disconnects meanwhile: once a platform has
/// accepted a message, the gateway must record it, whatever happens to the connection.
pub(crate) async fn run_to_completion<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, Error> {
    let work = layers::in_current_request(work).instrument(tracing::Span::current());
    tokio::spawn(work)
        .await
        .map_err(|err| Error::internal("request task failed", err))
}

/// The account itself as a message sender.
pub(crate) fn account_as_sender(account: &Account) -> Participant {
    Participant {
        id: account.platform_account_id.clone(),
        name: account.name.clone(),
        username: account.username.clone(),
        picture: None,
    }
}

/// A conversation as the API shows it: `windowExpiresAt` from the platform's window rule.
pub(crate) fn present_conversation(
    state: &AppState,
    mut conversation: Conversation,
) -> Conversation {
    conversation.window_expires_at =
        state
            .platforms
            .get(conversation.platform)
            .ok()
            .and_then(|platform| {
                platform
                    .capabilities()
                    .window
                    .expires_at(conversation.last_inbound_at)
            });
    conversation
}

/// Whether an attachment URL is a plain web URL (returned as is) rather than a platform
/// reference that needs the account's credentials (`tg-file:…`).
pub(crate) fn is_web_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// The API path that serves attachment `index` of a message.
pub(crate) fn attachment_path(message: &Message, index: usize) -> String {
    format!(
        "/api/v1/inbox/conversations/{}/messages/{}/attachments/{index}",
        message.conversation_id, message.id
    )
}

/// A message as the API shows it: platform media references are replaced by the attachment
/// route's path, so credentials embedded in them (bot tokens) never leave the gateway.
pub(crate) fn present_message(mut message: Message) -> Message {
    let paths: Vec<_> = (0..message.attachments.len())
        .map(|index| attachment_path(&message, index))
        .collect();
    for (attachment, path) in message.attachments.iter_mut().zip(paths) {
        if !is_web_url(&attachment.url) {
            attachment.url = path;
        }
    }
    message
}

/// `now`, in one place so the checks that compare against it agree.
pub(crate) fn now() -> Timestamp {
    Timestamp::now()
}
