//! `zcsafe replay TRACE --on model|sim|kernel`: run the policy a trace names again, in
//! the same situation, on a backend, and say whether it ends the same way.
//!
//! Exit status: 0 same outcome, 1 a different one, 2 when the replay could not run
//! (unknown policy, backend not available here).

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use std::path::PathBuf;
use std::process::ExitCode;
use zcsafe_explain::Selection;
use zcsafe_fixtures::{replay_with, Backend, ReplayOptions};

#[derive(clap::Args)]
pub struct Args {
    /// A trace JSON file (a fixture, `zcsafe check --json` output, a run report).
    trace: PathBuf,
    /// The backend to replay on.
    #[arg(long, default_value = "model",
          value_parser = PossibleValuesParser::new(Backend::ALL.map(Backend::name))
              .map(|s| s.parse::<Backend>().expect("one of Backend::ALL")))]
    on: Backend,
    /// With a results file holding several traces: the policy.
    #[arg(long, short = 'p', value_name = "NAME")]
    policy: Option<String>,
    /// With a results file: the transport.
    #[arg(long, short = 't', value_name = "TRANSPORT")]
    transport: Option<String>,
    /// The kernel profile to replay under, when the trace was made with `--profile FILE`
    /// (a trace keeps only the profile's name): a built-in name or the same file.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// `--on kernel`: drive a remote-class counterexample as recorded even where this
    /// host's TUN device cannot follow it (to see where it diverges), instead of the
    /// model's counterexample behind the TUN device.
    #[arg(long)]
    as_recorded: bool,
    /// Print the replay's own timeline too.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let sel = Selection {
        policy: args.policy,
        transport: args.transport,
    };
    let trace = super::explain::load_trace(&args.trace, &sel)?;
    let backend = args.on;
    let profile = args
        .profile
        .as_deref()
        .map(super::check::load_profile)
        .transpose()?;
    let opts = ReplayOptions {
        profile: profile.as_ref(),
        as_recorded: args.as_recorded,
    };
    let r = replay_with(&trace, backend, &opts)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "policy": r.policy, "backend": r.backend, "transport": r.transport,
                "recorded": r.recorded, "replayed": r.replayed, "same_steps": r.same_steps,
                "same": r.same(), "detail": r.detail, "conformance": r.conformance,
                "substitution": r.substitution}))?
        );
    } else {
        if let Some(sub) = &r.substitution {
            print!("{}", substitution_text(&r.policy, sub));
        }
        let device = match trace.device {
            zcsafe_policy::RemoteDevice::Nic => String::new(),
            d => format!(", device {d}"),
        };
        println!(
            "replay of {} ({} trace, {}{device}) on {} over {}",
            r.policy, trace.backend, trace.transport, r.backend, r.transport
        );
        println!("recorded verdict: {}", r.recorded);
        println!("replayed verdict: {}  — {}", r.replayed, r.detail);
        if let Some(c) = &r.conformance {
            print!("{}", conformance_text(c));
            // A wall-clock figure: on stderr, so the report's bytes stay the same.
            eprintln!("schedule replay: {} ms wall time", c.elapsed_ms);
        }
        match (r.same_steps, &r.conformance) {
            (Some(true), Some(c)) => println!(
                "steps: the kernel followed all {} steps of the schedule",
                c.steps.len()
            ),
            (Some(false), Some(c)) => println!(
                "steps: THE KERNEL DIVERGED FROM THE MODEL at {} step(s)",
                c.divergences
            ),
            (Some(true), None) => println!("steps: identical ({} steps)", trace.steps.len()),
            (Some(false), None) => {
                println!("steps: DIFFERENT (the model's counterexample changed)")
            }
            (None, _) => println!("steps: not comparable on this backend (only verdicts are)"),
        }
        println!(
            "{}",
            if r.same() {
                "=> same outcome"
            } else {
                "=> DIFFERENT outcome"
            }
        );
        if args.verbose {
            if let Some(t) = &r.trace {
                print!("\n{}", zcsafe_explain::text::render(t));
            }
        }
    }
    Ok(ExitCode::from(u8::from(!r.same())))
}

/// Said first, loudly, when the trace's counterexample needs another device than the
/// host's: the step where the host's device goes otherwise, why, and what is replayed
/// instead (or why nothing is).
fn substitution_text(policy: &str, sub: &zcsafe_fixtures::DeviceSubstitution) -> String {
    use zcsafe_explain::words::{action, device_name, device_reads};
    let carries = |e: &zcsafe_policy::Event| match e {
        zcsafe_policy::Event::Transmit { payload, .. }
        | zcsafe_policy::Event::Retransmit { payload, .. }
        | zcsafe_policy::Event::TxComplete { payload, .. }
        | zcsafe_policy::Event::Deliver { payload, .. }
        | zcsafe_policy::Event::Read { payload, .. } => Some(match payload.content {
            Some(p) => format!("the bytes of stream page {p}"),
            None => "zeroes".to_string(),
        }),
        _ => None,
    };
    let there = match &sub.behind_device {
        Some(here) => match (carries(here), carries(&sub.recorded)) {
            (Some(h), Some(r)) => format!("carries {h} where the trace's carries {r}"),
            _ => format!("is {} instead", action(here)),
        },
        None => "cannot happen".into(),
    };
    let (was, is) = (device_name(sub.recorded_device), device_name(sub.device));
    let mut out = format!(
        "THIS COUNTEREXAMPLE NEEDS A {}: it was found behind the model's {was}, which {};\n  \
         this host replays over a {is}, which {}.\n  \
         Followed behind a {is}, step {} ({}) {there}: the kernel would diverge there.\n",
        was.to_uppercase(),
        device_reads(sub.recorded_device),
        device_reads(sub.device),
        sub.step,
        action(&sub.recorded),
    );
    match &sub.trace {
        Some(t) => out += &format!(
            "REPLAYING INSTEAD the counterexample the model finds for {policy} in the same scenario behind a {is} \
             ({} steps; `zcsafe check -p {policy} -t remote --device {}`): {}\n\n",
            t.steps.len(),
            sub.device,
            t.summary
        ),
        None => out += &format!(
            "NOT REACHABLE behind a {is}: for {policy} in the same scenario the model finds {}: {}\n\n",
            sub.verdict, sub.detail
        ),
    }
    out
}

