//! The `[fax.sinch]` table of a test daemon that uses the fake Sinch server.

#![allow(dead_code)]

use super::fake_sinch::{FakeSinch, KEY_ID, KEY_SECRET, PROJECT_ID, SERVICE_ID};

/// Returns the body of `[fax.sinch]` pointing at `fake`, with OAuth2 and a 30 s
/// request timeout.
pub fn sinch_table(fake: &FakeSinch) -> String {
    format!(
        "project_id = \"{PROJECT_ID}\"\nservice_id = \"{SERVICE_ID}\"\nkey_id = \"{KEY_ID}\"\n\
         key_secret = \"{KEY_SECRET}\"\nauth = \"oauth2\"\napi_url = \"{}\"\nauth_url = \"{}\"\n\
         request_timeout = 30\n",
        fake.api_url(),
        fake.auth_url()
    )
}
