//! The Redis limiter: GCRA in one atomic Lua script (`src/lua/check.lua`, also
//! [`CHECK_SCRIPT`]), with Redis's own clock, shared by every replica.
//!
//! Decisions are batched, like group commit: concurrent `check` calls queue to one
//! dispatcher task, which sends whatever has queued (up to [`MAX_BATCH`] decisions) as one
//! script run while earlier batches are still in flight. The script's fixed cost — the call,
//! reading `TIME` — is paid once per batch and the buckets are read with one `HMGET` and
//! written with one `HSET` per batch, which is what lets one Redis serve many times more
//! decisions than one script run per decision would. Within a batch, decisions of the same
//! shape (cost and quotas) are grouped so that each costs one argument, TATs are stored as
//! 8-byte doubles and the answers come back as one packed string: Redis then spends its time
//! on the decisions, not on converting numbers (docs/benchmarks.md has the figures). Under
//! light load a batch holds one decision and adds only a channel hop.
//!
//! Every bucket is a field of one hash, [`BUCKETS`] (a key per bucket would need an expiry
//! to stay bounded, and setting one doubles the cost of each write). A full bucket and an
//! absent one mean the same, so a sweep deletes the fields of full buckets: each process
//! tries every [`SWEEP_EVERY`], and a short lock lets one of them do it.
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
    sync::{Arc, Weak},
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
/// The sweep script's source.
pub const SWEEP_SCRIPT: &str = include_str!("lua/sweep.lua");

/// The hash holding every bucket: field = the bucket's key (see [`crate::key`]), value = its
/// theoretical arrival time in microseconds of Redis's clock, as 8 bytes (a little-endian
/// IEEE 754 double: the scripts read and write it without a decimal conversion).
pub const BUCKETS: &str = "inboxgw:rl:buckets";

/// How often each process offers to sweep full buckets out of [`BUCKETS`].
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The lock that lets one process sweep per round; it lapses before the next round.
const SWEEP_LOCK: &str = "inboxgw:rl:sweeping";

/// Fields one sweep step looks at: small enough that a step never holds Redis's thread long.
const SWEEP_STEP: u32 = 500;

/// The most decisions one script run makes. Large enough to amortise the call, small enough
/// that one run stays well under a millisecond of Redis's single thread.
pub const MAX_BATCH: usize = 256;

/// Batches on the connection at once: while they are in flight the next batch fills up.
const BATCHES_IN_FLIGHT: usize = 2;

/// One queued decision: its buckets (key, interval µs, burst), its cost, and where to send
/// its answer.
struct Pending {
    buckets: Vec<(String, u64, u32)>,
    cost: u32,
    reply: oneshot::Sender<Result<CheckReply, LimitError>>,
}

/// One decision's answer from the check script, before [`parse_check_reply`] validates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckReply {
    /// 1 allowed, 0 refused; anything else is malformed.
    pub allowed: u8,
    /// The burst of the bucket the other numbers describe.
    pub limit: u32,
    /// Calls left in that bucket.
    pub remaining: u32,
    /// Microseconds until a refused call may be retried; 0 when allowed.
    pub retry_after_us: i64,
    /// Microseconds until every bucket the call named is full again.
    pub reset_after_us: i64,
}

/// The bytes of one [`CheckReply`] in the script's answer (struct `<BI4I4i8i8`).
const CHECK_REPLY_BYTES: usize = 25;

