//! What the checker explores: a geometry for the policy and the kernel's knobs.

use serde::{Deserialize, Serialize};
use zcsafe_policy::{
    Geometry, Pipeline, Profile, RemoteDevice, ScenarioSizes, SocketKind, TransportClass,
};

/// The kernel side of a scenario. Sizes are in pages (one page = one segment).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelConfig {
    pub transport: TransportClass,
    pub profile: Profile,
    /// Send buffer: pages in the write queue plus the retransmit queue (`sk_wmem_queued`
    /// against `sk_sndbuf`, `sk_stream_memory_free`).
    pub sndbuf: u64,
    /// Congestion window, in segments.
    pub cwnd: u64,
    /// The peer's receive window, in pages: what its receive buffer advertises
    /// (`tcp_win_from_space`), and so how many pages may sit unread in its queue.
    /// [`crate::window`] derives it from the kernel profile and the receiver's setup.
    pub rcvbuf: u64,
    /// Receive autotuning (`tcp_rcv_space_adjust`) may grow the window to this many pages
    /// after the application read something; `None` when `SO_RCVBUF` locked the buffer
    /// (`SOCK_RCVBUF_LOCK`). A nondeterministic event: the checker tries both.
    #[serde(default)]
    pub autotune: Option<u64>,
    /// Segments the network may drop.
    pub losses: u8,
    /// Retransmission timeouts that may fire although nothing was lost (the ACK was
    /// slow). They make retransmitted clones outlive the original: out-of-order
    /// completions.
    pub spurious_rto: u8,
    /// `MSG_ZEROCOPY` notifications that may exist at once (outstanding plus queued on
    /// the error queue) before `send` fails with `ENOBUFS` (`sock_omalloc` against
    /// `sysctl_optmem_max` in `msg_zerocopy_alloc`).
    pub zc_optmem: u8,
    /// The pipe's read end belongs to a local reader process (`producer | consumer`)
    /// that reads it with `read(2)` — `pipe_read` copies the pages out, so the reader
    /// sees whatever they hold at that moment — instead of `splice` moving the pages to
    /// the socket. The reader is the one that checks the stream.
    #[serde(default)]
    pub pipe_reader: bool,
    /// io_uring `SEND_ZC` requests that may fail (be cancelled) before they run. Such a
    /// request still posts a notification CQE: `io_sendrecv_fail` sets `F_MORE` on its
    /// CQE and `io_send_zc_cleanup` flushes its notif (`io_notif_flush`), from task
    /// work, so other CQEs can overtake it.
    #[serde(default)]
    pub uring_failures: u8,
    /// io_uring linked timeouts (`IORING_OP_LINK_TIMEOUT`) that may fire, each cancelling
    /// the `SEND_ZC` it is linked to at any moment before that completed — queued whole,
    /// part-queued or not yet run (`io_link_timeout_fn` → `io_req_task_link_timeout`). A
    /// timer is a nondeterministic event: the checker tries it firing and not. Only
    /// requests the policy linked a timeout to are affected.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uring_link_timeouts: u8,
    /// Pages one `MSG_ZEROCOPY` notification range may cover before the next send starts
    /// a new one: `msg_zerocopy_realloc` extends the tail's `ubuf_info` only while its
    /// `bytelen` stays within `byte_limit` (512 KiB, "a few TSO") — 8 chunks of 64 KiB.
    #[serde(default = "crate::window::zc_uarg_pages")]
    pub zc_uarg_pages: u8,
    /// io_uring `SEND_ZC`s carry `MSG_WAITALL`, as the kernel executor submits them: the
    /// send CQE comes when every byte is queued (`io_net_retry`). Without it a send
    /// that fills the socket completes short (`res < len`).
    #[serde(default = "yes")]
    pub uring_waitall: bool,
    /// The sending socket ([`Pipeline::socket`]). UDP (docs/design.md §10): every send
    /// is one datagram that goes down the stack at once (`udp_sendmsg` → `ip_make_skb`
    /// → `udp_send_skb`), with no write or retransmit queue and no ACK; its pages are
    /// let go when that skb is freed — at TX completion (remote) or, locally, when
    /// `skb_orphan_frags_rx` copies them on delivery. The model's UDP scenarios lose
    /// nothing ([`ScenarioError::UdpLoss`]).
    #[serde(default, skip_serializing_if = "SocketKind::is_tcp")]
    pub socket: SocketKind,
    /// The remote class's device: a NIC that reads the pages at TX completion (the
    /// default), or a TUN device, which copies zero-copy frags when the segment is
    /// queued on it (`tun_net_xmit`). Ignored by the local class.
    #[serde(default)]
    pub device: RemoteDevice,
}

