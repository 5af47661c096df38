//! One Graph API call, as every Meta adapter makes it: the request rebuilt for each attempt,
//! the answer read to the end, the usage headers and the error envelope classified, throttling
//! reported to the gateway's rate budgets *before* any wait (so other requests and replicas
//! hold back too), and transient failures retried within a bounded time
//! (`inbox_http::retry`).
//!
//! Tokens travel in the `Authorization: Bearer` header, which graph.facebook.com and
//! graph.instagram.com both accept, so they never appear in URLs or logs. Transport errors
//! have their URL removed for the same reason.

use std::{fmt, sync::Arc, time::Duration};

use http::{Method, StatusCode};
use inbox_core::{BudgetCall, BudgetReport, Error, PlatformKind, Pushback, RateBudgets, Result};
use inbox_http::{
    Attempt, ClientOptions, RetryConfig, RetryError, Snapshot, Transience, classify_status,
    classify_transport, retry, retry_after,
};
use serde_json::Value;

use crate::{
    error::{ErrorClass, GraphError, to_core},
    usage::Usage,
};

/// The shortest timeout an attempt gets even when the retry budget is nearly spent.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long budgets are held back when Meta says usage reached 100 % without saying until
/// when (app-level limits roll over an hour; a minute keeps traffic from hammering).
const EXHAUSTED_WITHOUT_HINT: Duration = Duration::from_secs(60);

/// What a request carries in its body.
#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
}

/// One Graph request; built with [`GraphRequest::get`], [`GraphRequest::post`] or
/// [`GraphRequest::delete`] and the builder methods.
#[derive(Clone)]
pub struct GraphRequest<'a> {
    method: Method,
    url: String,
    token: Option<&'a str>,
    query: Vec<(String, String)>,
    body: Body,
    idempotent: bool,
    budget: Option<BudgetCall<'a>>,
    what: &'static str,
}

impl fmt::Debug for GraphRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token and the body (message text) are left out on purpose.
        f.debug_struct("GraphRequest")
            .field("method", &self.method)
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl<'a> GraphRequest<'a> {
    fn new(method: Method, url: String, what: &'static str) -> Self {
        let idempotent = method == Method::GET || method == Method::DELETE;
        GraphRequest {
            method,
            url,
            token: None,
            query: Vec::new(),
            body: Body::None,
            idempotent,
            budget: None,
            what,
        }
    }

    /// A `GET` of `url`; `what` names the call in logs (never the URL, which holds ids).
    pub fn get(url: String, what: &'static str) -> Self {
        Self::new(Method::GET, url, what)
    }

    /// A `POST` of `url`. Not retried after a timeout (a send that timed out may have been
    /// delivered) unless [`GraphRequest::idempotent`] says so.
    pub fn post(url: String, what: &'static str) -> Self {
        Self::new(Method::POST, url, what)
    }

    /// A `DELETE` of `url`.
    pub fn delete(url: String, what: &'static str) -> Self {
        Self::new(Method::DELETE, url, what)
    }

    /// Authenticates with `Authorization: Bearer <token>`.
    pub fn bearer(mut self, token: &'a str) -> Self {
        self.token = Some(token);
        self
    }

    /// Adds a query parameter.
    pub fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_owned(), value.into()));
        self
    }

    /// A JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form(mut self, pairs: Vec<(String, String)>) -> Self {
        self.body = Body::Form(pairs);
        self
    }

    /// Whether repeating the call is harmless, so timeouts may be retried.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// The budget call throttling on this request is reported against.
    pub fn budget(mut self, call: BudgetCall<'a>) -> Self {
        self.budget = Some(call);
        self
    }
}

/// A failed Graph call, before the operation at hand maps it to the core error.
#[derive(Debug)]
pub enum GraphFailure {
    /// Meta answered with its error envelope.
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The envelope's `error` (boxed: it is large, and failures travel in `Result`s).
        error: Box<GraphError>,
    },
    /// An HTTP error without a Graph envelope (a proxy's page, a wrong base URL).
    Http(StatusCode),
    /// No answer: connection refused, timeout, broken body. The URL is removed.
    Transport(reqwest::Error),
    /// A success whose body is not what the call returns.
    Decode(String),
    /// Throttling or transient failures that outlasted the retry budget.
    Exhausted {
        /// The last attempt's failure.
        last: Box<GraphFailure>,
        /// When a retry may succeed, if Meta said.
        retry_after: Option<Duration>,
    },
}

impl fmt::Display for GraphFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphFailure::Api { error, .. } => {
                write!(f, "{} ({})", error.full_message(), error.code_text())
            }
            GraphFailure::Http(status) => write!(f, "HTTP {status} without a Graph answer"),
            GraphFailure::Transport(error) => write!(f, "no answer: {error}"),
            GraphFailure::Decode(message) => write!(f, "unexpected answer: {message}"),
            GraphFailure::Exhausted { last, .. } => write!(f, "{last}"),
        }
    }
}

