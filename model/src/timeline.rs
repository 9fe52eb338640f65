//! Turning a path of moves into a [`Trace`] a person can follow, and rendering it.

use crate::checker::{take, Ending, Move, State, Step as Taken};
use crate::config::Scenario;
use crate::kernel::{Event, Kernel, Perform};
use crate::memory::DataRef;
use zcsafe_policy::{
    Actor, Holder, Op, PageHolders, Policy, Step, Trace, Verdict, TRACE_FORMAT_VERSION,
};

/// Replays `path` from `root`, describing each move and who holds each page after it.
pub(crate) fn replay<P: Policy>(
    s: &Scenario,
    root: State<P>,
    path: &[Move],
    ending: &Ending,
) -> Trace {
    let mut st = root;
    let mut steps = Vec::new();
    for (i, &mv) in path.iter().enumerate() {
        let before = st.kernel.clone();
        let (actor, mut action, mut note) = describe(s, &st, mv);
        let after = match take(s, &st, mv) {
            Taken::Next(n) => n,
            Taken::End(n, _) => {
                debug_assert_eq!(i, path.len() - 1, "only the last move ends a path");
                n
            }
            Taken::Blocked => unreachable!("paths only hold moves that were taken"),
        };
        if let Move::App = mv {
            if let Some(outcome) = app_outcome(s, &st) {
                action = format!("{action} → {outcome}");
            }
        }
        let fired = completions(&before, &after.kernel);
        if !fired.is_empty() {
            note = join(&note, &fired);
        }
        steps.push(Step {
            actor,
            action,
            note,
            holders: holders(&after.kernel),
        });
        st = after;
    }
    let (verdict, summary) = match ending {
        Ending::Corrupt(c) => (
            Verdict::Corrupt,
            match c.meant_for {
                Some(m) => format!(
                    "the receiver read stream page {} but got the bytes of page {m}: the buffer was reused {} page(s) too early",
                    c.offset,
                    m.saturating_sub(c.offset)
                ),
                None => format!("the receiver read stream page {} but got zeroes", c.offset),
            },
        ),
        Ending::Stuck => (
            Verdict::Stuck,
            match path.len() {
                0 => "nothing can happen at all".into(),
                _ => "the sender waits for something that can no longer happen".into(),
            },
        ),
        Ending::Fault(f) => (Verdict::Error, format!("the policy faulted: {f}")),
        Ending::Abort(zcsafe_policy::Abort::Unsupported(r)) => (Verdict::Unsupported, format!("unsupported: {r}")),
        Ending::Abort(zcsafe_policy::Abort::Failed(r)) => (Verdict::Error, format!("the policy gave up: {r}")),
    };
    Trace {
        format: TRACE_FORMAT_VERSION,
        policy: String::new(),
        transport: s.config.transport.name().into(),
        backend: "model".into(),
        profile: s.config.profile.name.clone(),
        geometry: s.geometry,
        steps,
        verdict,
        summary,
    }
}

fn app_outcome<P: Policy>(s: &Scenario, st: &State<P>) -> Option<String> {
    let op = st.policy.poll_op();
    if matches!(op, Op::Abort(_) | Op::Finish) {
        return None;
    }
    let mut k = st.kernel.clone();
    match k.perform(s, &op) {
        Perform::Done(o) => Some(o.to_string()),
        Perform::Fault(f) => Some(format!("fault: {f}")),
        Perform::Blocked => None,
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}; {b}")
    }
}

/// Notifications and CQEs that appeared during a move.
fn completions(before: &Kernel, after: &Kernel) -> String {
    let mut out = Vec::new();
    let new_notes = after.zc.errqueue.len() as i64 - before.zc.errqueue.len() as i64;
    if new_notes > 0
        || (after.zc.uargs.len() < before.zc.uargs.len() && !after.zc.errqueue.is_empty())
    {
        if let Some(n) = after.zc.errqueue.back() {
            out.push(format!(
                "error queue now ends with notification [{}, {}]{}",
                n.lo,
                n.hi,
                if n.copied { " COPIED" } else { "" }
            ));
        }
    }
    for c in after
        .zc
        .cq
        .iter()
        .skip(before.zc.cq.len().min(after.zc.cq.len()))
    {
        if c.notif {
            out.push(format!("io_uring posts NOTIF CQE #{}", c.user_data));
        }
    }
    out.join("; ")
}

