//! The built-in web server run in each server node (`lbctl serve`).
pub mod serve;
