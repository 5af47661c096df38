//! Request extractors whose every rejection is a problem document: JSON bodies and query
//! strings decoded with `serde_path_to_error`, so a bad field is reported by its name in the
//! request (`param`), and path ids parsed so that a malformed id is simply `404 not_found`.
//!
//! Unknown body fields and query parameters are ignored on purpose: Zernio SDKs send extras
//! (`profileId`, `linkPreview`, …) that must not break a drop-in switch.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{StatusCode, request::Parts},
};
use bytes::Bytes;
use inbox_core::Error;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// A JSON body, decoded into `T`.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let value = json_body(request, state).await?;
        decode_value(value).map(Json)
    }
}

/// A JSON body decoded into `T`, together with its canonical text (keys sorted, no
/// whitespace), which is what an `Idempotency-Key` is bound to.
#[derive(Debug, Clone)]
pub struct CanonicalJson<T> {
    /// The decoded body.
    pub body: T,
    /// The canonical JSON text of the body as sent.
    pub canonical: String,
}

impl<S, T> FromRequest<S> for CanonicalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let value = json_body(request, state).await?;
        let canonical = canonical_json(&value);
        Ok(CanonicalJson {
            body: decode_value(value)?,
            canonical,
        })
    }
}

async fn json_body<S: Send + Sync>(request: Request, state: &S) -> Result<Value, ApiError> {
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(None)
            } else {
                ApiError::invalid_request(
                    None,
                    format!("the request body could not be read: {rejection}"),
                )
            }
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request(
            None,
            "a JSON request body is required",
        ));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::invalid_request(None, format!("the request body is not valid JSON: {err}"))
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid_request(
            None,
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// Decodes a JSON value into `T`, naming the offending field on failure.
pub fn decode_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| describe_decode_error(err, ""))
}

/// A query string, decoded into `T`; unknown parameters are ignored.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|err| describe_decode_error(err, "query parameter "))
    }
}

/// Path parameters as raw text. Ids are parsed by the handler with [`parse_id`], so a
/// malformed id is a `404` naming the resource, like an unknown one.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|_| ApiError::route_not_found(parts.method.as_str(), parts.uri.path()))
    }
}

/// Parses a path id; anything malformed is `NotFound` for `resource`, exactly like an id that
/// does not exist.
pub fn parse_id<I>(raw: &str, resource: &'static str) -> Result<I, Error>
where
    I: std::str::FromStr,
{
    raw.parse()
        .map_err(|_| Error::not_found(resource, raw.chars().take(80).collect::<String>()))
}

/// The field path as the request spells it: `credentials.botToken`, `attachments[0].type`.
fn param_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Turns a decode error into an `invalid_request` naming the parameter. serde reports a
/// missing or duplicated field at its parent's path with the name in the message, so the name
/// is lifted out of the message and appended.
fn describe_decode_error<E: std::fmt::Display>(
    err: serde_path_to_error::Error<E>,
    kind: &str,
) -> ApiError {
    let path = param_path(err.path());
    let message = err.into_inner().to_string();
    describe_message(path, &message, kind).into()
}

fn describe_message(path: String, message: &str, kind: &str) -> Error {
    let quoted_field = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let join = |field: String| {
        if path.is_empty() {
            field
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some(field) = quoted_field("missing field `") {
        let param = join(field);
        return Error::invalid(param.clone(), format!("{kind}`{param}` is required"));
    }
    if let Some(field) = quoted_field("duplicate field `") {
        let param = join(field);
        return Error::invalid(
            param.clone(),
            format!("{kind}`{param}` is given more than once"),
        );
    }
    if path.is_empty() {
        return Error::InvalidInput {
            param: None,
            message: format!("invalid request: {message}"),
        };
    }
    Error::invalid(path.clone(), format!("invalid {kind}`{path}`: {message}"))
}

/// JSON text with object keys sorted at every level and no insignificant whitespace, so two
/// bodies that mean the same thing hash the same.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = serde_json::Map::new();
                for (key, item) in entries {
                    out.insert(key.clone(), sorted(item));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // With serde_json's default map (a BTreeMap) the rebuild is already sorted; the explicit
    // sort keeps the guarantee if a dependency turns on `preserve_order`, where insertion
    // order is kept and the sorted insertion above is what makes it canonical.
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[expect(dead_code, reason = "only decoding is under test")]
    struct Body {
        status: inbox_core::ConversationStatus,
        attachments: Option<Vec<inbox_core::OutboundAttachment>>,
        credentials: Option<Creds>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[expect(dead_code, reason = "only decoding is under test")]
    struct Creds {
        bot_token: String,
    }

    fn param_of(value: Value) -> (Option<String>, String) {
        let err = decode_value::<Body>(value).unwrap_err();
        let problem = err.to_problem("req".into());
        (problem.param, problem.detail)
    }

    #[test]
    fn decode_errors_name_the_field_as_the_request_spells_it() {
        assert_eq!(param_of(json!({})).0.as_deref(), Some("status"));
        assert_eq!(
            param_of(json!({"status": "closed"})).0.as_deref(),
            Some("status")
        );
        assert_eq!(param_of(json!({"status": 3})).0.as_deref(), Some("status"));
        let (param, detail) =
            param_of(json!({"status": "active", "attachments": [{"type": "gif", "url": "x"}]}));
        assert_eq!(param.as_deref(), Some("attachments[0].type"));
        assert!(detail.contains("gif"), "{detail}");
        let (param, _) = param_of(json!({"status": "active", "credentials": {}}));
        assert_eq!(param.as_deref(), Some("credentials.botToken"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert!(decode_value::<Body>(json!({"status": "active", "profileId": "p"})).is_ok());
    }

    #[test]
    fn canonical_json_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":{"x":null,"y":[1,2]},"b":1}"#);
    }
}
