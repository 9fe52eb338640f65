use zcsafe_explain::text::render;
use zcsafe_model::{check, CheckOptions, Scenario};
use zcsafe_policy::{Profile, TransportClass};
fn main() {
    let want: Option<String> = std::env::args().nth(1);
    for e in zcsafe_policies::catalogue() {
        if want.as_deref().is_some_and(|w| w != e.name) {
            continue;
        }
        for t in TransportClass::ALL {
            let s = Scenario::standard_for(&e.pipeline, t, Profile::classic());
            let p = e.build(&s.geometry).unwrap();
            let r = check(p, &s, &CheckOptions::default()).unwrap();
            let exp = e.expect(t, &s.config.profile);
            println!(
                "{:24} {:7} {:12} exp {:8} states {:8} {:8.1} ms  {}",
                e.name,
                t.name(),
                r.verdict.name(),
                exp.verdict.name(),
                r.states,
                r.elapsed.as_secs_f64() * 1000.0,
                if r.verdict == exp.verdict {
                    ""
                } else {
                    "MISMATCH"
                }
            );
            if want.is_some() {
                if let Some(tr) = &r.trace {
                    println!("{}", render(tr));
                }
            }
        }
    }
}
