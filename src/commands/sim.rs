//! `jit sim`: run the WeChat Pay gateway simulator, or pay / fail an order or decide a
//! refund's outcome through one.

use std::net::SocketAddr;
use std::process::ExitCode;

use serde_json::{Value, json};
use wechatpay_sim::{MerchantConfig, RefundPlan, RemoteError, RemoteSim, SimConfig, Simulator};

use crate::cli::{PayerArgs, RefundControlArgs, SimAction, SimArgs, SimRunArgs, SimTarget};
use crate::error::HostError;
use crate::server::shutdown::ShutdownSignal;
use crate::simulator_file::SimulatorFile;

/// Where `jit sim` listens when neither `--listen` nor the config file says.
pub(crate) const DEFAULT_SIM_LISTEN: &str = "127.0.0.1:8090";

pub(crate) async fn sim(args: SimArgs) -> Result<ExitCode, HostError> {
    match args.action {
        Some(SimAction::Pay(payer)) => payer_action(&payer, "pay").await,
        Some(SimAction::Fail(payer)) => payer_action(&payer, "fail").await,
        Some(SimAction::RefundPlan(args)) => refund_plan(&args).await,
        Some(SimAction::RefundSettle(args)) => refund_settle(&args).await,
        None => run(args.run).await,
    }
}

fn sim_config(args: SimRunArgs) -> Result<SimConfig, HostError> {
    let mut config = match &args.config {
        Some(path) => SimConfig::from_toml_file(path)
            .map_err(|err| HostError::service("simulator configuration", err))?,
        None => SimConfig::default().with_listen(
            DEFAULT_SIM_LISTEN
                .parse::<SocketAddr>()
                .expect("the default address parses"),
        ),
    };
    if let Some(listen) = args.listen {
        config = config.with_listen(listen);
    }
    if let (Some(appid), Some(mch_id), Some(key)) = (args.appid, args.mch_id, args.key) {
        let merchant = MerchantConfig::new(appid, mch_id, key);
        config = if args.config.is_some() {
            config.with_merchant(merchant)
        } else {
            config.with_merchants([merchant])
        };
    }
    Ok(config)
}

async fn run(args: SimRunArgs) -> Result<ExitCode, HostError> {
    let config = sim_config(args)?;
    let merchants: Vec<String> = config
        .merchants
        .iter()
        .map(|merchant| format!("{} ({})", merchant.mch_id, merchant.appid))
        .collect();
    let handle = Simulator::start(config)
        .await
        .map_err(|err| HostError::service("simulator", err))?;
    println!("WeChat Pay simulator at {}", handle.base_url());
    println!("merchants: {}", merchants.join(", "));
    println!(
        "pay an order: jit sim pay ORDER_ID --sim {}   (Ctrl-C stops)",
        handle.base_url()
    );
    let shutdown = ShutdownSignal::new();
    shutdown.trigger_on_os_signals();
    shutdown.fired().await;
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The simulator a payer action goes to: `--sim`, else the one the app's running shop
/// recorded.
fn simulator_base_url(target: &SimTarget) -> Result<String, HostError> {
    match &target.sim {
        Some(url) if !url.trim().is_empty() => Ok(url.trim().to_owned()),
        _ => SimulatorFile::read(&target.app.app)
            .map(|record| record.url)
            .map_err(HostError::command),
    }
}

/// A refused or failed refund control, with the simulator's reason.
fn refund_control_error(what: &str, error: RemoteError) -> HostError {
    match error {
        RemoteError::Refused {
            message, status, ..
        } => HostError::command(format!(
            "the simulator refused to {what}: {message} (HTTP {status})"
        )),
        transport @ RemoteError::Transport { .. } => HostError::command_caused(
            format!(
                "cannot {what} (is `jit serve` or `jit sim` still running? --sim sets its URL)"
            ),
            transport,
        ),
    }
}

/// `POST {sim}/sim/refund-plans`: the next refund of the order ends as told.
async fn refund_plan(args: &RefundControlArgs) -> Result<ExitCode, HostError> {
    let remote = RemoteSim::new(simulator_base_url(&args.target)?);
    let what = format!("plan the next refund of order {}", args.id);
    remote
        .plan_refund(&RefundPlan::next_refund_of(&args.id, args.status))
        .await
        .map_err(|error| refund_control_error(&what, error))?;
    println!(
        "the next refund of order {} will end as {}",
        args.id, args.status
    );
    Ok(ExitCode::SUCCESS)
}

/// `POST {sim}/sim/refunds/settle`: a refund still PROCESSING settles now.
async fn refund_settle(args: &RefundControlArgs) -> Result<ExitCode, HostError> {
    let remote = RemoteSim::new(simulator_base_url(&args.target)?);
    let what = format!("settle refund {}", args.id);
    remote
        .settle_refund(&args.id, args.status)
        .await
        .map_err(|error| refund_control_error(&what, error))?;
    println!(
        "refund {} settled as {}; its refund notify (if it asked for one) follows",
        args.id, args.status
    );
    Ok(ExitCode::SUCCESS)
}

/// `POST {sim}/sim/pay` or `/sim/fail` with the order's out_trade_no; prints the order.
async fn payer_action(args: &PayerArgs, action: &str) -> Result<ExitCode, HostError> {
    let base_url = simulator_base_url(&args.target)?;
    let url = format!("{}/sim/{action}", base_url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|err| HostError::command_caused("cannot create an HTTP client", err))?;
    let response = client
        .post(&url)
        .json(&json!({ "out_trade_no": args.order_id }))
        .send()
        .await
        .map_err(|err| {
            HostError::command_caused(
                format!(
                    "cannot reach the simulator at {url} (is `jit serve` or `jit sim` still running? --sim sets its URL)"
                ),
                err,
            )
        })?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|err| {
        HostError::command_caused(
            format!("the simulator at {url} answered HTTP {status} without JSON"),
            err,
        )
    })?;
    if body["ok"] == Value::Bool(true) {
        let order = &body["order"];
        println!(
            "{} order {}: state {}, total_fee {} fen, transaction_id {}",
            if action == "pay" { "paid" } else { "failed" },
            order["out_trade_no"].as_str().unwrap_or(&args.order_id),
            order["state"].as_str().unwrap_or("unknown"),
            order["total_fee"],
            order["transaction_id"].as_str().unwrap_or("-"),
        );
        if action == "pay" {
            println!("the simulator now sends the signed payment notify to the order's notify_url");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        let reason = body["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_string());
        Err(HostError::command(format!(
            "the simulator refused to {action} order {}: {reason} (HTTP {status})",
            args.order_id
        )))
    }
}
