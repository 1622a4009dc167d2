//! Scheme `dsmil`: what clients open under `/scheme/dsmil/` (DESIGN.md §4).
//!
//! One file per concept: [`path`] (the namespace), `handle` (what an open
//! description holds), `open` (what opening each path does), `sessions`
//! (limit, ids, idle expiry), `writes` (token values and tunables),
//! [`control`] (the op channel), [`tunables`] (`config/<name>`), [`events`]
//! (reader queues and publishing), [`stats`] and [`oplog`] (counters and the
//! operation ring), [`text`] (the human-readable files). This file holds the
//! scheme state, reads, and the `SchemeSync` dispatch.

pub mod clients;
pub mod control;
pub mod events;
mod handle;
mod mmio;
mod open;
pub mod oplog;
pub mod path;
mod sessions;
pub mod stats;
pub mod text;
pub mod tunables;
mod writes;

use std::collections::BTreeMap;

use clients::{Clients, Opener};
use control::ControlReply;
use events::EventQueue;
use tunables::Tunable;

use redox_scheme::scheme::SchemeSync;
use redox_scheme::{CallerCtx, OpenResult};
use syscall::dirent::{DirEntry, DirentBuf, DirentKind};
use syscall::error::{
    EACCES, EAGAIN, EBADF, EINVAL, EISDIR, EMFILE, ENOENT, ENOTDIR, ESTALE, EWOULDBLOCK, Error,
    Result,
};
use syscall::flag::{EventFlags, F_GETFL, F_SETFL, O_NONBLOCK};
use syscall::schemev2::NewFdFlags;

use crate::config::Config;
use crate::device::SessionIds;
use crate::hardware::Hardware;
use crate::machine::Machine;
use crate::wire::{CHUNK_SIZE, ControlRequest, EventRecord, Token};
use handle::Handle;
use oplog::{OpLog, Target};
use path::{Node, TextFile};
use stats::Stats;

/// Handle number of the scheme root (what `scheme_root` returns).
pub const ROOT_ID: usize = 0;
/// Most open handles over all clients (`EMFILE` past it): bounded memory.
pub const MAX_HANDLES: usize = 65_536;

/// The state of scheme `dsmil`.
///
/// Errors follow DESIGN.md §4: unknown paths `ENOENT`, bad requests `EINVAL`,
/// non-root writes `EACCES`, quarantined tokens `EACCES`, too hot `EBUSY`,
/// the session limit `EMFILE`, a session housekeeping expired `ESTALE`, an
/// empty `events` queue `EAGAIN` under `O_NONBLOCK` (otherwise the request
/// waits).
pub struct DsmilScheme {
    config: Config,
    machine: Machine,
    handles: BTreeMap<usize, Handle>,
    next_id: usize,
    ids: SessionIds,
    sessions: usize,
    stats: Stats,
    log: OpLog,
    event_seq: u64,
    fevent_posts: Vec<usize>,
    last_scan_ms: u64,
    /// Who opened each handle, and what each user and process holds.
    clients: Clients,
    /// The queue of each `events` handle, by handle id.
    readers: BTreeMap<usize, EventQueue>,
    fanout_steps: u64,
}

/// A file whose bytes are made at each read.
#[derive(Clone, Copy)]
enum Rendered {
    Dir(Node),
    Text(TextFile),
    Config(Tunable),
}

fn copy_out(src: &[u8], pos: &mut usize, offset: u64, buf: &mut [u8]) -> usize {
    // `u64::MAX` means "at the handle's own position"; anything else is a pread.
    let at = if offset == u64::MAX {
        *pos
    } else {
        usize::try_from(offset).unwrap_or(usize::MAX)
    };
    let start = at.min(src.len());
    let n = (src.len() - start).min(buf.len());
    if let (Some(dst), Some(from)) = (buf.get_mut(..n), src.get(start..start + n)) {
        dst.copy_from_slice(from);
    }
    if offset == u64::MAX {
        *pos = start + n;
    }
    n
}

/// Copies a whole reply into a `call`'s payload (`EINVAL` when it does not fit).
fn deliver(bytes: &[u8], payload: &mut [u8]) -> Result<usize> {
    let dst = payload.get_mut(..bytes.len()).ok_or(Error::new(EINVAL))?;
    dst.copy_from_slice(bytes);
    Ok(bytes.len())
}

fn listing(node: Node) -> Vec<u8> {
    node.entries()
        .into_iter()
        .map(|(name, _)| format!("{name}\n"))
        .collect::<String>()
        .into_bytes()
}

