//! The end-to-end harness: starts the real `inboxgw` binary (as an operator would, configured
//! by environment variables) in a temporary directory, waits until it answers, and drives it
//! over HTTP. `kill()` is SIGKILL (a crash); `stop()` is SIGTERM (a graceful shutdown).

use std::{
    fs::File,
    future::Future,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use inbox_testkit::{fakes::telegram::FakeTelegram, receiver::WebhookReceiver, requirements};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The bot every test connects.
pub const TOKEN: &str = "123456:E2E-token";
/// A user who writes to it.
pub const USER: i64 = 111_222_333;

/// A free loopback port (bound and released; the gateway binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One running gateway process.
pub struct Gateway {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    dir: PathBuf,
    env: Vec<(String, String)>,
    port: u16,
    starts: u32,
}

impl Gateway {
    /// Starts `inboxgw serve` with its data directory in `dir` and the given environment (on
    /// top of a quiet, isolated default). `public` sets `INBOX_PUBLIC_URL` to the gateway's own
    /// address, so platforms push to it.
    pub async fn start(dir: &Path, public: bool, env: &[(&str, String)]) -> Gateway {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut all = vec![
            ("INBOX_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
            ("INBOX_LOG".to_owned(), "info,inbox=debug".to_owned()),
            ("INBOX_WEBHOOK_ALLOW_PRIVATE".to_owned(), "true".to_owned()),
            (
                "INBOX_TELEGRAM_POLL_TIMEOUT_SECS".to_owned(),
                "1".to_owned(),
            ),
            ("INBOX_SHUTDOWN_GRACE_SECS".to_owned(), "10".to_owned()),
        ];
        if public {
            all.push(("INBOX_PUBLIC_URL".to_owned(), base.clone()));
        }
        for (key, value) in env {
            all.retain(|(existing, _)| existing != key);
            all.push(((*key).to_owned(), value.clone()));
        }
        let mut gateway = Gateway {
            child: None,
            base,
            dir: dir.to_path_buf(),
            env: all,
            port,
            starts: 0,
        };
        gateway.spawn().await;
        gateway
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_inboxgw"));
        command.args(args).current_dir(&self.dir).env_clear();
        command.env("PATH", std::env::var("PATH").unwrap_or_default());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    async fn spawn(&mut self) {
        self.starts += 1;
        let log = self
            .dir
            .join(format!("gateway-{}-{}.log", self.port, self.starts));
        let child = self
            .command(&["serve"])
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start inboxgw");
        self.child = Some(child);
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(format!("{}/healthz", self.base)).send().await
                && response.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "inboxgw exited with {status}:\n{}",
                    std::fs::read_to_string(&log).unwrap()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "inboxgw did not answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Crashes the gateway (SIGKILL): nothing is finished or cleaned up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the gateway to shut down (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the gateway is running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        child.wait().unwrap()
    }

    /// Starts the gateway again on the same port, directory and configuration.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Everything the gateway logged so far, for failure messages.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.join(format!("gateway-{}-{n}.log", self.port)))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    /// `inboxgw api-key create --workspace NAME`, as an operator runs it.
    pub fn create_api_key(&self, workspace: &str) -> String {
        let output = self
            .command(&["api-key", "create", "--workspace", workspace])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        assert!(key.starts_with("igk_"), "{key}");
        key
    }

    /// An API client authenticated with `key`.
    pub fn client(&self, key: &str) -> Api {
        Api {
            base: format!("{}/api/v1", self.base),
            key: key.to_owned(),
            http: reqwest::Client::new(),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tiny REST client for the gateway's API.
pub struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    /// Sends a request and returns the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, body, &[]).await
    }

    /// As [`Api::call`], with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(json!(text))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Connects the test bot and returns the account.
    pub async fn connect_bot(&self) -> Value {
        let (status, account) = self
            .post(
                "/accounts",
                json!({"platform": "telegram", "credentials": {"botToken": TOKEN}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        account
    }

    /// Registers `receiver` as an endpoint for every event and teaches it the secret.
    pub async fn register(&self, receiver: &WebhookReceiver) -> Value {
        let (status, endpoint) = self.post("/webhooks", json!({"url": receiver.url()})).await;
        assert_eq!(status, StatusCode::CREATED, "{endpoint}");
        receiver.set_secret(endpoint["secret"].as_str().unwrap());
        endpoint
    }

    /// Every message of every conversation, oldest first.
    pub async fn all_messages(&self) -> Vec<Value> {
        let conversations = self.get("/inbox/conversations").await;
        let mut all = Vec::new();
        for conversation in conversations["data"].as_array().unwrap() {
            let id = conversation["id"].as_str().unwrap();
            let page = self
                .get(&format!(
                    "/inbox/conversations/{id}/messages?sortOrder=asc&limit=100"
                ))
                .await;
            all.extend(page["data"].as_array().unwrap().iter().cloned());
        }
        all
    }
}

/// A fake Telegram with the test bot and user.
pub async fn fake_telegram() -> FakeTelegram {
    let fake = FakeTelegram::start().await;
    fake.add_bot(TOKEN, 123_456, "Support", "support_bot");
    fake.add_user(USER, "Alice", Some("Smith"), Some("alice"));
    fake
}

/// Polls `check` until it holds; panics after 30 s with `what` and the gateway's logs.
pub async fn eventually<F, Fut>(gateway: &Gateway, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}\n--- gateway logs ---\n{}",
            gateway.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The event types a receiver got, in arrival order.
pub fn event_types(receiver: &WebhookReceiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .filter_map(|r| {
            r.json
                .as_ref()
                .and_then(|j| j["event"].as_str().map(str::to_owned))
        })
        .collect()
}

/// Checks every delivery `receiver` got with the official `standardwebhooks` Python package.
pub fn verify_with_python(receiver: &WebhookReceiver, secret: &str) {
    let Some(python) = requirements::python() else {
        return;
    };
    let cases: Vec<Value> = receiver
        .received()
        .iter()
        .enumerate()
        .map(|(n, r)| {
            let headers: serde_json::Map<String, Value> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
                .iter()
                .map(|name| ((*name).to_owned(), json!(r.header(name).unwrap_or_default())))
                .collect();
            json!({"name": format!("delivery {n}"), "secret": secret, "body": r.body_text(), "headers": headers})
        })
        .collect();
    assert!(!cases.is_empty(), "nothing was delivered to verify");
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), json!({ "cases": cases }).to_string()).unwrap();
    let script = requirements::workspace_root().join("tests/python/standardwebhooks_verify.py");
    let output = Command::new(python)
        .arg(script)
        .arg(input.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "standardwebhooks rejected the gateway's deliveries:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
