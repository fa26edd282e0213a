//! Group commit: one task owns the SQLite connection that the queues write with, and
//! commits the writes that wait for it in batches.
//!
//! Durability contract: [`Writer::write`] returns `Ok` only after the request's spool
//! folder (when it names one) was fsync'd and the transaction that contains the
//! request's statements was committed under `synchronous=FULL`, which fsyncs the WAL.
//! The caller must have written and fsync'd its spool file, and renamed it into the
//! folder, before it calls `write`. An SMTP session sends `250` only after that.
//!
//! Batching limits: a batch takes every request waiting when the writer becomes free,
//! at most [`MAX_BATCH`]. Such a batch costs one folder fsync per distinct folder and
//! one WAL fsync, shared by all its requests. A request that arrives while a batch is
//! committed waits for the next one. When more than [`MAX_BATCH`] requests wait, the
//! later ones go into later batches, in the order they arrived.
//!
//! When a batch fails, its requests are run again one by one, each in its own
//! transaction, so that only the request at fault gets the error. That is why a
//! request's statements must be safe to run twice: they run in a transaction that was
//! rolled back, then again.
//!
//! The writes that go through the writer (enqueues, worker state changes, delivery
//! report records and received webhooks) do not wait in SQLite's busy handler for each
//! other. Administrator changes (queue retry and delete, mappings) use the pool, and the
//! CLI writes from another process, so the writer and they may still wait for each
//! other there, within the store's busy timeout.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{mpsc, oneshot};

use super::QueueError;

/// Maximum requests committed in one transaction. It bounds how long one batch keeps
/// the write lock, which the CLI also needs, and how much a batch run again request by
/// request costs. With 50 SMTP sessions a batch contains at most 50 messages and the
/// workers' updates.
pub(crate) const MAX_BATCH: usize = 64;

/// Requests that may wait for the writer before [`Writer::write`] itself waits for room.
const CHANNEL_CAPACITY: usize = 4 * MAX_BATCH;

/// Takes the write lock at BEGIN, so that a lock held by another process is waited
/// for once per batch, before any statement runs.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The sending half of the group-commit writer, cheap to clone. The writer task ends
/// when the last clone is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    requests: mpsc::Sender<Box<dyn Pending>>,
}

impl Writer {
    /// Opens the writer's own connection with `options` and starts its task on the
    /// current tokio runtime.
    pub(crate) async fn start(options: &SqliteConnectOptions) -> Result<Writer, sqlx::Error> {
        let connection = options.connect().await?;
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(run(connection, receiver));
        Ok(Writer { requests: sender })
    }

    /// Runs `statements` on the writer's connection inside a write transaction, shared
    /// with the other requests of its batch, and returns their output once the batch is
    /// committed. When `sync_folder` is given, that folder is fsync'd before the commit.
    ///
    /// `statements` receives `data` and must be safe to run twice, because a failed
    /// batch is run again request by request.
    pub(crate) async fn write<D, T, F>(
        &self,
        sync_folder: Option<&Path>,
        data: D,
        statements: F,
    ) -> Result<T, QueueError>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'c> Fn(&'c mut SqliteConnection, &'c D) -> BoxFuture<'c, Result<T, QueueError>> + Send + Sync + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            sync_folder: sync_folder.map(Path::to_path_buf),
            data,
            statements,
            output: None,
            reply: Some(reply),
        };
        self.requests.send(Box::new(request)).await.map_err(|_| QueueError::WriterStopped)?;
        answer.await.map_err(|_| QueueError::WriterStopped)?
    }
}

/// A request in the writer's channel, with its output type erased.
trait Pending: Send {
    fn sync_folder(&self) -> Option<&Path>;

    /// Runs the request's statements and keeps their output until [`Pending::answer`].
    fn run<'c>(&'c mut self, connection: &'c mut SqliteConnection) -> BoxFuture<'c, Result<(), QueueError>>;

    /// Sends the kept output to the caller, or `failure` when there is one.
    fn answer(&mut self, failure: Option<QueueError>);
}

