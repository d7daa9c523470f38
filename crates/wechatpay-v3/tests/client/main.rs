//! The API v3 client's integration tests, one binary: each module is one concern.

mod certificates;
mod client_calls;
mod interop_wechatpayv3;
mod notifies;
mod properties;
mod support;
