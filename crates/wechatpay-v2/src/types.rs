//! The enumerations of the protocol: trade types, trade states, refund states, bill types.

use std::fmt;
use std::str::FromStr;

/// An enumerated wire value that this crate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownValue {
    /// Which enumeration.
    pub kind: &'static str,
    /// The value received.
    pub value: String,
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $( $(#[$doc:meta])* $variant:ident = $wire:literal ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$doc])* $variant, )*
        }

        impl $name {
            /// The wire value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )*
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $wire => Ok($name::$variant), )*
                    other => Err(UnknownValue { kind: $kind, value: other.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

wire_enum!(
    /// How the buyer pays (`trade_type`).
    TradeType, "trade_type", {
        /// In-WeChat web page or mini program (`wx.chooseWXPay`).
        Jsapi = "JSAPI",
        /// QR code shown by the merchant.
        Native = "NATIVE",
        /// Native mobile app (open-platform appid).
        App = "APP",
        /// Mobile browser outside WeChat (H5).
        Mweb = "MWEB",
        /// Merchant scans the buyer's code.
        Micropay = "MICROPAY",
    }
);

wire_enum!(
    /// The state of an order as `orderquery` reports it (`trade_state`).
    TradeState, "trade_state", {
        /// Paid.
        Success = "SUCCESS",
        /// Paid, then (partly) refunded.
        Refund = "REFUND",
        /// Not paid yet.
        NotPay = "NOTPAY",
        /// Closed unpaid.
        Closed = "CLOSED",
        /// Reversed (micropay).
        Revoked = "REVOKED",
        /// The buyer is entering the password: query again.
        UserPaying = "USERPAYING",
        /// Payment failed (bank refused...).
        PayError = "PAYERROR",
    }
);

impl TradeState {
    /// `true` when money moved from the buyer: `SUCCESS` or `REFUND`.
    pub const fn is_paid(self) -> bool {
        matches!(self, TradeState::Success | TradeState::Refund)
    }

    /// `true` when the order can no longer be paid or change on its own.
    pub const fn is_final(self) -> bool {
        !matches!(self, TradeState::NotPay | TradeState::UserPaying)
    }
}

wire_enum!(
    /// The state of one refund (`refund_status_$n`, `refund_status`).
    RefundStatus, "refund_status", {
        /// Refunded.
        Success = "SUCCESS",
        /// Closed without refunding.
        RefundClose = "REFUNDCLOSE",
        /// Being processed.
        Processing = "PROCESSING",
        /// Failed: the buyer's card cannot receive it; handled offline.
        Change = "CHANGE",
    }
);

wire_enum!(
    /// Which transactions a daily bill lists (`bill_type`).
    BillType, "bill_type", {
        /// All transactions.
        All = "ALL",
        /// Successful payments.
        Success = "SUCCESS",
        /// Refunds.
        Refund = "REFUND",
        /// Refunds of recharge coupons.
        RechargeRefund = "RECHARGE_REFUND",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip() {
        for state in [
            "SUCCESS",
            "REFUND",
            "NOTPAY",
            "CLOSED",
            "REVOKED",
            "USERPAYING",
            "PAYERROR",
        ] {
            assert_eq!(state.parse::<TradeState>().unwrap().as_str(), state);
        }
        assert!("PAID".parse::<TradeState>().is_err());
        assert_eq!("MWEB".parse::<TradeType>(), Ok(TradeType::Mweb));
        assert_eq!("CHANGE".parse::<RefundStatus>(), Ok(RefundStatus::Change));
        assert!(TradeState::Refund.is_paid());
        assert!(!TradeState::UserPaying.is_final());
    }
}
