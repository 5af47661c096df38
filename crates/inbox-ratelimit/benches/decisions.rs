//! Decisions per second, in process and through Redis, beside `redis-benchmark` running a
//! trivial `EVALSHA` on the same server. A benchmark, not a test: it asserts nothing and
//! prints a table; `docs/benchmarks.md` records the figures and how to reproduce them.
//!
//! ```sh
//! CARGO_TARGET_DIR=… cargo bench -p inbox-ratelimit --bench decisions
//! ```
//!
//! Knobs (environment): `BENCH_SECONDS` per case (default 5), `BENCH_ROUNDS` alternations of
//! the limiter and the trivial script (default 3), `BENCH_INFLIGHT` concurrent Redis
//! decisions (default 256), `BENCH_KEYS` distinct keys (default 10000).
//!
//! The Redis server is started by `inbox_testkit` on a free loopback port without
//! persistence; `redis-benchmark` must be on `PATH` (Debian: `redis-tools`).

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use inbox_ratelimit::{Bucket, LocalLimiter, Quota, RateLimiter, RedisConfig, RedisLimiter, key};
use inbox_testkit::services::RedisServer;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A quota generous enough that the buckets stay mostly allowed: the benchmark measures the
/// cost of deciding, allowed and refused decisions cost the same.
fn quota() -> Quota {
    Quota::per_period(1_000, Duration::from_millis(10)).expect("a valid quota")
}

fn keys(count: u64) -> Arc<Vec<String>> {
    Arc::new(
        (0..count)
            .map(|i| {
                key::budget_key(
                    inbox_core::PlatformKind::Telegram,
                    "send_per_chat",
                    &["123456789", &i.to_string()],
                )
            })
            .collect(),
    )
}

struct Row {
    name: String,
    decisions: u64,
    elapsed: Duration,
}

impl Row {
    fn rate(&self) -> f64 {
        self.decisions as f64 / self.elapsed.as_secs_f64()
    }
}

/// `threads` OS threads, each with a current-thread runtime, awaiting decisions through the
/// trait object one after another.
fn local_through_trait(threads: u64, seconds: u64, keys: &Arc<Vec<String>>) -> Row {
    let limiter: Arc<dyn RateLimiter> = Arc::new(LocalLimiter::new());
    let quota = quota();
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let (limiter, stop, total, keys) =
                (limiter.clone(), stop.clone(), total.clone(), keys.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let mut count = 0u64;
                    let mut i = thread as usize * 7_919;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..1_024 {
                            i = (i + 1) % keys.len();
                            let decision = limiter
                                .check_key(&keys[i], quota, 1)
                                .await
                                .expect("a decision");
                            std::hint::black_box(decision);
                        }
                        count += 1_024;
                    }
                    total.fetch_add(count, Ordering::Relaxed);
                });
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.join().expect("a bench thread");
    }
    Row {
        name: format!("in process (governor), {threads} thread(s), through `dyn RateLimiter`"),
        decisions: total.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

/// Many decisions in flight at once through one `RedisLimiter` (one multiplexed connection,
/// as the gateway has), on a multi-threaded runtime.
fn through_redis(
    runtime: &tokio::runtime::Runtime,
    limiter: RedisLimiter,
    inflight: u64,
    seconds: u64,
    keys: &Arc<Vec<String>>,
) -> Row {
    let quota = quota();
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (decisions, elapsed) = runtime.block_on(async {
        limiter.probe().await.expect("Redis answers");
        let started = Instant::now();
        let tasks: Vec<_> = (0..inflight)
            .map(|task| {
                let (limiter, keys, total, stop) =
                    (limiter.clone(), keys.clone(), total.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = task as usize * 7_919;
                    let mut count = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i = (i + 1) % keys.len();
                        let decision = limiter
                            .check(&[Bucket::new(&keys[i], quota)], 1)
                            .await
                            .expect("a decision");
                        std::hint::black_box(decision);
                        count += 1;
                    }
                    total.fetch_add(count, Ordering::Relaxed);
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.expect("a bench task");
        }
        (total.load(Ordering::Relaxed), started.elapsed())
    });
    Row {
        name: format!("through Redis (`RedisLimiter`, 1 connection), {inflight} in flight"),
        decisions,
        elapsed,
    }
}

/// `redis-benchmark` running `args` against the server; returns its requests per second.
fn redis_benchmark(
    port: u16,
    requests: u64,
    clients: u64,
    pipeline: u64,
    args: &[&str],
) -> Option<f64> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-n", &requests.to_string(), "-c", &clients.to_string()])
        .args(["-P", &pipeline.to_string(), "-r", "10000", "-q"])
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    // "EVALSHA …: 512345.67 requests per second, p50=…" (the last \r-separated segment).
    let line = text
        .rsplit('\r')
        .find(|part| part.contains("requests per second"))?;
    // The command may contain colons (keys do), so take the number just before the words.
    let before = line.split("requests per second").next()?;
    before.split_whitespace().last()?.parse().ok()
}

fn script_load(port: u16, source: &str) -> String {
    let output = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "SCRIPT",
            "LOAD",
            source,
        ])
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing useful here.
    let seconds = env_number("BENCH_SECONDS", 5);
    let rounds = env_number("BENCH_ROUNDS", 3).max(1);
    let inflight = env_number("BENCH_INFLIGHT", 256);
    let keys = keys(env_number("BENCH_KEYS", 10_000));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "inbox-ratelimit decisions benchmark: {cpus} CPU(s), {seconds} s per case, {rounds} Redis round(s), {} keys, load average {}",
        keys.len(),
        load_average()
    );

    let local = [
        local_through_trait(1, seconds, &keys),
        local_through_trait(2, seconds, &keys),
    ];
    print_local(&local);

    let Some(redis) = RedisServer::start() else {
        println!("redis-server is missing: only the in-process figures are shown");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let limiter = {
        let _inside = runtime.enter();
        RedisLimiter::new(&RedisConfig::new(redis.url())).expect("a Redis limiter")
    };
    let trivial_sha = script_load(redis.port(), "return 1");

    // The machine's speed drifts by tens of percent from one minute to the next (shared
    // cores), so the limiter and the trivial script alternate and each round's ratio
    // compares two neighbouring measurements; the median round is the result.
    let mut measured = Vec::new();
    let mut trivial_guess = 400_000.0;
    for round in 1..=rounds {
        let limiter_row = through_redis(&runtime, limiter.clone(), inflight, seconds, &keys);
        // About `seconds` of the trivial script, sized by the previous round's rate.
        let requests = (trivial_guess * seconds as f64) as u64;
        let trivial = redis_benchmark(
            redis.port(),
            requests.max(100_000),
            50,
            16,
            &["EVALSHA", &trivial_sha, "0"],
        );
        let Some(trivial) = trivial else {
            println!("redis-benchmark is missing or failed: {}", limiter_row.name);
            println!("through Redis: {:.0} decisions/s", limiter_row.rate());
            return;
        };
        trivial_guess = trivial;
        let ratio = limiter_row.rate() / trivial;
        println!(
            "round {round}: limiter {:.0} decisions/s, trivial EVALSHA {trivial:.0}/s, ratio {:.0} %, load average {}",
            limiter_row.rate(),
            100.0 * ratio,
            load_average()
        );
        measured.push((limiter_row.rate(), trivial, ratio));
    }

    let (t, burst) = (
        quota().emission_micros().to_string(),
        quota().burst().to_string(),
    );
    let unbatched = redis_benchmark(
        redis.port(),
        500_000,
        50,
        16,
        &[
            "EVALSHA",
            limiter.check_script_sha(),
            "1",
            inbox_ratelimit::BUCKETS,
            // one group (n = 1 bucket, cost 1, its quota) of one decision
            "1",
            "1",
            "1",
            &t,
            &burst,
            "1",
            "inboxgw:rl:bench:__rand_int__",
        ],
    );
    print_redis(&local, &measured, inflight, unbatched);
}

