//! `dsmilctl`'s commands as library functions: the binary only parses arguments,
//! so tests run the very same commands in-process (over
//! [`SchemeCalls`](super::SchemeCalls) on the mocked kernel) and from a separate
//! process against a mount.

pub mod json;
pub mod render;

use std::fmt;
use std::io::Write;

use super::dsmil::Dsmil;
use super::error::ClientError;
use super::transport::Transport;
use crate::wire::{EventRecord, Token};

/// How a command prints its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A readable table.
    Table,
    /// Machine-readable JSON (one object; `watch` prints one per line).
    Json,
    /// The bytes exactly as the scheme returned them (`scan`: whole 256-byte
    /// scan chunks; `read`: the device data; `watch`: the records).
    Raw,
}

/// Why a command failed.
#[derive(Debug)]
pub enum CtlError {
    /// The scheme refused or failed (errno and path inside).
    Client(ClientError),
    /// Writing the output failed (e.g. a closed pipe).
    Output(std::io::Error),
    /// The arguments make no sense (e.g. `--raw` for `status`).
    Usage(String),
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::Client(e) => write!(f, "{e}"),
            CtlError::Output(e) => write!(f, "writing output: {e}"),
            CtlError::Usage(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for CtlError {}

impl From<ClientError> for CtlError {
    fn from(e: ClientError) -> Self {
        CtlError::Client(e)
    }
}

impl From<std::io::Error> for CtlError {
    fn from(e: std::io::Error) -> Self {
        CtlError::Output(e)
    }
}

/// Result of a command.
pub type CtlResult = Result<(), CtlError>;

fn line(out: &mut dyn Write, text: &str) -> CtlResult {
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// `dsmilctl scan`: every device, through a `scan` session.
pub fn scan<T: Transport>(d: &Dsmil<T>, output: Output, out: &mut dyn Write) -> CtlResult {
    if output == Output::Raw {
        out.write_all(&d.scan_raw()?)?;
        return Ok(out.flush()?);
    }
    let devices = d.scan()?;
    match output {
        Output::Json => line(out, &render::scan_json(&devices)),
        _ => line(out, &render::scan_table(&devices)),
    }
}

/// `dsmilctl read <token>`: one device's data.
pub fn read<T: Transport>(
    d: &Dsmil<T>,
    token: Token,
    output: Output,
    out: &mut dyn Write,
) -> CtlResult {
    let data = d.read(token)?;
    match output {
        Output::Raw => {
            out.write_all(&data)?;
            Ok(out.flush()?)
        }
        Output::Json => line(out, &json::to_line(&json::DeviceData::new(token, &data))),
        Output::Table => {
            line(out, &format!("{token}: {} bytes", data.len()))?;
            line(out, &render::hex_dump(&data))
        }
    }
}

/// `dsmilctl status`: `GET_STATUS` and `GET_THERMAL`.
pub fn status<T: Transport>(d: &Dsmil<T>, output: Output, out: &mut dyn Write) -> CtlResult {
    let st = d.status()?;
    let th = d.thermal()?;
    match output {
        Output::Json => line(out, &render::status_json(&st, &th)),
        Output::Table => line(out, &render::status_table(&st, &th)),
        Output::Raw => Err(CtlError::Usage("status has no --raw form".into())),
    }
}

/// `dsmilctl version`: `GET_VERSION`.
pub fn version<T: Transport>(d: &Dsmil<T>, output: Output, out: &mut dyn Write) -> CtlResult {
    let v = d.version()?;
    match output {
        Output::Json => line(out, &render::version_json(&v)),
        Output::Table => line(out, &render::version_table(&v)),
        Output::Raw => Err(CtlError::Usage("version has no --raw form".into())),
    }
}

/// `dsmilctl health` (and any other text file: `text <name>`): the scheme's own
/// rendering, or its `key: value` lines as JSON.
pub fn text<T: Transport>(
    d: &Dsmil<T>,
    name: &str,
    output: Output,
    out: &mut dyn Write,
) -> CtlResult {
    let text = d.text(name)?;
    match output {
        Output::Json => line(out, &render::key_values_json(&text)),
        Output::Table => line(out, &text),
        Output::Raw => {
            out.write_all(text.as_bytes())?;
            Ok(out.flush()?)
        }
    }
}

/// `dsmilctl watch`: follows `events`, printing each record as it arrives
/// (flushed, so a pipe sees it at once). Stops after `limit` records if given.
pub fn watch<T: Transport>(
    d: &Dsmil<T>,
    limit: Option<usize>,
    output: Output,
    out: &mut dyn Write,
) -> CtlResult {
    if limit == Some(0) {
        return Ok(());
    }
    for (n, record) in d.events()?.enumerate() {
        let record = record?;
        match output {
            Output::Raw => {
                let mut bytes = [0u8; EventRecord::SIZE];
                // Re-encoding a decoded record gives back the bytes read.
                record
                    .encode(&mut bytes)
                    .map_err(|e| CtlError::Usage(format!("encoding an event: {e}")))?;
                out.write_all(&bytes)?;
            }
            Output::Json => line(out, &render::event_json(&record))?,
            Output::Table => line(out, &render::event_line(&record))?,
        }
        out.flush()?;
        if limit.is_some_and(|l| n + 1 >= l) {
            break;
        }
    }
    Ok(())
}

/// `dsmilctl set <token> <value>`: sets a token through firmware (root only).
pub fn set<T: Transport>(
    d: &Dsmil<T>,
    token: Token,
    value: u32,
    output: Output,
    out: &mut dyn Write,
) -> CtlResult {
    d.write_token(token, value)?;
    match output {
        Output::Json => line(out, &json::to_line(&json::Set::new(token, value))),
        _ => line(out, &format!("{token} = {value:#x}")),
    }
}
