//! The Redis limiter: GCRA in one atomic Lua script (`src/lua/check.lua`, also
//! [`CHECK_SCRIPT`]), with Redis's own clock, shared by every replica.
//!
//! Decisions are batched, like group commit: concurrent `check` calls queue to one
//! dispatcher task, which sends whatever has queued (up to [`MAX_BATCH`] decisions) as one
//! script run while earlier batches are still in flight. The script's fixed cost — the call,
//! reading `TIME` — is paid once per batch and each bucket is read and written once per batch,
//! which is what lets one Redis serve many times more decisions than one script run per
//! decision would. Under light load a batch holds one decision and adds only a channel hop.
//!
//! The scripts are loaded once (`SCRIPT LOAD`, checking that Redis computed the same SHA-1
//! as we did) and run by hash (`EVALSHA`); a Redis that lost them (restart, `SCRIPT FLUSH`)
//! answers `NOSCRIPT`, and the script is loaded again and the call repeated once. One
//! `ConnectionManager` multiplexes every call over one connection (pipelining concurrent
//! calls) and reconnects by itself.
//!
//! Every reply is validated strictly — shape, types and the relations between the numbers.
//! Anything else (an error reply, a timeout, a missing or malformed reply) is an error, which
//! the [fallback](crate::FallbackLimiter) treats as Redis being down: never as "allowed".

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{Semaphore, mpsc, oneshot};

use async_trait::async_trait;
use redis::{
    ErrorKind, ServerErrorKind, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use crate::{
    Backend, Bucket, Decision, LimitError, MAX_PERIOD, RateLimiter,
    limiter::validate,
    metrics::{self, DecisionCounters, RedisTimer},
};

/// The check script's source.
pub const CHECK_SCRIPT: &str = include_str!("lua/check.lua");
/// The penalty script's source.
pub const PENALIZE_SCRIPT: &str = include_str!("lua/penalize.lua");

/// The most decisions one script run makes. Large enough to amortise the call, small enough
/// that one run stays well under a millisecond of Redis's single thread.
pub const MAX_BATCH: usize = 256;

/// Batches on the connection at once: while they are in flight the next batch fills up.
const BATCHES_IN_FLIGHT: usize = 2;

/// One queued decision: its buckets' keys, its script arguments (bucket count, cost, then
/// each bucket's interval and burst) and where to send its 5-integer reply.
struct Pending {
    keys: Vec<String>,
    args: Vec<u64>,
    reply: oneshot::Sender<Result<Value, LimitError>>,
}

/// How the Redis limiter talks to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS where the build has
    /// it).
    pub url: String,
    /// The longest a decision may wait for Redis before it counts as down. Default 250 ms: a
    /// loopback or same-zone Redis answers in well under a millisecond, and a request should
    /// not stall behind a sick one.
    pub timeout: Duration,
}

impl RedisConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            timeout: Duration::from_millis(250),
        }
    }
}

/// A script as loaded: its source and SHA-1.
#[derive(Debug)]
struct LoadedScript {
    name: &'static str,
    source: &'static str,
    sha: String,
}

impl LoadedScript {
    fn new(name: &'static str, source: &'static str) -> Self {
        LoadedScript {
            name,
            source,
            sha: redis::Script::new(source).get_hash().to_owned(),
        }
    }
}

/// The Redis limiter. Cheap to clone. The dispatcher task ends when the last clone is dropped.
#[derive(Clone)]
pub struct RedisLimiter {
    inner: Arc<Inner>,
    queue: mpsc::Sender<Pending>,
}

struct Inner {
    manager: ConnectionManager,
    url_for_logs: String,
    timeout: Duration,
    check: LoadedScript,
    penalize: LoadedScript,
    counters: DecisionCounters,
    timer: RedisTimer,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("url", &self.inner.url_for_logs)
            .field("timeout", &self.inner.timeout)
            .field("check_sha", &self.inner.check.sha)
            .finish_non_exhaustive()
    }
}

