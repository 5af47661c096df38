//! The X (Twitter) direct-message adapter: [`X`] implements [`inbox_core::Platform`] for user
//! accounts connected with OAuth 2.0.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod config;
mod normalize;
mod poll;
mod webhook;
mod wire;

use std::time::Duration;

use async_trait::async_trait;
use inbox_core::{
    AccountContext, BudgetCall, BudgetOperation, BudgetScope, Capabilities, ConnectedAccount,
    ConversationTarget, Credentials, Error, FetchedMedia, HandshakeResponse, InboundEvent,
    InboundMode, InboundSetup, OAuthCallback, OAuthFlow, OAuthRequest, OutboundMessage,
    Participant, Platform, PlatformKind, PollBatch, RateBudget, RefreshPolicy,
    RefreshedCredentials, Result, SentMessage, StartedConversation, TextLimit, TextUnit, Timestamp,
    WebhookRequest, WindowRule,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Api, Call, CallError, to_core};
pub use crate::{
    config::{DEFAULT_API_BASE, DEFAULT_AUTHORIZE_URL, SCOPES, XConfig, XConfigBuilder},
    webhook::{SIGNATURE_HEADER, sign as sign_webhook},
};

const PLATFORM: PlatformKind = PlatformKind::X;

/// X's DM text limit in characters. The OpenAPI document gives only `minLength: 1`; 10,000
/// is what X's clients and tweepy document (UNCONFIRMED officially).
pub const TEXT_LIMIT: usize = 10_000;

/// The per-user budget of DM lookups (`GET /2/dm_events`: 15 requests per 15 minutes,
/// <https://docs.x.com/x-api/fundamentals/rate-limits>). Polls draw from it, so it sets the
/// poll cadence: one a minute.
pub const DM_LOOKUPS: &str = "dm_lookups";

/// The per-user budget of DM sends (15 per 15 minutes).
pub const DM_SENDS: &str = "dm_sends";

/// How long an access token lives when X does not say (`expires_in` 7200 s).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(7200);

/// The stored credentials: the OAuth 2.0 pair, when the access token lapses, and the user id.
/// Refresh tokens are single-use, so a refreshed document replaces the old one before use.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct XCredentials {
    access_token: String,
    refresh_token: String,
    expires_at: Timestamp,
    #[serde(default)]
    user_id: Option<String>,
}

/// The X adapter. Holds no per-account state.
#[derive(Debug)]
pub struct X {
    config: XConfig,
    api: Api,
    capabilities: Capabilities,
}

