//! The Graph error envelope every Meta API answers refusals with, and what each code means
//! for the gateway
//! (<https://developers.facebook.com/docs/graph-api/guides/error-handling>,
//! <https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes>,
//! <https://developers.facebook.com/docs/messenger-platform/reference/send-api/error-codes>).
//!
//! ```json
//! {"error": {"message": "(#10) This message is sent outside of allowed window.",
//!            "type": "OAuthException", "code": 10, "error_subcode": 2018278,
//!            "is_transient": false, "fbtrace_id": "AbCdEf123",
//!            "error_data": {"messaging_product": "whatsapp", "details": "…"}}}
//! ```
//!
//! Meta has been seen sending numbers as strings; both are accepted.

use inbox_core::{Error, PlatformKind};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The `error` object of a Graph refusal.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct GraphError {
    /// Meta's message, e.g. `(#551) This person isn't available right now.`
    #[serde(default)]
    pub message: String,
    /// `OAuthException`, `GraphMethodException`, …
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The error code.
    #[serde(default, deserialize_with = "lenient_int")]
    pub code: Option<i64>,
    /// The subcode, which refines some codes (10/2018278 is "outside the window").
    #[serde(default, deserialize_with = "lenient_int")]
    pub error_subcode: Option<i64>,
    /// Whether Meta says retrying may succeed.
    #[serde(default)]
    pub is_transient: Option<bool>,
    /// A title meant for end users.
    #[serde(default)]
    pub error_user_title: Option<String>,
    /// A message meant for end users.
    #[serde(default)]
    pub error_user_msg: Option<String>,
    /// WhatsApp's `{messaging_product, details}`; Meta tells integrators to branch on `code`
    /// and read `details`.
    #[serde(default)]
    pub error_data: Option<Value>,
    /// Meta's trace id, for support requests.
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

fn lenient_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[derive(Deserialize)]
struct Envelope {
    error: GraphError,
}

impl GraphError {
    /// The `error` of a Graph error body, if the body is one.
    pub fn from_body(body: &[u8]) -> Option<GraphError> {
        serde_json::from_slice::<Envelope>(body)
            .ok()
            .map(|envelope| envelope.error)
    }

    /// The code, 0 when absent.
    pub fn code(&self) -> i64 {
        self.code.unwrap_or(0)
    }

    /// `code/subcode`, or `code` without a subcode: the form `Error::Platform` reports.
    pub fn code_text(&self) -> String {
        match self.error_subcode {
            Some(subcode) => format!("{}/{subcode}", self.code()),
            None => self.code().to_string(),
        }
    }

    /// WhatsApp's `error_data.details`, where present.
    pub fn details(&self) -> Option<&str> {
        self.error_data
            .as_ref()
            .and_then(|data| data.get("details"))
            .and_then(Value::as_str)
            .filter(|details| !details.is_empty())
    }

    /// Meta's message, with WhatsApp's `details` added when they say more.
    pub fn full_message(&self) -> String {
        let message = if self.message.is_empty() {
            format!("error {}", self.code_text())
        } else {
            self.message.clone()
        };
        match self.details() {
            Some(details) if !message.contains(details) => format!("{message}: {details}"),
            _ => message,
        }
    }

    /// What the gateway makes of this error.
    pub fn class(&self) -> ErrorClass {
        let class = classify(self.code(), self.error_subcode, self.is_transient);
        // Some window refusals come without their subcode; Meta's wording is stable
        // (UNCONFIRMED which endpoints omit the subcode, so both forms are accepted).
        if class == ErrorClass::Refused
            && self.code() == 10
            && self
                .message
                .to_ascii_lowercase()
                .contains("outside of allowed window")
        {
            return ErrorClass::WindowClosed;
        }
        class
    }

    /// Whether this refusal says the text was too long (Meta uses code 100 with wording such
    /// as "Length of param message[text] must be less than or equal to 2000" or WhatsApp's
    /// "text['body'] must be at most 4096 characters"; the exact texts are UNCONFIRMED, so any
    /// length complaint about the text counts).
    pub fn says_text_too_long(&self) -> bool {
        if self.code() != 100 {
            return false;
        }
        let text = self.full_message().to_ascii_lowercase();
        let about_length = [
            "length",
            "too long",
            "must be at most",
            "less than or equal",
            "characters",
        ]
        .iter()
        .any(|word| text.contains(word));
        let about_text = ["text", "body"].iter().any(|word| text.contains(word));
        about_length && about_text
    }
}

/// What a Graph error code means to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The token is expired, revoked or invalid (190): the account needs to be connected again.
    Reauth,
    /// Throttling: retried after the platform's hint, reported to the rate budgets.
    Throttled,
    /// The platform says the messaging window is closed.
    WindowClosed,
    /// A temporary failure on Meta's side: retried with backoff.
    Transient,
    /// The content cannot be sent (unsupported type, media the platform could not fetch).
    Unsupported,
    /// A WhatsApp template problem (wrong name, parameters, paused).
    InvalidTemplate,
    /// A parameter Meta says is missing or invalid.
    InvalidParameter,
    /// Any other refusal: not retried, reported with Meta's code and message.
    Refused,
}

