//! The words of a step: what it did (the action line) and why it matters in the
//! kernel's terms (the note), written from the typed event — the one place a trace
//! becomes text.
//!
//! Every backend's steps read the same here, because they are the same events: the
//! model's counterexample, the simulator's run and a kernel recording differ only in
//! what they can see (page holders, clocks).

use zcsafe_policy::{
    Answer, Completion, Event, HeldPage, Holder, Op, Payload, RemoteDevice, Step, StreamEnd,
    TransportClass,
};

/// The action line: the call and its answer, or the event.
pub fn action(e: &Event) -> String {
    match e {
        Event::Call { op, answer, .. } => match answer {
            Answer::Returned(o) => format!("{op} → {o}"),
            Answer::Fault(f) => format!("{op} → fault: {f}"),
            Answer::Stuck(why) => format!("{op} → stuck: {why}"),
            Answer::Failed(why) => format!("{op} → failed: {why}"),
            Answer::None => op.to_string(),
        },
        Event::Unrecorded { calls } => format!("… {calls} more sender calls not recorded"),
        Event::Transmit { seq, .. } => format!("transmit seq {seq}"),
        Event::Retransmit { seq, .. } => format!("retransmit seq {seq}"),
        Event::Ack { ack, window } => format!("ACK {ack} (window {window})"),
        Event::ZeroWindowProbe => "zero-window probe".into(),
        Event::UringExec {
            user_data,
            plain: false,
            part: false,
        } => format!("io_uring runs SEND_ZC #{user_data}"),
        Event::UringExec {
            user_data,
            plain: false,
            part: true,
        } => format!("io_uring runs SEND_ZC #{user_data}, part of it fits"),
        Event::UringExec {
            user_data,
            plain: true,
            ..
        } => format!("io_uring runs SEND #{user_data}"),
        Event::UringLinkTimeout {
            user_data,
            timeout,
            queued,
        } => format!(
            "LINK_TIMEOUT #{timeout} fires: SEND_ZC #{user_data} cancelled after {queued} queued"
        ),
        Event::UringTimeoutDisarmed { timeout } => {
            format!("io_uring posts LINK_TIMEOUT #{timeout}, disarmed (-ECANCELED)")
        }
        Event::UringFail { user_data } => {
            format!("io_uring fails SEND_ZC #{user_data} (-ECANCELED)")
        }
        Event::UringNotifFlush { user_data } => {
            format!("io_uring posts NOTIF #{user_data} of the failed SEND_ZC")
        }
        Event::TxComplete { seq, .. } => format!("DMA + TX completion of seq {seq}"),
        Event::Lose { seq } => format!("drop seq {seq}"),
        Event::Deliver { seq, .. } => format!("receive seq {seq}"),
        Event::RcvbufGrow { window } => format!("autotuning grows the window to {window}"),
        Event::Read { seq, from_pipe, .. } => match from_pipe {
            true => format!("read stream page {seq} from the pipe"),
            false => format!("read stream page {seq}"),
        },
        Event::Accepted {
            reader,
            pause_ms,
            slice,
        } => format!("accepted; reader {reader} (pause {pause_ms} ms, {slice} bytes per read)"),
        Event::Checked {
            offset,
            len,
            corrupt_words,
            first,
        } => {
            let mut s = format!("read {len} bytes at stream offset {offset}");
            if *corrupt_words > 0 {
                s += &format!(": {corrupt_words} corrupt words");
            }
            if let Some(m) = first {
                s += &format!(", first at {}", m.offset);
                if let Some(f) = m.meant_for {
                    s += &format!(" (bytes meant for {f})");
                }
            }
            s
        }
        Event::Ended {
            end,
            bytes,
            reads,
            corrupt_words,
        } => format!(
            "{} after {bytes} bytes in {reads} reads; {corrupt_words} corrupt words",
            ending(*end)
        ),
        Event::Legacy { action, .. } => action.clone(),
    }
}

