//! Every model verdict carries the hazards its search reached, and a `safe` over a
//! scenario that never reached one the policy's calls can meet says so, with the setting
//! that reaches it (issue 19: "no corruption seen is not safe", the model's side).

use zcsafe_model::{check, CheckOptions, CheckReport, Scenario};
use zcsafe_policy::{Hazard, Profile, TransportClass, Verdict};

fn checked(name: &str, t: TransportClass, tweak: impl FnOnce(&mut Scenario)) -> CheckReport {
    let e = zcsafe_policies::find(name).expect("a catalogue policy");
    let mut s = Scenario::standard_for(&e.pipeline, t, Profile::classic());
    tweak(&mut s);
    let p = e.build(&s.geometry).expect("fits the standard geometry");
    check(p, &s, &CheckOptions::default())
        .expect("within limits")
        .named(name)
}

fn unreached(r: &CheckReport) -> Vec<Hazard> {
    r.hazards.unreached().collect()
}

#[test]
fn a_safe_without_faults_says_it_never_retransmitted_and_how_to() {
    let r = checked("zc-completion", TransportClass::Remote, |s| {
        s.config.losses = 0;
        s.config.spurious_rto = 0;
    });
    assert_eq!(r.verdict, Verdict::Safe);
    let gaps = unreached(&r);
    assert!(gaps.contains(&Hazard::Retransmission), "{gaps:?}");
    assert!(gaps.contains(&Hazard::OutOfOrderCompletion), "{gaps:?}");
    assert!(
        r.detail
            .contains("NEVER REACHED: retransmission (try --losses 1 or --spurious-rto 1)"),
        "{}",
        r.detail
    );
}

#[test]
fn the_standard_faults_reach_what_the_fault_free_run_missed() {
    let r = checked("zc-completion", TransportClass::Remote, |_| {});
    assert_eq!(r.verdict, Verdict::Safe);
    for h in [
        Hazard::Retransmission,
        Hazard::OutOfOrderCompletion,
        Hazard::CounterWrap,
        Hazard::ReuseBeforeRead,
    ] {
        assert!(r.hazards.count(h) > 0, "{h} not reached: {}", r.detail);
    }
    // The NIC never copies; only local delivery does.
    assert_eq!(r.hazards.count(Hazard::Copied), 0);
    let local = checked("zc-completion", TransportClass::Local, |_| {});
    assert!(local.hazards.count(Hazard::Copied) > 0, "{}", local.detail);
}

#[test]
fn a_wide_counter_never_wraps_and_the_verdict_says_so() {
    let r = checked("zc-completion", TransportClass::Remote, |s| {
        s.geometry.zc_id_bits = 8;
    });
    assert_eq!(r.verdict, Verdict::Safe);
    assert!(unreached(&r).contains(&Hazard::CounterWrap), "{}", r.detail);
    assert!(r
        .detail
        .contains("counter-wrap (try a narrower --zc-id-bits"));
}

#[test]
fn a_tight_optmem_reaches_enobufs() {
    let r = checked("zc-completion", TransportClass::Remote, |s| {
        s.config.zc_optmem = 1;
    });
    assert!(r.hazards.count(Hazard::Enobufs) > 0, "{}", r.detail);
}

#[test]
fn a_copying_policy_opens_no_zero_copy_hazard() {
    let r = checked("copy", TransportClass::Remote, |_| {});
    assert_eq!(r.verdict, Verdict::Safe);
    assert!(unreached(&r).is_empty(), "{}", r.detail);
    assert_eq!(r.hazards.count(Hazard::OutOfOrderCompletion), 0);
}

#[test]
fn a_policy_that_only_gives_pages_back_has_met_the_reuse_moment() {
    let r = checked("vmsplice-gift-fresh", TransportClass::Local, |_| {});
    assert_eq!(r.verdict, Verdict::Safe);
    assert!(r.hazards.count(Hazard::ReleaseBeforeRead) > 0);
    assert!(
        !unreached(&r).contains(&Hazard::ReuseBeforeRead),
        "{}",
        r.detail
    );
}

#[test]
fn an_early_reuse_reaches_the_risks_a_correct_policy_never_takes() {
    let r = checked("siocoutq-drain", TransportClass::Local, |_| {});
    assert_eq!(r.verdict, Verdict::Corrupt);
    assert!(r.hazards.count(Hazard::ReuseWhileHeld) > 0);
    let fixed = checked("zc-completion", TransportClass::Local, |_| {});
    assert_eq!(fixed.hazards.count(Hazard::ReuseWhileHeld), 0);
    assert!(!unreached(&fixed).contains(&Hazard::ReuseWhileHeld));
}

#[test]
fn hazards_are_in_the_json_in_kebab_case() {
    let r = checked("uring-zc-notif", TransportClass::Remote, |_| {});
    let v = serde_json::to_value(&r).expect("a report serializes");
    let reached = &v["hazards"]["reached"];
    assert!(reached["out-of-order-completion"].as_u64() > Some(0), "{v}");
    // The model's NIC never copies: COPIED is not opened on the remote class.
    assert_eq!(v["hazards"]["unreached"], serde_json::json!([]));
    let local = serde_json::to_value(checked("uring-zc-notif", TransportClass::Local, |_| {}))
        .expect("a report serializes");
    assert!(
        local["hazards"]["reached"]["copied"].as_u64() > Some(0),
        "{local}"
    );
}