impl X {
    /// Builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// `Internal` when the HTTP client cannot be built.
    pub fn new(config: XConfig) -> Result<Self> {
        Ok(Self {
            api: Api::new(&config)?,
            capabilities: capabilities(&config),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &XConfig {
        &self.config
    }

    fn credentials(account: &AccountContext) -> Result<XCredentials> {
        account.credentials.parse(PLATFORM)
    }

    /// `GET /2/users/me`: who the token belongs to.
    async fn me(&self, access_token: &str) -> std::result::Result<wire::User, CallError> {
        let me: wire::Data<wire::User> = self
            .api
            .get(
                "/2/users/me",
                access_token,
                &[("user.fields", USER_FIELDS.to_owned())],
                Call {
                    idempotent: true,
                    budget: None,
                },
            )
            .await?;
        Ok(me.data)
    }

    /// Trades a refresh token for a new pair (the old refresh token is spent).
    async fn refresh(&self, refresh_token: &str) -> Result<XCredentials> {
        let response = self
            .api
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .await
            .map_err(|err| match &err {
                // 400 (`invalid_request`: "Value passed for the token was invalid", or
                // `invalid_grant`): the token was spent or revoked; it never works again.
                CallError::Status { status, .. } if status.as_u16() == 400 => {
                    Error::ReauthRequired {
                        platform: PLATFORM,
                        message: format!("X refused the refresh token: {}", err.message()),
                    }
                }
                _ if err.oauth_error() == Some("invalid_grant") => Error::ReauthRequired {
                    platform: PLATFORM,
                    message: format!("X refused the refresh token: {}", err.message()),
                },
                _ => to_core(err),
            })?;
        Ok(tokens(response, Some(refresh_token)))
    }
}

/// The user fields asked for wherever users are returned.
const USER_FIELDS: &str = "name,username,profile_image_url";

fn tokens(response: wire::TokenResponse, previous_refresh: Option<&str>) -> XCredentials {
    let lifetime = response
        .expires_in
        .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
    XCredentials {
        access_token: response.access_token,
        // X rotates the refresh token on every use; keep the old one only if none came.
        refresh_token: response
            .refresh_token
            .or_else(|| previous_refresh.map(str::to_owned))
            .unwrap_or_default(),
        expires_at: Timestamp::now() + lifetime,
        user_id: None,
    }
}

/// What X can do, as the gateway checks it before calling.
fn capabilities(config: &XConfig) -> Capabilities {
    let window = Duration::from_secs(15 * 60);
    Capabilities {
        text_limits: vec![TextLimit {
            max: TEXT_LIMIT,
            unit: TextUnit::Chars,
        }],
        caption_limits: None,
        window: WindowRule::None,
        // Media must first be uploaded by the sending user (`POST /2/media/upload`, scope
        // `media.write`); the gateway sends text.
        outbound_attachments: Vec::new(),
        max_outbound_attachments: 0,
        inbound_modes: if config.consumer_secret().is_some() {
            vec![InboundMode::WebhookPerApp]
        } else {
            vec![InboundMode::Polling]
        },
        reply_threading: false,
        mark_read: false,
        start_conversation: true,
        message_tags: false,
        templates: false,
        credential_refresh: Some(RefreshPolicy {
            lead_time: config.refresh_lead(),
            min_age: Duration::ZERO,
        }),
        oauth: Some(OAuthFlow { pkce: true }),
        profile_lookup: false,
        // <https://docs.x.com/x-api/fundamentals/rate-limits>
        rate_budgets: vec![
            RateBudget::new(
                DM_LOOKUPS,
                BudgetScope::Account,
                BudgetOperation::Read,
                15,
                window,
            ),
            RateBudget::new(
                DM_SENDS,
                BudgetScope::Account,
                BudgetOperation::Send,
                15,
                window,
            ),
            RateBudget::new(
                "dm_sends_daily",
                BudgetScope::Account,
                BudgetOperation::Send,
                1440,
                Duration::from_secs(86_400),
            ),
            RateBudget::new(
                "dm_sends_app_daily",
                BudgetScope::App,
                BudgetOperation::Send,
                1440,
                Duration::from_secs(86_400),
            ),
        ],
    }
}

/// A string field of the credentials document, trimmed and non-empty.
fn text_field<'a>(credentials: &'a Value, field: &str) -> Result<&'a str> {
    let param = format!("credentials.{field}");
    match credentials.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
        Some(Value::String(_)) => Err(Error::invalid(param, format!("`{field}` is blank"))),
        Some(_) => Err(Error::invalid(param, format!("`{field}` must be a string"))),
        None => Err(Error::invalid(
            param,
            format!(
                "X credentials need `accessToken`, `refreshToken` and `expiresAt` from the \
                 OAuth 2.0 flow (with `offline.access`); `{field}` is missing"
            ),
        )),
    }
}

/// `expiresAt`: RFC 3339, or unix seconds (milliseconds when it is that large).
fn expiry_field(credentials: &Value) -> Result<Timestamp> {
    const PARAM: &str = "credentials.expiresAt";
    match credentials.get("expiresAt") {
        Some(Value::String(s)) => Timestamp::parse_rfc3339(s.trim())
            .map_err(|_| Error::invalid(PARAM, "`expiresAt` must be RFC 3339 or unix seconds")),
        Some(Value::Number(n)) => {
            let n = n
                .as_i64()
                .filter(|n| *n > 0)
                .ok_or_else(|| Error::invalid(PARAM, "`expiresAt` must be a positive number"))?;
            Ok(if n > 100_000_000_000 {
                Timestamp::from_unix_millis(n)
            } else {
                Timestamp::from_unix_seconds(n)
            })
        }
        Some(_) => Err(Error::invalid(
            PARAM,
            "`expiresAt` must be RFC 3339 or unix seconds",
        )),
        None => Err(Error::invalid(
            PARAM,
            "X credentials need `expiresAt`, when the access token lapses",
        )),
    }
}

