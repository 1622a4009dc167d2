//! [`Dsmil`]: the typed client of scheme `dsmil`, over any [`Transport`].

use std::path::{Path, PathBuf};

use syscall::error::{EINVAL, EIO, ENOSPC};

use super::error::{ClientError, Result};
use super::events::Events;
use super::scan_stream::{decode_read_stream, decode_scan_stream};
use super::std_fs::StdFs;
use super::transport::{OpenMode, Transport};
use crate::wire::{
    CHUNK_SIZE, ControlRequest, DeviceInfo, Op, SCAN_CHUNK_COUNT, SystemStatus, ThermalReply,
    Token, VersionInfo,
};

/// Where the scheme lives on Redox.
pub const DEFAULT_ROOT: &str = "/scheme/dsmil";

/// Most bytes a scan may return before the client calls it a broken daemon: a
/// bounded buffer even against a misbehaving server (64× the real table).
const MAX_SCAN_BYTES: usize = 64 * SCAN_CHUNK_COUNT * CHUNK_SIZE;
/// Most bytes one device read may return (1 MiB of chunks).
const MAX_READ_BYTES: usize = 1 << 20;
/// Largest reply of a variable-size control op the client accepts.
const MAX_CONTROL_REPLY: usize = 1 << 20;

/// A client of scheme `dsmil`.
///
/// Every operation opens the file it needs, uses it, and closes it, so sessions
/// (which belong to an open description) never outlive the call and the client
/// can be shared freely. `T` is how files are reached: [`StdFs`] (the default:
/// std file I/O, which on Redox opens scheme paths and on Linux reaches a
/// `redox-host mount` directory) or [`SchemeCalls`](super::SchemeCalls).
///
/// ```no_run
/// use dsmil::client::Dsmil;
///
/// let dsmil = Dsmil::open()?;
/// let devices = dsmil.scan()?;
/// let quarantined = devices.iter().filter(|d| d.is_quarantined).count();
/// println!("{} devices, {quarantined} quarantined", devices.len());
/// # Ok::<(), dsmil::client::ClientError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dsmil<T: Transport = StdFs> {
    root: PathBuf,
    transport: T,
}

impl Dsmil<StdFs> {
    /// The scheme at `/scheme/dsmil`, through std file I/O. Fails if it does not
    /// answer `GET_VERSION` with protocol major version 1.
    pub fn open() -> Result<Dsmil<StdFs>> {
        Self::open_at(DEFAULT_ROOT)
    }

    /// The scheme at `root` (e.g. `<mountpoint>/dsmil` on Linux), through std
    /// file I/O.
    ///
    /// ```no_run
    /// let dsmil = dsmil::client::Dsmil::open_at("/tmp/redox/dsmil")?;
    /// println!("{}", dsmil.text("status")?);
    /// # Ok::<(), dsmil::client::ClientError>(())
    /// ```
    pub fn open_at(root: impl AsRef<Path>) -> Result<Dsmil<StdFs>> {
        Dsmil::open_with(root, StdFs)
    }
}

impl<T: Transport> Dsmil<T> {
    /// The scheme at `root`, reached through `transport`; checks the protocol
    /// version like [`Dsmil::open`].
    pub fn open_with(root: impl AsRef<Path>, transport: T) -> Result<Dsmil<T>> {
        let client = Dsmil {
            root: root.as_ref().to_path_buf(),
            transport,
        };
        let version = client.version()?;
        if version.major() != 1 {
            return Err(ClientError::new("open", &client.path("control"), EINVAL));
        }
        Ok(client)
    }

