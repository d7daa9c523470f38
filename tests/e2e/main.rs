//! End-to-end tests of the `jit` host: the real server over real HTTP, the real binary.
//!
//! One test binary (`mod` per area) sharing the harness in `util`.

mod bills_cli;
mod binary;
mod checkout;
mod checkout_browser;
mod cli;
mod connections;
mod console;
mod console_browser;
mod custom_type;
mod errors;
mod events_cli;
mod events_cluster;
mod events_config;
mod events_crash;
mod events_support;
mod exact_numbers;
mod fixture;
mod hostile;
mod http_format;
mod logs;
mod ls_find;
mod merchant_certificate;
mod merchant_settings;
mod metrics;
mod notify;
mod openapi;
mod plugin;
mod plugin_check;
mod readme_flow;
mod refunds;
mod reload;
mod row_hooks;
mod rust_service;
mod service_plugin;
mod shutdown;
mod startup_rules;
mod unbuildable;
mod util;
mod v3;
