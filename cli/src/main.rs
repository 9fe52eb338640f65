//! The `zcsafe` binary: the command line of [`zcsafe_cli`] over the built-in policies.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    zcsafe_cli::main()
}
