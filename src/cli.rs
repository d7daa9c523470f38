//! The `jit` command line: argument parsing only; each subcommand lives in `commands/`.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand};
use jit_pays::PayEventKind;
use wechatpay_v2::BillType;
use wechatpay_v2::time::{beijing_readable_time, from_beijing_local};

/// jit: runs apps made of JitAi-style elements.
#[derive(Debug, Parser)]
#[command(name = "jit", version, about, long_about = None)]
pub struct Cli {
    /// Log as JSON lines instead of text (or set JIT_LOG_FORMAT=json).
    #[arg(long, global = true)]
    pub log_json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate an app: print every problem as `file: json.path: message`.
    Check(AppArg),
    /// Print the element tree with each element's type chain and layer.
    Ls(LsArgs),
    /// Print one element's resolved definition as JSON, secrets masked.
    Show {
        /// The element's fullName, e.g. `pays.myWechatPay`.
        full_name: String,
        /// The app.
        #[command(flatten)]
        app: AppArg,
    },
    /// Serve the app's element functions over HTTP (reloading it when its elements/ tree,
    /// app.toml's [env], SIGHUP or `jit reload` say so).
    Serve(ServeArgs),
    /// Ask the `jit serve` running for the app to reload it (the server checks the new
    /// tree as `jit check` does, and keeps the running app when it has problems).
    Reload(AppArg),
    /// Run the WeChat Pay gateway simulator, or act as a payer through one.
    Sim(SimArgs),
    /// Payment events: list them, show one with every delivery attempt, deliver again.
    Events(EventsArgs),
    /// WeChat's daily bills: download a day's bill into the database.
    Bills(BillsArgs),
    /// Reconcile a Beijing day's orders and refunds against WeChat's bill; exits 3 when
    /// mismatches remain.
    Reconcile(ReconcileArgs),
    /// Print the app's OpenAPI 3.1 document (what `jit serve` answers at
    /// /api/{org}/{app}/openapi.json).
    Openapi(AppArg),
    /// Create something new in an app from a template.
    New(NewArgs),
}

/// `jit new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// What to create.
    #[command(subcommand)]
    pub what: NewCommand,
}

/// What `jit new` creates.
#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// A service element whose code is a native plugin: its folder and e.json
    /// (a services.NormalType instance), and a plugin crate that builds its library.
    Service(NewServiceArgs),
}

/// `jit new service FULLNAME`.
#[derive(Debug, Args)]
pub struct NewServiceArgs {
    /// The element's fullName, e.g. `shop.services.CheckoutSvc` (its folder is
    /// elements/shop/services/CheckoutSvc/).
    pub full_name: String,
    /// The app.
    #[command(flatten)]
    pub app: AppArg,
    /// Where to write the plugin crate [default: <app>/plugins/<crate name>].
    #[arg(long, value_name = "DIR")]
    pub crate_dir: Option<PathBuf>,
    /// The jit source tree the crate depends on by path (its crates/jit-plugin-api); by
    /// default the tree this `jit` was built from, when it is still there.
    #[arg(long, value_name = "PATH", conflicts_with = "jit_git")]
    pub jit_source: Option<PathBuf>,
    /// Depend on jit-plugin-api by git instead: the jit repository's URL.
    #[arg(long, value_name = "URL")]
    pub jit_git: Option<String>,
    /// With --jit-git: the revision (commit or tag) this `jit` was built from.
    #[arg(long, value_name = "REV", requires = "jit_git")]
    pub jit_rev: Option<String>,
}

/// `--app DIR`.
#[derive(Debug, Args)]
pub struct AppArg {
    /// The app directory (holding app.toml).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub app: PathBuf,
}

/// `jit ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The app.
    #[command(flatten)]
    pub app: AppArg,
    /// Only the elements this selector matches, e.g. `.pays.WechatPayType`, `pays.*`,
    /// `[mchId=10000100]`, `pays.services > *` (docs/hosted-code.md, "Finding elements").
    #[arg(long, value_name = "SELECTOR")]
    pub find: Option<String>,
}

