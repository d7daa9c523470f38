//! `pays.models`: the family's model elements — `PayLogModel`, the pay log queried as an
//! element.

pub mod pay_log_model;

pub use pay_log_model::{PAY_LOG_MODEL, PayLogModel, PayLogModelLoader, PayLogQuery};
