//! The one place that turns errors into HTTP: every `inbox_core::Error` variant, and the few
//! failures only the HTTP layer knows (bad API key, unknown route, oversized body), become an
//! RFC 9457 `application/problem+json` document with SPEC.md's stable `code`.
//!
//! Handlers return [`ApiResult`]; nothing else in the crate picks a status code for an error.
//! Internal errors are logged here, inside the request's span (which carries the request id),
//! and the caller only sees a generic sentence and that id.

use std::{fmt, time::Duration};

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use inbox_core::Error;
use serde::Serialize;
use utoipa::{
    ToSchema,
    openapi::{ContentBuilder, RefOr, Response as OpenApiResponse, ResponseBuilder},
};

use crate::layers;

/// The media type of every error body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// `Result` for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// The stable, machine-readable error codes. Clients switch on these, never on `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: malformed JSON, a wrong type, an unknown enum value, a missing field, a bad
    /// cursor or limit. `param` names the field.
    InvalidRequest,
    /// 401: missing or unknown API key.
    Unauthorized,
    /// 404: no such resource in this workspace (or no such route).
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: the request conflicts with the current state (e.g. the platform account is
    /// connected in another workspace).
    Conflict,
    /// 409: an `Idempotency-Key` was reused with a different request, or its first request is
    /// still running.
    IdempotencyConflict,
    /// 409: the account's credentials stopped working; connect it again.
    AccountReauthRequired,
    /// 413: the request body is larger than the limit.
    PayloadTooLarge,
    /// 422: the platform's messaging window is closed for this conversation.
    MessagingWindowClosed,
    /// 422: the text is longer than the platform allows.
    MessageTooLong,
    /// 422: the content cannot be sent on this platform.
    UnsupportedContent,
    /// 422: the platform has no such operation.
    NotSupportedByPlatform,
    /// 429: a rate budget is exhausted; see `Retry-After`.
    RateLimited,
    /// 500: a bug or unexpected failure; quote `requestId` when reporting it.
    InternalError,
    /// 502: the platform refused the request; its own code and message are in `platform`.
    PlatformError,
    /// 503: the platform is unavailable or throttling, or did not answer in time.
    PlatformUnavailable,
}

impl ErrorCode {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::AccountReauthRequired => "account_reauth_required",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::MessagingWindowClosed => "messaging_window_closed",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::UnsupportedContent => "unsupported_content",
            ErrorCode::NotSupportedByPlatform => "not_supported_by_platform",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::PlatformError => "platform_error",
            ErrorCode::PlatformUnavailable => "platform_unavailable",
        }
    }

    /// The HTTP status every problem with this code has.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict
            | ErrorCode::IdempotencyConflict
            | ErrorCode::AccountReauthRequired => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::MessagingWindowClosed
            | ErrorCode::MessageTooLong
            | ErrorCode::UnsupportedContent
            | ErrorCode::NotSupportedByPlatform => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::PlatformError => StatusCode::BAD_GATEWAY,
            ErrorCode::PlatformUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short, constant summary (the problem's `title`).
    pub fn title(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "Invalid request",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::NotFound => "Not found",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::IdempotencyConflict => "Idempotency conflict",
            ErrorCode::AccountReauthRequired => "Account must be reconnected",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::MessagingWindowClosed => "Messaging window closed",
            ErrorCode::MessageTooLong => "Message too long",
            ErrorCode::UnsupportedContent => "Unsupported content",
            ErrorCode::NotSupportedByPlatform => "Not supported by the platform",
            ErrorCode::RateLimited => "Rate limited",
            ErrorCode::InternalError => "Internal error",
            ErrorCode::PlatformError => "Platform error",
            ErrorCode::PlatformUnavailable => "Platform unavailable",
        }
    }

    /// The problem `type` URI. A URN because the types are identifiers, not pages; the
    /// README's error table documents each.
    pub fn type_uri(self) -> String {
        format!("urn:inboxgw:problem:{}", self.as_str())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The platform's own error, passed through on `platform_error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PlatformErrorDetail {
    /// The platform's error code, as text (`403`, `190/2018278`, …).
    pub code: String,
    /// The platform's error message.
    pub message: String,
}