/// The step-by-step conformance report of a schedule replay: each model step, what the
/// kernel did there, and every divergence marked so it cannot be missed.
fn conformance_text(c: &zcsafe_kernel::schedule::Conformance) -> String {
    use std::fmt::Write;
    use zcsafe_kernel::schedule::{Divergence, Observed, StepResult};
    let seg = |s: &zcsafe_kernel::schedule::SegmentSeen| {
        format!(
            "seq {}{}, {} bytes, {}",
            s.seq,
            if s.retransmission {
                " (retransmission)"
            } else {
                ""
            },
            s.len,
            match s.content {
                Some(p) => format!("bytes of stream page {p}"),
                None => "not one stream page".into(),
            }
        )
    };
    let page = |p: &Option<u64>| p.map_or("no stream page".to_string(), |p| format!("page {p}"));
    let mut out = String::from("\nconformance (model step → what the kernel did):\n");
    for s in &c.steps {
        let what = zcsafe_explain::words::action(&s.expected);
        let (mark, said) = match &s.result {
            StepResult::Conforms { observed } => (
                "ok ",
                match observed {
                    Observed::Call { .. } => "the kernel answered the same".into(),
                    Observed::Transmitted { segment } => format!("tap: transmitted {}", seg(segment)),
                    Observed::DeviceRead { segment } => format!("TUN fd read {}", seg(segment)),
                    Observed::Lost { seq } => format!("peer discarded seq {seq}"),
                    Observed::Delivered { seq, in_order } => format!(
                        "peer TCP took seq {seq}{}",
                        if *in_order { " in order" } else { " beyond a gap" }
                    ),
                    Observed::AckSent { ack, window, model_window } => format!(
                        "peer ACKed {ack} page(s), window {window} bytes (model: {model_window} page(s)); the kernel took it"
                    ),
                    Observed::Read { seq, content } => {
                        format!("receiver read stream page {seq}: {}", page(content))
                    }
                    Observed::RanAtSubmit => "io_uring ran it inside the submit call".into(),
                },
            ),
            StepResult::Diverged { divergence } => (
                "DIVERGED",
                match divergence {
                    Divergence::DifferentOp { expected, policy } => {
                        format!("the policy asked for {policy} instead of {expected}")
                    }
                    Divergence::DifferentAnswer { expected, kernel } => {
                        format!("the kernel answered {kernel:?}, the model {expected:?}")
                    }
                    Divergence::NoSegment { waited_ms } => {
                        format!("nothing reached the device in {waited_ms} ms")
                    }
                    Divergence::DifferentSegment { expected_seq, expected_retransmission, seen } => format!(
                        "the kernel sent {} where the model sends seq {expected_seq}{}",
                        seg(seen),
                        if *expected_retransmission { " (retransmission)" } else { "" }
                    ),
                    Divergence::DifferentContent { seq, expected, kernel } => format!(
                        "seq {seq} carried {} where the model's carries {}",
                        page(kernel),
                        page(expected)
                    ),
                    Divergence::UnexpectedSegment { seen } => {
                        format!("the kernel also sent {} here, which the model does not", seg(seen))
                    }
                    Divergence::DifferentAck { expected, accepted_pages } => format!(
                        "the peer had accepted {accepted_pages} page(s), the model's ACK says {expected}"
                    ),
                    Divergence::DifferentOrder { seq, expected_in_order } => format!(
                        "seq {seq} arrived {} where the model's was {}",
                        if *expected_in_order { "beyond a gap" } else { "in order" },
                        if *expected_in_order { "in order" } else { "beyond a gap" }
                    ),
                    Divergence::NotReceived { seq } => {
                        format!("the peer had not received stream page {seq}")
                    }
                    Divergence::AckNotTaken { ack } => {
                        format!("the kernel did not process the ACK of {ack} page(s)")
                    }
                },
            ),
            StepResult::NotDrivable { why } => {
                ("NOT DRIVABLE", format!("{why:?}: the replayer cannot make this happen on the kernel"))
            }
            StepResult::NotReached => ("-", "not reached (an earlier divergence)".into()),
        };
        let _ = writeln!(
            out,
            "  {:>3} {mark:<8} {what}\n               ↳ {said}",
            s.step
        );
    }
    let _ = writeln!(out, "{}\n", c.summary());
    out
}
