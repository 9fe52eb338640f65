//! The runtime's events as findings in the results shape (format 2): one `corrupt`
//! finding per premature write; without any, one finding that says what was tracked —
//! `safe` only when submissions were tracked (the hazard existed), `inconclusive` when
//! none were, `error` when the program itself failed.

use super::symbol;
use serde_json::{json, Map, Value};
use zcsafe_policy::{Evidence, Finding, Verdict};
use zcsafe_sanitizer_events::{Event, PrematureWrite, Summary, Writer};

/// The policy name of sanitizer findings.
pub const POLICY: &str = "sanitize";

/// What every program is expected to do.
pub const EXPECTATION: &str =
    "a program must not write bytes the kernel still holds for a zero-copy send";

/// How the program ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Exit status 0.
    Success,
    /// It failed: why, in a few words.
    Failed(String),
}

/// The totals of every process's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Processes the runtime started in.
    pub processes: u64,
    /// Processes that wrote a summary (the others were killed or exec'd away).
    pub summaries: u64,
    /// The sum of the summaries.
    pub sum: Summary,
}

/// Adds up the summaries.
pub fn totals(events: &[Event<'_>]) -> Totals {
    let mut t = Totals::default();
    for e in events {
        match e {
            Event::Start(_) => t.processes += 1,
            Event::Summary(s) => {
                t.summaries += 1;
                let a = &mut t.sum;
                a.tracked += s.tracked;
                a.released += s.released;
                a.released_by_close += s.released_by_close;
                a.in_flight_at_exit += s.in_flight_at_exit;
                a.untracked += s.untracked;
                a.notifications += s.notifications;
                a.premature_writes += s.premature_writes;
                a.other_writes += s.other_writes;
                a.syscall_lifts += s.syscall_lifts;
                a.protect_failures += s.protect_failures;
                a.uring_rings += s.uring_rings;
                a.uring_enters += s.uring_enters;
                a.uring_untracked += s.uring_untracked;
                a.uring_released_unseen += s.uring_released_unseen;
            }
            Event::PrematureWrite(_) => {}
        }
    }
    t
}

fn counts(t: &Totals, program: &str) -> Map<String, Value> {
    let s = &t.sum;
    let v = json!({
        "program": program,
        "processes": t.processes,
        "summaries": t.summaries,
        "tracked": s.tracked,
        "released": s.released,
        "released_by_close": s.released_by_close,
        "in_flight_at_exit": s.in_flight_at_exit,
        "untracked": s.untracked,
        "notifications": s.notifications,
        "premature_writes": s.premature_writes,
        "other_writes": s.other_writes,
        "syscall_lifts": s.syscall_lifts,
        "protect_failures": s.protect_failures,
        "uring_rings": s.uring_rings,
        "uring_enters": s.uring_enters,
        "uring_untracked": s.uring_untracked,
        "uring_released_unseen": s.uring_released_unseen,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Who wrote, in words, and its source location when `addr2line` knows it.
pub fn writer_words(w: &Writer<'_>) -> (String, Option<symbol::Location>) {
    match w {
        Writer::Instruction {
            ip,
            module,
            module_offset,
        } => {
            let loc = module
                .as_deref()
                .and_then(|m| symbol::locate(m, *module_offset));
            let file = module
                .as_deref()
                .map(|m| m.rsplit('/').next().unwrap_or(m).to_string())
                .unwrap_or_else(|| "?".into());
            let at = format!("instruction {ip:#x} ({file}+{module_offset:#x})");
            let words = match &loc {
                Some(l) => format!("by {} at {}, {at}", l.function, l.source),
                None => format!("by {at}"),
            };
            (words, loc)
        }
        Writer::Syscall { call } => (format!("by the kernel, in the program's {call}(2)"), None),
    }
}

fn premature(p: &PrematureWrite<'_>, base: &Map<String, Value>, transport: &str) -> Finding {
    let (words, loc) = writer_words(&p.writer);
    let mut counts = base.clone();
    for (k, v) in [
        ("pid", json!(p.pid)),
        ("tid", json!(p.tid)),
        (
            "writer",
            serde_json::to_value(&p.writer).unwrap_or(Value::Null),
        ),
        (
            "submission",
            serde_json::to_value(p.submission).unwrap_or(Value::Null),
        ),
        ("addr", json!(p.addr)),
        ("range_start", json!(p.range_start)),
        ("range_len", json!(p.range_len)),
        ("offset_in_range", json!(p.addr.wrapping_sub(p.range_start))),
        ("notified_through", json!(p.notified_through)),
        ("notifications_read", json!(p.notifications_read)),
        ("aborted", json!(p.abort)),
    ] {
        counts.insert(k.into(), v);
    }
    if let Some(l) = loc {
        counts.insert("function".into(), json!(l.function));
        counts.insert("source".into(), json!(l.source));
    }
    finding(
        transport,
        Verdict::Corrupt,
        format!("{} {words}", p.sentence()),
        counts,
    )
}

fn finding(
    transport: &str,
    verdict: Verdict,
    detail: String,
    counts: Map<String, Value>,
) -> Finding {
    Finding {
        policy: POLICY.into(),
        transport: transport.into(),
        backend: "sanitizer".into(),
        kernel: Some(zcsafe_kernel::kernel_release()),
        verdict,
        expected: Verdict::Safe,
        expected_why: EXPECTATION.into(),
        predicted: None,
        evidence: Evidence {
            detail,
            trace: None,
            counts,
            attempts: Vec::new(),
            ..Default::default()
        },
    }
}

/// The findings of one sanitized run.
pub fn findings(
    events: &[Event<'_>],
    program: &str,
    transport: &str,
    ending: &Ending,
) -> Vec<Finding> {
    let t = totals(events);
    let base = counts(&t, program);
    let writes: Vec<Finding> = events
        .iter()
        .filter_map(|e| match e {
            Event::PrematureWrite(p) => Some(premature(p, &base, transport)),
            _ => None,
        })
        .collect();
    if !writes.is_empty() {
        return writes;
    }
    let s = &t.sum;
    let what = format!(
        "{} zero-copy submission(s) tracked, {} released by a notification the program read, \
         {} by closing the socket",
        s.tracked, s.released, s.released_by_close
    );
    let (verdict, detail) = match ending {
        Ending::Failed(why) => (
            Verdict::Error,
            format!("{why}; no premature write up to then ({what})"),
        ),
        Ending::Success if s.tracked == 0 => (
            Verdict::Inconclusive,
            format!(
                "nothing to judge: the program made no MSG_ZEROCOPY send through libc on a TCP \
                 socket with SO_ZEROCOPY and no io_uring SEND_ZC/SENDMSG_ZC on a ring the \
                 runtime follows ({} untracked zero-copy call(s): UDP, raw send syscalls; {} \
                 on io_uring rings it cannot follow, such as SQPOLL)",
                s.untracked, s.uring_untracked
            ),
        ),
        Ending::Success => (
            Verdict::Safe,
            format!(
                "no write to bytes the kernel held: {what}; {} write(s) beside them on shared \
                 pages proceeded, {} system call(s) wrote through lifted pages",
                s.other_writes, s.syscall_lifts
            ),
        ),
    };
    vec![finding(transport, verdict, detail, base)]
}
