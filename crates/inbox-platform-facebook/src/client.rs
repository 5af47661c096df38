//! The Graph calls the Facebook adapter makes, on top of the shared Graph client: Page and
//! profile reads, the Send API, Page subscriptions, and the Facebook Login token exchanges
//! (<https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived>),
//! which document the app secret and tokens as query parameters.

use inbox_core::{BudgetCall, Result};
use inbox_platform_meta::{GraphClient, GraphFailure, GraphRequest};
use serde_json::Value;

use crate::{FacebookConfig, PLATFORM, wire};

/// The Page subscription fields (`POST /{page-id}/subscribed_apps`); only fields subscribed at
/// both the app and the Page level are delivered.
pub(crate) const SUBSCRIBED_FIELDS: &str = "messages,message_echoes,message_deliveries,message_reads,message_reactions,message_edits,messaging_postbacks";

/// The Login scopes: list Pages, message as them, subscribe them, read their conversations.
pub(crate) const SCOPES: &str = "pages_show_list,pages_messaging,pages_manage_metadata,pages_read_engagement,business_management";

/// At most this many pages of `/me/accounts` are read (25 Pages each by default).
const MAX_ACCOUNT_PAGES: usize = 20;

pub(crate) type CallResult<T> = std::result::Result<T, GraphFailure>;

#[derive(Debug)]
pub(crate) struct GraphApi {
    pub(crate) graph: GraphClient,
    config: FacebookConfig,
}

impl GraphApi {
    pub(crate) fn new(config: &FacebookConfig) -> Result<Self> {
        Ok(GraphApi {
            graph: GraphClient::new(
                PLATFORM,
                &config.http,
                config.retry.clone(),
                config.budgets.clone(),
            )?,
            config: config.clone(),
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.config.graph_base, self.config.version)
    }

    pub(crate) async fn page(&self, token: &str, page_id: &str) -> CallResult<wire::Page> {
        let request = GraphRequest::get(self.url(page_id), "page")
            .bearer(token)
            .query("fields", "id,name,username");
        self.graph.call_as(request).await
    }

    pub(crate) async fn post_messages(
        &self,
        token: &str,
        page_id: &str,
        body: Value,
        budget: BudgetCall<'_>,
        what: &'static str,
    ) -> CallResult<Value> {
        let request = GraphRequest::post(self.url(&format!("{page_id}/messages")), what)
            .bearer(token)
            .json(body)
            .budget(budget);
        self.graph.call(request).await
    }

    pub(crate) async fn profile(
        &self,
        token: &str,
        psid: &str,
        budget: BudgetCall<'_>,
    ) -> CallResult<wire::Profile> {
        let request = GraphRequest::get(self.url(psid), "profile")
            .bearer(token)
            .query("fields", "first_name,last_name,name,profile_pic")
            .budget(budget);
        self.graph.call_as(request).await
    }

    pub(crate) async fn subscribe(
        &self,
        token: &str,
        page_id: &str,
        subscribe: bool,
    ) -> CallResult<Value> {
        let url = self.url(&format!("{page_id}/subscribed_apps"));
        let request = if subscribe {
            GraphRequest::post(url, "subscribed_apps")
                .idempotent(true)
                .query("subscribed_fields", SUBSCRIBED_FIELDS)
        } else {
            GraphRequest::delete(url, "subscribed_apps")
        };
        self.graph.call(request.bearer(token)).await
    }

    /// The code for a short-lived user token.
    pub(crate) async fn user_token(
        &self,
        app_id: &str,
        secret: &str,
        code: &str,
        redirect_uri: &str,
    ) -> CallResult<wire::Token> {
        let request = GraphRequest::get(self.url("oauth/access_token"), "oauth/access_token")
            .query("client_id", app_id)
            .query("client_secret", secret)
            .query("redirect_uri", redirect_uri)
            .query("code", code);
        self.graph.call_as(request).await
    }

    /// A short-lived user token for a long-lived one (about 60 days): Page tokens obtained
    /// with it do not expire.
    pub(crate) async fn long_lived_user_token(
        &self,
        app_id: &str,
        secret: &str,
        short: &str,
    ) -> CallResult<wire::Token> {
        let request = GraphRequest::get(self.url("oauth/access_token"), "fb_exchange_token")
            .query("grant_type", "fb_exchange_token")
            .query("client_id", app_id)
            .query("client_secret", secret)
            .query("fb_exchange_token", short);
        self.graph.call_as(request).await
    }

    /// Every Page the user granted, with its Page token (following `paging.next`).
    pub(crate) async fn granted_pages(
        &self,
        user_token: &str,
    ) -> CallResult<Vec<wire::GrantedPage>> {
        let mut pages = Vec::new();
        let mut next = Some(self.url("me/accounts"));
        let mut first = true;
        for _ in 0..MAX_ACCOUNT_PAGES {
            let Some(url) = next.take() else { break };
            let mut request = GraphRequest::get(url, "me/accounts").bearer(user_token);
            if first {
                request = request.query("fields", "id,name,username,access_token,tasks");
                first = false;
            }
            let answer: wire::Accounts = self.graph.call_as(request).await?;
            pages.extend(answer.data);
            next = answer.paging.and_then(|p| p.next);
        }
        Ok(pages)
    }

    pub(crate) fn dialog_url(&self, app_id: &str, redirect_uri: &str, state: &str) -> String {
        let mut url = url::Url::parse(&format!(
            "{}/{}/dialog/oauth",
            self.config.oauth_base, self.config.version
        ))
        .expect("the OAuth base was validated");
        url.query_pairs_mut()
            .append_pair("client_id", app_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("response_type", "code")
            .append_pair("scope", SCOPES);
        url.into()
    }
}
