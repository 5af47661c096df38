//! X, Reddit and Bluesky end to end: the real binary against `FakeX`, `FakeReddit` and
//! `FakeBluesky`, driven over the API as a customer would — connecting (X through the OAuth
//! PKCE flow and its public callback), polling with names, echoes, sends and starts, token and
//! session refresh, restarts that neither lose nor repeat, revoked grants, malformed platform
//! answers, and two replicas on one PostgreSQL that poll each account once and take over a
//! killed replica's accounts.
//!
//! Poll cadences come from the platforms' read budgets (X: 15 lookups per 15 minutes); the
//! tests shorten them with `INBOX_RATE_BUDGETS`, as an operator can. Waits are generous and
//! nothing asserts on timing.

use std::{collections::HashSet, future::Future, time::Duration};

use inbox_testkit::{
    fakes::{
        bluesky::{BlueskyMethod, FakeBluesky},
        reddit::{self, FakeReddit, RedditEndpoint},
        x::{self, FakeX, XEndpoint},
    },
    receiver::WebhookReceiver,
    services::PostgresServer,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Api, Gateway};

const REDDIT_AGENT: &str = "linux:dev.inboxgw.e2e:v0.1.0 (by /u/inboxgw)";
const APP_PASSWORD: &str = "abcd-efgh-ijkl-mnop";

fn x_env(fake: &FakeX) -> Vec<(&'static str, String)> {
    vec![
        ("INBOX_X_CLIENT_ID", x::CLIENT_ID.to_owned()),
        ("INBOX_X_CLIENT_SECRET", x::CLIENT_SECRET.to_owned()),
        ("INBOX_X_API_BASE", fake.base_url().to_owned()),
        ("INBOX_X_AUTHORIZE_URL", fake.authorize_url()),
    ]
}

fn reddit_env(fake: &FakeReddit) -> Vec<(&'static str, String)> {
    vec![
        ("INBOX_REDDIT_CLIENT_ID", reddit::CLIENT_ID.to_owned()),
        (
            "INBOX_REDDIT_CLIENT_SECRET",
            reddit::CLIENT_SECRET.to_owned(),
        ),
        ("INBOX_REDDIT_USER_AGENT", REDDIT_AGENT.to_owned()),
        ("INBOX_REDDIT_API_BASE", fake.base_url().to_owned()),
        ("INBOX_REDDIT_WWW_BASE", fake.base_url().to_owned()),
    ]
}

fn bluesky_env(fake: &FakeBluesky) -> Vec<(&'static str, String)> {
    vec![("INBOX_BLUESKY_SERVICE", fake.base_url().to_owned())]
}

/// Polls once a second instead of the platforms' cadences (X: once a minute), and lets the
/// tests send more than X's 15 DMs per 15 minutes.
fn fast_polls(platforms: &[&str]) -> (&'static str, String) {
    let budgets: Vec<&str> = platforms
        .iter()
        .map(|p| match *p {
            "x" => "x.dm_lookups=1/1s,x.dm_sends=100/1s,x.dm_sends_daily=100/1s,x.dm_sends_app_daily=100/1s",
            "reddit" => "reddit.inbox_polls=1/1s",
            _ => "bluesky.log_polls=1/1s",
        })
        .collect();
    ("INBOX_RATE_BUDGETS", budgets.join(","))
}

/// The gateway's own limit on API keys is off: the tests read the inbox many times a second.
fn no_api_limit() -> (&'static str, String) {
    ("INBOX_API_RATE_LIMIT", "0".to_owned())
}