/// Classifies a Graph error by code, subcode and `is_transient`.
pub fn classify(code: i64, subcode: Option<i64>, is_transient: Option<bool>) -> ErrorClass {
    match (code, subcode) {
        // 190 with any subcode (458 app removed, 460 password changed, 463 expired, 467
        // invalid): the credentials are gone for good. 102 is the legacy session error.
        (190 | 102, _) => ErrorClass::Reauth,
        // 10/2018278 Messenger, 10/2534022 Instagram; WhatsApp 131047 re-engagement and the
        // legacy On-Premises 470.
        (10, Some(2_018_278 | 2_534_022)) | (131_047 | 470, _) => ErrorClass::WindowClosed,
        // Graph 4 app, 17 user, 32 page, 341 application limit, 613 custom; business use case
        // 80001–80014 (80002 Instagram, 80006 Messenger, 80007 WhatsApp: UNCONFIRMED against
        // Meta's table, so the whole range counts); WhatsApp 130429 throughput, 131048 spam
        // rate, 131056 pair rate.
        (4 | 17 | 32 | 341 | 613 | 130_429 | 131_048 | 131_056, _) => ErrorClass::Throttled,
        (80_001..=80_014, _) => ErrorClass::Throttled,
        // 1 unknown, 2 service, 1200 temporary send failure, WhatsApp 131000 something went
        // wrong, 131016 service unavailable, 135000 generic user error (retry advised).
        (1 | 2 | 1200 | 131_000 | 131_016 | 135_000, _) => ErrorClass::Transient,
        // WhatsApp 131051 unsupported type, 131052 media download error, 131053 upload error;
        // Messenger 100/2018109 attachment too large.
        (131_051..=131_053, _) | (100, Some(2_018_109)) => ErrorClass::Unsupported,
        (132_000..=132_999, _) => ErrorClass::InvalidTemplate,
        (131_008 | 131_009, _) => ErrorClass::InvalidParameter,
        _ if is_transient == Some(true) => ErrorClass::Transient,
        _ => ErrorClass::Refused,
    }
}

