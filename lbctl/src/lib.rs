//! lbctl: builds and runs a redundant, load-balanced web service lab (VRRP, L7 proxy,
//! STP, VXLAN, eBPF) out of network namespaces, or on real hosts.
//!
//! The binary (`main.rs`) only parses the command line and runs [`cli::Cmd::job`]. The
//! library is laid out by job:
//!
//! | module | what it is |
//! |---|---|
//! | [`cli`] | one file per verb: its arguments and a thin run function over the core |
//! | [`config`] | the lab's TOML model and its validation (pure) |
//! | [`topo`] | planning the lab (pure), building it with rtnetlink, reading it back, tearing it down, launching its daemons |
//! | [`stp`] | the tree 802.1D says a config should give (pure) |
//! | [`vrrp`] | VRRP: packet codec and state machine (pure), socket I/O |
//! | [`agent`] | the balancer daemon: wiring of VRRP, proxy, health checks, admin port, dashboard |
//! | [`proxy`] | the L7 proxy: server side (hyper), our own HTTP/1.1 client, bodies, errors |
//! | [`balance`] | backend state and selection: round robin, least connections, stickiness, routes |
//! | [`health`] | active health checks |
//! | [`datapath`] | the BPF programs' user side: observer, VTEP, pinned state maps |
//! | [`fault`] | failure injection: links and bridges down/up, convergence waits |
//! | [`verify`] | the scenario's four checkpoints, measured from the users |
//! | [`status`], [`graph`] | reading the running lab and showing it |
//! | [`webserver`] | the built-in backend web server (`lbctl serve`) |
//! | [`probe`] | a bounded HTTP client loop measuring outages |
//! | [`http_get`] | the one blocking HTTP/1.1 client (probe, agent peers, verify) |
//! | [`harness`] | dev-only (feature `harness`): the VTEP test bed and the benchmarks' helpers |

pub mod agent;
pub mod balance;
pub mod capture;
pub mod cli;
pub mod config;
pub mod datapath;
pub mod fault;
pub mod graph;
#[cfg(any(test, feature = "harness"))]
pub mod harness;
pub mod health;
pub mod http_get;
pub mod logs;
pub mod probe;
pub mod progress;
pub mod proxy;
pub mod status;
pub mod stp;
pub mod topo;
pub mod verify;
pub mod vrrp;
pub mod webserver;
