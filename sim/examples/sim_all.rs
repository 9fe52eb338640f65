//! Every catalogued policy under the simulator, both transports: verdict, seeds, time.
//! `cargo run --release -p zcsafe-sim --example sim_all [SEEDS]`
use zcsafe_policy::TransportClass;
use zcsafe_sim::{run_entry, SimOptions};

fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    for e in zcsafe_policies::catalogue() {
        for t in TransportClass::ALL {
            let mut o = SimOptions::new(t);
            o.seeds = seeds;
            if let Ok(p) = std::env::var("PROFILE") {
                o.profile = zcsafe_policy::Profile::by_name(&p).expect("profile name");
            }
            let r = run_entry(&e, &o).unwrap();
            let exp = e.expect(t, &o.profile);
            let s = zcsafe_model::Scenario::standard(t, o.profile.clone());
            let checked =
                zcsafe_model::check(e.build(&s.geometry).unwrap(), &s, &Default::default())
                    .unwrap()
                    .verdict;
            println!(
                "{:24} {:7} {:9} model {:9} exp {:8} seeds {:5} {:9.1} ms {}",
                e.name,
                t.name(),
                r.verdict.name(),
                checked.name(),
                exp.verdict.name(),
                r.scenarios,
                r.elapsed.as_secs_f64() * 1000.0,
                if r.verdict == checked { "" } else { "MISMATCH" }
            );
        }
    }
}
