//! Load generator for `jit serve`: payment notifies per second, end to end.
//!
//! Prepares `--orders` orders through the shop's HTTP API, signs one genuine WeChat Pay
//! payment notify per order with the merchant's key, then fires them at
//! `/api/{org}/{app}/pays/services/PaySvc/wechatNotify` with bounded concurrency and
//! measures each round trip (HTTP → signature check → durable commit → SUCCESS reply).
//! A second phase re-sends notifies for orders already paid (WeChat's retries). Every
//! answer must be the SUCCESS reply; finally every order is queried and must be `success`.
//!
//! The phases can also be split between processes: `--write-notifies FILE` only creates
//! the orders and writes their signed notifies to FILE (one XML body per line: wrk's input,
//! or a later run's), and `--notifies-from FILE` sends the notifies of FILE to orders some
//! other process created (after a restart of the server: its order cache is cold).
//! Each timed phase also prints a line `RESULT LABEL REQUESTS RATE P50_MS P99_MS ERRORS`
//! (LABEL prefixed by `--label`) that scripts/load-notify.sh gathers into its table.
//!
//! ```text
//! scripts/load-notify.sh                 # starts a release server and runs the matrix
//! cargo run --release --example load_notify -- --url http://127.0.0.1:8080 --orders 20000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use wechatpay_v2::{ApiKey, Params, SignType};

/// Options.
#[derive(Debug, Parser)]
struct Options {
    /// Base URL of the running server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The app's org.
    #[arg(long, default_value = "demo")]
    org: String,
    /// The app's name.
    #[arg(long, default_value = "shop")]
    app: String,
    /// Bearer token for the JSON API.
    #[arg(long, env = "JIT_API_TOKEN", default_value = "demo-token")]
    token: String,
    /// Merchant appid, mch_id and API key (the example app's demo merchant by default).
    #[arg(long, default_value = "wx2421b1c4370ec43b")]
    appid: String,
    /// Merchant number.
    #[arg(long, default_value = "10000100")]
    mch_id: String,
    /// Merchant API key.
    #[arg(
        long,
        env = "WECHAT_API_KEY",
        default_value = "192006250b4c09247ec02edce69f6a2d"
    )]
    key: String,
    /// Distinct orders (one notify each).
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// Duplicate notifies sent after the distinct phase (cycling over the paid orders).
    #[arg(long, default_value_t = 20_000)]
    duplicates: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Amount of each order, in yuan.
    #[arg(long, default_value = "0.01")]
    amount: String,
    /// Before the notifies, this many requests to an unknown element: the host's own
    /// ceiling (routing, request id, tracing, JSON error) with no element or database work.
    #[arg(long, default_value_t = 0)]
    baseline: usize,
    /// Only create the orders, and write their signed notifies to this file (one body a
    /// line).
    #[arg(long, conflicts_with = "notifies_from")]
    write_notifies: Option<std::path::PathBuf>,
    /// Create no orders: send the notifies of this file (written by `--write-notifies`).
    #[arg(long)]
    notifies_from: Option<std::path::PathBuf>,
    /// Prefix of the labels of the `RESULT` lines.
    #[arg(long, default_value = "generator")]
    label: String,
}

struct Target {
    client: reqwest::Client,
    api: String,
    token: String,
}

impl Target {
    async fn call(&self, path: &str, arguments: Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}/{path}", self.api))
            .bearer_auth(&self.token)
            .json(&arguments)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(status.is_success(), "{path}: HTTP {status}: {body}");
        Ok(body)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .http1_only()
        .tcp_nodelay(true)
        .build()?;
    let target = Arc::new(Target {
        client,
        api: format!(
            "{}/api/{}/{}",
            options.url.trim_end_matches('/'),
            options.org,
            options.app
        ),
        token: options.token.clone(),
    });

    if options.baseline > 0 {
        let url = format!("{}/load/baseline/unknownFunction", target.api);
        let report = fire_expecting(
            &target.client,
            &url,
            &["{}".to_owned()],
            options.baseline,
            options.concurrency,
            404,
            "NOT_FOUND",
        )
        .await?;
        report.print("baseline (404 from the host, no element work)");
    }

