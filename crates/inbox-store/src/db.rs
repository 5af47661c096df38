//! The one seam between the store's SQL and the two databases.
//!
//! Every query in this crate is written once, as a [`Statement`] (SQL text with `$1`-style
//! parameters, which SQLite accepts too, plus its bound [`Arg`]s), and runs on a [`Conn`],
//! which is either a SQLite or a PostgreSQL connection. Only the few methods of `Statement`
//! match on the backend, through [`on_conn!`]; that macro expands the same body once per
//! backend, so `sqlx::query_as::<_, Row>` resolves against each driver's own types, and a
//! `#[derive(sqlx::FromRow)]` row struct (generic over the row type) serves both.

use std::borrow::Cow;

use inbox_core::{Error, Result, Timestamp};
use sqlx::{
    AssertSqlSafe, FromRow, PgConnection, Postgres, Sqlite, SqliteConnection, pool::PoolConnection,
    postgres::PgRow, sqlite::SqliteRow,
};

/// Runs `$body` with `$conn` bound to the concrete `&mut SqliteConnection` or
/// `&mut PgConnection` behind a `&mut Conn`.
macro_rules! on_conn {
    ($target:expr, |$conn:ident| $body:expr) => {
        match $target {
            $crate::db::Conn::Sqlite(inner) => {
                let $conn: &mut sqlx::SqliteConnection = &mut **inner;
                $body
            }
            $crate::db::Conn::Postgres(inner) => {
                let $conn: &mut sqlx::PgConnection = &mut **inner;
                $body
            }
        }
    };
}

/// Binds every [`Arg`] of `$args` to the sqlx query `$query`, in order.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(value) => query.bind(value),
                Arg::OptText(value) => query.bind(value),
                Arg::Int(value) => query.bind(value),
                Arg::OptInt(value) => query.bind(value),
                Arg::Bool(value) => query.bind(value),
                Arg::Bytes(value) => query.bind(value),
            };
        }
        query
    }};
}

/// A borrowed connection of either backend; what every query helper runs on.
#[derive(Debug)]
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    /// `FOR UPDATE SKIP LOCKED` (to append to a claim's inner `SELECT`) on PostgreSQL, nothing
    /// on SQLite, whose single writer connection already serialises claims.
    pub(crate) fn skip_locked(&self, table_alias: &str) -> String {
        match self {
            Conn::Sqlite(_) => String::new(),
            Conn::Postgres(_) => format!(" FOR UPDATE OF {table_alias} SKIP LOCKED"),
        }
    }

    /// Whether concurrent transactions take row locks against each other (PostgreSQL); on
    /// SQLite the single writer connection runs one transaction at a time.
    pub(crate) fn has_row_locks(&self) -> bool {
        matches!(self, Conn::Postgres(_))
    }
}

/// An open transaction of either backend, or a savepoint inside one (see [`Tx::savepoint`]).
/// Dropping it without [`Tx::commit`] rolls back.
#[derive(Debug)]
pub(crate) enum Tx<'c> {
    Sqlite(sqlx::Transaction<'c, Sqlite>),
    Postgres(sqlx::Transaction<'c, Postgres>),
}

impl Tx<'_> {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
            Tx::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    /// A savepoint inside this transaction: committing it keeps its writes (as part of the
    /// enclosing transaction), rolling it back undoes only them, and the enclosing transaction
    /// goes on either way (on PostgreSQL too, where an error otherwise aborts the whole
    /// transaction).
    pub(crate) async fn savepoint(&mut self) -> Result<Tx<'_>> {
        match self {
            Tx::Sqlite(tx) => sqlx::Connection::begin(&mut **tx).await.map(Tx::Sqlite),
            Tx::Postgres(tx) => sqlx::Connection::begin(&mut **tx).await.map(Tx::Postgres),
        }
        .map_err(db_error)
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
        .map_err(db_error)
    }

    /// Rolls back now. Dropping a transaction also rolls back, but only once its connection
    /// is back in the pool (a background task): call this where row locks must not outlive
    /// the error, e.g. a claim that failed after locking rows.
    pub(crate) async fn rollback(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await,
            Tx::Postgres(tx) => tx.rollback().await,
        }
        .map_err(db_error)
    }
}

