//! Replay and simulated-network tests.