impl GraphFailure {
    /// The Graph error this failure carries, if Meta answered with one (also after retries).
    pub fn graph_error(&self) -> Option<&GraphError> {
        match self {
            GraphFailure::Api { error, .. } => Some(&**error),
            GraphFailure::Exhausted { last, .. } => last.graph_error(),
            _ => None,
        }
    }

    /// The core error for this failure, as every operation maps it unless it knows better.
    pub fn into_core(self, platform: PlatformKind) -> Error {
        match self {
            GraphFailure::Api { error, .. } => to_core(platform, &error),
            GraphFailure::Exhausted { last, retry_after } => {
                inbox_http::unavailable(platform, last, retry_after)
            }
            GraphFailure::Transport(error) => Error::Unavailable {
                message: format!("{platform} did not answer: {error}"),
                retry_after: None,
            },
            GraphFailure::Http(status) => Error::Platform {
                platform,
                code: status.as_u16().to_string(),
                message: format!(
                    "HTTP {status} without a Graph API answer; check the {platform} API base URL"
                ),
            },
            GraphFailure::Decode(message) => Error::internal_msg(format!(
                "{platform} answered something unexpected: {message}"
            )),
        }
    }
}

impl From<RetryError<GraphFailure>> for GraphFailure {
    fn from(error: RetryError<GraphFailure>) -> Self {
        match error {
            RetryError::Permanent(error) => error,
            RetryError::Exhausted {
                error, retry_after, ..
            } => GraphFailure::Exhausted {
                last: Box::new(error),
                retry_after,
            },
        }
    }
}

/// The HTTP side of a Meta adapter: one client, one retry policy, one place throttling is
/// reported.
#[derive(Debug, Clone)]
pub struct GraphClient {
    platform: PlatformKind,
    http: reqwest::Client,
    retry: RetryConfig,
    request_timeout: Duration,
    budgets: Arc<dyn RateBudgets>,
}

impl GraphClient {
    /// A client for `platform`'s calls.
    ///
    /// # Errors
    /// `Internal` when the HTTP client cannot be built.
    pub fn new(
        platform: PlatformKind,
        options: &ClientOptions,
        retry: RetryConfig,
        budgets: Arc<dyn RateBudgets>,
    ) -> Result<Self> {
        Ok(GraphClient {
            platform,
            http: options.build()?,
            retry,
            request_timeout: options.request_timeout,
            budgets,
        })
    }

