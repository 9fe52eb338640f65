//! loom: every interleaving (up to a preemption bound) of the application and the
//! kernel's agents, and of a zero-copy buffer pool's threads.
//!
//! Run with `cargo test -p zcsafe-sim --features loom --release --test loom`.
//! `LOOM_MAX_PREEMPTIONS` bounds the search (these tests default to 2), and
//! `LOOM_MAX_PERMUTATIONS` the number of executions (default 5000 here, 500 000 with
//! `ZCSAFE_LONG=1`; the pool tests are exhaustive within either). To replay a
//! failing interleaving set `LOOM_CHECKPOINT_FILE=/tmp/loom.json` (every execution
//! path is stored, so after a failure it holds the failing one; the next run starts
//! there) and `LOOM_LOG=1 LOOM_LOCATION=1` for the step-by-step log.
#![cfg(feature = "loom")]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use zcsafe_model::Scenario;
use zcsafe_policy::{Profile, TransportClass};
use zcsafe_sim::{interleave, pool};

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.max_branches = b.max_branches.max(100_000);
    // loom stores the execution path only every `checkpoint_interval` executions: to
    // replay a failure, store every one (the file then holds the failing path).
    if b.checkpoint_file.is_some() && std::env::var_os("LOOM_CHECKPOINT_INTERVAL").is_none() {
        b.checkpoint_interval = 1;
    }
    // The kernel harness has more orders than CI has time for: bound the executions
    // unless LOOM_MAX_PERMUTATIONS says otherwise (ZCSAFE_LONG=1 raises the default).
    // loom checks the bound every `checkpoint_interval` executions.
    if b.max_permutations.is_none() {
        let long = std::env::var_os("ZCSAFE_LONG").is_some();
        b.max_permutations = Some(if long { 500_000 } else { 5_000 });
        b.checkpoint_interval = b.checkpoint_interval.clamp(1, 1_000);
    }
    b
}

/// Runs `f` under loom; returns the interleavings explored, or the panic message of
/// the first failing one (reported with the number of executions it took).
fn explore(f: impl Fn() + Sync + Send + 'static) -> Result<usize, String> {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let b = builder();
    let started = std::time::Instant::now();
    let r = catch_unwind(AssertUnwindSafe(move || {
        b.check(move || {
            c.fetch_add(1, Ordering::Relaxed);
            f()
        })
    }));
    match r {
        Ok(()) => {
            let n = count.load(Ordering::Relaxed);
            eprintln!("{n} executions in {:.2} s", started.elapsed().as_secs_f64());
            Ok(n)
        }
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            eprintln!(
                "found after {} execution(s): {msg}",
                count.load(Ordering::Relaxed)
            );
            Err(msg)
        }
    }
}

fn kernel(policy: &str, t: TransportClass) -> Result<usize, String> {
    let s = interleave::tiny(Scenario::standard(t, Profile::classic()));
    let p = zcsafe_policies::find(policy)
        .unwrap()
        .build(&s.geometry)
        .unwrap();
    // AnyPolicy is Send, not Sync: hand each execution its own clone.
    let p = std::sync::Mutex::new(p);
    explore(move || interleave::execution(p.lock().unwrap().clone(), &s))
}

#[test]
fn pool_with_completion_and_release_acquire_is_clean() {
    let n = explore(|| pool::execution(pool::Reaper::AfterCompletion)).unwrap();
    eprintln!("pool, correct: {n} interleavings");
    assert!(n > 1);
}

#[test]
fn pool_with_relaxed_ordering_is_caught() {
    let e = explore(|| pool::execution(pool::Reaper::Relaxed)).unwrap_err();
    eprintln!("pool, relaxed: {e}");
}

#[test]
fn pool_releasing_on_submit_is_caught() {
    let e = explore(|| pool::execution(pool::Reaper::OnSubmit)).unwrap_err();
    eprintln!("pool, release on submit: {e}");
}

#[test]
fn copy_is_clean_in_every_interleaving() {
    for t in TransportClass::ALL {
        let n = kernel("copy", t).unwrap();
        eprintln!("copy {t}: {n} interleavings");
    }
}

#[test]
fn zc_naive_corrupts_in_some_interleaving() {
    for t in TransportClass::ALL {
        let e = kernel("zc-naive", t).unwrap_err();
        assert!(e.contains("corrupt"), "{e}");
    }
}

#[test]
fn siocoutq_drain_corrupts_locally_only() {
    let e = kernel("siocoutq-drain", TransportClass::Local).unwrap_err();
    assert!(e.contains("corrupt"), "{e}");
    let n = kernel("siocoutq-drain", TransportClass::Remote).unwrap();
    eprintln!("siocoutq-drain remote: {n} interleavings");
}

/// loom and the exhaustive checker on the same tiny scenario: where the checker proves
/// a policy safe, no interleaving loom tries may corrupt (its executions are paths the
/// checker explored); where the checker finds a corruption, loom finds one too.
#[test]
fn loom_agrees_with_the_checker_on_the_tiny_scenario() {
    use zcsafe_model::{check, CheckOptions};
    use zcsafe_policy::Verdict;
    let mut checked = 0;
    for e in zcsafe_policies::catalogue() {
        for t in TransportClass::ALL {
            let s = interleave::tiny(Scenario::standard_for(&e.pipeline, t, Profile::classic()));
            let Ok(p) = e.build(&s.geometry) else {
                continue;
            };
            let model = check(p.clone(), &s, &CheckOptions::default())
                .unwrap()
                .verdict;
            let p = std::sync::Mutex::new(p);
            let s2 = s.clone();
            let loom = explore(move || interleave::execution(p.lock().unwrap().clone(), &s2));
            eprintln!("{} {t}: checker {model}, loom {loom:?}", e.name);
            match model {
                Verdict::Safe => assert!(loom.is_ok(), "{} {t}: {loom:?}", e.name),
                Verdict::Corrupt => assert!(
                    loom.as_ref().is_err_and(|m| m.contains("corrupt")),
                    "{} {t}: checker corrupt, loom {loom:?}",
                    e.name
                ),
                _ => {}
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} policies build for the tiny scenario"
    );
}
