//! Inbound throughput benchmark: how many verified, persisted Telegram webhook pushes per
//! second the embedded gateway acknowledges, against an axum no-op endpoint measured in the
//! same run (closed loop), and how fast the processor, running beside it, turns those payloads
//! into deduplicated messages; then, once nothing is left to process, the acknowledgement
//! latency at a fixed offered rate (open loop, so queueing counts: the steady state at that
//! rate).
//!
//! Not a test: it asserts nothing about speed. Run it on a quiet machine:
//!
//! ```text
//! cargo bench -p inbox-server --bench inbound -- [--seconds N] [--connections C] [--rate R]
//! ```
//!
//! Every request is a distinct Telegram update with the per-account secret header; 5 % are
//! byte-identical redeliveries of an earlier update, which must not become second messages.
//! The load generator runs in the same process (2 cores are shared with the server, for the
//! baseline and the gateway alike).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, routing::post};
use inbox_core::{PlatformKind, PlatformRegistry};
use inbox_ingest::{Inbound, InboundConfig};
use inbox_platform_telegram::{Telegram, TelegramConfig};
use inbox_store::{Cipher, ConversationFilter, NewAccount, Store, StoreConfig};
use secrecy::SecretString;

const SECRET: &str = "bench_secret_token_0123456789";

struct Options {
    seconds: u64,
    connections: usize,
    rate: u64,
}

fn options() -> Options {
    let mut options = Options {
        seconds: 10,
        connections: 64,
        rate: 1000,
    };
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    if let Some(v) = value("--seconds") {
        options.seconds = v;
    }
    if let Some(v) = value("--connections") {
        options.connections = v as usize;
    }
    if let Some(v) = value("--rate") {
        options.rate = v;
    }
    options
}

/// The body of update `n`; every 20th request repeats update `n - 7` byte for byte.
fn update(n: u64) -> String {
    let id = if n % 20 == 19 { n - 7 } else { n };
    let user = 100_000 + id % 500;
    format!(
        r#"{{"update_id":{id},"message":{{"message_id":{id},"date":1767323045,"from":{{"id":{user},"is_bot":false,"first_name":"User","last_name":"{user}"}},"chat":{{"id":{user},"type":"private","first_name":"User"}},"text":"hello number {id}"}}}}"#
    )
}

struct Target {
    url: String,
    secret: bool,
}

