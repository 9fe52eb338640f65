//! A `zcsafe` binary that knows this crate's policies: every command, `zc-drain`, `ring-zc`
//! and `ring-zc-inorder` beside the catalogue.

fn main() -> std::process::ExitCode {
    use zcsafe_policies::Entry;
    use zcsafe_ring_policy::{RingZc, RingZcInorder, ZcDrain};
    zcsafe_cli::main_with(vec![
        Entry::of::<ZcDrain>(),
        Entry::of::<RingZc>(),
        Entry::of::<RingZcInorder>(),
    ])
}