fn print_local(rows: &[Row]) {
    println!();
    println!("| what | decisions | seconds | decisions/s |");
    println!("|---|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.1} | {:.0} |",
            row.name,
            row.decisions,
            row.elapsed.as_secs_f64(),
            row.rate()
        );
    }
    let in_process = rows.iter().map(Row::rate).fold(0.0, f64::max);
    println!(
        "in process: {in_process:.0} decisions/s = {:.0} % of the 1,000,000/s target",
        in_process / 10_000.0
    );
    println!();
}

/// The median round (by ratio) and every round, as the table in `docs/benchmarks.md`.
fn print_redis(local: &[Row], rounds: &[(f64, f64, f64)], inflight: u64, unbatched: Option<f64>) {
    let mut by_ratio = rounds.to_vec();
    by_ratio.sort_by(|a, b| a.2.total_cmp(&b.2));
    let (limiter, trivial, ratio) = by_ratio[by_ratio.len() / 2];
    println!();
    println!("| what | decisions/s |");
    println!("|---|---:|");
    for row in local {
        println!("| {} | {:.0} |", row.name, row.rate());
    }
    println!(
        "| through Redis (`RedisLimiter`, 1 connection, {inflight} in flight), median round | {limiter:.0} |"
    );
    println!("| `redis-benchmark -c 50 -P 16 EVALSHA <return 1> 0`, same round | {trivial:.0} |");
    if let Some(unbatched) = unbatched {
        println!(
            "| `redis-benchmark -c 50 -P 16 EVALSHA <check.lua> <one decision>` (unbatched ceiling) | {unbatched:.0} |"
        );
    }
    println!();
    let ratios: Vec<String> = rounds
        .iter()
        .map(|(_, _, ratio)| format!("{:.0} %", 100.0 * ratio))
        .collect();
    println!(
        "through Redis: {limiter:.0} decisions/s = {:.0} % of the trivial EVALSHA rate in the median round (target 50 %); rounds: {}",
        100.0 * ratio,
        ratios.join(", ")
    );
    println!("load average at the end: {}", load_average());
}

/// The 1-minute load average, to tell a quiet machine from a busy one in the figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}
