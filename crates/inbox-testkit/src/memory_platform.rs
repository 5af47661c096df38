//! `MemoryPlatform`: an in-memory [`Platform`] for tests above the adapters (the API, the
//! ingest pipeline). It speaks no wire protocol; instead it records every call, lets a test
//! script failures (revoked credentials, platform refusals, outages, slow sends), and builds
//! inbound payloads for its own `parse_inbound`.
//!
//! Capabilities are configurable, with presets shaped like the real platforms' rules: a
//! Meta-like 24-hour window with `HUMAN_AGENT`, a WhatsApp-like template rule, an X-like
//! platform that may start conversations, and a Telegram-like one without a window.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use inbox_core::{
    AccountContext, AccountId, Attachment, AttachmentKind, Capabilities, ConnectedAccount,
    ConversationTarget, Credentials, Direction, Error, FetchedMedia, HandshakeResponse,
    InboundEvent, InboundKind, InboundMessage, InboundMode, InboundSetup, OAuthCallback, OAuthFlow,
    OAuthRequest, OutboundMessage, Participant, Platform, PlatformKind, PollBatch, RefreshPolicy,
    RefreshedCredentials, Result, SentMessage, StartedConversation, TextLimit, TextUnit, Timestamp,
    WebhookRequest, WindowRule,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// The header a push to a `MemoryPlatform` webhook carries its account's inbound secret in.
pub const SECRET_HEADER: &str = "x-memory-secret";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The operations a failure can be scripted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `connect`.
    Connect,
    /// `send`.
    Send,
    /// `start_conversation`.
    StartConversation,
    /// `mark_read`.
    MarkRead,
    /// `fetch_attachment`.
    FetchAttachment,
    /// `start_inbound`.
    StartInbound,
    /// `stop_inbound`.
    StopInbound,
    /// `refresh_credentials`.
    RefreshCredentials,
    /// `oauth_exchange`.
    OAuthExchange,
    /// `fetch_participant`.
    FetchParticipant,
}

/// A scripted failure; becomes the matching `inbox_core::Error` when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// `Error::ReauthRequired` with this message.
    ReauthRequired(String),
    /// `Error::Platform` with the platform's code and message.
    Platform {
        /// The platform's code.
        code: String,
        /// The platform's message.
        message: String,
    },
    /// `Error::Unavailable`.
    Unavailable {
        /// The retry hint.
        retry_after: Option<Duration>,
    },
    /// `Error::RateLimited`.
    RateLimited(Duration),
    /// Not an error: the adapter panics with this message (an adapter bug), so callers'
    /// panic handling can be tested.
    Panic(String),
    /// `Error::InvalidInput` naming `param`.
    InvalidInput {
        /// The parameter.
        param: String,
        /// The message.
        message: String,
    },
}

impl Failure {
    /// A platform refusal with this code and message.
    pub fn platform(code: &str, message: &str) -> Self {
        Failure::Platform {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    fn to_error(&self, platform: PlatformKind) -> Error {
        match self.clone() {
            Failure::ReauthRequired(message) => Error::ReauthRequired { platform, message },
            Failure::Platform { code, message } => Error::Platform {
                platform,
                code,
                message,
            },
            Failure::Unavailable { retry_after } => Error::Unavailable {
                message: format!("{platform} is unavailable"),
                retry_after,
            },
            Failure::RateLimited(retry_after) => Error::RateLimited { retry_after },
            Failure::InvalidInput { param, message } => Error::invalid(param, message),
            Failure::Panic(message) => panic!("{message}"),
        }
    }
}

/// A recorded `send`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSend {
    /// The gateway account.
    pub account_id: AccountId,
    /// The thread.
    pub target: ConversationTarget,
    /// What was sent.
    pub message: OutboundMessage,
}

/// A recorded `start_conversation`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedStart {
    /// The gateway account.
    pub account_id: AccountId,
    /// Who it was addressed to.
    pub participant: String,
    /// The first message.
    pub message: OutboundMessage,
}

