//! OAuth connect routes: no platform offers OAuth yet, so every valid platform answers `422
//! not_supported_by_platform`, unknown names `400`, and the callback is public.

use axum::http::Method;

use crate::common::TestApp;

#[tokio::test]
async fn starting_oauth_is_not_supported_by_any_platform_yet() {
    let app = TestApp::new().await;
    for platform in [
        "telegram",
        "instagram",
        "facebook",
        "x",
        "reddit",
        "whatsapp",
        "bluesky",
    ] {
        let response = app.post_empty(&format!("/api/v1/connect/{platform}")).await;
        let problem = response.problem(422, "not_supported_by_platform");
        assert!(
            problem["detail"].as_str().unwrap().contains(platform),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn starting_oauth_for_an_unknown_platform_is_400_on_platform() {
    let app = TestApp::new().await;
    app.post_empty("/api/v1/connect/myspace")
        .await
        .invalid("platform");
}

#[tokio::test]
async fn starting_oauth_needs_an_api_key() {
    let app = TestApp::new().await;
    let response = app
        .call(Method::POST, "/api/v1/connect/x", None, None, &[])
        .await;
    response.problem(401, "unauthorized");
}

#[tokio::test]
async fn the_callback_is_public_and_answers_like_start() {
    let app = TestApp::new().await;
    let response = app
        .call(
            Method::GET,
            "/api/v1/oauth/x/callback?code=c&state=s",
            None,
            None,
            &[],
        )
        .await;
    response.problem(422, "not_supported_by_platform");
    let unknown = app
        .call(Method::GET, "/api/v1/oauth/nope/callback", None, None, &[])
        .await;
    unknown.invalid("platform");
}