/// The URL without its password, for logs and readiness reports.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://…@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl RedisLimiter {
    /// A limiter for the Redis at `config.url`. Connects lazily: no I/O happens here, so a
    /// gateway starts even while Redis is down. Must be called inside a Tokio runtime (the
    /// connection manager spawns its task).
    ///
    /// # Errors
    /// [`LimitError::Redis`] for a URL the client does not understand, or when called outside
    /// a Tokio runtime.
    pub fn new(config: &RedisConfig) -> Result<Self, LimitError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(LimitError::Redis(
                "the Redis limiter must be created inside a Tokio runtime".to_owned(),
            ));
        }
        let client = redis::Client::open(config.url.as_str())
            .map_err(|err| LimitError::Redis(format!("invalid Redis URL: {err}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(config.timeout))
            // Reconnect quickly and give up quickly: while Redis is away the fallback answers
            // and its probe keeps trying.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|err| LimitError::Redis(err.to_string()))?;
        let inner = Arc::new(Inner {
            manager,
            url_for_logs: redact_url(&config.url),
            timeout: config.timeout,
            check: LoadedScript::new("check", CHECK_SCRIPT),
            penalize: LoadedScript::new("penalize", PENALIZE_SCRIPT),
            counters: DecisionCounters::new(Backend::Redis),
            timer: RedisTimer::new(),
        });
        let (queue, pending) = mpsc::channel(MAX_BATCH * BATCHES_IN_FLIGHT * 4);
        let limiter = RedisLimiter { inner, queue };
        tokio::spawn(dispatch(limiter.inner.clone(), pending));
        Ok(limiter)
    }

    /// The URL, without password.
    pub fn url(&self) -> &str {
        &self.inner.url_for_logs
    }

    /// The SHA-1 of the check script, as `EVALSHA` takes it.
    pub fn check_script_sha(&self) -> &str {
        &self.inner.check.sha
    }

    /// Checks that Redis answers and holds both scripts: `PING`, then `SCRIPT LOAD` of each.
    ///
    /// # Errors
    /// Any failure, including a `PONG` that is not one.
    pub async fn probe(&self) -> Result<(), LimitError> {
        let reply = self.run(redis::cmd("PING")).await?;
        match reply {
            Value::SimpleString(ref pong) if pong == "PONG" => {}
            other => return Err(malformed(format!("PING answered {other:?}"))),
        }
        load(&self.inner, &self.inner.check).await?;
        load(&self.inner, &self.inner.penalize).await
    }

    /// Runs one command under the timeout, timing it.
    async fn run(&self, command: redis::Cmd) -> Result<Value, LimitError> {
        timed_query(&self.inner, &command)
            .await
            .map_err(|err| err.map_or_else(|| timed_out(&self.inner), |err| redis_failure(&err)))
    }
}

/// The dispatcher: takes the first queued decision, waits for a free batch slot (while it
/// waits, more decisions queue), adds everything queued up to [`MAX_BATCH`], and runs the
/// batch in its own task.
async fn dispatch(inner: Arc<Inner>, mut pending: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = pending.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            run_batch(&inner, batch).await;
            drop(slot);
        });
    }
}

/// Runs one batch and answers every decision in it: its own 5 integers, or the batch's error.
async fn run_batch(inner: &Inner, batch: Vec<Pending>) {
    metrics::batch_size(batch.len());
    let mut keys: Vec<&str> = Vec::new();
    let mut args: Vec<u64> =
        Vec::with_capacity(1 + batch.iter().map(|p| p.args.len()).sum::<usize>());
    args.push(batch.len() as u64);
    for pending in &batch {
        keys.extend(pending.keys.iter().map(String::as_str));
        args.extend_from_slice(&pending.args);
    }
    let reply = eval(inner, &inner.check, &keys, &args).await;
    let replies = reply.and_then(|reply| split_batch_reply(reply, batch.len()));
    match replies {
        Ok(replies) => {
            for (pending, reply) in batch.into_iter().zip(replies) {
                let _ = pending.reply.send(Ok(reply));
            }
        }
        Err(err) => {
            for pending in batch {
                let _ = pending.reply.send(Err(err.clone()));
            }
        }
    }
}

