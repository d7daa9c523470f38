//! `pays.services`: the family's service elements — `PaySvc`, which routes calls to the pay
//! element that owns the order and receives WeChat's notifies at one URL.

pub mod pay_svc;

pub use pay_svc::{OrderSummary, PAY_SVC, PaySvc, PaySvcLoader};