/// A path segment that is an X id (digits) or a one-to-one conversation id (`digits-digits`).
fn safe_id(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

/// Whether a 400 from a DM send is X refusing the text's length. X's exact wording is
/// undocumented (UNCONFIRMED), so any validation error about `text` being too long counts.
fn refuses_length(error: &CallError) -> bool {
    let CallError::Status { status, .. } = error else {
        return false;
    };
    let message = error.message().to_ascii_lowercase();
    status.as_u16() == 400
        && message.contains("text")
        && ["long", "length", "characters", "10000"]
            .iter()
            .any(|w| message.contains(w))
}

fn participant_of(user: &wire::User) -> Participant {
    Participant {
        id: user.id.clone(),
        name: user
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| user.username.clone())
            .unwrap_or_else(|| user.id.clone()),
        username: user.username.clone(),
        picture: user.profile_image_url.clone(),
    }
}

#[async_trait]
impl Platform for X {
    fn kind(&self) -> PlatformKind {
        PLATFORM
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn connect(&self, credentials: &Value) -> Result<ConnectedAccount> {
        let access = text_field(credentials, "accessToken")?;
        let refresh = text_field(credentials, "refreshToken")?;
        let expires_at = expiry_field(credentials)?;
        let mut stored = XCredentials {
            access_token: access.to_owned(),
            refresh_token: refresh.to_owned(),
            expires_at,
            user_id: None,
        };
        // An access token about to lapse is renewed first (the refresh token is then spent,
        // and the new pair is what gets stored).
        if expires_at <= Timestamp::now() + Duration::from_secs(60) {
            stored = self.refresh(refresh).await.map_err(refused_refresh)?;
        }
        let me = match self.me(&stored.access_token).await {
            Ok(me) => me,
            Err(CallError::Status { status, .. }) if status.as_u16() == 401 => {
                stored = self
                    .refresh(&stored.refresh_token)
                    .await
                    .map_err(refused_refresh)?;
                self.me(&stored.access_token).await.map_err(|err| {
                    Error::invalid(
                        "credentials.accessToken",
                        format!("X refused the access token: {}", err.message()),
                    )
                })?
            }
            Err(err) => return Err(to_core(err)),
        };
        stored.user_id = Some(me.id.clone());
        Ok(ConnectedAccount {
            name: participant_of(&me).name,
            username: me.username.clone(),
            platform_account_id: me.id,
            credentials_expire_at: Some(stored.expires_at),
            credentials: Credentials::from_value(&stored)?,
        })
    }

    async fn start_inbound(
        &self,
        account: &AccountContext,
        _setup: &InboundSetup,
    ) -> Result<InboundMode> {
        if self.config.consumer_secret().is_some() {
            // The operator registers `{INBOX_PUBLIC_URL}/webhooks/x` with X and subscribes the
            // user (Account Activity needs OAuth 1.0a user tokens; X Activity a subscription
            // per user); events are routed by `for_user_id` / `filter.user_id`.
            tracing::info!(account = %account.id, "X inbound: app webhook");
            Ok(InboundMode::WebhookPerApp)
        } else {
            tracing::info!(account = %account.id, "X inbound: polling GET /2/dm_events");
            Ok(InboundMode::Polling)
        }
    }

    async fn stop_inbound(&self, _account: &AccountContext) -> Result<()> {
        Ok(())
    }

    fn handshake(&self, request: &WebhookRequest<'_>) -> Result<HandshakeResponse> {
        let Some(secret) = self.config.consumer_secret() else {
            return Err(Error::NotSupported {
                platform: PLATFORM,
                operation: "webhook handshakes without INBOX_X_CONSUMER_SECRET",
            });
        };
        Ok(HandshakeResponse {
            content_type: "application/json",
            body: webhook::crc_response(secret, request.query)?,
        })
    }

    fn verify_webhook(
        &self,
        request: &WebhookRequest<'_>,
        _account: Option<&AccountContext>,
    ) -> Result<()> {
        let Some(secret) = self.config.consumer_secret() else {
            return Err(Error::WebhookVerification {
                message: "X webhooks are off (no INBOX_X_CONSUMER_SECRET)".into(),
            });
        };
        webhook::verify(secret, request.headers, request.body)
    }

    fn parse_inbound(&self, payload: &[u8]) -> Result<Vec<InboundEvent>> {
        normalize::parse(payload)
    }

    async fn poll(&self, account: &AccountContext, cursor: Option<&str>) -> Result<PollBatch> {
        if self.config.consumer_secret().is_some() {
            return Err(Error::NotSupported {
                platform: PLATFORM,
                operation: "polling while X webhooks are configured",
            });
        }
        let credentials = Self::credentials(account)?;
        poll::poll(
            &self.api,
            account,
            &credentials.access_token,
            cursor,
            self.config.max_pages(),
        )
        .await
    }

    async fn send(
        &self,
        account: &AccountContext,
        target: &ConversationTarget,
        message: &OutboundMessage,
    ) -> Result<SentMessage> {
        if !message.attachments.is_empty()
            || message.template.is_some()
            || message.message_tag.is_some()
        {
            return Err(Error::UnsupportedContent {
                message: "X DMs take text here; no attachments, templates or tags".into(),
            });
        }
        if message.text.is_empty() {
            return Err(Error::invalid("message", "an X DM needs text"));
        }
        let credentials = Self::credentials(account)?;
        let path = if safe_id(&target.platform_conversation_id) {
            format!(
                "/2/dm_conversations/{}/messages",
                target.platform_conversation_id
            )
        } else if safe_id(&target.participant_id) && !target.participant_id.contains('-') {
            format!(
                "/2/dm_conversations/with/{}/messages",
                target.participant_id
            )
        } else {
            return Err(Error::invalid(
                "conversation",
                "not an X conversation or user id",
            ));
        };
        let sent = self
            .send_dm(account, &credentials, &path, &message.text, Some(target))
            .await?;
        Ok(SentMessage {
            platform_message_id: sent.dm_event_id,
            timestamp: Timestamp::now(),
        })
    }

    async fn start_conversation(
        &self,
        account: &AccountContext,
        participant: &str,
        message: &OutboundMessage,
    ) -> Result<StartedConversation> {
        if !message.attachments.is_empty() || message.text.is_empty() {
            return Err(Error::UnsupportedContent {
                message: "an X DM starts with text".into(),
            });
        }
        let credentials = Self::credentials(account)?;
        let handle = participant.trim().trim_start_matches('@');
        let lookup = if !handle.is_empty() && handle.bytes().all(|b| b.is_ascii_digit()) {
            format!("/2/users/{handle}")
        } else if !handle.is_empty()
            && handle.len() <= 15
            && handle
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            format!("/2/users/by/username/{handle}")
        } else {
            return Err(Error::invalid(
                "participant",
                "an X participant is a user id or a username (letters, digits, `_`)",
            ));
        };
        // A user that does not exist is a 200 with `errors` and no `data`.
        let found: Value = self
            .api
            .get(
                &lookup,
                &credentials.access_token,
                &[("user.fields", USER_FIELDS.to_owned())],
                Call {
                    idempotent: true,
                    budget: None,
                },
            )
            .await
            .map_err(to_core)?;
        let user: wire::User = found
            .get("data")
            .cloned()
            .and_then(|data| serde_json::from_value(data).ok())
            .ok_or_else(|| {
                Error::invalid("participant", format!("X has no user `{participant}`"))
            })?;
        let path = format!("/2/dm_conversations/with/{}/messages", user.id);
        let sent = self
            .send_dm(account, &credentials, &path, &message.text, None)
            .await?;
        Ok(StartedConversation {
            platform_conversation_id: sent.dm_conversation_id,
            participant: participant_of(&user),
            message: SentMessage {
                platform_message_id: sent.dm_event_id,
                timestamp: Timestamp::now(),
            },
        })
    }

