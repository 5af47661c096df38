//! What the Meta adapters (Instagram, Facebook Messenger, WhatsApp) share: the webhook
//! handshake and signature, the Graph error envelope and usage headers, one retrying Graph
//! call, and the Messenger Platform shapes that Instagram and Messenger have in common.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod handshake;
pub mod messaging;
pub mod signature;
pub mod usage;

pub use client::{GraphClient, GraphFailure, GraphRequest};
pub use error::{ErrorClass, GraphError, classify};
pub use handshake::handshake;
pub use signature::{SIGNATURE_HEADER, sign, verify_signature};
pub use usage::Usage;

/// The Graph API version the gateway speaks unless configured otherwise (`INBOX_GRAPH_API_VERSION`).
pub const DEFAULT_GRAPH_VERSION: &str = "v24.0";

/// Normalises a Graph API version as configured (`v24.0` or `24.0`) to the path form `v24.0`.
///
/// # Errors
/// A message when the text is not `v<major>.<minor>`.
pub fn parse_graph_version(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix('v').unwrap_or(trimmed);
    let valid = digits.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major.bytes().all(|b| b.is_ascii_digit())
            && minor.bytes().all(|b| b.is_ascii_digit())
    });
    if valid {
        Ok(format!("v{digits}"))
    } else {
        Err(format!(
            "`{trimmed}` is not a Graph API version such as v24.0"
        ))
    }
}

/// Checks a configured API base URL: `http(s)://host[:port][/prefix]` without a version segment
/// (the version is configured on its own and added per endpoint, because Instagram's token
/// endpoints are unversioned) and returns it without a trailing slash.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_api_base(text: &str) -> Result<String, String> {
    let url =
        url::Url::parse(text.trim()).map_err(|err| format!("`{text}` is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "`{text}` must be an http:// or https:// URL with a host"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{text}` must not have a query or fragment"));
    }
    let versioned = url
        .path_segments()
        .into_iter()
        .flatten()
        .any(|segment| parse_graph_version(segment).is_ok() && segment.starts_with('v'));
    if versioned {
        return Err(format!(
            "`{text}` contains an API version; give the host only and set the version with INBOX_GRAPH_API_VERSION"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_take_both_forms() {
        assert_eq!(parse_graph_version("v24.0").unwrap(), "v24.0");
        assert_eq!(parse_graph_version("21.0").unwrap(), "v21.0");
        for bad in ["", "v24", "latest", "v24.x", "v.0"] {
            assert!(parse_graph_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bases_lose_the_slash_and_refuse_versions() {
        assert_eq!(
            parse_api_base("https://graph.facebook.com/").unwrap(),
            "https://graph.facebook.com"
        );
        assert_eq!(
            parse_api_base("http://127.0.0.1:9000/prefix").unwrap(),
            "http://127.0.0.1:9000/prefix"
        );
        assert!(parse_api_base("https://graph.instagram.com/v21.0").is_err());
        assert!(parse_api_base("ftp://x").is_err());
        assert!(parse_api_base("https://x/?a=b").is_err());
    }
}
