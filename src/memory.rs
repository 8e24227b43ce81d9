//! Freed memory handed back to the OS by threads that sleep between bursts of work.
//!
//! The allocator (mimalloc, chosen by the executable) keeps a thread's freed pages committed
//! until that thread allocates or frees again, and blocks freed by another thread wait on their
//! owner's list the same way. A thread that builds a large object, hands it to another thread
//! and then sleeps for the replication interval holds the object's pages all that time. Such
//! threads call [`release_thread`] when a burst ends. The executable installs the allocator's
//! collect function; without it (tests, the library used with the system allocator) the call
//! does nothing.
use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Installs the function that returns the calling thread's freed memory to the OS.
pub fn set_thread_release(f: fn()) {
    let _ = RELEASE.set(f);
}

/// Returns the calling thread's freed memory to the OS, if the executable said how.
pub fn release_thread() {
    if let Some(f) = RELEASE.get() {
        f()
    }
}
