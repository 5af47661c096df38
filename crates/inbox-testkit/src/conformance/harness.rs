//! What the cases share: connecting a seeded account, capturing platform pushes on a real
//! loopback server, and receiving inbound events the way the adapter says it receives them
//! (webhook push or poll).

use std::time::Duration;

use axum::{
    Router,
    body::Bytes,
    extract::{Request, State},
    http::StatusCode,
};
use inbox_core::{
    AccountContext, AccountId, InboundEvent, InboundKind, InboundMessage, InboundMode,
    InboundSetup, OutboundMessage, Platform,
};
use secrecy::SecretString;
use tokio::sync::{Mutex, mpsc};

use super::{CapturedPush, FakeControl, SeededAccount};

/// How long to wait for a push the fake should already be making.
const PUSH_WAIT: Duration = Duration::from_secs(15);

/// A seeded account, connected through the adapter.
#[derive(Debug, Clone)]
pub struct Connected {
    /// What the fake created.
    pub seeded: SeededAccount,
    /// What the gateway would hand the adapter for it.
    pub context: AccountContext,
}

/// Seeds an account on the fake and connects it through `platform`, as `POST /accounts` does.
///
/// # Panics
/// When the adapter refuses the fake's valid credentials.
pub async fn connect(platform: &dyn Platform, fake: &dyn FakeControl) -> Connected {
    let seeded = fake.seed_account().await;
    let account = platform
        .connect(&seeded.credentials)
        .await
        .unwrap_or_else(|err| panic!("connect refused valid credentials: {err:?}"));
    let context = AccountContext {
        id: AccountId::new(),
        platform_account_id: account.platform_account_id,
        credentials: account.credentials,
        // Ids are `acc_` + Crockford base32: valid for every platform's secret rules.
        inbound_secret: Some(SecretString::from(format!(
            "conformance_{}",
            AccountId::new()
        ))),
    };
    Connected { seeded, context }
}

/// A loopback server that records every request pushed to it and answers `200`.
#[derive(Debug)]
pub struct PushCapture {
    url: String,
    received: Mutex<mpsc::UnboundedReceiver<CapturedPush>>,
}

async fn capture(
    State(sender): State<mpsc::UnboundedSender<CapturedPush>>,
    request: Request,
) -> StatusCode {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let _ = sender.send(CapturedPush {
        method: parts.method,
        headers: parts.headers,
        query: parts.uri.query().map(str::to_owned),
        body,
    });
    StatusCode::OK
}

impl PushCapture {
    /// Starts the server on `127.0.0.1:0`.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Self {
        let (sender, received) = mpsc::unbounded_channel();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let url = format!(
            "http://{}/push",
            listener.local_addr().expect("bound address")
        );
        let app = Router::new().fallback(capture).with_state(sender);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            received: Mutex::new(received),
        }
    }

    /// Where the platform should push.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next pushed request.
    ///
    /// # Panics
    /// When none arrives within 15 s.
    pub async fn next(&self) -> CapturedPush {
        let mut received = self.received.lock().await;
        tokio::time::timeout(PUSH_WAIT, received.recv())
            .await
            .expect("the platform pushed nothing within 15 s")
            .expect("the capture server stopped")
    }
}

/// Inbound delivery for one account, in one mode.
pub(crate) struct Inbox<'a> {
    platform: &'a dyn Platform,
    account: &'a Connected,
    pub(crate) mode: InboundMode,
    capture: Option<PushCapture>,
    pub(crate) cursor: Option<String>,
}

