//! The family's database: connecting (SQLite or PostgreSQL), migrating, and the
//! order store whose every state change is one conditional UPDATE.

pub mod bills;
pub mod cache;
pub mod entity;
mod error;
pub mod migration;
pub mod notify_log;
pub mod outbox;
mod redact;
pub mod refunds;
mod rows;
mod sqlite_writer;
pub mod store;
mod writer;

use std::path::Path;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use sea_orm_migration::MigratorTrait;

pub use redact::{redact_url, scrub_database_url};
pub use store::PayStore;
pub use writer::NotifyWriterStats;

/// Bytes a SQLite WAL file is truncated back to when it is reset (`journal_size_limit`).
const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// Everything that can go wrong while opening the database.
#[derive(Debug, thiserror::Error)]
pub enum DbOpenError {
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("database URL {url} is not supported: expected sqlite:… or postgres://…")]
    UnsupportedUrl {
        /// The URL, password removed.
        url: String,
    },
    /// Connecting failed.
    #[error("cannot open database {url}: {source}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// The driver's error.
        source: sea_orm::DbErr,
    },
    /// A PRAGMA the store depends on did not take effect.
    #[error(
        "database {url}: PRAGMA {pragma} is {found:?}, expected {expected:?} \
         (an in-memory or read-only SQLite database cannot run the pays family)"
    )]
    Pragma {
        /// The URL.
        url: String,
        /// Which pragma.
        pragma: &'static str,
        /// What we asked for.
        expected: String,
        /// What the database reports.
        found: String,
    },
    /// Applying migrations failed.
    #[error("database {url}: applying the pays migrations failed: {source}")]
    Migrate {
        /// The URL, password removed.
        url: String,
        /// The migration error.
        source: sea_orm::DbErr,
    },
}

/// How to open the database.
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// `sqlite:PATH` / `sqlite://PATH` or `postgres://…` / `postgresql://…`.
    pub url: String,
    /// Pool size. SQLite writes are serialised by the database anyway; a few connections
    /// let reads proceed alongside a write under WAL.
    pub max_connections: u32,
    /// How long a SQLite writer waits for the lock before failing.
    pub busy_timeout: Duration,
    /// How long opening a connection may take (an unreachable server fails after this).
    pub connect_timeout: Duration,
    /// PostgreSQL only: a schema to create (if missing) and use as the search path. Lets
    /// several independent stores (tests, tenants) share one server.
    pub pg_schema: Option<String>,
}

impl DbConfig {
    /// A config for `url` with the defaults (4 connections, 5 s busy timeout).
    pub fn new(url: impl Into<String>) -> Self {
        DbConfig {
            url: url.into(),
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            pg_schema: None,
        }
    }

    /// The embedded default: `<app name>.db` in `app_dir` (the folder holding app.toml).
    pub fn sqlite_beside(app_dir: &Path, app_name: &str) -> Self {
        DbConfig::new(format!(
            "sqlite://{}",
            app_dir.join(format!("{app_name}.db")).display()
        ))
    }
}

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl DbKind {
    /// Classifies a URL by its scheme.
    pub fn of_url(url: &str) -> Option<DbKind> {
        if url.starts_with("sqlite:") {
            Some(DbKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(DbKind::Postgres)
        } else {
            None
        }
    }
}

/// On SQLite, a pool of its own (at most `max_connections`) with the options of
/// `connection`'s pool, changed by `adjust`; on PostgreSQL, `connection` itself (pages and
/// durability live in the server). For the store's own tasks that must not share the
/// request pool: the notify writer, the outbox's dispatcher.
pub(crate) fn sqlite_side_pool(
    connection: &DatabaseConnection,
    max_connections: u32,
    adjust: impl FnOnce(SqliteConnectOptions) -> SqliteConnectOptions,
) -> DatabaseConnection {
    if connection.get_database_backend() != DbBackend::Sqlite {
        return connection.clone();
    }
    let pool = connection.get_sqlite_connection_pool();
    let own = sea_orm::sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .connect_lazy_with(adjust((*pool.connect_options()).clone()));
    sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(own)
}

/// The reconciler's claim, for orders and refunds alike: up to `limit` rows of `table`
/// matching `unsettled` whose `next_check_at` has come (the longest due first), their
/// `next_check_at` pushed to `at + lease` in the same statement, so another instance's
/// pass does not take them until the claimant reschedules them or the lease lapses. On
/// PostgreSQL the candidates are picked `FOR UPDATE SKIP LOCKED`; SQLite serialises
/// writers anyway. `RETURNING *` does not keep the subquery's order.
pub(crate) async fn claim_due_rows(
    connection: &DatabaseConnection,
    table: &str,
    unsettled: &str,
    at: chrono::DateTime<chrono::Utc>,
    limit: u64,
    lease: Duration,
) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
    use chrono::SubsecRound;
    let backend = connection.get_database_backend();
    let until = (at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5)))
        .trunc_subsecs(6);
    let skip_locked = if backend == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE {table} SET next_check_at = ? WHERE id IN (\
         SELECT id FROM {table} WHERE {unsettled} AND next_check_at <= ? \
         ORDER BY next_check_at LIMIT ?{skip_locked}) \
         AND {unsettled} AND next_check_at <= ? RETURNING *"
    );
    let values = vec![until.into(), at.into(), (limit as i64).into(), at.into()];
    connection
        .query_all_raw(statement(backend, &sql, values))
        .await
}

