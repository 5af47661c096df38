//! The Bluesky chat adapter: [`Bluesky`] implements [`inbox_core::Platform`] for accounts
//! connected with an app password that has DM access.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod config;
mod normalize;
mod wire;

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use inbox_core::{
    AccountContext, BudgetCall, BudgetOperation, BudgetScope, Capabilities, ConnectedAccount,
    ConversationTarget, Credentials, Error, FetchedMedia, HandshakeResponse, InboundEvent,
    InboundMode, InboundSetup, OAuthCallback, OAuthRequest, OutboundMessage, Participant, Platform,
    PlatformKind, PollBatch, RateBudget, RefreshPolicy, RefreshedCredentials, Result, SentMessage,
    StartedConversation, TextLimit, TextUnit, Timestamp, WebhookRequest, WindowRule,
};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Api, Call, CallError, to_core};
pub use crate::config::{BlueskyConfig, BlueskyConfigBuilder, CHAT_PROXY, DEFAULT_SERVICE};

const PLATFORM: PlatformKind = PlatformKind::Bluesky;

/// `messageInput.text`: at most 1000 graphemes (`chat.bsky.convo.defs`).
pub const GRAPHEME_LIMIT: usize = 1000;

/// `messageInput.text`: at most 10,000 UTF-8 bytes (`maxLength`).
pub const BYTE_LIMIT: usize = 10_000;

/// The gateway's pacing of each account's `getLog` polls (one every 10 s): the chat
/// service's limits are undocumented, and Bluesky's own app polls once a minute.
pub const LOG_POLLS: &str = "log_polls";

/// Every call to a bsky-hosted PDS: 3000 per 5 minutes per IP
/// (<https://docs.bsky.app/docs/advanced-guides/rate-limits>), counted for the whole gateway.
pub const PDS_REQUESTS: &str = "pds_requests";

/// When an access JWT without a readable `exp` is treated as lapsing (the reference PDS issues
/// them for 120 minutes).
const DEFAULT_ACCESS_LIFETIME: Duration = Duration::from_secs(100 * 60);

/// The stored session: which PDS holds the account, and the access/refresh JWT pair from
/// `createSession` (done once, at connect: logins are limited to 30 per 5 minutes and 300 a
/// day) or the latest `refreshSession`. The app password is not kept.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    did: String,
    handle: String,
    pds: String,
    access_jwt: String,
    refresh_jwt: String,
}

/// The Bluesky adapter. Holds no per-account state.
#[derive(Debug)]
pub struct Bluesky {
    config: BlueskyConfig,
    api: Api,
    capabilities: Capabilities,
}

