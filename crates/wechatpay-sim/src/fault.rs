//! Fault injection: the failures production shows, on demand.
//!
//! A [`FaultRule`] scopes one [`Fault`] to a merchant and/or an endpoint, optionally for a
//! number of uses. Rules come from [`SimConfig::faults`](crate::SimConfig::faults) at start
//! and from [`FaultControl`] (or `POST /sim/faults`) at run time.
//!
//! Which rules apply where:
//! - request faults (`latency`, `hang`, `http_status`, `system_error`,
//!   `system_error_after_commit`) apply to API calls; a rule without an endpoint applies to
//!   every API endpoint;
//! - notify faults (`drop_notify`, `duplicate_notify`, `reorder_notify`) apply to payment
//!   and refund notifies; `latency` applies to notifies only when the rule names
//!   `pay_notify` or `refund_notify`;
//! - `notify_before_reply` applies to `unifiedorder`.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A place a fault can strike: an API endpoint or a kind of notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    /// `/pay/unifiedorder`.
    #[serde(rename = "unifiedorder")]
    UnifiedOrder,
    /// `/pay/orderquery`.
    #[serde(rename = "orderquery")]
    OrderQuery,
    /// `/pay/closeorder`.
    #[serde(rename = "closeorder")]
    CloseOrder,
    /// `/secapi/pay/refund`.
    #[serde(rename = "refund")]
    Refund,
    /// `/pay/refundquery`.
    #[serde(rename = "refundquery")]
    RefundQuery,
    /// `/pay/downloadbill`.
    #[serde(rename = "downloadbill")]
    DownloadBill,
    /// `/xdc/apiv2getsignkey/sign/getsignkey` (formerly `/sandboxnew/pay/getsignkey`).
    #[serde(rename = "getsignkey")]
    GetSignKey,
    /// Payment result notifies sent to the order's `notify_url`.
    #[serde(rename = "pay_notify")]
    PayNotify,
    /// Refund result notifies sent to the refund's `notify_url`.
    #[serde(rename = "refund_notify")]
    RefundNotify,
}

impl Endpoint {
    /// Whether this is an API endpoint (as opposed to a notify).
    pub fn is_api(self) -> bool {
        !matches!(self, Endpoint::PayNotify | Endpoint::RefundNotify)
    }

    /// The name used in configuration and in the inspection log.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::UnifiedOrder => "unifiedorder",
            Endpoint::OrderQuery => "orderquery",
            Endpoint::CloseOrder => "closeorder",
            Endpoint::Refund => "refund",
            Endpoint::RefundQuery => "refundquery",
            Endpoint::DownloadBill => "downloadbill",
            Endpoint::GetSignKey => "getsignkey",
            Endpoint::PayNotify => "pay_notify",
            Endpoint::RefundNotify => "refund_notify",
        }
    }
}

/// One kind of failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Wait this long before handling the call (or before delivering a notify).
    Latency {
        /// Added delay in milliseconds of real time.
        ms: u64,
    },
    /// Never answer: hold the request until the client gives up (or
    /// [`SimConfig::hang_ms`](crate::SimConfig::hang_ms) passes, or the simulator stops).
    Hang,
    /// Answer with this HTTP status and an HTML error page instead of XML, as a failing
    /// load balancer does. The call is not processed.
    HttpStatus {
        /// The status, 400 to 599.
        status: u16,
    },
    /// Answer `result_code=FAIL`, `err_code=SYSTEMERROR` without processing the call.
    SystemError,
    /// Process the call (create the order, record the refund...) and still answer
    /// `SYSTEMERROR`: the reply is lost but the effect is not, so the client must retry
    /// with the same parameters or query.
    SystemErrorAfterCommit,
    /// Never deliver the notify (the merchant has to query).
    DropNotify,
    /// Deliver each notify attempt this many times at once.
    DuplicateNotify {
        /// Copies per attempt, at least 2.
        copies: u32,
    },
    /// Hold notifies until `window` of them wait (or two seconds of real time pass),
    /// then deliver them newest first.
    ReorderNotify {
        /// How many notifies to gather before releasing them, at least 2.
        window: u32,
    },
    /// Pay the order as soon as `unifiedorder` creates it and deliver the payment notify
    /// (waiting for the merchant's answer) before the `unifiedorder` reply is written.
    NotifyBeforeReply,
}

impl Fault {
    fn is_request_fault(&self) -> bool {
        matches!(
            self,
            Fault::Latency { .. }
                | Fault::Hang
                | Fault::HttpStatus { .. }
                | Fault::SystemError
                | Fault::SystemErrorAfterCommit
        )
    }

