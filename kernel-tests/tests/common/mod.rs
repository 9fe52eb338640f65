//! Shared pieces of the integration tests: tiny policies of our own (so these tests do not
//! depend on the catalogue), skips that are counted, and a lock so that runs that measure
//! timing-sensitive races do not compete for the two cores.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};
use zcsafe_kernel::netns;
use zcsafe_policy::{Geometry, Op, Outcome, Policy, Region};

static SERIAL: Mutex<()> = Mutex::new(());

/// Serialises kernel runs within one test binary.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counted skips (each test binary uses what it needs).
#[allow(unused_imports)]
pub use zcsafe_kernel::skip::{skip, skipped};

/// Makes sure no namespace of ours is left after a test (ours: live owner, so the
/// stale sweep would not catch it).
pub fn assert_no_namespaces_of_this_process() {
    let me = format!("{}{}-", netns::PREFIX, std::process::id());
    let left: Vec<String> = netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&me))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

/// What a tiny policy does with each chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `send()` (a copy), buffer reused at once.
    Copy,
    /// `send(MSG_ZEROCOPY)`, buffer reused at once.
    ZcNaive,
    /// vmsplice + splice, then SIOCOUTQ polled to 0 before reuse.
    SpliceDrain,
}

/// A tiny policy: one chunk-sized slot at offset 0, reused for every chunk.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tiny {
    scheme: Scheme,
    chunk: u64,
    chunks: u64,
    /// Chunk being sent.
    n: u64,
    /// Bytes of it handed to the kernel (send) or to the pipe (vmsplice).
    queued: u64,
    /// Bytes of it moved pipe → socket.
    spliced: u64,
    stage: Stage,
    failed: Option<String>,
    /// Overwrite the buffer once more after the last send (a reuse with nothing after).
    pub reuse_after_last: bool,
    reused: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Stage {
    Enable,
    Fill,
    Queue,
    Splice,
    Drain,
}

impl Tiny {
    pub fn new(scheme: Scheme, g: &Geometry) -> Tiny {
        Tiny {
            scheme,
            chunk: g.chunk,
            chunks: g.chunks(),
            n: 0,
            queued: 0,
            spliced: 0,
            stage: if scheme == Scheme::ZcNaive {
                Stage::Enable
            } else {
                Stage::Fill
            },
            failed: None,
            reuse_after_last: false,
            reused: false,
        }
    }

    fn next_chunk(&mut self) {
        self.n += 1;
        self.queued = 0;
        self.spliced = 0;
        self.stage = Stage::Fill;
    }
}

impl Policy for Tiny {
    fn poll_op(&self) -> Op {
        if let Some(f) = &self.failed {
            return Op::Abort(zcsafe_policy::Abort::Failed(f.clone()));
        }
        if self.n == self.chunks {
            if self.reuse_after_last && !self.reused {
                return Op::Fill {
                    buf: Region::new(0, self.chunk),
                    stream: self.n * self.chunk,
                };
            }
            return Op::Finish;
        }
        let rest = Region::new(self.queued, self.chunk - self.queued);
        match (self.stage, self.scheme) {
            (Stage::Enable, _) => Op::EnableZerocopy,
            (Stage::Fill, _) => Op::Fill {
                buf: Region::new(0, self.chunk),
                stream: self.n * self.chunk,
            },
            (Stage::Queue, Scheme::Copy) => Op::Send {
                buf: rest,
                zerocopy: false,
            },
            (Stage::Queue, Scheme::ZcNaive) => Op::Send {
                buf: rest,
                zerocopy: true,
            },
            (Stage::Queue, Scheme::SpliceDrain) => Op::Vmsplice {
                buf: rest,
                gift: false,
            },
            (Stage::Splice, _) => Op::Splice {
                len: self.queued - self.spliced,
            },
            (Stage::Drain, _) => Op::Siocoutq,
        }
    }

    fn handle(&mut self, o: Outcome) {
        if self.n == self.chunks {
            self.reused = true;
            return;
        }
        if let Outcome::Err(e) = o {
            self.failed = Some(format!("{:?} failed: {e}", self.stage));
            return;
        }
        match self.stage {
            Stage::Enable => self.stage = Stage::Fill,
            Stage::Fill => self.stage = Stage::Queue,
            Stage::Queue => {
                let Outcome::Done(n) = o else { return };
                self.queued += n;
                if self.scheme == Scheme::SpliceDrain {
                    self.stage = Stage::Splice;
                } else if self.queued == self.chunk {
                    self.next_chunk();
                }
            }
            Stage::Splice => {
                let Outcome::Done(n) = o else { return };
                self.spliced += n;
                if self.spliced == self.queued {
                    self.stage = if self.queued == self.chunk {
                        Stage::Drain
                    } else {
                        Stage::Queue
                    };
                }
            }
            Stage::Drain => {
                if o == Outcome::Done(0) {
                    self.next_chunk();
                }
            }
        }
    }
}

/// Starts this test binary again as a helper process that runs only the ignored test
/// `test` with `env=1` set, and waits (condition: its `READY …` line, within 30 s) for
/// what it reports after `READY ` — the resources it holds until it is killed.
pub fn start_helper(test: &str, env: &str) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            test,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(env, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn helper");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // libtest prints `test NAME ... ` on the same line.
            if let Some((_, rest)) = line.split_once("READY ") {
                let _ = tx.send(rest.trim().to_string());
                return;
            }
        }
    });
    let ready = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the helper {test} did not report READY within 30 s"));
    (child, ready)
}
