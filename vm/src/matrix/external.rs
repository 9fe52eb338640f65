//! Judging the user's own sender (`--external CMD`) instead of the catalogue's policies:
//! the cell command that runs it in the guest, and the program it names, found on this
//! host so it can be carried into the guests. Kept apart because it is shell-word
//! parsing and `PATH` lookup, nothing the rest of the matrix needs to know about.

use crate::error::{Result, VmError};
use std::path::PathBuf;
use std::time::Duration;

/// The policy name of cells that judge a user's sender program (`--external`).
pub const EXTERNAL: &str = "external";

/// Where carried programs live in the guest (first on its `PATH`).
pub const GUEST_BIN_DIR: &str = "/opt/zcsafe/bin";

/// The cell command for `--external CMD`: the guest's zcsafe runs the user's sender.
pub fn external_command(cmd: &str) -> String {
    format!(
        "zcsafe run --external '{}' --transport {{transport}} --json",
        cmd.replace('\'', "'\\''")
    )
}

/// The program an `--external` command runs, found on this host so it can be carried into
/// the guests: the first word after any `NAME=value` assignments, when it is a path to a
/// file (it has a `/`) or a name on `PATH` that the guest does not already have (busybox's
/// applets, `zcsafe`). Returns the host file and the command with that word replaced by
/// its guest path (`/opt/zcsafe/bin/NAME`), or `None` when there is nothing to carry
/// (a guest command, a shell construct, a name only `--carry` provides).
pub fn external_program(
    cmd: &str,
    guest_has: &dyn Fn(&str) -> bool,
) -> Result<Option<(PathBuf, String)>> {
    let mut at = 0;
    let word = loop {
        let rest = &cmd[at..];
        let skip = rest.len() - rest.trim_start().len();
        let start = at + skip;
        let len = cmd[start..]
            .find(char::is_whitespace)
            .unwrap_or(cmd.len() - start);
        if len == 0 {
            return Ok(None);
        }
        let w = &cmd[start..start + len];
        let assignment = w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !assignment {
            break (start, w);
        }
        at = start + len;
    };
    let (start, w) = word;
    // Quoting, expansions, redirections, placeholders: the shell's business, not a file name.
    if w.chars().any(|c| "'\"\\$`;|&()<>{}*?[]~".contains(c)) {
        return Ok(None);
    }
    let host = if w.contains('/') {
        let p = PathBuf::from(w);
        if !p.is_file() {
            return Err(VmError::Usage(format!(
                "the external command runs `{w}`, which is not a file (paths are relative to {}); pass the sender's path, or a program on PATH",
                std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()
            )));
        }
        p
    } else if guest_has(w) {
        return Ok(None);
    } else {
        match find_on_path(w) {
            Some(p) => p,
            None => return Ok(None),
        }
    };
    let name = host
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| VmError::NotCarriable { path: host.clone() })?;
    let guest = format!("{GUEST_BIN_DIR}/{name}");
    let command = format!("{}{guest}{}", &cmd[..start], &cmd[start + w.len()..]);
    Ok(Some((host, command)))
}

/// An executable file named `name` in a directory of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Commands every guest has without carrying: busybox's applets (`busybox --list`) and
/// `zcsafe` itself.
pub fn guest_commands(busybox: &std::path::Path) -> Vec<String> {
    let mut c = std::process::Command::new(busybox);
    c.arg("--list");
    let mut out: Vec<String> = crate::process::run(c, Duration::from_secs(10), "busybox --list")
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    out.push("zcsafe".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_an_external_command_names_is_carried_by_its_guest_path() {
        let t = tempfile::tempdir().unwrap();
        let snd = t.path().join("zc_sender");
        std::fs::write(&snd, "#!/bin/sh\n").unwrap();
        let none = |_: &str| false;
        let cmd = format!("{} {{host}} {{port}} --mode zc-wait", snd.display());
        let (host, guest) = external_program(&cmd, &none).unwrap().unwrap();
        assert_eq!(host, snd);
        assert_eq!(
            guest,
            "/opt/zcsafe/bin/zc_sender {host} {port} --mode zc-wait"
        );
        // After environment assignments, too.
        let cmd = format!("A=1 B_2=x  {} {{host}}", snd.display());
        let (_, guest) = external_program(&cmd, &none).unwrap().unwrap();
        assert_eq!(guest, "A=1 B_2=x  /opt/zcsafe/bin/zc_sender {host}");
        // A name on PATH (ls), unless the guest has it already.
        let (host, guest) = external_program("ls -l", &none).unwrap().unwrap();
        assert!(host.ends_with("ls") && host.is_absolute(), "{host:?}");
        assert_eq!(guest, "/opt/zcsafe/bin/ls -l");
        assert_eq!(external_program("ls -l", &|w| w == "ls").unwrap(), None);
        // Shell constructs and unknown names are left alone; a missing path is an error.
        assert_eq!(external_program("$SENDER {host}", &none).unwrap(), None);
        assert_eq!(external_program("'my sender' {host}", &none).unwrap(), None);
        assert_eq!(
            external_program("zcsafe-no-such-program", &none).unwrap(),
            None
        );
        assert_eq!(external_program("   ", &none).unwrap(), None);
        let e = external_program("./nope {host}", &none).unwrap_err();
        assert!(e.to_string().contains("not a file"), "{e}");
        // busybox's applets are the guest's own.
        if std::path::Path::new("/bin/busybox").is_file() {
            let g = guest_commands(std::path::Path::new("/bin/busybox"));
            assert!(g.iter().any(|c| c == "sh") && g.iter().any(|c| c == "zcsafe"));
        }
    }
}