    async fn mark_read(
        &self,
        _account: &AccountContext,
        _target: &ConversationTarget,
    ) -> Result<()> {
        // The v2 API has no read receipts for DMs.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "marking messages read",
        })
    }

    async fn refresh_credentials(&self, account: &AccountContext) -> Result<RefreshedCredentials> {
        let current = Self::credentials(account)?;
        let mut renewed = self.refresh(&current.refresh_token).await?;
        renewed.user_id = current
            .user_id
            .or(Some(account.platform_account_id.clone()));
        Ok(RefreshedCredentials {
            expires_at: Some(renewed.expires_at),
            credentials: Credentials::from_value(&renewed)?,
        })
    }

    fn oauth_authorize_url(&self, request: &OAuthRequest) -> Result<String> {
        let challenge = request
            .code_challenge
            .as_deref()
            .ok_or_else(|| Error::internal_msg("X's OAuth 2.0 flow needs a PKCE code challenge"))?;
        let mut url = url::Url::parse(self.config.authorize_url())
            .map_err(|err| Error::internal("the X authorize URL does not parse", err))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", self.config.client_id())
            .append_pair("redirect_uri", &request.redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", &request.state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    async fn oauth_exchange(&self, callback: &OAuthCallback) -> Result<Vec<ConnectedAccount>> {
        let verifier = callback.code_verifier.as_deref().ok_or_else(|| {
            Error::internal_msg("X's OAuth 2.0 flow needs the PKCE code verifier")
        })?;
        let response = self
            .api
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &callback.code),
                ("redirect_uri", &callback.redirect_uri),
                ("code_verifier", verifier),
            ])
            .await
            .map_err(|err| match err {
                CallError::Status { .. } => Error::invalid(
                    "code",
                    format!("X refused the authorization code: {}", err.message()),
                ),
                other => to_core(other),
            })?;
        if response.refresh_token.is_none() {
            return Err(Error::invalid(
                "code",
                format!(
                    "X issued no refresh token: the grant lacks `offline.access` (granted: {})",
                    response.scope.as_deref().unwrap_or("?")
                ),
            ));
        }
        let mut stored = tokens(response, None);
        let me = self.me(&stored.access_token).await.map_err(to_core)?;
        stored.user_id = Some(me.id.clone());
        Ok(vec![ConnectedAccount {
            name: participant_of(&me).name,
            username: me.username.clone(),
            platform_account_id: me.id,
            credentials_expire_at: Some(stored.expires_at),
            credentials: Credentials::from_value(&stored)?,
        }])
    }

    async fn fetch_participant(
        &self,
        _account: &AccountContext,
        _participant_id: &str,
    ) -> Result<Participant> {
        // Polled pages carry `includes.users`, webhooks a users map: names always arrive.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "looking up profiles",
        })
    }

    async fn fetch_attachment(&self, account: &AccountContext, url: &str) -> Result<FetchedMedia> {
        let reference = url
            .strip_prefix(normalize::MEDIA_SCHEME)
            .filter(|rest| {
                let parts: Vec<_> = rest.split('/').collect();
                parts.len() == 3
                    && parts.iter().all(|p| {
                        !p.is_empty()
                            && *p != ".."
                            && p.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                    })
            })
            .ok_or_else(|| {
                Error::invalid(
                    "url",
                    "X DM media are fetched by `x-dm-media:{dm_id}/{media_id}/{resource_id}`",
                )
            })?;
        let credentials = Self::credentials(account)?;
        let snapshot = self
            .api
            .download(
                &format!("/2/dm_conversations/media/{reference}"),
                &credentials.access_token,
            )
            .await
            .map_err(to_core)?;
        let mime_type = snapshot
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            .filter(|v| !v.is_empty() && v != "application/octet-stream");
        Ok(FetchedMedia {
            bytes: snapshot.body.to_vec(),
            mime_type,
            name: reference.rsplit('/').next().map(str::to_owned),
        })
    }
}

