//! Reproducers of buffer-reuse bugs that public projects shipped.
//!
//! Each module is one bug: a policy that does what the shipped code did, the fixed
//! policy beside it, the source (issue or pull request) in its doc comment, and the
//! smallest change to the standard model scenario that gives the bug room to happen
//! ([`Tuning`]). zcsafe must find every buggy variant (corrupt or stuck) and clear every
//! fixed one; `zcsafe-model`'s tests assert both.
//!
//! These are deliberately *not* in [`catalogue`](crate::catalogue): the catalogue names
//! are the fixed vocabulary of reports; bugs are a second list, [`all`].

pub mod glommio_46;
pub mod grpc_30320;
pub mod io_uring_354;
pub mod liburing_643;
pub mod netty_15599;
pub mod netty_17238;
pub mod qemu_multifd_header;
pub mod rapidgzip_39;
pub mod spdk_3600;
pub mod spdk_3610;
pub mod tokio_io_uring_249;

use crate::Entry;
use zcsafe_policy::TransportClass;

/// What a bug needs beyond the standard scenario. Fields left `None`/`false`/0 keep the
/// standard value. Expressed in the kernel's terms, so any backend can apply them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuning {
    /// Width of the `MSG_ZEROCOPY` counter (wrap-around needs a few sends per wrap).
    pub zc_id_bits: Option<u8>,
    /// Zero-copy notifications optmem can hold; 0 means something else (other socket
    /// options, filters) has used the socket's optmem up.
    pub zc_optmem: Option<u8>,
    /// The pipe is read by a local process instead of being spliced to a socket.
    pub pipe_reader: bool,
    /// io_uring `SEND_ZC` requests that may fail before running.
    pub uring_failures: u8,
    /// Pages per send (the standard scenario's is one): a request of several pages can
    /// be part-queued. The buffer keeps two slots of it and the stream three chunks.
    pub chunk: Option<u64>,
    /// Pages the send buffer holds (`sk_sndbuf`).
    pub sndbuf: Option<u64>,
    /// io_uring linked timeouts that may fire (`IORING_OP_LINK_TIMEOUT`).
    pub uring_link_timeouts: u8,
}

impl std::fmt::Display for Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(b) = self.zc_id_bits {
            parts.push(format!("a {b}-bit zero-copy counter"));
        }
        if let Some(o) = self.zc_optmem {
            parts.push(format!("optmem for {o} notification(s)"));
        }
        if self.pipe_reader {
            parts.push("a process reading the pipe".to_string());
        }
        if self.uring_failures > 0 {
            parts.push(format!(
                "{} failing SEND_ZC request(s)",
                self.uring_failures
            ));
        }
        if let Some(c) = self.chunk {
            parts.push(format!("{c}-page sends"));
        }
        if let Some(b) = self.sndbuf {
            parts.push(format!("a {b}-page send buffer"));
        }
        if self.uring_link_timeouts > 0 {
            parts.push(format!(
                "{} linked timeout(s) firing",
                self.uring_link_timeouts
            ));
        }
        if parts.is_empty() {
            f.write_str("the standard scenario")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// One shipped bug: the buggy policy, the fix, and where it comes from.
#[derive(Clone, Debug)]
pub struct Bug {
    /// Short id, e.g. `spdk#3600`.
    pub id: &'static str,
    /// Public sources, `owner/repo#number`.
    pub sources: &'static [&'static str],
    /// One line: what went wrong.
    pub what: &'static str,
    pub buggy: Entry,
    pub fixed: Entry,
    pub tuning: Tuning,
    /// Transport classes in which the bug shows (and the fix is checked).
    pub transports: &'static [TransportClass],
}

/// Every bug reproducer.
pub fn all() -> Vec<Bug> {
    vec![
        spdk_3600::bug(),
        grpc_30320::bug(),
        netty_15599::bug(),
        netty_17238::bug(),
        tokio_io_uring_249::bug(),
        rapidgzip_39::bug(),
        io_uring_354::bug(),
        spdk_3610::bug(),
        qemu_multifd_header::bug(),
        glommio_46::bug(),
        liburing_643::bug(),
    ]
}

/// The bug whose buggy or fixed policy is named `name`, and that entry.
pub fn find(name: &str) -> Option<(Bug, Entry)> {
    all().into_iter().find_map(|b| {
        [b.buggy, b.fixed]
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| (b.clone(), e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_not_in_the_catalogue() {
        let mut names: Vec<&str> = all()
            .iter()
            .flat_map(|b| [b.buggy.name, b.fixed.name])
            .collect();
        assert_eq!(names.len(), 22);
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 22);
        for n in names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{n}");
            assert!(crate::find(n).is_none(), "{n} must not be in the catalogue");
            assert_eq!(find(n).unwrap().1.name, n);
        }
    }
}