#[derive(Debug, Default)]
struct State {
    sends: Vec<RecordedSend>,
    starts: Vec<RecordedStart>,
    mark_reads: Vec<ConversationTarget>,
    refreshes: Vec<AccountId>,
    oauth_verifiers: Vec<Option<String>>,
    profile_lookups: Vec<String>,
    connects: usize,
    inbound_started: Vec<AccountId>,
    inbound_stopped: Vec<AccountId>,
    failures: HashMap<Operation, VecDeque<Failure>>,
    send_delay: Option<Duration>,
    send_gate: Option<Arc<Semaphore>>,
    media: HashMap<String, FetchedMedia>,
    queued_polls: HashMap<String, VecDeque<Vec<u8>>>,
    next_message: u64,
}

/// An in-memory platform. Share it as `Arc<MemoryPlatform>`: register a clone of the `Arc`
/// (as `Arc<dyn Platform>`) and keep the other to script and inspect.
#[derive(Debug)]
pub struct MemoryPlatform {
    kind: PlatformKind,
    capabilities: Capabilities,
    /// How long issued credentials live, when they expire.
    credential_lifetime: Option<Duration>,
    state: Mutex<State>,
}

impl MemoryPlatform {
    /// A Telegram-like platform: no messaging window, 4096 UTF-16 units of text, 1024 of
    /// caption, one attachment of any common kind, replies threaded, no read call, businesses
    /// cannot write first.
    pub fn new(kind: PlatformKind) -> Self {
        Self::with_capabilities(
            kind,
            Capabilities {
                text_limits: vec![TextLimit {
                    max: 4096,
                    unit: TextUnit::Utf16,
                }],
                caption_limits: Some(vec![TextLimit {
                    max: 1024,
                    unit: TextUnit::Utf16,
                }]),
                window: WindowRule::None,
                outbound_attachments: vec![
                    AttachmentKind::Image,
                    AttachmentKind::Video,
                    AttachmentKind::Audio,
                    AttachmentKind::File,
                    AttachmentKind::Sticker,
                ],
                max_outbound_attachments: 1,
                inbound_modes: vec![InboundMode::WebhookPerAccount, InboundMode::Polling],
                reply_threading: true,
                mark_read: false,
                start_conversation: false,
                message_tags: false,
                templates: false,
                credential_refresh: None,
                oauth: None,
                profile_lookup: false,
                rate_budgets: vec![],
            },
        )
    }

    /// An Instagram/Facebook-like platform: free-form replies within 24 h of the participant's
    /// last message, 7 days with `HUMAN_AGENT`; 1000 characters; image, video, audio or file
    /// attachments without caption (so text limits apply as they are); a read call.
    pub fn meta_like(kind: PlatformKind) -> Self {
        let mut platform = Self::new(kind);
        let caps = &mut platform.capabilities;
        caps.text_limits = vec![TextLimit {
            max: 1000,
            unit: TextUnit::Chars,
        }];
        caps.caption_limits = None;
        caps.window = WindowRule::Window {
            standard: DAY,
            human_agent: Some(7 * DAY),
            templates_outside: false,
        };
        caps.outbound_attachments = vec![
            AttachmentKind::Image,
            AttachmentKind::Video,
            AttachmentKind::Audio,
            AttachmentKind::File,
        ];
        caps.inbound_modes = vec![InboundMode::WebhookPerApp];
        caps.reply_threading = false;
        caps.mark_read = true;
        caps.message_tags = true;
        platform
    }

