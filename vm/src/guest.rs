//! What runs inside the guest: the `/init` script and the per-VM job it executes.
//!
//! The init script mounts the pseudo file systems, loads the modules in dependency order,
//! sets up the transports the job asks for, and runs each cell's command, framing its
//! output on the second serial port (`/dev/ttyS1`, a file on the host) with marker lines:
//!
//! ```text
//! @@zcsafe boot <uname -r> <guest uptime s>
//! @@zcsafe cell-begin <id>
//! {"results":[…]}            ← whatever the command prints on stdout (JSON lines)
//! @@zcsafe cell-end <id> <exit status>
//! @@zcsafe cell-retry <id> <n>  ← only with ZCSAFE_RETRIES: the cell exited 1 (a
//!                                 contradiction) and runs again, its n-th rerun
//! @@zcsafe done
//! ```
//!
//! Kernel messages and the commands' stderr go to the console (`ttyS0`), whose tail an
//! error cell carries.
//!
//! ## The `remote` transport contract
//! Two NICs on one QEMU hub. The init script keeps the sender NIC (MAC `SENDER_MAC`,
//! address `10.77.0.1/24`) in the initial network namespace and moves the peer NIC (MAC
//! `PEER_MAC`, `10.77.0.2/24`) into a new namespace held by a sleeping process. Commands
//! then see `ZCSAFE_PEER_NETNS=/proc/<pid>/ns/net`, `ZCSAFE_LOCAL_ADDR`, `ZCSAFE_PEER_ADDR`,
//! `ZCSAFE_LOCAL_DEV`, `ZCSAFE_PEER_DEV`: a backend runs its receiver after `setns` into
//! that namespace, binds the peer address, and connects from the initial namespace.
//! netem (delay/loss) sits on the sender NIC's root qdisc.

pub const SENDER_MAC: &str = "52:54:00:7a:00:01";
pub const PEER_MAC: &str = "52:54:00:7a:00:02";
pub const SENDER_ADDR: &str = "10.77.0.1";
pub const PEER_ADDR: &str = "10.77.0.2";

/// The marker prefix of protocol lines on the result port.
pub const MARK: &str = "@@zcsafe ";

