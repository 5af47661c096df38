//! The Instagram calls the adapter makes, on top of the shared Graph client: URLs (versioned
//! Graph endpoints, the unversioned token endpoints, the OAuth host) and the decoding of each
//! answer. Tokens travel as `Authorization: Bearer`, except on the token endpoints, which
//! document `access_token` as a query parameter
//! (<https://developers.facebook.com/docs/instagram-platform/reference/access_token>).

use inbox_core::{BudgetCall, Result};
use inbox_platform_meta::{GraphClient, GraphFailure, GraphRequest};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::{InstagramConfig, PLATFORM, wire};

/// The subscription fields asked for each account (`POST /me/subscribed_apps`).
pub(crate) const SUBSCRIBED_FIELDS: &str =
    "messages,messaging_seen,message_reactions,messaging_postbacks";

/// The profile fields looked up for names.
pub(crate) const PROFILE_FIELDS: &str = "name,username,profile_pic";

pub(crate) type CallResult<T> = std::result::Result<T, GraphFailure>;

#[derive(Debug)]
pub(crate) struct InstagramApi {
    pub(crate) graph: GraphClient,
    config: InstagramConfig,
}

impl InstagramApi {
    pub(crate) fn new(config: &InstagramConfig) -> Result<Self> {
        Ok(InstagramApi {
            graph: GraphClient::new(
                PLATFORM,
                &config.http,
                config.retry.clone(),
                config.budgets.clone(),
            )?,
            config: config.clone(),
        })
    }

    /// `{api}/{version}/{path}`.
    pub(crate) fn versioned(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.config.api_base, self.config.version)
    }

    pub(crate) async fn me(&self, token: &str) -> CallResult<wire::Me> {
        let request = GraphRequest::get(self.versioned("me"), "me")
            .bearer(token)
            .query(
                "fields",
                "user_id,username,name,account_type,profile_picture_url",
            );
        self.graph.call_as(request).await
    }

    /// `ig_exchange_token`: a short-lived token for a 60-day one. Needs the app secret.
    pub(crate) async fn exchange(&self, short: &str) -> Option<CallResult<wire::LongLivedToken>> {
        let secret = self.config.app_secret.as_ref()?;
        let request = GraphRequest::get(
            format!("{}/access_token", self.config.api_base),
            "ig_exchange_token",
        )
        .query("grant_type", "ig_exchange_token")
        .query("client_secret", secret.expose_secret())
        .query("access_token", short);
        Some(self.graph.call_as(request).await)
    }

    /// `ig_refresh_token`: a long-lived token at least 24 h old for a new 60-day one.
    pub(crate) async fn refresh(&self, long: &str) -> CallResult<wire::LongLivedToken> {
        let request = GraphRequest::get(
            format!("{}/refresh_access_token", self.config.api_base),
            "ig_refresh_token",
        )
        .query("grant_type", "ig_refresh_token")
        .query("access_token", long);
        self.graph.call_as(request).await
    }

    /// The OAuth code exchange (`POST {oauth}/oauth/access_token`, form-encoded).
    pub(crate) async fn exchange_code(
        &self,
        app_id: &str,
        secret: &str,
        code: &str,
        redirect_uri: &str,
    ) -> CallResult<wire::ShortLivedToken> {
        let form = vec![
            ("client_id".to_owned(), app_id.to_owned()),
            ("client_secret".to_owned(), secret.to_owned()),
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("redirect_uri".to_owned(), redirect_uri.to_owned()),
            ("code".to_owned(), code.to_owned()),
        ];
        let request = GraphRequest::post(
            format!("{}/oauth/access_token", self.config.oauth_base),
            "oauth/access_token",
        )
        .form(form);
        let value = self.graph.call(request).await?;
        wire::short_lived_token(value)
            .ok_or_else(|| GraphFailure::Decode("oauth/access_token: no access_token".to_owned()))
    }

    pub(crate) async fn post_messages(
        &self,
        token: &str,
        body: Value,
        budget: BudgetCall<'_>,
        what: &'static str,
    ) -> CallResult<Value> {
        let request = GraphRequest::post(self.versioned("me/messages"), what)
            .bearer(token)
            .json(body)
            .budget(budget);
        self.graph.call(request).await
    }

    pub(crate) async fn profile(
        &self,
        token: &str,
        igsid: &str,
        budget: BudgetCall<'_>,
    ) -> CallResult<wire::Profile> {
        let request = GraphRequest::get(self.versioned(igsid), "profile")
            .bearer(token)
            .query("fields", PROFILE_FIELDS)
            .budget(budget);
        self.graph.call_as(request).await
    }

    pub(crate) async fn subscribe(&self, token: &str, subscribe: bool) -> CallResult<Value> {
        let url = self.versioned("me/subscribed_apps");
        let request = if subscribe {
            GraphRequest::post(url, "subscribed_apps")
                .idempotent(true)
                .query("subscribed_fields", SUBSCRIBED_FIELDS)
        } else {
            GraphRequest::delete(url, "subscribed_apps")
        };
        self.graph.call(request.bearer(token)).await
    }

    /// The authorize URL of the OAuth flow.
    pub(crate) fn authorize_url(&self, app_id: &str, redirect_uri: &str, state: &str) -> String {
        let mut url = url::Url::parse(&format!("{}/oauth/authorize", self.config.oauth_base))
            .expect("the OAuth base was validated");
        url.query_pairs_mut()
            .append_pair("client_id", app_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair(
                "scope",
                "instagram_business_basic,instagram_business_manage_messages",
            )
            .append_pair("state", state);
        url.into()
    }
}
