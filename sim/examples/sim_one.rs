//! One policy, one seed, printed as a timeline.
//! `cargo run -p zcsafe-sim --example sim_one POLICY local|remote SEED`
use zcsafe_policy::TransportClass;
use zcsafe_sim::{simulate, SimOptions};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let e = zcsafe_policies::find(&a[1]).expect("policy");
    let t = a[2].parse::<TransportClass>().expect("transport");
    let seed: u64 = a[3].parse().unwrap();
    let o = SimOptions::new(t);
    let s = o.scenario(seed);
    let p = e.build(&s.model.geometry).unwrap();
    let r = simulate(e.name, p, &s, seed).unwrap();
    print!("{}", zcsafe_explain::text::render(&r.trace));
}
