//! [`Mappings`]: reads and writes of the mapping tables in the shared SQLite store.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction, so it takes the write lock before
//! it reads and two writers (the daemon's HTTP API and the CLI, say) cannot interleave
//! between a check and an insert. Each method normalizes the email it is given with
//! [`rules::normalize_email`] and checks numbers with [`rules::check_numbers`].

use sqlx::SqliteConnection;

use super::{Mapping, MappingError, Permission, password, rules};
use crate::number::Number;
use crate::store::Store;

/// Opens a write transaction holding SQLite's write lock from its first statement.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// One row of a mapping joined with one of its numbers. The number columns are NULL only
/// for a mapping without numbers, and the checks on writes never create one.
type JoinedRow = (String, bool, String, String, Option<String>, Option<String>);

/// The mappings kept in the store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Mappings {
    store: Store,
}

impl Mappings {
    pub fn new(store: Store) -> Self {
        Mappings { store }
    }

    /// Adds a mapping for `email` with `numbers` in the given order and returns it.
    /// Fails with [`MappingError::Exists`] when `email` already has one.
    pub async fn add(&self, email: &str, numbers: &[(Number, Permission)]) -> Result<Mapping, MappingError> {
        let email = rules::normalize_email(email)?;
        rules::check_numbers(numbers)?;

        let mut tx = self.store.pool().begin_with(BEGIN_WRITE).await?;
        let inserted = sqlx::query(
            "INSERT INTO mappings (email, created_at, updated_at)
             VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(&email)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(MappingError::Exists { email });
        }
        insert_numbers(&mut tx, &email, numbers).await?;
        let mapping = fetch_mapping(&mut tx, &email).await?;
        tx.commit().await?;
        mapping.ok_or(MappingError::NotFound { email })
    }

