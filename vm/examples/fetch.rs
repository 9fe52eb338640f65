//! Fetches catalogue kernels into the cache: `cargo run -p zcsafe-vm --example fetch -- 5.10,sid`.
fn main() {
    let cat = zcsafe_vm::Catalogue::builtin();
    let list = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let f = zcsafe_vm::Fetcher::new(zcsafe_vm::cache_dir(), &cat);
    for e in cat.select(&list).unwrap_or_else(|e| panic!("{e}")) {
        let t = std::time::Instant::now();
        match f.fetch(e) {
            Ok(k) => println!(
                "{} {} {} {:?} ({:.1}s)",
                k.name,
                k.release,
                k.version,
                k.vmlinuz,
                t.elapsed().as_secs_f64()
            ),
            Err(err) => println!("{}: error: {err}", e.name),
        }
    }
}
