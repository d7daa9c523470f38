//! The pays family's integration tests, one binary: each module is one concern.
//!
//! One binary per crate links once and runs every test on one thread pool.

mod support;

mod arguments;
mod bills;
mod certificate;
mod config;
mod db;
mod extend;
mod flow;
mod group_commit;
mod logs;
mod notify_cache;
mod notify_log;
mod outbox;
mod outbox_stop;
mod plugin_routing;
mod record;
mod refunds;
mod row_hooks;
mod v3;
mod v3_config;
mod wechatpy;