/// Splits a batch reply into each decision's 5 integers; any other shape is malformed.
fn split_batch_reply(reply: Value, decisions: usize) -> Result<Vec<Value>, LimitError> {
    match reply {
        Value::Array(items) if items.len() == decisions * 5 => Ok(items
            .chunks(5)
            .map(|chunk| Value::Array(chunk.to_vec()))
            .collect()),
        other => Err(malformed(format!(
            "the batch reply {other:?} does not hold 5 integers for each of {decisions} decisions"
        ))),
    }
}

/// `EVALSHA` under the timeout, loading the script again once when Redis lost it.
async fn eval(
    inner: &Inner,
    script: &LoadedScript,
    keys: &[&str],
    args: &[u64],
) -> Result<Value, LimitError> {
    let mut command = redis::cmd("EVALSHA");
    command.arg(&script.sha).arg(keys.len()).arg(keys).arg(args);
    match timed_query(inner, &command).await {
        Err(Some(err)) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            tracing::info!(
                script = script.name,
                "Redis lost the rate-limit script; loading it again"
            );
            load(inner, script).await?;
            timed_query(inner, &command)
                .await
                .map_err(|err| err.map_or_else(|| timed_out(inner), |err| redis_failure(&err)))
        }
        other => {
            other.map_err(|err| err.map_or_else(|| timed_out(inner), |err| redis_failure(&err)))
        }
    }
}

/// Runs one command under the timeout, timing it; `Err(None)` is a timeout.
async fn timed_query(
    inner: &Inner,
    command: &redis::Cmd,
) -> Result<Value, Option<redis::RedisError>> {
    let mut manager = inner.manager.clone();
    let started = Instant::now();
    let outcome =
        tokio::time::timeout(inner.timeout, command.query_async::<Value>(&mut manager)).await;
    inner.timer.record(started.elapsed());
    match outcome {
        Ok(result) => result.map_err(Some),
        Err(_elapsed) => Err(None),
    }
}

/// `SCRIPT LOAD`, checking Redis computed the SHA-1 we run by.
async fn load(inner: &Inner, script: &LoadedScript) -> Result<(), LimitError> {
    let command = redis::cmd("SCRIPT").arg("LOAD").arg(script.source).clone();
    let reply = timed_query(inner, &command)
        .await
        .map_err(|err| err.map_or_else(|| timed_out(inner), |err| redis_failure(&err)))?;
    match reply {
        Value::BulkString(ref sha) if sha.as_slice() == script.sha.as_bytes() => Ok(()),
        other => Err(malformed(format!(
            "SCRIPT LOAD of the {} script answered {other:?}, expected {}",
            script.name, script.sha
        ))),
    }
}

fn timed_out(inner: &Inner) -> LimitError {
    metrics::redis_error("timeout");
    LimitError::Redis(format!("no answer within {} ms", inner.timeout.as_millis()))
}

fn redis_failure(err: &redis::RedisError) -> LimitError {
    metrics::redis_error("error");
    LimitError::Redis(err.to_string())
}

fn malformed(message: String) -> LimitError {
    metrics::redis_error("malformed");
    LimitError::Malformed(message)
}

