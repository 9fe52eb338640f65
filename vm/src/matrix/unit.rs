//! One unit of work: one VM that boots one kernel and runs every policy's cell over one
//! transport.
//!
//! The part that turns what the guest printed into cells is a [`Collector`]: it is fed
//! the guest's [`Event`]s and hands back cells, with no QEMU, clock or channel of its own,
//! so the rules (which finding a cell takes, what an `error` cell says, which cells wait
//! for the console tail) are tested by feeding it events. [`run_unit`] is the thin shell
//! around it: build the job, boot (twice, if the kernel died before any cell), pass the
//! cells on.

use super::cell::{error_cell, kept, Cell, KernelRun};
use super::findings::parse_findings;
use super::options::Options;
use super::transport::GuestTransport;
use super::Msg;
use crate::guest::{Event, Job, JobCell};
use crate::kernel::Kernel;
use crate::vm::{self, Machine};
use crate::watchdog::{End, Run};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use zcsafe_policy::Verdict;

/// A unit of work: one VM.
pub(super) struct Unit {
    /// Index into the run's kernels.
    pub kernel: usize,
    pub transport: GuestTransport,
}

/// What the guest of a `transport` VM does: the transport's setup, then one cell per
/// policy, ids in [`Options::policies`] order.
pub(super) fn job(opts: &Options, transport: GuestTransport) -> Job {
    Job {
        // Read by the init script's cell loop (`--retries`).
        env: (opts.retries > 0)
            .then(|| ("ZCSAFE_RETRIES".to_string(), opts.retries.to_string()))
            .into_iter()
            .collect(),
        remote: transport.is_remote(),
        netem: opts.netem_for(transport),
        cells: opts
            .policies
            .iter()
            .enumerate()
            .map(|(id, p)| JobCell {
                id,
                command: opts.cell_command(p, transport),
            })
            .collect(),
    }
}

