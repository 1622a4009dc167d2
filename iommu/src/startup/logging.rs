//! Logging as upstream drivers set it up (base `drivers/common/src/logger.rs`;
//! redox-real.md §7.1): a `redox-log` logger writing to stderr (which init points
//! at logd) and to `/scheme/logging/<category>/<subcategory>/<name>.log` plus an
//! `.ansi.log` twin, both at Info unless the kernel environment
//! (`/scheme/sys/env`) sets `DRIVER_<SUBCATEGORY>_LOG_LEVEL`,
//! `DRIVER_<CATEGORY>_LOG_LEVEL` or `DRIVER_LOG_LEVEL` (first found wins).
//!
//! The file outputs are opened here through libredox with the paths and rules of
//! redox-log's `OutputBuilder::in_redox_logging_scheme` (parents created, the
//! extension forced to `.log`), because that builder only opens the file when
//! compiled for Redox and elsewhere buffers every line in memory for ever; this
//! way both systems open the same file the same way.

use std::io::{self, BufWriter, Write};

use libredox::Fd;
use libredox::errno::EEXIST;
use libredox::flag::{O_CLOEXEC, O_CREAT, O_DIRECTORY, O_RDONLY, O_TRUNC, O_WRONLY};
use log::LevelFilter;
use redox_log::{OutputBuilder, RedoxLogger};

/// The kernel environment the log level comes from.
pub const LOG_ENV_PATH: &str = "/scheme/sys/env";
/// At most this much of [`LOG_ENV_PATH`] is read (as base does).
const ENV_READ_LIMIT: usize = 4096;

/// The level `env` (the text of [`LOG_ENV_PATH`], `KEY=VALUE` lines) sets for a
/// daemon of `category`/`subcategory`; `None` when it sets none (or an unknown
/// level name).
pub fn level_from_env(env: &str, category: &str, subcategory: &str) -> Option<LevelFilter> {
    let keys = [
        format!("DRIVER_{}_LOG_LEVEL", subcategory.to_uppercase()),
        format!("DRIVER_{}_LOG_LEVEL", category.to_uppercase()),
        "DRIVER_LOG_LEVEL".to_string(),
    ];
    keys.iter().find_map(|key| {
        env.lines()
            .filter_map(|line| line.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().parse::<LevelFilter>().ok())
    })?
}

fn kernel_env() -> String {
    let Ok(fd) = Fd::open(LOG_ENV_PATH, O_RDONLY | O_CLOEXEC, 0) else {
        return String::new();
    };
    let mut buf = vec![0u8; ENV_READ_LIMIT];
    let n = fd.read(&mut buf).unwrap_or(0);
    buf.truncate(n);
    String::from_utf8_lossy(&buf).into_owned()
}

/// A log file in the `logging` scheme, written through libredox.
struct SchemeLogFile(Fd);

impl Write for SchemeLogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .write(buf)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `/scheme/logging/<category>/<subcategory>/<file>` with the extension forced to
/// `.log`, creating the directories first (redox-log's rules).
fn open_log_file(category: &str, subcategory: &str, file: &str) -> libredox::error::Result<Fd> {
    let stem = file.strip_suffix(".log").unwrap_or(file);
    let mut dir = String::from("/scheme/logging");
    for part in [category, subcategory] {
        dir.push('/');
        dir.push_str(part);
        match Fd::open(&dir, O_CREAT | O_DIRECTORY | O_RDONLY | O_CLOEXEC, 0o755) {
            Ok(_) => {}
            Err(e) if e.errno() == EEXIST => {}
            Err(e) => return Err(e),
        }
    }
    Fd::open(
        &format!("{dir}/{stem}.log"),
        O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC,
        0o644,
    )
}

/// Installs the process's logger: stderr (ANSI colours) and, when the `logging`
/// scheme exists, `<name>.log` and `<name>.ansi.log` under
/// `/scheme/logging/<category>/<subcategory>/`. Upstream names: `net`/`pci` for a
/// network driver, `misc`/`acpi` for acpid. A second call in one process (several
/// simulated daemons in one test) keeps the first logger.
pub fn setup_logging(category: &str, subcategory: &str, name: &str) {
    let level = level_from_env(&kernel_env(), category, subcategory).unwrap_or(LevelFilter::Info);
    let mut logger = RedoxLogger::new().with_output(
        OutputBuilder::stderr()
            .with_filter(level)
            .with_ansi_escape_codes()
            .flush_on_newline(true)
            .build(),
    );
    let mut missing = None;
    for (file, ansi) in [
        (format!("{name}.log"), false),
        (format!("{name}.ansi"), true),
    ] {
        match open_log_file(category, subcategory, &file) {
            Ok(fd) => {
                let out = OutputBuilder::with_endpoint(BufWriter::new(SchemeLogFile(fd)))
                    .with_filter(level)
                    .flush_on_newline(true);
                let out = if ansi {
                    out.with_ansi_escape_codes()
                } else {
                    out
                };
                logger = logger.with_output(out.build());
            }
            // Before ramfs@logging is up (or on a machine without it) stderr alone.
            Err(e) => {
                missing.get_or_insert(format!(
                    "/scheme/logging/{category}/{subcategory}/{file}: {e}"
                ));
            }
        }
    }
    let _ = logger.with_process_name(name.to_string()).enable();
    if let Some(why) = missing {
        log::info!("{name}: logging to stderr only ({why})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_variable_wins() {
        let env = "DRIVER_LOG_LEVEL=warn\nDRIVER_PCI_LOG_LEVEL=TRACE\nDRIVER_NET_LOG_LEVEL=debug\n";
        assert_eq!(level_from_env(env, "net", "pci"), Some(LevelFilter::Trace));
        assert_eq!(level_from_env(env, "net", "usb"), Some(LevelFilter::Debug));
        assert_eq!(level_from_env(env, "disk", "usb"), Some(LevelFilter::Warn));
        assert_eq!(level_from_env("", "disk", "usb"), None);
        assert_eq!(level_from_env("DRIVER_LOG_LEVEL=loud", "a", "b"), None);
    }
}
