//! The Redis limiter and the fallback against a real `redis-server` (started on a free
//! loopback port by `inbox_testkit`; with `CI=true` its absence fails the test): the GCRA
//! arithmetic as Redis computes it, bursts and the steady rate, concurrent callers and two
//! limiters sharing one Redis staying within one budget, lost scripts, corrupt keys and
//! malformed replies treated as Redis being down, and Redis killed and restarted under the
//! fallback.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use inbox_ratelimit::{
    BUCKETS, Backend, Bucket, FallbackLimiter, LimitError, LocalLimiter, Quota, RateLimiter,
    RedisConfig, RedisHealth, RedisLimiter, key,
};
use inbox_testkit::services::RedisServer;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

fn limiter(redis: &RedisServer) -> RedisLimiter {
    RedisLimiter::new(&RedisConfig::new(redis.url())).unwrap()
}

/// A quota whose refill is too slow to matter while a test runs: every number it produces is
/// exact.
fn hourly(count: u32) -> Quota {
    Quota::per_period(count, Duration::from_secs(3_600)).unwrap()
}

async fn raw(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_burst_then_refusals_with_exact_numbers() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let limiter = limiter(&redis);
    limiter.probe().await.unwrap();
    let key = key::key(&["test", "burst"]);
    let quota = hourly(3);
    for expected in [2, 1, 0] {
        let decision = limiter.check_key(&key, quota, 1).await.unwrap();
        assert!(decision.allowed);
        assert_eq!((decision.limit, decision.remaining), (3, expected));
        assert_eq!(decision.retry_after, Duration::ZERO);
    }
    let refused = limiter.check_key(&key, quota, 1).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!((refused.limit, refused.remaining), (3, 0));
    // One interval (20 minutes) less the microseconds since the third call.
    assert!(refused.retry_after <= Duration::from_secs(1_200));
    assert!(refused.retry_after > Duration::from_secs(1_190));
    assert!(refused.reset_after <= Duration::from_secs(3_600));
    assert!(refused.reset_after > Duration::from_secs(3_590));
    // The bucket is a field of the buckets hash holding its TAT, an hour ahead of now, as
    // 8 bytes: a little-endian double.
    let mut conn = raw(&redis).await;
    let stored: Vec<u8> = redis::cmd("HGET")
        .arg(BUCKETS)
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let tat = f64::from_le_bytes(stored.try_into().expect("8 bytes")) as i64;
    let (seconds, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let ahead = tat - (seconds * 1_000_000 + micros);
    assert!((3_590_000_000..=3_600_000_000).contains(&ahead), "{ahead}");
    assert_eq!(limiter.backend(), Backend::Redis);
}

#[tokio::test]
async fn the_steady_rate_follows_the_burst() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let limiter = limiter(&redis);
    // Two at once, then one every 200 ms.
    let quota = Quota::per_period(2, Duration::from_millis(400)).unwrap();
    let key = key::key(&["test", "steady"]);
    assert!(limiter.check_key(&key, quota, 1).await.unwrap().allowed);
    assert!(limiter.check_key(&key, quota, 1).await.unwrap().allowed);
    for _ in 0..3 {
        let refused = limiter.check_key(&key, quota, 1).await.unwrap();
        assert!(!refused.allowed);
        assert!(refused.retry_after <= Duration::from_millis(200));
        // Waiting exactly as long as told is enough for one more call, and only one.
        tokio::time::sleep(refused.retry_after).await;
        let allowed = limiter.check_key(&key, quota, 1).await.unwrap();
        assert!(allowed.allowed, "{allowed:?}");
        assert_eq!(allowed.remaining, 0);
    }
}

