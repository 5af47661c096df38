//! Flood control feeds the gateway's rate budgets: a `429` with `retry_after` on a send is
//! reported against the chat's `send_per_chat` budget before the adapter waits and retries,
//! so every other sender to that chat holds back too.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use inbox_core::{
    AccountContext, AccountId, BudgetCall, BudgetOperation, BudgetReport, OutboundMessage,
    Platform, PlatformKind, Pushback, RateBudgets,
};
use inbox_platform_telegram::{SEND_PER_CHAT, Telegram, TelegramConfig};
use inbox_testkit::fakes::telegram::FakeTelegram;
use secrecy::SecretString;
use serde_json::json;

const TOKEN: &str = "4242:AAH-budget-test_token";
const ALICE: i64 = 111_222_333;

/// What a report said, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    platform: PlatformKind,
    operation: BudgetOperation,
    account: String,
    conversation: Option<String>,
    budget: Option<String>,
    pushback: Pushback,
}

#[derive(Debug, Default)]
struct RecordingBudgets(Mutex<Vec<Seen>>);

#[async_trait]
impl RateBudgets for RecordingBudgets {
    async fn acquire(&self, _call: &BudgetCall<'_>) -> inbox_core::Result<()> {
        Ok(())
    }

    async fn report(&self, report: &BudgetReport<'_>) {
        self.0.lock().unwrap().push(Seen {
            platform: report.call.platform,
            operation: report.call.operation,
            account: report.call.account.to_owned(),
            conversation: report.call.conversation.map(str::to_owned),
            budget: report.budget.map(str::to_owned),
            pushback: report.pushback,
        });
    }
}

#[tokio::test]
async fn flood_control_on_a_send_is_reported_against_the_chat_before_retrying() {
    let fake = FakeTelegram::start().await;
    fake.add_bot(TOKEN, 4242, "Support", "support_bot");
    fake.add_user(ALICE, "Alice", Some("Smith"), Some("alice"));
    let budgets = Arc::new(RecordingBudgets::default());
    let config = TelegramConfig::builder(fake.base_url())
        .budgets(budgets.clone())
        .long_poll_timeout(Duration::ZERO)
        .build()
        .unwrap();
    let telegram = Telegram::new(config).unwrap();
    let connected = telegram.connect(&json!({"botToken": TOKEN})).await.unwrap();
    let account = AccountContext {
        id: AccountId::new(),
        platform_account_id: connected.platform_account_id,
        credentials: connected.credentials,
        inbound_secret: Some(SecretString::from("budget_secret-1")),
    };
    let target = inbox_core::ConversationTarget {
        platform_conversation_id: ALICE.to_string(),
        participant_id: ALICE.to_string(),
        last_inbound_platform_message_id: None,
    };

    fake.rate_limit_next("sendMessage", 1);
    let sent = telegram
        .send(&account, &target, &text("hello"))
        .await
        .unwrap();
    assert!(sent.platform_message_id.starts_with(&ALICE.to_string()));
    assert_eq!(fake.requests_for("sendMessage").len(), 2, "retried once");
    assert_eq!(
        budgets.0.lock().unwrap().as_slice(),
        [Seen {
            platform: PlatformKind::Telegram,
            operation: BudgetOperation::Send,
            account: "4242".into(),
            conversation: Some(ALICE.to_string()),
            budget: Some(SEND_PER_CHAT.into()),
            pushback: Pushback::Exhausted {
                retry_after: Duration::from_secs(1),
            },
        }]
    );

    // Calls without a budget (reading updates) report nothing, even when throttled.
    fake.rate_limit_next("getUpdates", 1);
    telegram.poll(&account, None).await.unwrap();
    assert_eq!(budgets.0.lock().unwrap().len(), 1);
}

fn text(text: &str) -> OutboundMessage {
    OutboundMessage {
        text: text.to_owned(),
        attachments: Vec::new(),
        reply_to_platform_message_id: None,
        message_tag: None,
        template: None,
    }
}
