//! The embedded store: one SQLite database in `data_dir`, shared by the mappings and
//! the queue, and by the CLI while the daemon runs.
//!
//! The database runs in WAL mode with `synchronous=FULL`, so a transaction is on disk
//! when its commit returns. The queue relies on that before the SMTP session
//! replies `250`. Each
//! module that keeps tables owns its schema as a list of idempotent statements, run
//! here at open.
//!
//! Reads use a pool of connections. The queues write through one more connection, owned
//! by the group-commit writer (`queue::writer`), so that their writes do not compete for
//! SQLite's write lock.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::queue::writer::Writer;

/// How long a statement waits for another connection's write lock, for example the
/// CLI's while the daemon commits a job, before it fails with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in the pool. SQLite admits one writer at a time; the others serve reads.
/// The queue writer's connection comes on top.
const MAX_CONNECTIONS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data folder {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot open the database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

/// A handle to the database, cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    writer: Writer,
}

impl Store {
    /// Opens (creating when missing) the database at `path`, brings its schema up to
    /// date and starts the queue writer on the current tokio runtime. The folder is
    /// created too.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::DataDir { path: dir.display().to_string(), source })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let open_error = |source| StoreError::Open { path: path.display().to_string(), source };
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        let writer = Writer::start(&options).await.map_err(open_error)?;
        let store = Store { pool, writer };
        store.migrate().await?;
        Ok(store)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Returns the group-commit writer that the queues write through.
    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Runs every module's schema statements; each is `CREATE ... IF NOT EXISTS`.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let schemas = [
            crate::mappings::SCHEMA,
            crate::queue::SCHEMA,
            crate::queue::email::SCHEMA,
            crate::webhooks::SCHEMA,
            crate::reports::SCHEMA,
        ];
        for statement in schemas.into_iter().flatten() {
            sqlx::query(*statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs a trivial query to check that the database responds.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