#[tokio::test]
async fn concurrent_callers_never_exceed_the_budget() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Two limiters, each with its own connection, as two gateway processes would have.
    let limiters = [limiter(&redis), limiter(&redis)];
    let quota = hourly(100);
    let key = key::key(&["test", "shared"]);
    let allowed = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for task in 0..40 {
        let limiter = limiters[task % 2].clone();
        let allowed = allowed.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                if limiter.check_key(&key, quota, 1).await.unwrap().allowed {
                    allowed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(allowed.load(Ordering::Relaxed), 100);
}

#[tokio::test]
async fn decisions_of_different_shapes_share_their_buckets_within_a_batch() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Telegram-like shapes drawing on one bot bucket of 50 at once: a chat's call (the chat
    // allows one, the bot is charged too), a call on the bot alone, and a call of cost 2.
    // Issued all at once, they reach Redis in shared batches, grouped by shape.
    let limiter = limiter(&redis);
    let bot = key::key(&["t", "mixed", "bot"]);
    let chats: Vec<String> = (0..10)
        .map(|n| key::key(&["t", "mixed", "chat", &n.to_string()]))
        .collect();
    let charged = Arc::new(AtomicU32::new(0));
    let allowed_per_chat: Arc<Vec<AtomicU32>> =
        Arc::new(chats.iter().map(|_| AtomicU32::new(0)).collect());
    let mut tasks = Vec::new();
    for task in 0..60 {
        let (limiter, bot, charged) = (limiter.clone(), bot.clone(), charged.clone());
        // Two tasks per chat, three calls each.
        let chat_index = (task / 3) % chats.len();
        let chat = chats[chat_index].clone();
        let allowed_per_chat = allowed_per_chat.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..3 {
                let (buckets, cost) = match task % 3 {
                    0 => (
                        vec![Bucket::new(&chat, hourly(1)), Bucket::new(&bot, hourly(50))],
                        1,
                    ),
                    1 => (vec![Bucket::new(&bot, hourly(50))], 1),
                    _ => (vec![Bucket::new(&bot, hourly(50))], 2),
                };
                let decision = limiter.check(&buckets, cost).await.unwrap();
                if decision.allowed {
                    charged.fetch_add(cost, Ordering::Relaxed);
                    if buckets.len() == 2 {
                        allowed_per_chat[chat_index].fetch_add(1, Ordering::Relaxed);
                    }
                    // A chat's call is described by the chat's bucket: none left there.
                    let expected = if buckets.len() == 2 {
                        (1, 0)
                    } else {
                        (50, decision.remaining)
                    };
                    assert_eq!((decision.limit, decision.remaining), expected);
                } else {
                    assert!(decision.retry_after > Duration::ZERO);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // The bot's 50 were spent, never overspent (the last cell may be left when only calls of
    // cost 2 came after it).
    let charged = charged.load(Ordering::Relaxed);
    assert!((49..=50).contains(&charged), "{charged}");
    let next = limiter.check_key(&bot, hourly(50), 1).await.unwrap();
    assert_eq!(next.allowed, charged == 49, "{next:?}");
    // Each chat allowed one call at most, even with several queued in one batch.
    for (chat, allowed) in chats.iter().zip(allowed_per_chat.iter()) {
        assert!(allowed.load(Ordering::Relaxed) <= 1, "{chat}");
    }
}

#[tokio::test]
async fn a_call_refused_by_one_bucket_charges_none() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let limiter = limiter(&redis);
    let (bot, chat) = (key::key(&["t", "bot"]), key::key(&["t", "bot", "chat"]));
    let buckets = [Bucket::new(&chat, hourly(1)), Bucket::new(&bot, hourly(10))];
    let first = limiter.check(&buckets, 1).await.unwrap();
    assert!(first.allowed);
    // The chat's bucket speaks for the call: it has the fewest calls left.
    assert_eq!((first.limit, first.remaining), (1, 0));
    for _ in 0..5 {
        let refused = limiter.check(&buckets, 1).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 1);
    }
    let bot_only = limiter.check_key(&bot, hourly(10), 1).await.unwrap();
    assert_eq!(bot_only.remaining, 8, "only the allowed call was charged");
}

#[tokio::test]
async fn a_penalty_blocks_the_bucket_until_the_platforms_reset() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let limiter = limiter(&redis);
    let key = key::key(&["t", "penalty"]);
    let quota = Quota::per_period(100, Duration::from_secs(1)).unwrap();
    limiter
        .penalize(&Bucket::new(&key, quota), Duration::from_secs(900))
        .await
        .unwrap();
    // A shorter penalty later does not shorten it.
    limiter
        .penalize(&Bucket::new(&key, quota), Duration::from_secs(1))
        .await
        .unwrap();
    let refused = limiter.check_key(&key, quota, 1).await.unwrap();
    assert!(!refused.allowed);
    assert!(refused.retry_after > Duration::from_secs(899));
    assert!(refused.retry_after <= Duration::from_secs(900));
}