    /// The scheme root this client talks to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// `root/<rel>`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub(super) fn open_file(&self, path: &Path, mode: OpenMode) -> Result<T::File> {
        self.transport
            .open(path, mode)
            .map_err(|e| ClientError::new("open", path, e))
    }

    /// Reads `path` to its end in `buf`-sized reads, at most `limit` bytes.
    fn read_to_end(&self, path: &Path, step: usize, limit: usize) -> Result<Vec<u8>> {
        let mut file = self.open_file(path, OpenMode::Read)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; step];
        loop {
            let n = self
                .transport
                .read(&mut file, &mut buf)
                .map_err(|e| ClientError::new("read", path, e))?;
            if n == 0 {
                break;
            }
            if out.len() + n > limit {
                return Err(ClientError::new("read", path, ENOSPC));
            }
            out.extend_from_slice(buf.get(..n).unwrap_or(&[]));
        }
        self.transport
            .close(file)
            .map_err(|e| ClientError::new("close", path, e))?;
        Ok(out)
    }

    /// One request on the `control` channel as a write-then-read cycle; returns
    /// the reply bytes.
    pub fn control(&self, req: ControlRequest) -> Result<Vec<u8>> {
        let path = self.path("control");
        let mut file = self.open_file(&path, OpenMode::ReadWrite)?;
        self.transport
            .write(&mut file, &req.to_bytes())
            .map_err(|e| ClientError::new("write", &path, e))?;
        let mut buf = vec![0u8; req.op.fixed_reply_len().unwrap_or(MAX_CONTROL_REPLY)];
        let n = self
            .transport
            .read(&mut file, &mut buf)
            .map_err(|e| ClientError::new("read", &path, e))?;
        buf.truncate(n);
        self.transport
            .close(file)
            .map_err(|e| ClientError::new("close", &path, e))?;
        Ok(buf)
    }

    fn control_decoded<R>(
        &self,
        op: Op,
        decode: impl FnOnce(&[u8]) -> syscall::error::Result<R>,
    ) -> Result<R> {
        let reply = self.control(ControlRequest::new(op, 0, 0))?;
        decode(&reply).map_err(|e| ClientError::new("decode", &self.path("control"), e.errno))
    }

    /// `GET_VERSION`: protocol version and geometry.
    pub fn version(&self) -> Result<VersionInfo> {
        self.control_decoded(Op::GetVersion, VersionInfo::decode)
    }

    /// `GET_STATUS`: the system status.
    pub fn status(&self) -> Result<SystemStatus> {
        self.control_decoded(Op::GetStatus, SystemStatus::decode)
    }

    /// `GET_THERMAL`: temperature, limit, and whether reads are throttled.
    pub fn thermal(&self) -> Result<ThermalReply> {
        self.control_decoded(Op::GetThermal, ThermalReply::decode)
    }

    /// A human-readable file (`version`, `status`, `thermal`, `health`,
    /// `devices`, `stats`, `log`) as text.
    pub fn text(&self, name: &str) -> Result<String> {
        let bytes = self.read_to_end(&self.path(name), 4096, MAX_READ_BYTES)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The bytes of a `scan` session exactly as the scheme returns them: whole
    /// 256-byte scan chunks, in order (22 for the 108 devices).
    pub fn scan_raw(&self) -> Result<Vec<u8>> {
        // A buffer for the whole table: the scheme fills it in one read.
        self.read_to_end(
            &self.path("scan"),
            SCAN_CHUNK_COUNT * CHUNK_SIZE,
            MAX_SCAN_BYTES,
        )
    }

    /// Scans all devices through a `scan` session (open, bulk read, close).
    ///
    /// ```no_run
    /// for d in dsmil::client::Dsmil::open()?.scan()? {
    ///     println!("{:#06x} {}", d.device_id, d.state.name());
    /// }
    /// # Ok::<(), dsmil::client::ClientError>(())
    /// ```
    pub fn scan(&self) -> Result<Vec<DeviceInfo>> {
        let raw = self.scan_raw()?;
        let chunks = decode_scan_stream(&raw)
            .map_err(|e| ClientError::new("decode", &self.path("scan"), e))?;
        Ok(chunks
            .iter()
            .flat_map(|c| c.valid_devices().iter().copied())
            .collect())
    }

    /// Path of a device's file.
    pub fn device_path(&self, token: Token) -> PathBuf {
        self.path(&format!("device/{token}"))
    }

    /// Reads one device's data through a read session of `device/<token>`.
    ///
    /// ```no_run
    /// use dsmil::wire::Token;
    /// let data = dsmil::client::Dsmil::open()?.read(Token::new(0x8000).unwrap())?;
    /// println!("{} bytes", data.len());
    /// # Ok::<(), dsmil::client::ClientError>(())
    /// ```
    pub fn read(&self, token: Token) -> Result<Vec<u8>> {
        let path = self.device_path(token);
        let raw = self.read_to_end(&path, 16 * CHUNK_SIZE, MAX_READ_BYTES)?;
        decode_read_stream(token, &raw).map_err(|e| ClientError::new("decode", &path, e))
    }

    /// Sets a token's value through firmware (root only; quarantined tokens are
    /// refused with `EACCES`). The value is written as 4 little-endian bytes.
    ///
    /// ```no_run
    /// use dsmil::wire::Token;
    /// dsmil::client::Dsmil::open()?.write_token(Token::new(0x8001).unwrap(), 1)?;
    /// # Ok::<(), dsmil::client::ClientError>(())
    /// ```
    pub fn write_token(&self, token: Token, value: u32) -> Result<()> {
        let path = self.device_path(token);
        let mut file = self.open_file(&path, OpenMode::Write)?;
        let n = self
            .transport
            .write(&mut file, &value.to_le_bytes())
            .map_err(|e| ClientError::new("write", &path, e))?;
        if n != 4 {
            return Err(ClientError::new("write", &path, EIO));
        }
        self.transport
            .close(file)
            .map_err(|e| ClientError::new("close", &path, e))
    }

    /// Follows `events`: each item is one record; `next` blocks until one exists.
    ///
    /// ```no_run
    /// for event in dsmil::client::Dsmil::open()?.events()? {
    ///     println!("{:?}", event?);
    /// }
    /// # Ok::<(), dsmil::client::ClientError>(())
    /// ```
    pub fn events(&self) -> Result<Events<'_, T>> {
        let path = self.path("events");
        let file = self.open_file(&path, OpenMode::Read)?;
        Ok(Events::new(&self.transport, file, path))
    }
}
