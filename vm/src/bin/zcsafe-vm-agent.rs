//! A small static guest program that checks the VM plumbing itself (not a reuse policy):
//! it sends the stream pattern over a guest transport with plain `send()` and verifies
//! every byte at the receiver. zcsafe's tests boot it when the real `zcsafe` guest binary
//! is not built; its output has the `results` shape of `zcsafe run --json`.
//!
//! `zcsafe-vm-agent selftest loopback|remote [BYTES]` · `zcsafe-vm-agent hang`

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;
use zcsafe_policy::{stream, Evidence, Finding, Results, Verdict};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("selftest") => {
            let transport = args.get(2).cloned().unwrap_or_else(|| "loopback".into());
            let bytes: u64 = args.get(3).and_then(|b| b.parse().ok()).unwrap_or(4 << 20);
            let t = Instant::now();
            let mut counts = serde_json::Map::new();
            let (verdict, detail) = match selftest(&transport, bytes) {
                Ok((got, bad)) => {
                    counts.insert("bytes".into(), got.into());
                    counts.insert("corrupt_words".into(), bad.into());
                    if got == bytes && bad == 0 {
                        (Verdict::Safe, format!("{got} bytes arrived intact"))
                    } else if bad > 0 {
                        (
                            Verdict::Corrupt,
                            format!("{bad} corrupt words in {got} bytes"),
                        )
                    } else {
                        (Verdict::Error, format!("{got} of {bytes} bytes arrived"))
                    }
                }
                Err(e) => (Verdict::Error, e),
            };
            counts.insert(
                "seconds".into(),
                serde_json::json!(t.elapsed().as_secs_f64()),
            );
            let finding = Finding {
                policy: "vm-selftest".into(),
                transport,
                backend: "vm-agent".into(),
                kernel: None,
                verdict,
                expected: Verdict::Safe,
                expected_why: "plain send() with an untouched buffer always delivers the stream"
                    .into(),
                predicted: None,
                evidence: Evidence {
                    detail,
                    trace: None,
                    counts,
                    attempts: Vec::new(),
                    ..Default::default()
                },
            };
            let code = u8::from(!finding.agrees());
            println!(
                "{}",
                serde_json::to_string(&Results::new(vec![finding])).unwrap()
            );
            std::process::exit(code.into());
        }
        Some("hang") => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        _ => {
            eprintln!("usage: zcsafe-vm-agent selftest loopback|remote [BYTES] | hang");
            std::process::exit(2);
        }
    }
}

fn selftest(transport: &str, bytes: u64) -> Result<(u64, u64), String> {
    let (bind, connect, netns) = match transport {
        "loopback" => ("127.0.0.1".to_string(), "127.0.0.1".to_string(), None),
        "remote" => {
            let env = |k: &str| {
                std::env::var(k).map_err(|_| {
                    format!("{k} is not set: the guest did not set up the remote transport")
                })
            };
            let peer = env("ZCSAFE_PEER_ADDR")?;
            (peer.clone(), peer, Some(env("ZCSAFE_PEER_NETNS")?))
        }
        t => return Err(format!("unknown transport {t}")),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || -> Result<(u64, u64), String> {
        if let Some(ns) = netns {
            let f = std::fs::File::open(&ns).map_err(|e| format!("{ns}: {e}"))?;
            // SAFETY: setns touches no memory; `f` keeps the fd open for the call. It moves
            // only this receiver thread into the namespace, not the agent's main thread.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
        }
        let l = TcpListener::bind((bind.as_str(), 0)).map_err(|e| format!("bind {bind}: {e}"))?;
        tx.send(l.local_addr().unwrap().port()).unwrap();
        let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
        let mut off = 0u64;
        let mut bad = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        let mut carry = Vec::new();
        loop {
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            carry.extend_from_slice(&buf[..n]);
            let whole = carry.len() / 8 * 8;
            bad += stream::verify(&carry[..whole], off, 0).0;
            off += whole as u64;
            carry.drain(..whole);
        }
        bad += stream::verify(&carry, off, 0).0;
        Ok((off + carry.len() as u64, bad))
    });
    let port = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .map_err(|_| "receiver did not start".to_string())?;
    let mut s = TcpStream::connect((connect.as_str(), port))
        .map_err(|e| format!("connect {connect}:{port}: {e}"))?;
    let mut chunk = vec![0u8; 1 << 16];
    let mut off = 0u64;
    while off < bytes {
        let n = chunk.len().min((bytes - off) as usize);
        stream::fill(&mut chunk[..n], off, 0);
        s.write_all(&chunk[..n]).map_err(|e| e.to_string())?;
        off += n as u64;
    }
    drop(s);
    receiver
        .join()
        .map_err(|_| "receiver panicked".to_string())?
}
