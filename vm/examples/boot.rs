//! Boots one catalogue kernel with the VM agent: `cargo run -p zcsafe-vm --example boot -- 5.10 [AGENT]`.
use zcsafe_vm::guest::{init_script, Job, JobCell};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cat = zcsafe_vm::Catalogue::builtin();
    let entry = cat
        .select(args.get(1).map(String::as_str).unwrap_or("5.10"))
        .unwrap()[0];
    let cache = zcsafe_vm::cache_dir();
    let k = zcsafe_vm::Fetcher::new(cache.clone(), &cat)
        .fetch(entry)
        .unwrap();
    let agent = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "target/x86_64-unknown-linux-gnu/release/zcsafe-vm-agent".into());
    let img = zcsafe_vm::initramfs::build(
        &k,
        &zcsafe_vm::initramfs::Inputs::new(agent.into()),
        &init_script(),
        &cache,
    )
    .unwrap();
    println!(
        "image {} modules {:?} missing {:?}",
        img.path.display(),
        img.modules,
        img.missing
    );
    let job = Job {
        remote: true,
        netem: std::env::var("NETEM").ok(),
        cells: vec![
            JobCell {
                id: 0,
                command: "zcsafe selftest loopback".into(),
            },
            JobCell {
                id: 1,
                command: "zcsafe selftest remote".into(),
            },
        ],
        ..Default::default()
    };
    let nic = std::env::var("NIC")
        .unwrap_or_else(|_| "virtio".into())
        .parse::<zcsafe_vm::qemu::Nic>()
        .unwrap();
    let run = zcsafe_vm::vm::boot(
        &Default::default(),
        &k.vmlinuz,
        &img.path,
        &job,
        Some(nic),
        |t, e| println!("{:6.2}s {e:?}", t.as_secs_f64()),
    )
    .unwrap();
    println!(
        "end {:?} boot {:?} total {:.2}",
        run.end, run.boot_seconds, run.seconds
    );
    if std::env::var("CONSOLE").is_ok() {
        println!("{}", run.console_tail);
    }
}
