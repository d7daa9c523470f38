//! What row hooks cost order creation: `PayStore::insert_order` timed with no row hooks
//! (one INSERT, as always) and with row hooks present (the INSERT, its `order.created`
//! event and its hooks delivery in one transaction).
//!
//! `cargo run -p jit-pays --example create_cost -- [ORDERS] [sqlite|postgres://…]`
//!
//! Writes ORDERS orders (default 2,000) each way, one after another, into a fresh database
//! (SQLite in a temporary directory unless a PostgreSQL URL is given), and prints the mean
//! time per order. No dispatcher runs: only the writer's side is measured.

use std::time::Instant;

use chrono::Utc;
use jit_pays::db::store::NewOrder;
use jit_pays::db::{DbConfig, PayStore, connect};

async fn create(
    store: &PayStore,
    prefix: &str,
    orders: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let at = Utc::now();
    let started = Instant::now();
    for n in 0..orders {
        store
            .insert_order(NewOrder {
                order_id: format!("{prefix}{n:020}"),
                subject: "Create cost".into(),
                amount_fen: 100,
                element: "pays.myWechatPay".into(),
                expires_at: at + chrono::Duration::hours(2),
                first_check_at: at + chrono::Duration::hours(1),
            })
            .await?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / orders as f64)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let orders: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(2_000);
    let database = args.next();
    let dir = tempfile::tempdir()?;
    let config = match database.as_deref() {
        Some(url) if url.starts_with("postgres") => {
            let mut config = DbConfig::new(url);
            config.pg_schema = Some(format!("create_cost_{}", std::process::id()));
            config
        }
        _ => DbConfig::sqlite_beside(dir.path(), "bench"),
    };
    let store = connect(&config).await?;
    // Warm up the pool and the statements.
    create(&store, "W", 50).await?;
    store.outbox().set_row_hooks(true);
    create(&store, "V", 50).await?;

    store.outbox().set_row_hooks(false);
    let without = create(&store, "A", orders).await?;
    store.outbox().set_row_hooks(true);
    let with = create(&store, "B", orders).await?;
    println!("insert_order, {orders} orders each, one at a time:");
    println!("  without row hooks: {without:8.1} µs per order");
    println!(
        "  with row hooks:    {with:8.1} µs per order ({:+.0} %)",
        (with / without - 1.0) * 100.0
    );
    Ok(())
}