/// Polls `check` until it holds; panics after `secs` with `what` and the gateways' logs.
async fn within<F, Fut>(gateways: &[&Gateway], secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        if tokio::time::Instant::now() >= deadline {
            let logs: Vec<String> = gateways.iter().map(|g| g.logs()).collect();
            panic!(
                "timed out waiting for: {what}\n--- gateway logs ---\n{}",
                logs.join("\n=== next replica ===\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The messages of the account's conversations, oldest first.
async fn messages_of(api: &Api, account: &str) -> Vec<Value> {
    let conversations = api
        .get(&format!(
            "/inbox/conversations?accountId={account}&limit=100"
        ))
        .await;
    let mut all = Vec::new();
    for conversation in conversations["data"].as_array().unwrap() {
        let id = conversation["id"].as_str().unwrap();
        let page = api
            .get(&format!(
                "/inbox/conversations/{id}/messages?sortOrder=asc&limit=100"
            ))
            .await;
        all.extend(page["data"].as_array().unwrap().iter().cloned());
    }
    all
}

/// The messages of every account of `ids`.
async fn all_messages_of(api: &Api, ids: &[String]) -> Vec<Value> {
    let mut all = Vec::new();
    for id in ids {
        all.extend(messages_of(api, id).await);
    }
    all
}

fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn assert_unique(messages: &[Value]) {
    let ids: HashSet<&str> = messages
        .iter()
        .map(|m| m["platformMessageId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        messages.len(),
        "nothing stored twice: {messages:#?}"
    );
}

async fn connect(api: &Api, platform: &str, credentials: Value) -> Value {
    let (status, account) = api
        .post(
            "/accounts",
            json!({"platform": platform, "credentials": credentials}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    account
}

#[tokio::test]
async fn x_connects_through_pkce_polls_with_names_sends_starts_and_rotates_refresh_tokens() {
    let fake = FakeX::start().await;
    fake.set_rate_window(100_000, Duration::from_secs(60));
    fake.add_user("1001", "Support", "support");
    fake.add_user("2002", "Alice", "alice");
    fake.add_user("3003", "Bob", "bob");
    fake.consent_as("1001");
    let dir = tempfile::tempdir().unwrap();
    let mut env = x_env(&fake);
    env.push(fast_polls(&["x"]));
    env.push(no_api_limit());
    let mut gateway = Gateway::start(dir.path(), true, &env).await;
    let api = gateway.client(&gateway.create_api_key("acme"));
    let receiver = WebhookReceiver::start_without_secret().await;
    api.register(&receiver).await;

    // OAuth 2.0 with PKCE: the browser goes to X's consent page, X redirects to the gateway's
    // public callback, which exchanges the code and redirects to the customer's page.
    let (status, started) = api
        .post(
            "/connect/x",
            json!({"redirectUrl": "https://app.example/done"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let authorize = started["authorizationUrl"].as_str().unwrap();
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.url().host_str() == Some("app.example") {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .build()
        .unwrap();
    let landed = browser.get(authorize).send().await.unwrap();
    let location = landed.headers()["location"].to_str().unwrap().to_owned();
    let back = url::Url::parse(&location).unwrap();
    let outcome: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(
        outcome.get("connected").map(String::as_str),
        Some("true"),
        "{location}"
    );
    let account_id = outcome["accountId"].clone();
    let account = api.get(&format!("/accounts/{account_id}")).await;
    assert_eq!(account["platformAccountId"], "1001");
    assert_eq!(account["name"], "Support");
    assert_eq!(account["username"], "support");
    assert_eq!(
        fake.requests(XEndpoint::Token).len(),
        1,
        "one code exchange"
    );

    // The first poll takes the current position; what comes after arrives, with names.
    within(&[&gateway], 30, "the first poll", || async {
        fake.polls_by("1001") >= 1
    })
    .await;
    fake.dm("2002", "1001", "hello from alice").await;
    within(&[&gateway], 30, "alice's message", || async {
        messages_of(&api, &account_id).await.len() == 1
    })
    .await;
    let messages = messages_of(&api, &account_id).await;
    assert_eq!(messages[0]["direction"], "incoming");
    assert_eq!(messages[0]["sender"]["id"], "2002");
    assert_eq!(messages[0]["sender"]["name"], "Alice");
    assert_eq!(messages[0]["sender"]["username"], "alice");
    let conversation = api.get("/inbox/conversations").await["data"][0].clone();
    assert_eq!(conversation["platformConversationId"], "1001-2002");
    assert_eq!(conversation["participant"]["name"], "Alice");
    let conversation_id = conversation["id"].as_str().unwrap().to_owned();

    // A DM the account sent from X's own app is an outgoing message of the same thread.
    fake.dm("1001", "2002", "sent from the X app").await;
    within(&[&gateway], 30, "the echo", || async {
        messages_of(&api, &account_id).await.len() == 2
    })
    .await;
    let messages = messages_of(&api, &account_id).await;
    assert_eq!(messages[1]["direction"], "outgoing");
    assert_eq!(messages[1]["text"], "sent from the X app");

    // A reply through the gateway goes out once; its echo in later polls adds nothing.
    let (status, sent) = api
        .post(
            &format!("/inbox/conversations/{conversation_id}/messages"),
            json!({"message": "reply from the gateway"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let sent_dms = fake.sent_by("1001");
    let reply = sent_dms.last().unwrap();
    assert_eq!(reply.text, "reply from the gateway");
    assert_eq!(sent["platformMessageId"], reply.id.to_string());
    let polls = fake.polls_by("1001");
    within(&[&gateway], 30, "two more polls", || async {
        fake.polls_by("1001") >= polls + 2
    })
    .await;
    let messages = messages_of(&api, &account_id).await;
    assert_eq!(
        messages.len(),
        3,
        "the echo of the gateway's send is not a second message"
    );
    assert_unique(&messages);

    // Starting a conversation by username.
    let (status, started) = api
        .post(
            "/inbox/conversations",
            json!({"accountId": account_id, "participant": "@bob", "message": "hi bob"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(started["conversation"]["participant"]["id"], "3003");
    assert_eq!(started["conversation"]["participant"]["name"], "Bob");
    assert_eq!(
        started["conversation"]["platformConversationId"],
        "1001-3003"
    );
    assert_eq!(fake.sent_by("1001").last().unwrap().recipient_id, "3003");

    // An access token that lapsed: the poll's 401 renews it (the refresh token rotates) and
    // polling goes on.
    fake.expire_access_tokens("1001");
    fake.dm("2002", "1001", "after the token lapsed").await;
    within(&[&gateway], 45, "a message after the refresh", || async {
        texts(&messages_of(&api, &account_id).await).contains(&"after the token lapsed".to_owned())
    })
    .await;
    let uses = fake.refresh_uses();
    assert!(!uses.is_empty(), "the token was refreshed");
    assert!(
        uses.iter().all(|u| u.accepted),
        "never a spent refresh token: {uses:?}"
    );

    // After a restart the persisted (rotated) pair is the one used: X refuses spent tokens.
    gateway.restart().await;
    fake.expire_access_tokens("1001");
    fake.dm("2002", "1001", "after the restart").await;
    within(&[&gateway], 45, "a message after the restart", || async {
        texts(&messages_of(&api, &account_id).await).contains(&"after the restart".to_owned())
    })
    .await;
    let uses = fake.refresh_uses();
    assert!(uses.len() >= 2, "{uses:?}");
    assert!(
        uses.iter().all(|u| u.accepted),
        "never a spent refresh token: {uses:?}"
    );
    assert_eq!(
        api.get(&format!("/accounts/{account_id}")).await["status"],
        "active"
    );
    let messages = messages_of(&api, &account_id).await;
    assert_unique(&messages);
    assert_eq!(messages.len(), 6, "{:?}", texts(&messages));
    receiver.wait_for(1, Duration::from_secs(10)).await;
    assert!(crate::support::event_types(&receiver).contains(&"account.connected".to_owned()));
}

#[tokio::test]
async fn reddit_polls_without_marking_read_replies_in_the_thread_and_survives_restarts() {
    let fake = FakeReddit::start().await;
    let refresh = fake.add_user("our_bot", "Our Bot");
    fake.add_user("alice_user", "");
    fake.add_user("carol", "");
    let dir = tempfile::tempdir().unwrap();
    let mut env = reddit_env(&fake);
    env.push(fast_polls(&["reddit"]));
    env.push(no_api_limit());
    let mut gateway = Gateway::start(dir.path(), false, &env).await;
    let api = gateway.client(&gateway.create_api_key("acme"));

    let account = connect(&api, "reddit", json!({"refreshToken": refresh})).await;
    assert_eq!(account["platformAccountId"], "our_bot");
    assert_eq!(account["name"], "Our Bot");
    let account_id = account["id"].as_str().unwrap().to_owned();
    within(&[&gateway], 30, "the first poll", || async {
        fake.polls_by("our_bot") >= 1
    })
    .await;

    let root = fake.compose("alice_user", "our_bot", "Question", "hello there");
    fake.comment_reply("bob", "our_bot", "nice post");
    within(&[&gateway], 30, "alice's message", || async {
        messages_of(&api, &account_id).await.len() == 1
    })
    .await;
    let conversation = api.get("/inbox/conversations").await["data"][0].clone();
    assert_eq!(conversation["platformConversationId"], root.name());
    assert_eq!(conversation["participant"]["id"], "alice_user");
    let conversation_id = conversation["id"].as_str().unwrap().to_owned();
    // Reading never marked anything read.
    assert!(fake.messages()[0].new, "still unread for the user");
    assert!(
        fake.requests(RedditEndpoint::Listing).iter().all(|r| r
            .query_pairs()
            .get("mark")
            .map(String::as_str)
            == Some("false")),
        "every listing asks mark=false"
    );
    assert!(fake.requests(RedditEndpoint::Read).is_empty());

    // A reply goes to the latest message of the thread and stays in it.
    let (status, sent) = api
        .post(
            &format!("/inbox/conversations/{conversation_id}/messages"),
            json!({"message": "How can I help?"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let comment = fake.requests(RedditEndpoint::Send).pop().unwrap();
    assert_eq!(comment.form()["thing_id"], root.name());
    let ours = fake
        .messages()
        .into_iter()
        .find(|m| m.author == "our_bot")
        .unwrap();
    assert_eq!(sent["platformMessageId"], ours.name());
    assert_eq!(
        ours.first_message_name.as_deref(),
        Some(root.name().as_str())
    );

    let answer = fake.reply("alice_user", &ours.name(), "thanks, one more thing");
    within(&[&gateway], 30, "alice's answer", || async {
        messages_of(&api, &account_id).await.len() == 3
    })
    .await;
    assert_eq!(
        api.get("/inbox/conversations").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "one thread, one conversation"
    );
    let (status, _) = api
        .post(
            &format!("/inbox/conversations/{conversation_id}/messages"),
            json!({"message": "Sure"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let comment = fake.requests(RedditEndpoint::Send).pop().unwrap();
    assert_eq!(
        comment.form()["thing_id"],
        answer.name(),
        "the participant's newest message"
    );

    // Marking read is the customer's decision, and then it reaches Reddit.
    let (status, _) = api
        .post(
            &format!("/inbox/conversations/{conversation_id}/read"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    within(&[&gateway], 10, "read_message", || async {
        !fake.requests(RedditEndpoint::Read).is_empty()
    })
    .await;
    assert!(
        fake.messages()
            .iter()
            .filter(|m| m.dest == "our_bot")
            .all(|m| !m.new),
        "{:#?}",
        fake.messages()
    );

    // Starting a thread: compose, then the new thread is found in the sent box.
    let (status, started) = api
        .post(
            "/inbox/conversations",
            json!({"accountId": account_id, "participant": "u/carol", "message": "Hello Carol\nWelcome aboard"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let composed = fake
        .messages()
        .into_iter()
        .find(|m| m.dest == "carol")
        .unwrap();
    assert_eq!(composed.subject, "Hello Carol");
    assert_eq!(
        started["conversation"]["platformConversationId"],
        composed.name()
    );

    // A crash while messages arrive: after the restart each arrives once.
    let before = messages_of(&api, &account_id).await.len();
    gateway.kill();
    for n in 0..3 {
        fake.compose(
            "alice_user",
            "our_bot",
            "While down",
            &format!("while down {n}"),
        );
    }
    gateway.restart().await;
    within(&[&gateway], 45, "the messages sent while down", || async {
        messages_of(&api, &account_id).await.len() == before + 3
    })
    .await;
    let polls = fake.polls_by("our_bot");
    within(&[&gateway], 30, "two more polls", || async {
        fake.polls_by("our_bot") >= polls + 2
    })
    .await;
    let messages = messages_of(&api, &account_id).await;
    assert_eq!(
        messages.len(),
        before + 3,
        "nothing repeated: {:?}",
        texts(&messages)
    );
    assert_unique(&messages);

    // Every call identified itself with the configured User-Agent.
    for request in fake.all_requests() {
        assert_eq!(
            request.header("user-agent"),
            Some(REDDIT_AGENT),
            "{} {}",
            request.method,
            request.path
        );
    }
}

#[tokio::test]
async fn bluesky_logs_in_once_polls_the_log_and_refreshes_the_session() {
    let fake = FakeBluesky::start().await;
    let bot = fake.add_account("support.bsky.social", "Support", APP_PASSWORD, true);
    fake.add_account("nodm.bsky.social", "No DMs", APP_PASSWORD, false);
    let alice = fake.add_user("alice.bsky.social", "Alice");
    let carol = fake.add_user("carol.bsky.social", "Carol");
    let dir = tempfile::tempdir().unwrap();
    let mut env = bluesky_env(&fake);
    env.push(fast_polls(&["bluesky"]));
    env.push(no_api_limit());
    let mut gateway = Gateway::start(dir.path(), false, &env).await;
    let api = gateway.client(&gateway.create_api_key("acme"));

    // An app password without DM access is refused at connect, naming the field.
    let (status, problem) = api
        .post(
            "/accounts",
            json!({"platform": "bluesky", "credentials": {"identifier": "nodm.bsky.social", "appPassword": APP_PASSWORD}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["param"], "credentials.appPassword");

    let account = connect(
        &api,
        "bluesky",
        json!({"identifier": "support.bsky.social", "appPassword": APP_PASSWORD}),
    )
    .await;
    assert_eq!(account["platformAccountId"], bot);
    assert_eq!(account["name"], "Support");
    assert_eq!(account["username"], "support.bsky.social");
    let account_id = account["id"].as_str().unwrap().to_owned();
    assert_eq!(fake.logins(&bot), 1);
    // Connecting probed getLog once (DM access); the poller's first poll comes after it.
    let probed = fake.polls_by(&bot);
    within(&[&gateway], 30, "the first poll", || async {
        fake.polls_by(&bot) > probed
    })
    .await;

    fake.message(&alice, &bot, "hi bot");
    fake.message(&bot, &alice, "from the Bluesky app");
    fake.push_log(
        &bot,
        json!({"$type": "chat.bsky.convo.defs#logFromTheFuture", "convoId": "x"}),
    );
    within(&[&gateway], 30, "the message and the echo", || async {
        messages_of(&api, &account_id).await.len() == 2
    })
    .await;
    let messages = messages_of(&api, &account_id).await;
    assert_eq!(messages[0]["sender"]["id"], alice);
    assert_eq!(messages[0]["sender"]["name"], "Alice");
    assert_eq!(messages[0]["sender"]["username"], "alice.bsky.social");
    assert_eq!(messages[1]["direction"], "outgoing");
    let conversation_id = api.get("/inbox/conversations").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Sending: the reply goes out once (its echo in the log adds nothing); too long is refused
    // before the platform is called.
    let (status, sent) = api
        .post(
            &format!("/inbox/conversations/{conversation_id}/messages"),
            json!({"message": "hello back"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let sends = fake.requests(BlueskyMethod::SendMessage).len();
    let (status, problem) = api
        .post(
            &format!("/inbox/conversations/{conversation_id}/messages"),
            json!({"message": "👍🏽".repeat(1001)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "message_too_long");
    assert_eq!(fake.requests(BlueskyMethod::SendMessage).len(), sends);
    let polls = fake.polls_by(&bot);
    within(&[&gateway], 30, "two more polls", || async {
        fake.polls_by(&bot) >= polls + 2
    })
    .await;
    assert_eq!(messages_of(&api, &account_id).await.len(), 3);

    // Starting a conversation by handle.
    let (status, started) = api
        .post(
            "/inbox/conversations",
            json!({"accountId": account_id, "participant": "carol.bsky.social", "message": "hi carol"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(started["conversation"]["participant"]["id"], carol);

    // An expired access token: refreshSession, never a new login.
    fake.expire_access_tokens(&bot);
    fake.message(&alice, &bot, "after expiry");
    within(&[&gateway], 45, "a message after the refresh", || async {
        texts(&messages_of(&api, &account_id).await).contains(&"after expiry".to_owned())
    })
    .await;
    assert!(!fake.requests(BlueskyMethod::RefreshSession).is_empty());
    gateway.restart().await;
    fake.message(&alice, &bot, "after the restart");
    within(&[&gateway], 45, "a message after the restart", || async {
        texts(&messages_of(&api, &account_id).await).contains(&"after the restart".to_owned())
    })
    .await;
    assert_eq!(
        fake.logins(&bot),
        1,
        "the session is persisted: one login, ever"
    );
    let messages = messages_of(&api, &account_id).await;
    assert_unique(&messages);
    assert!(
        fake.requests_to("chat.bsky.convo.getLog")
            .iter()
            .all(|r| r.header("atproto-proxy") == Some("did:web:api.bsky.chat#bsky_chat"))
    );
}

#[tokio::test]
async fn a_revoked_grant_marks_its_account_once_and_the_others_keep_polling() {
    let fake = FakeX::start().await;
    fake.set_rate_window(100_000, Duration::from_secs(60));
    for (id, name) in [("1001", "First"), ("1002", "Second"), ("2002", "Alice")] {
        fake.add_user(id, name, &name.to_ascii_lowercase());
    }
    let dir = tempfile::tempdir().unwrap();
    let mut env = x_env(&fake);
    env.push(fast_polls(&["x"]));
    env.push(no_api_limit());
    let gateway = Gateway::start(dir.path(), false, &env).await;
    let api = gateway.client(&gateway.create_api_key("acme"));
    let receiver = WebhookReceiver::start_without_secret().await;
    api.register(&receiver).await;
    let mut ids = Vec::new();
    for user in ["1001", "1002"] {
        let (access, refresh) = fake.issue_tokens(user);
        let account = connect(
            &api,
            "x",
            json!({"accessToken": access, "refreshToken": refresh, "expiresAt": "2099-01-01T00:00:00Z"}),
        )
        .await;
        ids.push(account["id"].as_str().unwrap().to_owned());
    }
    within(&[&gateway], 30, "both first polls", || async {
        fake.polls_by("1001") >= 1 && fake.polls_by("1002") >= 1
    })
    .await;

    fake.revoke_user("1001");
    within(&[&gateway], 45, "the revoked account marked", || async {
        api.get(&format!("/accounts/{}", ids[0])).await["status"] == "reauth_required"
    })
    .await;
    // The refresh was tried once (and refused); the account's poller stopped.
    let polls = fake.polls_by("1001");
    fake.dm("2002", "1002", "still listening?").await;
    within(&[&gateway], 30, "the other account's message", || async {
        messages_of(&api, &ids[1]).await.len() == 1
    })
    .await;
    assert_eq!(
        api.get(&format!("/accounts/{}", ids[1])).await["status"],
        "active"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        fake.polls_by("1001"),
        polls,
        "no polls of a revoked account"
    );
    let disconnected = receiver
        .verified_events()
        .into_iter()
        .filter(|e| e["event"] == "account.disconnected")
        .collect::<Vec<_>>();
    assert_eq!(disconnected.len(), 1, "{disconnected:#?}");
    assert_eq!(disconnected[0]["data"]["accountId"], ids[0].as_str());
}

#[tokio::test]
async fn a_malformed_platform_answer_is_logged_and_skipped_without_advancing() {
    let fake = FakeBluesky::start().await;
    let bot = fake.add_account("support.bsky.social", "Support", APP_PASSWORD, true);
    let alice = fake.add_user("alice.bsky.social", "Alice");
    let dir = tempfile::tempdir().unwrap();
    let mut env = bluesky_env(&fake);
    env.push(fast_polls(&["bluesky"]));
    env.push(no_api_limit());
    let gateway = Gateway::start(dir.path(), false, &env).await;
    let api = gateway.client(&gateway.create_api_key("acme"));
    let account = connect(
        &api,
        "bluesky",
        json!({"identifier": "support.bsky.social", "appPassword": APP_PASSWORD}),
    )
    .await;
    let account_id = account["id"].as_str().unwrap().to_owned();
    let probed = fake.polls_by(&bot);
    within(&[&gateway], 30, "the first poll", || async {
        fake.polls_by(&bot) > probed
    })
    .await;

    // The next answers are broken (a log that is not a list, then truncated JSON), and carry
    // a cursor far ahead: adopting it would skip the messages waiting now.
    fake.inject(
        BlueskyMethod::GetLog,
        1,
        200,
        r#"{"cursor": "zzzzzzzzzzzzz", "logs": "not a list"}"#,
        &[],
    );
    fake.inject(
        BlueskyMethod::GetLog,
        1,
        200,
        r#"{"cursor": "zzzzzzzzzzzzz", "logs": [{"#,
        &[],
    );
    fake.message(&alice, &bot, "before the glitch");
    // An entry that is not a valid message is kept raw and ignored, not fatal.
    fake.push_log(&bot, json!({"$type": "chat.bsky.convo.defs#logCreateMessage", "convoId": "c1", "message": {"id": 7}}));
    fake.message(&alice, &bot, "after the glitch");
    within(&[&gateway], 45, "both messages", || async {
        messages_of(&api, &account_id).await.len() == 2
    })
    .await;
    let messages = messages_of(&api, &account_id).await;
    assert_eq!(texts(&messages), ["before the glitch", "after the glitch"]);
    let logs = gateway.logs();
    let warned = logs
        .lines()
        .filter(|line| line.contains("getLog poll failed") && line.contains(&account_id))
        .count();
    assert!(
        warned >= 2,
        "each malformed answer is logged with the account id:\n{logs}"
    );
}

#[tokio::test]
async fn two_replicas_poll_each_account_once_and_take_over_a_killed_ones_accounts() {
    let Some(postgres) = PostgresServer::start() else {
        return;
    };
    let database_url = postgres.create_database();
    let bluesky = FakeBluesky::start().await;
    let reddit = FakeReddit::start().await;
    let x = FakeX::start().await;
    x.set_rate_window(100_000, Duration::from_secs(60));
    let mut env = vec![
        ("DATABASE_URL", database_url),
        ("INBOX_ENCRYPTION_KEY", inbox_store::Cipher::generate_key()),
        fast_polls(&["x", "reddit", "bluesky"]),
        no_api_limit(),
    ];
    env.extend(bluesky_env(&bluesky));
    env.extend(reddit_env(&reddit));
    env.extend(x_env(&x));
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut a = Gateway::start(dir_a.path(), false, &env).await;
    let b = Gateway::start(dir_b.path(), false, &env).await;
    let key = a.create_api_key("acme");
    let (api_a, api_b) = (a.client(&key), b.client(&key));

    // Five polled accounts, connected through either replica.
    let alice_bsky = bluesky.add_user("alice.bsky.social", "Alice");
    let mut accounts: Vec<(String, String, &str)> = Vec::new(); // (acc id, platform account, platform)
    for n in 0..2 {
        let handle = format!("bot{n}.bsky.social");
        bluesky.add_account(&handle, &format!("Bot {n}"), APP_PASSWORD, true);
        let api = if n == 0 { &api_a } else { &api_b };
        let account = connect(
            api,
            "bluesky",
            json!({"identifier": handle, "appPassword": APP_PASSWORD}),
        )
        .await;
        accounts.push((
            account["id"].as_str().unwrap().to_owned(),
            account["platformAccountId"].as_str().unwrap().to_owned(),
            "bluesky",
        ));
    }
    reddit.add_user("alice_user", "");
    for n in 0..2 {
        let name = format!("reddit_bot_{n}");
        let refresh = reddit.add_user(&name, "");
        let api = if n == 0 { &api_b } else { &api_a };
        let account = connect(api, "reddit", json!({"refreshToken": refresh})).await;
        accounts.push((account["id"].as_str().unwrap().to_owned(), name, "reddit"));
    }
    x.add_user("1001", "X Support", "xsupport");
    x.add_user("2002", "Alice", "alice");
    let (access, refresh) = x.issue_tokens("1001");
    let account = connect(
        &api_a,
        "x",
        json!({"accessToken": access, "refreshToken": refresh, "expiresAt": "2099-01-01T00:00:00Z"}),
    )
    .await;
    accounts.push((
        account["id"].as_str().unwrap().to_owned(),
        "1001".into(),
        "x",
    ));

    let polls = |platform: &str, who: &str| match platform {
        "bluesky" => bluesky.polls_by(who),
        "reddit" => reddit.polls_by(who),
        _ => x.polls_by(who),
    };
    // Connecting Bluesky accounts probes getLog once; each account's first poll comes after.
    let connected: Vec<usize> = accounts.iter().map(|(_, who, p)| polls(p, who)).collect();
    within(&[&a, &b], 60, "every account polled", || async {
        accounts
            .iter()
            .zip(&connected)
            .all(|((_, who, platform), before)| polls(platform, who) > *before)
    })
    .await;
    // Both replicas run a loop for every account (connected through either, found by the
    // rescan); the lease picks one poller per account.
    let push = |round: &str| {
        let round = round.to_owned();
        let accounts = accounts.clone();
        let (bluesky, reddit, x, alice_bsky) = (
            bluesky.clone(),
            reddit.clone(),
            x.clone(),
            alice_bsky.clone(),
        );
        async move {
            for (_, who, platform) in &accounts {
                for n in 0..2 {
                    let text = format!("{round} {n} for {who}");
                    match *platform {
                        "bluesky" => {
                            bluesky.message(&alice_bsky, who, &text);
                        }
                        "reddit" => {
                            reddit.compose("alice_user", who, "Hi", &text);
                        }
                        _ => {
                            x.dm("2002", who, &text).await;
                        }
                    }
                }
            }
        }
    };
    push("first").await;
    let ids: Vec<String> = accounts.iter().map(|(id, _, _)| id.clone()).collect();
    within(
        &[&a, &b],
        60,
        "the first round through both replicas",
        || async { all_messages_of(&api_b, &ids).await.len() == accounts.len() * 2 },
    )
    .await;

    // One replica holds each account's lease; the other has never taken it.
    let took = |gateway: &Gateway, account: &str| {
        gateway
            .logs()
            .lines()
            .filter(|l| l.contains("took the poll lease") && l.contains(account))
            .count()
    };
    let mut held_by_a = Vec::new();
    for (id, _, _) in &accounts {
        let (in_a, in_b) = (took(&a, id), took(&b, id));
        assert_eq!(
            in_a + in_b,
            1,
            "{id}: exactly one replica took the lease (a {in_a}, b {in_b})"
        );
        if in_a == 1 {
            held_by_a.push(id.clone());
        }
    }
    assert!(
        !held_by_a.is_empty(),
        "replica a polls the accounts connected through it"
    );
    let before_kill: Vec<usize> = accounts.iter().map(|(_, who, p)| polls(p, who)).collect();
    eprintln!(
        "two replicas: accounts {}, held by a {}, polls per account before the kill {before_kill:?}",
        accounts.len(),
        held_by_a.len()
    );

    // Replica a crashes; its accounts are taken over once their leases expire.
    a.kill();
    push("second").await;
    within(
        &[&b],
        90,
        "the second round through replica b alone",
        || async { all_messages_of(&api_b, &ids).await.len() == accounts.len() * 4 },
    )
    .await;
    for id in &held_by_a {
        assert_eq!(took(&b, id), 1, "{id}: replica b took over the lease");
    }
    let all = all_messages_of(&api_b, &ids).await;
    assert_unique(&all);
    let after: Vec<usize> = accounts.iter().map(|(_, who, p)| polls(p, who)).collect();
    eprintln!(
        "two replicas: polls per account after the takeover {after:?}, messages {}",
        all.len()
    );
}
