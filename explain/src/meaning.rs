//! What a system call's answer says about the buffer pages — and what it does not.
//!
//! A real kernel does not show who holds a page, but every call a policy makes carries a
//! known meaning; on the kernel backend the timeline spells it out next to the returned
//! value, so a recorded run teaches the same lesson as a model counterexample. Keyed by
//! [`Op::name`](zcsafe_policy::Op::name), the word a trace's action starts with.

/// `(operation name, meaning)`; longer names first where one is a prefix of another.
const MEANINGS: &[(&str, &str)] = &[
    (
        "fill",
        "the application wrote new stream bytes into these buffer pages (the reuse \
         moment); any kernel reference still pointing at them now carries the new bytes",
    ),
    (
        "send(MSG_ZEROCOPY)",
        "the socket now references these user pages; returning says nothing about when it \
         lets go — only an errqueue notification covering this send does",
    ),
    (
        "send",
        "send() copied the bytes into the socket's own memory before returning, so the \
         buffer is free at once",
    ),
    (
        "setsockopt(SO_ZEROCOPY)",
        "MSG_ZEROCOPY is now allowed on this socket; each zero-copy send that queues bytes \
         takes the next notification counter",
    ),
    (
        "vmsplice(GIFT)",
        "the pipe now references the user pages, gifted: the application promised never to \
         write them again",
    ),
    (
        "vmsplice",
        "the pipe now references the user pages (unless this kernel's vmsplice copies); \
         returning means the pipe took them, not that anyone is done with them",
    ),
    (
        "splice",
        "the page references moved from the pipe to the socket; they stay until the peer \
         acknowledges the bytes, and on local delivery until the receiver reads them",
    ),
    (
        "ioctl(SIOCOUTQ)",
        "bytes written but not yet acknowledged; 0 means the peer ACKed everything, not \
         that the pages are free — on local delivery the receiver's queue may still \
         reference them",
    ),
    (
        "recvmsg(MSG_ERRQUEUE)",
        "a notification: the kernel dropped its last reference to the pages of the sends \
         in this counter range",
    ),
    (
        "io_uring SEND_ZC",
        "submitted: the kernel references the pages from when the send runs until its \
         NOTIF CQE",
    ),
    (
        "io_uring wait CQE",
        "a send CQE (F_MORE) only says the bytes are queued; the NOTIF CQE says the pages \
         are released",
    ),
    (
        "create file",
        "a fresh tmpfs file: its page-cache pages are referenced by nobody yet",
    ),
    (
        "pwrite",
        "the file's page-cache pages now hold these bytes — if a sendfile still references \
         them, the receiver may get the new bytes",
    ),
    (
        "sendfile",
        "the socket now references the file's page-cache pages, not a copy of them, until \
         the bytes are acknowledged (or read, on local delivery)",
    ),
    (
        "unlink",
        "the file is gone from the namespace; skbs keep their own page references, and \
         nobody can write those pages any more",
    ),
    (
        "munmap",
        "the pages leave the address space; those the kernel still references stay alive, \
         unchanged, until it lets go",
    ),
    (
        "mmap",
        "fresh zeroed pages at the same addresses: writing them cannot touch pages the \
         kernel holds",
    ),
    (
        "wait app-ack",
        "the receiver says it consumed these bytes: they have left every kernel queue",
    ),
    (
        "finish",
        "the whole stream is handed to the kernel and the write side shut down",
    ),
];

/// The meaning of the operation an action text starts with, if it is one of a policy's.
pub fn of_action(action: &str) -> Option<&'static str> {
    MEANINGS
        .iter()
        .find(|(name, _)| {
            action
                .strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        })
        .map(|&(_, meaning)| meaning)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcsafe_policy::{Abort, Op, Region};

    /// One of every operation, so a new `Op` variant without a meaning fails here.
    fn every_op() -> Vec<Op> {
        let buf = Region::new(0, 4096);
        vec![
            Op::Fill { buf, stream: 0 },
            Op::Send {
                buf,
                zerocopy: false,
            },
            Op::Send {
                buf,
                zerocopy: true,
            },
            Op::EnableZerocopy,
            Op::Vmsplice { buf, gift: false },
            Op::Vmsplice { buf, gift: true },
            Op::Splice { len: 1 },
            Op::Siocoutq,
            Op::ReadErrqueue { block: true },
            Op::UringSendZc { buf, user_data: 1 },
            Op::UringWaitCqe,
            Op::CreateFile { file: 0 },
            Op::WriteFile {
                file: 0,
                region: buf,
                stream: 0,
            },
            Op::Sendfile {
                file: 0,
                region: buf,
            },
            Op::RemoveFile { file: 0 },
            Op::Munmap { buf },
            Op::Mmap { buf },
            Op::WaitAppAck { beyond: 0 },
            Op::Finish,
            Op::Abort(Abort::Failed("x".into())),
        ]
    }

    #[test]
    fn every_operation_but_abort_has_its_own_meaning() {
        for op in every_op() {
            let shown = op.to_string();
            match op {
                Op::Abort(_) => assert_eq!(of_action(&shown), None),
                _ => {
                    let meaning = of_action(&shown).unwrap_or_else(|| panic!("{shown}"));
                    let (name, _) = MEANINGS.iter().find(|(_, m)| *m == meaning).unwrap();
                    assert_eq!(*name, op.name(), "{shown} found the meaning of {name}");
                }
            }
        }
    }

    #[test]
    fn a_name_only_matches_a_whole_word() {
        assert_eq!(of_action("sending"), None);
        assert_eq!(of_action("read 10 bytes"), None);
    }
}
