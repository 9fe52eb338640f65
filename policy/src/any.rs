//! A type-erased policy, so a catalogue can hold policies of different types.
//!
//! Backends are generic over `P: Policy`; `AnyPolicy` is itself a `Policy`, so a boxed
//! catalogue entry runs on every backend. Code that knows its type (your own crate)
//! should pass the concrete type: it avoids an allocation per model state.

use crate::{Op, Outcome, Policy};
use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};

trait DynPolicy: Send {
    #[must_use]
    fn dyn_poll_op(&self) -> Op;
    fn dyn_handle(&mut self, outcome: Outcome);
    fn clone_box(&self) -> Box<dyn DynPolicy>;
    fn eq_dyn(&self, other: &dyn DynPolicy) -> bool;
    fn hash_dyn(&self, state: &mut dyn Hasher);
    fn debug_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    fn as_any(&self) -> &dyn Any;
}

impl<P: Policy> DynPolicy for P {
    fn dyn_poll_op(&self) -> Op {
        self.poll_op()
    }
    fn dyn_handle(&mut self, outcome: Outcome) {
        self.handle(outcome)
    }
    fn clone_box(&self) -> Box<dyn DynPolicy> {
        Box::new(self.clone())
    }
    fn eq_dyn(&self, other: &dyn DynPolicy) -> bool {
        other.as_any().downcast_ref::<P>() == Some(self)
    }
    fn hash_dyn(&self, mut state: &mut dyn Hasher) {
        self.hash(&mut state)
    }
    fn debug_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Any [`Policy`], boxed.
pub struct AnyPolicy(Box<dyn DynPolicy>);

impl AnyPolicy {
    /// Boxes `policy` so catalogue entries of different types share one type; pass the
    /// concrete type instead where you can (no allocation per model state).
    #[must_use]
    pub fn new<P: Policy>(policy: P) -> Self {
        AnyPolicy(Box::new(policy))
    }
}

impl Clone for AnyPolicy {
    fn clone(&self) -> Self {
        AnyPolicy(self.0.clone_box())
    }
}

impl PartialEq for AnyPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(other.0.as_ref())
    }
}

impl Eq for AnyPolicy {}

impl Hash for AnyPolicy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash_dyn(state)
    }
}

impl fmt::Debug for AnyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug_dyn(f)
    }
}

impl Policy for AnyPolicy {
    fn poll_op(&self) -> Op {
        self.0.dyn_poll_op()
    }
    fn handle(&mut self, outcome: Outcome) {
        self.0.dyn_handle(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    struct Counter(u8);
    impl Policy for Counter {
        fn poll_op(&self) -> Op {
            if self.0 < 2 {
                Op::Siocoutq
            } else {
                Op::Finish
            }
        }
        fn handle(&mut self, _: Outcome) {
            self.0 += 1;
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    struct Other(u8);
    impl Policy for Other {
        fn poll_op(&self) -> Op {
            Op::Finish
        }
        fn handle(&mut self, _: Outcome) {}
    }

    #[test]
    fn equality_and_hash_follow_the_inner_policy() {
        use std::collections::hash_map::DefaultHasher;
        let a = AnyPolicy::new(Counter(0));
        let mut b = a.clone();
        assert_eq!(a, b);
        b.handle(Outcome::Ok);
        assert_ne!(a, b);
        assert_ne!(AnyPolicy::new(Counter(0)), AnyPolicy::new(Other(0)));
        let h = |p: &AnyPolicy| {
            let mut s = DefaultHasher::new();
            p.hash(&mut s);
            s.finish()
        };
        assert_eq!(h(&a), h(&AnyPolicy::new(Counter(0))));
        b.handle(Outcome::Ok);
        assert_eq!(b.poll_op(), Op::Finish);
    }
}