fn yes() -> bool {
    true
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// A geometry and a kernel configuration: one bounded world to explore.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scenario {
    pub geometry: Geometry,
    pub config: ModelConfig,
}

impl Scenario {
    /// The standard configuration: small enough to exhaust in milliseconds, large
    /// enough that every known failure has room to happen ([`Geometry::model_standard`]:
    /// a reused slot, a wrapped 1-bit notification counter; one loss, one spurious
    /// timeout).
    pub fn standard(transport: TransportClass, profile: Profile) -> Scenario {
        Scenario {
            geometry: Geometry::model_standard(),
            config: ModelConfig {
                transport,
                profile,
                sndbuf: 2,
                cwnd: 2,
                rcvbuf: 2,
                losses: 1,
                spurious_rto: 1,
                zc_optmem: 2,
                pipe_reader: false,
                uring_failures: 0,
                uring_link_timeouts: 0,
                autotune: None,
                zc_uarg_pages: crate::window::ZC_UARG_PAGES,
                uring_waitall: true,
                socket: SocketKind::Tcp,
                device: RemoteDevice::Nic,
            },
        }
    }

    /// [`Scenario::standard`] on the socket `pipeline` sends on: what every caller that
    /// judges a catalogue entry in the standard scenario must use, so that a UDP policy
    /// is never checked on a TCP socket.
    pub fn standard_for(
        pipeline: &Pipeline,
        transport: TransportClass,
        profile: Profile,
    ) -> Scenario {
        let mut s = Scenario::standard(transport, profile);
        s.on_socket(pipeline.socket);
        s
    }

    /// The scenario a policy's declared [`Pipeline`] needs, so that no hand tuning stands
    /// between an author and their bug: [`Pipeline::model_geometry`] (every slot reused
    /// twice, a counter that wraps with room to refill after it), a send buffer,
    /// congestion window and receive buffer that hold every outstanding send at once,
    /// optmem for one notification range per outstanding send (so `ENOBUFS` comes from
    /// unread notifications, not from a pipeline cut short), one loss and one spurious
    /// timeout. The standard pipeline gets the standard windows; only its stream is
    /// longer (6 pages, not 5).
    pub fn derived(pipeline: &Pipeline, transport: TransportClass, profile: Profile) -> Scenario {
        let window = pipeline.outstanding.max(1) * pipeline.chunk;
        let mut s = Scenario::standard(transport, profile);
        s.geometry = pipeline.model_geometry();
        let c = &mut s.config;
        (c.sndbuf, c.cwnd, c.rcvbuf) = (window, window, window);
        c.zc_optmem = pipeline.outstanding.clamp(2, u8::MAX as u64) as u8;
        s.on_socket(pipeline.socket);
        s
    }

    /// Puts the scenario on a `socket`. For UDP: no loss and no retransmission timer
    /// (there is none), as [`Scenario::validate`] requires; and optmem for a
    /// notification per datagram the send buffer holds plus the ranges the error queue
    /// keeps — UDP allocates a `ubuf_info` per `sendmsg` and `__msg_zerocopy_callback`
    /// merges in-order ranges into the error queue's tail, so that is what a sender that
    /// never reads the queue keeps, and `ENOBUFS` comes from a policy, not from a small
    /// model.
    pub fn on_socket(&mut self, socket: SocketKind) {
        let c = &mut self.config;
        c.socket = socket;
        if socket == SocketKind::Udp {
            (c.losses, c.spurious_rto) = (0, 0);
            // A kernel's 32-bit counter merges a sender's in-order ranges into one; the
            // model's narrow counter caps a range at 2^bits − 1 sends, so a stream of n
            // datagrams leaves up to ceil(n / (2^bits − 1)) ranges queued.
            let g = &self.geometry;
            let per_range = (1u64 << g.zc_id_bits.min(32)).saturating_sub(1).max(1);
            let ranges = g.chunks().div_ceil(per_range);
            let fits = (c.sndbuf + ranges.max(1)).min(u8::MAX as u64) as u8;
            c.zc_optmem = c.zc_optmem.max(fits);
        }
    }