struct Request<D, T, F> {
    sync_folder: Option<PathBuf>,
    data: D,
    statements: F,
    output: Option<T>,
    reply: Option<oneshot::Sender<Result<T, QueueError>>>,
}

impl<D, T, F> Pending for Request<D, T, F>
where
    D: Send + Sync + 'static,
    T: Send + 'static,
    F: for<'c> Fn(&'c mut SqliteConnection, &'c D) -> BoxFuture<'c, Result<T, QueueError>> + Send + Sync + 'static,
{
    fn sync_folder(&self) -> Option<&Path> {
        self.sync_folder.as_deref()
    }

    fn run<'c>(&'c mut self, connection: &'c mut SqliteConnection) -> BoxFuture<'c, Result<(), QueueError>> {
        Box::pin(async move {
            self.output = None;
            let output = (self.statements)(connection, &self.data).await?;
            self.output = Some(output);
            Ok(())
        })
    }

    fn answer(&mut self, failure: Option<QueueError>) {
        let Some(reply) = self.reply.take() else { return };
        let result = match failure {
            Some(err) => Err(err),
            // Without an output the reply is dropped, which the caller reports as
            // `WriterStopped`. A committed request always has one.
            None => match self.output.take() {
                Some(output) => Ok(output),
                None => return,
            },
        };
        // The caller may have stopped waiting, for example when its client left.
        let _ = reply.send(result);
    }
}

/// Runs the writer task. It takes every request waiting, up to [`MAX_BATCH`], commits
/// them together and sends each its result, until every [`Writer`] is dropped.
async fn run(mut connection: SqliteConnection, mut receiver: mpsc::Receiver<Box<dyn Pending>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&mut connection, &mut batch).await;
        batch.clear();
    }
    if let Err(err) = connection.close().await {
        tracing::warn!(error = %err, "cannot close the queue writer's database connection");
    }
}

async fn commit_batch(connection: &mut SqliteConnection, batch: &mut [Box<dyn Pending>]) {
    let result = commit_together(connection, batch).await;
    match result {
        Ok(()) => batch.iter_mut().for_each(|request| request.answer(None)),
        Err(err) if batch.len() == 1 => batch[0].answer(Some(err)),
        // NOTE: when BEGIN itself fails, because another process kept the write lock past
        // the busy timeout, no request is at fault, yet each is tried again and may wait
        // the busy timeout once more.
        Err(err) => {
            tracing::warn!(requests = batch.len(), error = %err, "group commit failed, so its requests are committed one by one");
            for request in batch.iter_mut() {
                let result = commit_together(connection, std::slice::from_mut(request)).await;
                request.answer(result.err());
            }
        }
    }
}

/// Runs `requests` in one write transaction and commits it after their folders are
/// fsync'd. The folder fsyncs run on the blocking pool while the statements run.
async fn commit_together(
    connection: &mut SqliteConnection,
    requests: &mut [Box<dyn Pending>],
) -> Result<(), QueueError> {
    let folders: BTreeSet<PathBuf> = requests.iter().filter_map(|r| r.sync_folder()).map(Path::to_path_buf).collect();
    let first_folder = folders.first().map(|folder| folder.display().to_string()).unwrap_or_default();
    let folder_sync = (!folders.is_empty()).then(|| tokio::task::spawn_blocking(move || sync_folders(&folders)));

    let mut transaction = connection.begin_with(BEGIN_WRITE).await?;
    for request in requests.iter_mut() {
        request.run(&mut transaction).await?;
    }
    if let Some(folder_sync) = folder_sync {
        let joined = folder_sync.await;
        joined.map_err(|err| QueueError::Spool { path: first_folder, source: std::io::Error::other(err) })??;
    }
    transaction.commit().await?;
    Ok(())
}

