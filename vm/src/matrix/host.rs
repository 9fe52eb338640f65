//! The `host` kernel of `--kernels host`: the same cell commands run directly on this
//! machine (no VM, so no `remote` transport), judged like a guest's.

use super::cell::{error_cell, kept, Cell, KernelRun};
use super::findings::parse_findings;
use super::options::Options;
use super::transport::GuestTransport;
use std::time::Instant;
use zcsafe_policy::Verdict;

/// The running kernel as a [`KernelRun`] named `host`.
pub(super) fn host_kernel_run() -> KernelRun {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    KernelRun {
        name: "host".into(),
        suite: "host".into(),
        release,
        version: String::new(),
        boot_seconds: vec![],
        error: None,
    }
}

/// A host cell: the same command, run directly on this machine.
pub(super) fn run_host_cell(
    opts: &Options,
    k: &KernelRun,
    policy: &str,
    transport: GuestTransport,
) -> Cell {
    if transport.is_remote() {
        let mut c = error_cell(
            opts,
            k,
            policy,
            transport,
            "the host has no remote transport (it needs two NICs); see the VM kernels".into(),
            None,
        );
        c.finding.verdict = Verdict::Unsupported;
        return c;
    }
    let Some(bin) = &opts.host_binary else {
        return error_cell(
            opts,
            k,
            policy,
            transport,
            "no host binary to run the host kernel's cells".into(),
            None,
        );
    };
    let command = opts.cell_command(policy, transport);
    let mut c = std::process::Command::new(bin);
    match &opts.external {
        // The user's command as given: the host has the program where the user named it.
        Some(cmd) => {
            c.args([
                "run",
                "--external",
                cmd,
                "--transport",
                transport.name(),
                "--json",
            ]);
        }
        None => {
            c.args(command.split_whitespace().skip(1));
        }
    }
    let t = Instant::now();
    let out = crate::process::run(c, opts.machine.limits.cell, &command);
    let secs = t.elapsed().as_secs_f64();
    match out {
        Ok(o) => {
            let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            let found = parse_findings(&lines);
            match found.into_iter().find(|f| f.policy == policy) {
                Some(mut f) => {
                    f.kernel = Some(k.release.clone());
                    Cell {
                        finding: f,
                        kernel_name: "host".into(),
                        kernel_version: String::new(),
                        nic: None,
                        netem: None,
                        seconds: secs,
                        rerun: opts.rerun("host", policy, transport),
                        console_tail: None,
                        output: kept(opts, &lines),
                    }
                }
                None => error_cell(
                    opts,
                    k,
                    policy,
                    transport,
                    format!("`{command}` exited {} without a JSON result", o.status),
                    Some(crate::process::tail(
                        &String::from_utf8_lossy(&o.stderr),
                        2000,
                    )),
                ),
            }
        }
        Err(e) => error_cell(opts, k, policy, transport, e.to_string(), None),
    }
}