/// `jit serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The app.
    #[command(flatten)]
    pub app: AppArg,
    /// Listen address (overrides JIT_LISTEN and app.toml).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Do not watch elements/ and app.toml for changes (SIGHUP and `jit reload` still
    /// reload).
    #[arg(long)]
    pub no_watch: bool,
}

/// `jit sim`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    /// A payer's action; without one, runs the simulator.
    #[command(subcommand)]
    pub action: Option<SimAction>,
    /// How to run the simulator.
    #[command(flatten)]
    pub run: SimRunArgs,
}

/// Options for running the simulator.
#[derive(Debug, Args)]
pub struct SimRunArgs {
    /// A TOML file with the simulator's configuration (merchants, faults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen address.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// A merchant's appid (with --mch-id and --key).
    #[arg(long, requires_all = ["mch_id", "key"])]
    pub appid: Option<String>,
    /// A merchant's mch_id.
    #[arg(long, requires_all = ["appid", "key"])]
    pub mch_id: Option<String>,
    /// A merchant's API key (prefer the JIT_SIM_KEY variable: flags show in `ps`).
    #[arg(long, env = "JIT_SIM_KEY", hide_env_values = true, requires_all = ["appid", "mch_id"])]
    pub key: Option<String>,
}

/// The payer's side.
#[derive(Debug, Subcommand)]
pub enum SimAction {
    /// Pay an order as a user scanning its code would.
    Pay(PayerArgs),
    /// Make an order's payment fail.
    Fail(PayerArgs),
    /// Decide how the next refund of an order ends: CHANGE, REFUNDCLOSE, SUCCESS, or
    /// PROCESSING (held until `jit sim refund-settle`).
    RefundPlan(RefundControlArgs),
    /// Settle a refund still PROCESSING as SUCCESS, CHANGE or REFUNDCLOSE (sends its notify).
    RefundSettle(RefundControlArgs),
}

/// `jit sim refund-plan ORDER_ID STATUS`, `jit sim refund-settle REFUND_ID STATUS`.
#[derive(Debug, Args)]
pub struct RefundControlArgs {
    /// The order id (out_trade_no) for refund-plan, the refund id (out_refund_no) for
    /// refund-settle.
    pub id: String,
    /// How the refund ends: SUCCESS, CHANGE, REFUNDCLOSE (or PROCESSING, refund-plan only).
    #[arg(value_parser = parse_refund_status)]
    pub status: wechatpay_v2::RefundStatus,
    /// The simulator: as for `jit sim pay`.
    #[command(flatten)]
    pub target: SimTarget,
}

fn parse_refund_status(text: &str) -> Result<wechatpay_v2::RefundStatus, String> {
    text.to_ascii_uppercase()
        .parse()
        .map_err(|_| "expected SUCCESS, CHANGE, REFUNDCLOSE or PROCESSING".to_string())
}

/// Which simulator a `jit sim` action goes to.
#[derive(Debug, Args)]
pub struct SimTarget {
    /// The simulator's base URL. Without it, the simulator of the shop `jit serve` runs
    /// for the app in --app (recorded in its `.jit/simulator.json`); a standalone
    /// `jit sim` prints its URL.
    #[arg(long, env = "JIT_SIM_URL", value_name = "URL")]
    pub sim: Option<String>,
    /// The app whose running shop's simulator to use (when --sim is not given).
    #[command(flatten)]
    pub app: AppArg,
}

/// `jit sim pay|fail ORDER_ID`.
#[derive(Debug, Args)]
pub struct PayerArgs {
    /// The merchant's order id (out_trade_no).
    pub order_id: String,
    /// The simulator.
    #[command(flatten)]
    pub target: SimTarget,
}

/// `jit events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: EventsAction,
}

/// The events subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// List events, oldest first: id, type, order, created (Beijing time), and each
    /// consumer's delivery state.
    Ls(EventsLsArgs),
    /// Show one event: its payload, its deliveries and every attempt.
    Show(EventsShowArgs),
    /// Queue events for delivery again (a running `jit serve` sends them at its next poll).
    Replay(EventsReplayArgs),
}

