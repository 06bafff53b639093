//! What the in-memory twins of the ports share.

use std::sync::{Mutex, MutexGuard};

/// The twin's state behind its lock. A poisoned lock only means another test thread
/// panicked; the data is still usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
