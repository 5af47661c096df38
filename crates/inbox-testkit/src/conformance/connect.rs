//! Connecting accounts: valid credentials describe the account; malformed ones are refused
//! locally, naming the field; well-formed ones the platform refuses are refused, not stored.

use inbox_core::{Error, Platform};

use super::{FakeControl, Operation};

/// `connect` with the fake's valid credentials reports the account as the platform knows it.
pub async fn connect_accepts_valid_credentials(platform: &dyn Platform, fake: &dyn FakeControl) {
    let seeded = fake.seed_account().await;
    let account = platform
        .connect(&seeded.credentials)
        .await
        .unwrap_or_else(|err| panic!("valid credentials were refused: {err:?}"));
    assert_eq!(account.platform_account_id, seeded.platform_account_id);
    assert_eq!(account.name, seeded.name);
    assert_eq!(account.username, seeded.username);
    assert!(
        !account.credentials.expose_json().is_empty(),
        "credentials to store"
    );
    assert!(
        !format!("{account:?}").contains(account.credentials.expose_json()),
        "Debug output must not show credentials"
    );
}

/// Malformed credentials are `InvalidInput` naming the field, without a platform call.
pub async fn connect_rejects_malformed_credentials(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    let cases = fake.malformed_credentials();
    assert!(
        !cases.is_empty(),
        "the fake must offer malformed credentials"
    );
    for (credentials, expected_param) in cases {
        match platform.connect(&credentials).await {
            Err(Error::InvalidInput { param, message }) => {
                assert_eq!(
                    param.as_deref(),
                    Some(expected_param.as_str()),
                    "{credentials}"
                );
                assert!(!message.is_empty(), "explain what is wrong");
            }
            other => panic!("{credentials}: expected InvalidInput, got {other:?}"),
        }
    }
    assert_eq!(
        fake.calls(Operation::Connect),
        0,
        "malformed credentials are refused locally"
    );
}

/// Credentials the platform refuses are refused (never an internal or transient error).
pub async fn connect_rejects_refused_credentials(platform: &dyn Platform, fake: &dyn FakeControl) {
    match platform.connect(&fake.rejected_credentials()).await {
        Err(Error::InvalidInput {
            param: Some(param), ..
        }) => {
            assert!(param.starts_with("credentials"), "name the field: {param}");
        }
        Err(Error::ReauthRequired { .. } | Error::Platform { .. }) => {}
        other => panic!("expected InvalidInput, ReauthRequired or Platform, got {other:?}"),
    }
    assert!(
        fake.calls(Operation::Connect) >= 1,
        "the platform must have been asked"
    );
}
