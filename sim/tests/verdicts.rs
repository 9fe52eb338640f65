//! Verdicts other than safe and corrupt, with a policy written here (the API is
//! generic over `P: Policy`, not tied to the catalogue).

use zcsafe_policy::{Op, Outcome, Policy, Region, TransportClass, Verdict};
use zcsafe_sim::{run, SimOptions};

/// Sends one page, then waits for an application ACK that can never come.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct WaitsForever(u8);

impl Policy for WaitsForever {
    fn poll_op(&self) -> Op {
        let buf = Region::new(0, 1);
        match self.0 {
            0 => Op::Fill { buf, stream: 0 },
            1 => Op::Send {
                buf,
                zerocopy: false,
            },
            _ => Op::WaitAppAck { beyond: 1000 },
        }
    }
    fn handle(&mut self, _: Outcome) {
        self.0 += 1;
    }
}

#[test]
fn a_wait_that_cannot_end_is_stuck_soon() {
    for t in TransportClass::ALL {
        let mut o = SimOptions::new(t);
        o.seeds = 5;
        let r = run("waits-forever", &WaitsForever(0), &o).unwrap();
        assert_eq!(r.verdict, Verdict::Stuck, "{}", r.detail);
        assert!(r.detail.contains("wait app-ack"), "{}", r.detail);
        assert!(
            r.sim_time.as_secs() < 10,
            "stuck is detected by quiescence, not by the 120 s limit: {:?}",
            r.sim_time
        );
    }
}

/// Fills a page outside the buffer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OutOfBounds;

impl Policy for OutOfBounds {
    fn poll_op(&self) -> Op {
        Op::Fill {
            buf: Region::new(99, 1),
            stream: 0,
        }
    }
    fn handle(&mut self, _: Outcome) {}
}

#[test]
fn a_fault_is_an_error() {
    let r = run("oob", &OutOfBounds, &SimOptions::new(TransportClass::Local)).unwrap();
    assert_eq!(r.verdict, Verdict::Error);
    assert_eq!(
        r.scenarios, 200,
        "errors keep looking for corruption in later seeds"
    );
}

#[test]
fn zero_seeds_is_an_error_not_safe() {
    let copy = zcsafe_policies::find("copy").expect("copy is in the catalogue");
    let mut o = SimOptions::new(TransportClass::Local);
    o.seeds = 0;
    o.seed = 7;
    let err = zcsafe_sim::run_entry(&copy, &o).expect_err("zero seeds must not judge");
    assert!(
        matches!(err, zcsafe_sim::SimError::NoSeeds { first: 7, seeds: 0 }),
        "{err}"
    );
    assert!(err.to_string().contains("at least one"), "{err}");
}

#[test]
fn seeds_past_the_last_one_are_not_counted() {
    let copy = zcsafe_policies::find("copy").expect("copy is in the catalogue");
    let mut o = SimOptions::new(TransportClass::Local);
    o.seeds = 10;
    for (first, ran) in [(u64::MAX - 1, 2), (u64::MAX, 1)] {
        o.seed = first;
        let r = zcsafe_sim::run_entry(&copy, &o).unwrap();
        assert_eq!(r.verdict, Verdict::Safe, "{}", r.detail);
        assert_eq!(r.scenarios, ran, "seeds from {first} up to u64::MAX");
        assert!(
            r.detail.starts_with(&format!("{ran} seeds")),
            "{}",
            r.detail
        );
    }
}