/// `jit events ls`.
#[derive(Debug, Args)]
pub struct EventsLsArgs {
    /// The app.
    #[command(flatten)]
    pub app: AppArg,
    /// Only events of this type (`order.paid`, ...).
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_event_type)]
    pub kind: Option<PayEventKind>,
    /// Only this order's events.
    #[arg(long = "order", value_name = "ORDER_ID")]
    pub order_id: Option<String>,
    /// Only events some consumer has not taken (pending or dead deliveries).
    #[arg(long)]
    pub undelivered: bool,
    /// Only events written at or after TIME: RFC 3339 (`2026-11-30T12:00:00Z`) or
    /// Beijing time (`2026-11-30 20:00:00`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// At most N events.
    #[arg(long, value_name = "N", default_value_t = 100,
        // The database takes a signed 64-bit limit.
        value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    pub limit: u64,
    /// Print a JSON array instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// `jit events show ID`.
#[derive(Debug, Args)]
pub struct EventsShowArgs {
    /// The event's id (`jit events ls` lists them).
    pub id: String,
    /// The app.
    #[command(flatten)]
    pub app: AppArg,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `jit events replay (ID | --since TIME)`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "since"])))]
pub struct EventsReplayArgs {
    /// The event to deliver again.
    pub id: Option<String>,
    /// Every event written at or after TIME: RFC 3339 (`2026-11-30T12:00:00Z`) or
    /// Beijing time (`2026-11-30 20:00:00`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Only to this consumer: a configured webhook URL, or `hooks`. Without it, to every
    /// configured consumer that takes the event's type.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The app.
    #[command(flatten)]
    pub app: AppArg,
}

/// `jit bills`.
#[derive(Debug, Args)]
pub struct BillsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: BillsAction,
}

/// The bills subcommands.
#[derive(Debug, Subcommand)]
pub enum BillsAction {
    /// Download a day's bill of every WeChat Pay instance (or one) from the app's gateway
    /// and store it, replacing what that day had. With the simulator as the gateway, the
    /// shop's `jit serve` must be running (its simulator holds the orders).
    Download(BillsDownloadArgs),
}

/// `jit bills download --date YYYY-MM-DD`.
#[derive(Debug, Args)]
pub struct BillsDownloadArgs {
    /// The Beijing date of the bill.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_bill_date)]
    pub date: NaiveDate,
    /// Which bill: ALL (payments and refunds), SUCCESS or REFUND.
    #[arg(long = "type", value_name = "TYPE", default_value = "ALL", value_parser = parse_bill_type)]
    pub bill_type: BillType,
    /// Only this WeChat Pay instance (its fullName); default every instance.
    #[arg(long, value_name = "FULLNAME")]
    pub element: Option<String>,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
    /// The app.
    #[command(flatten)]
    pub app: AppArg,
}

/// `jit reconcile --date YYYY-MM-DD`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The Beijing date to reconcile (its ALL bill is downloaded first if it never was).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_bill_date)]
    pub date: NaiveDate,
    /// Only this WeChat Pay instance (its fullName); default every instance.
    #[arg(long, value_name = "FULLNAME")]
    pub element: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The app.
    #[command(flatten)]
    pub app: AppArg,
}

/// A bill date: `YYYY-MM-DD`, Beijing.
pub fn parse_bill_date(text: &str) -> Result<NaiveDate, String> {
    jit_pays::bills::parse_bill_date(text).map_err(|err| err.to_string())
}

/// A bill type the parser reads: ALL, SUCCESS or REFUND (any case).
pub fn parse_bill_type(text: &str) -> Result<BillType, String> {
    match text.trim().to_ascii_uppercase().as_str() {
        "ALL" => Ok(BillType::All),
        "SUCCESS" => Ok(BillType::Success),
        "REFUND" => Ok(BillType::Refund),
        _ => Err("not a bill type; the types are ALL, SUCCESS and REFUND".to_owned()),
    }
}

