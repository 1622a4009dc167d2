//! `/etc/dsmild.toml`: the settings an administrator gives dsmild at start (the
//! calling interface's command code and DMI token table, the thermal policy, the
//! MMIO window's base). Every key is optional; an unknown key is an error, as in
//! base's unit files, so a typo is reported instead of silently ignored.
//!
//! ```toml
//! [smi]
//! command_port = 0xB2              # from the DMI 0xDA structure
//! calling_interface_code = 0x7D    # absent: DSMIL's legacy SMI ports
//! tokens = [ { token = 0x8000, location = 0x0480, value = 1 } ]
//!
//! [thermal]
//! limit_celsius = 85
//! reads_without_sensor = true      # device reads when no sensor works
//!
//! [mmio]
//! base = 0xFB000000                # absent: the `mmio` file is ENODEV
//! resident_chunks = 4              # 4 MiB chunks mapped at once
//! ```

use libredox::Fd;
use libredox::errno::ENOENT;
use libredox::flag::{O_CLOEXEC, O_RDONLY};
use serde::Deserialize;

use crate::config::Config;
use crate::platform::DmiToken;

/// Where dsmild looks when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/dsmild.toml";
/// Largest config file read (it is a few lines).
const MAX_CONFIG_BYTES: usize = 64 * 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    smi: Smi,
    #[serde(default)]
    thermal: Thermal,
    #[serde(default)]
    mmio: Mmio,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Smi {
    command_port: Option<u16>,
    calling_interface_code: Option<u8>,
    #[serde(default)]
    tokens: Vec<Token>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Token {
    token: u16,
    location: u16,
    value: u16,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Thermal {
    limit_celsius: Option<i32>,
    reads_without_sensor: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Mmio {
    base: Option<u64>,
    resident_chunks: Option<usize>,
}

/// Applies the TOML `text` over `config`; the error names the bad key or value.
pub fn apply(config: &mut Config, text: &str) -> Result<(), String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    if let Some(port) = file.smi.command_port {
        config.smi_command_port = port;
    }
    if let Some(code) = file.smi.calling_interface_code {
        config.smi_command_code = Some(code);
    }
    for t in file.smi.tokens {
        if config.dmi_tokens.iter().any(|d| d.token == t.token) {
            return Err(format!("smi.tokens: token {:#06x} listed twice", t.token));
        }
        config.dmi_tokens.push(DmiToken {
            token: t.token,
            location: t.location,
            value: t.value,
        });
    }
    if let Some(limit) = file.thermal.limit_celsius {
        config.thermal_limit_celsius = limit;
    }
    if let Some(allow) = file.thermal.reads_without_sensor {
        config.reads_without_thermal_sensor = allow;
    }
    if let Some(base) = file.mmio.base {
        config.mmio_base = Some(base);
    }
    if let Some(chunks) = file.mmio.resident_chunks {
        let max = crate::platform::MMIO_CHUNK_COUNT;
        if chunks == 0 || chunks > max {
            return Err(format!("mmio.resident_chunks must be 1..={max}"));
        }
        config.mmio_resident_chunks = chunks;
    }
    Ok(())
}

/// Reads `path` (through libredox, like every other file dsmild opens) and
/// applies it. A missing file at the default path is no error: the defaults stand.
pub fn load(config: &mut Config, path: &str) -> Result<(), String> {
    let fd = match Fd::open(path, O_RDONLY | O_CLOEXEC, 0) {
        Ok(fd) => fd,
        Err(e) if e.errno() == ENOENT && path == DEFAULT_CONFIG_PATH => return Ok(()),
        Err(e) => return Err(format!("{path}: {e}")),
    };
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = fd.read(&mut chunk).map_err(|e| format!("{path}: {e}"))?;
        if n == 0 {
            break;
        }
        if text.len() + n > MAX_CONFIG_BYTES {
            return Err(format!("{path}: larger than {MAX_CONFIG_BYTES} bytes"));
        }
        text.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let text = String::from_utf8(text).map_err(|_| format!("{path}: not UTF-8"))?;
    apply(config, &text).map_err(|e| format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_applies() {
        let mut c = Config::default();
        apply(
            &mut c,
            "[smi]\ncommand_port = 0xB2\ncalling_interface_code = 0x7D\n\
             tokens = [{ token = 0x8001, location = 0x481, value = 3 }]\n\
             [thermal]\nlimit_celsius = 70\nreads_without_sensor = false\n\
             [mmio]\nbase = 0xFB000000\nresident_chunks = 6\n",
        )
        .unwrap();
        assert_eq!(c.smi_command_code, Some(0x7D));
        assert_eq!(
            c.dmi_tokens,
            [DmiToken {
                token: 0x8001,
                location: 0x481,
                value: 3
            }]
        );
        assert_eq!(c.thermal_limit_celsius, 70);
        assert!(!c.reads_without_thermal_sensor);
        assert_eq!(
            (c.mmio_base, c.mmio_resident_chunks),
            (Some(0xFB00_0000), 6)
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let mut c = Config::default();
        assert!(apply(&mut c, "[smi]\ncommand_code = 1\n").is_err());
        assert!(apply(&mut c, "[mmio]\nresident_chunks = 0\n").is_err());
        assert!(apply(&mut c, "[smi]\ncalling_interface_code = 300\n").is_err());
        assert!(
            apply(
                &mut c,
                "[smi]\ntokens = [{ token = 1, location = 2, value = 3 }, \
                 { token = 1, location = 4, value = 5 }]\n"
            )
            .is_err()
        );
        assert_eq!(apply(&mut c, ""), Ok(()));
    }
}
