//! Participant names the webhook did not carry. Meta webhooks name people by id only, so an
//! adapter sets `name == id` and says `profile_lookup` in its capabilities; before the
//! processor applies such events it names the participant, cheapest source first:
//!
//! 1. the stored conversation, when it already knows a real name (so a known name is never
//!    overwritten by a bare id);
//! 2. an in-process cache (TTL, bounded), also of failed lookups, so a person whose profile is
//!    closed (Instagram code 230) is not asked for on every message;
//! 3. the platform's profile API through `Platform::fetch_participant`, charged to the
//!    account's read budget first (nothing is called when the budget is spent).
//!
//! A lookup that fails or is not allowed keeps the id as the name and never fails the batch.
//! Echoes, whose sender is the account itself, are named after the account.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use inbox_core::{
    Account, AccountId, AccountStatus, BudgetCall, BudgetOperation, DynPlatform, InboundKind,
    InboundMessage, Participant, RateBudgets,
};
use inbox_store::Store;

/// How long a failed lookup is remembered before the platform is asked again.
const NEGATIVE_TTL: Duration = Duration::from_secs(600);

/// Whether a participant is only known by id (adapters set `name == id` when the platform
/// gives no name).
pub fn is_unnamed(participant: &Participant) -> bool {
    participant.name.is_empty() || participant.name == participant.id
}

type Entry = (Instant, Option<Participant>);

/// Looked-up profiles of this process, per account and participant.
#[derive(Debug, Clone)]
pub struct ProfileCache {
    entries: Arc<Mutex<HashMap<(AccountId, String), Entry>>>,
    ttl: Duration,
    capacity: usize,
}

impl ProfileCache {
    /// A cache keeping found profiles for `ttl` and at most `capacity` entries.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        ProfileCache {
            entries: Arc::default(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// `Some(found)` when the cache has a fresh answer (`None` inside: the lookup failed).
    fn get(&self, account: &AccountId, id: &str) -> Option<Option<Participant>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, found) = entries.get(&(account.clone(), id.to_owned()))?;
        let ttl = if found.is_some() {
            self.ttl
        } else {
            NEGATIVE_TTL.min(self.ttl)
        };
        (at.elapsed() < ttl).then(|| found.clone())
    }

    fn put(&self, account: &AccountId, id: &str, found: Option<Participant>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            // Evict the oldest tenth at once, so eviction's cost is spread out.
            let mut ages: Vec<_> = entries
                .iter()
                .map(|(key, (at, _))| (*at, key.clone()))
                .collect();
            ages.sort_by_key(|(at, _)| *at);
            for (_, key) in ages.into_iter().take(self.capacity.div_ceil(10)) {
                entries.remove(&key);
            }
        }
        entries.insert((account.clone(), id.to_owned()), (Instant::now(), found));
    }
}

/// What naming needs: the cache and the budgets lookups are charged to.
#[derive(Debug, Clone)]
pub struct Profiles {
    /// The cache.
    pub cache: ProfileCache,
    /// The rate budgets (the server's limiter; `Unlimited` in tests).
    pub budgets: Arc<dyn RateBudgets>,
}

impl Profiles {
    /// Names the participants of `kinds` for `account` in place.
    pub async fn name_participants(
        &self,
        store: &dyn Store,
        platform: &DynPlatform,
        account: &Account,
        kinds: &mut [InboundKind],
    ) {
        let mut resolved: HashMap<String, Option<Participant>> = HashMap::new();
        let mut context = None;
        for kind in kinds.iter_mut() {
            let message = match kind {
                InboundKind::Message(message) | InboundKind::Edited { message, .. } => message,
                _ => continue,
            };
            name_own_sender(message, account);
            if !is_unnamed(&message.participant) {
                continue;
            }
            let id = message.participant.id.clone();
            if !resolved.contains_key(&id) {
                let found = self
                    .resolve(
                        store,
                        platform,
                        account,
                        &message.platform_conversation_id,
                        &id,
                        &mut context,
                    )
                    .await;
                resolved.insert(id.clone(), found);
            }
            if let Some(Some(found)) = resolved.get(&id) {
                apply(message, found);
            }
        }
    }

