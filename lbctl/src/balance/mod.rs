//! Backend selection for the L7 proxy: the shared runtime state of each backend, and the
//! algorithms that pick one (smooth weighted round robin, leastconn, cookie stickiness,
//! content routing).
pub mod backend;