/// Turns one VM's guest events into cells.
///
/// A cell with a verdict is handed back by [`Collector::event`] as soon as the guest
/// ends it; a failed one is held until [`Collector::finish`], which knows the console
/// tail it carries, and which also makes the `error` cells the guest never ran.
pub(crate) struct Collector<'a> {
    opts: &'a Options,
    /// The kernel, with the release the guest reported.
    kernel: KernelRun,
    transport: GuestTransport,
    /// Output of the current (or last) cell.
    lines: Vec<String>,
    /// When the current cell began.
    begun: Option<Duration>,
    /// Setup and module failures, and retried boots: said in every `error` cell.
    notes: Vec<String>,
    finished: BTreeSet<usize>,
    held: Vec<Cell>,
    /// The attempts so far of a cell the guest is rerunning (`--retries`), by id.
    retrying: Option<(usize, Vec<Cell>)>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(opts: &'a Options, kernel: &KernelRun, transport: GuestTransport) -> Self {
        Collector {
            opts,
            kernel: kernel.clone(),
            transport,
            lines: Vec::new(),
            begun: None,
            notes: Vec::new(),
            finished: BTreeSet::new(),
            held: Vec::new(),
            retrying: None,
        }
    }

    /// One event, `t` after QEMU started. Returns the cell to report now, if the event
    /// ended a cell that has a verdict.
    #[must_use]
    pub(crate) fn event(&mut self, t: Duration, ev: &Event) -> Option<Cell> {
        match ev {
            Event::Boot { release, .. } => self.kernel.release = release.clone(),
            Event::SetupFailed(m) => self.notes.push(format!("setup failed: {m}")),
            Event::ModuleFailed(m) => self.notes.push(format!("module failed: {m}")),
            Event::CellBegin(id) => {
                // A guest that moved on without the rerun we waited for: the attempts
                // that ran settle the cell.
                let moved_on = self.retrying.take_if(|(rid, _)| rid != id);
                let settled = moved_on.and_then(|(rid, attempts)| self.ended(rid, attempts));
                self.begun = Some(t);
                self.lines.clear();
                return settled;
            }
            Event::Line(l) => self.lines.push(l.clone()),
            Event::CellEnd { id, status } if *id < self.opts.policies.len() => {
                let secs = self
                    .begun
                    .take()
                    .map(|b| t.saturating_sub(b).as_secs_f64())
                    .unwrap_or(0.0);
                let attempt = self.cell(*id, *status, secs);
                let mut attempts = match self.retrying.take() {
                    Some((rid, a)) if rid == *id => a,
                    _ => Vec::new(),
                };
                attempts.push(attempt);
                // The guest's rule (`init_script`): it reruns a cell that exited 1 while
                // reruns are left, and says so with `cell-retry`; wait for that attempt.
                let reruns = u32::try_from(attempts.len() - 1).unwrap_or(u32::MAX);
                if *status == 1 && reruns < self.opts.retries {
                    self.retrying = Some((*id, attempts));
                    return None;
                }
                return self.ended(*id, attempts);
            }
            _ => {}
        }
        None
    }

    /// Cell `id` ran its last attempt: the settled cell to report now, or `None` when it
    /// failed and waits for the console tail, known when the VM ends.
    fn ended(&mut self, id: usize, attempts: Vec<Cell>) -> Option<Cell> {
        self.finished.insert(id);
        let mut c = settle_cell(attempts);
        if c.finding.verdict != Verdict::Error {
            return Some(c);
        }
        let out = crate::process::tail(&self.lines.join("\n"), 1000);
        if !out.trim().is_empty() {
            c.finding.evidence.detail += &format!("; its output ended with: {out}");
        }
        self.held.push(c);
        None
    }

    /// A note for every `error` cell still to come (e.g. that a first boot was retried).
    pub(crate) fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// The VM ended: `why` it did not complete (`None`: it did), with its console tail.
    /// Returns the held failed cells (and a cell whose rerun never ended, settled on the
    /// attempts that did), then an `error` cell for each policy the guest never ended a
    /// cell for.
    #[must_use]
    pub(crate) fn finish(mut self, why: Option<String>, tail: Option<String>) -> Vec<Cell> {
        if let Some((id, attempts)) = self.retrying.take() {
            self.finished.insert(id);
            self.held.push(settle_cell(attempts));
        }
        let mut out = self.held;
        for c in &mut out {
            c.console_tail = tail.clone();
        }
        for (id, policy) in self.opts.policies.iter().enumerate() {
            if self.finished.contains(&id) {
                continue;
            }
            let mut detail = why
                .clone()
                .unwrap_or_else(|| "the guest finished without running this cell".into());
            with_notes(&mut detail, &self.notes);
            out.push(error_cell(
                self.opts,
                &self.kernel,
                policy,
                self.transport,
                detail,
                tail.clone(),
            ));
        }
        out
    }

    /// The cell `id` the guest ended with `status` after `secs`: the finding it printed
    /// (the one for its policy and transport, else the first), or an `error` that says
    /// why there is none.
    fn cell(&self, id: usize, status: i32, secs: f64) -> Cell {
        let (opts, kr, transport) = (self.opts, &self.kernel, self.transport);
        let policy = &opts.policies[id];
        let found = parse_findings(&self.lines);
        let pick = found
            .iter()
            .find(|f| &f.policy == policy && f.transport == transport.name())
            .or(found.first());
        let detail = match (pick, status) {
            (Some(f), _) => {
                let mut f = f.clone();
                f.kernel = Some(kr.release.clone());
                if f.backend == "kernel" {
                    f.backend = "vm".into();
                }
                return Cell {
                    finding: f,
                    kernel_name: kr.name.clone(),
                    kernel_version: kr.version.clone(),
                    nic: opts.nic_for(transport),
                    netem: opts.netem_for(transport),
                    seconds: secs,
                    rerun: opts.rerun(&kr.name, policy, transport),
                    console_tail: None,
                    output: kept(opts, &self.lines),
                };
            }
            // `timeout` in the guest: 124, or 143 when its TERM ended the command.
            (None, 124 | 143) => format!(
                "the cell ran longer than {} s and was stopped in the guest",
                opts.machine.limits.cell.as_secs()
            ),
            (None, s) => {
                let mut d =
                    format!("the guest command exited with status {s} without a JSON result");
                with_notes(&mut d, &self.notes);
                d
            }
        };
        let mut c = error_cell(opts, kr, policy, transport, detail, None);
        c.seconds = secs;
        c
    }
}

