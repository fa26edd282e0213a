//! SMTP AUTH password hashes: Argon2id with the `argon2` crate's default parameters,
//! stored as PHC strings (`$argon2id$v=19$m=...`). One hash takes an estimated tens of
//! milliseconds of CPU, so it runs on tokio's blocking pool, never on a runtime thread.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Hashes `password` with a fresh random salt and returns the PHC string.
pub(super) async fn hash(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|err| format!("the hashing task failed: {err}"))?
}

/// Checks `password` against `stored`. When there is no stored hash (unknown address or
/// no password set) a dummy hash is checked instead and `false` returned, so the time
/// taken does not reveal which addresses exist. A stored value that is not a valid PHC
/// string also gives `false`.
pub(super) async fn verify(stored: Option<String>, password: String) -> bool {
    let result = tokio::task::spawn_blocking(move || match stored {
        Some(stored) => verify_blocking(&stored, &password),
        None => {
            verify_blocking(dummy_hash(), &password);
            false
        }
    })
    .await;
    result.unwrap_or(false)
}

fn hash_blocking(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| err.to_string())
}

/// Verifies in constant time with respect to the password; the parameters come from the
/// stored string, so hashes made with older parameters keep working.
fn verify_blocking(stored: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// Returns a hash of a random password with the current parameters, made once per
/// process at the cost of one extra hash on first use.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let password = SaltString::generate(&mut OsRng);
        hash_blocking(password.as_str()).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_is_argon2id_and_verifies() {
        let hash = hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify(Some(hash.clone()), "correct horse".into()).await);
        assert!(!verify(Some(hash), "correct horse ".into()).await);
    }

    #[tokio::test]
    async fn missing_or_invalid_hash_never_verifies() {
        assert!(!verify(None, "anything".into()).await);
        assert!(!verify(None, String::new()).await);
        assert!(!verify(Some("not a hash".into()), "anything".into()).await);
    }

    #[tokio::test]
    async fn same_password_gets_different_salts() {
        let first = hash("pw".into()).await.unwrap();
        let second = hash("pw".into()).await.unwrap();
        assert_ne!(first, second);
    }
}