/// An RFC 9457 problem document, the body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "type": "urn:inboxgw:problem:invalid_request",
    "title": "Invalid request",
    "status": 400,
    "detail": "invalid `status`: unknown variant `closed`, expected `active` or `archived`",
    "code": "invalid_request",
    "error": "invalid `status`: unknown variant `closed`, expected `active` or `archived`",
    "param": "status",
    "requestId": "req_01jd3k5n8q2w4e6r8t0y2u4i6o"
}))]
pub struct Problem {
    /// Identifies the problem type: `urn:inboxgw:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this request, for people.
    pub detail: String,
    /// The stable machine-readable code.
    pub code: ErrorCode,
    /// The same text as `detail` (Zernio SDKs read `error`).
    pub error: String,
    /// On `invalid_request`: the offending field or query parameter, by its name in the
    /// request (`status`, `credentials.botToken`, `attachments[0].type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// On `platform_error`: the platform's own code and message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformErrorDetail>,
    /// The request id, also in the `X-Request-Id` header and the gateway's logs.
    pub request_id: String,
}

/// An error on its way to becoming a problem response. Boxed, so handler results stay small.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    code: ErrorCode,
    detail: String,
    param: Option<String>,
    platform: Option<PlatformErrorDetail>,
    retry_after: Option<Duration>,
    /// Kept for the log line of internal errors; never shown.
    source: Option<Error>,
}

impl ApiError {
    fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError::from_inner(Inner {
            code,
            detail: detail.into(),
            param: None,
            platform: None,
            retry_after: None,
            source: None,
        })
    }

    fn from_inner(inner: Inner) -> Self {
        ApiError(Box::new(inner))
    }

    fn with(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        change(&mut self.0);
        self
    }

    /// `401 unauthorized` with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Unauthorized, detail)
    }

    /// `413 payload_too_large`.
    pub fn payload_too_large(limit: Option<usize>) -> Self {
        let detail = match limit {
            Some(limit) => format!("the request body is larger than the limit of {limit} bytes"),
            None => "the request body is larger than the limit".to_owned(),
        };
        ApiError::new(ErrorCode::PayloadTooLarge, detail)
    }

    /// `404 not_found` for a path no route matches.
    pub fn route_not_found(method: &str, path: &str) -> Self {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no resource at {method} {}", shorten(path)),
        )
    }

    /// `405 method_not_allowed`.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "{method} is not allowed on {}; see the `Allow` header",
                shorten(path)
            ),
        )
    }

    /// `400 invalid_request`, optionally naming the parameter.
    pub fn invalid_request(param: Option<String>, detail: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidRequest, detail).with(|inner| inner.param = param)
    }

    /// `500 internal_error` for a panic; the panic message is logged, not shown.
    pub fn panic(message: &str) -> Self {
        let source = Error::internal_msg(format!("handler panicked: {message}"));
        ApiError::new(ErrorCode::InternalError, INTERNAL_DETAIL)
            .with(|inner| inner.source = Some(source))
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// The problem document for this error under `request_id`.
    pub fn to_problem(&self, request_id: String) -> Problem {
        let inner = &self.0;
        Problem {
            problem_type: inner.code.type_uri(),
            title: inner.code.title().to_owned(),
            status: inner.code.status().as_u16(),
            detail: inner.detail.clone(),
            code: inner.code,
            error: inner.detail.clone(),
            param: inner.param.clone(),
            platform: inner.platform.clone(),
            request_id,
        }
    }
}

const INTERNAL_DETAIL: &str =
    "the gateway failed unexpectedly; quote the request id when reporting this";

