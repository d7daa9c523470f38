//! The family's errors and their mapping to the runtime's stable call error codes.

use jit_runtime::{CallError, CallErrorKind};

use crate::db::entity::PayStatus;
use crate::db::store::StoreError;

/// Why a pay operation failed. Messages name what was wrong and where; they never carry a
/// key or a signature.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// An argument is unusable.
    #[error("argument `{field}`: {message}")]
    Invalid {
        /// The argument (JSON name).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The order id is taken; nothing was written.
    #[error("order {order_id} already exists")]
    DuplicateOrder {
        /// The order id.
        order_id: String,
    },
    /// No such order.
    #[error("order {order_id} does not exist")]
    UnknownOrder {
        /// The order id.
        order_id: String,
    },
    /// The order belongs to another pay element.
    #[error("order {order_id} belongs to `{owner}`, not `{this}`")]
    WrongElement {
        /// The order id.
        order_id: String,
        /// The element that owns it.
        owner: String,
        /// The element asked.
        this: String,
    },
    /// The order is paid: it cannot be paid again or cancelled.
    #[error("order {order_id} is already paid")]
    OrderPaid {
        /// The order id.
        order_id: String,
    },
    /// The order is closed or timed out: it cannot be paid.
    #[error("order {order_id} is {status}: it can no longer be paid")]
    OrderClosed {
        /// The order id.
        order_id: String,
        /// `close` or `timeout`.
        status: PayStatus,
    },
    /// Only a paid order can be refunded; nothing was written.
    #[error("order {order_id} is {status}: only a paid order can be refunded")]
    OrderNotPaid {
        /// The order id.
        order_id: String,
        /// Its state.
        status: PayStatus,
    },
    /// No such refund.
    #[error("refund {refund_id} does not exist")]
    UnknownRefund {
        /// The merchant's refund number.
        refund_id: String,
    },
    /// The refund id names another refund (another order or amount); nothing was written.
    #[error("refund id {refund_id} is already used by {existing}")]
    RefundIdUsed {
        /// The merchant's refund number.
        refund_id: String,
        /// What it is used by.
        existing: String,
    },
    /// A prepay order of another trade type exists for this order.
    #[error(
        "order {order_id} already has a {existing} prepay order; WeChat refuses another \
         trade type for the same out_trade_no (OUT_TRADE_NO_USED): create a new order for {requested}"
    )]
    PayTypeChanged {
        /// The order id.
        order_id: String,
        /// The trade type already used.
        existing: String,
        /// The trade type asked for.
        requested: String,
    },
    /// WeChat Pay failed or refused.
    #[error("WeChat Pay {doing} for order {order_id}: {source}")]
    Gateway {
        /// What was being done (`unifiedorder`, `orderquery`, `closeorder`).
        doing: &'static str,
        /// The order id.
        order_id: String,
        /// The client's error.
        source: wechatpay_v2::Error,
    },
    /// WeChat Pay API v3 failed or refused.
    #[error("WeChat Pay {doing} for order {order_id}: {source}")]
    GatewayV3 {
        /// What was being done (`prepay`, `query`, `close`, `refund`).
        doing: &'static str,
        /// The order id.
        order_id: String,
        /// The V3 client's error (boxed: it is large, and rare).
        source: Box<wechatpay_v3::Error>,
    },
    /// WeChat answered something that contradicts the order (another amount, merchant…).
    #[error("WeChat Pay {doing} for order {order_id}: {message}")]
    Mismatch {
        /// What was being done.
        doing: &'static str,
        /// The order id.
        order_id: String,
        /// What disagreed.
        message: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
    /// A pay element reached through its functions (one that offers no typed `Pay`, such
    /// as a plugin's) answered an error; its code and message are passed on unchanged.
    #[error("`{element}`.{function}: {source}")]
    Element {
        /// The element.
        element: String,
        /// The function called.
        function: &'static str,
        /// Its error.
        source: CallError,
    },
    /// The element cannot reach what it needs (the app is gone, an element failed to
    /// build, a service is missing). Only the operator can fix it: a caller is told no
    /// more than that ([`PayError::public_message`]); the message and its cause chain go
    /// to the log.
    #[error("{message}{}", source.as_ref().map(|source| format!(": {source}")).unwrap_or_default())]
    Unavailable {
        /// What could not be reached.
        message: String,
        /// Why, when another error says so (kept, so the cause chain reaches the log).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// A code of the family's own: what a caller reads in `error.code` instead of its
/// category's code ([`CallErrorKind::code`]), with that category and when it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecificCode {
    /// The stable code.
    pub code: &'static str,
    /// Its category (an HTTP host answers with the category's status).
    pub kind: CallErrorKind,
    /// When it is answered.
    pub meaning: &'static str,
}

const ORDER_NOT_FOUND: SpecificCode = SpecificCode {
    code: "ORDER_NOT_FOUND",
    kind: CallErrorKind::NotFound,
    meaning: "no order has this id",
};
const ORDER_PAID: SpecificCode = SpecificCode {
    code: "ORDER_PAID",
    kind: CallErrorKind::Conflict,
    meaning: "the order is paid: it cannot be paid again or cancelled",
};
const ORDER_CLOSED: SpecificCode = SpecificCode {
    code: "ORDER_CLOSED",
    kind: CallErrorKind::Conflict,
    meaning: "the order is closed or timed out: it can no longer be paid",
};
const ORDER_NOT_PAID: SpecificCode = SpecificCode {
    code: "ORDER_NOT_PAID",
    kind: CallErrorKind::Conflict,
    meaning: "only a paid order can be refunded; nothing was written",
};
const REFUND_NOT_FOUND: SpecificCode = SpecificCode {
    code: "REFUND_NOT_FOUND",
    kind: CallErrorKind::NotFound,
    meaning: "no refund has this id",
};
const REFUND_ID_USED: SpecificCode = SpecificCode {
    code: "REFUND_ID_USED",
    kind: CallErrorKind::Conflict,
    meaning: "the refund id names another refund (another order or amount); nothing was written",
};

/// Every code of the family's own, for API descriptions (`jit openapi`). The family's
/// other failures carry their category's code.
pub const SPECIFIC_CODES: [SpecificCode; 6] = [
    ORDER_NOT_FOUND,
    ORDER_PAID,
    ORDER_CLOSED,
    ORDER_NOT_PAID,
    REFUND_NOT_FOUND,
    REFUND_ID_USED,
];

impl From<StoreError> for PayError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateOrder { order_id } => PayError::DuplicateOrder { order_id },
            StoreError::UnknownOrder { order_id } => PayError::UnknownOrder { order_id },
            StoreError::UnknownRefund { refund_id } => PayError::UnknownRefund { refund_id },
            other => PayError::Store(other),
        }
    }
}

