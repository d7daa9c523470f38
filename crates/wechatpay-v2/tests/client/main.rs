//! The client crate's integration tests, one binary: each module is one concern.
//!
//! One binary per crate links once and runs every test on one thread pool.

mod bills;
mod client_calls;
mod hostile_xml;
mod interop_wechatpy;
mod payment_notify;
mod properties;
mod refund_notify;
mod vectors;
