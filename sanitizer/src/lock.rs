//! A spin lock that knows its owner thread.
//!
//! The fault handler takes the tracker's lock; a fault can interrupt the thread that
//! holds it only if the runtime itself wrote to a protected page, which
//! [`SpinLock::held_by_me`] lets the handler detect instead of deadlocking.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI32, Ordering};

/// Mutual exclusion without allocation or poisoning, usable in a signal handler.
pub struct SpinLock<T> {
    owner: AtomicI32,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is exclusive while `owner` is non-zero (set by `lock`).
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// Holds the lock until dropped.
pub struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
}

/// The calling thread's id.
pub fn tid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

impl<T> SpinLock<T> {
    /// An unlocked lock.
    pub const fn new(v: T) -> Self {
        SpinLock {
            owner: AtomicI32::new(0),
            data: UnsafeCell::new(v),
        }
    }

    /// Whether the calling thread holds the lock.
    pub fn held_by_me(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == tid()
    }

    /// Waits for the lock.
    pub fn lock(&self) -> Guard<'_, T> {
        let me = tid();
        let mut spins = 0u32;
        while self
            .owner
            .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins % 64 == 0 {
                // SAFETY: sched_yield has no arguments.
                unsafe { libc::sched_yield() };
            } else {
                std::hint::spin_loop();
            }
        }
        Guard { lock: self }
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard is the lock's only holder.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard is the lock's only holder.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.owner.store(0, Ordering::Release);
    }
}

impl<T> SpinLock<T> {
    /// Takes the lock without a guard (around `fork`: `pthread_atfork` prepare).
    pub fn lock_raw(&self) {
        std::mem::forget(self.lock());
    }

    /// Releases a lock taken by [`SpinLock::lock_raw`] (in the parent and the child
    /// after `fork`, where the owning thread id may no longer exist).
    ///
    /// # Safety
    /// The lock was taken with `lock_raw` and no guard of it is alive.
    pub unsafe fn unlock_raw(&self) {
        self.owner.store(0, Ordering::Release);
    }
}