/// A pooled connection of either backend, for reads outside a transaction.
#[derive(Debug)]
pub(crate) enum Pooled {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Pooled {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Sqlite(conn) => Conn::Sqlite(conn),
            Pooled::Postgres(conn) => Conn::Postgres(conn),
        }
    }
}

/// A value bound to a statement parameter. One closed set of types, so a statement can be
/// built without knowing the backend and bound in each backend's arm.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// `impl From<$type> for Arg` for each listed conversion.
macro_rules! arg_conversions {
    ($($type:ty => |$value:ident| $arg:expr;)*) => {
        $(
            impl From<$type> for Arg {
                fn from($value: $type) -> Self {
                    $arg
                }
            }
        )*
    };
}

arg_conversions! {
    &str => |value| Arg::Text(value.to_owned());
    String => |value| Arg::Text(value);
    &String => |value| Arg::Text(value.clone());
    Option<String> => |value| Arg::OptText(value);
    Option<&str> => |value| Arg::OptText(value.map(str::to_owned));
    i64 => |value| Arg::Int(value);
    Option<i64> => |value| Arg::OptInt(value);
    Timestamp => |value| Arg::Int(value.unix_millis());
    Option<Timestamp> => |value| Arg::OptInt(value.map(Timestamp::unix_millis));
    bool => |value| Arg::Bool(value);
    Vec<u8> => |value| Arg::Bytes(value);
}

/// A row type both drivers can decode (any `#[derive(sqlx::FromRow)]` struct or tuple).
pub(crate) trait AnyRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// SQL text and its arguments, runnable on either backend.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
    /// Whether the driver should cache the prepared statement. Off for generated SQL whose
    /// text varies (multi-row inserts, `IN` lists), so it does not crowd the cache.
    persistent: bool,
}

/// Starts a statement with fixed SQL text.
pub(crate) fn sql(text: &'static str) -> Statement {
    Statement {
        sql: Cow::Borrowed(text),
        args: Vec::new(),
        persistent: true,
    }
}

/// Starts a statement whose text was generated (only ever from fixed fragments and `$n`
/// placeholders: values are always bound, never spliced).
pub(crate) fn generated_sql(text: String) -> Statement {
    Statement {
        sql: Cow::Owned(text),
        args: Vec::new(),
        persistent: false,
    }
}

impl Statement {
    /// Caches the prepared statement although its text was generated: for texts from a small
    /// fixed set, such as the chunk sizes of [`cached_chunks`].
    pub(crate) fn cached(mut self) -> Self {
        self.persistent = true;
        self
    }

    /// Binds the next parameter.
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Binds the next parameter in place.
    pub(crate) fn push_bind(&mut self, value: impl Into<Arg>) {
        self.args.push(value.into());
    }