/// The `/init` of every image.
pub fn init_script() -> String {
    format!(
        r#"#!/bin/sh
# zcsafe guest init: see vm/src/guest.rs for the protocol.
export PATH=/opt/zcsafe/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/ TMPDIR=/tmp
/bin/busybox --install -s
# Carried libraries outside the loader's built-in search path (vm/src/initramfs.rs).
[ -f /{libpath} ] && export LD_LIBRARY_PATH="$(cat /{libpath})"
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/netns /var && ln -s /run /var/run
R=/dev/ttyS1
stty -F $R raw -echo 2>/dev/null
say() {{ echo "@@zcsafe $*" > $R; }}
say boot "$(uname -r)" "$(cut -d' ' -f1 /proc/uptime)"
log() {{ echo "zcsafe-init: $*" > /dev/console; }}
log "userspace reached, loading modules"
finish() {{ say done; sync; sleep 1; poweroff -f; reboot -f; }}
for m in $(cat /lib/modules/load-order); do
  insmod /lib/modules/$m.ko 2>/tmp/insmod.err || say module-failed $m "$(head -c 160 /tmp/insmod.err | tr '\n' ' ')"
done
ip link set lo up
log "modules loaded"
dev_by_mac() {{ for d in /sys/class/net/*; do [ "$(cat $d/address)" = "$1" ] && basename $d; done; }}
setup_remote() {{
  A=$(dev_by_mac {sender_mac}); B=$(dev_by_mac {peer_mac})
  if [ -z "$A" ] || [ -z "$B" ]; then say setup-failed remote "no NIC pair (no driver for the NIC model? cloud kernels have no e1000: use the -generic kernels): $(ls /sys/class/net | tr '\n' ' ')"; return 1; fi
  unshare -n sleep 2147483647 &
  PEER=$!
  i=0; while [ "$(readlink /proc/$PEER/ns/net)" = "$(readlink /proc/self/ns/net)" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
  ip link set $B netns $PEER || {{ say setup-failed remote "ip link set netns"; return 1; }}
  ip addr add {sender}/24 dev $A && ip link set $A up
  nsenter -t $PEER -n sh -c "ip link set lo up; ip addr add {peer}/24 dev $B; ip link set $B up"
  export ZCSAFE_PEER_NETNS=/proc/$PEER/ns/net ZCSAFE_PEER_PID=$PEER ZCSAFE_LOCAL_ADDR={sender} ZCSAFE_PEER_ADDR={peer} ZCSAFE_LOCAL_DEV=$A ZCSAFE_PEER_DEV=$B
  i=0; until ping -c1 -W1 {peer} >/dev/null 2>&1; do i=$((i+1)); [ $i -ge 20 ] && {{ say setup-failed remote "peer does not answer ping"; return 1; }}; done
  say setup-ok remote $A $B
}}
setup_netem() {{
  [ -n "$ZCSAFE_LOCAL_DEV" ] || {{ say setup-failed netem "netem needs the remote transport"; return 1; }}
  tc qdisc add dev $ZCSAFE_LOCAL_DEV root netem "$@" 2>/tmp/tc.err || {{ say setup-failed netem "$(head -c 200 /tmp/tc.err | tr '\n' ' ')"; return 1; }}
  say setup-ok netem "$@"
}}
[ -f /zcsafe/job ] || {{ say setup-failed job "no /zcsafe/job in the initramfs"; finish; }}
while read -r kind id rest; do
  case "$kind" in
    env) export "$id" ;;
    setup) case "$id" in remote) setup_remote </dev/null ;; netem) setup_netem $rest </dev/null ;; esac ;;
    cell)
      n=0
      while :; do
        say cell-begin $id
        log "cell $id: $rest"
        timeout "$ZCSAFE_CELL_TIMEOUT" sh -c "$rest" > $R 2>/dev/console </dev/null
        s=$?
        say cell-end $id $s
        # Exit status 1 is zcsafe's contradiction: rerun it, up to ZCSAFE_RETRIES times.
        [ $s -eq 1 ] && [ $n -lt "${{ZCSAFE_RETRIES:-0}}" ] || break
        n=$((n+1))
        say cell-retry $id $n
      done
      ;;
  esac
done < /zcsafe/job
finish
"#,
        sender_mac = SENDER_MAC,
        peer_mac = PEER_MAC,
        sender = SENDER_ADDR,
        peer = PEER_ADDR,
        libpath = crate::initramfs::LIBRARY_PATH_FILE,
    )
}

/// What one VM does: optional transport setup, then cells in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Job {
    pub env: Vec<(String, String)>,
    pub remote: bool,
    /// netem arguments (`delay 10ms loss 1%`), applied after the remote setup.
    pub netem: Option<String>,
    pub cells: Vec<JobCell>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobCell {
    /// Small integer id, echoed in the markers.
    pub id: usize,
    /// A shell command line run by busybox `sh -c`.
    pub command: String,
}

impl Job {
    /// The `/zcsafe/job` file.
    pub fn to_text(&self, cell_timeout_s: u64) -> String {
        let mut s = format!("env ZCSAFE_CELL_TIMEOUT={cell_timeout_s}\n");
        for (k, v) in &self.env {
            s += &format!("env {k}={v}\n");
        }
        if self.remote {
            s += "setup remote\n";
        }
        if let Some(n) = &self.netem {
            s += &format!("setup netem {n}\n");
        }
        for c in &self.cells {
            s += &format!("cell {} {}\n", c.id, c.command.replace('\n', " "));
        }
        s
    }
}

/// One line of the result port, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Boot {
        release: String,
        uptime: f64,
    },
    ModuleFailed(String),
    SetupOk(String),
    SetupFailed(String),
    CellBegin(usize),
    CellEnd {
        id: usize,
        status: i32,
    },
    /// The guest runs cell `id` again, its `n`-th rerun (`--retries`).
    CellRetry {
        id: usize,
        n: u32,
    },
    Done,
    /// Anything else: command output.
    Line(String),
}

impl Event {
    pub fn parse(line: &str) -> Event {
        let line = line.trim_end_matches(['\r', '\n']);
        let Some(rest) = line.strip_prefix(MARK) else {
            return Event::Line(line.to_string());
        };
        let mut w = rest.splitn(2, ' ');
        let kind = w.next().unwrap_or("");
        let arg = w.next().unwrap_or("").trim().to_string();
        let mut words = arg.split_whitespace();
        match kind {
            "boot" => Event::Boot {
                release: words.next().unwrap_or("").to_string(),
                uptime: words
                    .next()
                    .and_then(|u| u.parse().ok())
                    .unwrap_or(f64::NAN),
            },
            "module-failed" => Event::ModuleFailed(arg),
            "setup-ok" => Event::SetupOk(arg),
            "setup-failed" => Event::SetupFailed(arg),
            "cell-begin" => match words.next().and_then(|i| i.parse().ok()) {
                Some(id) => Event::CellBegin(id),
                None => Event::Line(line.to_string()),
            },
            "cell-end" => match (
                words.next().and_then(|i| i.parse().ok()),
                words.next().and_then(|s| s.parse().ok()),
            ) {
                (Some(id), Some(status)) => Event::CellEnd { id, status },
                _ => Event::Line(line.to_string()),
            },
            "cell-retry" => match (
                words.next().and_then(|i| i.parse().ok()),
                words.next().and_then(|s| s.parse().ok()),
            ) {
                (Some(id), Some(n)) => Event::CellRetry { id, n },
                _ => Event::Line(line.to_string()),
            },
            "done" => Event::Done,
            _ => Event::Line(line.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse() {
        assert_eq!(
            Event::parse("@@zcsafe boot 5.10.0-32-cloud-amd64 1.23\r\n"),
            Event::Boot {
                release: "5.10.0-32-cloud-amd64".into(),
                uptime: 1.23
            }
        );
        assert_eq!(
            Event::parse("@@zcsafe cell-end 3 1"),
            Event::CellEnd { id: 3, status: 1 }
        );
        assert_eq!(Event::parse("@@zcsafe cell-begin 7"), Event::CellBegin(7));
        assert_eq!(
            Event::parse("@@zcsafe cell-retry 2 1"),
            Event::CellRetry { id: 2, n: 1 }
        );
        assert_eq!(Event::parse("{\"a\":1}"), Event::Line("{\"a\":1}".into()));
        assert_eq!(
            Event::parse("@@zcsafe cell-end x"),
            Event::Line("@@zcsafe cell-end x".into())
        );
        assert_eq!(Event::parse("@@zcsafe done"), Event::Done);
    }

    #[test]
    fn job_text_has_setup_before_cells() {
        let j = Job {
            env: vec![("A".into(), "b".into())],
            remote: true,
            netem: Some("delay 5ms".into()),
            cells: vec![JobCell {
                id: 0,
                command: "zcsafe run\n--json".into(),
            }],
        };
        assert_eq!(
            j.to_text(60),
            "env ZCSAFE_CELL_TIMEOUT=60\nenv A=b\nsetup remote\nsetup netem delay 5ms\ncell 0 zcsafe run --json\n"
        );
        assert!(init_script().starts_with("#!/bin/sh\n"));
    }
}
