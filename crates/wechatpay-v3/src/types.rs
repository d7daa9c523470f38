//! The enumerations of API v3. `trade_state` has the same values as in V2 and is shared:
//! [`TradeState`] is `wechatpay_v2::TradeState`.
//!
//! The other enumerations have V3's own values (`FACEPAY`, `ABNORMAL`, no `RECHARGE_REFUND`)
//! and are declared here with V2's [`wechatpay_v2::wire_enum!`], which owns how a wire
//! enumeration parses, prints and serialises.

use wechatpay_v2::wire_enum;
pub use wechatpay_v2::{TradeState, UnknownValue};

wire_enum!(
    /// How an order was paid (`trade_type` of a transaction).
    TradeType, "trade_type", {
        /// In WeChat: official account page or mini program.
        Jsapi = "JSAPI",
        /// QR code.
        Native = "NATIVE",
        /// Native mobile app.
        App = "APP",
        /// Merchant scans the buyer's code.
        Micropay = "MICROPAY",
        /// Mobile browser outside WeChat (H5).
        Mweb = "MWEB",
        /// Face payment.
        Facepay = "FACEPAY",
    }
);

wire_enum!(
    /// The state of a refund (`status`, `refund_status`).
    RefundStatus, "refund status", {
        /// Refunded.
        Success = "SUCCESS",
        /// Closed without refunding.
        Closed = "CLOSED",
        /// Being processed.
        Processing = "PROCESSING",
        /// Failed: the buyer's account cannot receive it; handled offline.
        Abnormal = "ABNORMAL",
    }
);

impl RefundStatus {
    /// `true` when the refund will not change any more.
    pub const fn is_final(self) -> bool {
        !matches!(self, RefundStatus::Processing)
    }
}

wire_enum!(
    /// Which transactions a trade bill lists (`bill_type`).
    BillType, "bill_type", {
        /// All transactions.
        All = "ALL",
        /// Successful payments.
        Success = "SUCCESS",
        /// Refunds.
        Refund = "REFUND",
    }
);

wire_enum!(
    /// Which account a fund-flow bill covers (`account_type`).
    AccountType, "account_type", {
        /// The basic account.
        Basic = "BASIC",
        /// The operation account.
        Operation = "OPERATION",
        /// The fees account.
        Fees = "FEES",
    }
);

wire_enum!(
    /// The kind of a notify (`event_type`).
    EventType, "event_type", {
        /// A payment succeeded.
        TransactionSuccess = "TRANSACTION.SUCCESS",
        /// A refund succeeded.
        RefundSuccess = "REFUND.SUCCESS",
        /// A refund failed; handled offline.
        RefundAbnormal = "REFUND.ABNORMAL",
        /// A refund was closed.
        RefundClosed = "REFUND.CLOSED",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip() {
        for status in ["SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL"] {
            assert_eq!(status.parse::<RefundStatus>().unwrap().as_str(), status);
        }
        assert!("REFUNDCLOSE".parse::<RefundStatus>().is_err());
        assert_eq!("FACEPAY".parse::<TradeType>(), Ok(TradeType::Facepay));
        assert_eq!(
            serde_json::from_str::<EventType>("\"REFUND.ABNORMAL\"").unwrap(),
            EventType::RefundAbnormal
        );
        let error = serde_json::from_str::<BillType>("\"RECHARGE_REFUND\"").unwrap_err();
        assert!(error.to_string().contains("bill_type"), "{error}");
        assert!(!RefundStatus::Processing.is_final());
    }
}