impl CheckReply {
    /// Decodes one record of the script's answer.
    fn decode(record: &[u8; CHECK_REPLY_BYTES]) -> CheckReply {
        let u32_at =
            |at: usize| u32::from_le_bytes(record[at..at + 4].try_into().unwrap_or([0; 4]));
        let i64_at =
            |at: usize| i64::from_le_bytes(record[at..at + 8].try_into().unwrap_or([0; 8]));
        CheckReply {
            allowed: record[0],
            limit: u32_at(1),
            remaining: u32_at(5),
            retry_after_us: i64_at(9),
            reset_after_us: i64_at(17),
        }
    }
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
    sweep: LoadedScript,
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
            sweep: LoadedScript::new("sweep", SWEEP_SCRIPT),
            counters: DecisionCounters::new(Backend::Redis),
            timer: RedisTimer::new(),
        });
        let (queue, pending) = mpsc::channel(MAX_BATCH * BATCHES_IN_FLIGHT * 4);
        let limiter = RedisLimiter { inner, queue };
        tokio::spawn(dispatch(limiter.inner.clone(), pending));
        tokio::spawn(sweep_periodically(Arc::downgrade(&limiter.inner)));
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
        load(&self.inner, &self.inner.penalize).await?;
        load(&self.inner, &self.inner.sweep).await
    }

    /// Deletes every full bucket from [`BUCKETS`] now, in steps of a few hundred fields, and
    /// returns how many it deleted. The periodic sweep calls this; it is safe to run from
    /// several processes at once (each step re-reads the clock and the fields it deletes).
    ///
    /// # Errors
    /// The first failing step's error; the next sweep starts over.
    pub async fn sweep(&self) -> Result<u64, LimitError> {
        sweep_all(&self.inner).await
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
        // A slot frees when a batch's replies arrive, which wakes that batch's callers at the
        // same moment; letting them run first means their next decisions join this batch
        // instead of trickling into many small ones.
        tokio::task::yield_now().await;
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

/// Runs one batch and answers every decision in it: its own record, or the batch's error.
async fn run_batch(inner: &Inner, batch: Vec<Pending>) {
    metrics::batch_size(batch.len());
    let groups = group_by_shape(&batch);
    let mut command = script_call(&inner.check);
    command.arg(groups.len());
    for group in &groups {
        let shape = &batch[group[0]];
        command.arg(shape.buckets.len()).arg(shape.cost);
        for (_, interval, burst) in &shape.buckets {
            command.arg(interval).arg(burst);
        }
        command.arg(group.len());
        for &index in group {
            for (key, _, _) in &batch[index].buckets {
                command.arg(key);
            }
        }
    }
    let reply = eval(inner, &inner.check, &command).await;
    let replies = reply.and_then(|reply| split_batch_reply(reply, batch.len()));
    match replies {
        Ok(replies) => {
            // The replies come in argument order, group after group; the groups partition
            // the batch, so sorting by index gives every decision exactly its own reply.
            let mut answers: Vec<(usize, CheckReply)> =
                groups.iter().flatten().copied().zip(replies).collect();
            answers.sort_unstable_by_key(|(index, _)| *index);
            for (pending, (_, answer)) in batch.into_iter().zip(answers) {
                let _ = pending.reply.send(Ok(answer));
            }
        }
        Err(err) => {
            for pending in batch {
                let _ = pending.reply.send(Err(err.clone()));
            }
        }
    }
}

/// The batch's decisions (as indexes) grouped by shape — the same cost over buckets of the
/// same quotas — in order of first appearance, as the check script takes them: each group
/// names its quotas once and then only its decisions' bucket names.
fn group_by_shape(batch: &[Pending]) -> Vec<Vec<usize>> {
    let same_shape = |a: &Pending, b: &Pending| {
        a.cost == b.cost
            && a.buckets.len() == b.buckets.len()
            && a.buckets
                .iter()
                .zip(&b.buckets)
                .all(|((_, t1, b1), (_, t2, b2))| t1 == t2 && b1 == b2)
    };
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (index, pending) in batch.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|group| same_shape(&batch[group[0]], pending))
        {
            Some(group) => group.push(index),
            None => groups.push(vec![index]),
        }
    }
    groups
}

/// Splits a batch reply — one string of [`CHECK_REPLY_BYTES`] per decision — into each
/// decision's record; any other shape is malformed.
fn split_batch_reply(reply: Value, decisions: usize) -> Result<Vec<CheckReply>, LimitError> {
    match reply {
        Value::BulkString(bytes) if bytes.len() == decisions * CHECK_REPLY_BYTES => Ok(bytes
            .as_chunks::<CHECK_REPLY_BYTES>()
            .0
            .iter()
            .map(CheckReply::decode)
            .collect()),
        other => Err(malformed(format!(
            "the batch reply {other:?} does not hold {CHECK_REPLY_BYTES} bytes for each of {decisions} decisions"
        ))),
    }
}

/// `EVALSHA <script> 1 <BUCKETS>`, to which the caller adds the script's arguments.
fn script_call(script: &LoadedScript) -> redis::Cmd {
    let mut command = redis::cmd("EVALSHA");
    command.arg(&script.sha).arg(1).arg(BUCKETS);
    command
}

/// Runs a [`script_call`] under the timeout, loading the script again once when Redis lost
/// it.
async fn eval(
    inner: &Inner,
    script: &LoadedScript,
    command: &redis::Cmd,
) -> Result<Value, LimitError> {
    match timed_query(inner, command).await {
        Err(Some(err)) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            tracing::info!(
                script = script.name,
                "Redis lost the rate-limit script; loading it again"
            );
            load(inner, script).await?;
            timed_query(inner, command)
                .await
                .map_err(|err| err.map_or_else(|| timed_out(inner), |err| redis_failure(&err)))
        }
        other => {
            other.map_err(|err| err.map_or_else(|| timed_out(inner), |err| redis_failure(&err)))
        }
    }
}