/// Fsyncs each folder, so that the files renamed into it survive a power loss.
fn sync_folders(folders: &BTreeSet<PathBuf>) -> Result<(), QueueError> {
    for folder in folders {
        std::fs::File::open(folder)
            .and_then(|handle| handle.sync_all())
            .map_err(|source| QueueError::Spool { path: folder.display().to_string(), source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};

    use super::*;

    /// Opens a new database with one table, `numbers (value NOT NULL)`.
    async fn numbers_database(dir: &Path) -> SqliteConnection {
        let options = SqliteConnectOptions::new()
            .filename(dir.join("numbers.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let mut connection = options.connect().await.unwrap();
        sqlx::query("CREATE TABLE numbers (value INTEGER NOT NULL)").execute(&mut connection).await.unwrap();
        connection
    }

    /// Inserts `value`; `None` breaks the NOT NULL constraint, so the request fails.
    fn insert_number<'c>(
        connection: &'c mut SqliteConnection,
        value: &'c Option<i64>,
    ) -> BoxFuture<'c, Result<Option<i64>, QueueError>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO numbers (value) VALUES (?)").bind(*value).execute(connection).await?;
            Ok(*value)
        })
    }

    type Answer = oneshot::Receiver<Result<Option<i64>, QueueError>>;

    fn insert_request(value: Option<i64>, sync_folder: Option<PathBuf>) -> (Box<dyn Pending>, Answer) {
        let (reply, answer) = oneshot::channel();
        let request = Request { sync_folder, data: value, statements: insert_number, output: None, reply: Some(reply) };
        (Box::new(request), answer)
    }

    async fn stored_numbers(connection: &mut SqliteConnection) -> Vec<i64> {
        sqlx::query_scalar("SELECT value FROM numbers ORDER BY value").fetch_all(connection).await.unwrap()
    }

    #[tokio::test]
    async fn failing_request_does_not_fail_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = numbers_database(dir.path()).await;
        let (mut batch, answers): (Vec<_>, Vec<_>) =
            [Some(1), Some(2), None, Some(4)].into_iter().map(|value| insert_request(value, None)).unzip();

        commit_batch(&mut connection, &mut batch).await;

        let mut answers = answers.into_iter();
        assert_eq!(answers.next().unwrap().await.unwrap().unwrap(), Some(1));
        assert_eq!(answers.next().unwrap().await.unwrap().unwrap(), Some(2));
        let failure = answers.next().unwrap().await.unwrap().unwrap_err();
        assert!(matches!(failure, QueueError::Sql(_)), "{failure}");
        assert_eq!(answers.next().unwrap().await.unwrap().unwrap(), Some(4));
        assert_eq!(stored_numbers(&mut connection).await, [1, 2, 4], "each good request committed once");
    }

    #[tokio::test]
    async fn failing_folder_sync_fails_only_its_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = numbers_database(dir.path()).await;
        let missing = dir.path().join("missing");
        let (first, first_answer) = insert_request(Some(1), Some(dir.path().to_path_buf()));
        let (second, second_answer) = insert_request(Some(2), Some(missing.clone()));
        let (third, third_answer) = insert_request(Some(3), None);
        let mut batch = vec![first, second, third];

        commit_batch(&mut connection, &mut batch).await;

        assert_eq!(first_answer.await.unwrap().unwrap(), Some(1));
        let failure = second_answer.await.unwrap().unwrap_err();
        assert!(
            matches!(&failure, QueueError::Spool { path, .. } if *path == missing.display().to_string()),
            "{failure}"
        );
        assert_eq!(third_answer.await.unwrap().unwrap(), Some(3));
        assert_eq!(stored_numbers(&mut connection).await, [1, 3]);
    }

    #[tokio::test]
    async fn batch_commits_every_request_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = numbers_database(dir.path()).await;
        let (mut batch, answers): (Vec<_>, Vec<_>) =
            (1..=MAX_BATCH as i64).map(|value| insert_request(Some(value), Some(dir.path().to_path_buf()))).unzip();

        commit_batch(&mut connection, &mut batch).await;

        for (value, answer) in (1..).zip(answers) {
            assert_eq!(answer.await.unwrap().unwrap(), Some(value));
        }
        let expected: Vec<i64> = (1..=MAX_BATCH as i64).collect();
        assert_eq!(stored_numbers(&mut connection).await, expected);
    }
}
