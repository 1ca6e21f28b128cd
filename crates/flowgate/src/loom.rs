//! The synchronisation primitives of the concurrent cores, switched to the
//! [loom](https://docs.rs/loom) model checker under `RUSTFLAGS="--cfg loom"`.
//!
//! Code that must be model-checked (the modules with `unsafe`: `broadcast`
//! and the batch acknowledgement slot) takes its `Arc`, `Mutex`, atomics and
//! `UnsafeCell` from here instead of `std`, so that loom can explore every
//! interleaving of it. Outside loom these are plain re-exports of `std` and
//! cost nothing.

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use ::loom::sync::{Arc, Mutex, MutexGuard};

    pub(crate) mod atomic {
        pub(crate) use ::loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    }
}

/// `UnsafeCell` with loom's closure-based API, so that loom can check every
/// access to it for data races.
#[cfg(not(loom))]
pub(crate) mod cell {
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a pointer for reading the contents.
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a pointer for writing the contents.
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(loom)]
pub(crate) use ::loom::cell;

pub(crate) use self::cell::UnsafeCell;
pub(crate) use self::sync::atomic::AtomicBool;
pub(crate) use self::sync::{Arc, Mutex};

use std::sync::PoisonError;

/// Locks `mutex`, ignoring poisoning; see [`crate::sync::lock`] for why that
/// is sound here (every critical section is short and runs no user code).
pub(crate) fn lock<T>(mutex: &sync::Mutex<T>) -> sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
