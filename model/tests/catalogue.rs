//! Every catalogued policy, checked in both transport classes on every built-in kernel
//! profile, must meet its declared expectation. This is what makes the checker able to
//! fail: a model too weak misses a counterexample for an unsafe policy, a model too
//! strong finds one for a safe policy — either breaks this test. The remote class is
//! checked behind both devices (a NIC and a TUN device, `RemoteDevice`): `zcsafe run -t
//! tun` compares its verdicts with the TUN device's, so they must meet the same
//! expectation.

use zcsafe_explain::text::render;
use zcsafe_model::{check, CheckOptions, Scenario};
use zcsafe_policy::{Actor, Flag, Profile, RemoteDevice, TransportClass, Verdict};

fn each(
    mut f: impl FnMut(
        &zcsafe_policies::Entry,
        TransportClass,
        &Profile,
        &Scenario,
        zcsafe_model::CheckReport,
    ),
) {
    let cells = [
        (TransportClass::Local, RemoteDevice::Nic),
        (TransportClass::Remote, RemoteDevice::Nic),
        (TransportClass::Remote, RemoteDevice::Tun),
    ];
    for profile in Profile::builtin() {
        for (t, device) in cells {
            for e in zcsafe_policies::catalogue() {
                let scenario =
                    Scenario::standard_for(&e.pipeline, t, profile.clone()).with_device(device);
                let policy = e
                    .build(&scenario.geometry)
                    .expect("standard geometry fits every policy");
                let report =
                    check(policy, &scenario, &CheckOptions::default()).expect("check runs");
                f(&e, t, &profile, &scenario, report);
            }
        }
    }
}

#[test]
fn every_policy_meets_its_expectation_on_every_builtin_profile() {
    let mut failures = Vec::new();
    each(|e, t, profile, s, report| {
        let device = s.device().unwrap_or_default();
        let expected = e.expect_behind(device, t, profile, &s.geometry);
        if report.verdict != expected.verdict {
            failures.push(format!(
                "{} / {t} (device {device}) / {}: model says {}, expected {} ({})\n{}",
                e.name,
                profile.name,
                report.verdict,
                expected.verdict,
                expected.why,
                report.trace.as_ref().map(render).unwrap_or_default()
            ));
        }
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn counterexamples_end_where_the_receiver_reads_wrong_bytes() {
    each(|e, t, _, _, report| {
        if report.verdict != Verdict::Corrupt {
            return;
        }
        let trace = report
            .trace
            .expect("a corrupt verdict carries its counterexample");
        let last = trace.steps.last().expect("non-empty");
        assert_eq!(last.actor(), Actor::Receiver, "{} / {t}", e.name);
        assert_eq!(
            last.flag(),
            Some(Flag::WrongBytes),
            "{} / {t}: {:?}",
            e.name,
            last.event
        );
        assert!(
            trace
                .steps
                .iter()
                .any(|s| s.flag() == Some(Flag::ReuseWhileHeld)),
            "{} / {t}: the timeline marks the early reuse",
            e.name
        );
    });
}

#[test]
fn safe_verdicts_explore_complete_runs() {
    each(|e, t, _, _, report| {
        if report.verdict == Verdict::Safe {
            assert!(
                report.complete_states > 0,
                "{} / {t}: no run delivered the stream",
                e.name
            );
            assert!(report.trace.is_none());
        }
    });
}

#[test]
fn the_checker_is_deterministic() {
    let scenario = Scenario::standard(TransportClass::Local, Profile::classic());
    let e = zcsafe_policies::find("zc-inorder-tracker").unwrap();
    let run = || {
        check(
            e.build(&scenario.geometry).unwrap(),
            &scenario,
            &CheckOptions::default(),
        )
        .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!((a.states, a.transitions), (b.states, b.transitions));
    assert_eq!(a.trace, b.trace);
}

#[test]
fn counterexample_timelines() {
    each(|e, t, profile, _, report| {
        if profile.name != "classic" {
            return;
        }
        if let Some(trace) = &report.trace {
            insta::with_settings!({
                snapshot_path => "../../fixtures/snapshots/model",
                prepend_module_to_snapshot => false,
                description => format!("{} over {t}: {}", e.name, trace.summary),
                omit_expression => true,
            }, {
                let name = match trace.device {
                    RemoteDevice::Nic => format!("{}-{t}", e.name),
                    d => format!("{}-{t}-{d}", e.name),
                };
                insta::assert_snapshot!(name, render(trace));
            });
        }
    });
}

#[test]
fn a_too_small_state_budget_is_an_error_not_a_verdict() {
    let scenario = Scenario::standard(TransportClass::Remote, Profile::classic());
    let e = zcsafe_policies::find("copy").unwrap();
    let err = check(
        e.build(&scenario.geometry).unwrap(),
        &scenario,
        &CheckOptions {
            max_states: 10,
            ..CheckOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("more than 10 states"), "{err}");
}

/// `zc-inorder-tracker` past the counter's wrap: the model's verdict must follow the
/// stream length exactly as the policy's `expect_for` says — safe, then stuck (a wrapped
/// notification range strands its high counters), then corrupt. The brief of issue 19
/// found `stuck` where the expectation said `safe` ("the counter never wraps"), with a
/// 4-slot ring at 7 chunks and a 2-bit counter: the counter does wrap there.
#[test]
fn zc_inorder_tracker_is_stranded_by_a_wrapped_range_before_it_corrupts() {
    let e = zcsafe_policies::find("zc-inorder-tracker").unwrap();
    let run = |t, buffer: u64, window: u64, stream: u64| {
        let mut s = Scenario::standard(t, Profile::classic());
        s.geometry.buffer = buffer;
        s.geometry.stream = stream;
        s.geometry.zc_id_bits = 2;
        (s.config.sndbuf, s.config.rcvbuf) = (window, window);
        let r = check(e.build(&s.geometry).unwrap(), &s, &CheckOptions::default()).unwrap();
        let x = e.expect_for(t, &s.config.profile, &s.geometry);
        (r, x)
    };
    for t in TransportClass::ALL {
        for (stream, want) in [
            (5, Verdict::Safe),
            (6, Verdict::Stuck),
            (7, Verdict::Corrupt),
        ] {
            let (r, x) = run(t, 2, 2, stream);
            assert_eq!(r.verdict, want, "{t}, 2 slots, stream {stream}");
            assert_eq!(x.verdict, want, "{t}, 2 slots, stream {stream}: {}", x.why);
        }
    }
    let (r, x) = run(TransportClass::Local, 4, 4, 7);
    assert_eq!((r.verdict, x.verdict), (Verdict::Stuck, Verdict::Stuck));
    let trace = r.trace.expect("a stuck verdict carries its path");
    let text = render(&trace);
    assert!(
        text.contains("its last completed call: recvmsg(MSG_ERRQUEUE) (blocking)"),
        "the sender waits on the error queue:\n{text}"
    );
}
