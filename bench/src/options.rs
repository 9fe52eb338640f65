//! What to measure: the bench's options and their defaults, the policy and chunk-size
//! sets, the send-buffer ceiling that sizes the pipelines, and the size syntax of
//! `--chunks`.
//!
//! Why a module: these are the inputs the CLI builds and the rounds read; nothing here
//! runs a stream.

use crate::BenchError;
use std::time::Duration;
use zcsafe_kernel::transport::Transport;
use zcsafe_policies::Entry;

/// The baseline every policy is compared with.
pub const BASELINE: &str = "copy";

/// Policies the bench runs by default: `copy`, each safe reference policy and its unsafe
/// twin (the naive scheme it fixes, [`Entry::twin`]).
pub const DEFAULT_POLICIES: &[&str] = &[
    "copy",
    "zc-naive",
    "zc-completion",
    "uring-zc-naive",
    "uring-zc-notif",
    "vmsplice-double-buffer",
    "app-ack",
    "vmsplice-gift-fresh",
    "siocoutq-drain",
    "siocoutq-seq",
    "sendfile-rewrite",
    "sendfile-rotate",
];

/// Default chunk sizes: 4 KiB to 1 MiB.
pub const DEFAULT_CHUNKS: &[u64] = &[4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20];

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Catalogue entries; `copy` is added first if missing.
    pub policies: Vec<Entry>,
    pub transports: Vec<Transport>,
    pub chunks: Vec<u64>,
    /// Buffer slots (chunks in flight) of the pipelined policies…
    pub slots: u64,
    /// …raised so that at least this many bytes can be in flight. A completion comes
    /// only when the ACK frees the skb, so a safe policy with less user buffer than the
    /// socket may queue is throttled by its own buffer while its unsafe twin is throttled
    /// by `sk_sndbuf`: zc-completion at 4 KiB on veth was 0.35× zc-naive with 32 slots,
    /// 0.5× with 1 MiB in flight, 0.87–1.0× with 4 MiB (= `tcp_wmem[2]`). Default:
    /// [`sndbuf_ceiling`].
    pub min_inflight: u64,
    /// Measured rounds per transport and chunk size.
    pub repeat: u32,
    /// Rounds run first and discarded.
    pub warmup: u32,
    /// Fixed stream length; `None`: sized from the warm-up to take about `target_run`.
    pub bytes: Option<u64>,
    pub target_run: Duration,
    /// Bounds of an adaptive stream length.
    pub min_bytes: u64,
    pub max_bytes: u64,
    pub seed: u64,
    pub op_timeout: Duration,
    /// Progress lines on stderr.
    pub verbose: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            policies: DEFAULT_POLICIES
                .iter()
                .filter_map(|n| zcsafe_policies::find(n))
                .collect(),
            transports: vec![Transport::Loopback],
            chunks: DEFAULT_CHUNKS.to_vec(),
            slots: 32,
            min_inflight: sndbuf_ceiling(),
            repeat: 5,
            warmup: 1,
            bytes: None,
            target_run: Duration::from_millis(250),
            min_bytes: 4 << 20,
            max_bytes: 512 << 20,
            seed: 0,
            op_timeout: Duration::from_secs(10),
            verbose: false,
        }
    }
}

/// Where `/proc` publishes the TCP send-buffer bounds (min, default, max).
const TCP_WMEM: &str = "/proc/sys/net/ipv4/tcp_wmem";

/// The most a TCP socket may queue for sending: the autotuning ceiling `tcp_wmem[2]`
/// (`tcp_sndbuf_expand` grows `sk_sndbuf` up to it). New network namespaces copy the
/// initial namespace's value (`tcp_sk_init`), so the host's file holds for veth too.
/// 4 MiB, the kernel's default, when the file cannot be read.
pub fn sndbuf_ceiling() -> u64 {
    std::fs::read_to_string(TCP_WMEM)
        .ok()
        .and_then(|s| parse_tcp_wmem(&s))
        .unwrap_or(4 << 20)
}

fn parse_tcp_wmem(s: &str) -> Option<u64> {
    s.split_whitespace().nth(2)?.parse().ok()
}

impl BenchOptions {
    /// The slots a pipelined policy gets at `chunk`.
    pub fn slots_for(&self, chunk: u64) -> u64 {
        self.slots.max(self.min_inflight / chunk.max(1)).max(1)
    }
}

/// Parses `4K,16k,64KiB,1M,65536`.
pub fn parse_sizes(s: &str) -> Result<Vec<u64>, BenchError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(parse_size)
        .collect()
}

pub fn parse_size(p: &str) -> Result<u64, BenchError> {
    let lower = p.to_ascii_lowercase();
    let t = lower
        .trim_end_matches("ib")
        .trim_end_matches('b')
        .to_string();
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (&t[..], 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| BenchError(format!("bad size {p:?}: use e.g. 4K, 64KiB, 1M or 65536")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sndbuf_ceiling_is_the_third_tcp_wmem_field() {
        assert_eq!(parse_tcp_wmem("4096\t16384\t4194304\n"), Some(4 << 20));
        assert_eq!(parse_tcp_wmem("4096 16384"), None);
        assert_eq!(parse_tcp_wmem("a b c"), None);
        assert!(sndbuf_ceiling() >= 4096);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(
            parse_sizes("4K,64KiB, 1M,8192").unwrap(),
            vec![4096, 65536, 1 << 20, 8192]
        );
        assert!(parse_sizes("4Q").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn small_chunks_get_enough_slots_to_keep_a_pipeline() {
        let o = BenchOptions {
            min_inflight: 1 << 20,
            ..BenchOptions::default()
        };
        assert_eq!(o.slots_for(4 << 10), 256);
        assert_eq!(o.slots_for(64 << 10), 32);
        assert_eq!(o.slots_for(1 << 20), 32);
        let o = BenchOptions {
            min_inflight: 0,
            ..o
        };
        assert_eq!(o.slots_for(4 << 10), 32);
    }

    #[test]
    fn twins_are_in_the_default_set() {
        for name in DEFAULT_POLICIES {
            if let Some(t) = zcsafe_policies::find(name).unwrap().twin {
                assert!(DEFAULT_POLICIES.contains(&t));
            }
        }
    }
}