/// The note: what the step means in kernel terms, and the completions it made visible.
/// `class` decides where a transmitted clone goes, `device` (the remote class's) who
/// reads it there.
pub fn note(step: &Step, class: TransportClass, device: RemoteDevice) -> String {
    let local = class == TransportClass::Local;
    let mut parts = Vec::new();
    let own = match &step.event {
        Event::Call { op, wrote_held, .. } if !wrote_held.is_empty() => {
            let what = match op {
                Op::WriteFile { .. } => "REWRITE WHILE HELD",
                _ => "REUSE WHILE HELD",
            };
            format!("{what}: {}", held(wrote_held))
        }
        Event::Transmit {
            payload,
            frags_copied,
            ..
        } => format!(
            "tcp_write_xmit {}; the original, {}, stays in the retransmit queue{}",
            if local {
                "hands a clone to the peer"
            } else {
                "puts a clone in the device TX ring"
            },
            carried(payload),
            copied_at_device(*frags_copied)
        ),
        Event::Retransmit {
            payload,
            frags_copied,
            ..
        } => format!(
            "the retransmission timer fires; the new clone reads {} again{}",
            carried(payload),
            copied_at_device(*frags_copied)
        ),
        Event::Ack { .. } => {
            "tcp_clean_rtx_queue frees acknowledged segments; SIOCOUTQ drops".into()
        }
        Event::ZeroWindowProbe => {
            "tcp_send_probe0: the peer advertised a closed window; ask whether it opened".into()
        }
        Event::UringExec {
            plain: false,
            part: false,
            ..
        } => "io_send_zc queues the pages and posts the send CQE (F_MORE)".into(),
        Event::UringExec {
            plain: false,
            part: true,
            ..
        } => "io_send_zc queues what the socket has room for (done_io) and waits in poll for the rest; no CQE yet".into(),
        Event::UringTimeoutDisarmed { .. } => {
            "io_disarm_next: the send completed first; task work completes its timeout".into()
        }
        Event::UringLinkTimeout { .. } => {
            "io_req_task_link_timeout cancels the send: -ETIME for the timeout, done_io (or -ECANCELED) with F_MORE for the send; the NOTIF waits for the queued pages".into()
        }
        Event::UringExec { plain: true, .. } => {
            "io_send → tcp_sendmsg_locked queues the bytes (the pages themselves with MSG_ZEROCOPY \
             on an SO_ZEROCOPY socket, released via the error queue) and posts its one CQE"
                .into()
        }
        Event::UringFail { .. } => {
            "io_sendrecv_fail posts the CQE with F_MORE: its notification will still follow".into()
        }
        Event::UringNotifFlush { .. } => {
            "io_send_zc_cleanup flushed the notif; task work posts it now".into()
        }
        Event::TxComplete { payload, .. } => match device {
            RemoteDevice::Nic => format!("the NIC reads {} and frees its clone", carried(payload)),
            RemoteDevice::Tun => format!(
                "the peer reads the TUN fd: tun_put_user takes {} and frees the clone",
                carried(payload)
            ),
        },
        Event::Lose { .. } => "the network loses the segment".into(),
        Event::RcvbufGrow { .. } => {
            "tcp_rcv_space_adjust grows sk_rcvbuf after a read; the wider window opens room for unread bytes".into()
        }
        Event::Deliver {
            payload,
            frags_copied,
            datagram: true,
            ..
        } => format!(
            "peer UDP queues the datagram, {}{} (no ACK)",
            carried(payload),
            if *frags_copied {
                ", after copying its MSG_ZEROCOPY frags (skb_orphan_frags_rx)"
            } else {
                ""
            }
        ),
        Event::Deliver {
            payload,
            in_order,
            frags_copied,
            ..
        } => format!(
            "peer TCP {} {}{} and ACKs",
            if *in_order {
                "queues"
            } else {
                "drops (not the next in order)"
            },
            carried(payload),
            if *frags_copied {
                " after copying its MSG_ZEROCOPY frags (skb_orphan_frags_rx)"
            } else {
                ""
            }
        ),
        Event::Read {
            seq,
            payload,
            from_pipe,
        } => {
            let verdict = match payload.content {
                Some(c) if c == *seq => "correct".to_string(),
                got => format!("WRONG: bytes of stream page {}", unit(got)),
            };
            match from_pipe {
                true => format!(
                    "the reading process copies {} out of the pipe (pipe_read): {verdict}",
                    carried(payload)
                ),
                false => format!("reads {}: {verdict}", carried(payload)),
            }
        }
        Event::Legacy { note, .. } => note.clone(),
        Event::Call { .. }
        | Event::Unrecorded { .. }
        | Event::Accepted { .. }
        | Event::Checked { .. }
        | Event::Ended { .. } => String::new(),
    };
    if !own.is_empty() {
        parts.push(own);
    }
    parts.extend(step.completions.iter().map(completion));
    parts.join("; ")
}

/// `12 ms` (simulated time, whole milliseconds) or `0.162 ms` (a kernel's wall clock).
pub fn time(at_us: u64) -> String {
    if at_us % 1000 == 0 {
        format!("{} ms", at_us / 1000)
    } else {
        format!("{:.3} ms", at_us as f64 / 1e3)
    }
}

/// How a received stream ended, in words.
pub fn ending(end: StreamEnd) -> &'static str {
    match end {
        StreamEnd::Eof => "EOF",
        StreamEnd::Failed => "read error",
        StreamEnd::Idle => "idle timeout",
        StreamEnd::NoConnection => "no connection",
    }
}

/// The holders as a list after "the": `write queue and the clone in flight`.
pub fn holders(h: &[Holder]) -> String {
    h.iter()
        .map(|&h| crate::sentence::holder_name(h))
        .collect::<Vec<_>>()
        .join(" and the ")
}