#[tokio::test]
async fn scripts_lost_by_redis_are_loaded_again() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let limiter = limiter(&redis);
    let key = key::key(&["t", "noscript"]);
    assert!(limiter.check_key(&key, hourly(5), 1).await.unwrap().allowed);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw(&redis).await)
        .await
        .unwrap();
    let exists: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(limiter.check_script_sha())
        .query_async(&mut raw(&redis).await)
        .await
        .unwrap();
    assert_eq!(exists, [false]);
    let decision = limiter.check_key(&key, hourly(5), 1).await.unwrap();
    assert_eq!(
        decision.remaining, 3,
        "the state survived; only the script was lost"
    );
}

#[tokio::test]
async fn a_corrupt_bucket_is_an_error_and_the_fallback_answers_locally() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut conn = raw(&redis).await;
    let not_a_number = key::key(&["t", "text"]);
    let _: () = redis::cmd("HSET")
        .arg(BUCKETS)
        .arg(&not_a_number)
        .arg("soon")
        .query_async(&mut conn)
        .await
        .unwrap();
    let limiter = limiter(&redis);
    let err = limiter
        .check_key(&not_a_number, hourly(1), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, LimitError::Redis(_)), "{err:?}");
    // Eight bytes (a TAT's size) that are not a time are refused too.
    for not_a_time in [f64::NAN, -1.0] {
        let key = key::key(&["t", "eight-bytes"]);
        let _: () = redis::cmd("HSET")
            .arg(BUCKETS)
            .arg(&key)
            .arg(&not_a_time.to_le_bytes()[..])
            .query_async(&mut conn)
            .await
            .unwrap();
        let err = limiter.check_key(&key, hourly(1), 1).await.unwrap_err();
        assert!(matches!(err, LimitError::Redis(_)), "{not_a_time}: {err:?}");
        let bucket = Bucket::new(&key, hourly(1));
        let err = limiter
            .penalize(&bucket, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, LimitError::Redis(_)), "{not_a_time}: {err:?}");
    }
    // The buckets hash replaced by a value of another type fails every decision the same way.
    let any = key::key(&["t", "other"]);
    let _: () = redis::cmd("RENAME")
        .arg(BUCKETS)
        .arg("moved")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(BUCKETS)
        .arg("a string")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = limiter.check_key(&any, hourly(1), 1).await.unwrap_err();
    assert!(matches!(err, LimitError::Redis(_)), "{err:?}");
    let _: () = redis::cmd("RENAME")
        .arg("moved")
        .arg(BUCKETS)
        .query_async(&mut conn)
        .await
        .unwrap();
    let fallback = FallbackLimiter::new(limiter, LocalLimiter::new(), Duration::from_secs(60));
    // The local bucket allows one call per hour: the answer is a decision, never "allowed
    // forever".
    let first = fallback
        .check_key(&not_a_number, hourly(1), 1)
        .await
        .unwrap();
    assert!(first.allowed);
    assert!(fallback.is_degraded());
    assert_eq!(fallback.backend(), Backend::Local);
    assert!(
        !fallback
            .check_key(&not_a_number, hourly(1), 1)
            .await
            .unwrap()
            .allowed
    );
    assert!(matches!(fallback.health(), RedisHealth::Degraded { .. }));
}

