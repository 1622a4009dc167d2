//! Daemon configuration: the tunables of `config/<name>` and startup settings.

use crate::platform::DmiToken;

/// Settings of one `dsmild` instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Scheme name to register (`dsmil`).
    pub scheme_name: String,
    /// Most concurrent sessions (scan or read) over all clients.
    pub session_limit: u32,
    /// Most open handles of one non-root user, all its processes together.
    pub handles_per_uid: u32,
    /// Most open handles of one process (root's too).
    pub handles_per_process: u32,
    /// Most live sessions of one non-root user.
    pub sessions_per_uid: u32,
    /// Most live sessions of one process (root's too).
    pub sessions_per_process: u32,
    /// SMI-raising operations one non-root user may ask for per second
    /// (`EAGAIN` past it); root is not limited.
    pub smi_per_second: u32,
    /// Seconds a session may sit idle before housekeeping expires it.
    pub session_idle_timeout_secs: u32,
    /// Device reads are refused with `EBUSY` above this temperature.
    pub thermal_limit_celsius: i32,
    /// Milliseconds between housekeeping passes.
    pub housekeeping_interval_ms: u32,
    /// The SMI command port (from the DMI table; usually 0xB2).
    pub smi_command_port: u16,
    /// The Dell calling interface's SMI command code (from the DMI 0xDA structure).
    /// `None` uses DSMIL's legacy SMI ports instead.
    pub smi_command_code: Option<u8>,
    /// The DMI 0xDA token table the calling interface addresses tokens by
    /// (location and value of each DSMIL token).
    pub dmi_tokens: Vec<DmiToken>,
    /// Whether device reads are allowed when no thermal sensor works (the guard
    /// then has nothing to judge by; logged once at start).
    pub reads_without_thermal_sensor: bool,
    /// Physical base of the 360 MiB MMIO window; `None`: the `mmio` file is `ENODEV`.
    pub mmio_base: Option<u64>,
    /// Most 4 MiB chunks of the MMIO window mapped at once.
    pub mmio_resident_chunks: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            scheme_name: "dsmil".into(),
            session_limit: 256,
            handles_per_uid: 1024,
            handles_per_process: 1024,
            sessions_per_uid: 32,
            sessions_per_process: 32,
            smi_per_second: 20,
            session_idle_timeout_secs: 30,
            thermal_limit_celsius: 85,
            housekeeping_interval_ms: 1000,
            smi_command_port: 0xB2,
            smi_command_code: None,
            dmi_tokens: Vec::new(),
            reads_without_thermal_sensor: true,
            mmio_base: None,
            mmio_resident_chunks: crate::platform::DEFAULT_MAX_RESIDENT,
        }
    }
}