    fn is_notify_fault(&self) -> bool {
        matches!(
            self,
            Fault::Latency { .. }
                | Fault::DropNotify
                | Fault::DuplicateNotify { .. }
                | Fault::ReorderNotify { .. }
        )
    }
}

/// A fault scoped to a merchant and/or endpoint, for a number of uses or for ever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Only calls/notifies of this merchant; `None`: every merchant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mch_id: Option<String>,
    /// Only this endpoint or notify kind; `None`: see the module documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// What goes wrong.
    pub fault: Fault,
    /// How many times the fault strikes before the rule retires; `None`: until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl FaultRule {
    /// A rule for every merchant and every applicable endpoint, until removed.
    pub fn new(fault: Fault) -> Self {
        FaultRule {
            mch_id: None,
            endpoint: None,
            fault,
            times: None,
        }
    }

    /// Restricts the rule to one merchant.
    pub fn for_merchant(mut self, mch_id: impl Into<String>) -> Self {
        self.mch_id = Some(mch_id.into());
        self
    }

    /// Restricts the rule to one endpoint or notify kind.
    pub fn on(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Retires the rule after `times` uses.
    pub fn times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }

    /// Checks the rule makes sense: a fault on an endpoint where it can strike, sane values.
    pub fn validate(&self) -> Result<(), String> {
        if self.times == Some(0) {
            return Err("`times` must be at least 1 (remove the rule instead)".into());
        }
        match &self.fault {
            Fault::HttpStatus { status } if !(400..=599).contains(status) => {
                return Err(format!(
                    "`status` {status} is not an HTTP error status (400-599)"
                ));
            }
            Fault::DuplicateNotify { copies } if *copies < 2 => {
                return Err("`copies` must be at least 2".into());
            }
            Fault::ReorderNotify { window } if *window < 2 => {
                return Err("`window` must be at least 2".into());
            }
            _ => {}
        }
        let Some(endpoint) = self.endpoint else {
            return Ok(());
        };
        let fits = match &self.fault {
            Fault::Latency { .. } => true,
            Fault::NotifyBeforeReply => endpoint == Endpoint::UnifiedOrder,
            fault if fault.is_request_fault() => endpoint.is_api(),
            _ => !endpoint.is_api(),
        };
        if fits {
            Ok(())
        } else {
            Err(format!(
                "fault `{}` cannot apply to endpoint `{}`",
                fault_name(&self.fault),
                endpoint.name()
            ))
        }
    }

    fn matches(&self, mch_id: Option<&str>, endpoint: Endpoint) -> bool {
        let merchant_fits = match (&self.mch_id, mch_id) {
            (None, _) => true,
            (Some(wanted), Some(actual)) => wanted == actual,
            (Some(_), None) => false,
        };
        if !merchant_fits {
            return false;
        }
        match &self.fault {
            Fault::NotifyBeforeReply => {
                endpoint == Endpoint::UnifiedOrder && self.endpoint.is_none_or(|e| e == endpoint)
            }
            Fault::Latency { .. } if !endpoint.is_api() => self.endpoint == Some(endpoint),
            fault if endpoint.is_api() => {
                fault.is_request_fault() && self.endpoint.is_none_or(|e| e == endpoint)
            }
            fault => fault.is_notify_fault() && self.endpoint.is_none_or(|e| e == endpoint),
        }
    }
}

/// The short name of a fault kind, as in configuration.
pub(crate) fn fault_name(fault: &Fault) -> &'static str {
    match fault {
        Fault::Latency { .. } => "latency",
        Fault::Hang => "hang",
        Fault::HttpStatus { .. } => "http_status",
        Fault::SystemError => "system_error",
        Fault::SystemErrorAfterCommit => "system_error_after_commit",
        Fault::DropNotify => "drop_notify",
        Fault::DuplicateNotify { .. } => "duplicate_notify",
        Fault::ReorderNotify { .. } => "reorder_notify",
        Fault::NotifyBeforeReply => "notify_before_reply",
    }
}

/// Identifies a rule for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultId(pub u64);

/// A rule in force, with the uses it has left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// Its identifier.
    pub id: FaultId,
    /// The rule; `times` counts the uses left.
    #[serde(flatten)]
    pub rule: FaultRule,
}

/// The faults striking one API call, merged from every matching rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestFaults {
    pub latency: Duration,
    pub hang: bool,
    pub http_status: Option<u16>,
    pub system_error: bool,
    pub system_error_after_commit: bool,
    pub notify_before_reply: bool,
    /// Names of the faults applied, for the inspection log.
    pub applied: Vec<String>,
}