    async fn resolve(
        &self,
        store: &dyn Store,
        platform: &DynPlatform,
        account: &Account,
        conversation: &str,
        id: &str,
        context: &mut Option<inbox_core::AccountContext>,
    ) -> Option<Participant> {
        match store.find_conversation(&account.id, conversation).await {
            Ok(Some(stored)) if stored.participant.id == id && !is_unnamed(&stored.participant) => {
                return Some(stored.participant);
            }
            Ok(_) => {}
            Err(err) => tracing::debug!(error = %err, "reading the stored participant failed"),
        }
        if let Some(cached) = self.cache.get(&account.id, id) {
            return cached;
        }
        if !platform.capabilities().profile_lookup || account.status != AccountStatus::Active {
            return None;
        }
        let call = BudgetCall::new(
            account.platform,
            BudgetOperation::Read,
            &account.platform_account_id,
        )
        .in_conversation(conversation)
        .to_recipient(id);
        if let Err(err) = self.budgets.acquire(&call).await {
            // Not cached: the next message may find budget again.
            tracing::debug!(account = %account.id, error = %err, "no read budget for a profile lookup; the id stays the name");
            return None;
        }
        if context.is_none() {
            match store.account_context(&account.id).await {
                Ok(loaded) => *context = Some(loaded),
                Err(err) => {
                    tracing::debug!(error = %err, "loading credentials for a profile lookup failed");
                    return None;
                }
            }
        }
        let context = context.as_ref()?;
        let found = match platform.fetch_participant(context, id).await {
            Ok(found) if found.id == id && !is_unnamed(&found) => Some(found),
            Ok(_) => None,
            Err(err) => {
                tracing::debug!(account = %account.id, error = %err, "profile lookup failed; the id stays the name");
                metrics::counter!("inbox_profile_lookup_failures_total", "platform" => account.platform.as_str())
                    .increment(1);
                None
            }
        };
        self.cache.put(&account.id, id, found.clone());
        found
    }
}

/// An echo's sender is the account itself: named as the account.
fn name_own_sender(message: &mut InboundMessage, account: &Account) {
    if message.sender.id == account.platform_account_id && is_unnamed(&message.sender) {
        message.sender = Participant {
            id: account.platform_account_id.clone(),
            name: account.name.clone(),
            username: account.username.clone(),
            picture: None,
        };
    }
}

fn apply(message: &mut InboundMessage, found: &Participant) {
    let mut named = found.clone();
    // What the webhook said (a username) wins over an older lookup's.
    if named.username.is_none() {
        named.username = message.participant.username.clone();
    }
    if message.sender.id == named.id {
        message.sender = named.clone();
    }
    message.participant = named;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, name: &str) -> Participant {
        Participant {
            id: id.into(),
            name: name.into(),
            username: None,
            picture: None,
        }
    }

    #[test]
    fn the_cache_expires_and_stays_bounded() {
        let cache = ProfileCache::new(Duration::from_secs(60), 10);
        let account = AccountId::new();
        cache.put(&account, "1", Some(person("1", "Ada")));
        assert_eq!(cache.get(&account, "1"), Some(Some(person("1", "Ada"))));
        assert_eq!(cache.get(&account, "2"), None);
        cache.put(&account, "2", None);
        assert_eq!(
            cache.get(&account, "2"),
            Some(None),
            "failures are remembered"
        );
        for n in 0..25 {
            cache.put(&account, &n.to_string(), None);
        }
        assert!(cache.entries.lock().unwrap().len() <= 10);
        let expired = ProfileCache::new(Duration::ZERO, 10);
        expired.put(&account, "1", Some(person("1", "Ada")));
        assert_eq!(expired.get(&account, "1"), None);
    }

    #[test]
    fn unnamed_means_named_by_id() {
        assert!(is_unnamed(&person("1", "1")));
        assert!(is_unnamed(&person("1", "")));
        assert!(!is_unnamed(&person("1", "Ada")));
    }
}
