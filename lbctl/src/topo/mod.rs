//! The lab's topology: planning it from the config, building it in network namespaces
//! with rtnetlink, reading it back from the kernel, and tearing it down.
pub mod build;
pub mod daemons;
pub mod flood;
pub mod inspect;
pub mod netns;
pub mod nl;
pub mod plan;
pub mod rstp_view;
pub mod state;
pub mod teardown;
