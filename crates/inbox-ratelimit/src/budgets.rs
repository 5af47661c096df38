//! The platforms' budgets on a [`RateLimiter`]: [`PlatformBudgets`] implements
//! [`inbox_core::RateBudgets`], the interface the API, the pollers and the adapters use.
//!
//! Each adapter declares its budgets in its capabilities; operators may override any of them
//! ([`crate::overrides`]). A call is checked against every budget that counts its operation,
//! for every scope the call names, narrowest first, in one all-or-nothing check:
//!
//! | scope | bucket per | key (see [`crate::key`]) |
//! |---|---|---|
//! | `Conversation` | account and chat (Telegram 1/s per chat) | `…:{budget}:{account}:{chat}` |
//! | `Recipient` | account and recipient (WhatsApp pair rate) | `…:{budget}:{account}:{recipient}` |
//! | `Account` | account (Instagram 200/h, X 15 lookups/15 min, Telegram 30/s per bot) | `…:{budget}:{account}` |
//! | `App` | OAuth client, shared by all its accounts (Reddit 100/min) | `…:{budget}:app:{client id}` |

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use inbox_core::{
    BudgetCall, BudgetReport, BudgetScope, Error, PlatformKind, PlatformRegistry, Pushback,
    RateBudget, RateBudgets,
};
use metrics::counter;

use crate::{Bucket, BudgetOverride, Quota, RateLimiter, key::budget_key, metrics::PUSHBACK};

/// The app id used for `App` budgets of a platform without a configured client id.
pub const DEFAULT_APP_ID: &str = "default";

/// One budget as enforced: the declaration (after overrides) and its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnforcedBudget {
    /// The budget as declared, with an operator's override applied.
    pub budget: RateBudget,
    /// Its GCRA shape.
    pub quota: Quota,
    /// Whether an override changed it.
    pub overridden: bool,
}

/// The budgets of every registered platform, enforced on one limiter.
pub struct PlatformBudgets {
    limiter: Arc<dyn RateLimiter>,
    overrides: Vec<BudgetOverride>,
    table: RwLock<HashMap<PlatformKind, Vec<EnforcedBudget>>>,
    app_ids: RwLock<HashMap<PlatformKind, String>>,
}

impl fmt::Debug for PlatformBudgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformBudgets")
            .field("limiter", &self.limiter)
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

/// Narrowest first, so the all-or-nothing check of the in-process limiter refuses on a chat's
/// budget before it charges (and refunds) the account's.
fn scope_rank(scope: BudgetScope) -> u8 {
    match scope {
        BudgetScope::Conversation | BudgetScope::Recipient => 0,
        BudgetScope::Account => 1,
        BudgetScope::App => 2,
    }
}

impl PlatformBudgets {
    /// Budgets on `limiter`, with operators' `overrides` to apply as platforms register.
    pub fn new(limiter: Arc<dyn RateLimiter>, overrides: Vec<BudgetOverride>) -> Self {
        PlatformBudgets {
            limiter,
            overrides,
            table: RwLock::default(),
            app_ids: RwLock::default(),
        }
    }

    /// Budgets for every platform of `registry`, without overrides.
    ///
    /// # Errors
    /// A declared budget that makes no quota (see [`register`](Self::register)).
    pub fn for_registry(
        limiter: Arc<dyn RateLimiter>,
        registry: &PlatformRegistry,
    ) -> Result<Self, String> {
        let budgets = PlatformBudgets::new(limiter, Vec::new());
        budgets.register_all(registry)?;
        Ok(budgets)
    }

    /// The limiter behind the budgets.
    pub fn limiter(&self) -> &Arc<dyn RateLimiter> {
        &self.limiter
    }

