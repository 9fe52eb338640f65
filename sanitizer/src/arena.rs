//! The runtime's own allocator: size classes over pages it maps itself.
//!
//! The runtime must never write into a page that holds a program's in-flight send
//! buffer: that page is write-protected, and a fault inside the runtime while it holds
//! its lock would deadlock. The program's `malloc` heap is exactly where such buffers
//! live, so the runtime allocates from anonymous mappings of its own, which no program
//! hands to `send`. It is also safe to call from the fault handler: a fault never
//! happens while a thread is inside this allocator (it touches only its own pages).

use crate::lock::SpinLock;
use std::alloc::{GlobalAlloc, Layout};

const CLASSES: usize = 13; // 16 B … 64 KiB
const CHUNK: usize = 1 << 20;

struct State {
    free: [usize; CLASSES],
    bump: usize,
    end: usize,
}

/// The allocator of the cdylib (and of its unit tests).
pub struct Arena {
    state: SpinLock<State>,
}

impl Arena {
    /// An empty arena; pages are mapped on first use.
    pub const fn new() -> Arena {
        Arena {
            state: SpinLock::new(State {
                free: [0; CLASSES],
                bump: 0,
                end: 0,
            }),
        }
    }
}

impl Arena {
    /// Before `fork`: no other thread may be inside the allocator in the child.
    pub fn lock_for_fork(&self) {
        self.state.lock_raw();
    }

    /// After `fork`, in parent and child.
    ///
    /// # Safety
    /// After [`Arena::lock_for_fork`] only.
    pub unsafe fn unlock_after_fork(&self) {
        // SAFETY: the caller took the lock with lock_for_fork.
        unsafe { self.state.unlock_raw() }
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

fn class(layout: Layout) -> Option<usize> {
    let size = layout
        .size()
        .max(layout.align())
        .max(16)
        .next_power_of_two();
    let c = size.trailing_zeros() as usize - 4;
    (c < CLASSES).then_some(c)
}

fn map(len: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

fn round_to_page(n: usize) -> usize {
    (n + 4095) & !4095
}

// SAFETY: blocks of one class never overlap (carved once from the bump region or
// reused from that class's free list), are aligned to their power-of-two size, and large
// blocks are whole mappings of their own.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            if layout.align() > 4096 {
                return std::ptr::null_mut();
            }
            return map(round_to_page(layout.size()));
        };
        let size = 16usize << c;
        let mut s = self.state.lock();
        let head = s.free[c];
        if head != 0 {
            // SAFETY: a free block of this class stores the next free block in its
            // first word (written by dealloc).
            s.free[c] = unsafe { *(head as *const usize) };
            return head as *mut u8;
        }
        let mut start = (s.bump + size - 1) & !(size - 1);
        if s.bump == 0 || start + size > s.end {
            let p = map(CHUNK);
            if p.is_null() {
                return p;
            }
            s.bump = p as usize;
            s.end = p as usize + CHUNK;
            start = s.bump;
        }
        s.bump = start + size;
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            // SAFETY: large blocks are whole mappings of this length (alloc above).
            unsafe { libc::munmap(ptr.cast(), round_to_page(layout.size())) };
            return;
        };
        let mut s = self.state.lock();
        // SAFETY: the block is at least 16 bytes, ours, and no longer used.
        unsafe { *(ptr as *mut usize) = s.free[c] };
        s.free[c] = ptr as usize;
    }
}
