//! The `jit` command line: argument parsing only; each subcommand lives in `commands/`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    Ls(AppArg),
    /// Print one element's resolved definition as JSON, secrets masked.
    Show {
        /// The element's fullName, e.g. `pays.myWechatPay`.
        full_name: String,
        /// The app.
        #[command(flatten)]
        app: AppArg,
    },
    /// Serve the app's element functions over HTTP.
    Serve(ServeArgs),
    /// Run the WeChat Pay gateway simulator, or act as a payer through one.
    Sim(SimArgs),
}

/// `--app DIR`.
#[derive(Debug, Args)]
pub struct AppArg {
    /// The app directory (holding app.toml).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub app: PathBuf,
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
}

/// `jit sim pay|fail ORDER_ID`.
#[derive(Debug, Args)]
pub struct PayerArgs {
    /// The merchant's order id (out_trade_no).
    pub order_id: String,
    /// The simulator's base URL. Without it, the simulator of the shop `jit serve` runs
    /// for the app in --app (recorded in its `.jit/simulator.json`); a standalone
    /// `jit sim` prints its URL.
    #[arg(long, env = "JIT_SIM_URL", value_name = "URL")]
    pub sim: Option<String>,
    /// The app whose running shop's simulator to use (when --sim is not given).
    #[command(flatten)]
    pub app: AppArg,
}