    /// Binds the next parameter and returns its placeholder (`$n`), for generated SQL.
    pub(crate) fn param(&mut self, value: impl Into<Arg>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len())
    }

    /// Appends SQL text (fixed fragments and placeholders from [`Statement::param`] only).
    pub(crate) fn push_sql(&mut self, text: &str) {
        self.sql.to_mut().push_str(text);
    }

    /// Runs it; the number of rows affected.
    pub(crate) async fn execute(self, conn: &mut Conn<'_>) -> Result<u64> {
        let Statement {
            sql,
            args,
            persistent,
        } = self;
        on_conn!(conn, |c| {
            bind_args!(sqlx::query(AssertSqlSafe(sql)).persistent(persistent), args)
                .execute(c)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(db_error)
    }

    /// Runs it; every row.
    pub(crate) async fn fetch_all<R: AnyRow>(self, conn: &mut Conn<'_>) -> Result<Vec<R>> {
        let Statement {
            sql,
            args,
            persistent,
        } = self;
        on_conn!(conn, |c| {
            bind_args!(
                sqlx::query_as::<_, R>(AssertSqlSafe(sql)).persistent(persistent),
                args
            )
            .fetch_all(c)
            .await
        })
        .map_err(db_error)
    }

    /// Runs it; the first row, if any. Every caller's statement returns at most one row (a
    /// lookup by key, or a single-row `RETURNING`), so this is `fetch_all` without a second
    /// copy of the backend dispatch.
    pub(crate) async fn fetch_optional<R: AnyRow>(self, conn: &mut Conn<'_>) -> Result<Option<R>> {
        Ok(self.fetch_all(conn).await?.into_iter().next())
    }

    /// Runs it; exactly one row.
    pub(crate) async fn fetch_one<R: AnyRow>(self, conn: &mut Conn<'_>) -> Result<R> {
        self.fetch_optional(conn)
            .await?
            .ok_or_else(|| Error::internal_msg("a query that always returns a row returned none"))
    }
}

/// `$start, $start+1, …` for `count` parameters, e.g. for an `IN (…)` list.
pub(crate) fn placeholders(start: usize, count: usize) -> String {
    (start..start + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `items` split into chunks for multi-row statements that are cached like fixed SQL (see
/// [`Statement::cached`]): as many chunks of the largest size as fit, then the rest in powers
/// of two, so a statement has at most eight distinct texts. The largest size is the power of
/// two that keeps a statement within about 200 parameters: sqlx binds each SQLite parameter by
/// asking SQLite for its `$n` name, which SQLite finds by a linear scan, so binding costs grow
/// with the square of a statement's parameters (200 six-parameter rows cost ~45 µs a row,
/// 32-row statements ~8 µs).
pub(crate) fn cached_chunks<T>(items: &[T], parameters_per_row: usize) -> Vec<&[T]> {
    const PARAMETERS: usize = 200;
    const MAX_ROWS: usize = 128;
    let cap = (PARAMETERS / parameters_per_row.max(1)).clamp(1, MAX_ROWS);
    let largest = 1 << cap.ilog2();
    let mut chunks = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let size = if rest.len() >= largest {
            largest
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(size);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// Maps a driver error to the core error: an unreachable or overloaded database is
/// `Unavailable` (retryable); a unique-constraint violation is `Conflict` (callers that expect
/// one reword it); everything else is `Internal`.
pub(crate) fn db_error(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::Unavailable {
                message: format!("the database is unavailable: {err}"),
                retry_after: None,
            }
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict {
            message: format!(
                "a row with the same unique key already exists: {}",
                db.message()
            ),
        },
        sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => Error::Unavailable {
            message: format!("the database is busy: {err}"),
            retry_after: None,
        },
        _ => Error::internal("database error", err),
    }
}

/// SQLite `SQLITE_BUSY`/`SQLITE_LOCKED` (5, 6 and their extended codes) and PostgreSQL
/// serialization failures, deadlocks and connection loss: conditions a retry can clear.
fn is_busy(code: Option<&str>) -> bool {
    match code {
        Some(code) => {
            matches!(code, "5" | "6" | "40001" | "40P01" | "57P01")
                || code
                    .parse::<i64>()
                    .is_ok_and(|n| n & 0xff == 5 || n & 0xff == 6)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, SqliteConnection};

    use super::*;

    /// The whole crate writes `$n` placeholders for both backends; SQLite must bind them by
    /// number, not by order of appearance, including reuse and out-of-order use.
    #[tokio::test]
    async fn sqlite_binds_numbered_parameters_by_number() {
        let mut sqlite = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let mut conn = Conn::Sqlite(&mut sqlite);
        let (text,): (String,) = sql("SELECT $2 || $1 || $2")
            .bind("a")
            .bind("b")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(text, "bab");
        let mut generated = generated_sql(String::from("SELECT "));
        let first = generated.param(40_i64);
        let second = generated.param(2_i64);
        generated.push_sql(&format!("{second} + {first}"));
        let (sum,): (i64,) = generated.fetch_one(&mut conn).await.unwrap();
        assert_eq!(sum, 42);
    }

    #[test]
    fn placeholders_count_from_their_start() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
    }

    #[test]
    fn cached_chunks_cover_every_row_in_few_sizes() {
        let sizes = |rows: usize, parameters: usize| {
            cached_chunks(&vec![0; rows], parameters)
                .iter()
                .map(|chunk| chunk.len())
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(200, 6), [32, 32, 32, 32, 32, 32, 8]);
        assert_eq!(sizes(0, 6), Vec::<usize>::new());
        assert_eq!(sizes(7, 5), [4, 2, 1]);
        assert_eq!(sizes(300, 1), [128, 128, 32, 8, 4]);
        assert_eq!(sizes(3, 500), [1, 1, 1]);
        assert_eq!(sizes(40, 8), [16, 16, 8]);
        for rows in 0..300 {
            assert_eq!(sizes(rows, 6).iter().sum::<usize>(), rows);
        }
    }
}
