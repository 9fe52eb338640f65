//! What the tests of the author's binary share: running it, and reading its JSON.

use serde_json::Value;
use std::process::{Command, Output};

/// Runs the author's binary (`src/main.rs`) with `args`.
pub fn zcsafe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zcsafe-ring"))
        .args(args)
        .output()
        .expect("the example binary runs")
}

/// The string fields `keys` of every finding in a results object, in order.
pub fn fields(results: &Value, keys: &[&str]) -> Vec<Vec<String>> {
    results["results"]
        .as_array()
        .expect("a results array")
        .iter()
        .map(|f| {
            keys.iter()
                .map(|k| f[*k].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect()
}

/// The JSON on stdout (its stderr in the panic message if it is not JSON).
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