impl PayError {
    /// [`PayError::Unavailable`] with no other error behind it.
    pub fn unavailable(message: impl Into<String>) -> Self {
        PayError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// [`PayError::Unavailable`] because of `source`, which stays reachable through
    /// [`std::error::Error::source`].
    pub fn unavailable_because(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        PayError::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The category a caller sees (an HTTP host answers with the category's status).
    pub fn kind(&self) -> CallErrorKind {
        match self {
            PayError::Invalid { .. } => CallErrorKind::BadArguments,
            PayError::UnknownOrder { .. } | PayError::UnknownRefund { .. } => {
                CallErrorKind::NotFound
            }
            PayError::DuplicateOrder { .. }
            | PayError::OrderNotPaid { .. }
            | PayError::RefundIdUsed { .. }
            | PayError::WrongElement { .. }
            | PayError::OrderPaid { .. }
            | PayError::OrderClosed { .. }
            | PayError::PayTypeChanged { .. } => CallErrorKind::Conflict,
            PayError::Gateway { .. } | PayError::GatewayV3 { .. } | PayError::Mismatch { .. } => {
                CallErrorKind::Upstream
            }
            PayError::Store(_) | PayError::Unavailable { .. } => CallErrorKind::Internal,
            PayError::Element { source, .. } => source.kind,
        }
    }

    /// The family's own code for this failure, where the category alone would not tell the
    /// caller what to do (one of [`SPECIFIC_CODES`]).
    fn specific_code(&self) -> Option<&'static str> {
        let code = match self {
            PayError::UnknownOrder { .. } => ORDER_NOT_FOUND,
            PayError::OrderPaid { .. } => ORDER_PAID,
            PayError::OrderClosed { .. } => ORDER_CLOSED,
            PayError::OrderNotPaid { .. } => ORDER_NOT_PAID,
            PayError::UnknownRefund { .. } => REFUND_NOT_FOUND,
            PayError::RefundIdUsed { .. } => REFUND_ID_USED,
            _ => return None,
        };
        Some(code.code)
    }

    /// The stable code a client sees: the specific code, else the category's.
    pub fn code(&self) -> &str {
        match self {
            PayError::Element { source, .. } => source.code(),
            other => other.specific_code().unwrap_or(other.kind().code()),
        }
    }
}

/// What a caller is told of a failure only the operator can fix.
const INTERNAL_MESSAGE: &str =
    "internal error: the payment could not be processed; the server log has the details";

impl PayError {
    /// What a caller (an API client) is told: the full message for what the caller can act
    /// on, and no more than the kind of failure for what only the operator can fix. A
    /// database error may name the database, a build error the element's files and a
    /// transport error the gateway's URL; those details go to the log instead.
    pub fn public_message(&self) -> String {
        match self {
            PayError::Store(_) | PayError::Unavailable { .. } => INTERNAL_MESSAGE.to_owned(),
            PayError::Gateway {
                doing,
                order_id,
                source,
            } => format!(
                "WeChat Pay {doing} for order {order_id}: {}",
                gateway_failure(source)
            ),
            PayError::GatewayV3 {
                doing,
                order_id,
                source,
            } => format!(
                "WeChat Pay {doing} for order {order_id}: {}",
                v3_gateway_failure(source)
            ),
            other => other.to_string(),
        }
    }
}

/// A gateway failure as a caller may read it: WeChat's own answers in full, but a
/// transport or client failure only by its kind (their messages carry the URL called).
fn gateway_failure(error: &wechatpay_v2::Error) -> String {
    use wechatpay_v2::Error;
    match error {
        Error::Transport(transport) => transport_failure(transport),
        Error::Config(_) => "the WeChat Pay client is not configured correctly".to_owned(),
        other => other.to_string(),
    }
}

/// [`gateway_failure`] for the V3 client.
fn v3_gateway_failure(error: &wechatpay_v3::Error) -> String {
    use wechatpay_v3::Error;
    match error {
        Error::Transport(transport) => transport_failure(transport),
        Error::Config(_) | Error::Key(_) => {
            "the WeChat Pay V3 client is not configured correctly".to_owned()
        }
        other => other.to_string(),
    }
}

/// A failed HTTP exchange by its kind only (both clients share the type).
fn transport_failure(error: &wechatpay_v2::TransportError) -> String {
    use wechatpay_v2::TransportError;
    match error {
        TransportError::Connect { .. } => "the gateway could not be reached".to_owned(),
        TransportError::Timeout { .. } => "the gateway did not answer in time".to_owned(),
        TransportError::Status { status, .. } => format!("the gateway answered HTTP {status}"),
        TransportError::Http { .. } => "the call to the gateway failed".to_owned(),
    }
}

impl From<PayError> for CallError {
    /// The caller's view of `error` ([`PayError::public_message`]); when that hides
    /// something, the whole error is logged here, in the call's span.
    fn from(error: PayError) -> Self {
        if let PayError::Element { source, .. } = error {
            return source;
        }
        let public = error.public_message();
        let detail = error.to_string();
        if public != detail {
            let detail = jit_runtime::log_safe(&detail).with_limit(1024);
            match error.kind() {
                CallErrorKind::Internal => {
                    tracing::error!(code = error.code(), error = %detail, "pay call failed");
                }
                _ => tracing::warn!(code = error.code(), error = %detail, "pay call failed"),
            }
        }
        let call_error = CallError::new(error.kind(), public);
        match error.specific_code() {
            Some(code) => call_error.with_code(code),
            None => call_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_error(error: PayError) -> (CallErrorKind, String) {
        let call_error = CallError::from(error);
        (call_error.kind, call_error.code().to_owned())
    }

    #[test]
    fn each_failure_has_a_category_and_keeps_its_stable_code() {
        let order_id = || "T1".to_owned();
        let cases = [
            (
                PayError::Invalid {
                    field: "amount",
                    message: "negative".into(),
                },
                CallErrorKind::BadArguments,
                "BAD_ARGUMENTS",
            ),
            (
                PayError::DuplicateOrder {
                    order_id: order_id(),
                },
                CallErrorKind::Conflict,
                "CONFLICT",
            ),
            (
                PayError::UnknownOrder {
                    order_id: order_id(),
                },
                CallErrorKind::NotFound,
                "ORDER_NOT_FOUND",
            ),
            (
                PayError::OrderPaid {
                    order_id: order_id(),
                },
                CallErrorKind::Conflict,
                "ORDER_PAID",
            ),
            (
                PayError::OrderClosed {
                    order_id: order_id(),
                    status: PayStatus::Timeout,
                },
                CallErrorKind::Conflict,
                "ORDER_CLOSED",
            ),
            (
                PayError::Mismatch {
                    doing: "orderquery",
                    order_id: order_id(),
                    message: "another amount".into(),
                },
                CallErrorKind::Upstream,
                "UPSTREAM",
            ),
            (
                PayError::unavailable("the app is gone"),
                CallErrorKind::Internal,
                "INTERNAL",
            ),
        ];
        for (error, kind, code) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(error.code(), code, "{error}");
            assert_eq!(call_error(error), (kind, code.to_owned()));
        }
    }

    /// Every specific code a failure carries is listed, with the failure's category, and
    /// every listed code is carried by some failure.
    #[test]
    fn the_listed_specific_codes_are_the_ones_failures_carry() {
        let status = || PayStatus::Close;
        let failures = [
            PayError::UnknownOrder {
                order_id: "T1".into(),
            },
            PayError::OrderPaid {
                order_id: "T1".into(),
            },
            PayError::OrderClosed {
                order_id: "T1".into(),
                status: status(),
            },
            PayError::OrderNotPaid {
                order_id: "T1".into(),
                status: status(),
            },
            PayError::UnknownRefund {
                refund_id: "R1".into(),
            },
            PayError::RefundIdUsed {
                refund_id: "R1".into(),
                existing: "order T2".into(),
            },
            PayError::DuplicateOrder {
                order_id: "T1".into(),
            },
            PayError::Invalid {
                field: "amount",
                message: "negative".into(),
            },
        ];
        let mut carried = Vec::new();
        for failure in &failures {
            if let Some(code) = failure.specific_code() {
                let listed = SPECIFIC_CODES
                    .iter()
                    .find(|listed| listed.code == code)
                    .unwrap_or_else(|| panic!("{code} is not in SPECIFIC_CODES"));
                assert_eq!(listed.kind, failure.kind(), "{code}");
                carried.push(code);
            }
        }
        let listed: Vec<&str> = SPECIFIC_CODES.iter().map(|listed| listed.code).collect();
        assert_eq!(carried, listed);
    }

    #[test]
    fn an_element_error_passes_through_unchanged() {
        let source = CallError::not_found("no order T1").with_code("ORDER_NOT_FOUND");
        let error = PayError::Element {
            element: "pays.myDiscountPay".into(),
            function: "check",
            source: source.clone(),
        };
        assert_eq!(error.kind(), CallErrorKind::NotFound);
        assert_eq!(error.code(), "ORDER_NOT_FOUND");
        assert_eq!(CallError::from(error), source);
    }

    /// The cause of an unavailable element stays reachable (the CLI prints the chain and
    /// the log has it), while a caller is told nothing of it: not the URL, not the file.
    #[test]
    fn an_unavailable_element_keeps_its_cause_but_tells_the_caller_nothing_of_it() {
        let cause = std::io::Error::other("cannot reach postgres://shop:hunter2@db.internal/shop");
        let error = PayError::unavailable_because("pay element `pays.myWechatPay`", cause);
        let source = std::error::Error::source(&error).expect("the cause is kept");
        assert!(source.to_string().contains("db.internal"), "{source}");
        assert!(
            error
                .to_string()
                .starts_with("pay element `pays.myWechatPay`: ")
        );
        assert!(
            error.to_string().contains("db.internal"),
            "the log sees it: {error}"
        );
        assert_eq!(error.public_message(), INTERNAL_MESSAGE);
        let call_error = CallError::from(error);
        assert_eq!(call_error.kind, CallErrorKind::Internal);
        assert!(!call_error.message.contains("db.internal"), "{call_error}");
        assert!(std::error::Error::source(&PayError::unavailable("gone")).is_none());
    }

    /// The message once carried a run of spaces from a broken line continuation.
    #[test]
    fn the_internal_message_reads_as_one_sentence() {
        let message = PayError::unavailable("x").public_message();
        assert_eq!(
            message,
            "internal error: the payment could not be processed; the server log has the details"
        );
        assert!(!message.contains("  "), "{message:?}");
    }
}
