//! Locking the runtime's mutexes. The bottom layer: names nothing of the crate.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, going on when a panicking thread poisoned it: every value the runtime keeps
/// behind a mutex stays consistent between statements, and handler panics are caught and
/// reported rather than allowed to take the runtime's bookkeeping down with them.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
