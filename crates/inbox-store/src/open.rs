//! Opening a store from `DATABASE_URL`, and applying the embedded migrations.
//!
//! SQLite allows one writer at a time, and with more than one connection writing, lock waits
//! make it slower, not faster (shared/reference/performance.md). So a SQLite store has two
//! pools on the same file: a **write pool of exactly one connection**, which every transaction
//! goes through (writes queue in process instead of spinning on `SQLITE_BUSY`), and a small
//! **read pool** (`query_only`) for lists and lookups, which WAL lets run beside the writer.
//! An in-memory database (`sqlite::memory:`) cannot be shared between connections, so there
//! both pools are the one connection. PostgreSQL has one ordinary pool.

use std::{path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use inbox_core::{Error, Result};
use sqlx::{
    PgPool, SqlitePool,
    migrate::Migrator,
    pool::PoolOptions,
    postgres::PgConnectOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};

use crate::{Backend, Cipher, Store, db::db_error, sql_store::SqlStore};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// How long a SQLite connection waits for a lock another process holds before `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pages in the WAL before SQLite checkpoints. Small, so each checkpoint inside a commit is
/// short (the default 1,000 makes the p99 of the inbound path worse; performance.md).
const SQLITE_WAL_AUTOCHECKPOINT_PAGES: &str = "100";
/// Upper bound of the SQLite read pool; reads are short and the machine small.
const SQLITE_MAX_READERS: u32 = 8;

/// Where and how to open the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://path` (file and parent directory created when missing), `sqlite::memory:`, or
    /// `postgres://…` / `postgresql://…`.
    pub url: String,
    /// Encrypts credentials and secrets at rest.
    pub cipher: Cipher,
    /// PostgreSQL pool size; for SQLite, the read pool's size (capped at 8; writes always use
    /// one connection).
    pub max_connections: u32,
}

/// The connection pools of an open store.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite { write: SqlitePool, read: SqlitePool },
    Postgres(PgPool),
}

impl Pool {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite { .. } => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Opens the store named by `config.url`. Does not migrate (see [`migrate`]).
///
/// # Errors
/// `InvalidInput` on `DATABASE_URL` for an unsupported scheme or an unparsable URL;
/// `Unavailable` when the database cannot be reached.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>> {
    let pool = connect(config).await?;
    Ok(Arc::new(SqlStore::new(pool, config.cipher.clone())))
}

/// Applies every pending migration of the backend named by `config.url`.
///
/// # Errors
/// As [`open`], plus `Internal` when a migration fails.
pub async fn migrate(config: &StoreConfig) -> Result<()> {
    let pool = connect(config).await?;
    let outcome = run_migrations(&pool).await;
    close(&pool).await;
    outcome
}

/// [`migrate`], then [`open`], on one set of connections (so it also works for an in-memory
/// SQLite database, which exists only as long as its connection).
///
/// # Errors
/// As both.
pub async fn open_and_migrate(config: &StoreConfig) -> Result<Arc<dyn Store>> {
    let pool = connect(config).await?;
    if let Err(err) = run_migrations(&pool).await {
        close(&pool).await;
        return Err(err);
    }
    Ok(Arc::new(SqlStore::new(pool, config.cipher.clone())))
}

async fn run_migrations(pool: &Pool) -> Result<()> {
    match pool {
        Pool::Sqlite { write, .. } => SQLITE_MIGRATIONS.run(write).await,
        Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
    }
    .map_err(|err| Error::internal("applying database migrations failed", err))
}

async fn close(pool: &Pool) {
    match pool {
        Pool::Sqlite { write, read } => {
            read.close().await;
            write.close().await;
        }
        Pool::Postgres(pool) => pool.close().await,
    }
}

enum Target {
    SqliteFile(PathBuf),
    SqliteMemory,
    Postgres,
}

fn classify(url: &str) -> Result<Target> {
    let invalid = |message: String| Error::invalid("DATABASE_URL", message);
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(invalid(format!(
                "DATABASE_URL `{url}` names no SQLite file (expected e.g. `sqlite://data/inbox.db`)"
            )));
        }
        if path == ":memory:" || url.contains("mode=memory") {
            return Ok(Target::SqliteMemory);
        }
        return Ok(Target::SqliteFile(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres);
    }
    let scheme = url.split(':').next().unwrap_or_default();
    Err(invalid(format!(
        "DATABASE_URL has the unsupported scheme `{scheme}`: use `sqlite://path/to/file.db` or \
         `postgres://user:password@host/database`"
    )))
}

async fn connect(config: &StoreConfig) -> Result<Pool> {
    let url = config.url.trim();
    match classify(url)? {
        Target::Postgres => {
            let options = PgConnectOptions::from_str(url).map_err(|err| {
                Error::invalid(
                    "DATABASE_URL",
                    format!("DATABASE_URL is not a valid PostgreSQL URL: {err}"),
                )
            })?;
            let pool = PoolOptions::new()
                .max_connections(config.max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(db_error)?;
            Ok(Pool::Postgres(pool))
        }
        Target::SqliteMemory => {
            let options = sqlite_options(url)?;
            // One connection for both roles: every connection to `:memory:` is its own database.
            let pool = PoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .map_err(db_error)?;
            Ok(Pool::Sqlite {
                write: pool.clone(),
                read: pool,
            })
        }
        Target::SqliteFile(path) => {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|err| {
                    Error::internal(
                        format!("cannot create the database directory {}", dir.display()),
                        err,
                    )
                })?;
            }
            let options = sqlite_options(url)?.filename(&path).create_if_missing(true);
            let write = PoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options.clone())
                .await
                .map_err(db_error)?;
            // Readers inherit WAL from the file; `query_only` makes an accidental write through
            // the read pool fail loudly instead of contending with the writer.
            let read = PoolOptions::new()
                .max_connections(config.max_connections.clamp(1, SQLITE_MAX_READERS))
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options.pragma("query_only", "ON"))
                .await
                .map_err(db_error)?;
            Ok(Pool::Sqlite { write, read })
        }
    }
}

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions> {
    let options = SqliteConnectOptions::from_str(url).map_err(|err| {
        Error::invalid(
            "DATABASE_URL",
            format!("DATABASE_URL is not a valid SQLite URL: {err}"),
        )
    })?;
    Ok(options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .pragma("wal_autocheckpoint", SQLITE_WAL_AUTOCHECKPOINT_PAGES))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn urls_are_classified_and_unknown_schemes_name_the_variable() {
        assert!(
            matches!(classify("sqlite://data/inbox.db"), Ok(Target::SqliteFile(p)) if p == Path::new("data/inbox.db"))
        );
        assert!(
            matches!(classify("sqlite:///tmp/x.db?mode=rwc"), Ok(Target::SqliteFile(p)) if p == Path::new("/tmp/x.db"))
        );
        assert!(matches!(
            classify("sqlite::memory:"),
            Ok(Target::SqliteMemory)
        ));
        assert!(matches!(
            classify("postgres://u@h/db"),
            Ok(Target::Postgres)
        ));
        assert!(matches!(
            classify("postgresql://u@h/db"),
            Ok(Target::Postgres)
        ));
        for bad in ["mysql://u@h/db", "data/inbox.db", "sqlite://"] {
            match classify(bad) {
                Err(Error::InvalidInput {
                    param: Some(param),
                    message,
                }) => {
                    assert_eq!(param, "DATABASE_URL");
                    assert!(message.contains("DATABASE_URL"), "{message}");
                }
                _ => panic!("{bad} was accepted"),
            }
        }
    }
}
