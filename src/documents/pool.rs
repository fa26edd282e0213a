//! Running conversions off the async runtime: a process-wide semaphore bounds the
//! conversions running at once to the number of CPUs, each runs on a blocking thread,
//! and a panic becomes an error instead of a crash.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;
use tracing::{error, warn};

use super::{Converted, DocumentError, Limits, message_to_pdf, panic_message};

/// Permits for running conversions, one per CPU: conversion is CPU-bound, so more at
/// once would only slow each down and use more memory.
pub(super) static POOL: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(workers()));

/// Returns the number of conversions that run at once: the number of CPUs, or 2 when
/// it cannot be read.
pub(super) fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |count| count.get())
}

/// Converts a message as [`message_to_pdf`] does, on a blocking thread once a worker is
/// free. Waiting longer than `limits.queue_timeout` for a worker, or longer than
/// `limits.conversion_timeout` for the result, gives [`DocumentError::Busy`]. A panic
/// inside one document's conversion gives [`DocumentError::Rejected`] naming it; any
/// other panic gives [`DocumentError::Internal`].
pub async fn convert_message(message: Vec<u8>, limits: Arc<Limits>) -> Result<Converted, DocumentError> {
    let permit = match tokio::time::timeout(limits.queue_timeout, POOL.acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(closed)) => return Err(DocumentError::Internal(format!("conversion pool closed: {closed}"))),
        Err(_) => {
            warn!(wait = ?limits.queue_timeout, "no conversion worker became free in time");
            return Err(DocumentError::Busy);
        }
    };

    let conversion_timeout = limits.conversion_timeout;
    let task = tokio::task::spawn_blocking(move || {
        // The permit is held until the conversion ends, also when the caller stopped
        // waiting, so abandoned conversions still count against the pool.
        let _permit = permit;
        catch_unwind(AssertUnwindSafe(|| message_to_pdf(&message, &limits)))
    });

    match tokio::time::timeout(conversion_timeout, task).await {
        Ok(Ok(Ok(result))) => result,
        Ok(Ok(Err(panic))) => {
            let message = panic_message(&*panic);
            error!(panic = %message, "message conversion panicked");
            Err(DocumentError::Internal(message))
        }
        Ok(Err(join_error)) => {
            error!(error = %join_error, "message conversion task failed");
            Err(DocumentError::Internal(join_error.to_string()))
        }
        Err(_) => {
            // NOTE: a blocking thread cannot be stopped; it runs to the end and then
            // releases its worker.
            warn!(timeout = ?conversion_timeout, "message conversion timed out");
            Err(DocumentError::Busy)
        }
    }
}