/// The faults striking one notify, merged from every matching rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NotifyFaults {
    pub latency: Duration,
    pub drop: bool,
    /// Deliveries per attempt (1 when not duplicated).
    pub copies: u32,
    pub reorder_window: Option<u32>,
    pub applied: Vec<String>,
}

#[derive(Debug, Default)]
struct FaultBook {
    next_id: u64,
    rules: Vec<ActiveFault>,
}

/// Adds, lists and removes faults while the simulator runs. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct FaultControl {
    book: Arc<Mutex<FaultBook>>,
}

/// A rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault rule: {0}")]
pub struct InvalidFault(pub String);

impl FaultControl {
    /// Puts a rule in force; it applies to calls that start after this returns.
    pub fn add(&self, rule: FaultRule) -> Result<FaultId, InvalidFault> {
        rule.validate().map_err(InvalidFault)?;
        let mut book = self.book.lock();
        book.next_id += 1;
        let id = FaultId(book.next_id);
        book.rules.push(ActiveFault { id, rule });
        Ok(id)
    }

    /// Retires a rule; `false` if it was not in force (removed or used up).
    pub fn remove(&self, id: FaultId) -> bool {
        let mut book = self.book.lock();
        let before = book.rules.len();
        book.rules.retain(|active| active.id != id);
        book.rules.len() != before
    }

    /// Retires every rule.
    pub fn clear(&self) {
        self.book.lock().rules.clear();
    }

    /// The rules in force, oldest first.
    pub fn list(&self) -> Vec<ActiveFault> {
        self.book.lock().rules.clone()
    }

    /// Takes one use of each rule that strikes, dropping rules that are used up.
    ///
    /// Of the faults that end a call early only the first in precedence strikes (a hang
    /// beats an HTTP error, which beats SYSTEMERROR), together with latency; the faults that
    /// need the call to go on (SYSTEMERROR after processing, notify before reply) wait. So a
    /// counted rule is never used up by a call another fault already ended. For notifies, a
    /// drop likewise leaves duplication and reordering rules untouched.
    fn take(&self, mch_id: Option<&str>, endpoint: Endpoint) -> Vec<Fault> {
        let mut book = self.book.lock();
        let matching: Vec<usize> = (0..book.rules.len())
            .filter(|&index| book.rules[index].rule.matches(mch_id, endpoint))
            .collect();
        let winner = matching
            .iter()
            .copied()
            .filter_map(|index| precedence(&book.rules[index].rule.fault).map(|rank| (rank, index)))
            .min()
            .map(|(_, index)| index);
        // With a call-ending fault, only it and latency strike; otherwise everything does.
        let strikes = |index: usize| match winner {
            None => true,
            Some(winning) => {
                index == winning || matches!(book.rules[index].rule.fault, Fault::Latency { .. })
            }
        };
        let struck: Vec<usize> = matching
            .into_iter()
            .filter(|&index| strikes(index))
            .collect();
        let faults = struck
            .iter()
            .map(|&index| book.rules[index].rule.fault.clone())
            .collect();
        // Descending, so removals do not shift the indices still to visit.
        for &index in struck.iter().rev() {
            let retire = match &mut book.rules[index].rule.times {
                None => false,
                Some(left) => {
                    *left -= 1;
                    *left == 0
                }
            };
            if retire {
                book.rules.remove(index);
            }
        }
        faults
    }

    pub(crate) fn for_request(&self, mch_id: Option<&str>, endpoint: Endpoint) -> RequestFaults {
        let mut faults = RequestFaults::default();
        for fault in self.take(mch_id, endpoint) {
            faults.applied.push(fault_name(&fault).to_string());
            match fault {
                Fault::Latency { ms } => faults.latency += Duration::from_millis(ms),
                Fault::Hang => faults.hang = true,
                Fault::HttpStatus { status } => faults.http_status = Some(status),
                Fault::SystemError => faults.system_error = true,
                Fault::SystemErrorAfterCommit => faults.system_error_after_commit = true,
                Fault::NotifyBeforeReply => faults.notify_before_reply = true,
                Fault::DropNotify | Fault::DuplicateNotify { .. } | Fault::ReorderNotify { .. } => {
                }
            }
        }
        faults
    }

    pub(crate) fn for_notify(&self, mch_id: &str, endpoint: Endpoint) -> NotifyFaults {
        let mut faults = NotifyFaults {
            copies: 1,
            ..NotifyFaults::default()
        };
        for fault in self.take(Some(mch_id), endpoint) {
            faults.applied.push(fault_name(&fault).to_string());
            match fault {
                Fault::Latency { ms } => faults.latency += Duration::from_millis(ms),
                Fault::DropNotify => faults.drop = true,
                Fault::DuplicateNotify { copies } => faults.copies = faults.copies.max(copies),
                Fault::ReorderNotify { window } => faults.reorder_window = Some(window),
                _ => {}
            }
        }
        faults
    }
}

