//! `jit bills download` and `jit reconcile`: WeChat's daily bills from the command line.
//!
//! Both build the app as `jit serve` does — the same definitions, plugins, database
//! ([`crate::official::open_store`]) and merchant settings — but serve nothing and start
//! no background task: the pay elements are built to sign calls (`downloadbill`, and the
//! live `orderquery` / `refundquery` of reconciliation) with the app's own merchants.
//!
//! The gateway is the app's: `[gateway] base_url` (or `JIT_GATEWAY_BASE_URL`) as configured.
//! With `[gateway] simulator = true` the gateway is the simulator inside the app's running
//! `jit serve` — it holds the orders the shop took, so a simulator of the command's own
//! would have no bill to give. The command finds it as `jit sim pay` does, through the
//! `.jit/simulator.json` the running server writes, and refuses when no shop runs.

use std::path::Path;
use std::process::ExitCode;

use jit_pays::bills::{Mismatch, ReconcileDay, Side, download_bills, reconcile_days};
use jit_runtime::{App, LoadErrors, log_safe};
use serde_json::json;

use crate::cli::{BillsAction, BillsArgs, BillsDownloadArgs, ReconcileArgs};
use crate::error::HostError;
use crate::host::Host;
use crate::official::config::{GatewayTarget, PaysConfig};
use crate::server::routes::api_base;
use crate::simulator_file::SimulatorFile;

/// The exit code of `jit reconcile` when mismatches remain (1 is a failure to reconcile).
const MISMATCHES_REMAIN: u8 = 3;

pub(crate) async fn bills(host: &Host, args: BillsArgs) -> Result<ExitCode, HostError> {
    match args.action {
        BillsAction::Download(args) => download(host, args).await,
    }
}

/// The gateway a command talks to: the configured one, or the running shop's simulator.
fn gateway_url(app_dir: &Path, pays: &PaysConfig) -> Result<String, HostError> {
    match &pays.gateway {
        Some(GatewayTarget::Remote(url)) => Ok(url.clone()),
        Some(GatewayTarget::Simulator) => SimulatorFile::read(app_dir)
            .map(|record| record.url)
            .map_err(|reason| {
                HostError::command(format!(
                    "the gateway is the simulator inside the shop's `jit serve`, which holds its \
                     orders and bills: {reason}"
                ))
            }),
        None => Err(HostError::command(format!(
            "no payment gateway is chosen; {}",
            crate::official::config::GATEWAY_CHOICES
        ))),
    }
}

/// The app built as `jit serve` builds it (without serving): its pay elements sign with
/// the app's merchants and call `gateway_url`.
async fn open_app(host: &Host, app_dir: &Path) -> Result<App, HostError> {
    if !host.has_official_families() {
        return Err(HostError::command(
            "this host carries no payment family, so it has no bills",
        ));
    }
    let (settings, config, pays) = host.resolve_serve_config(app_dir, &Default::default())?;
    let gateway = gateway_url(app_dir, &pays)?;
    let definitions = host.load_definitions(app_dir)?;
    jit_pays::check_merchant_settings(&definitions)?;
    let plugins = jit_plugin_host::load_plugins(&definitions).map_err(LoadErrors::from)?;
    let store = crate::official::open_store(&pays).await?;
    let public_base_url = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let api = api_base(&public_base_url, &settings.org, &settings.name);
    let mut pays_settings =
        crate::official::pays_settings(&public_base_url, &api, gateway.clone(), &pays);
    if pays.gateway == Some(GatewayTarget::Simulator) {
        // The running shop's simulator is WeChat: V3 instances trust its keys, as in
        // `jit serve`.
        if let Some(keys) = simulator_v3_keys(&gateway, &definitions).await? {
            pays_settings = pays_settings.with_simulator(std::sync::Arc::new(
                crate::official::ReadSimulatorKeys(keys),
            ));
        }
    }
    let builder = host.app_builder(app_dir, |builder| {
        jit_pays::register(builder, store, pays_settings)
    });
    let builder = jit_plugin_host::add_plugin_loaders(builder, plugins).definitions(definitions);
    Host::build_app(builder).await
}

