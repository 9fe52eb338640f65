//! Every `$ zcsafe …` command shown in the README and the tutorial parses: a renamed
//! flag or subcommand breaks this test, not a reader's first try.
//!
//! Each command is run with `--help` appended (before a `--`), so clap rejects unknown subcommands and
//! flags but nothing is executed (values such as policy names are checked elsewhere).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    let src = root().join("docs/src");
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    chapters.sort();
    docs.extend(chapters);
    docs
}

/// Splits a console line into words: single and double quotes group, an unquoted `#`
/// starts a comment, and a redirection or pipe ends the command.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '#' | '>' | '|') if !in_word => break,
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

#[test]
fn words_follow_the_shell() {
    assert_eq!(
        words("zcsafe run --external './s {host} {port}' -t veth   # note"),
        [
            "zcsafe",
            "run",
            "--external",
            "./s {host} {port}",
            "-t",
            "veth"
        ]
    );
    assert_eq!(
        words("zcsafe run --json > run.json"),
        ["zcsafe", "run", "--json"]
    );
    assert_eq!(
        words("zcsafe check -p a#b"),
        ["zcsafe", "check", "-p", "a#b"]
    );
}

#[test]
fn every_documented_command_parses() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (n, line) in text.lines().enumerate() {
            let Some(cmd) = line.trim_start().strip_prefix("$ zcsafe ") else {
                continue;
            };
            let mut args = words(cmd);
            // before `--`: what follows is a program's own arguments (`zcsafe sanitize`)
            let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
            args.insert(at, "--help".into());
            let out = Command::new(env!("CARGO_BIN_EXE_zcsafe"))
                .args(&args)
                .output()
                .unwrap();
            checked += 1;
            if !out.status.success() {
                broken.push(format!(
                    "{}:{}: zcsafe {}\n    {}",
                    doc.display(),
                    n + 1,
                    cmd,
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .next()
                        .unwrap_or("")
                ));
            }
        }
    }
    assert!(
        checked >= 30,
        "only {checked} documented commands found: did the docs move?"
    );
    assert!(broken.is_empty(), "broken commands:\n{}", broken.join("\n"));
}