impl X {
    /// `POST` one DM, drawing on the send budget's usage headers and mapping X's refusals.
    async fn send_dm(
        &self,
        account: &AccountContext,
        credentials: &XCredentials,
        path: &str,
        text: &str,
        target: Option<&ConversationTarget>,
    ) -> Result<wire::CreatedDm> {
        let mut budget = BudgetCall::new(
            PLATFORM,
            BudgetOperation::Send,
            &account.platform_account_id,
        );
        if let Some(target) = target {
            budget = budget.in_conversation(&target.platform_conversation_id);
        }
        let call = Call {
            idempotent: false,
            budget: Some((budget, DM_SENDS)),
        };
        match self
            .api
            .post::<wire::Data<wire::CreatedDm>>(
                path,
                &credentials.access_token,
                &json!({"text": text}),
                call,
            )
            .await
        {
            Ok(created) => Ok(created.data),
            Err(err) if refuses_length(&err) => Err(Error::MessageTooLong {
                platform: PLATFORM,
                limit: TEXT_LIMIT,
                unit: TextUnit::Chars,
                actual: TextUnit::Chars.measure(text),
            }),
            Err(err) => Err(to_core(err)),
        }
    }
}

/// A refresh refused while connecting is the customer's credentials at fault.
fn refused_refresh(err: Error) -> Error {
    match err {
        Error::ReauthRequired { message, .. } => {
            Error::invalid("credentials.refreshToken", message)
        }
        other => other,
    }
}
