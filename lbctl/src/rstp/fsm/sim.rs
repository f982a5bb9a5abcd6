//! A pure network simulator for the tests.
