//! lbctl: builds and runs a redundant, load-balanced web service lab (VRRP, L7 proxy,
//! STP, VXLAN, eBPF) out of network namespaces, or on real hosts.
//!
//! The binary (`main.rs`) only parses the command line and runs [`cli::Cmd::job`]. The
//! library is laid out by job:
//!
//! | module | what it is |
//! |---|---|
//! | [`cli`] | one file per verb: its arguments and a thin run function over the core |
//! | [`config`] | the lab's TOML model, its validation, and the generator of labs of any size behind `lbctl gen` (pure) |
//! | [`topo`] | planning the lab (pure), building it with rtnetlink, reading it back, tearing it down, launching its daemons |
//! | [`stp`] | the tree 802.1D says a config should give (pure) |
//! | [`stpd`] | `lbctl stpd`, the RSTP daemon of one bridge: BPDUs over AF_PACKET, port states over rtnetlink, the BPF gate |
//! | [`rstp`] | RSTP (802.1D-2004 clause 17): BPDU codec and the bridge's state machines (pure, sans-IO) |
//! | [`vrrp`] | VRRP: packet codec and state machine (pure), socket I/O |
//! | [`agent`] | the balancer daemon: wiring of VRRP, proxy, health checks, admin port, dashboard |
//! | [`proxy`] | the L7 proxy: server side (hyper), our own HTTP/1.1 client, bodies, errors |
//! | [`balance`] | backend state and selection: round robin, least connections, stickiness, routes; connect-time estimates and the layer-4 observer |
//! | [`health`] | active health checks |
//! | [`datapath`] | the BPF programs' user side: observer, VTEP, pinned state maps |
//! | [`fault`] | failure injection: links and bridges down/up, black holes, convergence waits |
//! | [`verify`] | the scenario's four checkpoints, measured from the users, and their outage timelines (draw.rs, on lb-chart) |
//! | [`status`], [`graph`] | reading the running lab and showing it |
//! | [`webserver`] | the built-in backend web server (`lbctl serve`) |
//! | [`probe`] | a bounded HTTP client loop measuring outages |
//! | [`test_prereq`] | the rule for tests whose prerequisite is missing (fail under CI, a visible skip elsewhere) |
//! | [`http_get`] | the one blocking HTTP/1.1 client (probe, agent peers, verify) |
//! | [`fd_limit`] | raising the open-file limit to what the proxy needs |
//! | [`locks`], [`log_limit`] | a mutex lock a panic cannot poison; a warning let through once per interval |
//! | [`harness`] | dev-only (feature `harness`): the VTEP test bed and the benchmarks' helpers |

#[cfg(feature = "runtime")]
pub mod agent;
#[cfg(test)]
mod alloc_count;
#[cfg(feature = "runtime")]
pub mod balance;
#[cfg(feature = "runtime")]
pub mod capture;
#[cfg(feature = "runtime")]
pub mod cli;
#[cfg(feature = "runtime")]
pub mod config;
#[cfg(feature = "runtime")]
pub mod datapath;
#[cfg(feature = "runtime")]
pub mod fault;
#[cfg(feature = "runtime")]
pub mod fd_limit;
#[cfg(feature = "runtime")]
pub mod graph;
#[cfg(all(feature = "runtime", any(test, feature = "harness")))]
pub mod harness;
#[cfg(feature = "runtime")]
pub mod health;
#[cfg(feature = "runtime")]
pub mod http_get;
pub mod locks;
pub mod log_limit;
#[cfg(feature = "runtime")]
pub mod logs;
#[cfg(feature = "runtime")]
pub mod probe;
#[cfg(feature = "runtime")]
pub mod progress;
#[cfg(feature = "runtime")]
pub mod proxy;
pub mod rstp;
#[cfg(feature = "runtime")]
pub mod status;
#[cfg(feature = "runtime")]
pub mod stp;
#[cfg(feature = "runtime")]
pub mod stpd;
#[cfg(feature = "runtime")]
pub mod test_prereq;
#[cfg(feature = "runtime")]
pub mod topo;
#[cfg(feature = "runtime")]
pub mod verify;
pub mod vrrp;
#[cfg(feature = "runtime")]
pub mod webserver;