/// What a move does, in words, from the state before it.
fn describe<P: Policy>(s: &Scenario, st: &State<P>, mv: Move) -> (Actor, String, String) {
    let k = &st.kernel;
    let local = s.config.transport == zcsafe_policy::TransportClass::Local;
    let page = |r: DataRef| -> String {
        match r {
            DataRef::Copied(c) => match c.stream_unit() {
                Some(u) => format!("a copy of stream page {u}"),
                None => "a copy of zeroes".into(),
            },
            r => format!(
                "{} (now stream page {})",
                r.label(),
                show(k.mem.read(r).stream_unit())
            ),
        }
    };
    match mv {
        Move::App => {
            let op = st.policy.poll_op();
            let mut note = String::new();
            if let Op::Fill { buf, .. } = op {
                let held: Vec<String> = (buf.offset..buf.end())
                    .filter_map(|p| {
                        let h = k.holders(DataRef::User(p as u16));
                        (!h.is_empty())
                            .then(|| format!("buf[{p}] is still held by the {}", names(&h)))
                    })
                    .collect();
                if !held.is_empty() {
                    note = format!("REUSE WHILE HELD: {}", held.join(", "));
                }
            }
            if let Op::WriteFile { file, region, .. } = op {
                let held: Vec<String> = (region.offset..region.end())
                    .filter_map(|p| {
                        let h = k.holders(DataRef::File(file, p as u16));
                        (!h.is_empty())
                            .then(|| format!("file{file}[{p}] is still held by the {}", names(&h)))
                    })
                    .collect();
                if !held.is_empty() {
                    note = format!("REWRITE WHILE HELD: {}", held.join(", "));
                }
            }
            (Actor::App, op.to_string(), note)
        }
        Move::Kernel(ev) => match ev {
            Event::Transmit => {
                let seg = k.sock.write_queue[0];
                let to = if local {
                    "hands a clone to the peer"
                } else {
                    "puts a clone in the device TX ring"
                };
                (
                    Actor::Tcp,
                    format!("transmit seq {}", seg.seq),
                    format!(
                        "tcp_write_xmit {to}; the original, {}, stays in the retransmit queue",
                        page(seg.data)
                    ),
                )
            }
            Event::DeviceComplete => {
                let seg = k.net.ring[0];
                (
                    Actor::Device,
                    format!("DMA + TX completion of seq {}", seg.seq),
                    format!("the NIC reads {} and frees its clone", page(seg.data)),
                )
            }
            Event::Deliver => {
                let seg = k.net.wire[0];
                let verb = if seg.seq == k.peer.rcv_nxt {
                    "queues"
                } else {
                    "drops (not the next in order)"
                };
                let copy = if local && seg.notif.is_some() && s.config.profile.zerocopy_local_copies
                {
                    " after copying its MSG_ZEROCOPY frags (skb_orphan_frags_rx)"
                } else {
                    ""
                };
                (
                    Actor::Peer,
                    format!("receive seq {}", seg.seq),
                    format!("peer TCP {verb} {}{copy} and ACKs", page(seg.data)),
                )
            }
            Event::Lose => (
                Actor::Wire,
                format!("drop seq {}", k.net.wire[0].seq),
                "the network loses the segment".into(),
            ),
            Event::Ack => {
                let (ack, wnd) = k.net.ack.expect("enabled");
                (
                    Actor::Tcp,
                    format!("ACK {ack} (window {wnd})"),
                    "tcp_clean_rtx_queue frees acknowledged segments; SIOCOUTQ drops".into(),
                )
            }
            Event::Retransmit => {
                let seg = k.sock.rtx[0];
                (
                    Actor::Tcp,
                    format!("retransmit seq {}", seg.seq),
                    format!(
                        "the retransmission timer fires; the new clone reads {} again",
                        page(seg.data)
                    ),
                )
            }
            Event::Read => {
                let (seq, data, _) = k.peer.queue[0];
                let got = k.mem.read(data).stream_unit();
                let verdict = if got == Some(seq as u64) {
                    "correct".to_string()
                } else {
                    format!("WRONG: bytes of stream page {}", show(got))
                };
                (
                    Actor::Receiver,
                    format!("read stream page {seq}"),
                    format!("reads {}: {verdict}", page(data)),
                )
            }
            Event::PipeRead => {
                let data = k.pipe.bufs[0];
                let seq = k.peer.consumed as u64;
                let got = k.mem.read(data).stream_unit();
                let verdict = if got == Some(seq) {
                    "correct".to_string()
                } else {
                    format!("WRONG: bytes of stream page {}", show(got))
                };
                (
                    Actor::Receiver,
                    format!("read stream page {seq} from the pipe"),
                    format!(
                        "the reading process copies {} out of the pipe (pipe_read): {verdict}",
                        page(data)
                    ),
                )
            }
            Event::UringFail(i) => {
                let sqe = k.zc.sq[i as usize];
                (
                    Actor::Tcp,
                    format!("io_uring fails SEND_ZC #{} (-ECANCELED)", sqe.user_data),
                    "io_sendrecv_fail posts the CQE with F_MORE: its notification will still follow".into(),
                )
            }
            Event::UringNotifFlush => (
                Actor::Tcp,
                format!(
                    "io_uring posts NOTIF #{} of the failed SEND_ZC",
                    k.zc.failed_notifs[0]
                ),
                "io_send_zc_cleanup flushed the notif; task work posts it now".into(),
            ),
            Event::UringExec(i) => {
                let sqe = k.zc.sq[i as usize];
                (
                    Actor::Tcp,
                    format!("io_uring runs SEND_ZC #{}", sqe.user_data),
                    "io_send_zc queues the pages and posts the send CQE (F_MORE)".into(),
                )
            }
        },
    }
}

