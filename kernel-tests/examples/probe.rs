//! Prints the measured kernel profile: `cargo run -p zcsafe-kernel --example probe`.
fn main() {
    let r = zcsafe_kernel::probe();
    println!("{}", serde_json::to_string_pretty(&r).expect("json"));
}
