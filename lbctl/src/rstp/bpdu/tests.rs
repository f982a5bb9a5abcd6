//! Codec tests: golden bytes, round trips, every DropReason.
