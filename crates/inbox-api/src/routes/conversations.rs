//! `/api/v1/inbox/conversations`: the unified inbox — listing and reading threads, archiving
//! them, marking them read, and starting new ones where the platform lets a business write
//! first.

use axum::{
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::Response,
};
use inbox_core::{
    AccountId, AccountStatus, AttachmentKind, Conversation, ConversationId, ConversationStatus,
    ConversationTarget, Error, Message, OutboundAttachment, PlatformKind, Template,
};
use inbox_store::{ConversationFilter, NewStartedConversation};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    auth::Workspace,
    compose::DraftFields,
    error::{ApiResult, responses::*},
    extract::{CanonicalJson, Json, Path, Query, parse_id},
    idempotency::{self, Idempotency},
    ratelimit::call_within_budget,
    routes::{account_as_sender, adapter, list_type, present_conversation, present_message},
};

list_type!(
    /// One page of conversations, newest activity first.
    ConversationList,
    Conversation
);

/// Query parameters of `GET /inbox/conversations`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ConversationListQuery {
    /// Only conversations on this platform.
    pub platform: Option<PlatformKind>,
    /// Only conversations of this account (`acc_…`).
    pub account_id: Option<String>,
    /// Only `active` or only `archived` conversations.
    pub status: Option<ConversationStatus>,
    /// Rows per page, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `nextCursor` from the previous page, unchanged.
    pub cursor: Option<String>,
}

/// Body of `PATCH`/`PUT /inbox/conversations/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateConversation {
    /// `archived` to archive, `active` to unarchive.
    pub status: ConversationStatus,
}

/// Body of `POST /inbox/conversations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartConversation {
    /// The account to write from (`acc_…`).
    pub account_id: String,
    /// Who to write to: an X user id or username, a Bluesky handle or DID, a Reddit
    /// username, or a WhatsApp phone number in international format.
    pub participant: Option<String>,
    /// Zernio's name for a participant id (X user id, WhatsApp phone number).
    pub participant_id: Option<String>,
    /// Zernio's name for a participant handle (X, Bluesky, Reddit).
    pub participant_username: Option<String>,
    /// The first message's text.
    pub message: Option<String>,
    /// Attachments, by public URL.
    pub attachments: Option<Vec<OutboundAttachment>>,
    /// One attachment's URL (Zernio's flat form of `attachments`).
    pub attachment_url: Option<String>,
    /// The flat attachment's type; default `file`.
    pub attachment_type: Option<AttachmentKind>,
    /// The flat attachment's file name.
    pub attachment_name: Option<String>,
    /// A WhatsApp template; WhatsApp requires one to write first.
    pub template: Option<Template>,
    /// A template name (Zernio's flat form of `template`).
    pub template_name: Option<String>,
    /// The flat template's language; default `en_US`.
    pub template_language: Option<String>,
    /// The flat template's body parameters, in order.
    pub template_params: Option<Vec<String>>,
}

/// `{conversation, message}`: a started conversation and its first message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationStarted {
    /// The new (or existing) conversation.
    pub conversation: Conversation,
    /// The first message, as sent.
    pub message: Message,
}

/// Lists conversations, newest activity first.
///
/// Filters combine. Conversations of disconnected accounts are not listed.
#[utoipa::path(
    get,
    path = "/api/v1/inbox/conversations",
    tag = "conversations",
    params(ConversationListQuery),
    responses(
        (status = 200, description = "One page of conversations.", body = ConversationList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    )
)]
pub async fn list_conversations(
    State(state): State<AppState>,
    workspace: Workspace,
    Query(query): Query<ConversationListQuery>,
) -> ApiResult<axum::Json<ConversationList>> {
    let page = inbox_core::PageRequest::from_query(query.limit, query.cursor.as_deref())?;
    let account_id = query
        .account_id
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.parse::<AccountId>()
                .map_err(|err| Error::invalid("accountId", err.to_string()))
        })
        .transpose()?;
    let filter = ConversationFilter {
        platform: query.platform,
        account_id,
        status: query.status,
    };
    let page = state
        .store
        .list_conversations(&workspace.id, &filter, &page)
        .await?;
    let page = page.map(|conversation| present_conversation(&state, conversation));
    Ok(axum::Json(page.into()))
}

