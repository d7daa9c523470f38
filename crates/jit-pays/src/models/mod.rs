//! `pays.models`: the family's model elements — `PayLogModel`, the pay log queried as an
//! element — and its row hooks (`onCreate`, `onUpdate`, `onDelete`, `onException`).

pub mod pay_log_model;
pub mod row_hooks;

pub use pay_log_model::{PAY_LOG_MODEL, PayLogModel, PayLogModelLoader, PayLogQuery};
pub use row_hooks::{PayLogHooks, RowEvent, RowHookFailure, pay_log_hooks_loader};