fn shorten(text: &str) -> String {
    text.chars().take(200).collect()
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let detail = err.to_string();
        match err {
            Error::NotFound { .. } => ApiError::new(ErrorCode::NotFound, detail),
            Error::InvalidInput { param, message } => ApiError::invalid_request(param, message),
            Error::Conflict { .. } => ApiError::new(ErrorCode::Conflict, detail),
            Error::IdempotencyConflict { .. } => {
                ApiError::new(ErrorCode::IdempotencyConflict, detail)
            }
            Error::MessagingWindowClosed { .. } => {
                ApiError::new(ErrorCode::MessagingWindowClosed, detail)
            }
            Error::MessageTooLong { .. } => ApiError::new(ErrorCode::MessageTooLong, detail),
            Error::UnsupportedContent { .. } => {
                ApiError::new(ErrorCode::UnsupportedContent, detail)
            }
            // The reason is for our logs only: telling a caller why a signature failed helps
            // forge the next one.
            Error::WebhookVerification { message } => {
                tracing::warn!(reason = %message, "webhook verification failed");
                ApiError::unauthorized("the request could not be verified")
            }
            Error::NotSupported { .. } => ApiError::new(ErrorCode::NotSupportedByPlatform, detail),
            Error::RateLimited { retry_after } => ApiError::new(ErrorCode::RateLimited, detail)
                .with(|inner| inner.retry_after = Some(retry_after)),
            Error::ReauthRequired { .. } => ApiError::new(ErrorCode::AccountReauthRequired, detail),
            Error::Platform { code, message, .. } => {
                ApiError::new(ErrorCode::PlatformError, detail)
                    .with(|inner| inner.platform = Some(PlatformErrorDetail { code, message }))
            }
            Error::Unavailable { retry_after, .. } => {
                ApiError::new(ErrorCode::PlatformUnavailable, detail)
                    .with(|inner| inner.retry_after = retry_after)
            }
            other => ApiError::new(ErrorCode::InternalError, INTERNAL_DETAIL)
                .with(|inner| inner.source = Some(other)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = layers::current_request_id();
        let inner = &self.0;
        match (&inner.source, inner.code) {
            (Some(source), _) => {
                let cause = std::error::Error::source(source).map(ToString::to_string);
                tracing::error!(error = %source, cause, request_id, "internal error");
            }
            (None, ErrorCode::PlatformError | ErrorCode::PlatformUnavailable) => {
                tracing::warn!(code = %inner.code, detail = %inner.detail, "platform call failed");
            }
            _ => {}
        }
        let problem = self.to_problem(request_id);
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (inner.code.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if inner.code == ErrorCode::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(retry_after) = inner.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_seconds(retry_after)),
            );
        }
        response
    }
}

/// `Retry-After` takes whole seconds; round up so a client never retries too early.
pub fn retry_after_seconds(retry_after: Duration) -> u64 {
    let whole = retry_after.as_secs();
    if retry_after.subsec_nanos() > 0 {
        whole + 1
    } else {
        whole
    }
}

/// Reusable OpenAPI responses for the error statuses, all with the [`Problem`] body. Handlers
/// list the ones they can return (`(status = 404, response = NotFound)`).
pub mod responses {
    use super::*;

