//! A zero-copy buffer pool as library authors write it, under loom.
//!
//! A sending thread takes a free buffer, fills it and "sends" it; the kernel (here: the
//! device thread) reads the buffer some time later and posts a completion; a reaper
//! thread consumes completions and returns buffers to the pool. The pool's free flag is
//! an atomic; the bytes are a `loom::cell::UnsafeCell`, so loom reports any write that
//! is not ordered after the kernel's read — exactly the reuse bug zcsafe hunts, at the
//! level of one library's synchronisation.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// How the reaper gives a buffer back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaper {
    /// After the kernel's completion, with release/acquire: correct.
    AfterCompletion,
    /// After the completion, but the free flag is stored and loaded `Relaxed`: nothing
    /// orders the kernel's read before the sender's next write.
    Relaxed,
    /// As soon as the send call returned (`IORING_CQE_F_MORE`, or "vmsplice returned"),
    /// before checking the completion: the kernel may still read.
    OnSubmit,
}

/// Chunks the sender pushes through the one-buffer pool.
pub const CHUNKS: usize = 2;

struct Pool {
    /// The buffer may be written by the sender.
    free: AtomicBool,
    data: UnsafeCell<usize>,
    /// Sends issued (the kernel may read chunk `k` once `posted > k`).
    posted: AtomicUsize,
    /// Completions: the kernel has read chunk `k` once `done > k`.
    done: AtomicUsize,
}

/// One execution of the pool: call inside `loom::model`. Panics when the kernel sends
/// bytes written after the send, or when loom sees the write race the read.
///
/// Every thread makes one pass (no spinning), so loom explores all orders of their
/// few atomic operations quickly: the sender sends chunk 0, then reuses the buffer for
/// chunk 1 only if the pool says it is free; the kernel reads whatever was posted; the
/// reaper frees the buffer when its condition holds.
pub fn execution(reaper: Reaper) {
    let pool = Arc::new(Pool {
        free: AtomicBool::new(false),
        data: UnsafeCell::new(usize::MAX),
        posted: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    let (acquire, release) = match reaper {
        Reaper::Relaxed => (Ordering::Relaxed, Ordering::Relaxed),
        _ => (Ordering::Acquire, Ordering::Release),
    };

    let kernel = {
        let pool = pool.clone();
        thread::spawn(move || {
            for k in 0..CHUNKS {
                if pool.posted.load(Ordering::Acquire) <= k {
                    return;
                }
                // SAFETY: `p` points into the cell the Arc keeps alive for the whole
                // execution, and the kernel only reads chunk k after `posted > k` (Acquire).
                // Whether the sender's write is ordered before this read is what the test
                // asks: loom tracks every access to the cell and fails the execution on a
                // race, so an unsound order is reported, never silently executed.
                let sent = pool.data.with(|p| unsafe { *p });
                assert_eq!(
                    sent, k,
                    "the kernel sent chunk {sent} in place of chunk {k}"
                );
                pool.done.store(k + 1, Ordering::Release);
            }
        })
    };
    let reaper_thread = {
        let pool = pool.clone();
        thread::spawn(move || {
            let ready = match reaper {
                Reaper::OnSubmit => pool.posted.load(Ordering::Acquire) > 0,
                _ => pool.done.load(acquire) > 0,
            };
            if ready {
                pool.free.store(true, release);
            }
        })
    };
    // The sending thread: chunk 0 into the fresh buffer, chunk 1 once it is free again.
    // SAFETY: the cell is alive (the Arc), and no other thread touches it yet: the kernel
    // reads only after the `posted` store below. loom checks that claim.
    pool.data.with_mut(|p| unsafe { *p = 0 });
    pool.posted.store(1, Ordering::Release);
    if pool.free.load(acquire) {
        // SAFETY: the pool said the buffer is free, which should mean the kernel's read of
        // chunk 0 happened before (done -> free, release/acquire). Under `Relaxed` or
        // `OnSubmit` it does not, and loom's cell tracking reports that race: the bug
        // under test, caught instead of executed.
        pool.data.with_mut(|p| unsafe { *p = 1 });
        pool.posted.store(2, Ordering::Release);
    }
    kernel.join().unwrap();
    reaper_thread.join().unwrap();
}
