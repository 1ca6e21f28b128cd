//! Small synchronisation helpers shared by the primitives.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poisoning.
///
/// Every critical section in this crate is short and runs no user code, so a
/// poisoned lock can only come from a panic that left the protected state
/// consistent (the panic happened outside the section's own logic, for example
/// in an allocator). Refusing to continue would turn one panic into a hang or a
/// cascade of panics in unrelated tasks.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Renders a panic payload as text for error values and logs.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
