//! `dsmilctl`: the everyday tool for scheme `dsmil` — scan the devices, read one,
//! check status and health, follow events, set a token.
//!
//! It uses std file I/O only, so the same program runs on Redox (`/scheme/dsmil`)
//! and on Linux against a `redox-host mount <dir>` (`--root <dir>/dsmil`, or
//! `--root <dir>`: a mount point holding a `dsmil` directory is recognised).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dsmil::client::ctl::{self, CtlError, Output};
use dsmil::client::{DEFAULT_ROOT, Dsmil};
use dsmil::wire::Token;

#[derive(Parser)]
#[command(
    name = "dsmilctl",
    version,
    about = "Scan, read and watch the DSMIL devices of dsmild"
)]
struct Args {
    /// Where scheme `dsmil` is: `/scheme/dsmil` on Redox; on Linux the directory of a
    /// `redox-host mount` (its `dsmil` subdirectory is used when present).
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Machine-readable JSON output.
    #[arg(long, global = true, conflicts_with = "raw")]
    json: bool,
    /// Binary output exactly as the scheme returns it (`scan`: 256-byte scan chunks).
    #[arg(long, global = true)]
    raw: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List all 108 devices (one `scan` session).
    Scan,
    /// Read one device's data, e.g. `read 0x8000`.
    Read {
        /// Token, hex (`0x8000` or `8000`).
        #[arg(value_parser = parse_token)]
        token: Token,
    },
    /// Driver status and thermal state.
    Status,
    /// The health report.
    Health,
    /// Protocol version and geometry.
    Version,
    /// Follow the event stream until interrupted.
    Watch {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Set a token's value (root only; quarantined tokens are refused).
    Set {
        /// Token, hex.
        #[arg(value_parser = parse_token)]
        token: Token,
        /// Value (decimal, or hex with `0x`).
        #[arg(value_parser = parse_value)]
        value: u32,
    },
}

fn parse_token(s: &str) -> Result<Token, String> {
    Token::parse(s).map_err(|_| format!("`{s}` is not a DSMIL token (0x8000..=0x806b)"))
}

fn parse_value(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("`{s}` is not a 32-bit value"))
}

/// A mount point holds the whole namespace; the scheme is its `dsmil` entry.
fn scheme_root(root: &Path) -> PathBuf {
    let nested = root.join("dsmil");
    if !root.join("control").exists() && nested.join("control").exists() {
        nested
    } else {
        root.to_path_buf()
    }
}

fn run(args: Args) -> Result<(), CtlError> {
    let output = match (args.json, args.raw) {
        (true, _) => Output::Json,
        (_, true) => Output::Raw,
        _ => Output::Table,
    };
    let d = Dsmil::open_at(scheme_root(&args.root))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.command {
        Command::Scan => ctl::scan(&d, output, &mut out),
        Command::Read { token } => ctl::read(&d, token, output, &mut out),
        Command::Status => ctl::status(&d, output, &mut out),
        Command::Health => ctl::text(&d, "health", output, &mut out),
        Command::Version => ctl::version(&d, output, &mut out),
        Command::Watch { count } => ctl::watch(&d, count, output, &mut out),
        Command::Set { token, value } => ctl::set(&d, token, value, output, &mut out),
    }?;
    out.flush()?;
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CtlError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dsmilctl: {e}");
            ExitCode::FAILURE
        }
    }
}