    let key = ApiKey::new(options.key.clone());
    let (order_ids, notifies) = match &options.notifies_from {
        Some(file) => read_notifies(file)?,
        None => {
            let orders = create_orders(&target, &options).await?;
            // Signing happens before the clock starts: the figure is the server's.
            let notifies: Vec<String> = orders
                .iter()
                .map(|(order_id, total_fee)| signed_notify(&options, &key, order_id, total_fee))
                .collect();
            let order_ids = orders.into_iter().map(|(order_id, _)| order_id).collect();
            (order_ids, notifies)
        }
    };
    if let Some(file) = &options.write_notifies {
        std::fs::write(file, notifies.join("\n") + "\n")
            .with_context(|| format!("writing {}", file.display()))?;
        println!(
            "wrote {} signed notifies to {}",
            notifies.len(),
            file.display()
        );
        return Ok(());
    }
    let notify_url = format!("{}/pays/services/PaySvc/wechatNotify", target.api);

    let distinct = fire(
        &target.client,
        &notify_url,
        &notifies,
        notifies.len(),
        options.concurrency,
    )
    .await?;
    distinct.print("distinct orders");
    distinct.result(&format!("{}-distinct", options.label));
    let duplicates = fire(
        &target.client,
        &notify_url,
        &notifies,
        options.duplicates,
        options.concurrency,
    )
    .await?;
    duplicates.print("duplicates");
    duplicates.result(&format!("{}-repeats", options.label));