/// A TIME argument: RFC 3339 with its offset, or Beijing wall-clock time
/// `yyyy-MM-dd HH:mm:ss` (the format `jit events` prints).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    let beijing = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(from_beijing_local)
        // Exactly the form Beijing time is printed in, nothing chrono merely tolerates.
        .filter(|instant| beijing_readable_time(*instant) == text);
    beijing.ok_or_else(|| {
        "not a time: write RFC 3339 (`2026-11-30T12:00:00Z`) or Beijing time \
         (`2026-11-30 20:00:00`)"
            .to_owned()
    })
}

/// An event type's name: `order.paid`, ...
pub fn parse_event_type(text: &str) -> Result<PayEventKind, String> {
    PayEventKind::from_name(text.trim()).ok_or_else(|| {
        let known: Vec<&str> = PayEventKind::ALL.iter().map(|kind| kind.name()).collect();
        format!("not an event type; the types are {}", known.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn times_are_rfc3339_or_beijing_wall_clock() {
        let noon = utc("2026-11-30T12:00:00Z");
        assert_eq!(parse_time("2026-11-30T12:00:00Z"), Ok(noon));
        assert_eq!(parse_time("2026-11-30T20:00:00+08:00"), Ok(noon));
        assert_eq!(parse_time("2026-11-30 20:00:00"), Ok(noon));
        assert_eq!(parse_time(" 2026-11-30 20:00:00 "), Ok(noon));
        for bad in [
            "",
            "yesterday",
            "2026-11-30",
            "2026-11-30 20:00",
            "2026-11-30T20:00:00",
            "2026-13-01 00:00:00",
            "2026-2-1 00:00:00",
            "20261130200000",
        ] {
            let err = parse_time(bad).unwrap_err();
            assert!(
                err.contains("RFC 3339") && err.contains("Beijing"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn bill_arguments_are_a_date_and_a_known_type() {
        use clap::Parser;
        let cli =
            Cli::try_parse_from(["jit", "bills", "download", "--date", "2026-11-30"]).unwrap();
        let Command::Bills(BillsArgs {
            action: BillsAction::Download(args),
        }) = cli.command
        else {
            panic!("bills download")
        };
        assert_eq!(args.date, NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
        assert_eq!(args.bill_type, BillType::All);
        assert_eq!(parse_bill_type("refund"), Ok(BillType::Refund));
        assert!(parse_bill_type("RECHARGE_REFUND").is_err());
        for bad in ["2026-11-31", "20261130", "2026-1-30", "yesterday"] {
            let err = parse_bill_date(bad).unwrap_err();
            assert!(err.contains("YYYY-MM-DD"), "{bad}: {err}");
        }
        assert!(
            Cli::try_parse_from(["jit", "reconcile"]).is_err(),
            "--date is required"
        );
    }

    #[test]
    fn event_types_are_the_wire_names() {
        assert_eq!(parse_event_type("order.paid"), Ok(PayEventKind::Paid));
        let err = parse_event_type("paid").unwrap_err();
        assert!(err.contains("order.paid_after_close"), "{err}");
    }

    #[test]
    fn replay_takes_an_id_or_a_time_not_both() {
        use clap::Parser;
        let parse =
            |args: &[&str]| Cli::try_parse_from(["jit", "events", "replay"].iter().chain(args));
        assert!(parse(&["E1"]).is_ok());
        assert!(parse(&["--since", "2026-11-30 20:00:00"]).is_ok());
        assert!(parse(&[]).is_err());
        assert!(parse(&["E1", "--since", "2026-11-30 20:00:00"]).is_err());
        let err = parse(&["--since", "soon"]).unwrap_err().to_string();
        assert!(err.contains("--since") && err.contains("RFC 3339"), "{err}");
        let err = Cli::try_parse_from(["jit", "events", "ls", "--limit", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--limit"), "{err}");
        let too_many = (i64::MAX as u64 + 1).to_string();
        assert!(Cli::try_parse_from(["jit", "events", "ls", "--limit", &too_many]).is_err());
    }
}
