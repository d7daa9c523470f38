//! Schema migrations, applied by [`super::connect`] before anything else touches the tables.

use sea_orm_migration::prelude::*;

/// The family's migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreatePayTables),
            Box::new(CreatePaymentConflicts),
            Box::new(CreateOutbox),
            Box::new(CreateRefunds),
            Box::new(CreateBills),
            Box::new(CreateNotifyLog),
            Box::new(AddRecordApiVersion),
        ]
    }

    fn migration_table_name() -> DynIden {
        // Kept apart from any migrations table the host app may have.
        "pays_seaql_migrations".into_iden()
    }
}

#[derive(DeriveIden)]
enum PaysPayLog {
    Table,
    Id,
    OrderId,
    Subject,
    AmountFen,
    Status,
    Element,
    PayType,
    TransactionId,
    PaidAfterClose,
    CreatedAt,
    UpdatedAt,
    PaidAt,
    ClosedAt,
    ExpiresAt,
    CheckAttempts,
    NextCheckAt,
    EventSeq,
    RefundedFen,
    RefundReservedFen,
}

#[derive(DeriveIden)]
enum PaysRefund {
    Table,
    Id,
    RefundId,
    OrderId,
    Element,
    AmountFen,
    Reason,
    Status,
    WechatRefundId,
    Account,
    Failure,
    CreatedAt,
    UpdatedAt,
    SucceededAt,
    CheckAttempts,
    NextCheckAt,
}

#[derive(DeriveIden)]
enum PaysWechatRecord {
    Table,
    OrderId,
    Appid,
    MchId,
    TradeType,
    PrepayId,
    CodeUrl,
    MwebUrl,
    PrepayExpiresAt,
    TradeState,
    TransactionId,
    TotalFee,
    LastNotify,
    LastQuery,
    CreatedAt,
    UpdatedAt,
    NotifiedAt,
    QueriedAt,
    ApiVersion,
}

#[derive(DeriveIden)]
enum PaysPaymentConflict {
    Table,
    Id,
    OrderId,
    TransactionId,
    OrderTransactionId,
    TotalFee,
    RawNotify,
    CreatedAt,
}

struct CreatePayTables;

impl MigrationName for CreatePayTables {
    fn name(&self) -> &str {
        "m20261127_000001_create_pay_tables"
    }
}

// The trait's `&SchemaManager` elides its lifetime; spelling it out would not match.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreatePayTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PaysPayLog::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PaysPayLog::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PaysPayLog::OrderId)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(PaysPayLog::Subject).text().not_null())
                    .col(
                        ColumnDef::new(PaysPayLog::AmountFen)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PaysPayLog::Status).string_len(16).not_null())
                    .col(ColumnDef::new(PaysPayLog::Element).text().not_null())
                    .col(ColumnDef::new(PaysPayLog::PayType).string_len(16).null())
                    .col(
                        ColumnDef::new(PaysPayLog::TransactionId)
                            .string_len(64)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaysPayLog::PaidAfterClose)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(PaysPayLog::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysPayLog::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysPayLog::PaidAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaysPayLog::ClosedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaysPayLog::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysPayLog::CheckAttempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(PaysPayLog::NextCheckAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pays_pay_log_order_id_uniq")
                    .table(PaysPayLog::Table)
                    .col(PaysPayLog::OrderId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The reconciler's scan: waiting orders due for a look.
        manager
            .create_index(
                Index::create()
                    .name("pays_pay_log_status_next_check")
                    .table(PaysPayLog::Table)
                    .col(PaysPayLog::Status)
                    .col(PaysPayLog::NextCheckAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pays_pay_log_created_at")
                    .table(PaysPayLog::Table)
                    .col(PaysPayLog::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PaysWechatRecord::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PaysWechatRecord::OrderId)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PaysWechatRecord::Appid)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysWechatRecord::MchId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysWechatRecord::TradeType)
                            .string_len(16)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaysWechatRecord::PrepayId)
                            .string_len(128)
                            .null(),
                    )
                    .col(ColumnDef::new(PaysWechatRecord::CodeUrl).text().null())
                    .col(ColumnDef::new(PaysWechatRecord::MwebUrl).text().null())
                    .col(
                        ColumnDef::new(PaysWechatRecord::PrepayExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaysWechatRecord::TradeState)
                            .string_len(32)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaysWechatRecord::TransactionId)
                            .string_len(64)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaysWechatRecord::TotalFee)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PaysWechatRecord::LastNotify).text().null())
                    .col(ColumnDef::new(PaysWechatRecord::LastQuery).text().null())
                    .col(
                        ColumnDef::new(PaysWechatRecord::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysWechatRecord::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysWechatRecord::NotifiedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaysWechatRecord::QueriedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PaysWechatRecord::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PaysPayLog::Table).to_owned())
            .await
    }
}