/// Rank among the faults that end a call or notify early (lower wins); `None` for the
/// faults that only shape one (latency, processing then SYSTEMERROR, notify before reply,
/// duplication, reordering).
fn precedence(fault: &Fault) -> Option<u8> {
    match fault {
        Fault::Hang | Fault::DropNotify => Some(0),
        Fault::HttpStatus { .. } => Some(1),
        Fault::SystemError => Some(2),
        Fault::Latency { .. }
        | Fault::SystemErrorAfterCommit
        | Fault::NotifyBeforeReply
        | Fault::DuplicateNotify { .. }
        | Fault::ReorderNotify { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rules_retire_after_their_uses() {
        let control = FaultControl::default();
        control
            .add(
                FaultRule::new(Fault::SystemError)
                    .on(Endpoint::OrderQuery)
                    .times(2),
            )
            .unwrap();
        let strike = || {
            control
                .for_request(Some("1"), Endpoint::OrderQuery)
                .system_error
        };
        assert!(strike());
        assert!(strike());
        assert!(!strike());
        assert!(control.list().is_empty());
    }

    #[test]
    fn a_call_ended_by_one_fault_leaves_the_others_for_later() {
        let control = FaultControl::default();
        control
            .add(FaultRule::new(Fault::SystemError).times(1))
            .unwrap();
        control
            .add(FaultRule::new(Fault::HttpStatus { status: 503 }).times(1))
            .unwrap();
        control
            .add(FaultRule::new(Fault::NotifyBeforeReply).times(1))
            .unwrap();
        let first = control.for_request(Some("A"), Endpoint::UnifiedOrder);
        assert_eq!((first.http_status, first.system_error), (Some(503), false));
        assert!(!first.notify_before_reply);
        let second = control.for_request(Some("A"), Endpoint::UnifiedOrder);
        assert_eq!((second.http_status, second.system_error), (None, true));
        let third = control.for_request(Some("A"), Endpoint::UnifiedOrder);
        assert!(third.notify_before_reply && !third.system_error);
        assert!(control.list().is_empty());
    }

    #[test]
    fn scope_limits_merchant_and_endpoint() {
        let control = FaultControl::default();
        control
            .add(
                FaultRule::new(Fault::Hang)
                    .for_merchant("A")
                    .on(Endpoint::Refund),
            )
            .unwrap();
        assert!(!control.for_request(Some("B"), Endpoint::Refund).hang);
        assert!(!control.for_request(Some("A"), Endpoint::OrderQuery).hang);
        assert!(!control.for_request(None, Endpoint::Refund).hang);
        assert!(control.for_request(Some("A"), Endpoint::Refund).hang);
    }

    #[test]
    fn notify_and_request_faults_stay_apart() {
        let control = FaultControl::default();
        control.add(FaultRule::new(Fault::DropNotify)).unwrap();
        control
            .add(FaultRule::new(Fault::Latency { ms: 5 }))
            .unwrap();
        let request = control.for_request(Some("A"), Endpoint::UnifiedOrder);
        assert_eq!(request.latency, Duration::from_millis(5));
        let notify = control.for_notify("A", Endpoint::PayNotify);
        assert!(notify.drop);
        assert_eq!(
            notify.latency,
            Duration::ZERO,
            "unscoped latency is for API calls only"
        );
    }

    #[test]
    fn misplaced_rules_are_refused() {
        let control = FaultControl::default();
        let error = control
            .add(FaultRule::new(Fault::SystemError).on(Endpoint::PayNotify))
            .unwrap_err();
        assert!(error.0.contains("system_error"), "{error}");
        assert!(
            control
                .add(FaultRule::new(Fault::HttpStatus { status: 200 }))
                .is_err()
        );
        assert!(
            control
                .add(FaultRule::new(Fault::DuplicateNotify { copies: 1 }))
                .is_err()
        );
        assert!(
            control
                .add(FaultRule::new(Fault::NotifyBeforeReply).on(Endpoint::OrderQuery))
                .is_err()
        );
    }

    #[test]
    fn rules_read_from_toml() {
        let rule: FaultRule = toml::from_str(
            "mch_id = \"1\"\nendpoint = \"refund\"\ntimes = 3\nfault = { kind = \"http_status\", status = 503 }",
        )
        .unwrap();
        assert_eq!(
            rule,
            FaultRule::new(Fault::HttpStatus { status: 503 })
                .for_merchant("1")
                .on(Endpoint::Refund)
                .times(3)
        );
    }
}