/// The core error for a Graph refusal that was not retried.
pub fn to_core(platform: PlatformKind, error: &GraphError) -> Error {
    let message = error.full_message();
    match error.class() {
        ErrorClass::Reauth => Error::ReauthRequired {
            platform,
            message: format!("{message} ({})", error.code_text()),
        },
        ErrorClass::WindowClosed => Error::MessagingWindowClosed {
            message: format!(
                "{platform} refused the message because its messaging window is closed ({}): {message}",
                error.code_text()
            ),
        },
        ErrorClass::Unsupported => Error::UnsupportedContent {
            message: format!(
                "{platform} cannot send this content ({}): {message}",
                error.code_text()
            ),
        },
        ErrorClass::InvalidTemplate => Error::invalid(
            "template",
            format!(
                "{platform} refused the template ({}): {message}",
                error.code_text()
            ),
        ),
        ErrorClass::InvalidParameter => Error::InvalidInput {
            param: None,
            message: format!(
                "{platform} refused a parameter ({}): {message}",
                error.code_text()
            ),
        },
        ErrorClass::Throttled | ErrorClass::Transient => Error::Unavailable {
            message: format!(
                "{platform} is unavailable ({}): {message}",
                error.code_text()
            ),
            retry_after: None,
        },
        ErrorClass::Refused => Error::Platform {
            platform,
            code: error.code_text(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> GraphError {
        GraphError::from_body(body.as_bytes()).expect("an envelope")
    }

    #[test]
    fn the_envelope_parses_with_numbers_as_strings() {
        let error = parse(
            r#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":"10","error_subcode":2018278,"fbtrace_id":"AbC","extra":1}}"#,
        );
        assert_eq!(error.code(), 10);
        assert_eq!(error.code_text(), "10/2018278");
        assert_eq!(error.class(), ErrorClass::WindowClosed);
        assert!(GraphError::from_body(b"<html>").is_none());
        assert!(GraphError::from_body(br#"{"data":[]}"#).is_none());
    }

    #[test]
    fn codes_map_as_platforms_md_says() {
        use ErrorClass::*;
        let cases = [
            (190, Some(463), Reauth),
            (190, None, Reauth),
            (10, Some(2_018_278), WindowClosed),
            (10, Some(2_534_022), WindowClosed),
            (131_047, None, WindowClosed),
            (4, None, Throttled),
            (17, None, Throttled),
            (32, None, Throttled),
            (613, None, Throttled),
            (80_002, None, Throttled),
            (80_006, None, Throttled),
            (80_007, None, Throttled),
            (130_429, None, Throttled),
            (131_056, None, Throttled),
            (2, Some(1_545_133), Transient),
            (131_016, None, Transient),
            (131_051, None, Unsupported),
            (132_001, None, InvalidTemplate),
            (131_008, None, InvalidParameter),
            (100, Some(2_534_014), Refused),
            (551, Some(1_545_041), Refused),
            (10, Some(2_018_065), Refused),
            (200, None, Refused),
        ];
        for (code, subcode, class) in cases {
            assert_eq!(classify(code, subcode, None), class, "{code}/{subcode:?}");
        }
        assert_eq!(classify(368, None, Some(true)), Transient);
    }

    #[test]
    fn core_errors_keep_code_and_message() {
        let error = parse(
            r#"{"error":{"message":"(#551) This person isn't available right now.","code":551,"error_subcode":1545041}}"#,
        );
        match to_core(PlatformKind::Facebook, &error) {
            Error::Platform { code, message, .. } => {
                assert_eq!(code, "551/1545041");
                assert_eq!(message, "(#551) This person isn't available right now.");
            }
            other => panic!("{other:?}"),
        }
        let expired = parse(
            r#"{"error":{"message":"Error validating access token","code":190,"error_subcode":463}}"#,
        );
        assert!(matches!(
            to_core(PlatformKind::Instagram, &expired),
            Error::ReauthRequired { .. }
        ));
        let whatsapp = parse(
            r#"{"error":{"message":"(#131047) Re-engagement message","code":131047,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}}"#,
        );
        match to_core(PlatformKind::Whatsapp, &whatsapp) {
            Error::MessagingWindowClosed { message } => {
                assert!(message.contains("24 hours"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let template = parse(
            r#"{"error":{"message":"(#132001) Template name does not exist in the translation","code":132001}}"#,
        );
        assert!(matches!(
            to_core(PlatformKind::Whatsapp, &template),
            Error::InvalidInput { param: Some(p), .. } if p == "template"
        ));
    }

    #[test]
    fn window_wording_without_a_subcode_counts() {
        let error = parse(
            r#"{"error":{"message":"(#10) This message is sent outside of allowed window.","code":10}}"#,
        );
        assert_eq!(error.class(), ErrorClass::WindowClosed);
        let permission = parse(
            r#"{"error":{"message":"(#10) Application does not have permission for this action","code":10}}"#,
        );
        assert_eq!(permission.class(), ErrorClass::Refused);
    }

    #[test]
    fn length_complaints_are_recognised() {
        for body in [
            r#"{"error":{"message":"(#100) Length of param message[text] must be less than or equal to 2000","code":100}}"#,
            r#"{"error":{"message":"(#100) Invalid parameter","code":100,"error_data":{"details":"Param text['body'] must be at most 4096 characters long."}}}"#,
        ] {
            assert!(parse(body).says_text_too_long(), "{body}");
        }
        let other = parse(
            r#"{"error":{"message":"(#100) No matching user found","code":100,"error_subcode":2018001}}"#,
        );
        assert!(!other.says_text_too_long());
    }
}