/// Returns one conversation.
#[utoipa::path(
    get,
    path = "/api/v1/inbox/conversations/{conversationId}",
    tag = "conversations",
    params(("conversationId" = String, Path, description = "The conversation id (`conv_…`).")),
    responses(
        (status = 200, description = "The conversation.", body = Conversation),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn get_conversation(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(conversation_id): Path<String>,
) -> ApiResult<axum::Json<Conversation>> {
    let id: ConversationId = parse_id(&conversation_id, "conversation")?;
    let conversation = state.store.get_conversation(&workspace.id, &id).await?;
    Ok(axum::Json(present_conversation(&state, conversation)))
}

/// Archives or unarchives a conversation.
///
/// A new incoming message does not unarchive an archived conversation.
#[utoipa::path(
    patch,
    path = "/api/v1/inbox/conversations/{conversationId}",
    tag = "conversations",
    params(("conversationId" = String, Path, description = "The conversation id (`conv_…`).")),
    request_body = UpdateConversation,
    responses(
        (status = 200, description = "The updated conversation.", body = Conversation),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn update_conversation(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(conversation_id): Path<String>,
    Json(body): Json<UpdateConversation>,
) -> ApiResult<axum::Json<Conversation>> {
    let id: ConversationId = parse_id(&conversation_id, "conversation")?;
    let conversation = state
        .store
        .set_conversation_status(&workspace.id, &id, body.status)
        .await?;
    Ok(axum::Json(present_conversation(&state, conversation)))
}

/// Archives or unarchives a conversation (the same as `PATCH`, for Zernio SDK users).
#[utoipa::path(
    put,
    path = "/api/v1/inbox/conversations/{conversationId}",
    tag = "conversations",
    params(("conversationId" = String, Path, description = "The conversation id (`conv_…`).")),
    request_body = UpdateConversation,
    responses(
        (status = 200, description = "The updated conversation.", body = Conversation),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn put_conversation(
    state: State<AppState>,
    workspace: Workspace,
    conversation_id: Path<String>,
    body: Json<UpdateConversation>,
) -> ApiResult<axum::Json<Conversation>> {
    update_conversation(state, workspace, conversation_id, body).await
}

/// Marks a conversation read.
///
/// Zeroes `unreadCount`, then marks the platform's copy read where the platform has a call
/// for it (Messenger and Instagram `mark_seen`, WhatsApp `read`, Reddit `read_message`,
/// Bluesky `updateRead`; Telegram and X have none). The platform call is best effort: the
/// read receipt is a courtesy to the participant, so a platform failure is logged and the
/// answer is still `200` with the gateway's state (a revoked token also marks the account
/// `reauth_required`).
#[utoipa::path(
    post,
    path = "/api/v1/inbox/conversations/{conversationId}/read",
    tag = "conversations",
    params(("conversationId" = String, Path, description = "The conversation id (`conv_…`).")),
    responses(
        (status = 200, description = "The conversation, now with `unreadCount` 0.", body = Conversation),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn mark_conversation_read(
    State(state): State<AppState>,
    workspace: Workspace,
    Path(conversation_id): Path<String>,
) -> ApiResult<axum::Json<Conversation>> {
    let id: ConversationId = parse_id(&conversation_id, "conversation")?;
    let conversation = state
        .store
        .mark_conversation_read(&workspace.id, &id)
        .await?;
    mark_read_on_platform(&state, &workspace, &conversation).await;
    Ok(axum::Json(present_conversation(&state, conversation)))
}

async fn mark_read_on_platform(
    state: &AppState,
    workspace: &Workspace,
    conversation: &Conversation,
) {
    let Ok(platform) = adapter(state, conversation.platform) else {
        return;
    };
    if !platform.capabilities().mark_read {
        return;
    }
    let account = match state
        .store
        .get_account(&workspace.id, &conversation.account_id)
        .await
    {
        Ok(account) if account.status == AccountStatus::Active => account,
        Ok(_) => return,
        Err(err) => {
            tracing::warn!(error = %err, "could not load the account to mark read on the platform");
            return;
        }
    };
    let target = ConversationTarget {
        platform_conversation_id: conversation.platform_conversation_id.clone(),
        participant_id: conversation.participant.id.clone(),
        last_inbound_platform_message_id: last_inbound_message(state, workspace, conversation)
            .await,
    };
    // Best effort, like the call itself: an exhausted budget skips it (logged below).
    let budget = inbox_core::BudgetCall::new(
        account.platform,
        inbox_core::BudgetOperation::Any,
        &account.platform_account_id,
    )
    .in_conversation(&target.platform_conversation_id)
    .to_recipient(&target.participant_id);
    let outcome = call_within_budget(state, &budget, &account, &platform, |context| {
        let (platform, target) = (&platform, &target);
        async move { platform.mark_read(&context, target).await }
    })
    .await;
    match outcome {
        Ok(()) | Err(Error::NotSupported { .. }) => {}
        Err(err) => {
            tracing::warn!(error = %err, conversation_id = %conversation.id, "marking read on the platform failed");
        }
    }
}

/// The platform id of the participant's newest message among the conversation's latest 50
/// (WhatsApp marks a thread read by it; Reddit replies to it). Further back, the thread was
/// read long ago.
pub(crate) async fn last_inbound_message(
    state: &AppState,
    workspace: &Workspace,
    conversation: &Conversation,
) -> Option<String> {
    let page = inbox_core::PageRequest::from_query(Some(50), None).ok()?;
    let messages = state
        .store
        .list_messages(
            &workspace.id,
            &conversation.id,
            inbox_store::SortOrder::Desc,
            &page,
        )
        .await
        .map_err(|err| tracing::warn!(error = %err, "could not list messages to mark read"))
        .ok()?;
    messages
        .data
        .into_iter()
        .find(|message| message.direction == inbox_core::Direction::Incoming)
        .map(|message| message.platform_message_id)
}

/// Starts a conversation where the platform lets a business write first.
///
/// X (user id or username), Bluesky (handle or DID), Reddit (username) and WhatsApp (phone
/// number, with a `template`, since WhatsApp's window is closed until the participant
/// writes). Elsewhere `422 not_supported_by_platform`. Content is checked exactly as for a
/// reply (see `send_message`). Answers `201` with `{conversation, message}`; when a thread
/// with the participant already exists, that conversation is returned. Honours
/// `Idempotency-Key` like `send_message`.
#[utoipa::path(
    post,
    path = "/api/v1/inbox/conversations",
    tag = "conversations",
    request_body = StartConversation,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request return the first response instead of writing twice (up to 255 characters, kept 24 h).")),
    responses(
        (status = 201, description = "The conversation and its first message.", body = ConversationStarted),
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
pub async fn start_conversation(
    State(state): State<AppState>,
    workspace: Workspace,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: CanonicalJson<StartConversation>,
) -> ApiResult<Response> {
    let idempotency = Idempotency {
        workspace: workspace.id.clone(),
        key: idempotency::key_from_headers(&headers)?,
        request_hash: idempotency::request_hash(&method, uri.path(), &body.canonical),
    };
    let work = {
        let state = state.clone();
        async move {
            idempotency
                .run(&state, start(&state, &workspace, body.body))
                .await
        }
    };
    Ok(super::run_to_completion(work).await?)
}

async fn start(
    state: &AppState,
    workspace: &Workspace,
    body: StartConversation,
) -> ApiResult<(StatusCode, ConversationStarted)> {
    let account_id: AccountId = parse_id(&body.account_id, "account")?;
    let account = state.store.get_account(&workspace.id, &account_id).await?;
    if account.status != AccountStatus::Active {
        return Err(reauth_required(&account).into());
    }
    let platform = adapter(state, account.platform)?;
    let caps = platform.capabilities();
    if !caps.start_conversation {
        return Err(Error::NotSupported {
            platform: account.platform,
            operation: "starting conversations (the participant has to write first)",
        }
        .into());
    }
    let participant = [
        body.participant,
        body.participant_id,
        body.participant_username,
    ]
    .into_iter()
    .flatten()
    .map(|value| value.trim().to_owned())
    .find(|value| !value.is_empty())
    .ok_or_else(|| {
        Error::invalid(
            "participant",
            "`participant` (or `participantId` / `participantUsername`) is required",
        )
    })?;
    let draft = DraftFields {
        message: body.message,
        attachments: body.attachments,
        attachment_url: body.attachment_url,
        attachment_type: body.attachment_type,
        attachment_name: body.attachment_name,
        message_tag: None,
        template: body.template,
        template_name: body.template_name,
        template_language: body.template_language,
        template_params: body.template_params,
    }
    .into_draft()?;
    draft.check_content(account.platform, caps)?;
    // Nobody has written in a thread that does not exist yet: where the platform has a
    // window, only what it allows outside one (a WhatsApp template) can open it.
    draft.check_window(account.platform, caps, None, super::now())?;
    let outbound = draft.to_outbound(None);
    let budget = inbox_core::BudgetCall::new(
        account.platform,
        inbox_core::BudgetOperation::Send,
        &account.platform_account_id,
    )
    .to_recipient(&participant);
    let started = call_within_budget(state, &budget, &account, &platform, |context| {
        let (platform, participant, outbound) = (&platform, &participant, &outbound);
        async move {
            platform
                .start_conversation(&context, participant, outbound)
                .await
        }
    })
    .await?;
    let (conversation, message) = state
        .store
        .record_started_conversation(NewStartedConversation {
            sender: account_as_sender(&account),
            account,
            platform_conversation_id: started.platform_conversation_id,
            participant: started.participant,
            text: draft.text.clone(),
            attachments: draft.stored_attachments(),
            sent: started.message,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        ConversationStarted {
            conversation: present_conversation(state, conversation),
            message: present_message(message),
        },
    ))
}

/// The error for an account whose credentials stopped working.
pub(crate) fn reauth_required(account: &inbox_core::Account) -> Error {
    Error::ReauthRequired {
        platform: account.platform,
        message: format!(
            "account {} is `reauth_required`; connect it again with POST /api/v1/accounts",
            account.id
        ),
    }
}

/// The conversations routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations, start_conversation))
        .routes(routes!(
            get_conversation,
            update_conversation,
            put_conversation
        ))
        .routes(routes!(mark_conversation_read))
}