    /// Replaces the numbers of `email` and returns the new mapping; the password and
    /// `created_at` are kept. Fails with [`MappingError::NotFound`] when there is none.
    pub async fn set(&self, email: &str, numbers: &[(Number, Permission)]) -> Result<Mapping, MappingError> {
        let email = rules::normalize_email(email)?;
        rules::check_numbers(numbers)?;

        let mut tx = self.store.pool().begin_with(BEGIN_WRITE).await?;
        let updated = sqlx::query(
            "UPDATE mappings SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE email = ?1",
        )
        .bind(&email)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(MappingError::NotFound { email });
        }
        sqlx::query("DELETE FROM mapping_numbers WHERE email = ?1")
            .bind(&email)
            .execute(&mut *tx)
            .await?;
        insert_numbers(&mut tx, &email, numbers).await?;
        let mapping = fetch_mapping(&mut tx, &email).await?;
        tx.commit().await?;
        mapping.ok_or(MappingError::NotFound { email })
    }

    /// Removes the mapping of `email` with its numbers and password. Fails with
    /// [`MappingError::NotFound`] when there is none.
    pub async fn remove(&self, email: &str) -> Result<(), MappingError> {
        let email = rules::normalize_email(email)?;

        let mut tx = self.store.pool().begin_with(BEGIN_WRITE).await?;
        let deleted = sqlx::query("DELETE FROM mappings WHERE email = ?1")
            .bind(&email)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(MappingError::NotFound { email });
        }
        tx.commit().await?;
        Ok(())
    }

    /// Returns the mapping of `email`, or `None` when it has none. An address that is
    /// not valid syntax has none either.
    pub async fn get(&self, email: &str) -> Result<Option<Mapping>, MappingError> {
        let Ok(email) = rules::normalize_email(email) else {
            return Ok(None);
        };
        let mut conn = self.store.pool().acquire().await?;
        fetch_mapping(&mut conn, &email).await
    }

    /// Returns one page of mappings ordered by email, and the number of mappings in all
    /// pages. With `number`, only the mappings that contain it (in any permission).
    ///
    /// `page` is 1-based; 0 is read as 1. A page past the end is empty. Callers that take
    /// paging from a request check it first with [`rules::check_page`].
    pub async fn list(
        &self,
        number: Option<&Number>,
        page: u32,
        page_size: u32,
    ) -> Result<(Vec<Mapping>, u64), MappingError> {
        let number = number.map(Number::as_str);
        let (limit, offset) = limit_offset(page, page_size);

        // One read transaction, so the page and the total come from the same snapshot.
        let mut tx = self.store.pool().begin().await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mappings
             WHERE ?1 IS NULL OR email IN (SELECT email FROM mapping_numbers WHERE number = ?1)",
        )
        .bind(number)
        .fetch_one(&mut *tx)
        .await?;
        let rows: Vec<JoinedRow> = sqlx::query_as(
            "SELECT m.email, m.password_hash IS NOT NULL, m.created_at, m.updated_at, n.number, n.permission
             FROM (SELECT * FROM mappings
                   WHERE ?1 IS NULL OR email IN (SELECT email FROM mapping_numbers WHERE number = ?1)
                   ORDER BY email LIMIT ?2 OFFSET ?3) AS m
             LEFT JOIN mapping_numbers AS n ON n.email = m.email
             ORDER BY m.email, n.position",
        )
        .bind(number)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        Ok((group_rows(rows)?, count(total)))
    }

    /// Returns one page of the emails mapped to `number` (in any permission) ordered by
    /// email, and their total. Paging is read as in [`Mappings::list`].
    pub async fn emails_for_number(
        &self,
        number: &Number,
        page: u32,
        page_size: u32,
    ) -> Result<(Vec<String>, u64), MappingError> {
        let (limit, offset) = limit_offset(page, page_size);

        let mut tx = self.store.pool().begin().await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mapping_numbers WHERE number = ?1")
            .bind(number.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let emails: Vec<String> =
            sqlx::query_scalar("SELECT email FROM mapping_numbers WHERE number = ?1 ORDER BY email LIMIT ?2 OFFSET ?3")
                .bind(number.as_str())
                .bind(limit)
                .bind(offset)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;

        Ok((emails, count(total)))
    }

    /// Returns one page of the numbers of `email` in mapping order, and their total.
    /// Fails with [`MappingError::NotFound`] when `email` has no mapping. Paging is read
    /// as in [`Mappings::list`].
    pub async fn numbers_of(
        &self,
        email: &str,
        page: u32,
        page_size: u32,
    ) -> Result<(Vec<(Number, Permission)>, u64), MappingError> {
        let not_found = || MappingError::NotFound { email: email.trim().to_lowercase() };
        let Ok(email) = rules::normalize_email(email) else {
            return Err(not_found());
        };
        let (limit, offset) = limit_offset(page, page_size);

        let mut tx = self.store.pool().begin().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM mappings WHERE email = ?1")
            .bind(&email)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(not_found());
        }
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mapping_numbers WHERE email = ?1")
            .bind(&email)
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT number, permission FROM mapping_numbers WHERE email = ?1 ORDER BY position LIMIT ?2 OFFSET ?3",
        )
        .bind(&email)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let numbers = rows
            .into_iter()
            .map(|(number, permission)| decode_number(&email, &number, &permission))
            .collect::<Result<_, _>>()?;
        Ok((numbers, count(total)))
    }

    /// Returns the emails that receive the faxes arriving on `number` (permission
    /// `receive` or `both`), ordered by email; empty when none.
    pub async fn receivers(&self, number: &Number) -> Result<Vec<String>, MappingError> {
        let emails = sqlx::query_scalar(
            "SELECT email FROM mapping_numbers
             WHERE number = ?1 AND permission IN ('receive', 'both')
             ORDER BY email",
        )
        .bind(number.as_str())
        .fetch_all(self.store.pool())
        .await?;
        Ok(emails)
    }

    /// Sets the SMTP AUTH password of `email`, replacing any earlier one. Only an
    /// Argon2id hash is stored. Fails with [`MappingError::EmptyPassword`] for an empty
    /// password and [`MappingError::NotFound`] when `email` has no mapping.
    pub async fn set_password(&self, email: &str, password: &str) -> Result<(), MappingError> {
        let email = rules::normalize_email(email)?;
        if password.is_empty() {
            return Err(MappingError::EmptyPassword { email });
        }
        let hash = password::hash(password.to_string())
            .await
            .map_err(|message| MappingError::Hash { email: email.clone(), message })?;

        let mut tx = self.store.pool().begin_with(BEGIN_WRITE).await?;
        let updated = sqlx::query(
            "UPDATE mappings SET password_hash = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE email = ?1",
        )
        .bind(&email)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(MappingError::NotFound { email });
        }
        tx.commit().await?;
        Ok(())
    }

    /// Returns whether `password` is the SMTP AUTH password of `email`. An unknown or
    /// invalid address, or one without a password, returns `false` after the same
    /// hashing work as a wrong password, so timing does not reveal which addresses exist.
    /// `Err` means the store could not be read.
    pub async fn verify_password(&self, email: &str, password: &str) -> Result<bool, MappingError> {
        let stored = match rules::normalize_email(email) {
            Ok(email) => {
                let row: Option<Option<String>> =
                    sqlx::query_scalar("SELECT password_hash FROM mappings WHERE email = ?1")
                        .bind(&email)
                        .fetch_optional(self.store.pool())
                        .await?;
                row.flatten()
            }
            Err(_) => None,
        };
        Ok(password::verify(stored, password.to_string()).await)
    }
}

