//! `/api/v1/inbox/conversations/{id}/messages`: reading a thread, replying to it, and
//! fetching attachments the platform only serves with the account's credentials.
//!
//! A reply is checked in a fixed order before the platform is called, and nothing is sent
//! when a check fails: the conversation exists, `accountId` (if given) matches, the account
//! is active, there is content, attachments and text fit the platform, tags and templates
//! are allowed, the messaging window is open, `replyTo` is a message of this thread. Then the
//! platform is called under the send deadline and the accepted message is recorded with its
//! `message.sent` event.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use inbox_core::{
    AccountId, AccountStatus, AttachmentKind, ConversationId, ConversationTarget, Error, Message,
    MessageId, OutboundAttachment, Template,
};
use inbox_store::{NewSentMessage, SortOrder};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::Workspace,
    compose::DraftFields,
    error::{ApiResult, responses::*},
    extract::{CanonicalJson, Path, Query, parse_id},
    idempotency::{self, Idempotency},
    routes::{
        account_as_sender, adapter, call_platform, conversations::reauth_required, is_web_url,
        list_type, present_message,
    },
};

list_type!(
    /// One page of messages.
    MessageList,
    Message
);

/// Message order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageOrder {
    /// Oldest first (chat order).
    Asc,
    /// Newest first.
    #[default]
    Desc,
}

/// Query parameters of `GET …/messages`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct MessageListQuery {
    /// `desc` (newest first, the default) or `asc`.
    pub sort_order: Option<MessageOrder>,
    /// Rows per page, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `nextCursor` from the previous page, unchanged.
    pub cursor: Option<String>,
}

/// Body of `POST …/messages`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "message": "Hey! How can I help you today?",
    "attachments": [{"type": "image", "url": "https://example.com/welcome.png"}]
}))]
pub struct SendMessage {
    /// The text; the caption when there are attachments.
    pub message: Option<String>,
    /// Attachments, by public URL.
    pub attachments: Option<Vec<OutboundAttachment>>,
    /// One attachment's URL (Zernio's flat form of `attachments`).
    pub attachment_url: Option<String>,
    /// The flat attachment's type; default `file`.
    pub attachment_type: Option<AttachmentKind>,
    /// The flat attachment's file name.
    pub attachment_name: Option<String>,
    /// Instagram/Facebook message tag; `HUMAN_AGENT` extends the reply window to 7 days.
    pub message_tag: Option<String>,
    /// A WhatsApp template, required outside WhatsApp's 24-hour window.
    pub template: Option<Template>,
    /// The message this one replies to (`msg_…`), where the platform threads replies.
    pub reply_to: Option<String>,
    /// When given, must be the conversation's account.
    pub account_id: Option<String>,
}

