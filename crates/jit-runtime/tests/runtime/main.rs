//! The runtime's integration tests, one binary: each module is one concern.
//!
//! One binary per crate links once and runs every test on one thread pool.

mod common;

mod elements;
mod generations;
mod loading;
mod selector;