fn errno<T>(r: &Result<T>) -> Result<usize, i32>
where
    T: Copy + Into<usize>,
{
    r.as_ref().map(|v| (*v).into()).map_err(|e| e.errno)
}

impl DsmilScheme {
    /// A scheme serving `config` on `hardware`; brings the devices up
    /// through firmware (group by group) before returning.
    pub fn new(config: Config, hardware: Hardware) -> Self {
        let mut machine = Machine::new(hardware, config.thermal_limit_celsius);
        machine.set_reads_without_sensor(config.reads_without_thermal_sensor);
        let mut scheme = Self {
            config,
            machine,
            handles: BTreeMap::new(),
            next_id: ROOT_ID + 1,
            ids: SessionIds::new(),
            sessions: 0,
            stats: Stats::default(),
            log: OpLog::default(),
            event_seq: 0,
            fevent_posts: Vec::new(),
            last_scan_ms: 0,
            clients: Clients::default(),
            readers: BTreeMap::new(),
            fanout_steps: 0,
        };
        let report = scheme.machine.bring_up();
        if !report.failed.is_empty() || !report.blocked_groups.is_empty() {
            log::warn!(
                "dsmild: bring-up: {} ready, {} failed, groups blocked: {:?}",
                report.ready,
                report.failed.len(),
                report.blocked_groups
            );
        }
        scheme.flush_notices();
        scheme
    }