impl Bluesky {
    /// Builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// `Internal` when the HTTP client cannot be built.
    pub fn new(config: BlueskyConfig) -> Result<Self> {
        Ok(Self {
            api: Api::new(&config)?,
            capabilities: capabilities(&config),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &BlueskyConfig {
        &self.config
    }

    fn session(account: &AccountContext) -> Result<Session> {
        account.credentials.parse(PLATFORM)
    }

    /// A chat method through the PDS.
    async fn chat<T: serde::de::DeserializeOwned>(
        &self,
        session: &Session,
        method: Method,
        nsid: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        budget: Option<BudgetCall<'_>>,
    ) -> std::result::Result<T, CallError> {
        let idempotent = method == Method::GET;
        self.api
            .xrpc(
                &session.pds,
                method,
                nsid,
                Some(&session.access_jwt),
                query,
                body,
                Call {
                    chat: true,
                    idempotent,
                    budget,
                },
            )
            .await
    }

    /// The account's display name: its profile's `displayName`, else its handle.
    async fn display_name(&self, session: &Session) -> String {
        let profile: std::result::Result<wire::Profile, _> = self
            .api
            .xrpc(
                &session.pds,
                Method::GET,
                "app.bsky.actor.getProfile",
                Some(&session.access_jwt),
                &[("actor", session.did.clone())],
                None,
                Call {
                    chat: false,
                    idempotent: true,
                    budget: None,
                },
            )
            .await;
        profile
            .ok()
            .and_then(|p| p.display_name)
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| session.handle.clone())
    }

    /// The members of a conversation (`getConvo`), for logs that do not name them.
    async fn members(
        &self,
        session: &Session,
        convo: &str,
        budget: BudgetCall<'_>,
    ) -> Option<Vec<wire::Profile>> {
        match self
            .chat::<wire::ConvoOutput>(
                session,
                Method::GET,
                "chat.bsky.convo.getConvo",
                &[("convoId", convo.to_owned())],
                None,
                Some(budget),
            )
            .await
        {
            Ok(output) => Some(output.convo.members),
            Err(err) => {
                tracing::warn!(convo, error = %err, "looking up a Bluesky conversation's members failed");
                None
            }
        }
    }
}

/// What Bluesky chat can do, as the gateway checks it before calling.
fn capabilities(config: &BlueskyConfig) -> Capabilities {
    Capabilities {
        text_limits: vec![
            TextLimit {
                max: GRAPHEME_LIMIT,
                unit: TextUnit::Graphemes,
            },
            TextLimit {
                max: BYTE_LIMIT,
                unit: TextUnit::Bytes,
            },
        ],
        caption_limits: None,
        window: WindowRule::None,
        // DMs carry text and post embeds; there are no media attachments.
        outbound_attachments: Vec::new(),
        max_outbound_attachments: 0,
        inbound_modes: vec![InboundMode::Polling],
        reply_threading: true,
        mark_read: true,
        start_conversation: true,
        message_tags: false,
        templates: false,
        credential_refresh: Some(RefreshPolicy {
            lead_time: config.refresh_lead(),
            min_age: Duration::ZERO,
        }),
        oauth: None,
        profile_lookup: false,
        rate_budgets: vec![
            RateBudget::new(
                LOG_POLLS,
                BudgetScope::Account,
                BudgetOperation::Read,
                1,
                Duration::from_secs(10),
            ),
            RateBudget::new(
                PDS_REQUESTS,
                BudgetScope::App,
                BudgetOperation::Any,
                3000,
                Duration::from_secs(300),
            )
            .with_burst(100),
        ],
    }
}

/// The `exp` claim of a JWT, read without checking its signature (only the PDS can, and the
/// gateway only needs to know when to refresh).
fn jwt_expiry(jwt: &str) -> Option<Timestamp> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    Some(Timestamp::from_unix_seconds(claims.get("exp")?.as_i64()?))
}

fn expiry_of(access_jwt: &str) -> Timestamp {
    jwt_expiry(access_jwt).unwrap_or_else(|| Timestamp::now() + DEFAULT_ACCESS_LIFETIME)
}

/// The PDS endpoint of a DID document (`service[#atproto_pds].serviceEndpoint`).
fn pds_of(did_doc: Option<&Value>) -> Option<String> {
    did_doc?
        .get("service")?
        .as_array()?
        .iter()
        .find(|s| {
            s.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| id.ends_with("#atproto_pds"))
        })?
        .get("serviceEndpoint")?
        .as_str()
        .and_then(|url| config::service_url("didDoc", url).ok())
}

/// Which of a message's limits Bluesky says it exceeded (lexicon validation wording:
/// "must not be longer than 1000 graphemes" / "… 10000 characters").
fn too_long(message: &str, text: &str) -> Option<Error> {
    let lower = message.to_ascii_lowercase();
    if !lower.contains("longer than") && !lower.contains("too long") {
        return None;
    }
    let (limit, unit) = if lower.contains("grapheme") {
        (GRAPHEME_LIMIT, TextUnit::Graphemes)
    } else {
        (BYTE_LIMIT, TextUnit::Bytes)
    };
    Some(Error::MessageTooLong {
        platform: PLATFORM,
        limit,
        unit,
        actual: unit.measure(text),
    })
}

fn sent(view: wire::MessageView) -> SentMessage {
    SentMessage {
        timestamp: view
            .sent_at
            .as_deref()
            .and_then(|at| Timestamp::parse_rfc3339(at).ok())
            .unwrap_or_else(Timestamp::now),
        platform_message_id: view.id,
    }
}

fn credential_text<'a>(credentials: &'a Value, field: &str) -> Result<&'a str> {
    let param = format!("credentials.{field}");
    match credentials.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
        Some(Value::String(_)) => Err(Error::invalid(param, format!("`{field}` is blank"))),
        Some(_) => Err(Error::invalid(param, format!("`{field}` must be a string"))),
        None => Err(Error::invalid(
            param,
            format!(
                "Bluesky credentials need `identifier` (handle, DID or email) and \
                 `appPassword` (an app password with DM access); `{field}` is missing"
            ),
        )),
    }
}

