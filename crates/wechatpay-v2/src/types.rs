//! The enumerations of the protocol: trade types, trade states, refund states, bill types;
//! and the macros that declare wire enumerations ([`wire_enum!`](crate::wire_enum)) and
//! error-code sets ([`wire_codes!`](crate::wire_codes)) for this crate and wechatpay-v3.

/// An enumerated wire value that this crate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownValue {
    /// Which enumeration.
    pub kind: &'static str,
    /// The value received.
    pub value: String,
}

/// What the exported macros name through `$crate`, so a crate using them needs no `serde` or
/// `std` imports of its own.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use std::fmt;
    pub use std::str::FromStr;
}

/// Declares a closed enumeration of wire values: the enum, `as_str`, `FromStr` (refusing an
/// unknown value with [`UnknownValue`] naming `$kind`), `Display`, and serde as the wire
/// string. The one owner of how both protocol crates read and write their enumerations;
/// each crate lists its own values.
#[doc(hidden)]
#[macro_export]
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

        impl $crate::types::__private::FromStr for $name {
            type Err = $crate::UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $wire => Ok($name::$variant), )*
                    other => Err($crate::UnknownValue { kind: $kind, value: other.to_owned() }),
                }
            }
        }

        impl $crate::types::__private::fmt::Display for $name {
            fn fmt(&self, f: &mut $crate::types::__private::fmt::Formatter<'_>) -> $crate::types::__private::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::types::__private::serde::Serialize for $name {
            fn serialize<S: $crate::types::__private::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::types::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::types::__private::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as $crate::types::__private::serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(<D::Error as $crate::types::__private::serde::de::Error>::custom)
            }
        }
    };
}

/// Declares an open set of error codes: the enum with a final `Other(String)` keeping an
/// unknown code verbatim, `as_str`, `parse` (which never fails) and `Display`. Used for V2's
/// `err_code` ([`ErrCode`](crate::ErrCode)) and V3's error `code`; each crate lists its own
/// codes and its own retry table.
#[doc(hidden)]
#[macro_export]
macro_rules! wire_codes {
    ($(#[$meta:meta])* $name:ident { $( $(#[$doc:meta])* $variant:ident = $wire:literal ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$doc])* $variant, )*
            /// A code this crate does not know.
            Other(String),
        }

        impl $name {
            /// The wire name of the code.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )*
                    $name::Other(code) => code,
                }
            }

            #[doc = concat!("Reads a wire code; never fails (unknown codes become [`", stringify!($name), "::Other`]).")]
            pub fn parse(code: &str) -> $name {
                match code {
                    $( $wire => $name::$variant, )*
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl $crate::types::__private::fmt::Display for $name {
            fn fmt(&self, f: &mut $crate::types::__private::fmt::Formatter<'_>) -> $crate::types::__private::fmt::Result {
                f.write_str(self.as_str())
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
