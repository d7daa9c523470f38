//! The simulator's integration tests, one binary: each module is one concern.
//!
//! One binary per crate links once and runs every test on one thread pool.

mod common;

mod bills;
mod faults;
mod gateway;
mod own_client;
mod pki;
mod queries;
mod refunds;
mod tls;
mod v3;
mod wechatpy_conformance;