async fn insert_numbers(
    conn: &mut SqliteConnection,
    email: &str,
    numbers: &[(Number, Permission)],
) -> Result<(), MappingError> {
    for (position, (number, permission)) in numbers.iter().enumerate() {
        sqlx::query("INSERT INTO mapping_numbers (email, number, permission, position) VALUES (?1, ?2, ?3, ?4)")
            .bind(email)
            .bind(number.as_str())
            .bind(permission.as_str())
            .bind(position as i64)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Reads one mapping; `email` must already be normalized.
async fn fetch_mapping(conn: &mut SqliteConnection, email: &str) -> Result<Option<Mapping>, MappingError> {
    let rows: Vec<JoinedRow> = sqlx::query_as(
        "SELECT m.email, m.password_hash IS NOT NULL, m.created_at, m.updated_at, n.number, n.permission
         FROM mappings AS m
         LEFT JOIN mapping_numbers AS n ON n.email = m.email
         WHERE m.email = ?1
         ORDER BY n.position",
    )
    .bind(email)
    .fetch_all(&mut *conn)
    .await?;
    Ok(group_rows(rows)?.pop())
}

/// Folds joined rows, ordered by email and then position, into mappings.
fn group_rows(rows: Vec<JoinedRow>) -> Result<Vec<Mapping>, MappingError> {
    let mut mappings: Vec<Mapping> = Vec::new();
    for (email, has_password, created_at, updated_at, number, permission) in rows {
        if mappings.last().is_none_or(|last| last.email != email) {
            mappings.push(Mapping { email: email.clone(), numbers: Vec::new(), has_password, created_at, updated_at });
        }
        if let (Some(number), Some(permission)) = (number, permission) {
            let entry = decode_number(&email, &number, &permission)?;
            mappings.last_mut().expect("pushed above").numbers.push(entry);
        }
    }
    Ok(mappings)
}

fn decode_number(email: &str, number: &str, permission: &str) -> Result<(Number, Permission), MappingError> {
    let corrupt = |message: String| MappingError::Corrupt { email: email.to_string(), message };
    let number = number.parse::<Number>().map_err(|err| corrupt(err.to_string()))?;
    let permission = permission.parse::<Permission>().map_err(|err| corrupt(err.to_string()))?;
    Ok((number, permission))
}

/// Turns a 1-based page (0 read as 1) and a page size into SQL `LIMIT` and `OFFSET`.
fn limit_offset(page: u32, page_size: u32) -> (i64, i64) {
    let limit = i64::from(page_size);
    let offset = i64::from(page.max(1) - 1) * limit;
    (limit, offset)
}

fn count(total: i64) -> u64 {
    u64::try_from(total).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mappings::Permission::{Both, Receive, Send};

    async fn open() -> (tempfile::TempDir, Mappings) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("faxgate.db")).await.unwrap();
        (dir, Mappings::new(store))
    }

    fn number(e164: &str) -> Number {
        e164.parse().unwrap()
    }

    fn numbers(list: &[(&str, Permission)]) -> Vec<(Number, Permission)> {
        list.iter().map(|(n, p)| (number(n), *p)).collect()
    }

    #[tokio::test]
    async fn add_then_get_keeps_order() {
        let (_dir, mappings) = open().await;
        let given = numbers(&[("+14155550102", Receive), ("+14155550100", Send), ("+14155550101", Both)]);
        let added = mappings.add("Alice@Example.com", &given).await.unwrap();
        assert_eq!(added.email, "alice@example.com");
        assert_eq!(added.numbers, given);
        assert!(!added.has_password);
        assert!(added.created_at.ends_with('Z'), "{}", added.created_at);
        assert_eq!(added.created_at, added.updated_at);

        let fetched = mappings.get("ALICE@example.com").await.unwrap().unwrap();
        assert_eq!(fetched, added);
        assert_eq!(mappings.get("bob@example.com").await.unwrap(), None);
        assert_eq!(mappings.get("not an address").await.unwrap(), None);
    }

    #[tokio::test]
    async fn add_existing_is_rejected() {
        let (_dir, mappings) = open().await;
        let given = numbers(&[("+14155550100", Both)]);
        mappings.add("alice@example.com", &given).await.unwrap();
        let err = mappings.add("ALICE@example.com", &given).await.unwrap_err();
        assert!(matches!(&err, MappingError::Exists { email } if email == "alice@example.com"), "{err}");
    }

    #[tokio::test]
    async fn add_checks_input() {
        let (_dir, mappings) = open().await;
        let err = mappings.add("alice", &numbers(&[("+14155550100", Both)])).await.unwrap_err();
        assert!(matches!(err, MappingError::InvalidEmail(_)), "{err}");
        assert!(err.is_invalid_input());
        let err = mappings.add("alice@example.com", &[]).await.unwrap_err();
        assert!(matches!(err, MappingError::InvalidNumbers(rules::NumbersError::Empty)), "{err}");
        let twice = numbers(&[("+14155550100", Send), ("+14155550100", Receive)]);
        let err = mappings.add("alice@example.com", &twice).await.unwrap_err();
        assert!(matches!(err, MappingError::InvalidNumbers(rules::NumbersError::Duplicate { .. })), "{err}");
        assert_eq!(mappings.get("alice@example.com").await.unwrap(), None);
    }

    #[tokio::test]
    async fn set_replaces_numbers() {
        let (_dir, mappings) = open().await;
        mappings.add("alice@example.com", &numbers(&[("+14155550100", Both)])).await.unwrap();
        mappings.set_password("alice@example.com", "secret").await.unwrap();
        let replaced = numbers(&[("+14155550101", Send), ("+14155550100", Receive)]);
        let set = mappings.set("alice@example.com", &replaced).await.unwrap();
        assert_eq!(set.numbers, replaced);
        assert!(set.has_password);
        assert!(mappings.verify_password("alice@example.com", "secret").await.unwrap());

        let err = mappings.set("bob@example.com", &replaced).await.unwrap_err();
        assert!(matches!(err, MappingError::NotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn remove_deletes_numbers() {
        let (_dir, mappings) = open().await;
        mappings.add("alice@example.com", &numbers(&[("+14155550100", Both)])).await.unwrap();
        mappings.remove("Alice@example.com").await.unwrap();
        assert_eq!(mappings.get("alice@example.com").await.unwrap(), None);
        assert!(mappings.receivers(&number("+14155550100")).await.unwrap().is_empty());
        let orphans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mapping_numbers")
            .fetch_one(mappings.store.pool())
            .await
            .unwrap();
        assert_eq!(orphans, 0);

        let err = mappings.remove("alice@example.com").await.unwrap_err();
        assert!(matches!(err, MappingError::NotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn list_pages_and_filters() {
        let (_dir, mappings) = open().await;
        for (email, list) in [
            ("carol@example.com", vec![("+14155550100", Receive)]),
            ("alice@example.com", vec![("+14155550100", Send), ("+14155550101", Both)]),
            ("bob@example.com", vec![("+14155550101", Send)]),
        ] {
            mappings.add(email, &numbers(&list)).await.unwrap();
        }

        let (all, total) = mappings.list(None, 1, 100).await.unwrap();
        assert_eq!(total, 3);
        let emails: Vec<&str> = all.iter().map(|m| m.email.as_str()).collect();
        assert_eq!(emails, ["alice@example.com", "bob@example.com", "carol@example.com"]);
        assert_eq!(all[0].numbers.len(), 2);

        let (second, total) = mappings.list(None, 2, 2).await.unwrap();
        assert_eq!(total, 3);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].email, "carol@example.com");

        let (past_end, total) = mappings.list(None, 9, 2).await.unwrap();
        assert!(past_end.is_empty());
        assert_eq!(total, 3);

        let (filtered, total) = mappings.list(Some(&number("+14155550100")), 1, 100).await.unwrap();
        assert_eq!(total, 2);
        let emails: Vec<&str> = filtered.iter().map(|m| m.email.as_str()).collect();
        assert_eq!(emails, ["alice@example.com", "carol@example.com"]);
        // A filtered mapping still lists all of its numbers.
        assert_eq!(filtered[0].numbers.len(), 2);

        let (none, total) = mappings.list(Some(&number("+14155550199")), 1, 100).await.unwrap();
        assert!(none.is_empty());
        assert_eq!(total, 0);
    }

    #[tokio::test]
    async fn emails_for_number_and_receivers() {
        let (_dir, mappings) = open().await;
        mappings.add("carol@example.com", &numbers(&[("+14155550100", Receive)])).await.unwrap();
        mappings.add("alice@example.com", &numbers(&[("+14155550100", Send)])).await.unwrap();
        mappings.add("bob@example.com", &numbers(&[("+14155550100", Both)])).await.unwrap();

        let shared = number("+14155550100");
        let (emails, total) = mappings.emails_for_number(&shared, 1, 2).await.unwrap();
        assert_eq!(total, 3);
        assert_eq!(emails, ["alice@example.com", "bob@example.com"]);
        let (emails, _) = mappings.emails_for_number(&shared, 2, 2).await.unwrap();
        assert_eq!(emails, ["carol@example.com"]);

        assert_eq!(mappings.receivers(&shared).await.unwrap(), ["bob@example.com", "carol@example.com"]);
        assert!(mappings.receivers(&number("+14155550199")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn numbers_of_pages_in_order() {
        let (_dir, mappings) = open().await;
        let given = numbers(&[("+14155550102", Receive), ("+14155550100", Send), ("+14155550101", Both)]);
        mappings.add("alice@example.com", &given).await.unwrap();
        let (page, total) = mappings.numbers_of("alice@example.com", 2, 2).await.unwrap();
        assert_eq!(total, 3);
        assert_eq!(page, given[2..]);
        let err = mappings.numbers_of("bob@example.com", 1, 20).await.unwrap_err();
        assert!(matches!(err, MappingError::NotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn password_set_and_verify() {
        let (_dir, mappings) = open().await;
        mappings.add("alice@example.com", &numbers(&[("+14155550100", Both)])).await.unwrap();
        assert!(!mappings.verify_password("alice@example.com", "").await.unwrap());

        mappings.set_password("alice@example.com", "correct horse").await.unwrap();
        let hash: String = sqlx::query_scalar("SELECT password_hash FROM mappings WHERE email = 'alice@example.com'")
            .fetch_one(mappings.store.pool())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");

        assert!(mappings.verify_password("Alice@Example.com", "correct horse").await.unwrap());
        assert!(!mappings.verify_password("alice@example.com", "wrong").await.unwrap());
        assert!(!mappings.verify_password("bob@example.com", "correct horse").await.unwrap());
        assert!(!mappings.verify_password("not an address", "correct horse").await.unwrap());

        let err = mappings.set_password("alice@example.com", "").await.unwrap_err();
        assert!(matches!(err, MappingError::EmptyPassword { .. }), "{err}");
        let err = mappings.set_password("bob@example.com", "pw").await.unwrap_err();
        assert!(matches!(err, MappingError::NotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn schema_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faxgate.db");
        let first = Mappings::new(Store::open(&path).await.unwrap());
        first.add("alice@example.com", &numbers(&[("+14155550100", Both)])).await.unwrap();
        let second = Mappings::new(Store::open(&path).await.unwrap());
        assert!(second.get("alice@example.com").await.unwrap().is_some());
    }
}