/// One decision's arguments in the batch script: its bucket count and cost, then each
/// bucket's interval and burst.
fn check_args(buckets: &[Bucket<'_>], cost: u32) -> Vec<u64> {
    let mut args = Vec::with_capacity(2 + 2 * buckets.len());
    args.push(buckets.len() as u64);
    args.push(u64::from(cost));
    for bucket in buckets {
        args.push(bucket.quota.emission_micros());
        args.push(u64::from(bucket.quota.burst()));
    }
    args
}

/// Validates the check script's reply against what the buckets make possible. Anything
/// else is [`LimitError::Malformed`].
pub fn parse_check_reply(reply: &Value, buckets: &[Bucket<'_>]) -> Result<Decision, LimitError> {
    let bad = |why: &str| Err(malformed(format!("{why} in the check reply {reply:?}")));
    let Value::Array(items) = reply else {
        return bad("not an array");
    };
    let mut numbers = [0i64; 5];
    if items.len() != numbers.len() {
        return bad("not five items");
    }
    for (slot, item) in numbers.iter_mut().zip(items) {
        match item {
            Value::Int(n) => *slot = *n,
            _ => return bad("a non-integer item"),
        }
    }
    let [allowed, limit, remaining, retry_us, reset_us] = numbers;
    let limits: Vec<i64> = buckets.iter().map(|b| i64::from(b.quota.burst())).collect();
    // The longest any wait can be: a penalty (at most MAX_PERIOD) on top of a full bucket.
    let longest_us = buckets
        .iter()
        .map(|b| b.quota.refill_time() + MAX_PERIOD)
        .max()
        .map_or(0, |longest| {
            i64::try_from(longest.as_micros()).unwrap_or(i64::MAX)
        });
    let consistent = matches!(allowed, 0 | 1)
        && limits.contains(&limit)
        && (0..=limit).contains(&remaining)
        && (0..=longest_us).contains(&reset_us)
        && if allowed == 1 {
            retry_us == 0 && reset_us > 0
        } else {
            remaining == 0 && retry_us > 0 && retry_us <= longest_us
        };
    if !consistent {
        return bad("inconsistent numbers");
    }
    let micros = |n: i64| Duration::from_micros(u64::try_from(n).unwrap_or(0));
    Ok(Decision {
        allowed: allowed == 1,
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
        remaining: u32::try_from(remaining).unwrap_or(0),
        retry_after: micros(retry_us),
        reset_after: micros(reset_us),
    })
}

/// Validates the penalty script's reply: the time until the next call, at least the block.
pub fn parse_penalize_reply(reply: &Value, block: Duration) -> Result<Duration, LimitError> {
    let block_us = i64::try_from(block.as_micros()).unwrap_or(i64::MAX);
    match reply {
        Value::Int(n) if *n >= block_us => {
            Ok(Duration::from_micros(u64::try_from(*n).unwrap_or(0)))
        }
        other => Err(malformed(format!(
            "the penalty reply {other:?} is not a wait of at least {block_us} µs"
        ))),
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, buckets: &[Bucket<'_>], cost: u32) -> Result<Decision, LimitError> {
        validate(buckets, cost)?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            keys: buckets.iter().map(|bucket| bucket.key.to_owned()).collect(),
            args: check_args(buckets, cost),
            reply,
        };
        // Queueing and the batch's run together may take no longer than one call may.
        let waited = tokio::time::timeout(self.inner.timeout, async {
            self.queue
                .send(pending)
                .await
                .map_err(|_| LimitError::Redis("the Redis dispatcher has stopped".to_owned()))?;
            answer.await.map_err(|_| {
                LimitError::Redis("the Redis dispatcher dropped a decision".to_owned())
            })?
        })
        .await;
        let reply = match waited {
            Ok(reply) => reply?,
            Err(_elapsed) => return Err(timed_out(&self.inner)),
        };
        let decision = parse_check_reply(&reply, buckets)?;
        self.inner.counters.record(decision.allowed);
        Ok(decision)
    }

    async fn penalize(&self, bucket: &Bucket<'_>, block: Duration) -> Result<(), LimitError> {
        let block = block.min(MAX_PERIOD);
        let block_us = u64::try_from(block.as_micros()).unwrap_or(u64::MAX);
        let args = [
            bucket.quota.emission_micros(),
            u64::from(bucket.quota.burst()),
            block_us,
        ];
        let reply = eval(&self.inner, &self.inner.penalize, &[bucket.key], &args).await?;
        parse_penalize_reply(&reply, block).map(|_| ())
    }

    fn backend(&self) -> Backend {
        Backend::Redis
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::Quota;

    fn bucket(burst: u32) -> Bucket<'static> {
        Bucket::new(
            "k",
            Quota::per_period(burst, Duration::from_secs(u64::from(burst))).unwrap(),
        )
    }

    fn ints(values: &[i64]) -> Value {
        Value::Array(values.iter().map(|n| Value::Int(*n)).collect())
    }

    #[test]
    fn well_formed_replies_become_decisions() {
        let buckets = [bucket(10)];
        let allowed = parse_check_reply(&ints(&[1, 10, 9, 0, 1_000_000]), &buckets).unwrap();
        assert!(allowed.allowed);
        assert_eq!((allowed.limit, allowed.remaining), (10, 9));
        assert_eq!(allowed.reset_after, Duration::from_secs(1));
        let refused = parse_check_reply(&ints(&[0, 10, 0, 500_000, 10_000_000]), &buckets).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(500));
    }

    #[test]
    fn anything_else_is_malformed_never_allowed() {
        let buckets = [bucket(10)];
        let cases = [
            Value::Nil,
            Value::Int(1),
            Value::Okay,
            Value::SimpleString("OK".into()),
            Value::BulkString(b"1".to_vec()),
            ints(&[]),
            ints(&[1, 10, 9, 0]),
            ints(&[1, 10, 9, 0, 5, 6]),
            Value::Array(vec![
                Value::BulkString(b"1".to_vec()),
                Value::Int(10),
                Value::Int(9),
                Value::Int(0),
                Value::Int(5),
            ]),
            ints(&[2, 10, 9, 0, 5]),                  // allowed is not a flag
            ints(&[1, 11, 9, 0, 5]),                  // no bucket has that limit
            ints(&[1, 10, 11, 0, 5]),                 // more left than the limit
            ints(&[1, 10, -1, 0, 5]),                 // negative remaining
            ints(&[1, 10, 9, 7, 5]),                  // allowed with a wait
            ints(&[1, 10, 9, 0, 0]),                  // allowed without a charge
            ints(&[0, 10, 0, 0, 5]),                  // refused without a wait
            ints(&[0, 10, 3, 9, 5]),                  // refused with calls left
            ints(&[0, 10, 0, 40_000_000_000_000, 5]), // a wait longer than any penalty
            ints(&[1, 10, 9, 0, i64::MAX]),           // "allowed forever"
        ];
        for reply in cases {
            let result = parse_check_reply(&reply, &buckets);
            assert!(
                matches!(result, Err(LimitError::Malformed(_))),
                "{reply:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn batch_replies_split_per_decision_or_are_malformed() {
        let two = ints(&[1, 10, 9, 0, 100, 0, 10, 0, 5, 100]);
        let split = split_batch_reply(two, 2).unwrap();
        assert_eq!(
            split,
            [ints(&[1, 10, 9, 0, 100]), ints(&[0, 10, 0, 5, 100])]
        );
        for (reply, decisions) in [
            (ints(&[1, 10, 9, 0, 100]), 2),
            (ints(&[1, 10, 9, 0, 100, 1]), 1),
            (Value::Nil, 1),
            (Value::Okay, 1),
        ] {
            assert!(
                matches!(
                    split_batch_reply(reply.clone(), decisions),
                    Err(LimitError::Malformed(_))
                ),
                "{reply:?} for {decisions}"
            );
        }
    }

    #[test]
    fn penalty_replies_must_cover_the_block() {
        let block = Duration::from_secs(2);
        assert_eq!(
            parse_penalize_reply(&Value::Int(3_000_000), block).unwrap(),
            Duration::from_secs(3)
        );
        for reply in [Value::Int(1_999_999), Value::Nil, Value::Okay] {
            assert!(parse_penalize_reply(&reply, block).is_err(), "{reply:?}");
        }
    }

    #[test]
    fn urls_lose_their_password_in_logs() {
        assert_eq!(
            redact_url("redis://:secret@cache:6379/0"),
            "redis://…@cache:6379/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
    }

    #[test]
    fn script_hashes_are_sha1_hex() {
        let script = LoadedScript::new("check", CHECK_SCRIPT);
        assert_eq!(script.sha.len(), 40);
        assert!(script.sha.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
