//! A `zcsafe` binary that knows this crate's policy: every command, `zc-drain` beside the
//! catalogue.

fn main() -> std::process::ExitCode {
    zcsafe_cli::main_with(vec![zcsafe_policies::Entry::of::<
        zcsafe_example_policy::ZcDrain,
    >()])
}