fn held(pages: &[HeldPage]) -> String {
    pages
        .iter()
        .map(|p| format!("{} is still held by the {}", p.page, holders(&p.by)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `buf[0] (now stream page 3)` or `a copy of stream page 2`.
/// A remote-class device, as a sentence names it.
pub fn device_name(d: RemoteDevice) -> &'static str {
    match d {
        RemoteDevice::Nic => "NIC",
        RemoteDevice::Tun => "TUN device",
    }
}

/// Where a remote-class device reads the pages, in the kernel's terms (a clause that
/// follows "which").
pub fn device_reads(d: RemoteDevice) -> &'static str {
    match d {
        RemoteDevice::Nic => "reads the pages by DMA at TX completion and holds retransmissions back until then",
        RemoteDevice::Tun => "copies zero-copy frags when it queues a segment (tun_net_xmit → skb_orphan_frags_rx → skb_copy_ubufs), reads other pages when the peer reads the fd (tun_put_user) and orphans the clone, so a retransmission need not wait for that read (skb_orphan)",
    }
}

/// What a TUN device did to a clone it queued: its zero-copy frags are copied there.
fn copied_at_device(frags_copied: bool) -> &'static str {
    match frags_copied {
        true => "; the TUN device copies the clone's zero-copy frags as it queues it (tun_net_xmit → skb_orphan_frags_rx): these bytes are final, and the completion counts as copied",
        false => "",
    }
}

fn carried(p: &Payload) -> String {
    match p.page {
        Some(page) => format!("{page} (now stream page {})", unit(p.content)),
        None => match p.content {
            Some(u) => format!("a copy of stream page {u}"),
            None => "a copy of zeroes".into(),
        },
    }
}

fn unit(u: Option<u64>) -> String {
    u.map_or("zeroes".into(), |u| u.to_string())
}

fn completion(c: &Completion) -> String {
    match c {
        Completion::Errqueue(n) => format!(
            "error queue now ends with notification [{}, {}]{}",
            n.lo,
            n.hi,
            if n.copied { " COPIED" } else { "" }
        ),
        Completion::Notif { user_data } => format!("io_uring posts NOTIF CQE #{user_data}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zcsafe_policy::{Mismatch, Outcome, Page, Region};

    #[test]
    fn calls_show_their_answer_and_reuse_names_the_holders() {
        let step = Step::new(Event::Call {
            op: Op::Fill {
                buf: Region::new(0, 1),
                stream: 2,
            },
            answer: Answer::Returned(Outcome::Ok),
            wrote_held: vec![HeldPage {
                page: Page::Buf(0),
                by: vec![Holder::PeerQueue],
            }],
        });
        assert_eq!(action(&step.event), "fill buf[0..1) with stream@2 → ok");
        assert_eq!(
            note(&step, TransportClass::Local, RemoteDevice::Nic),
            "REUSE WHILE HELD: buf[0] is still held by the peer receive queue"
        );
        let two = HeldPage {
            page: Page::Buf(1),
            by: vec![Holder::Retransmit, Holder::Wire],
        };
        assert_eq!(
            held(&[two]),
            "buf[1] is still held by the retransmit queue and the clone in flight"
        );
    }

    #[test]
    fn a_transmit_says_where_the_clone_goes() {
        let mut step = Step::new(Event::Transmit {
            seq: 1,
            payload: Payload {
                page: Some(Page::Buf(1)),
                content: Some(1),
            },
            frags_copied: false,
        });
        assert!(note(&step, TransportClass::Local, RemoteDevice::Nic).contains("to the peer"));
        assert!(note(&step, TransportClass::Remote, RemoteDevice::Nic).contains("device TX ring"));
        assert!(note(&step, TransportClass::Remote, RemoteDevice::Nic)
            .contains("buf[1] (now stream page 1)"));
        assert!(!note(&step, TransportClass::Remote, RemoteDevice::Nic).contains("tun_net_xmit"));
        if let Event::Transmit { frags_copied, .. } = &mut step.event {
            *frags_copied = true;
        }
        assert!(note(&step, TransportClass::Remote, RemoteDevice::Nic).contains("tun_net_xmit"));
    }

    #[test]
    fn a_kernel_check_reads_as_before() {
        let e = Event::Checked {
            offset: 114688,
            len: 16384,
            corrupt_words: 2048,
            first: Some(Mismatch {
                offset: 114688,
                meant_for: Some(245760),
            }),
        };
        assert_eq!(
            action(&e),
            "read 16384 bytes at stream offset 114688: 2048 corrupt words, first at 114688 (bytes meant for 245760)"
        );
        assert_eq!(time(12_000), "12 ms");
        assert_eq!(time(162), "0.162 ms");
    }
}
