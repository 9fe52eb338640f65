//! The simulator and the exhaustive checker judge every catalogued policy alike, in
//! both transport classes, with each built-in kernel profile (classic is the standard).
//!
//! Seeds per safe verdict: 40 by default, `ZCSAFE_LONG=1` for 1000.

use zcsafe_model::{check, CheckOptions, Scenario};
use zcsafe_policy::{Profile, TransportClass, Verdict};
use zcsafe_sim::{run_entry, SimOptions};

fn seeds() -> u64 {
    if std::env::var_os("ZCSAFE_LONG").is_some() {
        1000
    } else {
        40
    }
}

#[test]
fn sim_and_checker_agree_for_every_policy_and_transport() {
    let mut disagreements = Vec::new();
    for profile in Profile::builtin() {
        // The simulator runs no UDP world (`udp_entries_are_unsupported_with_the_reason`).
        let tcp = zcsafe_policies::catalogue()
            .into_iter()
            .filter(|e| e.pipeline.socket == zcsafe_policy::SocketKind::Tcp);
        for e in tcp {
            for t in TransportClass::ALL {
                let s = Scenario::standard(t, profile.clone());
                let checked = check(e.build(&s.geometry).unwrap(), &s, &CheckOptions::default())
                    .unwrap()
                    .verdict;
                let mut o = SimOptions::new(t);
                o.profile = profile.clone();
                o.seeds = seeds();
                let sim = run_entry(&e, &o).unwrap();
                if sim.verdict != checked {
                    disagreements.push(format!(
                        "{} {t} {}: checker {checked}, sim {} after {} seeds ({})",
                        e.name, profile.name, sim.verdict, sim.scenarios, sim.detail
                    ));
                }
                if sim.verdict == Verdict::Corrupt {
                    assert!(
                        sim.replay_command
                            .as_deref()
                            .is_some_and(|c| c.contains(&format!("--seed {}", sim.seed.unwrap()))),
                        "a finding names its replay command"
                    );
                }
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// The simulator's network is TCP's: a UDP entry is `unsupported` with the reason, not
/// run on a TCP world and not skipped.
#[test]
fn udp_entries_are_unsupported_with_the_reason() {
    for name in ["udp-zc-naive", "udp-zc-completion"] {
        let e = zcsafe_policies::find(name).expect(name);
        for t in [
            zcsafe_policy::TransportClass::Local,
            zcsafe_policy::TransportClass::Remote,
        ] {
            let r = zcsafe_sim::run_entry(&e, &zcsafe_sim::SimOptions::new(t)).expect("report");
            assert_eq!(
                r.verdict,
                zcsafe_policy::Verdict::Unsupported,
                "{name} {t:?}"
            );
            assert_eq!(r.detail, zcsafe_sim::run::UDP_UNSUPPORTED);
            assert_eq!(r.scenarios, 0);
        }
    }
}
