//! Outside policies registered once per process are found like built-in ones. Its own test
//! binary: the registry is process-wide.

use zcsafe_policies::copy::Copy;
use zcsafe_policies::registry::{register, registered, RegisterError};
use zcsafe_policies::{builtin, catalogue, find, BuildError, Catalogued, Entry};
use zcsafe_policy::{Expectation, Geometry, Profile, TransportClass};

/// Outside policies: the catalogue's `copy` under other names.
macro_rules! named {
    ($ty:ident, $name:literal) => {
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        struct $ty(Copy);
        zcsafe_policies::delegate_policy!($ty);
        impl Catalogued for $ty {
            const NAME: &'static str = $name;
            const SUMMARY: &'static str = "test";
            const ORIGIN: &'static str = "test";
            fn new(g: &Geometry) -> Result<Self, BuildError> {
                Copy::new(g).map($ty)
            }
            fn expect(_: TransportClass, _: &Profile) -> Expectation {
                Expectation::safe("it copies")
            }
        }
    };
}
named!(Shouting, "My_Policy");
named!(Impostor, "copy");
named!(Ring, "ring-4");
named!(Mine, "mine");

#[test]
fn registered_policies_are_found_beside_the_builtin_ones_once_per_process() {
    assert!(registered().is_empty());
    assert_eq!(
        register(vec![Entry::of::<Shouting>()]),
        Err(RegisterError::BadName("My_Policy"))
    );
    assert_eq!(
        register(vec![Entry::of::<Impostor>()]),
        Err(RegisterError::Taken("copy"))
    );
    assert_eq!(
        register(vec![Entry::of::<Mine>(), Entry::of::<Mine>()]),
        Err(RegisterError::Taken("mine"))
    );
    assert!(find("mine").is_none(), "a refused set registers nothing");

    register(vec![Entry::of::<Mine>(), Entry::of::<Ring>()]).unwrap();
    let names: Vec<_> = catalogue().iter().map(|e| e.name).collect();
    assert_eq!(names.len(), builtin().len() + 2);
    assert_eq!(&names[names.len() - 2..], ["mine", "ring-4"]);
    let mine = find("mine").expect("registered");
    assert!(mine.build(&Geometry::model_standard()).is_ok());
    assert_eq!(
        register(vec![Entry::of::<Ring>()]),
        Err(RegisterError::AlreadyRegistered)
    );
}