/// One cell of its attempts ([`zcsafe_policy::settle`]): the standing attempt, with the
/// finding that records every attempt, and the time all of them took.
fn settle_cell(mut attempts: Vec<Cell>) -> Cell {
    let findings: Vec<_> = attempts.iter().map(|c| c.finding.clone()).collect();
    let seconds = attempts.iter().map(|c| c.seconds).sum();
    let (i, finding) = zcsafe_policy::settle(&findings).expect("at least one attempt");
    let mut c = attempts.swap_remove(i);
    c.finding = finding;
    c.seconds = seconds;
    c
}

/// ` (note; note)` after `detail`, when there are notes.
fn with_notes(detail: &mut String, notes: &[String]) {
    if !notes.is_empty() {
        *detail += &format!(" ({})", notes.join("; "));
    }
}

/// Boots the unit's VM and sends its cells (and boot time) to `tx` as they are known.
pub(super) fn run_unit(
    opts: &Options,
    machine: &Machine,
    kr: &KernelRun,
    k: &Kernel,
    img: &Path,
    u: &Unit,
    tx: &mpsc::Sender<Msg>,
) {
    let job = job(opts, u.transport);
    let mut collector = Collector::new(opts, kr, u.transport);
    // Cells are reported as soon as the guest ends them.
    let mut on_event = |t: Duration, ev: &Event| {
        if let Some(c) = collector.event(t, ev) {
            let _ = tx.send(Msg::Cell(Box::new(c)));
        }
    };
    // A kernel that dies before userspace (rare TCG boot flakes) gets a second boot;
    // once a guest ran a cell, its outcome stands.
    let boot = |on_event: &mut dyn FnMut(Duration, &Event)| {
        vm::boot(machine, &k.vmlinuz, img, &job, Some(opts.nic), on_event)
    };
    let mut result = boot(&mut on_event);
    let mut retried = None;
    // Also when the kernel died before any cell began (6.12 under TCG crashes now and
    // then while loading modules): no result is lost by booting again.
    let before_cells = |r: &Run| {
        !r.events
            .iter()
            .any(|(_, e)| matches!(e, Event::CellBegin(_)))
    };
    if matches!(&result, Ok(r) if r.end != End::Completed && before_cells(r)) {
        if let Ok(first) = &result {
            retried = Some(format!(
                "a first boot failed and was retried: {}",
                end_text(&first.end)
            ));
        }
        result = boot(&mut on_event);
    }
    if let Some(r) = retried {
        collector.note(r);
    }
    let (why, tail) = match result {
        Ok(run) => {
            if let Some(b) = run.boot_seconds {
                let _ = tx.send(Msg::Boot(kr.name.clone(), b));
            }
            let why = (run.end != End::Completed).then(|| end_text(&run.end));
            (why, Some(run.console_tail))
        }
        Err(e) => (Some(e.to_string()), None),
    };
    for c in collector.finish(why, tail) {
        let _ = tx.send(Msg::Cell(Box::new(c)));
    }
}

