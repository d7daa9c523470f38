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
    /// The element cannot reach what it needs (the app is gone, an element failed to load).
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for PayError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateOrder { order_id } => PayError::DuplicateOrder { order_id },
            StoreError::UnknownOrder { order_id } => PayError::UnknownOrder { order_id },
            other => PayError::Store(other),
        }
    }
}

impl PayError {
    /// The stable code a client sees.
    pub fn code(&self) -> &str {
        match self {
            PayError::Invalid { .. } => "BAD_ARGUMENTS",
            PayError::DuplicateOrder { .. } => "CONFLICT",
            PayError::UnknownOrder { .. } => "ORDER_NOT_FOUND",
            PayError::WrongElement { .. } => "CONFLICT",
            PayError::OrderPaid { .. } => "ORDER_PAID",
            PayError::OrderClosed { .. } => "ORDER_CLOSED",
            PayError::PayTypeChanged { .. } => "CONFLICT",
            PayError::Gateway { .. } | PayError::Mismatch { .. } => "UPSTREAM",
            PayError::Store(_) | PayError::Unavailable(_) => "INTERNAL",
            PayError::Element { source, .. } => source.code(),
        }
    }
}

impl From<PayError> for CallError {
    fn from(error: PayError) -> Self {
        let kind = match &error {
            PayError::Element { source, .. } => return source.clone(),
            PayError::Invalid { .. } => CallErrorKind::BadArguments,
            PayError::DuplicateOrder { .. }
            | PayError::WrongElement { .. }
            | PayError::PayTypeChanged { .. } => CallErrorKind::Conflict,
            PayError::Gateway { .. } | PayError::Mismatch { .. } => CallErrorKind::Upstream,
            PayError::Store(_) | PayError::Unavailable(_) => CallErrorKind::Internal,
            PayError::UnknownOrder { .. }
            | PayError::OrderPaid { .. }
            | PayError::OrderClosed { .. } => {
                CallErrorKind::Element(error.code().to_owned().into())
            }
        };
        CallError::new(kind, error.to_string())
    }
}