    macro_rules! problem_response {
        ($name:ident, $description:literal) => {
            #[doc = $description]
            #[derive(Debug)]
            pub struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<OpenApiResponse>) {
                    (stringify!($name), problem_response($description))
                }
            }
        };
    }

    fn problem_response(description: &str) -> RefOr<OpenApiResponse> {
        ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_CONTENT_TYPE,
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Problem",
                    ))))
                    .build(),
            )
            .build()
            .into()
    }

    problem_response!(
        BadRequest,
        "`invalid_request`: the request is malformed; `param` names the field or query parameter."
    );
    problem_response!(
        Unauthorized,
        "`unauthorized`: the API key is missing or unknown."
    );
    problem_response!(NotFound, "`not_found`: no such resource in this workspace.");
    problem_response!(
        Conflict,
        "`conflict`, `idempotency_conflict` or `account_reauth_required`."
    );
    problem_response!(
        PayloadTooLarge,
        "`payload_too_large`: the body is larger than the limit (1 MiB by default)."
    );
    problem_response!(
        Unprocessable,
        "`messaging_window_closed`, `message_too_long`, `unsupported_content` or `not_supported_by_platform`."
    );
    problem_response!(
        RateLimited,
        "`rate_limited`: retry after `Retry-After` seconds."
    );
    problem_response!(
        InternalError,
        "`internal_error`: quote `requestId` when reporting it."
    );
    problem_response!(
        PlatformError,
        "`platform_error`: the platform refused; its own code and message are in `platform`."
    );
    problem_response!(
        PlatformUnavailable,
        "`platform_unavailable`: the platform is unavailable, throttling or too slow; `Retry-After` when known."
    );

    /// Every reusable error response, for the document's `components.responses`.
    pub fn all() -> Vec<(String, RefOr<OpenApiResponse>)> {
        use utoipa::ToResponse;
        [
            BadRequest::response(),
            Unauthorized::response(),
            NotFound::response(),
            Conflict::response(),
            PayloadTooLarge::response(),
            Unprocessable::response(),
            RateLimited::response(),
            InternalError::response(),
            PlatformError::response(),
            PlatformUnavailable::response(),
        ]
        .into_iter()
        .map(|(name, response)| (name.to_owned(), response))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use inbox_core::{PlatformKind, TextUnit};

    use super::*;

    #[test]
    fn every_core_error_maps_to_the_contract_status_and_code() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (Error::not_found("conversation", "conv_x"), 404, "not_found"),
            (Error::invalid("status", "bad"), 400, "invalid_request"),
            (
                Error::Conflict {
                    message: "taken".into(),
                },
                409,
                "conflict",
            ),
            (
                Error::IdempotencyConflict {
                    message: "x".into(),
                },
                409,
                "idempotency_conflict",
            ),
            (
                Error::MessagingWindowClosed {
                    message: "x".into(),
                },
                422,
                "messaging_window_closed",
            ),
            (
                Error::MessageTooLong {
                    platform: PlatformKind::Telegram,
                    limit: 4096,
                    unit: TextUnit::Utf16,
                    actual: 5000,
                },
                422,
                "message_too_long",
            ),
            (
                Error::UnsupportedContent {
                    message: "x".into(),
                },
                422,
                "unsupported_content",
            ),
            (
                Error::WebhookVerification {
                    message: "x".into(),
                },
                401,
                "unauthorized",
            ),
            (
                Error::NotSupported {
                    platform: PlatformKind::Telegram,
                    operation: "x",
                },
                422,
                "not_supported_by_platform",
            ),
            (
                Error::RateLimited {
                    retry_after: Duration::from_millis(1500),
                },
                429,
                "rate_limited",
            ),
            (
                Error::ReauthRequired {
                    platform: PlatformKind::X,
                    message: "revoked".into(),
                },
                409,
                "account_reauth_required",
            ),
            (
                Error::Platform {
                    platform: PlatformKind::X,
                    code: "403".into(),
                    message: "no".into(),
                },
                502,
                "platform_error",
            ),
            (
                Error::Unavailable {
                    message: "down".into(),
                    retry_after: None,
                },
                503,
                "platform_unavailable",
            ),
            (Error::internal_msg("boom"), 500, "internal_error"),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            assert_eq!(api.code().status().as_u16(), status, "{code}");
            assert_eq!(api.code().as_str(), code);
        }
    }

    #[test]
    fn internal_details_are_never_shown() {
        let api = ApiError::from(Error::internal_msg("password=hunter2 in SQL"));
        let problem = api.to_problem("req_1".into());
        assert!(!problem.detail.contains("hunter2"));
        assert_eq!(problem.error, problem.detail);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
    }
}