/// `pays_payment_conflict`: a second payment reported for an order already paid under
/// another transaction, kept once per (order, transaction).
struct CreatePaymentConflicts;

impl MigrationName for CreatePaymentConflicts {
    fn name(&self) -> &str {
        "m20261201_000001_create_payment_conflicts"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreatePaymentConflicts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PaysPaymentConflict::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PaysPaymentConflict::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PaysPaymentConflict::OrderId)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysPaymentConflict::TransactionId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysPaymentConflict::OrderTransactionId)
                            .string_len(64)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaysPaymentConflict::TotalFee)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysPaymentConflict::RawNotify)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysPaymentConflict::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pays_payment_conflict_order_transaction_uniq")
                    .table(PaysPaymentConflict::Table)
                    .col(PaysPaymentConflict::OrderId)
                    .col(PaysPaymentConflict::TransactionId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PaysPaymentConflict::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PaysEvent {
    Table,
    Id,
    EventType,
    Version,
    OrderId,
    OrderSeq,
    Element,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PaysEventDelivery {
    Table,
    Id,
    EventId,
    Consumer,
    OrderId,
    OrderSeq,
    Status,
    Attempts,
    BackoffFrom,
    NextAttemptAt,
    GiveUpAt,
    LeaseOwner,
    LeaseUntil,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden)]
enum PaysWebhookDelivery {
    Table,
    Id,
    EventId,
    Endpoint,
    Attempt,
    StatusCode,
    LatencyMs,
    Error,
    Instance,
    AttemptedAt,
}

/// The transactional outbox: `pays_event` (one row per transition, written in the
/// transition's transaction), `pays_event_delivery` (one row per event and consumer, the
/// unit of work instances claim) and `pays_webhook_delivery` (every delivery attempt), and
/// `pays_pay_log.event_seq`, the per-order sequence number of the order's events.
struct CreateOutbox;

impl MigrationName for CreateOutbox {
    fn name(&self) -> &str {
        "m20261202_000001_create_outbox"
    }
}

fn timestamp<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn nullable_timestamp<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PaysPayLog::Table)
                    .add_column(
                        ColumnDef::new(PaysPayLog::EventSeq)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        // On SQLite a WITHOUT ROWID table: rows stored in the order of their id, one B-tree
        // instead of a table and an index on the id. Each payment of a notify batch writes
        // one event, so every B-tree saved is work saved on the hot path. The id is a
        // UUIDv7, so it also serves `--since` (no index on created_at).
        let mut events = Table::create()
            .table(PaysEvent::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(PaysEvent::Id)
                    .string_len(36)
                    .not_null()
                    .primary_key(),
            )
            .col(
                ColumnDef::new(PaysEvent::EventType)
                    .string_len(48)
                    .not_null(),
            )
            .col(ColumnDef::new(PaysEvent::Version).integer().not_null())
            .col(ColumnDef::new(PaysEvent::OrderId).string_len(32).not_null())
            .col(ColumnDef::new(PaysEvent::OrderSeq).integer().not_null())
            .col(ColumnDef::new(PaysEvent::Element).text().not_null())
            .col(ColumnDef::new(PaysEvent::Payload).text().not_null())
            .col(timestamp(PaysEvent::CreatedAt))
            .to_owned();
        if manager.get_database_backend() == sea_orm::DbBackend::Sqlite {
            events.extra("WITHOUT ROWID");
        }
        manager.create_table(events).await?;
        // One event per (order, sequence number): a second writer of the same transition
        // cannot exist (the conditional UPDATE admits one), and this makes sure of it.
        manager
            .create_index(
                Index::create()
                    .name("pays_event_order_seq_uniq")
                    .table(PaysEvent::Table)
                    .col(PaysEvent::OrderId)
                    .col(PaysEvent::OrderSeq)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PaysEventDelivery::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PaysEventDelivery::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PaysEventDelivery::EventId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysEventDelivery::Consumer)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysEventDelivery::OrderId)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysEventDelivery::OrderSeq)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysEventDelivery::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysEventDelivery::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(PaysEventDelivery::BackoffFrom)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamp(PaysEventDelivery::NextAttemptAt))
                    .col(timestamp(PaysEventDelivery::GiveUpAt))
                    .col(ColumnDef::new(PaysEventDelivery::LeaseOwner).text().null())
                    .col(nullable_timestamp(PaysEventDelivery::LeaseUntil))
                    .col(ColumnDef::new(PaysEventDelivery::LastError).text().null())
                    .col(timestamp(PaysEventDelivery::CreatedAt))
                    .col(nullable_timestamp(PaysEventDelivery::DeliveredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("pays_event_delivery_event_fk")
                            .from(PaysEventDelivery::Table, PaysEventDelivery::EventId)
                            .to(PaysEvent::Table, PaysEvent::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pays_event_delivery_event_consumer_uniq")
                    .table(PaysEventDelivery::Table)
                    .col(PaysEventDelivery::EventId)
                    .col(PaysEventDelivery::Consumer)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The claim: a consumer's pending deliveries that are due.
        manager
            .create_index(
                Index::create()
                    .name("pays_event_delivery_due")
                    .table(PaysEventDelivery::Table)
                    .col(PaysEventDelivery::Status)
                    .col(PaysEventDelivery::Consumer)
                    .col(PaysEventDelivery::NextAttemptAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The claim's order rule: an earlier pending delivery of the same order.
        manager
            .create_index(
                Index::create()
                    .name("pays_event_delivery_order")
                    .table(PaysEventDelivery::Table)
                    .col(PaysEventDelivery::OrderId)
                    .col(PaysEventDelivery::Consumer)
                    .col(PaysEventDelivery::OrderSeq)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PaysWebhookDelivery::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PaysWebhookDelivery::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PaysWebhookDelivery::EventId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysWebhookDelivery::Endpoint)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysWebhookDelivery::Attempt)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PaysWebhookDelivery::StatusCode)
                            .integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaysWebhookDelivery::LatencyMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PaysWebhookDelivery::Error).text().null())
                    .col(
                        ColumnDef::new(PaysWebhookDelivery::Instance)
                            .text()
                            .not_null(),
                    )
                    .col(timestamp(PaysWebhookDelivery::AttemptedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pays_webhook_delivery_event")
                    .table(PaysWebhookDelivery::Table)
                    .col(PaysWebhookDelivery::EventId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PaysWebhookDelivery::Table.into_iden(),
            PaysEventDelivery::Table.into_iden(),
            PaysEvent::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(PaysPayLog::Table)
                    .drop_column(PaysPayLog::EventSeq)
                    .to_owned(),
            )
            .await
    }
}

/// Refunds: `pays_refund` (one row per refund asked for) and the order's refund totals,
/// `pays_pay_log.refunded_fen` and `refund_reserved_fen`.
struct CreateRefunds;

impl MigrationName for CreateRefunds {
    fn name(&self) -> &str {
        "m20261203_000001_create_refunds"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateRefunds {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [PaysPayLog::RefundedFen, PaysPayLog::RefundReservedFen] {
            manager
                .alter_table(
                    Table::alter()
                        .table(PaysPayLog::Table)
                        .add_column(ColumnDef::new(column).big_integer().not_null().default(0))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(PaysRefund::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PaysRefund::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PaysRefund::RefundId)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(PaysRefund::OrderId)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(PaysRefund::Element).text().not_null())
                    .col(
                        ColumnDef::new(PaysRefund::AmountFen)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PaysRefund::Reason).text().null())
                    .col(ColumnDef::new(PaysRefund::Status).string_len(16).not_null())
                    .col(
                        ColumnDef::new(PaysRefund::WechatRefundId)
                            .string_len(64)
                            .null(),
                    )
                    .col(ColumnDef::new(PaysRefund::Account).text().null())
                    .col(ColumnDef::new(PaysRefund::Failure).text().null())
                    .col(timestamp(PaysRefund::CreatedAt))
                    .col(timestamp(PaysRefund::UpdatedAt))
                    .col(nullable_timestamp(PaysRefund::SucceededAt))
                    .col(
                        ColumnDef::new(PaysRefund::CheckAttempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamp(PaysRefund::NextCheckAt))
                    .to_owned(),
            )
            .await?;
        // listRefunds, and the order's refunds in reconciliation.
        manager
            .create_index(
                Index::create()
                    .name("pays_refund_order")
                    .table(PaysRefund::Table)
                    .col(PaysRefund::OrderId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The reconciler's claim: unsettled refunds that are due.
        manager
            .create_index(
                Index::create()
                    .name("pays_refund_due")
                    .table(PaysRefund::Table)
                    .col(PaysRefund::Status)
                    .col(PaysRefund::NextCheckAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PaysRefund::Table).to_owned())
            .await?;
        for column in [PaysPayLog::RefundReservedFen, PaysPayLog::RefundedFen] {
            manager
                .alter_table(
                    Table::alter()
                        .table(PaysPayLog::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum PaysBillDay {
    Table,
    Id,
    MchId,
    BillType,
    BillDate,
    Element,
    Status,
    NoBill,
    LineCount,
    Summary,
    LeaseOwner,
    LeaseUntil,
    DownloadedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PaysBillLine {
    Table,
    Id,
    MchId,
    BillType,
    BillDate,
    Element,
    LineNumber,
    TradeTime,
    Appid,
    OutTradeNo,
    TransactionId,
    TradeState,
    TotalFee,
    SettlementTotalFee,
    OutRefundNo,
    RefundId,
    RefundFee,
    SettlementRefundFee,
    RefundStatus,
    ServiceFee,
    Raw,
}

#[derive(DeriveIden)]
enum PaysReconcileMismatch {
    Table,
    Id,
    BillDate,
    Element,
    Kind,
    OrderId,
    RefundId,
    EventId,
    Detail,
    CreatedAt,
}

/// Bills and reconciliation: `pays_bill_day` (one row per merchant, bill type and date
/// downloaded, also the scheduled download's claim), `pays_bill_line` (the bill's data
/// lines) and `pays_reconcile_mismatch` (the mismatches an event was raised for).
struct CreateBills;

impl MigrationName for CreateBills {
    fn name(&self) -> &str {
        "m20261204_000001_create_bills"
    }
}

fn big_id<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn text<T: IntoIden>(column: T, length: Option<u32>) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    match length {
        Some(length) => def.string_len(length),
        None => def.text(),
    };
    def.not_null().to_owned()
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateBills {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use PaysBillDay as D;
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .if_not_exists()
                    .col(big_id(D::Id))
                    .col(text(D::MchId, Some(64)))
                    .col(text(D::BillType, Some(16)))
                    .col(text(D::BillDate, Some(10)))
                    .col(text(D::Element, None))
                    .col(text(D::Status, Some(16)))
                    .col(
                        ColumnDef::new(D::NoBill)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ColumnDef::new(D::LineCount).integer().not_null().default(0))
                    .col(ColumnDef::new(D::Summary).text().null())
                    .col(ColumnDef::new(D::LeaseOwner).text().null())
                    .col(nullable_timestamp(D::LeaseUntil))
                    .col(nullable_timestamp(D::DownloadedAt))
                    .col(timestamp(D::CreatedAt))
                    .col(timestamp(D::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pays_bill_day_uniq")
                    .table(D::Table)
                    .col(D::MchId)
                    .col(D::BillType)
                    .col(D::BillDate)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        use PaysBillLine as L;
        manager
            .create_table(
                Table::create()
                    .table(L::Table)
                    .if_not_exists()
                    .col(big_id(L::Id))
                    .col(text(L::MchId, Some(64)))
                    .col(text(L::BillType, Some(16)))
                    .col(text(L::BillDate, Some(10)))
                    .col(text(L::Element, None))
                    .col(ColumnDef::new(L::LineNumber).integer().not_null())
                    .col(timestamp(L::TradeTime))
                    .col(text(L::Appid, Some(64)))
                    .col(text(L::OutTradeNo, Some(64)))
                    .col(text(L::TransactionId, Some(64)))
                    .col(text(L::TradeState, Some(32)))
                    .col(ColumnDef::new(L::TotalFee).big_integer().not_null())
                    .col(
                        ColumnDef::new(L::SettlementTotalFee)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(L::OutRefundNo).string_len(64).null())
                    .col(ColumnDef::new(L::RefundId).string_len(64).null())
                    .col(ColumnDef::new(L::RefundFee).big_integer().null())
                    .col(ColumnDef::new(L::SettlementRefundFee).big_integer().null())
                    .col(ColumnDef::new(L::RefundStatus).string_len(32).null())
                    .col(ColumnDef::new(L::ServiceFee).big_integer().not_null())
                    .col(text(L::Raw, None))
                    .to_owned(),
            )
            .await?;
        // A day's lines are replaced and read together; a line is unique in its bill.
        manager
            .create_index(
                Index::create()
                    .name("pays_bill_line_day_uniq")
                    .table(L::Table)
                    .col(L::MchId)
                    .col(L::BillType)
                    .col(L::BillDate)
                    .col(L::LineNumber)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pays_bill_line_out_trade_no")
                    .table(L::Table)
                    .col(L::OutTradeNo)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        use PaysReconcileMismatch as M;
        manager
            .create_table(
                Table::create()
                    .table(M::Table)
                    .if_not_exists()
                    .col(big_id(M::Id))
                    .col(text(M::BillDate, Some(10)))
                    .col(text(M::Element, None))
                    .col(text(M::Kind, Some(32)))
                    .col(text(M::OrderId, Some(64)))
                    .col(text(M::RefundId, Some(64)))
                    .col(text(M::EventId, Some(36)))
                    .col(text(M::Detail, None))
                    .col(timestamp(M::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pays_reconcile_mismatch_uniq")
                    .table(M::Table)
                    .col(M::BillDate)
                    .col(M::Element)
                    .col(M::Kind)
                    .col(M::OrderId)
                    .col(M::RefundId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PaysReconcileMismatch::Table.into_iden(),
            PaysBillLine::Table.into_iden(),
            PaysBillDay::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum PaysNotifyLog {
    Table,
    Id,
    ReceivedAt,
    Kind,
    OrderId,
    RefundId,
    Outcome,
    Verified,
    ReasonKind,
    Reason,
    Peer,
    BodyLen,
    Body,
}

/// `pays_notify_log`: every notify received (payment or refund), verified or refused and
/// why, with its body truncated ([`super::notify_log`]).
struct CreateNotifyLog;

impl MigrationName for CreateNotifyLog {
    fn name(&self) -> &str {
        "m20261205_000001_create_notify_log"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateNotifyLog {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use PaysNotifyLog as N;
        manager
            .create_table(
                Table::create()
                    .table(N::Table)
                    .if_not_exists()
                    .col(big_id(N::Id))
                    .col(timestamp(N::ReceivedAt))
                    .col(text(N::Kind, Some(16)))
                    .col(ColumnDef::new(N::OrderId).string_len(64).null())
                    .col(ColumnDef::new(N::RefundId).string_len(64).null())
                    .col(text(N::Outcome, Some(32)))
                    .col(ColumnDef::new(N::Verified).boolean().not_null())
                    .col(ColumnDef::new(N::ReasonKind).string_len(32).null())
                    .col(ColumnDef::new(N::Reason).text().null())
                    .col(ColumnDef::new(N::Peer).string_len(64).null())
                    .col(ColumnDef::new(N::BodyLen).big_integer().not_null())
                    .col(text(N::Body, None))
                    .to_owned(),
            )
            .await?;
        // The order page reads an order's notifies; the dashboard counts by time.
        manager
            .create_index(
                Index::create()
                    .name("pays_notify_log_order")
                    .table(N::Table)
                    .col(N::OrderId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pays_notify_log_received")
                    .table(N::Table)
                    .col(N::ReceivedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PaysNotifyLog::Table).to_owned())
            .await
    }
}

/// `pays_wechat_record.api_version`: which WeChat Pay API (`v2`, `v3`) the record's prepay,
/// notifies and queries were made in, so its raw bodies read as XML or JSON. Records made
/// before V3 are V2's.
struct AddRecordApiVersion;

impl MigrationName for AddRecordApiVersion {
    fn name(&self) -> &str {
        "m20261206_000001_add_record_api_version"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for AddRecordApiVersion {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PaysWechatRecord::Table)
                    .add_column(
                        ColumnDef::new(PaysWechatRecord::ApiVersion)
                            .string_len(4)
                            .not_null()
                            .default("v2"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PaysWechatRecord::Table)
                    .drop_column(PaysWechatRecord::ApiVersion)
                    .to_owned(),
            )
            .await
    }
}