/// WeChat Pay's V3 keys of the simulator at `url`, read through one of the app's V3
/// merchants; `None` when the app has none.
async fn simulator_v3_keys(
    url: &str,
    definitions: &jit_runtime::Definitions,
) -> Result<Option<jit_pays::SimulatorV3Keys>, HostError> {
    let Some((_, config)) = jit_pays::v3_merchant_settings(definitions)?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let remote = wechatpay_sim::RemoteSim::new(url);
    let unreachable =
        |err| HostError::command_caused("cannot read the simulator's WeChat Pay V3 keys", err);
    let material = remote
        .v3_material(&config.mch_id)
        .await
        .map_err(unreachable)?;
    let mode = remote.v3_mode().await.map_err(unreachable)?;
    Ok(Some(crate::official::simulator_v3_keys(
        material.wechatpay_public_key_id,
        material.wechatpay_public_key_pem,
        material.platform_certificate_pem,
        mode,
    )))
}

async fn download(host: &Host, args: BillsDownloadArgs) -> Result<ExitCode, HostError> {
    let app = open_app(host, &args.app.app).await?;
    let days = download_bills(&app, args.date, args.bill_type, args.element.as_deref())
        .await
        .map_err(|err| HostError::command_caused("cannot download the bill", err))?;
    if args.json {
        println!("{}", pretty(&json!(days))?);
        return Ok(ExitCode::SUCCESS);
    }
    for day in &days {
        let what = if day.no_bill {
            "no bill (WeChat: No Bill Exist): an empty day".to_owned()
        } else {
            format!("{} lines", day.lines)
        };
        println!(
            "{} {} bill of {} for merchant {} stored: {what}",
            day.element, day.bill_type, day.date, day.mch_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn reconcile(host: &Host, args: ReconcileArgs) -> Result<ExitCode, HostError> {
    let app = open_app(host, &args.app.app).await?;
    let days = reconcile_days(&app, args.date, args.element.as_deref())
        .await
        .map_err(|err| HostError::command_caused("cannot reconcile", err))?;
    let clean = days.iter().all(ReconcileDay::is_clean);
    if args.json {
        println!(
            "{}",
            pretty(&json!({ "date": args.date, "clean": clean, "days": days }))?
        );
    } else {
        for day in &days {
            print_day(day);
        }
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(MISMATCHES_REMAIN)
    })
}

fn print_day(day: &ReconcileDay) {
    println!(
        "{} (merchant {}), {}: {} bill lines{}, {} payments and {} refunds in the shop; \
         {} matched, {} fixed by query, {} mismatches ({} new events)",
        day.element,
        day.mch_id,
        day.date,
        day.bill_lines,
        if day.no_bill { " (No Bill Exist)" } else { "" },
        day.local_payments,
        day.local_refunds,
        day.matched,
        day.fixed_by_query.len(),
        day.mismatches.len(),
        day.events_raised,
    );
    let rows: Vec<(&str, &Mismatch)> = day
        .mismatches
        .iter()
        .map(|m| ("mismatch", m))
        .chain(day.fixed_by_query.iter().map(|m| ("fixed", m)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let header = [
        "OUTCOME",
        "KIND",
        "ORDER",
        "REFUND",
        "SHOP",
        "BILL",
        "LIVE QUERY",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|(outcome, m)| {
            [
                (*outcome).to_owned(),
                m.kind.to_string(),
                log_safe(&m.order_id).to_string(),
                m.refund_id
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), |id| log_safe(id).to_string()),
                side(m.local.as_ref()),
                side(m.bill.as_ref()),
                m.query
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), |q| log_safe(q).to_string()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 7]| {
        let mut text = String::from(" ");
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            text.push(' ');
            if index + 1 == row.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}"));
            }
        }
        println!("{}", text.trim_end());
    };
    line(&header.map(str::to_owned));
    for row in &cells {
        line(row);
    }
}

/// `8.01 success` / `8.00 SUCCESS (line 4)` / `-`.
fn side(side: Option<&Side>) -> String {
    match side {
        None => "-".to_owned(),
        Some(side) => {
            let mut text = format!("{} {}", side.amount_fen, log_safe(&side.status));
            if let Some(line) = side.line {
                text.push_str(&format!(" (line {line})"));
            }
            text
        }
    }
}

fn pretty(value: &serde_json::Value) -> Result<String, HostError> {
    serde_json::to_string_pretty(value)
        .map_err(|err| HostError::command_caused("cannot print JSON", err))
}
