//! Opening stores: URL schemes, the in-memory SQLite database, and that `open` leaves
//! migrating to `migrate`.

use inbox_core::Error;
use inbox_store::{Cipher, StoreConfig, migrate, open, open_and_migrate};

fn config(url: &str) -> StoreConfig {
    StoreConfig {
        url: url.into(),
        cipher: Cipher::from_base64_key(&Cipher::generate_key()).unwrap(),
        max_connections: 4,
    }
}

#[tokio::test]
async fn unsupported_schemes_name_database_url() {
    for url in ["mysql://localhost/inbox", "inbox.db"] {
        match open(&config(url)).await {
            Err(Error::InvalidInput { param, message }) => {
                assert_eq!(param.as_deref(), Some("DATABASE_URL"));
                assert!(message.contains("DATABASE_URL"), "{message}");
            }
            other => panic!("{url} was accepted: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_in_memory_database_keeps_its_data_between_calls() {
    let store = open_and_migrate(&config("sqlite::memory:")).await.unwrap();
    let workspace = store.ensure_workspace("acme").await.unwrap();
    let key = store
        .create_api_key(&workspace.id, "hash", "igk_x")
        .await
        .unwrap();
    assert_eq!(store.find_api_key("hash").await.unwrap(), Some(key));
    assert_eq!(store.ensure_workspace("acme").await.unwrap(), workspace);
}

#[tokio::test]
async fn open_does_not_migrate_but_migrate_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&format!(
        "sqlite://{}",
        dir.path().join("a/b/inbox.db").display()
    ));
    let unmigrated = open(&config).await.unwrap();
    unmigrated.ping().await.unwrap();
    assert!(
        unmigrated.ensure_workspace("acme").await.is_err(),
        "no tables before migrating"
    );
    migrate(&config).await.unwrap();
    migrate(&config).await.unwrap();
    let workspace = unmigrated.ensure_workspace("acme").await.unwrap();
    let reopened = open(&config).await.unwrap();
    assert_eq!(reopened.ensure_workspace("acme").await.unwrap(), workspace);
}
