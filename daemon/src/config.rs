//! Daemon configuration: the tunables of `config/<name>` and startup settings.

/// Settings of one `dsmild` instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Scheme name to register (`dsmil`).
    pub scheme_name: String,
    /// Most concurrent sessions (scan or read) over all clients.
    pub session_limit: u32,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            scheme_name: "dsmil".into(),
            session_limit: 256,
            session_idle_timeout_secs: 30,
            thermal_limit_celsius: 85,
            housekeeping_interval_ms: 1000,
            smi_command_port: 0xB2,
            smi_command_code: None,
        }
    }
}