    /// Registers every platform of `registry`, then checks that every override named a
    /// platform that is registered.
    ///
    /// # Errors
    /// As [`register`](Self::register), or an override of a platform this gateway does not
    /// run.
    pub fn register_all(&self, registry: &PlatformRegistry) -> Result<(), String> {
        for platform in registry.iter() {
            self.register(platform.kind(), &platform.capabilities().rate_budgets)?;
        }
        let table = self.read_table();
        if let Some(stray) = self
            .overrides
            .iter()
            .find(|o| !table.contains_key(&o.platform))
        {
            return Err(format!(
                "`{}`: {} is not configured on this gateway",
                stray.name(),
                stray.platform
            ));
        }
        Ok(())
    }

    /// Registers (or replaces) one platform's declared budgets, applying the overrides that
    /// name them.
    ///
    /// # Errors
    /// An override naming a budget the platform does not declare (the message lists the
    /// ones it does), or a budget that makes no quota (zero count, burst above the count).
    pub fn register(&self, platform: PlatformKind, declared: &[RateBudget]) -> Result<(), String> {
        for o in self.overrides.iter().filter(|o| o.platform == platform) {
            if !declared.iter().any(|b| b.name == o.budget) {
                let known: Vec<_> = declared.iter().map(|b| b.name).collect();
                return Err(format!(
                    "`{}` is not a budget of {platform}; it has {}",
                    o.name(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        let mut enforced = Vec::with_capacity(declared.len());
        for declared in declared {
            let mut budget = *declared;
            let found = self
                .overrides
                .iter()
                .find(|o| o.platform == platform && o.budget == declared.name);
            if let Some(o) = found {
                budget.count = o.count;
                budget.period = o.period;
                budget.burst = o.burst.unwrap_or(declared.burst).min(o.count);
            }
            let quota = Quota::within_window(budget.count, budget.period, budget.burst)
                .map_err(|err| format!("{platform}.{}: {err}", budget.name))?;
            enforced.push(EnforcedBudget {
                budget,
                quota,
                overridden: found.is_some(),
            });
        }
        enforced.sort_by_key(|b| scope_rank(b.budget.scope));
        self.table
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(platform, enforced);
        Ok(())
    }

    /// Sets the OAuth client id `App` budgets of `platform` are shared under (Reddit's client
    /// id), so gateways with different clients sharing one Redis keep separate budgets.
    pub fn set_app_id(&self, platform: PlatformKind, app_id: impl Into<String>) {
        self.app_ids
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(platform, app_id.into());
    }

    /// The budgets enforced for `platform`, narrowest scope first.
    pub fn budgets_of(&self, platform: PlatformKind) -> Vec<EnforcedBudget> {
        self.read_table()
            .get(&platform)
            .cloned()
            .unwrap_or_default()
    }

    fn read_table(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<PlatformKind, Vec<EnforcedBudget>>> {
        self.table
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The buckets of the budgets that apply to `call`, narrowest first. `only` restricts
    /// them to one budget by name.
    fn buckets_for(
        &self,
        call: &BudgetCall<'_>,
        only: Option<&str>,
    ) -> Vec<(String, EnforcedBudget)> {
        let table = self.read_table();
        let Some(budgets) = table.get(&call.platform) else {
            return Vec::new();
        };
        let app_id = || {
            self.app_ids
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(&call.platform)
                .cloned()
                .unwrap_or_else(|| DEFAULT_APP_ID.to_owned())
        };
        budgets
            .iter()
            .filter(|b| only.is_none_or(|name| b.budget.name == name))
            .filter(|b| b.budget.counts(call.operation))
            .filter_map(|b| {
                let name = b.budget.name;
                let key = match b.budget.scope {
                    BudgetScope::Account => budget_key(call.platform, name, &[call.account]),
                    BudgetScope::Conversation => {
                        budget_key(call.platform, name, &[call.account, call.conversation?])
                    }
                    BudgetScope::Recipient => {
                        budget_key(call.platform, name, &[call.account, call.recipient?])
                    }
                    BudgetScope::App => budget_key(call.platform, name, &["app", &app_id()]),
                };
                Some((key, *b))
            })
            .collect()
    }
}

/// How long a bucket must be blocked for a pushback signal; `None` when the signal leaves
/// room for more calls than the budget would allow anyway.
fn block_for(pushback: Pushback, quota: Quota) -> Option<Duration> {
    let block = match pushback {
        Pushback::Exhausted { retry_after } => retry_after,
        // Spread the `remaining` calls over the time to the reset: the next may go once the
        // reset is no more than `remaining` intervals away.
        Pushback::Remaining {
            remaining,
            reset_after,
        } => reset_after.saturating_sub(
            quota
                .emission_interval()
                .saturating_mul(u32::try_from(remaining).unwrap_or(u32::MAX)),
        ),
    };
    (!block.is_zero()).then_some(block)
}

#[async_trait]
impl RateBudgets for PlatformBudgets {
    async fn acquire(&self, call: &BudgetCall<'_>) -> inbox_core::Result<()> {
        let selected = self.buckets_for(call, None);
        if selected.is_empty() {
            return Ok(());
        }
        let buckets: Vec<Bucket<'_>> = selected
            .iter()
            .map(|(key, b)| Bucket::new(key, b.quota))
            .collect();
        match self.limiter.check(&buckets, 1).await {
            Ok(decision) if decision.allowed => Ok(()),
            Ok(decision) => {
                tracing::debug!(
                    platform = %call.platform,
                    account = call.account,
                    retry_after_ms = decision.retry_after.as_millis() as u64,
                    "platform budget exhausted"
                );
                Err(Error::RateLimited {
                    retry_after: decision.retry_after,
                })
            }
            Err(err) => Err(Error::Unavailable {
                message: format!("the rate limiter could not decide: {err}"),
                retry_after: Some(Duration::from_secs(1)),
            }),
        }
    }

    async fn report(&self, report: &BudgetReport<'_>) {
        let selected = self.buckets_for(&report.call, report.budget);
        if selected.is_empty() {
            tracing::debug!(
                platform = %report.call.platform,
                budget = report.budget,
                "platform pushback for no budget of this call; ignored"
            );
            return;
        }
        counter!(PUSHBACK, "platform" => report.call.platform.as_str()).increment(1);
        for (key, enforced) in &selected {
            let Some(block) = block_for(report.pushback, enforced.quota) else {
                continue;
            };
            tracing::info!(
                platform = %report.call.platform,
                budget = enforced.budget.name,
                account = report.call.account,
                block_ms = block.as_millis() as u64,
                "platform pushback: holding the budget back until the platform's reset"
            );
            if let Err(err) = self
                .limiter
                .penalize(&Bucket::new(key, enforced.quota), block)
                .await
            {
                tracing::warn!(error = %err, key, "could not record platform pushback");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalLimiter;
    use inbox_core::BudgetOperation;

    fn telegram() -> Vec<RateBudget> {
        vec![
            RateBudget::new(
                "send_per_chat",
                BudgetScope::Conversation,
                BudgetOperation::Send,
                1,
                Duration::from_secs(1),
            ),
            RateBudget::new(
                "send_per_bot",
                BudgetScope::Account,
                BudgetOperation::Send,
                30,
                Duration::from_secs(1),
            )
            .with_burst(10),
        ]
    }

    fn budgets(overrides: &str) -> PlatformBudgets {
        let overrides = crate::parse_overrides(overrides).unwrap();
        PlatformBudgets::new(Arc::new(LocalLimiter::new()), overrides)
    }

    #[test]
    fn overrides_replace_declared_budgets_and_keep_the_burst_within_the_count() {
        let budgets = budgets("telegram.send_per_chat=2/10s burst 2, telegram.send_per_bot=5/s");
        budgets
            .register(PlatformKind::Telegram, &telegram())
            .unwrap();
        let enforced = budgets.budgets_of(PlatformKind::Telegram);
        assert_eq!(enforced[0].budget.name, "send_per_chat");
        assert_eq!((enforced[0].budget.count, enforced[0].budget.burst), (2, 2));
        assert_eq!(
            enforced[0].quota.emission_interval(),
            Duration::from_secs(10)
        );
        assert!(enforced[0].overridden);
        // The declared burst of 10 is capped at the new count.
        assert_eq!(enforced[1].budget.count, 5);
        assert_eq!(enforced[1].budget.burst, 5);
    }

    #[test]
    fn unknown_budgets_and_platforms_are_refused_with_the_known_names() {
        let typo = budgets("telegram.send_per_chatt=1/s");
        let err = typo
            .register(PlatformKind::Telegram, &telegram())
            .unwrap_err();
        assert!(err.contains("send_per_chat, send_per_bot"), "{err}");
        let stray = budgets("reddit.requests=100/60s");
        let mut registry = PlatformRegistry::new();
        registry.register(Arc::new(
            inbox_testkit::memory_platform::MemoryPlatform::new(PlatformKind::Telegram),
        ));
        let err = stray.register_all(&registry).unwrap_err();
        assert!(err.contains("reddit is not configured"), "{err}");
    }

    #[tokio::test]
    async fn a_call_draws_from_every_scope_it_names() {
        let budgets = budgets("");
        budgets
            .register(PlatformKind::Telegram, &telegram())
            .unwrap();
        let chat = |id| {
            BudgetCall::new(PlatformKind::Telegram, BudgetOperation::Send, "bot")
                .in_conversation(id)
        };
        budgets.acquire(&chat("1")).await.unwrap();
        // The same chat is spent for a second; another chat of the bot is not.
        let refused = budgets.acquire(&chat("1")).await.unwrap_err();
        assert!(
            matches!(refused, Error::RateLimited { retry_after } if retry_after <= Duration::from_secs(1))
        );
        budgets.acquire(&chat("2")).await.unwrap();
        // Reads count against no Telegram budget.
        let read = BudgetCall::new(PlatformKind::Telegram, BudgetOperation::Read, "bot");
        for _ in 0..100 {
            budgets.acquire(&read).await.unwrap();
        }
        // Platforms without budgets are never limited.
        let x = BudgetCall::new(PlatformKind::X, BudgetOperation::Send, "u");
        budgets.acquire(&x).await.unwrap();
    }

    #[tokio::test]
    async fn pushback_holds_the_named_budget_until_the_reset() {
        let budgets = budgets("");
        budgets
            .register(PlatformKind::Telegram, &telegram())
            .unwrap();
        let call = BudgetCall::new(PlatformKind::Telegram, BudgetOperation::Send, "bot")
            .in_conversation("7");
        budgets
            .report(&BudgetReport {
                call,
                budget: Some("send_per_chat"),
                pushback: Pushback::Exhausted {
                    retry_after: Duration::from_secs(30),
                },
            })
            .await;
        let err = budgets.acquire(&call).await.unwrap_err();
        assert!(
            matches!(err, Error::RateLimited { retry_after } if retry_after > Duration::from_secs(29))
        );
        // The bot's other chats are untouched.
        budgets.acquire(&call.in_conversation("8")).await.unwrap();
    }

    #[test]
    fn usage_reports_block_only_when_fewer_calls_remain_than_the_budget_allows() {
        let quota = Quota::within_window(15, Duration::from_secs(900), 1).unwrap();
        let exhausted = Pushback::Remaining {
            remaining: 0,
            reset_after: Duration::from_secs(300),
        };
        assert_eq!(block_for(exhausted, quota), Some(Duration::from_secs(300)));
        let two_left = Pushback::Remaining {
            remaining: 2,
            reset_after: Duration::from_secs(300),
        };
        assert_eq!(block_for(two_left, quota), Some(Duration::from_secs(180)));
        let plenty = Pushback::Remaining {
            remaining: 10,
            reset_after: Duration::from_secs(300),
        };
        assert_eq!(block_for(plenty, quota), None);
    }
}
