//! Boot-to-userspace seconds per kernel under QEMU (for `make bench`):
//! `cargo run --release -p zcsafe-vm --example bench -- [KERNELS] [BOOTS]`.
//! Each kernel boots BOOTS times (default 3), one VM at a time, with an empty job; the
//! guest binary is busybox (static), so the zcsafe CLI is not needed.
use zcsafe_vm::guest::{init_script, Event, Job};
use zcsafe_vm::initramfs::{self, Inputs};
use zcsafe_vm::vm::{self, Machine};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let list = args.get(1).cloned().unwrap_or_else(|| "all".into());
    let boots: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(3);
    let cat = zcsafe_vm::Catalogue::builtin();
    let cache = zcsafe_vm::cache_dir();
    let fetcher = zcsafe_vm::Fetcher::new(cache.clone(), &cat);
    let machine = Machine::default();
    println!("| kernel | release | boot to userspace, host s (min / median) | guest uptime at init, s (median) | boot + poweroff, s (median) |");
    println!("|---|---|---|---|---|");
    for e in cat.select(&list).expect("kernel list") {
        let k = match fetcher.fetch(e) {
            Ok(k) => k,
            Err(err) => {
                println!("| {} | not available: {err} | | | |", e.name);
                continue;
            }
        };
        let img = initramfs::build(
            &k,
            &Inputs::new("/bin/busybox".into()),
            &init_script(),
            &cache,
        )
        .expect("initramfs");
        let (mut host, mut guest, mut total) = (vec![], vec![], vec![]);
        for _ in 0..boots {
            let mut uptime = f64::NAN;
            let run = vm::boot(
                &machine,
                &k.vmlinuz,
                &img.path,
                &Job::default(),
                None,
                |_, ev| {
                    if let Event::Boot { uptime: u, .. } = ev {
                        uptime = *u;
                    }
                },
            )
            .expect("boot");
            if let Some(b) = run.boot_seconds {
                host.push(b);
                guest.push(uptime);
                total.push(run.seconds);
            } else {
                eprintln!("{}: boot failed: {:?}", e.name, run.end);
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
        };
        let min = host.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "| {} | {} | {:.2} / {:.2} | {:.2} | {:.2} |",
            e.name,
            k.release,
            min,
            med(&mut host),
            med(&mut guest),
            med(&mut total)
        );
    }
}
