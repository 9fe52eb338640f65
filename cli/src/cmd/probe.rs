//! `zcsafe probe`: the running kernel's profile, measured by small experiments (never
//! guessed from the version number).

use anyhow::Result;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Print the profile and every experiment's observation as JSON (a file `check
    /// --profile` and `run --profile` accept).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let r = zcsafe_kernel::probe();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    let p = &r.profile;
    println!(
        "zcsafe probe: Linux {} (measured, not looked up)\n",
        r.kernel
    );
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "  vmsplice maps user pages           {}",
        yes(p.vmsplice_maps)
    );
    println!("  SPLICE_F_GIFT                      {:?}", p.gift);
    println!(
        "  splice/sendfile alias page cache   {}",
        yes(p.file_splice_maps)
    );
    println!(
        "  MSG_ZEROCOPY for TCP               {}",
        yes(p.msg_zerocopy)
    );
    println!(
        "  MSG_ZEROCOPY copied on local rx    {}",
        yes(p.zerocopy_local_copies)
    );
    println!(
        "  io_uring SEND_ZC                   {}",
        yes(p.uring_send_zc)
    );
    let window = match p.window {
        zcsafe_policy::WindowRule::AdvWinScale { scale } => {
            format!("space - space >> tcp_adv_win_scale ({scale}): up to 6.5")
        }
        zcsafe_policy::WindowRule::ScalingRatio { ratio } => {
            format!("space x scaling_ratio {ratio}/256: 6.6 and later")
        }
    };
    println!("  receive window (tcp_win_from_space) {window}");
    println!("\nprofile name: {}", p.name);
    println!(
        "experiments:\n{}",
        serde_json::to_string_pretty(&r.details)?
    );
    Ok(ExitCode::SUCCESS)
}
