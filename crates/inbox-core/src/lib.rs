//! The gateway's domain model and the `Platform` trait. No I/O happens here.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod budget;
mod capabilities;
mod error;
mod event;
mod id;
mod inbound;
mod model;
mod outbound;
mod page;
mod platform;
mod registry;
mod time;

pub use budget::{BudgetCall, BudgetReport, Pushback, RateBudgets, Unlimited};
pub use capabilities::{
    BudgetOperation, BudgetScope, Capabilities, InboundMode, OAuthFlow, RateBudget, RefreshPolicy,
    TextLimit, TextTooLong, TextUnit, WindowRule,
};
pub use error::{BoxError, Error, Result};
pub use event::{Event, EventType, UnknownEventType, event_platform, message_data};
pub use id::{
    AccountId, ApiKeyId, ConversationId, DeliveryId, EndpointId, EventId, IdParseError, MessageId,
    RawEventId, WorkspaceId,
};
pub use inbound::{
    HandshakeResponse, InboundEvent, InboundKind, InboundMessage, PollBatch, WebhookRequest,
};
pub use model::{
    Account, AccountStatus, Attachment, AttachmentKind, Conversation, ConversationStatus,
    DeliveryStatus, Direction, Message, Participant, PlatformKind, UnknownPlatform,
};
pub use outbound::{
    AccountContext, ConnectedAccount, ConversationTarget, Credentials, FetchedMedia, InboundSetup,
    OAuthCallback, OAuthRequest, OutboundAttachment, OutboundMessage, RefreshedCredentials,
    SentMessage, StartedConversation, Template,
};
pub use page::{Cursor, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, Page, PageRequest};
pub use platform::Platform;
pub use registry::PlatformRegistry;
pub use time::Timestamp;

/// A shared platform adapter, as the registry hands it out.
pub type DynPlatform = std::sync::Arc<dyn Platform>;