    /// Makes the call and returns its JSON body (`Null` for an empty one).
    ///
    /// # Errors
    /// A [`GraphFailure`]; map it with [`GraphFailure::into_core`] or by its Graph code.
    pub async fn call(
        &self,
        request: GraphRequest<'_>,
    ) -> std::result::Result<Value, GraphFailure> {
        let snapshot = self.exchange(&request).await?;
        if snapshot.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&snapshot.body)
            .map_err(|err| GraphFailure::Decode(format!("{}: {err}", request.what)))
    }

    /// Makes the call and decodes its JSON body into `T`.
    ///
    /// # Errors
    /// As [`GraphClient::call`]; `Decode` when the body is not a `T`.
    pub async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        request: GraphRequest<'_>,
    ) -> std::result::Result<T, GraphFailure> {
        let what = request.what;
        let value = self.call(request).await?;
        serde_json::from_value(value).map_err(|err| GraphFailure::Decode(format!("{what}: {err}")))
    }

    /// Makes the call and returns the raw answer (media downloads).
    ///
    /// # Errors
    /// As [`GraphClient::call`].
    pub async fn fetch(
        &self,
        request: GraphRequest<'_>,
    ) -> std::result::Result<Snapshot, GraphFailure> {
        self.exchange(&request).await
    }

    async fn exchange(
        &self,
        request: &GraphRequest<'_>,
    ) -> std::result::Result<Snapshot, GraphFailure> {
        let what = request.what;
        let platform = self.platform;
        retry(&self.retry, |ctx| {
            let timeout = self
                .request_timeout
                .min(ctx.remaining().max(MIN_ATTEMPT_TIMEOUT));
            let builder = self.build(request).timeout(timeout);
            async move {
                let outcome = match builder.send().await {
                    Ok(response) => Snapshot::read(response).await,
                    Err(error) => Err(error.without_url()),
                };
                let attempt = match outcome {
                    Ok(snapshot) => self.classify(request, snapshot).await,
                    Err(error) => match classify_transport(&error, request.idempotent) {
                        Transience::Permanent => Attempt::Done(Err(GraphFailure::Transport(error))),
                        _ => Attempt::Backoff(GraphFailure::Transport(error)),
                    },
                };
                if let Attempt::Done(Err(error))
                | Attempt::Backoff(error)
                | Attempt::RetryAfter { error, .. } = &attempt
                {
                    tracing::debug!(%platform, call = what, attempt = ctx.number, %error, "Graph call failed");
                }
                attempt
            }
        })
        .await
        .map_err(GraphFailure::from)
    }

    fn build(&self, request: &GraphRequest<'_>) -> reqwest::RequestBuilder {
        let url = if request.query.is_empty() {
            request.url.clone()
        } else {
            match url::Url::parse(&request.url) {
                Ok(mut url) => {
                    url.query_pairs_mut().extend_pairs(&request.query);
                    url.to_string()
                }
                Err(_) => request.url.clone(),
            }
        };
        let mut builder = self.http.request(request.method.clone(), url);
        if let Some(token) = request.token {
            builder = builder.bearer_auth(token);
        }
        match &request.body {
            Body::None => builder,
            Body::Json(value) => builder.json(value),
            Body::Form(pairs) => builder.form(pairs),
        }
    }

    async fn report(&self, request: &GraphRequest<'_>, retry_after: Duration) {
        if let Some(call) = request.budget {
            self.budgets
                .report(&BudgetReport {
                    call,
                    budget: None,
                    pushback: Pushback::Exhausted { retry_after },
                })
                .await;
        }
    }

    /// What one answer means for the retry loop (and the rate budgets).
    async fn classify(
        &self,
        request: &GraphRequest<'_>,
        snapshot: Snapshot,
    ) -> Attempt<Snapshot, GraphFailure> {
        let usage = Usage::from_headers(&snapshot.headers);
        let hint = retry_after(&snapshot.headers).or(usage.and_then(|u| u.regain_after));
        if let Some(usage) = usage.filter(Usage::is_exhausted) {
            self.report(
                request,
                usage.regain_after.unwrap_or(EXHAUSTED_WITHOUT_HINT),
            )
            .await;
        }
        let status = snapshot.status;
        if status.is_success() {
            return Attempt::Done(Ok(snapshot));
        }
        let Some(error) = GraphError::from_body(&snapshot.body) else {
            return match classify_status(status, &snapshot.headers) {
                Transience::Permanent => Attempt::Done(Err(GraphFailure::Http(status))),
                Transience::RetryAfter(after) => Attempt::RetryAfter {
                    error: GraphFailure::Http(status),
                    after,
                },
                Transience::Backoff => Attempt::Backoff(GraphFailure::Http(status)),
            };
        };
        let class = error.class();
        let failure = GraphFailure::Api {
            status,
            error: Box::new(error),
        };
        match class {
            ErrorClass::Throttled => {
                // Told before waiting, so every other caller on any replica holds back too.
                self.report(request, hint.unwrap_or(EXHAUSTED_WITHOUT_HINT))
                    .await;
                match hint {
                    Some(after) => Attempt::RetryAfter {
                        error: failure,
                        after,
                    },
                    None => Attempt::Backoff(failure),
                }
            }
            ErrorClass::Reauth | ErrorClass::WindowClosed => Attempt::Done(Err(failure)),
            ErrorClass::Transient => Attempt::Backoff(failure),
            _ if status.is_server_error() => match hint {
                Some(after) => Attempt::RetryAfter {
                    error: failure,
                    after,
                },
                None => Attempt::Backoff(failure),
            },
            _ => Attempt::Done(Err(failure)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use axum::{Router, http::HeaderMap, response::IntoResponse, routing::any};
    use inbox_core::BudgetOperation;
    use inbox_http::BackoffConfig;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<Duration>>);

    #[async_trait]
    impl RateBudgets for Recorder {
        async fn acquire(&self, _call: &BudgetCall<'_>) -> Result<()> {
            Ok(())
        }
        async fn report(&self, report: &BudgetReport<'_>) {
            if let Pushback::Exhausted { retry_after } = report.pushback {
                self.0.lock().unwrap().push(retry_after);
            }
        }
    }

    /// One scripted answer: status, extra headers, body.
    type Answer = (u16, Vec<(&'static str, String)>, String);

    /// Serves scripted answers, one per request, then `200 {}`.
    async fn serve(answers: Vec<Answer>) -> (String, Arc<Mutex<usize>>) {
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let hits = Arc::new(Mutex::new(0usize));
        let counted = hits.clone();
        let app = Router::new().fallback(any(move |headers: HeaderMap| {
            let answers = answers.clone();
            let counted = counted.clone();
            async move {
                *counted.lock().unwrap() += 1;
                assert!(
                    headers
                        .get("authorization")
                        .is_some_and(|v| v == "Bearer tok"),
                    "the token travels as a Bearer header"
                );
                let (status, extra, body) =
                    answers
                        .lock()
                        .unwrap()
                        .next()
                        .unwrap_or((200, Vec::new(), "{}".to_owned()));
                let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
                for (name, value) in extra {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v24.0/x", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, hits)
    }

    fn client(budgets: Arc<dyn RateBudgets>) -> GraphClient {
        let retry = RetryConfig {
            budget: Duration::from_secs(5),
            max_attempts: 4,
            backoff: BackoffConfig {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(5),
                multiplier: 2.0,
                jitter: false,
            },
        };
        GraphClient::new(
            PlatformKind::Facebook,
            &ClientOptions::default(),
            retry,
            budgets,
        )
        .unwrap()
    }

    fn throttle(code: i64) -> String {
        json!({"error": {"message": "(#4) Application request limit reached", "code": code}})
            .to_string()
    }

    #[tokio::test]
    async fn throttling_is_reported_then_retried() {
        let recorder = Arc::new(Recorder::default());
        let (url, hits) = serve(vec![(400, vec![("retry-after", "0".into())], throttle(4))]).await;
        let call = BudgetCall::new(PlatformKind::Facebook, BudgetOperation::Send, "page");
        let value = client(recorder.clone())
            .call(
                GraphRequest::post(url, "send")
                    .bearer("tok")
                    .budget(call)
                    .json(json!({})),
            )
            .await
            .unwrap();
        assert_eq!(value, json!({}));
        assert_eq!(*hits.lock().unwrap(), 2);
        assert_eq!(*recorder.0.lock().unwrap(), [Duration::ZERO]);
    }

    #[tokio::test]
    async fn a_regain_time_beyond_the_budget_ends_at_once_with_the_hint() {
        let recorder = Arc::new(Recorder::default());
        let usage =
            r#"{"1":[{"type":"messenger","call_count":100,"estimated_time_to_regain_access":60}]}"#;
        let (url, hits) = serve(vec![(
            400,
            vec![("x-business-use-case-usage", usage.to_owned())],
            throttle(80_006),
        )])
        .await;
        let call = BudgetCall::new(PlatformKind::Facebook, BudgetOperation::Send, "page");
        let failure = client(recorder.clone())
            .call(GraphRequest::post(url, "send").bearer("tok").budget(call))
            .await
            .unwrap_err();
        assert_eq!(*hits.lock().unwrap(), 1);
        match failure.into_core(PlatformKind::Facebook) {
            Error::Unavailable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3600)));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            recorder
                .0
                .lock()
                .unwrap()
                .contains(&Duration::from_secs(3600))
        );
    }

    #[tokio::test]
    async fn server_errors_back_off_and_refusals_do_not() {
        let (url, hits) = serve(vec![
            (500, vec![], "<html>oops</html>".into()),
            (
                503,
                vec![],
                json!({"error": {"message": "x", "code": 2, "is_transient": true}}).to_string(),
            ),
        ])
        .await;
        client(Arc::new(Recorder::default()))
            .call(GraphRequest::get(url, "me").bearer("tok"))
            .await
            .unwrap();
        assert_eq!(*hits.lock().unwrap(), 3);

        let refused = json!({"error": {"message": "(#551) This person isn't available right now.", "code": 551, "error_subcode": 1_545_041}}).to_string();
        let (url, hits) = serve(vec![(400, vec![], refused)]).await;
        let failure = client(Arc::new(Recorder::default()))
            .call(GraphRequest::post(url, "send").bearer("tok"))
            .await
            .unwrap_err();
        assert_eq!(*hits.lock().unwrap(), 1);
        assert_eq!(failure.graph_error().unwrap().code_text(), "551/1545041");
        let expired =
            json!({"error": {"message": "Error validating access token", "code": 190}}).to_string();
        let (url, _) = serve(vec![(401, vec![], expired)]).await;
        let failure = client(Arc::new(Recorder::default()))
            .call(GraphRequest::get(url, "me").bearer("tok"))
            .await
            .unwrap_err();
        assert!(matches!(
            failure.into_core(PlatformKind::Facebook),
            Error::ReauthRequired { .. }
        ));
    }

    #[tokio::test]
    async fn full_usage_on_a_success_is_reported() {
        let recorder = Arc::new(Recorder::default());
        let (url, _) = serve(vec![(
            200,
            vec![(
                "x-app-usage",
                r#"{"call_count":100,"total_time":3,"total_cputime":1}"#.to_owned(),
            )],
            "{\"ok\":true}".into(),
        )])
        .await;
        let call = BudgetCall::new(PlatformKind::Facebook, BudgetOperation::Read, "page");
        client(recorder.clone())
            .call(GraphRequest::get(url, "profile").bearer("tok").budget(call))
            .await
            .unwrap();
        assert_eq!(*recorder.0.lock().unwrap(), [EXHAUSTED_WITHOUT_HINT]);
    }
}
