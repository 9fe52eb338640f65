//! What a system call's answer says about the buffer pages — and what it does not.
//!
//! A real kernel does not show who holds a page, but every call a policy makes carries a
//! known meaning; on the kernel backend the timeline spells it out next to the returned
//! value, so a recorded run teaches the same lesson as a model counterexample. The match
//! is exhaustive: a new [`Op`] does not compile until it says what it means.

use zcsafe_policy::Op;

/// The meaning of `op` for the pages it names; `None` for an abort, which means nothing.
pub fn of(op: &Op) -> Option<&'static str> {
    Some(match op {
        Op::Fill { .. } => {
            "the application wrote new stream bytes into these buffer pages (the reuse \
         moment); any kernel reference still pointing at them now carries the new bytes"
        }
        Op::Send { zerocopy: true, .. } => {
            "the socket now references these user pages; returning says nothing about when it \
         lets go — only an errqueue notification covering this send does"
        }
        Op::Send {
            zerocopy: false, ..
        } => {
            "send() copied the bytes into the socket's own memory before returning, so the \
         buffer is free at once"
        }
        Op::EnableZerocopy => {
            "MSG_ZEROCOPY is now allowed on this socket; each zero-copy send that queues bytes \
         takes the next notification counter"
        }
        Op::Vmsplice { gift: true, .. } => {
            "the pipe now references the user pages, gifted: the application promised never to \
         write them again"
        }
        Op::Vmsplice { gift: false, .. } => {
            "the pipe now references the user pages (unless this kernel's vmsplice copies); \
         returning means the pipe took them, not that anyone is done with them"
        }
        Op::Splice { .. } => {
            "the page references moved from the pipe to the socket; they stay until the peer \
         acknowledges the bytes, and on local delivery until the receiver reads them"
        }
        Op::Siocoutq => {
            "bytes written but not yet acknowledged; 0 means the peer ACKed everything, not \
         that the pages are free — on local delivery the receiver's queue may still \
         reference them"
        }
        Op::ReadErrqueue { .. } => {
            "a notification: the kernel dropped its last reference to the pages of the sends \
         in this counter range"
        }
        Op::UringSendZc { .. } => {
            "submitted: the kernel references the pages from when the send runs until its \
         NOTIF CQE"
        }
        Op::UringSend {
            msg_zerocopy: true, ..
        } => {
            "submitted: on an SO_ZEROCOPY socket the kernel references the pages after this \
         request's one CQE, until a notification on the socket's error queue — never on \
         the ring"
        }
        Op::UringSend { .. } => {
            "submitted: the kernel copies the bytes when the send runs; its CQE frees the buffer"
        }
        Op::UringWaitCqe => {
            "a send CQE (F_MORE) only says the bytes are queued; the NOTIF CQE says the pages \
         are released"
        }
        Op::CreateFile { .. } => {
            "a fresh tmpfs file: its page-cache pages are referenced by nobody yet"
        }
        Op::WriteFile { .. } => {
            "the file's page-cache pages now hold these bytes — if a sendfile still references \
         them, the receiver may get the new bytes"
        }
        Op::Sendfile { .. } => {
            "the socket now references the file's page-cache pages, not a copy of them, until \
         the bytes are acknowledged (or read, on local delivery)"
        }
        Op::RemoveFile { .. } => {
            "the file is gone from the namespace; skbs keep their own page references, and \
         nobody can write those pages any more"
        }
        Op::Munmap { .. } => {
            "the pages leave the address space; those the kernel still references stay alive, \
         unchanged, until it lets go"
        }
        Op::Mmap { .. } => {
            "fresh zeroed pages at the same addresses: writing them cannot touch pages the \
         kernel holds"
        }
        Op::WaitAppAck { .. } => {
            "the receiver says it consumed these bytes: they have left every kernel queue"
        }
        Op::Finish => "the whole stream is handed to the kernel and the write side shut down",
        Op::Abort(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcsafe_policy::{Abort, Region};

    #[test]
    fn zero_copy_and_copying_sends_mean_different_things() {
        let buf = Region::new(0, 4096);
        let zc = of(&Op::Send {
            buf,
            zerocopy: true,
        })
        .unwrap();
        let copy = of(&Op::Send {
            buf,
            zerocopy: false,
        })
        .unwrap();
        assert!(zc.contains("notification") && copy.contains("copied"));
        assert_eq!(of(&Op::Abort(Abort::Failed("x".into()))), None);
    }
}
