//! `ScriptedServer`: a tiny axum server on `127.0.0.1:0` answering from a FIFO of canned
//! responses, for testing the retry mechanics against real HTTP (object_store's `MockServer`).

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

struct Canned {
    delay: Duration,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

#[derive(Clone, Default)]
struct Script {
    queue: Arc<Mutex<VecDeque<Canned>>>,
    hits: Arc<AtomicUsize>,
}

/// The server; it runs until the test's runtime ends.
pub(crate) struct ScriptedServer {
    base: String,
    script: Script,
}

async fn answer(State(script): State<Script>) -> Response {
    script.hits.fetch_add(1, Ordering::SeqCst);
    let canned = script.queue.lock().unwrap().pop_front();
    let Some(canned) = canned else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "script exhausted").into_response();
    };
    tokio::time::sleep(canned.delay).await;
    let mut response = canned.body.into_response();
    *response.status_mut() = StatusCode::from_u16(canned.status).unwrap();
    for (name, value) in canned.headers {
        response.headers_mut().insert(
            HeaderName::try_from(name).unwrap(),
            HeaderValue::try_from(value).unwrap(),
        );
    }
    response
}

impl ScriptedServer {
    pub(crate) async fn start() -> Self {
        let script = Script::default();
        let app = Router::new().fallback(answer).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, script }
    }

    /// A URL on which nothing listens (a port bound, then released).
    pub(crate) async fn closed_url() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn push(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        self.script.queue.lock().unwrap().push_back(Canned {
            delay: Duration::ZERO,
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_owned(),
        });
    }

    pub(crate) fn push_delayed(&self, delay: Duration, status: u16, body: &str) {
        self.script.queue.lock().unwrap().push_back(Canned {
            delay,
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        });
    }

    pub(crate) fn hits(&self) -> usize {
        self.script.hits.load(Ordering::SeqCst)
    }
}
