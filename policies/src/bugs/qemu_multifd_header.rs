//! QEMU multifd zero-copy migration (the 2022 `zero-copy-send` series, QEMU 7.1): the
//! packet header went out in the same zero-copy `writev` as the guest pages and was
//! rewritten for the next packet while the kernel still referenced it.
//!
//! `multifd_send_thread` (`migration/multifd.c`) filled the channel's one packet buffer
//! (`p->packet`: flags, page count, offsets) for every packet and put it in `p->iov[0]`,
//! ahead of the pages, of one `qio_channel_writev_all` that
//! `qio_channel_socket_writev` sent with `MSG_ZEROCOPY` once `zero-copy-send` was on.
//! Notifications were only waited for at each sync (`qio_channel_flush`), not before the
//! next packet's header was written into the same buffer: a header still queued went
//! out with the next packet's contents, and the destination saw a wrong header and
//! aborted the migration. Fix: "multifd: Send header packet without flags if
//! zero-copy-send is enabled" (Leonardo Bras, 2022): with zero copy the header is sent
//! first with a plain, copying `qio_channel_write_all`, and only the pages go in the
//! zero-copy `writev` — the code still reads `/* Send header first, without zerocopy */`
//! (`multifd_send_thread`, later `multifd_nocomp_send_prepare`).
//!
//! Both policies are `zc-completion` with multifd's layout (`Pieces::HeaderAndPages`):
//! slot 0 is the header buffer, rewritten for every packet, the other slots hold pages,
//! each page slot reused only once a notification covers it (the pages are what the
//! series got right: the guest's own writes to them are caught by dirty tracking and
//! resent, which is not a reuse of an in-flight buffer in this sense). `Op::Send` takes
//! one region, so the buggy `writev` of header and pages is two `MSG_ZEROCOPY` sends
//! here; the header's pages are referenced until their own skb is freed either way
//! (`skb_zerocopy_iter_stream`), which is what the bug is about.

use super::{Bug, Tuning};
use crate::zc_completion::{HeaderSend, Knobs, Pieces, ZcCompletion};
use crate::{BuildError, Catalogued, Entry, Feature};
use zcsafe_policy::{Expectation, Geometry, Profile, ReceiveWindow, TransportClass};

const fn multifd(header: HeaderSend) -> Knobs {
    Knobs {
        pieces: Pieces::HeaderAndPages { header },
        ..Knobs::DOCUMENTED
    }
}

/// The series as first merged: the header in the zero-copy write, rewritten per packet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QemuMultifdZcHeader(ZcCompletion);

/// The fix: the header with a plain copying write, the pages zero-copy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QemuMultifdHeaderCopied(ZcCompletion);

impl Catalogued for QemuMultifdZcHeader {
    const NAME: &'static str = "qemu-multifd-zc-header";
    const SUMMARY: &'static str =
        "multifd packets: header buffer and pages sent with MSG_ZEROCOPY, header rewritten per packet";
    const ORIGIN: &'static str =
        "QEMU 7.1 multifd zero-copy-send (migration/multifd.c, multifd_send_thread)";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    // Local delivery copies zero-copy frags on arrival (`skb_orphan_frags_rx`): the
    // header is at risk while it waits unsent, as for `zc-naive`.
    const WINDOW: ReceiveWindow = ReceiveWindow::Kernel;

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        ZcCompletion::build(Self::NAME, g, multifd(HeaderSend::ZerocopyUntracked)).map(Self)
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::corrupt(
            "the next packet's header is written into the header buffer while skbs of the \
             previous header, not yet sent, still reference its pages",
        )
    }
}

impl Catalogued for QemuMultifdHeaderCopied {
    const NAME: &'static str = "qemu-multifd-header-copied";
    const SUMMARY: &'static str =
        "multifd packets: header sent with a copying write, pages with MSG_ZEROCOPY and waited for";
    const ORIGIN: &'static str =
        "QEMU multifd: Send header packet without flags if zero-copy-send is enabled (2022)";
    const NEEDS: &'static [Feature] = &[Feature::MsgZerocopy];
    const WINDOW: ReceiveWindow = ReceiveWindow::Kernel;

    fn new(g: &Geometry) -> Result<Self, BuildError> {
        ZcCompletion::build(Self::NAME, g, multifd(HeaderSend::Copied)).map(Self)
    }

    fn expect(_: TransportClass, _: &Profile) -> Expectation {
        Expectation::safe(
            "the kernel copied the header when the write returned, and a page slot is \
             reused only after a notification covers its send",
        )
    }
}

crate::delegate_policy!(QemuMultifdZcHeader, QemuMultifdHeaderCopied);

pub fn bug() -> Bug {
    Bug {
        id: "qemu multifd zero-copy-send",
        sources: &["qemu/qemu migration/multifd.c (2022 zero-copy-send series and its header fix)"],
        what: "the packet header sent zero-copy with the pages and rewritten for the next packet while still queued",
        buggy: Entry::of::<QemuMultifdZcHeader>(),
        fixed: Entry::of::<QemuMultifdHeaderCopied>(),
        tuning: Tuning::default(),
        transports: &[TransportClass::Local, TransportClass::Remote],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcsafe_policy::{Op, Outcome, Policy, Region};

    /// Every send op of a whole run, answering every call at once and every errqueue
    /// read with a notification for the oldest send.
    fn sends(mut p: impl Policy) -> Vec<(Region, bool)> {
        let mut out = Vec::new();
        let mut next = 0u32;
        let mut released = 0u32;
        for _ in 0..100 {
            let op = p.poll_op();
            let outcome = match &op {
                Op::EnableZerocopy | Op::Fill { .. } => Outcome::Ok,
                Op::Send { buf, zerocopy } => {
                    out.push((*buf, *zerocopy));
                    next += u32::from(*zerocopy);
                    Outcome::Done(buf.len)
                }
                Op::ReadErrqueue { .. } if released < next => {
                    let id = released % 2;
                    released += 1;
                    Outcome::Zc(Some(zcsafe_policy::ZcNotification {
                        lo: id,
                        hi: id,
                        copied: false,
                    }))
                }
                _ => break,
            };
            p.handle(outcome);
        }
        out
    }

    #[test]
    fn headers_live_in_slot_0_pages_in_the_others_and_only_the_fix_copies_the_header() {
        let g = Geometry::model_standard();
        let r = |o| Region::new(o, 1);
        assert_eq!(
            sends(QemuMultifdZcHeader::new(&g).unwrap()),
            vec![
                (r(0), true),
                (r(1), true),
                (r(0), true),
                (r(1), true),
                (r(0), true)
            ]
        );
        assert_eq!(
            sends(QemuMultifdHeaderCopied::new(&g).unwrap()),
            vec![
                (r(0), false),
                (r(1), true),
                (r(0), false),
                (r(1), true),
                (r(0), false)
            ]
        );
    }

    #[test]
    fn a_one_slot_buffer_has_no_room_for_pages() {
        let g = Geometry {
            buffer: 1,
            ..Geometry::model_standard()
        };
        assert!(QemuMultifdZcHeader::new(&g).is_err());
    }
}
