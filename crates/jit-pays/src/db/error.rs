//! The store's error: a database failure, with what the store was doing.

use sea_orm::DbErr;

/// A database failure, with what the store was doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The order id is taken.
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
    /// No such refund.
    #[error("refund {refund_id} does not exist")]
    UnknownRefund {
        /// The merchant's refund number.
        refund_id: String,
    },
    /// The database refused or failed.
    #[error("database error while {doing}: {source}")]
    Db {
        /// What the store was doing.
        doing: &'static str,
        /// The driver error.
        source: DbErr,
    },
}

pub(crate) fn db(doing: &'static str) -> impl FnOnce(DbErr) -> StoreError {
    move |source| StoreError::Db { doing, source }
}