/// `sql` with `?` placeholders, written for `backend` (`$1`, `$2`, ... on PostgreSQL).
pub(crate) fn statement(backend: DbBackend, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    let sql = if backend == DbBackend::Postgres {
        let mut numbered = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                numbered.push_str(&format!("${n}"));
            } else {
                numbered.push(c);
            }
        }
        numbered
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Opens the database, checks it is fit for the store, applies the migrations.
///
/// SQLite is opened in WAL mode with a busy timeout, both verified by reading the pragmas
/// back: a database where they do not hold (in-memory, read-only media) is refused rather
/// than silently run with weaker guarantees.
pub async fn connect(config: &DbConfig) -> Result<PayStore, DbOpenError> {
    let shown_url = redact_url(&config.url);
    let kind = DbKind::of_url(&config.url).ok_or_else(|| DbOpenError::UnsupportedUrl {
        url: shown_url.clone(),
    })?;
    let connect_error = |source| DbOpenError::Connect {
        url: shown_url.clone(),
        source,
    };
    let mut options = ConnectOptions::new(config.url.clone());
    options
        .max_connections(config.max_connections.max(1))
        .min_connections(1)
        .connect_timeout(config.connect_timeout)
        .acquire_timeout(config.busy_timeout + config.connect_timeout)
        .sqlx_logging(false);
    match kind {
        DbKind::Sqlite => {
            let busy_timeout = config.busy_timeout;
            options.map_sqlx_sqlite_opts(move |opts: SqliteConnectOptions| {
                opts.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // FULL: a transition is on disk before the caller (and WeChat) hears of it.
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(busy_timeout)
                    .foreign_keys(true)
                    // After the WAL is reset (see the payment writer's checkpoints), a file
                    // grown beyond this under load is truncated back to it.
                    .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
            });
        }
        DbKind::Postgres => {
            if let Some(schema) = &config.pg_schema {
                options.set_schema_search_path(schema.clone());
            }
        }
    }
    // On PostgreSQL, instances starting together would race to create the schema and to
    // migrate (both fail on a duplicate catalog key): one at a time, under a lock.
    let guard = match kind {
        DbKind::Postgres => Some(
            PgSetupLock::take(&config.url, config.connect_timeout)
                .await
                .map_err(connect_error)?,
        ),
        DbKind::Sqlite => None,
    };
    if let (Some(guard), Some(schema)) = (&guard, &config.pg_schema) {
        guard.ensure_schema(schema).await.map_err(connect_error)?;
    }
    let connection = Database::connect(options).await.map_err(connect_error)?;
    if kind == DbKind::Sqlite {
        check_sqlite_pragmas(&connection, &shown_url, config.busy_timeout).await?;
    }
    let migrated = migration::Migrator::up(&connection, None).await;
    if let Some(guard) = guard {
        guard.release().await;
    }
    migrated.map_err(|source| DbOpenError::Migrate {
        url: shown_url.clone(),
        source,
    })?;
    Ok(PayStore::with_busy_timeout(connection, config.busy_timeout))
}

/// A session holding PostgreSQL's advisory lock for setting up the family's tables
/// (creating the schema, migrating): held from before the schema is created until the
/// migrations ran, so instances started together set up one after another and the later
/// ones find everything done. The lock is the session's: if the process dies, the server
/// releases it.
struct PgSetupLock {
    session: DatabaseConnection,
}

/// The advisory lock's key: any constant the app does not use for its own locks.
const PG_SETUP_LOCK_KEY: i64 = 0x006a_6974_7061_7973; // "jitpays"

impl PgSetupLock {
    async fn take(url: &str, connect_timeout: Duration) -> Result<Self, sea_orm::DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(1)
            .connect_timeout(connect_timeout)
            .acquire_timeout(connect_timeout)
            .sqlx_logging(false);
        let session = Database::connect(options).await?;
        session
            .execute_unprepared(&format!("SELECT pg_advisory_lock({PG_SETUP_LOCK_KEY})"))
            .await?;
        Ok(PgSetupLock { session })
    }

    async fn ensure_schema(&self, schema: &str) -> Result<(), sea_orm::DbErr> {
        if !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || schema.is_empty()
        {
            return Err(sea_orm::DbErr::Custom(format!(
                "schema name {schema:?} must be ASCII letters, digits and _"
            )));
        }
        self.session
            .execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await
            .map(|_| ())
    }

    /// Unlocks and closes the session (closing alone would unlock too; this says it).
    async fn release(self) {
        let _ = self
            .session
            .execute_unprepared(&format!("SELECT pg_advisory_unlock({PG_SETUP_LOCK_KEY})"))
            .await;
        let _ = self.session.close().await;
    }
}

/// [`connect`] with the defaults of [`DbConfig::new`].
pub async fn connect_url(url: &str) -> Result<PayStore, DbOpenError> {
    connect(&DbConfig::new(url)).await
}

async fn check_sqlite_pragmas(
    connection: &DatabaseConnection,
    url: &str,
    busy_timeout: Duration,
) -> Result<(), DbOpenError> {
    let read = |pragma: &'static str| async move {
        let row = connection
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                format!("PRAGMA {pragma}"),
            ))
            .await
            .map_err(|source| DbOpenError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let found = match row {
            Some(row) => match row.try_get_by_index::<String>(0) {
                Ok(text) => text,
                Err(_) => row
                    .try_get_by_index::<i64>(0)
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            },
            None => String::new(),
        };
        Ok::<String, DbOpenError>(found)
    };
    let journal = read("journal_mode").await?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(DbOpenError::Pragma {
            url: url.to_owned(),
            pragma: "journal_mode",
            expected: "wal".into(),
            found: journal,
        });
    }
    let expected_ms = busy_timeout.as_millis().to_string();
    let busy = read("busy_timeout").await?;
    if busy != expected_ms || busy == "0" {
        return Err(DbOpenError::Pragma {
            url: url.to_owned(),
            pragma: "busy_timeout",
            expected: expected_ms,
            found: busy,
        });
    }
    Ok(())
}