fn show(u: Option<u64>) -> String {
    u.map_or("zeroes".into(), |u| u.to_string())
}

fn names(h: &[Holder]) -> String {
    h.iter().map(|h| h.name()).collect::<Vec<_>>().join(" and ")
}

fn holders(k: &Kernel) -> Vec<PageHolders> {
    k.mem
        .pages()
        .into_iter()
        .map(|(r, content)| PageHolders {
            page: r.label(),
            content: content.and_then(|c| c.stream_unit()),
            holders: k.holders(r),
        })
        .collect()
}

/// Renders a trace as a text timeline, one line per step.
pub fn render(trace: &Trace) -> String {
    let mut out = String::new();
    let steps = &trace.steps;
    let w = steps
        .iter()
        .map(|s| s.action.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    for (i, s) in steps.iter().enumerate() {
        out.push_str(&format!(
            "{:>3}  {:<8} {:<w$}",
            i + 1,
            s.actor.name(),
            s.action
        ));
        let held: Vec<String> = s
            .holders
            .iter()
            .filter(|p| !p.holders.is_empty())
            .map(|p| {
                format!(
                    "{}={} held by {}",
                    p.page,
                    p.content.map_or("0".into(), |c| format!("s{c}")),
                    p.holders
                        .iter()
                        .map(|h| short(*h))
                        .collect::<Vec<_>>()
                        .join("+")
                )
            })
            .collect();
        if !held.is_empty() {
            out.push_str(&format!("  [{}]", held.join(", ")));
        }
        out.push('\n');
        if !s.note.is_empty() {
            out.push_str(&format!("{:>3}  {:<8} ↳ {}\n", "", "", s.note));
        }
    }
    out.push_str(&format!("  => {}: {}\n", trace.verdict, trace.summary));
    out
}

fn short(h: Holder) -> &'static str {
    match h {
        Holder::Pipe => "pipe",
        Holder::WriteQueue => "wq",
        Holder::Retransmit => "rtx",
        Holder::DeviceRing => "ring",
        Holder::Wire => "wire",
        Holder::PeerQueue => "peer",
        Holder::UringSubmission => "sq",
    }
}