/// Closed loop: `connections` workers send back to back for `seconds`; returns requests/s.
async fn closed_loop(target: Arc<Target>, options: &Options, next: Arc<AtomicU64>) -> f64 {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.connections)
        .build()
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..options.connections)
        .map(|_| {
            let (client, target, next, done, failed) = (
                client.clone(),
                target.clone(),
                next.clone(),
                done.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let mut request = client
                        .post(&target.url)
                        .header("content-type", "application/json")
                        .body(update(n));
                    if target.secret {
                        request = request.header("X-Telegram-Bot-Api-Secret-Token", SECRET);
                    }
                    match request.send().await {
                        Ok(response) if response.status().is_success() => {
                            done.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let failures = failed.load(Ordering::Relaxed);
    assert_eq!(failures, 0, "{failures} requests failed");
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Open loop: requests are scheduled at `rate` per second regardless of answers; latency is
/// measured from the scheduled time. Returns (p50, p99, max) in milliseconds.
async fn open_loop(
    target: Arc<Target>,
    options: &Options,
    next: Arc<AtomicU64>,
) -> (f64, f64, f64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let total = options.rate * options.seconds;
    let interval = Duration::from_secs_f64(1.0 / options.rate as f64);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (client, target, n) = (
            client.clone(),
            target.clone(),
            next.fetch_add(1, Ordering::Relaxed),
        );
        handles.push(tokio::spawn(async move {
            let mut request = client
                .post(&target.url)
                .header("content-type", "application/json")
                .body(update(n));
            if target.secret {
                request = request.header("X-Telegram-Bot-Api-Secret-Token", SECRET);
            }
            let response = request.send().await.unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            scheduled.elapsed().as_secs_f64() * 1000.0
        }));
    }
    let mut latencies = Vec::with_capacity(handles.len());
    for handle in handles {
        latencies.push(handle.await.unwrap());
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (at(0.50), at(0.99), *latencies.last().unwrap())
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

async fn message_count(store: &Arc<dyn Store>) -> u64 {
    let workspace = store.ensure_workspace("bench").await.unwrap().id;
    let mut total = 0;
    let mut page = inbox_core::PageRequest {
        limit: 100,
        after: None,
    };
    loop {
        let conversations = store
            .list_conversations(&workspace, &ConversationFilter::default(), &page)
            .await
            .unwrap();
        for conversation in &conversations.data {
            let mut messages = inbox_core::PageRequest {
                limit: 100,
                after: None,
            };
            loop {
                let batch = store
                    .list_messages(
                        &workspace,
                        &conversation.id,
                        inbox_store::SortOrder::Asc,
                        &messages,
                    )
                    .await
                    .unwrap();
                total += batch.data.len() as u64;
                match batch.next_cursor {
                    Some(cursor) => {
                        messages.after = Some(inbox_core::Cursor::decode(&cursor).unwrap())
                    }
                    None => break,
                }
            }
        }
        match conversations.next_cursor {
            Some(cursor) => page.after = Some(inbox_core::Cursor::decode(&cursor).unwrap()),
            None => break,
        }
    }
    total
}

/// Waits until every stored payload is processed.
async fn drain(store: &Arc<dyn Store>) {
    while !store
        .claim_raw_events("bench-probe", 1, Duration::from_millis(1))
        .await
        .unwrap()
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() {
    let options = options();
    let dir = tempfile::tempdir().unwrap();
    let store = inbox_store::open_and_migrate(&StoreConfig {
        url: format!("sqlite://{}", dir.path().join("inbox.db").display()),
        cipher: Cipher::from_base64_key(&Cipher::generate_key()).unwrap(),
        max_connections: 8,
    })
    .await
    .unwrap();
    let telegram = Telegram::new(
        TelegramConfig::builder("http://127.0.0.1:9")
            .build()
            .unwrap(),
    )
    .unwrap();
    let mut registry = PlatformRegistry::new();
    registry.register(Arc::new(telegram));
    let platforms = Arc::new(registry);
    let workspace = store.ensure_workspace("bench").await.unwrap().id;
    let account = store
        .connect_account(NewAccount {
            workspace_id: workspace,
            platform: PlatformKind::Telegram,
            platform_account_id: "1".into(),
            name: "Bench".into(),
            username: None,
            credentials: inbox_core::Credentials::from_json_text(
                r#"{"botToken":"1:bench"}"#.into(),
            ),
            inbound_secret: Some(SecretString::from(SECRET)),
            credentials_expire_at: None,
            refresh_due_at: None,
        })
        .await
        .unwrap()
        .account;

    // The processor runs during the load, as in production: it competes for the same
    // SQLite writer, so the acknowledgement figures include its cost.
    let config = InboundConfig::new(None, "bench");
    let noop = serve(Router::new().route("/noop", post(|| async { "" }))).await;
    let next = Arc::new(AtomicU64::new(1));

    println!(
        "machine: {} cores; {} s per phase, {} connections, open loop at {}/s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.seconds,
        options.connections,
        options.rate
    );
    let baseline = closed_loop(
        Arc::new(Target {
            url: format!("{noop}/noop"),
            secret: false,
        }),
        &options,
        Arc::new(AtomicU64::new(1)),
    )
    .await;
    let (b50, b99, bmax) = open_loop(
        Arc::new(Target {
            url: format!("{noop}/noop"),
            secret: false,
        }),
        &options,
        Arc::new(AtomicU64::new(1)),
    )
    .await;
    println!(
        "axum no-op            : {baseline:>9.0} req/s closed loop; open loop p50 {b50:.2} ms, p99 {b99:.2} ms, max {bmax:.2} ms"
    );

    let inbound = Inbound::start(store.clone(), platforms.clone(), config);
    let base = serve(inbound.router()).await;
    let target = Arc::new(Target {
        url: format!("{base}/webhooks/telegram/{}", account.id),
        secret: true,
    });
    let load_started = Instant::now();
    let gateway = closed_loop(target.clone(), &options, next.clone()).await;
    let load_time = load_started.elapsed().as_secs_f64();
    let closed_sent = next.load(Ordering::Relaxed) - 1;
    // The open loop measures the steady state at its rate, so it starts once the processor
    // has caught up with the closed loop (a backlog would make its batches, and so the
    // acknowledgements' waits for the writer, larger than the rate alone causes).
    drain(&store).await;
    let total_time = load_started.elapsed().as_secs_f64();
    let (g50, g99, gmax) = open_loop(target, &options, next.clone()).await;
    println!(
        "gateway (verify+store): {gateway:>9.0} req/s closed loop ({:.0} % of no-op); open loop p50 {g50:.2} ms, p99 {g99:.2} ms, max {gmax:.2} ms",
        gateway / baseline * 100.0
    );
    println!(
        "processor              : {closed_sent} payloads of the closed loop processed {total_time:.1} s after it began (load {load_time:.1} s) = {:.0} payloads/s",
        closed_sent as f64 / total_time
    );

    // Drain again, then check deduplication over both phases.
    drain(&store).await;
    let sent = next.load(Ordering::Relaxed) - 1;
    let distinct = (1..=sent).filter(|n| n % 20 != 19).count() as u64;
    inbound.shutdown().await;
    let messages = message_count(&store).await;
    println!(
        "messages               : {sent} payloads → {messages} messages ({distinct} distinct)"
    );
    assert_eq!(
        messages, distinct,
        "redeliveries must not become second messages"
    );
}