#[async_trait]
impl Platform for Bluesky {
    fn kind(&self) -> PlatformKind {
        PLATFORM
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn connect(&self, credentials: &Value) -> Result<ConnectedAccount> {
        let identifier = credential_text(credentials, "identifier")?;
        let password = credential_text(credentials, "appPassword")?;
        let service = match credentials.get("service") {
            None | Some(Value::Null) => self.config.service().to_owned(),
            Some(Value::String(s)) => config::service_url("credentials.service", s)?,
            Some(_) => {
                return Err(Error::invalid(
                    "credentials.service",
                    "`service` must be the PDS URL, such as https://bsky.social",
                ));
            }
        };
        // The one login: sessions are persisted and refreshed from here on.
        let created: wire::Session = self
            .api
            .xrpc(
                &service,
                Method::POST,
                "com.atproto.server.createSession",
                None,
                &[],
                Some(&json!({"identifier": identifier, "password": password})),
                Call {
                    chat: false,
                    idempotent: false,
                    budget: None,
                },
            )
            .await
            .map_err(|err| match err {
                CallError::Xrpc { error, message, .. }
                    if matches!(
                        error.as_str(),
                        "AuthenticationRequired"
                            | "InvalidRequest"
                            | "AccountTakedown"
                            | "AuthFactorTokenRequired"
                    ) =>
                {
                    Error::invalid(
                        "credentials.appPassword",
                        format!("Bluesky refused the login ({error}: {message})"),
                    )
                }
                other => to_core(other),
            })?;
        let session = Session {
            pds: pds_of(created.did_doc.as_ref()).unwrap_or(service),
            did: created.did,
            handle: created.handle,
            access_jwt: created.access_jwt,
            refresh_jwt: created.refresh_jwt,
        };
        // Chat needs an app password created with "Allow access to your direct messages";
        // without it the PDS refuses every chat call (`InvalidToken: Bad token method`).
        let probe: std::result::Result<wire::LogPage, CallError> = self
            .chat(
                &session,
                Method::GET,
                "chat.bsky.convo.getLog",
                &[],
                None,
                None,
            )
            .await;
        if let Err(err) = probe {
            return Err(match err.name() {
                Some("InvalidToken" | "AuthRequired" | "AuthMissing") => Error::invalid(
                    "credentials.appPassword",
                    format!(
                        "this app password has no access to direct messages ({err}); create one \
                         with \"Allow access to your direct messages\" turned on"
                    ),
                ),
                _ => to_core(err),
            });
        }
        let name = self.display_name(&session).await;
        Ok(ConnectedAccount {
            platform_account_id: session.did.clone(),
            name,
            username: Some(session.handle.clone()),
            credentials_expire_at: Some(expiry_of(&session.access_jwt)),
            credentials: Credentials::from_value(&session)?,
        })
    }

    async fn start_inbound(
        &self,
        account: &AccountContext,
        _setup: &InboundSetup,
    ) -> Result<InboundMode> {
        tracing::info!(account = %account.id, "Bluesky inbound: polling chat.bsky.convo.getLog");
        Ok(InboundMode::Polling)
    }

    async fn stop_inbound(&self, _account: &AccountContext) -> Result<()> {
        Ok(())
    }

    fn handshake(&self, _request: &WebhookRequest<'_>) -> Result<HandshakeResponse> {
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "webhook handshakes",
        })
    }

    fn verify_webhook(
        &self,
        _request: &WebhookRequest<'_>,
        _account: Option<&AccountContext>,
    ) -> Result<()> {
        Err(Error::WebhookVerification {
            message: "Bluesky chat has no webhooks".into(),
        })
    }

    fn parse_inbound(&self, payload: &[u8]) -> Result<Vec<InboundEvent>> {
        normalize::parse(payload)
    }

    /// `getLog` from the cursor (the official client's algorithm, social-app
    /// `MessagesEventBus`): a first poll only takes the current cursor, so connecting does not
    /// replay history; later polls keep the entries whose `rev` is past the cursor (revs sort
    /// as strings) and move the cursor to the newest.
    async fn poll(&self, account: &AccountContext, cursor: Option<&str>) -> Result<PollBatch> {
        let session = Self::session(account)?;
        let budget = BudgetCall::new(PLATFORM, BudgetOperation::Read, &session.did);
        let query = match cursor {
            Some(c) if c != "0" => vec![("cursor", c.to_owned())],
            _ => Vec::new(),
        };
        let page: wire::LogPage = self
            .chat(
                &session,
                Method::GET,
                "chat.bsky.convo.getLog",
                &query,
                None,
                Some(budget),
            )
            .await
            .map_err(|err| {
                tracing::warn!(account = %account.id, error = %err, "Bluesky getLog poll failed; the cursor stays");
                to_core(err)
            })?;
        let rev = |log: &Value| log.get("rev").and_then(Value::as_str).map(str::to_owned);
        let Some(cursor) = cursor else {
            // "0" when the account has no log at all yet: every later entry is new.
            let current = page
                .cursor
                .clone()
                .into_iter()
                .chain(page.logs.iter().filter_map(rev))
                .max()
                .unwrap_or_else(|| "0".to_owned());
            return Ok(PollBatch {
                payloads: Vec::new(),
                next_cursor: Some(current),
            });
        };
        let fresh: Vec<Value> = page
            .logs
            .into_iter()
            .filter(|log| rev(log).is_none_or(|r| r.as_str() > cursor))
            .collect();
        let next = fresh
            .iter()
            .filter_map(rev)
            .chain(page.cursor.filter(|c| c.as_str() > cursor))
            .chain(std::iter::once(cursor.to_owned()))
            .max()
            .unwrap_or_else(|| cursor.to_owned());
        if fresh.is_empty() {
            return Ok(PollBatch {
                payloads: Vec::new(),
                next_cursor: Some(next),
            });
        }
        // Names: the entries' relatedProfiles, else the conversation's members.
        let mut members: HashMap<String, Vec<wire::Profile>> = HashMap::new();
        for log in fresh.iter().filter(|log| normalize::is_create(log)) {
            let Some(convo) = log.get("convoId").and_then(Value::as_str) else {
                continue;
            };
            if normalize::names_other_member(&session.did, log) || members.contains_key(convo) {
                continue;
            }
            if let Some(found) = self.members(&session, convo, budget).await {
                members.insert(convo.to_owned(), found);
            }
        }
        let payload = json!({
            "did": session.did,
            "polledAt": Timestamp::now(),
            "logs": fresh,
            "members": members,
        });
        Ok(PollBatch {
            payloads: vec![
                serde_json::to_vec(&payload)
                    .map_err(|err| Error::internal("a polled log does not serialise", err))?,
            ],
            next_cursor: Some(next),
        })
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
                message: "Bluesky DMs are text only".into(),
            });
        }
        if message.text.is_empty() {
            return Err(Error::invalid("message", "a Bluesky message needs text"));
        }
        let session = Self::session(account)?;
        let mut input = json!({"text": message.text});
        if let Some(reply_to) = &message.reply_to_platform_message_id {
            input["replyTo"] = json!({"messageId": reply_to});
        }
        let budget = BudgetCall::new(PLATFORM, BudgetOperation::Send, &session.did)
            .in_conversation(&target.platform_conversation_id);
        let body = json!({"convoId": target.platform_conversation_id, "message": input});
        match self
            .chat::<wire::MessageView>(
                &session,
                Method::POST,
                "chat.bsky.convo.sendMessage",
                &[],
                Some(&body),
                Some(budget),
            )
            .await
        {
            Ok(view) => Ok(sent(view)),
            Err(CallError::Xrpc {
                error,
                message: text,
                ..
            }) if too_long(&text, &message.text).is_some() && error == "InvalidRequest" => {
                Err(too_long(&text, &message.text).unwrap_or_else(|| Error::internal_msg(text)))
            }
            Err(err) => Err(to_core(err)),
        }
    }

    async fn start_conversation(
        &self,
        account: &AccountContext,
        participant: &str,
        message: &OutboundMessage,
    ) -> Result<StartedConversation> {
        let session = Self::session(account)?;
        let wanted = participant.trim().trim_start_matches('@');
        let did = if wanted.starts_with("did:") {
            wanted.to_owned()
        } else if wanted.contains('.') && !wanted.contains(['/', '?', '#', ' ']) {
            let resolved: wire::ResolvedHandle = self
                .api
                .xrpc(
                    &session.pds,
                    Method::GET,
                    "com.atproto.identity.resolveHandle",
                    Some(&session.access_jwt),
                    &[("handle", wanted.to_owned())],
                    None,
                    Call {
                        chat: false,
                        idempotent: true,
                        budget: None,
                    },
                )
                .await
                .map_err(|err| match err.name() {
                    Some("InvalidRequest" | "HandleNotFound") => {
                        Error::invalid("participant", format!("Bluesky has no handle `{wanted}`"))
                    }
                    _ => to_core(err),
                })?;
            resolved.did
        } else {
            return Err(Error::invalid(
                "participant",
                "a Bluesky participant is a handle (alice.bsky.social) or a DID",
            ));
        };
        // Gets or creates the one-to-one conversation.
        let convo: wire::ConvoOutput = self
            .chat(
                &session,
                Method::GET,
                "chat.bsky.convo.getConvoForMembers",
                &[("members", did.clone())],
                None,
                Some(BudgetCall::new(
                    PLATFORM,
                    BudgetOperation::Any,
                    &session.did,
                )),
            )
            .await
            .map_err(to_core)?;
        let target = ConversationTarget {
            platform_conversation_id: convo.convo.id.clone(),
            participant_id: did.clone(),
            last_inbound_platform_message_id: None,
        };
        let sent = self.send(account, &target, message).await?;
        let profile = convo.convo.members.iter().find(|m| m.did == did);
        Ok(StartedConversation {
            platform_conversation_id: convo.convo.id,
            participant: normalize::participant(&did, profile),
            message: sent,
        })
    }

    async fn mark_read(&self, account: &AccountContext, target: &ConversationTarget) -> Result<()> {
        let session = Self::session(account)?;
        let mut body = json!({"convoId": target.platform_conversation_id});
        if let Some(last) = &target.last_inbound_platform_message_id {
            body["messageId"] = json!(last);
        }
        let _: Value = self
            .chat(
                &session,
                Method::POST,
                "chat.bsky.convo.updateRead",
                &[],
                Some(&body),
                Some(
                    BudgetCall::new(PLATFORM, BudgetOperation::Any, &session.did)
                        .in_conversation(&target.platform_conversation_id),
                ),
            )
            .await
            .map_err(to_core)?;
        Ok(())
    }

    async fn refresh_credentials(&self, account: &AccountContext) -> Result<RefreshedCredentials> {
        let current = Self::session(account)?;
        let renewed: wire::Session = self
            .api
            .xrpc(
                &current.pds,
                Method::POST,
                "com.atproto.server.refreshSession",
                Some(&current.refresh_jwt),
                &[],
                None,
                // Not retried after a timeout: the refresh JWT rotates on use.
                Call {
                    chat: false,
                    idempotent: false,
                    budget: None,
                },
            )
            .await
            .map_err(to_core)?;
        let session = Session {
            pds: pds_of(renewed.did_doc.as_ref()).unwrap_or(current.pds),
            did: renewed.did,
            handle: renewed.handle,
            access_jwt: renewed.access_jwt,
            refresh_jwt: renewed.refresh_jwt,
        };
        Ok(RefreshedCredentials {
            expires_at: Some(expiry_of(&session.access_jwt)),
            credentials: Credentials::from_value(&session)?,
        })
    }

    fn oauth_authorize_url(&self, _request: &OAuthRequest) -> Result<String> {
        // Bluesky's OAuth (PAR + DPoP) is "not currently recommended" for headless clients;
        // accounts connect with an app password.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "connecting through OAuth",
        })
    }

    async fn oauth_exchange(&self, _callback: &OAuthCallback) -> Result<Vec<ConnectedAccount>> {
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "connecting through OAuth",
        })
    }

    async fn fetch_participant(
        &self,
        _account: &AccountContext,
        _participant_id: &str,
    ) -> Result<Participant> {
        // Polls embed the conversation's members whenever a log entry lacks their names.
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "looking up profiles",
        })
    }

    async fn fetch_attachment(
        &self,
        _account: &AccountContext,
        _url: &str,
    ) -> Result<FetchedMedia> {
        Err(Error::NotSupported {
            platform: PLATFORM,
            operation: "attachments (Bluesky DMs carry none)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_expiry_is_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD
            .encode(br#"{"scope":"com.atproto.appPassPrivileged","exp":1767323045}"#);
        let jwt = format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln");
        assert_eq!(
            jwt_expiry(&jwt),
            Some(Timestamp::from_unix_seconds(1_767_323_045))
        );
        assert_eq!(jwt_expiry("not-a-jwt"), None);
    }

    #[test]
    fn the_pds_comes_from_the_did_document() {
        let doc = json!({"service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                                       "serviceEndpoint": "https://morel.us-east.host.bsky.network/"}]});
        assert_eq!(
            pds_of(Some(&doc)).as_deref(),
            Some("https://morel.us-east.host.bsky.network")
        );
        assert_eq!(pds_of(None), None);
    }

    #[test]
    fn length_refusals_name_the_unit() {
        match too_long(
            "Input/message/text must not be longer than 1000 graphemes",
            "x",
        ) {
            Some(Error::MessageTooLong { unit, limit, .. }) => {
                assert_eq!((unit, limit), (TextUnit::Graphemes, 1000));
            }
            other => panic!("{other:?}"),
        }
        match too_long(
            "Input/message/text must not be longer than 10000 characters",
            "x",
        ) {
            Some(Error::MessageTooLong { unit, .. }) => assert_eq!(unit, TextUnit::Bytes),
            other => panic!("{other:?}"),
        }
        assert!(too_long("convo is locked", "x").is_none());
    }
}
