//! Placeholder for the daemon's wiring until the server module lands; it only has the
//! signature that `faxgate run` calls.

/// Runs the daemon until it is stopped.
pub async fn run(config: crate::config::Config) -> anyhow::Result<()> {
    let _ = config;
    // TODO: replaced by the real server module; until then `faxgate run` exits with this error.
    anyhow::bail!("the daemon is not built into this version yet")
}