fn end_text(e: &End) -> String {
    match e {
        End::Exited(m) | End::Timeout(m) => m.clone(),
        End::Completed => "completed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::Event;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Feeds one result-port line at `t` s; a cell reported at once goes to `now`.
    fn feed(c: &mut Collector<'_>, t: f64, line: &str, now: &mut Vec<Cell>) {
        now.extend(c.event(secs(t), &Event::parse(line)));
    }

    fn finding(policy: &str, transport: &str, verdict: &str) -> String {
        format!(
            r#"{{"results":[{{"policy":"{policy}","transport":"{transport}","backend":"kernel","verdict":"{verdict}","expected":"{verdict}","expected_why":"probed","evidence":{{"detail":"ran"}}}}]}}"#
        )
    }

    /// A finding of `verdict` where `expected` was expected.
    fn judged(policy: &str, verdict: &str, expected: &str) -> String {
        finding(policy, "veth", verdict).replace(
            &format!(r#""expected":"{verdict}""#),
            &format!(r#""expected":"{expected}""#),
        )
    }

    /// `--retries 2`: a cell that contradicts, is rerun by the guest and agrees is
    /// reported once, flaky, with every attempt; one that contradicts on every attempt
    /// stays a contradiction; a cell that agrees at once is not rerun.
    #[test]
    fn a_contradicting_cell_waits_for_its_reruns() {
        let mut o = options();
        o.transports = vec![GuestTransport::Veth];
        o.retries = 2;
        let j = job(&o, GuestTransport::Veth);
        assert_eq!(j.env, [("ZCSAFE_RETRIES".to_string(), "2".to_string())]);
        let mut c = Collector::new(&o, &kernel(), GuestTransport::Veth);
        let mut now = Vec::new();
        // Cell 0 (copy, expected safe): corrupt, exit 1, rerun; then safe.
        feed(&mut c, 1.0, "@@zcsafe cell-begin 0", &mut now);
        feed(&mut c, 1.5, &judged("copy", "corrupt", "safe"), &mut now);
        feed(&mut c, 2.0, "@@zcsafe cell-end 0 1", &mut now);
        assert!(now.is_empty(), "a contradiction waits for its rerun");
        feed(&mut c, 2.0, "@@zcsafe cell-retry 0 1", &mut now);
        feed(&mut c, 2.0, "@@zcsafe cell-begin 0", &mut now);
        feed(&mut c, 2.5, &judged("copy", "safe", "safe"), &mut now);
        feed(&mut c, 4.0, "@@zcsafe cell-end 0 0", &mut now);
        assert_eq!(now.len(), 1);
        let flaky = &now[0].finding;
        assert!(flaky.flaky() && !flaky.contradicts(), "{flaky:?}");
        assert_eq!(flaky.evidence.attempts, [Verdict::Corrupt, Verdict::Safe]);
        assert_eq!(flaky.evidence.counts["retries"], 1);
        assert!((now[0].seconds - 3.0).abs() < 1e-9, "both attempts' time");
        // Cell 1 (zc-naive, expected corrupt): safe three times, exit 1 each time.
        for (k, t) in [0.0, 1.0, 2.0].into_iter().enumerate() {
            feed(&mut c, 5.0 + t, "@@zcsafe cell-begin 1", &mut now);
            feed(
                &mut c,
                5.1 + t,
                &judged("zc-naive", "safe", "corrupt"),
                &mut now,
            );
            feed(&mut c, 5.5 + t, "@@zcsafe cell-end 1 1", &mut now);
            if k < 2 {
                feed(
                    &mut c,
                    5.5 + t,
                    &format!("@@zcsafe cell-retry 1 {}", k + 1),
                    &mut now,
                );
            }
        }
        assert_eq!(now.len(), 2, "the budget is spent: the cell counts");
        let bad = &now[1].finding;
        assert!(bad.contradicts() && !bad.flaky());
        assert_eq!(bad.evidence.attempts, [Verdict::Safe; 3]);
        assert_eq!(bad.evidence.counts["retries"], 2);
        // Cell 2 agrees at once: no attempts recorded.
        feed(&mut c, 9.0, "@@zcsafe cell-begin 2", &mut now);
        feed(
            &mut c,
            9.1,
            &judged("vm-selftest", "safe", "safe"),
            &mut now,
        );
        feed(&mut c, 9.5, "@@zcsafe cell-end 2 0", &mut now);
        assert_eq!(now.len(), 3);
        assert!(now[2].finding.evidence.attempts.is_empty());
        assert!(c.finish(None, None).is_empty());
    }

    /// A VM that dies during a rerun: the cell settles on the attempts that ended.
    #[test]
    fn a_rerun_cut_short_settles_on_the_attempts_that_ended() {
        let mut o = options();
        o.retries = 3;
        let mut c = Collector::new(&o, &kernel(), GuestTransport::Veth);
        let mut now = Vec::new();
        feed(&mut c, 1.0, "@@zcsafe cell-begin 0", &mut now);
        feed(&mut c, 1.5, &judged("copy", "corrupt", "safe"), &mut now);
        feed(&mut c, 2.0, "@@zcsafe cell-end 0 1", &mut now);
        feed(&mut c, 2.0, "@@zcsafe cell-retry 0 1", &mut now);
        feed(&mut c, 2.0, "@@zcsafe cell-begin 0", &mut now);
        assert!(now.is_empty());
        let rest = c.finish(Some("the guest panicked".into()), None);
        assert_eq!(rest.len(), 3, "cell 0 and the two cells that never ran");
        assert_eq!(rest[0].finding.verdict, Verdict::Corrupt);
        assert!(rest[0].finding.contradicts());
        assert_eq!(rest[1].finding.verdict, Verdict::Error);
    }

    fn options() -> Options {
        let mut o = Options::new("/x".into());
        o.policies = vec!["copy".into(), "zc-naive".into(), "vm-selftest".into()];
        o.transports = vec![GuestTransport::Remote];
        o.delay_ms = Some(5);
        o.keep_output = true;
        o
    }

    fn kernel() -> KernelRun {
        KernelRun {
            name: "5.10".into(),
            suite: "bullseye".into(),
            release: String::new(),
            version: "5.10.1-1".into(),
            boot_seconds: vec![],
            error: None,
        }
    }

    /// A guest's events, as the result port delivers them, become cells without a VM:
    /// an answered cell at once, a failed one with the console tail at the end, and an
    /// `error` for a cell the guest never ran.
    #[test]
    fn a_guests_events_become_cells() {
        let o = options();
        let mut c = Collector::new(&o, &kernel(), GuestTransport::Remote);
        let mut now = Vec::new();
        feed(
            &mut c,
            1.0,
            "@@zcsafe boot 5.10.0-32-cloud-amd64 0.9",
            &mut now,
        );
        feed(
            &mut c,
            1.5,
            "@@zcsafe module-failed e1000 not found",
            &mut now,
        );
        feed(&mut c, 2.0, "@@zcsafe setup-ok remote eth0 eth1", &mut now);
        // Cell 0 answers, among other output, for another policy too: its own is taken.
        feed(&mut c, 3.0, "@@zcsafe cell-begin 0", &mut now);
        feed(&mut c, 3.1, "progress: 50%", &mut now);
        feed(
            &mut c,
            3.2,
            &finding("zc-naive", "remote", "corrupt"),
            &mut now,
        );
        feed(&mut c, 3.3, &finding("copy", "remote", "safe"), &mut now);
        feed(&mut c, 5.5, "@@zcsafe cell-end 0 0", &mut now);
        assert_eq!(now.len(), 1, "an answered cell is reported at once");
        let a = &now[0];
        assert_eq!(a.finding.policy, "copy");
        assert_eq!(a.finding.verdict, Verdict::Safe);
        assert_eq!(a.finding.backend, "vm");
        assert_eq!(a.finding.kernel.as_deref(), Some("5.10.0-32-cloud-amd64"));
        assert_eq!(
            (a.kernel_name.as_str(), a.kernel_version.as_str()),
            ("5.10", "5.10.1-1")
        );
        assert!((a.seconds - 2.5).abs() < 1e-9, "{}", a.seconds);
        assert_eq!(a.nic.as_deref(), Some("virtio"));
        assert_eq!(a.netem.as_deref(), Some("delay 5ms"));
        assert_eq!(a.output.len(), 3);
        assert_eq!(
            a.rerun,
            "zcsafe matrix --kernels 5.10 --policies copy --transports remote --nic virtio --delay 5"
        );
        // Cell 1 prints no JSON and fails: held for the console tail.
        feed(&mut c, 6.0, "@@zcsafe cell-begin 1", &mut now);
        feed(&mut c, 6.5, "thread panicked", &mut now);
        feed(&mut c, 7.0, "@@zcsafe cell-end 1 101", &mut now);
        // An id no policy has is ignored.
        feed(&mut c, 7.5, "@@zcsafe cell-end 9 0", &mut now);
        assert_eq!(now.len(), 1);

        let why = "the guest stopped answering".to_string();
        let rest = c.finish(Some(why), Some("console tail".into()));
        assert_eq!(rest.len(), 2);
        let (failed, never) = (&rest[0], &rest[1]);
        assert_eq!(failed.finding.policy, "zc-naive");
        assert_eq!(failed.finding.verdict, Verdict::Error);
        assert_eq!(
            failed.finding.evidence.detail,
            "the guest command exited with status 101 without a JSON result \
             (module failed: e1000 not found); its output ended with: thread panicked"
        );
        assert_eq!(failed.console_tail.as_deref(), Some("console tail"));
        assert!((failed.seconds - 1.0).abs() < 1e-9);
        assert_eq!(never.finding.policy, "vm-selftest");
        assert_eq!(never.finding.transport, "remote");
        assert_eq!(
            never.finding.evidence.detail,
            "the guest stopped answering (module failed: e1000 not found)"
        );
        assert_eq!(
            never.finding.kernel.as_deref(),
            Some("5.10.0-32-cloud-amd64")
        );
        assert_eq!(never.console_tail.as_deref(), Some("console tail"));
        assert_eq!(never.output, Vec::<String>::new());
    }

    #[test]
    fn a_cell_stopped_by_the_guests_timeout_and_a_guest_that_ran_nothing() {
        let mut o = options();
        o.policies.truncate(1);
        o.keep_output = false;
        let mut c = Collector::new(&o, &kernel(), GuestTransport::Veth);
        assert!(c.event(secs(1.0), &Event::CellBegin(0)).is_none());
        assert!(c.event(secs(1.1), &Event::Line("partial".into())).is_none());
        let end = Event::CellEnd { id: 0, status: 124 };
        assert!(c.event(secs(4.0), &end).is_none());
        let cells = c.finish(None, None);
        assert_eq!(cells.len(), 1);
        let t = &cells[0];
        assert!(
            t.finding.evidence.detail.starts_with(&format!(
                "the cell ran longer than {} s and was stopped in the guest; its output ended with: partial",
                o.machine.limits.cell.as_secs()
            )),
            "{}",
            t.finding.evidence.detail
        );
        // No NIC, no netem, no kept output off the remote transport.
        assert_eq!((t.nic.as_ref(), t.netem.as_ref()), (None, None));
        assert!(t.output.is_empty());

        // A guest that ends without running anything: one error per policy, with the notes.
        let mut c = Collector::new(&o, &kernel(), GuestTransport::Veth);
        assert!(c
            .event(secs(1.0), &Event::SetupFailed("remote no NIC".into()))
            .is_none());
        c.note("a first boot failed and was retried: boot timeout".into());
        let cells = c.finish(None, None);
        assert_eq!(cells.len(), 1);
        assert_eq!(
            cells[0].finding.evidence.detail,
            "the guest finished without running this cell (setup failed: remote no NIC; \
             a first boot failed and was retried: boot timeout)"
        );
        assert_eq!(cells[0].finding.kernel, None, "no release reported");
    }

    #[test]
    fn the_job_runs_every_policy_with_the_transport_setup() {
        let o = options();
        let j = job(&o, GuestTransport::Remote);
        assert!(j.remote);
        assert_eq!(j.netem.as_deref(), Some("delay 5ms"));
        assert_eq!(j.cells.len(), 3);
        assert_eq!(
            j.cells[1].command,
            "zcsafe run --policy zc-naive --transport remote --json"
        );
        let j = job(&o, GuestTransport::VethLossy);
        assert!(!j.remote && j.netem.is_none());
        assert!(j.cells[0].command.contains("--transport veth-lossy"));
    }
}
