//! std's or loom's primitives, by `cfg(loom)`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, RwLock};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, RwLock};

/// Locks, going on past a poisoned lock (a panic elsewhere leaves the data consistent here:
/// every critical section is a push or a take).
pub(crate) fn lock<T>(m: &Mutex<T>) -> impl std::ops::DerefMut<Target = T> + '_ {
    #[cfg(loom)]
    {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
    #[cfg(not(loom))]
    {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Takes a read lock, going on past a poisoned lock (as [`lock`]).
pub(crate) fn read<T>(m: &RwLock<T>) -> impl std::ops::Deref<Target = T> + '_ {
    #[cfg(loom)]
    {
        m.read().unwrap_or_else(|p| p.into_inner())
    }
    #[cfg(not(loom))]
    {
        m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Takes the write lock, going on past a poisoned lock (as [`lock`]).
pub(crate) fn write<T>(m: &RwLock<T>) -> impl std::ops::DerefMut<Target = T> + '_ {
    #[cfg(loom)]
    {
        m.write().unwrap_or_else(|p| p.into_inner())
    }
    #[cfg(not(loom))]
    {
        m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
