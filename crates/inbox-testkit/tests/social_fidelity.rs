//! Runs `tests/python/{x,reddit,bluesky}_fidelity.py` against `FakeX`, `FakeReddit` and
//! `FakeBluesky` with the platforms' own Python SDKs (`xdk`, `praw`, `atproto`), so each fake's
//! answers are checked by an SDK real integrations use, not only by our adapters. Skips (or,
//! with `CI=true`, fails) when the test Python is missing; see `inbox_testkit::requirements`.

use std::time::Duration;

use inbox_testkit::{
    fakes::{
        bluesky::FakeBluesky,
        reddit::{self, FakeReddit, RedditEndpoint},
        x::{self, FakeX},
    },
    requirements,
};
use serde_json::{Value, json};

/// Runs one script with the fake's base URL and the expectations; panics with its output
/// unless it printed `{name} fidelity: ok`.
async fn run(name: &str, base: &str, expected: &Value) {
    let Some(python) = requirements::python() else {
        return;
    };
    let script = requirements::workspace_root().join(format!("tests/python/{name}_fidelity.py"));
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(base)
        .arg(expected.to_string())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the fidelity script did not finish within 120 s")
        .expect("the test Python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("{name} fidelity: ok")),
        "{name}: the SDK disagreed with the fake ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[tokio::test]
async fn xdk_reads_fake_x_like_x() {
    let fake = FakeX::start().await;
    // Two lookups per window: the script's third sees X's 429 with its headers.
    fake.set_rate_window(2, Duration::from_secs(900));
    fake.add_user("1001", "Support", "support");
    fake.add_user("2002", "Alice", "alice");
    fake.consent_as("1001");
    let texts = ["one", "two", "three"];
    fake.dm("2002", "1001", texts[0]).await;
    fake.dm("1001", "2002", texts[1]).await;
    fake.dm("2002", "1001", texts[2]).await;
    let expected = json!({
        "client_id": x::CLIENT_ID, "client_secret": x::CLIENT_SECRET,
        "account_id": "1001", "account_username": "support", "alice_id": "2002",
        "conversation_id": "1001-2002", "texts": texts,
    });
    run("x", fake.base_url(), &expected).await;
    if requirements::python().is_none() {
        return;
    }
    let sent = fake.sent_by("1001");
    assert_eq!(sent.last().unwrap().text, "hello from xdk");
    let uses = fake.refresh_uses();
    assert_eq!(
        uses.iter().map(|u| u.accepted).collect::<Vec<_>>(),
        [true, false],
        "one rotation, then the spent token refused: {uses:?}"
    );
}

#[tokio::test]
async fn praw_reads_fake_reddit_like_reddit() {
    let fake = FakeReddit::start().await;
    let refresh = fake.add_user("our_bot", "Our Bot");
    fake.add_user("alice_user", "");
    let root = fake.compose("alice_user", "our_bot", "Question", "hello there");
    let ours = fake.reply("our_bot", &root.name(), "How can I help?");
    fake.reply("alice_user", &ours.name(), "thanks!");
    fake.comment_reply("bob", "our_bot", "nice post");
    let agent = "linux:dev.inboxgw.fidelity:v0.1.0 (by /u/inboxgw)";
    let expected = json!({
        "client_id": reddit::CLIENT_ID, "client_secret": reddit::CLIENT_SECRET,
        "refresh_token": refresh, "user_agent": agent, "username": "our_bot",
        "alice": "alice_user", "unread_bodies": ["nice post", "thanks!", "hello there"],
    });
    run("reddit", fake.base_url(), &expected).await;
    if requirements::python().is_none() {
        return;
    }
    // PRAW identified itself on every call (prawcore appends its own name) and read with
    // mark=false; only the explicit mark_read marked anything.
    for request in fake.all_requests() {
        let ua = request.header("user-agent").unwrap_or_default();
        assert!(
            ua.starts_with(agent),
            "{} {}: {ua}",
            request.method,
            request.path
        );
    }
    assert!(
        fake.requests(RedditEndpoint::Listing).iter().all(|r| r
            .query_pairs()
            .get("mark")
            .map(String::as_str)
            != Some("true"))
    );
    assert_eq!(fake.requests(RedditEndpoint::Read).len(), 1);
    assert!(fake.messages().iter().any(|m| m.body == "answer from praw"));
}

#[tokio::test]
async fn atproto_reads_fake_bluesky_like_a_pds() {
    let fake = FakeBluesky::start().await;
    let did = fake.add_account(
        "support.bsky.social",
        "Support",
        "abcd-efgh-ijkl-mnop",
        true,
    );
    let alice = fake.add_user("alice.bsky.social", "Alice");
    fake.message(&alice, &did, "hi bot");
    fake.message(&alice, &did, "are you there?");
    let expected = json!({
        "handle": "support.bsky.social", "app_password": "abcd-efgh-ijkl-mnop", "did": did,
        "display_name": "Support", "alice": alice, "texts": ["hi bot", "are you there?"],
    });
    run("bluesky", fake.base_url(), &expected).await;
    if requirements::python().is_none() {
        return;
    }
    assert_eq!(fake.logins(&did), 1);
    assert!(
        fake.messages()
            .iter()
            .any(|m| m.text == "hello from atproto")
    );
}