/// A server that speaks just enough RESP to be connected to, and answers every command with
/// `reply` (nothing at all when `None`).
async fn fake_redis(reply: Option<&'static [u8]>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    let n = match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    // One reply per command: each command is an array (`*<n>`) at a line
                    // start.
                    let commands = buffer[..n]
                        .split(|byte| *byte == b'\n')
                        .filter(|line| line.first() == Some(&b'*'))
                        .count();
                    if let Some(reply) = reply {
                        for _ in 0..commands {
                            if socket.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn malformed_or_missing_replies_count_as_redis_down() {
    // The check script answers 25 packed bytes per decision (struct `<BI4I4i8i8`).
    let replies: [(&[u8], &str); 6] = [
        (b"*2\r\n:1\r\n:1\r\n", "a short array"),
        (b"$-1\r\n", "a nil"),
        (
            b"*5\r\n:1\r\n:5\r\n:4\r\n:0\r\n:1\r\n",
            "five integers instead of a record",
        ),
        (
            b"$25\r\n\x01\xe8\x03\0\0\xe7\x03\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\r\n",
            "a limit no bucket has",
        ),
        (b"$3\r\n\x01\x05\0\r\n", "a truncated record"),
        (b"+OK\r\n", "a status"),
    ];
    for (reply, what) in replies {
        let url = fake_redis(Some(reply)).await;
        let limiter = RedisLimiter::new(&RedisConfig::new(url)).unwrap();
        let err = limiter.check_key("k", hourly(5), 1).await.unwrap_err();
        assert!(err.is_backend_failure(), "{what}: {err:?}");
        let fallback = FallbackLimiter::new(limiter, LocalLimiter::new(), Duration::from_secs(60));
        let decision = fallback.check_key("k", hourly(5), 1).await.unwrap();
        assert_eq!(
            decision.remaining, 4,
            "{what}: answered by the local bucket"
        );
        assert!(fallback.is_degraded(), "{what}");
    }
    // A Redis that never answers times out.
    let url = fake_redis(None).await;
    let mut config = RedisConfig::new(url);
    config.timeout = Duration::from_millis(100);
    let silent = RedisLimiter::new(&config).unwrap();
    let err = silent.check_key("k", hourly(5), 1).await.unwrap_err();
    assert!(err.to_string().contains("no answer"), "{err}");
}

#[tokio::test]
async fn redis_killed_and_restarted_under_the_fallback() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let fallback = FallbackLimiter::start(
        limiter(&redis),
        LocalLimiter::new(),
        Duration::from_millis(50),
    )
    .await;
    assert_eq!(fallback.backend(), Backend::Redis);
    assert_eq!(fallback.readiness().await, Ok(()));
    let key = key::key(&["t", "outage"]);
    let quota = hourly(10);
    assert_eq!(
        fallback.check_key(&key, quota, 1).await.unwrap().remaining,
        9
    );

    redis.kill();
    // Every call is answered, from process memory now.
    for _ in 0..3 {
        assert!(fallback.check_key(&key, quota, 1).await.unwrap().allowed);
    }
    assert!(fallback.is_degraded());
    let report = fallback.readiness().await.unwrap_err();
    assert!(report.contains("Redis is unreachable"), "{report}");

    redis.restart();
    let mut back = false;
    for _ in 0..200 {
        if !fallback.is_degraded() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the fallback returned to Redis after it restarted");
    assert_eq!(fallback.readiness().await, Ok(()));
    // A restarted Redis starts empty: the bucket is fresh again, and answered by Redis.
    let decision = fallback.check_key(&key, quota, 1).await.unwrap();
    assert_eq!(decision.remaining, 9);
    assert_eq!(fallback.backend(), Backend::Redis);
}

#[tokio::test]
async fn a_redis_down_at_start_up_is_used_once_it_answers() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    redis.kill();
    let fallback = FallbackLimiter::start(
        RedisLimiter::new(&RedisConfig::new(url)).unwrap(),
        LocalLimiter::new(),
        Duration::from_millis(50),
    )
    .await;
    assert!(fallback.is_degraded());
    assert!(fallback.check_key("k", hourly(2), 1).await.unwrap().allowed);
    redis.restart();
    for _ in 0..200 {
        if !fallback.is_degraded() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fallback.backend(), Backend::Redis);
}

#[tokio::test]
async fn the_sweep_deletes_full_buckets_and_keeps_the_others() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let limiter = limiter(&redis);
    // 1,200 buckets full again within 50 ms, and three that stay charged for an hour.
    let brief = Quota::per_period(1, Duration::from_millis(50)).unwrap();
    for n in 0..1_200 {
        let key = key::key(&["t", "brief", &n.to_string()]);
        assert!(limiter.check_key(&key, brief, 1).await.unwrap().allowed);
    }
    let kept: Vec<String> = (0..3)
        .map(|n| key::key(&["t", "kept", &n.to_string()]))
        .collect();
    for key in &kept {
        assert!(limiter.check_key(key, hourly(2), 1).await.unwrap().allowed);
    }
    // A corrupt field is deleted too (the check script refuses it until then).
    let mut conn = raw(&redis).await;
    let _: () = redis::cmd("HSET")
        .arg(BUCKETS)
        .arg("inboxgw:rl:t:corrupt")
        .arg("soon")
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(limiter.sweep().await.unwrap(), 1_201);
    let left: Vec<String> = redis::cmd("HKEYS")
        .arg(BUCKETS)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut left = left;
    left.sort();
    assert_eq!(left, kept);
    // What was kept still counts: one call left of two.
    let decision = limiter.check_key(&kept[0], hourly(2), 1).await.unwrap();
    assert_eq!((decision.allowed, decision.remaining), (true, 0));
    assert_eq!(limiter.sweep().await.unwrap(), 0);
}
