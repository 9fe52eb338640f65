//! The pipe between `vmsplice` and `splice`.

use crate::memory::DataRef;
use std::collections::VecDeque;

/// A pipe: a ring of page references (`struct pipe_buffer`), capacity in pages.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Pipe {
    pub bufs: VecDeque<DataRef>,
    pub capacity: u64,
}

clone_reusing!(Pipe { bufs, capacity });

impl Pipe {
    pub fn new(capacity: u64) -> Pipe {
        Pipe {
            bufs: VecDeque::new(),
            capacity,
        }
    }

    /// Free slots. `vmsplice_to_pipe` waits for space once (`wait_for_space`), then
    /// `iter_to_pipe` adds what fits and returns: a partial count when the pipe fills.
    pub fn room(&self) -> u64 {
        self.capacity - self.bufs.len() as u64
    }
}