/// Lists a conversation's messages.
///
/// `sortOrder` `desc` (newest first, the default) or `asc`. Reading does not mark anything
/// read. Attachment URLs that are platform references are served through the attachment
/// route, as a relative `/api/v1/…` path.
#[utoipa::path(
    get,
    path = "/api/v1/inbox/conversations/{conversationId}/messages",
    tag = "messages",
    params(
        ("conversationId" = String, Path, description = "The conversation id (`conv_…`)."),
        MessageListQuery,
    ),
    responses(
        (status = 200, description = "One page of messages.", body = MessageList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn list_messages(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(conversation_id): Path<String>,
    Query(query): Query<MessageListQuery>,
) -> ApiResult<axum::Json<MessageList>> {
    let id: ConversationId = parse_id(&conversation_id, "conversation")?;
    let page = inbox_core::PageRequest::from_query(query.limit, query.cursor.as_deref())?;
    state.store.get_conversation(&workspace.id, &id).await?;
    let order = match query.sort_order.unwrap_or_default() {
        MessageOrder::Asc => SortOrder::Asc,
        MessageOrder::Desc => SortOrder::Desc,
    };
    let page = state
        .store
        .list_messages(&workspace.id, &id, order, &page)
        .await?;
    Ok(axum::Json(page.map(present_message).into()))
}

/// Sends a reply into a conversation.
///
/// Calls the platform synchronously (answering within 25 s) and answers `201` with the
/// stored message (`deliveryStatus: "sent"`, `platformMessageId` set); `message.sent` is
/// emitted. Checked first, in this order, with nothing sent when a check fails:
/// the conversation exists (`404`); `accountId`, if given, is its account (`400`); the
/// account is active (`409 account_reauth_required`); there is text, an attachment or a
/// template (`400`); the attachments' kinds and count suit the platform (`422
/// unsupported_content`); the text fits the platform's limit — the caption limit when there
/// are attachments (`422 message_too_long`); `messageTag` and `template` only where the
/// platform has them (`422 unsupported_content`); the messaging window is open (`422
/// messaging_window_closed`; `HUMAN_AGENT` extends Meta's window to 7 days, WhatsApp
/// templates may be sent outside it); `replyTo` is a message of this conversation (`400`);
/// the platform's send budgets for the account, the chat and the recipient allow one more
/// message (`429 rate_limited` with `Retry-After`).
/// `replyTo` is passed on where the platform threads replies and ignored elsewhere.
///
/// With `Idempotency-Key`, a retry with the same key and body returns the first response
/// (header `Idempotent-Replayed: true`) without sending again; the same key with another
/// body is `409 idempotency_conflict`. Only successes are kept, for 24 h.
#[utoipa::path(
    post,
    path = "/api/v1/inbox/conversations/{conversationId}/messages",
    tag = "messages",
    params(
        ("conversationId" = String, Path, description = "The conversation id (`conv_…`)."),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request return the first response instead of sending twice (up to 255 characters, kept 24 h)."),
    ),
    request_body = SendMessage,
    responses(
        (status = 201, description = "The sent message.", body = Message),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 429, response = RateLimited),
        (status = 502, response = PlatformError),
        (status = 503, response = PlatformUnavailable),
    )
)]
pub async fn send_message(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(conversation_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: CanonicalJson<SendMessage>,
) -> ApiResult<Response> {
    let idempotency = Idempotency {
        workspace: workspace.id.clone(),
        key: idempotency::key_from_headers(&headers)?,
        request_hash: idempotency::request_hash(&method, uri.path(), &body.canonical),
    };
    let work = {
        let state = state.clone();
        async move {
            let sending = send(&state, &workspace, &conversation_id, body.body);
            idempotency.run(&state, sending).await
        }
    };
    Ok(super::run_to_completion(work).await?)
}

async fn send(
    state: &AppState,
    workspace: &Workspace,
    conversation_id: &str,
    body: SendMessage,
) -> ApiResult<(StatusCode, Message)> {
    let id: ConversationId = parse_id(conversation_id, "conversation")?;
    let conversation = state.store.get_conversation(&workspace.id, &id).await?;
    if let Some(given) = body.account_id.as_deref().filter(|given| !given.is_empty()) {
        let matches = given
            .parse::<AccountId>()
            .is_ok_and(|given| given == conversation.account_id);
        if !matches {
            return Err(Error::invalid(
                "accountId",
                format!(
                    "`accountId` {given} is not the account of conversation {} ({})",
                    conversation.id, conversation.account_id
                ),
            )
            .into());
        }
    }
    let account = state
        .store
        .get_account(&workspace.id, &conversation.account_id)
        .await?;
    if account.status != AccountStatus::Active {
        return Err(reauth_required(&account).into());
    }
    let platform = adapter(state, account.platform)?;
    let caps = platform.capabilities();
    let draft = DraftFields {
        message: body.message,
        attachments: body.attachments,
        attachment_url: body.attachment_url,
        attachment_type: body.attachment_type,
        attachment_name: body.attachment_name,
        message_tag: body.message_tag,
        template: body.template,
        ..DraftFields::default()
    }
    .into_draft()?;
    draft.check_content(account.platform, caps)?;
    draft.check_window(
        account.platform,
        caps,
        conversation.last_inbound_at,
        super::now(),
    )?;
    let reply_to = match body.reply_to.as_deref().filter(|id| !id.is_empty()) {
        Some(raw) => Some(reply_target(state, workspace, &conversation.id, raw).await?),
        None => None,
    };
    // Where the platform does not thread replies, `replyTo` was checked and is dropped, so
    // the stored message does not claim a thread the participant never saw.
    let reply_to = reply_to.filter(|_| caps.reply_threading);
    let outbound = draft.to_outbound(
        reply_to
            .as_ref()
            .map(|message| message.platform_message_id.clone()),
    );
    // Reddit replies to the participant's newest message of the thread.
    let target = ConversationTarget {
        platform_conversation_id: conversation.platform_conversation_id.clone(),
        participant_id: conversation.participant.id.clone(),
        last_inbound_platform_message_id: super::conversations::last_inbound_message(
            state,
            workspace,
            &conversation,
        )
        .await,
    };
    // Last check before the platform: every send budget of the account, the chat and the
    // recipient (429 with nothing sent or stored when one is exhausted).
    let budget = inbox_core::BudgetCall::new(
        account.platform,
        inbox_core::BudgetOperation::Send,
        &account.platform_account_id,
    )
    .in_conversation(&target.platform_conversation_id)
    .to_recipient(&target.participant_id);
    let sent =
        crate::ratelimit::call_within_budget(state, &budget, &account, &platform, |context| {
            let (platform, target, outbound) = (&platform, &target, &outbound);
            async move { platform.send(&context, target, outbound).await }
        })
        .await?;
    let message = state
        .store
        .record_sent_message(NewSentMessage {
            sender: account_as_sender(&account),
            account,
            conversation_id: conversation.id,
            text: draft.text.clone(),
            attachments: draft.stored_attachments(),
            sent,
            reply_to: reply_to.map(|message| message.id),
        })
        .await?;
    Ok((StatusCode::CREATED, present_message(message)))
}

/// The message `replyTo` names, which must belong to this conversation.
async fn reply_target(
    state: &AppState,
    workspace: &Workspace,
    conversation: &ConversationId,
    raw: &str,
) -> ApiResult<Message> {
    let not_here = || {
        Error::invalid(
            "replyTo",
            format!("`replyTo` {raw} is not a message of conversation {conversation}"),
        )
    };
    let id: MessageId = raw.parse().map_err(|_| not_here())?;
    match state.store.get_message(&workspace.id, &id).await {
        Ok(message) if &message.conversation_id == conversation => Ok(message),
        Ok(_) | Err(Error::NotFound { .. }) => Err(not_here().into()),
        Err(err) => Err(err.into()),
    }
}

/// Fetches one attachment of a message.
///
/// Attachments the platform only serves with the account's credentials (Telegram files)
/// are streamed through the gateway, so credentials never reach the client; attachments
/// with a plain web URL answer `302` to it.
#[utoipa::path(
    get,
    path = "/api/v1/inbox/conversations/{conversationId}/messages/{messageId}/attachments/{index}",
    tag = "messages",
    params(
        ("conversationId" = String, Path, description = "The conversation id (`conv_…`)."),
        ("messageId" = String, Path, description = "The message id (`msg_…`)."),
        ("index" = usize, Path, description = "The attachment's position in `attachments`, from 0."),
    ),
    responses(
        (status = 200, description = "The attachment's bytes, with its `Content-Type`.", content(("application/octet-stream"))),
        (status = 302, description = "The attachment is at a web URL; see `Location`."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 502, response = PlatformError),
        (status = 503, response = PlatformUnavailable),
    )
)]
pub async fn get_attachment(
    State(state): State<AppState>,
    workspace: Workspace,
    Path((conversation_id, message_id, index)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let conversation: ConversationId = parse_id(&conversation_id, "conversation")?;
    let message_id: MessageId = parse_id(&message_id, "message")?;
    let message = state.store.get_message(&workspace.id, &message_id).await?;
    if message.conversation_id != conversation {
        return Err(Error::not_found("message", message_id.to_string()).into());
    }
    let attachment = index
        .parse::<usize>()
        .ok()
        .and_then(|index| message.attachments.get(index))
        .ok_or_else(|| Error::not_found("attachment", format!("{message_id}/{index}")))?;
    if is_web_url(&attachment.url) {
        let location = HeaderValue::from_str(&attachment.url)
            .map_err(|err| Error::internal("stored attachment URL is not a header value", err))?;
        return Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response());
    }
    let account = state
        .store
        .get_account(&workspace.id, &message.account_id)
        .await?;
    if account.status != AccountStatus::Active {
        return Err(reauth_required(&account).into());
    }
    let platform = adapter(&state, account.platform)?;
    let media = call_platform(&state, &account, &platform, |context| {
        let (platform, url) = (&platform, &attachment.url);
        async move { platform.fetch_attachment(&context, url).await }
    })
    .await?;
    let mime = media
        .mime_type
        .or_else(|| attachment.mime_type.clone())
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let mut response = Response::new(Body::from(media.bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&mime)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    // Private: the bytes belong to one workspace. `nosniff` so a browser never runs them.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(name) = media.name.or_else(|| attachment.name.clone()) {
        let safe: String = name
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .filter(|c| !matches!(c, '"' | '\\'))
            .take(120)
            .collect();
        if let Ok(value) = HeaderValue::from_str(&format!("inline; filename=\"{safe}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// The messages routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_messages, send_message))
        .routes(routes!(get_attachment))
}