    // Every order must now be paid, exactly as notified.
    let unpaid = futures::stream::iter(order_ids.iter())
        .map(|order_id| {
            let target = Arc::clone(&target);
            async move {
                let order = target
                    .call("pays/services/PaySvc/query", json!({"orderId": order_id}))
                    .await?;
                anyhow::Ok(order["status"] != "success")
            }
        })
        .buffer_unordered(options.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<bool>, _>>()?
        .into_iter()
        .filter(|unpaid| *unpaid)
        .count();
    if unpaid > 0 {
        bail!("{unpaid} orders are not `success` after their notify was answered SUCCESS");
    }
    println!("verified: all {} orders are `success`", order_ids.len());
    Ok(())
}

/// Creates `--orders` orders through the same API a shop front end uses, timing each call:
/// the creations phase. Returns each order's id and amount in fen.
async fn create_orders(
    target: &Arc<Target>,
    options: &Options,
) -> anyhow::Result<Vec<(String, String)>> {
    let amount: Value = serde_json::from_str(&options.amount).context("--amount is a number")?;
    let started = Instant::now();
    let created: Vec<(String, String, Duration)> = futures::stream::iter(0..options.orders)
        .map(|index| {
            let target = Arc::clone(target);
            let amount = amount.clone();
            async move {
                let sent = Instant::now();
                let order = target
                    .call(
                        "pays/services/PaySvc/create",
                        json!({"subject": format!("load {index}"), "amount": amount}),
                    )
                    .await?;
                let latency = sent.elapsed();
                let order_id = order["orderId"]
                    .as_str()
                    .context("create returned no orderId")?
                    .to_owned();
                let total_fee = order["amountFen"]
                    .as_i64()
                    .map(|fen| fen.to_string())
                    .context("create returned no amountFen")?;
                anyhow::Ok((order_id, total_fee, latency))
            }
        })
        .buffer_unordered(options.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let elapsed = started.elapsed();
    let mut latencies: Vec<Duration> = created.iter().map(|(_, _, latency)| *latency).collect();
    latencies.sort_unstable();
    let report = PhaseReport {
        requests: created.len(),
        elapsed,
        latencies,
    };
    report.print("creations");
    report.result(&format!("{}-create", options.label));
    Ok(created
        .into_iter()
        .map(|(order_id, total_fee, _)| (order_id, total_fee))
        .collect())
}

/// The notifies a `--write-notifies` run wrote, with the order each names.
fn read_notifies(file: &std::path::Path) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut order_ids = Vec::new();
    let mut notifies = Vec::new();
    for (line, body) in text
        .lines()
        .enumerate()
        .filter(|(_, body)| !body.is_empty())
    {
        let params = wechatpay_v2::xml::decode(body.as_bytes())
            .with_context(|| format!("{} line {}", file.display(), line + 1))?;
        let order_id = params
            .get("out_trade_no")
            .with_context(|| format!("{} line {}: no out_trade_no", file.display(), line + 1))?;
        order_ids.push(order_id.clone());
        notifies.push(body.to_owned());
    }
    ensure!(!notifies.is_empty(), "{} holds no notify", file.display());
    Ok((order_ids, notifies))
}

fn signed_notify(options: &Options, key: &ApiKey, order_id: &str, total_fee: &str) -> String {
    let mut params = Params::new();
    for (name, value) in [
        ("appid", options.appid.as_str()),
        ("bank_type", "CMC"),
        ("cash_fee", total_fee),
        ("fee_type", "CNY"),
        ("is_subscribe", "N"),
        ("mch_id", options.mch_id.as_str()),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        ("out_trade_no", order_id),
        ("result_code", "SUCCESS"),
        ("return_code", "SUCCESS"),
        ("time_end", "20261127120000"),
        ("total_fee", total_fee),
        ("trade_type", "NATIVE"),
    ] {
        params.insert(name.to_owned(), value.to_owned());
    }
    params.insert("nonce_str".to_owned(), wechatpay_v2::nonce_str());
    // Unique per order, whichever run created it: the order id's digits.
    let digits: String = order_id.chars().filter(char::is_ascii_digit).collect();
    params.insert("transaction_id".to_owned(), format!("4200{digits:0>24}"));
    wechatpay_v2::sign_params(&mut params, SignType::Md5, key);
    wechatpay_v2::xml::encode(&params)
}

struct PhaseReport {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl PhaseReport {
    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    fn print(&self, label: &str) {
        if self.requests == 0 {
            return;
        }
        println!(
            "{label}: {} notifies in {:.2} s = {:.0}/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests as f64 / self.elapsed.as_secs_f64(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.90)),
            ms(self.percentile(0.99)),
            ms(*self.latencies.last().expect("non-empty")),
        );
    }
}

impl PhaseReport {
    /// The `RESULT` line scripts/load-notify.sh reads.
    fn result(&self, label: &str) {
        if self.requests == 0 {
            return;
        }
        println!(
            "RESULT {label} {} {:.0} {:.2} {:.2} 0",
            self.requests,
            self.requests as f64 / self.elapsed.as_secs_f64(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
        );
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Sends `count` notifies (cycling over `bodies`) with `concurrency` in flight; every
/// answer must be WeChat's SUCCESS reply.
async fn fire(
    client: &reqwest::Client,
    url: &str,
    bodies: &[String],
    count: usize,
    concurrency: usize,
) -> anyhow::Result<PhaseReport> {
    fire_expecting(
        client,
        url,
        bodies,
        count,
        concurrency,
        200,
        "<return_code><![CDATA[SUCCESS]]></return_code>",
    )
    .await
}

/// Sends `count` requests (cycling over `bodies`) with `concurrency` in flight; every
/// answer must have `expected_status` and contain `expected_text`.
async fn fire_expecting(
    client: &reqwest::Client,
    url: &str,
    bodies: &[String],
    count: usize,
    concurrency: usize,
    expected_status: u16,
    expected_text: &str,
) -> anyhow::Result<PhaseReport> {
    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(0..count)
        .map(|index| {
            let body = bodies[index % bodies.len()].clone();
            async move {
                let sent = Instant::now();
                let response = client
                    .post(url)
                    .header("content-type", "text/xml")
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let text = response.text().await?;
                let latency = sent.elapsed();
                ensure!(
                    status.as_u16() == expected_status && text.contains(expected_text),
                    "answered HTTP {status}: {text}"
                );
                anyhow::Ok(latency)
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(PhaseReport {
        requests: count,
        elapsed,
        latencies,
    })
}