    /// The scenario with `device` behind the remote class.
    pub fn with_device(mut self, device: RemoteDevice) -> Scenario {
        self.config.device = device;
        self
    }

    /// The device behind the socket, when the class has one (the remote class).
    pub fn device(&self) -> Option<RemoteDevice> {
        (self.config.transport == TransportClass::Remote).then_some(self.config.device)
    }

    /// The sizes results report for this scenario and model traces keep.
    pub fn sizes(&self) -> ScenarioSizes {
        let c = &self.config;
        ScenarioSizes {
            geometry: self.geometry,
            sndbuf: c.sndbuf,
            cwnd: c.cwnd,
            rcvbuf: c.rcvbuf,
            losses: c.losses,
            spurious_rto: c.spurious_rto,
            zc_optmem: c.zc_optmem,
            device: self.device().unwrap_or_default(),
        }
    }

    /// This scenario resized to `sizes` (a trace's own, for its replay).
    pub fn resized(mut self, sizes: &ScenarioSizes) -> Scenario {
        let c = &mut self.config;
        self.geometry = sizes.geometry;
        (c.sndbuf, c.cwnd, c.rcvbuf) = (sizes.sndbuf, sizes.cwnd, sizes.rcvbuf);
        (c.losses, c.spurious_rto, c.zc_optmem) =
            (sizes.losses, sizes.spurious_rto, sizes.zc_optmem);
        c.device = sizes.device;
        self
    }

    /// Checks that the scenario is one the model can run.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.geometry.validate().map_err(ScenarioError::Geometry)?;
        let g = &self.geometry;
        if g.page != 1 {
            return Err(ScenarioError::PageSize(g.page));
        }
        if g.stream > 64 || g.buffer > 16 {
            return Err(ScenarioError::TooLarge);
        }
        if g.chunk > self.config.sndbuf {
            return Err(ScenarioError::ChunkOverSndbuf {
                chunk: g.chunk,
                sndbuf: self.config.sndbuf,
            });
        }
        if self.config.cwnd == 0 || self.config.rcvbuf == 0 {
            return Err(ScenarioError::ZeroWindow);
        }
        if let Some(grown) = self.config.autotune {
            if grown < self.config.rcvbuf || grown > 16 {
                return Err(ScenarioError::Autotune {
                    rcvbuf: self.config.rcvbuf,
                    grown,
                });
            }
        }
        if self.config.zc_uarg_pages == 0 {
            return Err(ScenarioError::ZcUargPages);
        }
        let c = &self.config;
        if c.socket == SocketKind::Udp && (c.losses > 0 || c.spurious_rto > 0) {
            return Err(ScenarioError::UdpLoss);
        }
        if self.config.transport == TransportClass::Local && !self.config.device.is_nic() {
            return Err(ScenarioError::DeviceOnLocal(self.config.device));
        }
        Ok(())
    }
}

/// A scenario the model cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Geometry(zcsafe_policy::GeometryError),
    #[error("the model works in whole pages: geometry.page must be 1, got {0}")]
    PageSize(u64),
    #[error("the model explores at most 64 stream pages and 16 buffer pages")]
    TooLarge,
    #[error("a chunk of {chunk} pages can never fit a send buffer of {sndbuf}: raise sndbuf")]
    ChunkOverSndbuf { chunk: u64, sndbuf: u64 },
    #[error("cwnd and rcvbuf must be at least one page")]
    ZeroWindow,
    #[error("autotune grows the window from rcvbuf ({rcvbuf} pages) to {grown}: it must lie between rcvbuf and 16")]
    Autotune { rcvbuf: u64, grown: u64 },
    #[error("zc_uarg_pages must be at least one page (a notification covers one send)")]
    ZcUargPages,
    /// A lost datagram is a gap in the receiver's stream, not a retransmission: the
    /// model's receiver checks an unbroken stream, so its UDP scenarios lose nothing.
    #[error("a UDP scenario has no losses or retransmission timeouts: UDP never retransmits, and the model's receiver checks an unbroken stream (use --losses 0 --spurious-rto 0)")]
    UdpLoss,
    #[error("device {0} is the remote class's: local delivery has no device that reads the pages")]
    DeviceOnLocal(RemoteDevice),
}