impl<'a> Inbox<'a> {
    /// Arranges inbound delivery in `mode` (the platform's preferred one when `None`).
    pub(crate) async fn open(
        platform: &'a dyn Platform,
        fake: &dyn FakeControl,
        account: &'a Connected,
        mode: Option<InboundMode>,
    ) -> Inbox<'a> {
        let mode = mode.unwrap_or_else(|| {
            *platform
                .capabilities()
                .inbound_modes
                .first()
                .expect("at least one inbound mode")
        });
        let secret = account
            .context
            .inbound_secret
            .clone()
            .expect("the harness sets a secret");
        let capture = match mode {
            InboundMode::Polling => None,
            InboundMode::WebhookPerAccount | InboundMode::WebhookPerApp => {
                Some(PushCapture::start().await)
            }
        };
        let setup = InboundSetup {
            webhook_url: capture.as_ref().map(|c| c.url().to_owned()),
            secret,
        };
        let started = platform
            .start_inbound(&account.context, &setup)
            .await
            .unwrap_or_else(|err| panic!("start_inbound({mode:?}) failed: {err:?}"));
        assert_eq!(
            started, mode,
            "start_inbound must report the mode it arranged"
        );
        if let Some(capture) = &capture {
            fake.route_pushes_to(&account.seeded, capture.url()).await;
        }
        // Take the starting position first, as the gateway's poller does: platforms with a
        // browsable history (X, Reddit, Bluesky) start at the current position, so what
        // happens after this point is what later polls must return.
        let cursor = if mode == InboundMode::Polling {
            platform
                .poll(&account.context, None)
                .await
                .unwrap_or_else(|err| panic!("the first poll failed: {err:?}"))
                .next_cursor
        } else {
            None
        };
        Inbox {
            platform,
            account,
            mode,
            capture,
            cursor,
        }
    }

    /// Where pushes for this inbox go (webhook modes only).
    pub(crate) fn url(&self) -> &str {
        self.capture
            .as_ref()
            .expect("url needs a webhook mode")
            .url()
    }

    /// The next raw push (webhook modes only).
    pub(crate) async fn next_push(&self) -> CapturedPush {
        self.capture
            .as_ref()
            .expect("next_push needs a webhook mode")
            .next()
            .await
    }

    /// Verifies a push as the gateway's inbound endpoint would.
    pub(crate) fn verify(&self, push: &CapturedPush) -> inbox_core::Result<()> {
        let account = match self.mode {
            InboundMode::WebhookPerAccount => Some(&self.account.context),
            _ => None,
        };
        self.platform.verify_webhook(&push.request(), account)
    }

    /// Verifies and parses one push.
    pub(crate) fn parse_push(&self, push: &CapturedPush) -> Vec<InboundEvent> {
        self.verify(push)
            .unwrap_or_else(|err| panic!("a genuine push failed verification: {err:?}"));
        self.platform
            .parse_inbound(&push.body)
            .unwrap_or_else(|err| panic!("a genuine push did not parse: {err:?}"))
    }

    /// Polls once from the current cursor, advancing it; returns the parsed events.
    pub(crate) async fn poll(&mut self) -> Vec<InboundEvent> {
        let batch = self
            .platform
            .poll(&self.account.context, self.cursor.as_deref())
            .await
            .unwrap_or_else(|err| panic!("poll failed: {err:?}"));
        if batch.next_cursor.is_some() {
            self.cursor = batch.next_cursor;
        }
        parse_all(self.platform, &batch.payloads)
    }

    /// The events of the next delivery: the next push, or the next poll that returns messages
    /// (a few polls at most).
    pub(crate) async fn receive(&mut self) -> Vec<InboundEvent> {
        if self.capture.is_some() {
            let push = self.next_push().await;
            return self.parse_push(&push);
        }
        for _ in 0..5 {
            let events = self.poll().await;
            if !events.is_empty() {
                return events;
            }
        }
        panic!("five polls returned nothing");
    }
}

/// Parses every payload of a poll.
pub(crate) fn parse_all(platform: &dyn Platform, payloads: &[Vec<u8>]) -> Vec<InboundEvent> {
    payloads
        .iter()
        .flat_map(|payload| {
            platform
                .parse_inbound(payload)
                .unwrap_or_else(|err| panic!("a polled payload did not parse: {err:?}"))
        })
        .collect()
}

/// The new messages among `events`.
pub(crate) fn messages(events: &[InboundEvent]) -> Vec<&InboundMessage> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            InboundKind::Message(message) => Some(message),
            _ => None,
        })
        .collect()
}

/// A plain text message.
pub(crate) fn text(text: &str) -> OutboundMessage {
    OutboundMessage {
        text: text.to_owned(),
        attachments: Vec::new(),
        reply_to_platform_message_id: None,
        message_tag: None,
        template: None,
    }
}

/// Says on stderr that a case does not apply to this platform.
pub(crate) fn not_applicable(platform: &dyn Platform, case: &str, why: &str) {
    eprintln!(
        "conformance: `{case}` does not apply to {}: {why}",
        platform.kind()
    );
}