    /// Open handles (all clients).
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }

    /// Live sessions (all clients).
    pub fn session_count(&self) -> usize {
        self.sessions
    }

    /// The configuration in force (tunables as last written).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The machine (table, firmware totals, health).
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The per-client books (who opened what, what each user and process
    /// holds).
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    fn now_ms(&self) -> u64 {
        self.machine.now_ms()
    }

    /// `EMFILE` when the global handle bound or `who`'s user or process
    /// bound is reached.
    fn check_handle_bound(&mut self, who: Opener) -> Result<()> {
        if self.handles.len() >= MAX_HANDLES {
            self.stats.handles_refused += 1;
            return Err(Error::new(EMFILE));
        }
        if let Err(bound) = self.clients.check_handle(who, &self.config) {
            self.stats.handles_refused += 1;
            self.stats.client_bound(bound);
            return Err(Error::new(EMFILE));
        }
        Ok(())
    }

    fn insert(&mut self, handle: Handle, who: Opener) -> Result<usize> {
        self.check_handle_bound(who)?;
        while self.next_id == ROOT_ID || self.handles.contains_key(&self.next_id) {
            self.next_id = self.next_id.wrapping_add(1);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.handles.insert(id, handle);
        self.clients.opened(id, who);
        Ok(id)
    }

    /// Who opened handle `id` (root for the scheme root and unknown ids,
    /// which own nothing).
    fn opener_of(&self, id: usize) -> Opener {
        self.clients.opener(id).unwrap_or(Opener { uid: 0, pid: 0 })
    }

    /// Takes one SMI-raising operation from `who`'s per-second budget
    /// (`EAGAIN`, counted in `stats`, when it is spent; root is not limited).
    fn take_smi(&mut self, who: Opener) -> Result<()> {
        let now = self.now_ms();
        let outcome = self.clients.take_smi(who, self.config.smi_per_second, now);
        if outcome.is_err() {
            self.stats.smi_rate_limited += 1;
        }
        outcome
    }

    /// The bytes of a rendered file; `fresh` (a read from offset 0) re-reads
    /// the thermal sensor first for the files that show it, an SMI on the
    /// opener's behalf, when the opener's SMI budget allows it.
    fn render_for(&mut self, id: usize, what: Rendered, fresh: bool) -> Vec<u8> {
        match what {
            Rendered::Dir(node) => listing(node),
            Rendered::Config(tunable) => tunable.render(&self.config).into_bytes(),
            Rendered::Text(file) => {
                if fresh
                    && matches!(
                        file,
                        TextFile::Status | TextFile::Thermal | TextFile::Health
                    )
                {
                    // Over its SMI budget a user sees the last reading
                    // instead (the refusal still counts in `stats`).
                    let who = self.opener_of(id);
                    if self.take_smi(who).is_ok() {
                        self.machine.refresh_thermal();
                    }
                }
                self.render(file).into_bytes()
            }
        }
    }

    fn render(&mut self, file: TextFile) -> String {
        match file {
            TextFile::Version => text::version(),
            TextFile::Status => {
                let health = self.machine.health();
                let guard = self.machine.table().thermal();
                text::status(&text::StatusView {
                    temperature: guard.reading(),
                    thermal_limit: guard.limit_celsius(),
                    throttled: guard.is_throttled(),
                    open_handles: self.handles.len(),
                    sessions: self.sessions,
                    session_limit: self.config.session_limit,
                    operational: health.operational,
                    firmware: self.machine.has_firmware(),
                    health: health.score,
                })
            }
            TextFile::Thermal => text::thermal(self.machine.table().thermal()),
            TextFile::Health => text::health(&self.machine.health()),
            TextFile::Devices => text::devices(self.machine.table()),
            TextFile::Stats => self.stats.render(self.machine.smi_totals(), &self.clients),
            TextFile::Log => self.log.render(),
        }
    }

    fn refuse(&mut self, token: Option<Token>, errno: i32, uid: u32) -> Error {
        self.stats
            .refusal(errno, token.is_some_and(Token::is_quarantined));
        self.machine.refused(token, errno, uid);
        Error::new(errno)
    }

    /// A control request by `call`: a payload of at least one chunk receives
    /// a fixed-size reply directly (one copy of the chunk, no allocation); a
    /// smaller one goes through a scratch chunk, so a reply that does not fit
    /// is `EINVAL` after the request ran, exactly as a longer reply is.
    fn call_control(
        &mut self,
        id: usize,
        req: &ControlRequest,
        who: Opener,
        payload: &mut [u8],
    ) -> Result<usize> {
        let direct = payload
            .get_mut(..CHUNK_SIZE)
            .and_then(|p| <&mut [u8; CHUNK_SIZE]>::try_from(p).ok());
        if let Some(out) = direct {
            return match self.execute(id, req, who, out)? {
                ControlReply::Inline(len) => Ok(len),
                ControlReply::Owned(bytes) => deliver(&bytes, payload),
            };
        }
        // Only a short payload pays for (zeroing) the scratch chunk.
        let mut scratch = [0u8; CHUNK_SIZE];
        let reply = self.execute(id, req, who, &mut scratch)?;
        deliver(reply.bytes(&scratch), payload)
    }

    fn read_handle(
        &mut self,
        id: usize,
        buf: &mut [u8],
        offset: u64,
        fcntl_flags: u32,
    ) -> Result<usize> {
        let rendered = match self.handles.get(&id).ok_or(Error::new(EBADF))? {
            Handle::Dir { node, pos } => Some((Rendered::Dir(*node), *pos)),
            Handle::Text { file, pos } => Some((Rendered::Text(*file), *pos)),
            Handle::Config { tunable, pos, .. } => Some((Rendered::Config(*tunable), *pos)),
            _ => None,
        };
        if let Some((what, mut pos)) = rendered {
            let at = if offset == u64::MAX {
                pos
            } else {
                usize::try_from(offset).unwrap_or(usize::MAX)
            };
            let bytes = self.render_for(id, what, at == 0);
            let n = copy_out(&bytes, &mut pos, offset, buf);
            if let Some(handle) = self.handles.get_mut(&id) {
                handle.set_pos(pos);
            }
            return Ok(n);
        }
        let now = self.now_ms();
        let thermal = self.machine.table().thermal().check();
        match self.handles.get_mut(&id).ok_or(Error::new(EBADF))? {
            Handle::Dir { .. } | Handle::Text { .. } | Handle::Config { .. } => {
                Err(Error::new(EBADF))
            }
            Handle::Control {
                response, pending, ..
            } => {
                if !*pending {
                    return Err(Error::new(EINVAL));
                }
                // The response stays until a big enough buffer takes it.
                let out = buf.get_mut(..response.len()).ok_or(Error::new(EINVAL))?;
                out.copy_from_slice(response);
                *pending = false;
                Ok(response.len())
            }
            Handle::Scan {
                session,
                last_used_ms,
            } => {
                let session = session.as_mut().ok_or(Error::new(ESTALE))?;
                *last_used_ms = now;
                session.read(buf)
            }
            Handle::Device {
                reading,
                session,
                last_used_ms,
                ..
            } => {
                if !*reading {
                    return Err(Error::new(EBADF));
                }
                let session = session.as_mut().ok_or(Error::new(ESTALE))?;
                thermal?;
                *last_used_ms = now;
                session.read(buf)
            }
            Handle::Mmio => self.read_mmio(buf, offset),
            Handle::Events => {
                let queue = self.readers.get_mut(&id).ok_or(Error::new(EBADF))?;
                if buf.len() < EventRecord::SIZE {
                    return Err(Error::new(EINVAL));
                }
                match queue.pop() {
                    Some(record) => record.encode(buf),
                    // Without O_NONBLOCK, EWOULDBLOCK parks the request in the
                    // daemon loop until a record arrives (or it is cancelled).
                    None if fcntl_flags as usize & O_NONBLOCK != 0 => Err(Error::new(EAGAIN)),
                    None => Err(Error::new(EWOULDBLOCK)),
                }
            }
        }
    }
}

impl SchemeSync for DsmilScheme {
    fn scheme_root(&mut self) -> Result<usize> {
        Ok(ROOT_ID)
    }

    fn openat(
        &mut self,
        dirfd: usize,
        path: &str,
        flags: usize,
        _fcntl_flags: u32,
        ctx: &CallerCtx,
    ) -> Result<OpenResult> {
        let base = if dirfd == ROOT_ID {
            String::new()
        } else {
            match self.handles.get(&dirfd) {
                Some(Handle::Dir { node, .. }) => format!("{}/", node.path()),
                _ => return Err(Error::new(EACCES)),
            }
        };
        let node = Node::parse(&format!("{base}{path}"));
        let outcome = match node {
            Some(node) => self.open_node(
                node,
                flags,
                Opener {
                    uid: ctx.uid,
                    pid: ctx.pid,
                },
            ),
            None => Err(Error::new(ENOENT)),
        };
        self.stats.open.count(&outcome);
        let target = match node {
            Some(Node::Device(t)) => Target::Token(t),
            _ => Target::Name("path"),
        };
        let now = self.now_ms();
        self.log
            .record(now, ctx.pid, "open", target, errno(&outcome));
        self.flush_notices();
        Ok(OpenResult::ThisScheme {
            number: outcome?,
            // The window is a file with positions: the kernel keeps the offset
            // (pread/pwrite, lseek), the other files are streams.
            flags: if node == Some(Node::Mmio) {
                NewFdFlags::POSITIONED
            } else {
                NewFdFlags::empty()
            },
        })
    }

    fn read(
        &mut self,
        id: usize,
        buf: &mut [u8],
        offset: u64,
        fcntl_flags: u32,
        ctx: &CallerCtx,
    ) -> Result<usize> {
        let outcome = self.read_handle(id, buf, offset, fcntl_flags);
        // A parked `events` read is polled again and again: count it once,
        // when it finally completes.
        if !matches!(&outcome, Err(e) if e.errno == EWOULDBLOCK) {
            self.stats.read.count(&outcome);
            let now = self.now_ms();
            let target = match self.handles.get(&id) {
                Some(Handle::Device { token, .. }) => Target::Token(*token),
                Some(h) => Target::Name(node_name(h.node())),
                None => Target::None,
            };
            self.log
                .record(now, ctx.pid, "read", target, errno(&outcome));
        }
        self.flush_notices();
        outcome
    }

    fn write(
        &mut self,
        id: usize,
        buf: &[u8],
        offset: u64,
        _fcntl_flags: u32,
        _ctx: &CallerCtx,
    ) -> Result<usize> {
        // Permission and attribution come from the opener recorded at open,
        // whatever credentials this request carries.
        let who = self.opener_of(id);
        let mut scratch = [0u8; CHUNK_SIZE];
        let outcome = match self.handles.get(&id).ok_or(Error::new(EBADF))? {
            Handle::Control { .. } => ControlRequest::decode(buf)
                .and_then(|req| self.execute(id, &req, who, &mut scratch))
                .and_then(|reply| match self.handles.get_mut(&id) {
                    Some(Handle::Control {
                        response, pending, ..
                    }) => {
                        // `clear` keeps the capacity: a chunk reply reuses it.
                        response.clear();
                        response.extend_from_slice(reply.bytes(&scratch));
                        *pending = true;
                        Ok(buf.len())
                    }
                    _ => Err(Error::new(EBADF)),
                }),
            Handle::Device { .. } => self.write_device(id, buf, who.uid),
            Handle::Mmio => self.write_mmio(buf, offset),
            Handle::Config { .. } => self.write_config(id, buf, who.uid),
            Handle::Dir { .. } => Err(Error::new(EISDIR)),
            _ => Err(Error::new(EACCES)),
        };
        self.stats.write.count(&outcome);
        let now = self.now_ms();
        let target = match self.handles.get(&id) {
            Some(h) => match h.node() {
                Node::Device(t) => Target::Token(t),
                n => Target::Name(node_name(n)),
            },
            None => Target::None,
        };
        self.log
            .record(now, who.pid, "write", target, errno(&outcome));
        self.flush_notices();
        outcome
    }

    fn call(
        &mut self,
        id: usize,
        payload: &mut [u8],
        metadata: &[u64],
        _ctx: &CallerCtx,
    ) -> Result<usize> {
        // `call` carries metadata where other requests carry credentials
        // (redox-os/kernel src/scheme/user.rs `kcall`: args[5] is metadata word 2),
        // so `ctx.uid` is whatever the caller chose: the opener recorded at open
        // authorises and attributes the call.
        let who = self.opener_of(id);
        let outcome = match self.handles.get(&id).ok_or(Error::new(EBADF))? {
            Handle::Control { .. } => ControlRequest::from_metadata(metadata)
                .and_then(|req| self.call_control(id, &req, who, payload)),
            _ => Err(Error::new(EINVAL)),
        };
        self.stats.call.count(&outcome);
        self.flush_notices();
        outcome
    }

    /// The kernel asks the scheme before it applies any `fcntl` but
    /// `F_GETFD`/`F_SETFD` itself (redox-os/kernel `src/syscall/fs.rs`), and
    /// redox-scheme's default refuses: agreeing to `F_GETFL`/`F_SETFL` is what lets a
    /// client switch `O_NONBLOCK` after open. The status flags then travel with
    /// every read, so there is nothing to store here.
    fn fcntl(&mut self, id: usize, cmd: usize, _arg: usize, _ctx: &CallerCtx) -> Result<usize> {
        if id != ROOT_ID && !self.handles.contains_key(&id) {
            return Err(Error::new(EBADF));
        }
        match cmd {
            F_GETFL | F_SETFL => Ok(0),
            _ => Err(Error::new(EINVAL)),
        }
    }

    fn fevent(&mut self, id: usize, flags: EventFlags, _ctx: &CallerCtx) -> Result<EventFlags> {
        match self.handles.get(&id).ok_or(Error::new(EBADF))? {
            Handle::Events => {
                let queue = self.readers.get_mut(&id).ok_or(Error::new(EBADF))?;
                queue.subscribed = flags.contains(EventFlags::EVENT_READ);
                Ok(if queue.is_ready() {
                    EventFlags::EVENT_READ
                } else {
                    EventFlags::empty()
                })
            }
            // Everything else answers at once: always readable.
            _ => Ok(flags & EventFlags::EVENT_READ),
        }
    }

    fn getdents<'buf>(
        &mut self,
        id: usize,
        mut buf: DirentBuf<&'buf mut [u8]>,
        opaque_offset: u64,
    ) -> Result<DirentBuf<&'buf mut [u8]>> {
        let node = match self.handles.get(&id) {
            _ if id == ROOT_ID => Node::Root,
            Some(Handle::Dir { node, .. }) => *node,
            _ => return Err(Error::new(ENOTDIR)),
        };
        let start = usize::try_from(opaque_offset).unwrap_or(usize::MAX);
        for (i, (name, is_dir)) in node.entries().iter().enumerate().skip(start) {
            let entry = DirEntry {
                inode: i as u64,
                next_opaque_id: i as u64 + 1,
                name,
                kind: if *is_dir {
                    DirentKind::Directory
                } else {
                    DirentKind::Regular
                },
            };
            if buf.entry(entry).is_err() {
                break;
            }
        }
        Ok(buf)
    }

    fn fpath(&mut self, id: usize, buf: &mut [u8], _ctx: &CallerCtx) -> Result<usize> {
        let node = match self.handles.get(&id) {
            _ if id == ROOT_ID => Node::Root,
            Some(h) => h.node(),
            None => return Err(Error::new(EBADF)),
        };
        let p = format!("/scheme/{}/{}", self.config.scheme_name, node.path());
        let n = p.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), p.as_bytes().get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn on_close(&mut self, id: usize) {
        if let Some(handle) = self.handles.remove(&id) {
            self.readers.remove(&id);
            let held = handle.sessions();
            let who = self.opener_of(id);
            self.release_sessions(who, held, false);
            self.clients.closed(id);
            let now = self.now_ms();
            self.log.record(
                now,
                0,
                "close",
                Target::Name(node_name(handle.node())),
                Ok(held),
            );
        }
    }
}

fn node_name(node: Node) -> &'static str {
    match node {
        Node::Root => "/",
        Node::Control => "control",
        Node::Scan => "scan",
        Node::DeviceDir => "device",
        Node::Device(_) => "device/<token>",
        Node::ConfigDir => "config",
        Node::Config(t) => t.name(),
        Node::Events => "events",
        Node::Text(TextFile::Version) => "version",
        Node::Text(TextFile::Status) => "status",
        Node::Text(TextFile::Thermal) => "thermal",
        Node::Text(TextFile::Health) => "health",
        Node::Text(TextFile::Devices) => "devices",
        Node::Text(TextFile::Stats) => "stats",
        Node::Text(TextFile::Log) => "log",
        Node::Mmio => "mmio",
    }
}