    /// A WhatsApp-like platform: a 24-hour window outside which only templates may be sent;
    /// 4096 characters of text, 1024 of caption; businesses may write first (with a
    /// template); replies threaded; a read call.
    pub fn whatsapp_like() -> Self {
        let mut platform = Self::new(PlatformKind::Whatsapp);
        let caps = &mut platform.capabilities;
        caps.text_limits = vec![TextLimit {
            max: 4096,
            unit: TextUnit::Chars,
        }];
        caps.caption_limits = Some(vec![TextLimit {
            max: 1024,
            unit: TextUnit::Chars,
        }]);
        caps.window = WindowRule::Window {
            standard: DAY,
            human_agent: None,
            templates_outside: true,
        };
        caps.inbound_modes = vec![InboundMode::WebhookPerApp];
        caps.mark_read = true;
        caps.start_conversation = true;
        caps.templates = true;
        platform
    }

    /// An X/Bluesky/Reddit-like platform: no window, businesses may write first, images only,
    /// 10 000 characters, no read call.
    pub fn open_dm(kind: PlatformKind) -> Self {
        let mut platform = Self::new(kind);
        let caps = &mut platform.capabilities;
        caps.text_limits = vec![TextLimit {
            max: 10_000,
            unit: TextUnit::Chars,
        }];
        caps.caption_limits = None;
        caps.outbound_attachments = vec![AttachmentKind::Image];
        caps.inbound_modes = vec![InboundMode::Polling];
        caps.reply_threading = false;
        caps.start_conversation = true;
        platform
    }

    /// A platform with exactly these capabilities.
    pub fn with_capabilities(kind: PlatformKind, capabilities: Capabilities) -> Self {
        MemoryPlatform {
            kind,
            capabilities,
            credential_lifetime: None,
            state: Mutex::new(State::default()),
        }
    }