/// Every [`SWEEP_EVERY`] (first after a random part of it, so replicas started together do
/// not all try at once), takes the sweep lock if no other process holds it and sweeps. Ends
/// when the limiter is dropped. Failures are logged at debug level: the fallback already
/// reports Redis being down, and the next round starts over.
async fn sweep_periodically(inner: Weak<Inner>) {
    let first = SWEEP_EVERY.mul_f64(rand::random::<f64>());
    tokio::time::sleep(first).await;
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let lock_ms = SWEEP_EVERY.as_millis() * 9 / 10;
        let mut take_lock = redis::cmd("SET");
        take_lock
            .arg(SWEEP_LOCK)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(lock_ms as u64);
        match timed_query(&inner, &take_lock).await {
            Ok(Value::Okay) => match sweep_all(&inner).await {
                Ok(deleted) => tracing::debug!(deleted, "swept full rate-limit buckets"),
                Err(err) => tracing::debug!(error = %err, "sweeping rate-limit buckets failed"),
            },
            Ok(_) => {} // another process sweeps this round
            Err(err) => tracing::debug!(error = ?err, "could not take the sweep lock"),
        }
        drop(inner);
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}

/// Runs the sweep script from cursor `0` until the scan completes; returns fields deleted.
async fn sweep_all(inner: &Inner) -> Result<u64, LimitError> {
    let mut cursor = "0".to_owned();
    let mut deleted = 0;
    loop {
        let mut command = script_call(&inner.sweep);
        command.arg(&cursor).arg(SWEEP_STEP);
        let reply = eval(inner, &inner.sweep, &command).await?;
        let (next, count) = parse_sweep_reply(&reply)?;
        deleted += count;
        metrics::buckets_swept(count);
        if next == "0" {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// Validates a sweep step's reply: `{next cursor, fields deleted}`.
fn parse_sweep_reply(reply: &Value) -> Result<(String, u64), LimitError> {
    match reply {
        Value::Array(items) => match items.as_slice() {
            [Value::BulkString(cursor), Value::Int(count)] if *count >= 0 => {
                match std::str::from_utf8(cursor) {
                    Ok(cursor) if cursor.bytes().all(|b| b.is_ascii_digit()) => {
                        Ok((cursor.to_owned(), u64::try_from(*count).unwrap_or(0)))
                    }
                    _ => Err(malformed(format!("the sweep cursor in {reply:?}"))),
                }
            }
            _ => Err(malformed(format!("the sweep reply {reply:?}"))),
        },
        other => Err(malformed(format!("the sweep reply {other:?}"))),
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

/// Validates the check script's answer for one decision against what the buckets make
/// possible. Anything else is [`LimitError::Malformed`].
pub fn parse_check_reply(
    reply: &CheckReply,
    buckets: &[Bucket<'_>],
) -> Result<Decision, LimitError> {
    let bad = |why: &str| Err(malformed(format!("{why} in the check reply {reply:?}")));
    let allowed = i64::from(reply.allowed);
    let limit = i64::from(reply.limit);
    let remaining = i64::from(reply.remaining);
    let (retry_us, reset_us) = (reply.retry_after_us, reply.reset_after_us);
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
            buckets: buckets
                .iter()
                .map(|bucket| {
                    (
                        bucket.key.to_owned(),
                        bucket.quota.emission_micros(),
                        bucket.quota.burst(),
                    )
                })
                .collect(),
            cost,
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
        let mut command = script_call(&self.inner.penalize);
        command
            .arg(bucket.key)
            .arg(bucket.quota.emission_micros())
            .arg(bucket.quota.burst())
            .arg(block_us);
        let reply = eval(&self.inner, &self.inner.penalize, &command).await?;
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

    fn record(numbers: [i64; 5]) -> CheckReply {
        let [allowed, limit, remaining, retry_after_us, reset_after_us] = numbers;
        CheckReply {
            allowed: u8::try_from(allowed).unwrap(),
            limit: u32::try_from(limit).unwrap(),
            remaining: u32::try_from(remaining).unwrap(),
            retry_after_us,
            reset_after_us,
        }
    }

    /// The script's packing of one record (struct `<BI4I4i8i8`).
    fn packed(numbers: [i64; 5]) -> Vec<u8> {
        let record = record(numbers);
        let mut bytes = vec![record.allowed];
        bytes.extend(record.limit.to_le_bytes());
        bytes.extend(record.remaining.to_le_bytes());
        bytes.extend(record.retry_after_us.to_le_bytes());
        bytes.extend(record.reset_after_us.to_le_bytes());
        bytes
    }

    #[test]
    fn well_formed_replies_become_decisions() {
        let buckets = [bucket(10)];
        let allowed = parse_check_reply(&record([1, 10, 9, 0, 1_000_000]), &buckets).unwrap();
        assert!(allowed.allowed);
        assert_eq!((allowed.limit, allowed.remaining), (10, 9));
        assert_eq!(allowed.reset_after, Duration::from_secs(1));
        let refused =
            parse_check_reply(&record([0, 10, 0, 500_000, 10_000_000]), &buckets).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(500));
    }

    #[test]
    fn inconsistent_numbers_are_malformed_never_allowed() {
        let buckets = [bucket(10)];
        let cases = [
            [2, 10, 9, 0, 5],                  // allowed is not a flag
            [1, 11, 9, 0, 5],                  // no bucket has that limit
            [1, 10, 11, 0, 5],                 // more left than the limit
            [1, 10, 9, 7, 5],                  // allowed with a wait
            [1, 10, 9, 0, 0],                  // allowed without a charge
            [1, 10, 9, 0, -5],                 // a negative reset
            [0, 10, 0, 0, 5],                  // refused without a wait
            [0, 10, 3, 9, 5],                  // refused with calls left
            [0, 10, 0, -9, 5],                 // refused with a negative wait
            [0, 10, 0, 40_000_000_000_000, 5], // a wait longer than any penalty
            [1, 10, 9, 0, i64::MAX],           // "allowed forever"
            [1, 10, 9, 0, i64::MIN],           // a NaN cast by Lua
        ];
        for numbers in cases {
            let result = parse_check_reply(&record(numbers), &buckets);
            assert!(
                matches!(result, Err(LimitError::Malformed(_))),
                "{numbers:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn batch_replies_split_per_decision_or_are_malformed() {
        let mut two = packed([1, 10, 9, 0, 100]);
        two.extend(packed([0, 10, 0, 5, 100]));
        let split = split_batch_reply(Value::BulkString(two.clone()), 2).unwrap();
        assert_eq!(
            split,
            [record([1, 10, 9, 0, 100]), record([0, 10, 0, 5, 100])]
        );
        let cases = [
            (Value::BulkString(two.clone()), 1),
            (Value::BulkString(two.clone()), 3),
            (Value::BulkString(two[..two.len() - 1].to_vec()), 2),
            (Value::BulkString(Vec::new()), 1),
            (Value::Array(vec![Value::Int(1); 5]), 1),
            (Value::Int(1), 1),
            (Value::Nil, 1),
            (Value::Okay, 1),
            (Value::SimpleString("OK".into()), 1),
        ];
        for (reply, decisions) in cases {
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
    fn batches_group_by_cost_and_quotas_in_order_of_first_appearance() {
        let pending = |buckets: &[(&str, u64, u32)], cost: u32| Pending {
            buckets: buckets
                .iter()
                .map(|(key, interval, burst)| ((*key).to_owned(), *interval, *burst))
                .collect(),
            cost,
            reply: oneshot::channel().0,
        };
        let batch = [
            pending(&[("chat:1", 10, 1), ("bot", 5, 30)], 1),
            pending(&[("bot", 5, 30)], 1),
            pending(&[("chat:2", 10, 1), ("bot", 5, 30)], 1),
            pending(&[("bot", 5, 30)], 2),
            pending(&[("other", 5, 30)], 1),
            // The same quotas in another order are another shape.
            pending(&[("bot", 5, 30), ("chat:3", 10, 1)], 1),
            pending(&[("bot", 5, 31)], 1),
        ];
        assert_eq!(
            group_by_shape(&batch),
            [vec![0, 2], vec![1, 4], vec![3], vec![5], vec![6]]
        );
        assert!(group_by_shape(&[]).is_empty());
    }

    #[test]
    fn sweep_replies_are_a_cursor_and_a_count() {
        let reply = |cursor: &[u8], count: i64| {
            Value::Array(vec![Value::BulkString(cursor.to_vec()), Value::Int(count)])
        };
        assert_eq!(
            parse_sweep_reply(&reply(b"1536", 12)).unwrap(),
            ("1536".to_owned(), 12)
        );
        assert_eq!(
            parse_sweep_reply(&reply(b"0", 0)).unwrap(),
            ("0".to_owned(), 0)
        );
        for bad in [
            reply(b"x1", 1),
            reply(b"0", -1),
            Value::Array(vec![Value::Int(0)]),
            Value::Nil,
        ] {
            assert!(matches!(
                parse_sweep_reply(&bad),
                Err(LimitError::Malformed(_))
            ));
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