    /// Changes the capabilities before the platform is shared.
    pub fn configure(mut self, change: impl FnOnce(&mut Capabilities)) -> Self {
        change(&mut self.capabilities);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // ----- scripting --------------------------------------------------------------------

    /// The next call of `operation` fails with `failure` (failures queue up in order).
    pub fn fail_next(&self, operation: Operation, failure: Failure) {
        self.lock()
            .failures
            .entry(operation)
            .or_default()
            .push_back(failure);
    }

    /// Every `send` waits this long before answering (after it was recorded), to exercise
    /// deadlines.
    pub fn set_send_delay(&self, delay: Option<Duration>) {
        self.lock().send_delay = delay;
    }

    /// Holds every `send` (after it was recorded) until
    /// [`release_sends`](MemoryPlatform::release_sends), so a test can act while a send is in
    /// flight.
    pub fn hold_sends(&self) {
        self.lock().send_gate = Some(Arc::new(Semaphore::new(0)));
    }

    /// Lets held sends (and later ones) go on.
    pub fn release_sends(&self) {
        if let Some(gate) = self.lock().send_gate.take() {
            gate.close();
        }
    }

    /// Makes `fetch_attachment(url)` return `media`.
    pub fn add_media(&self, url: &str, media: FetchedMedia) {
        self.lock().media.insert(url.to_owned(), media);
    }

    /// Queues a payload (see [`MemoryPlatform::payload`]) for the next poll of the account
    /// with this platform account id.
    pub fn queue_poll(&self, platform_account_id: &str, payload: Vec<u8>) {
        self.lock()
            .queued_polls
            .entry(platform_account_id.to_owned())
            .or_default()
            .push_back(payload);
    }

    // ----- inspection ---------------------------------------------------------------------

    /// Every `send` so far, in order (including ones that then failed).
    pub fn sends(&self) -> Vec<RecordedSend> {
        self.lock().sends.clone()
    }

    /// Every `start_conversation` so far.
    pub fn starts(&self) -> Vec<RecordedStart> {
        self.lock().starts.clone()
    }

    /// Every `mark_read` so far.
    pub fn mark_reads(&self) -> Vec<ConversationTarget> {
        self.lock().mark_reads.clone()
    }

    /// Every `refresh_credentials` so far, by account.
    pub fn refreshes(&self) -> Vec<AccountId> {
        self.lock().refreshes.clone()
    }

    /// The PKCE verifier of every `oauth_exchange` so far (`None` without PKCE).
    pub fn oauth_verifiers(&self) -> Vec<Option<String>> {
        self.lock().oauth_verifiers.clone()
    }

    /// Every participant id `fetch_participant` was asked about.
    pub fn profile_lookups(&self) -> Vec<String> {
        self.lock().profile_lookups.clone()
    }

    /// Declares expiring credentials renewed by `refresh_credentials` under `policy`; each
    /// refresh issues credentials valid for `lifetime`.
    pub fn with_credential_refresh(mut self, policy: RefreshPolicy, lifetime: Duration) -> Self {
        self.capabilities.credential_refresh = Some(policy);
        self.credential_lifetime = Some(lifetime);
        self
    }

    /// Declares an OAuth connect flow (with PKCE or not).
    pub fn with_oauth(mut self, pkce: bool) -> Self {
        self.capabilities.oauth = Some(OAuthFlow { pkce });
        self
    }

    /// Declares profile lookups: `fetch_participant` answers `Participant {id, name: "Name of
    /// <id>", username: "user_<id>"}`.
    pub fn with_profile_lookup(mut self) -> Self {
        self.capabilities.profile_lookup = true;
        self
    }

    /// How many times `connect` was called.
    pub fn connect_count(&self) -> usize {
        self.lock().connects
    }

    /// Accounts `start_inbound` was called for.
    pub fn inbound_started(&self) -> Vec<AccountId> {
        self.lock().inbound_started.clone()
    }

    /// Accounts `stop_inbound` was called for.
    pub fn inbound_stopped(&self) -> Vec<AccountId> {
        self.lock().inbound_stopped.clone()
    }

    // ----- inbound helpers ----------------------------------------------------------------

    /// A text message from `sender_id` in thread `chat`, at `at`.
    pub fn text_message(chat: &str, sender_id: &str, text: &str, at: Timestamp) -> InboundMessage {
        let sender = Participant {
            id: sender_id.to_owned(),
            name: format!("User {sender_id}"),
            username: None,
            picture: None,
        };
        InboundMessage {
            platform_conversation_id: chat.to_owned(),
            platform_message_id: format!("{chat}:{}", at.unix_millis()),
            direction: Direction::Incoming,
            participant: sender.clone(),
            sender,
            text: text.to_owned(),
            attachments: vec![],
            timestamp: at,
            reply_to_platform_message_id: None,
        }
    }

    /// The raw payload this platform's `parse_inbound` turns back into `messages`.
    pub fn payload(messages: &[InboundMessage]) -> Vec<u8> {
        let wire: Vec<WireMessage> = messages.iter().map(WireMessage::from).collect();
        serde_json::to_vec(&WirePayload { messages: wire }).expect("wire messages serialise")
    }

    fn scripted(&self, operation: Operation) -> Result<()> {
        // Popped under the lock, turned into an error (or a panic) after releasing it.
        let failure = self
            .lock()
            .failures
            .get_mut(&operation)
            .and_then(VecDeque::pop_front);
        match failure {
            Some(failure) => Err(failure.to_error(self.kind)),
            None => Ok(()),
        }
    }

    fn next_message_id(&self) -> String {
        let mut state = self.lock();
        state.next_message += 1;
        format!("mem-{}", state.next_message)
    }

    fn not_supported(&self, operation: &'static str) -> Error {
        Error::NotSupported {
            platform: self.kind,
            operation,
        }
    }
}

/// The fake's own inbound wire format: a JSON mirror of `InboundMessage`.
#[derive(Debug, Serialize, Deserialize)]
struct WirePayload {
    messages: Vec<WireMessage>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireMessage {
    chat: String,
    id: String,
    outgoing: bool,
    participant: Participant,
    sender: Participant,
    text: String,
    attachments: Vec<Attachment>,
    at_millis: i64,
    reply_to: Option<String>,
}

impl From<&InboundMessage> for WireMessage {
    fn from(message: &InboundMessage) -> Self {
        WireMessage {
            chat: message.platform_conversation_id.clone(),
            id: message.platform_message_id.clone(),
            outgoing: message.direction == Direction::Outgoing,
            participant: message.participant.clone(),
            sender: message.sender.clone(),
            text: message.text.clone(),
            attachments: message.attachments.clone(),
            at_millis: message.timestamp.unix_millis(),
            reply_to: message.reply_to_platform_message_id.clone(),
        }
    }
}

impl From<WireMessage> for InboundMessage {
    fn from(wire: WireMessage) -> Self {
        InboundMessage {
            platform_conversation_id: wire.chat,
            platform_message_id: wire.id,
            direction: if wire.outgoing {
                Direction::Outgoing
            } else {
                Direction::Incoming
            },
            participant: wire.participant,
            sender: wire.sender,
            text: wire.text,
            attachments: wire.attachments,
            timestamp: Timestamp::from_unix_millis(wire.at_millis),
            reply_to_platform_message_id: wire.reply_to,
        }
    }
}

/// The credentials document a `MemoryPlatform` accepts: `{token, accountId?, name?,
/// username?}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemoryCredentials {
    token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    /// Bumped by every refresh.
    #[serde(default)]
    generation: u32,
}

#[async_trait]
impl Platform for MemoryPlatform {
    fn kind(&self) -> PlatformKind {
        self.kind
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn connect(&self, credentials: &serde_json::Value) -> Result<ConnectedAccount> {
        self.lock().connects += 1;
        self.scripted(Operation::Connect)?;
        let token = credentials.get("token").and_then(serde_json::Value::as_str);
        let Some(token) = token.filter(|token| !token.is_empty()) else {
            return Err(Error::invalid(
                "credentials.token",
                "`credentials.token` is required",
            ));
        };
        let parsed: MemoryCredentials = serde_json::from_value(credentials.clone())
            .map_err(|err| Error::invalid("credentials", err.to_string()))?;
        Ok(ConnectedAccount {
            platform_account_id: parsed
                .account_id
                .clone()
                .unwrap_or_else(|| format!("{}-{token}", self.kind)),
            name: parsed
                .name
                .clone()
                .unwrap_or_else(|| format!("Memory {} {token}", self.kind)),
            username: parsed.username.clone(),
            credentials: Credentials::from_value(&parsed)?,
            credentials_expire_at: self
                .credential_lifetime
                .map(|lifetime| Timestamp::now() + lifetime),
        })
    }

    async fn start_inbound(
        &self,
        account: &AccountContext,
        _setup: &InboundSetup,
    ) -> Result<InboundMode> {
        self.scripted(Operation::StartInbound)?;
        self.lock().inbound_started.push(account.id.clone());
        Ok(self
            .capabilities
            .inbound_modes
            .first()
            .copied()
            .unwrap_or(InboundMode::Polling))
    }

    async fn stop_inbound(&self, account: &AccountContext) -> Result<()> {
        self.scripted(Operation::StopInbound)?;
        self.lock().inbound_stopped.push(account.id.clone());
        Ok(())
    }

    fn handshake(&self, _request: &WebhookRequest<'_>) -> Result<HandshakeResponse> {
        Err(self.not_supported("webhook handshakes"))
    }

    fn verify_webhook(
        &self,
        request: &WebhookRequest<'_>,
        account: Option<&AccountContext>,
    ) -> Result<()> {
        let presented = request
            .headers
            .get(SECRET_HEADER)
            .and_then(|value| value.to_str().ok());
        let expected = account.and_then(|account| account.inbound_secret.as_ref());
        match (presented, expected) {
            (Some(presented), Some(expected)) if presented == expected.expose_secret() => Ok(()),
            _ => Err(Error::WebhookVerification {
                message: format!("missing or wrong `{SECRET_HEADER}`"),
            }),
        }
    }

    fn parse_inbound(&self, payload: &[u8]) -> Result<Vec<InboundEvent>> {
        let wire: WirePayload =
            serde_json::from_slice(payload).map_err(|err| Error::InvalidInput {
                param: None,
                message: err.to_string(),
            })?;
        Ok(wire
            .messages
            .into_iter()
            .map(|message| InboundEvent {
                platform_account_id: None,
                kind: InboundKind::Message(message.into()),
            })
            .collect())
    }

    async fn poll(&self, account: &AccountContext, cursor: Option<&str>) -> Result<PollBatch> {
        let mut state = self.lock();
        let queue = state
            .queued_polls
            .entry(account.platform_account_id.clone())
            .or_default();
        let payloads: Vec<_> = queue.drain(..).collect();
        let seen: u64 = cursor.and_then(|cursor| cursor.parse().ok()).unwrap_or(0);
        let next_cursor =
            (!payloads.is_empty()).then(|| (seen + payloads.len() as u64).to_string());
        Ok(PollBatch {
            payloads,
            next_cursor,
        })
    }

    async fn send(
        &self,
        account: &AccountContext,
        target: &ConversationTarget,
        message: &OutboundMessage,
    ) -> Result<SentMessage> {
        let (delay, gate) = {
            let mut state = self.lock();
            state.sends.push(RecordedSend {
                account_id: account.id.clone(),
                target: target.clone(),
                message: message.clone(),
            });
            (state.send_delay, state.send_gate.clone())
        };
        if let Some(gate) = gate {
            // Closing the semaphore is the release: every waiter gets an error and goes on.
            let _ = gate.acquire().await;
        }
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        self.scripted(Operation::Send)?;
        Ok(SentMessage {
            platform_message_id: self.next_message_id(),
            timestamp: Timestamp::now(),
        })
    }

    async fn start_conversation(
        &self,
        account: &AccountContext,
        participant: &str,
        message: &OutboundMessage,
    ) -> Result<StartedConversation> {
        if !self.capabilities.start_conversation {
            return Err(self.not_supported("starting conversations"));
        }
        self.lock().starts.push(RecordedStart {
            account_id: account.id.clone(),
            participant: participant.to_owned(),
            message: message.clone(),
        });
        self.scripted(Operation::StartConversation)?;
        let handle = participant.trim_start_matches('@').to_owned();
        Ok(StartedConversation {
            platform_conversation_id: format!("dm-{handle}"),
            participant: Participant {
                id: format!("id-{handle}"),
                name: handle.clone(),
                username: Some(handle),
                picture: None,
            },
            message: SentMessage {
                platform_message_id: self.next_message_id(),
                timestamp: Timestamp::now(),
            },
        })
    }

    async fn mark_read(
        &self,
        _account: &AccountContext,
        target: &ConversationTarget,
    ) -> Result<()> {
        if !self.capabilities.mark_read {
            return Err(self.not_supported("marking messages read"));
        }
        self.lock().mark_reads.push(target.clone());
        self.scripted(Operation::MarkRead)
    }

    async fn refresh_credentials(&self, account: &AccountContext) -> Result<RefreshedCredentials> {
        if self.capabilities.credential_refresh.is_none() {
            return Err(self.not_supported("refreshing credentials"));
        }
        self.lock().refreshes.push(account.id.clone());
        self.scripted(Operation::RefreshCredentials)?;
        // Each refresh issues a new generation, so tests can see which credentials are in use.
        let mut parsed: MemoryCredentials = account.credentials.parse(self.kind)?;
        parsed.generation = parsed.generation.saturating_add(1);
        Ok(RefreshedCredentials {
            credentials: Credentials::from_value(&parsed)?,
            expires_at: self
                .credential_lifetime
                .map(|lifetime| Timestamp::now() + lifetime),
        })
    }

    fn oauth_authorize_url(&self, request: &OAuthRequest) -> Result<String> {
        if self.capabilities.oauth.is_none() {
            return Err(self.not_supported("connecting through OAuth"));
        }
        let mut url = format!(
            "https://auth.memory.example/{}/authorize?state={}&redirect_uri={}",
            self.kind, request.state, request.redirect_uri
        );
        if let Some(challenge) = &request.code_challenge {
            url.push_str("&code_challenge_method=S256&code_challenge=");
            url.push_str(challenge);
        }
        Ok(url)
    }

    /// The code names the accounts granted: `accounts:<id>[,<id>…]` grants one account per id
    /// (as Facebook grants one per page); anything else is refused like an expired code.
    async fn oauth_exchange(&self, callback: &OAuthCallback) -> Result<Vec<ConnectedAccount>> {
        if self.capabilities.oauth.is_none() {
            return Err(self.not_supported("connecting through OAuth"));
        }
        self.lock()
            .oauth_verifiers
            .push(callback.code_verifier.clone());
        self.scripted(Operation::OAuthExchange)?;
        let Some(ids) = callback.code.strip_prefix("accounts:") else {
            return Err(Error::invalid(
                "code",
                "the authorization code is invalid or expired",
            ));
        };
        ids.split(',')
            .map(|id| {
                let credentials = MemoryCredentials {
                    token: format!("oauth-{id}"),
                    account_id: Some(id.to_owned()),
                    name: Some(format!("OAuth {id}")),
                    username: None,
                    generation: 0,
                };
                Ok(ConnectedAccount {
                    platform_account_id: id.to_owned(),
                    name: format!("OAuth {id}"),
                    username: None,
                    credentials: Credentials::from_value(&credentials)?,
                    credentials_expire_at: self
                        .credential_lifetime
                        .map(|lifetime| Timestamp::now() + lifetime),
                })
            })
            .collect()
    }

    async fn fetch_participant(
        &self,
        _account: &AccountContext,
        participant_id: &str,
    ) -> Result<Participant> {
        if !self.capabilities.profile_lookup {
            return Err(self.not_supported("looking up profiles"));
        }
        self.lock().profile_lookups.push(participant_id.to_owned());
        self.scripted(Operation::FetchParticipant)?;
        Ok(Participant {
            id: participant_id.to_owned(),
            name: format!("Name of {participant_id}"),
            username: Some(format!("user_{participant_id}")),
            picture: None,
        })
    }

    async fn fetch_attachment(&self, _account: &AccountContext, url: &str) -> Result<FetchedMedia> {
        self.scripted(Operation::FetchAttachment)?;
        self.lock()
            .media
            .get(url)
            .cloned()
            .ok_or_else(|| Error::Platform {
                platform: self.kind,
                code: "404".to_owned(),
                message: format!("no media at {url}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_through_parse_inbound() {
        let platform = MemoryPlatform::new(PlatformKind::Telegram);
        let message =
            MemoryPlatform::text_message("chat-1", "user-1", "hi", Timestamp::from_unix_seconds(5));
        let events = platform
            .parse_inbound(&MemoryPlatform::payload(std::slice::from_ref(&message)))
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, InboundKind::Message(message));
    }

    #[tokio::test]
    async fn scripted_failures_fire_once_in_order() {
        let platform = MemoryPlatform::new(PlatformKind::Telegram);
        platform.fail_next(
            Operation::Connect,
            Failure::ReauthRequired("revoked".into()),
        );
        let credentials = serde_json::json!({"token": "t"});
        assert!(matches!(
            platform.connect(&credentials).await,
            Err(Error::ReauthRequired { .. })
        ));
        let connected = platform.connect(&credentials).await.unwrap();
        assert_eq!(connected.platform_account_id, "telegram-t");
        assert_eq!(platform.connect_count(), 2);
    }
}
