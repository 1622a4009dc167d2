//! The `control` channel: a request (16 bytes written, or a `call`'s metadata)
//! in, a reply out. The op table is in [`crate::wire::Op`].

use syscall::error::{EINVAL, Error, Result};

use super::DsmilScheme;
use super::clients::Opener;
use super::handle::{ControlSession, Handle, SessionKind};
use super::oplog::Target;
use crate::device::{ReadSession, ScanSession};
use crate::machine::Machine;
use crate::wire::{
    CHUNK_SIZE, ControlRequest, DeviceInfo, Op, SessionStart, VersionInfo, encode_device_list,
};

/// A reply: a fixed-size reply (up to one chunk) is encoded straight into the
/// buffer the caller passed to [`DsmilScheme::execute`] (for a `call`, the
/// caller's own payload), so the chunk paths neither allocate nor copy the
/// reply a second time; the whole-table and whole-device replies own a buffer.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum ControlReply {
    /// This many bytes at the start of the `out` buffer are the reply.
    Inline(usize),
    /// A longer reply.
    Owned(Vec<u8>),
}

impl ControlReply {
    fn inline(
        out: &mut [u8; CHUNK_SIZE],
        encode: impl FnOnce(&mut [u8]) -> Result<usize>,
    ) -> Result<ControlReply> {
        encode(out).map(ControlReply::Inline)
    }

    /// The reply bytes, `out` being the buffer `execute` encoded into.
    pub fn bytes<'a>(&'a self, out: &'a [u8; CHUNK_SIZE]) -> &'a [u8] {
        match self {
            ControlReply::Inline(len) => out.get(..*len).unwrap_or(out),
            ControlReply::Owned(v) => v,
        }
    }

    /// The reply length.
    pub fn size(&self) -> usize {
        match self {
            ControlReply::Inline(len) => *len,
            ControlReply::Owned(v) => v.len(),
        }
    }
}

fn sessions_of(
    handles: &mut std::collections::BTreeMap<usize, Handle>,
    id: usize,
) -> Result<&mut std::collections::BTreeMap<u64, ControlSession>> {
    match handles.get_mut(&id) {
        Some(Handle::Control { sessions, .. }) => Ok(sessions),
        _ => Err(Error::new(EINVAL)),
    }
}

impl DsmilScheme {
    /// Runs one control request for handle `id`, opened by `who`; counts and
    /// logs it. A fixed-size reply is encoded into `out` (its bytes are then
    /// `reply.bytes(out)`).
    pub(super) fn execute(
        &mut self,
        id: usize,
        req: &ControlRequest,
        who: Opener,
        out: &mut [u8; CHUNK_SIZE],
    ) -> Result<ControlReply> {
        let pid = who.pid;
        // One clock read per request: the session's last use and the log
        // entry carry the same instant.
        let now = self.now_ms();
        let outcome = self.execute_op(id, req, who, now, out);
        self.stats.op(req.op).count(&outcome);
        if let Err(e) = &outcome {
            let quarantined = Machine::token(req.arg0).is_ok_and(|t| t.is_quarantined())
                && matches!(req.op, Op::ReadDevice | Op::ReadStart);
            self.stats.refusal(e.errno, quarantined);
        }
        self.log.record(
            now,
            pid,
            "control",
            Target::Op(req.op),
            outcome
                .as_ref()
                .map(ControlReply::size)
                .map_err(|e| e.errno),
        );
        outcome
    }

    /// Starts a session on control handle `id`: reserves a slot under the session
    /// limit, builds the session (giving the slot back if that fails), stores it in
    /// the handle and answers with its start reply.
    fn start_session(
        &mut self,
        id: usize,
        who: Opener,
        now: u64,
        out: &mut [u8; CHUNK_SIZE],
        build: impl FnOnce(&mut Self, u64) -> Result<(SessionStart, SessionKind)>,
    ) -> Result<ControlReply> {
        sessions_of(&mut self.handles, id)?;
        let sid = self.reserve_session(who)?;
        let (start, kind) = match build(self, sid) {
            Ok(built) => built,
            Err(e) => {
                self.release_sessions(who, 1, false);
                return Err(e);
            }
        };
        sessions_of(&mut self.handles, id)?.insert(
            sid,
            ControlSession {
                kind,
                last_used_ms: now,
            },
        );
        ControlReply::inline(out, |out| start.encode(out))
    }

    fn execute_op(
        &mut self,
        id: usize,
        req: &ControlRequest,
        who: Opener,
        now: u64,
        out: &mut [u8; CHUNK_SIZE],
    ) -> Result<ControlReply> {
        let uid = who.uid;
        match req.op {
            Op::GetVersion => ControlReply::inline(out, |out| VersionInfo::default().encode(out)),
            Op::GetStatus => {
                self.take_smi(who)?;
                self.machine.refresh_thermal();
                let status = self.machine.table().system_status(self.last_scan_ms);
                ControlReply::inline(out, |out| status.encode(out))
            }
            Op::GetThermal => {
                self.take_smi(who)?;
                self.machine.refresh_thermal();
                // No sensor reading: no temperature to report, rather than a guess.
                if !self.machine.table().thermal().is_available() {
                    return Err(Error::new(syscall::error::ENODEV));
                }
                let reply = self.machine.table().thermal().reply();
                ControlReply::inline(out, |out| reply.encode(out))
            }
            Op::ScanDevices => {
                let devices = self.machine.table().snapshot();
                self.last_scan_ms = now;
                let mut out = vec![0u8; devices.len() * DeviceInfo::SIZE];
                encode_device_list(&devices, &mut out)?;
                Ok(ControlReply::Owned(out))
            }
            Op::ReadDevice => {
                let token = Machine::token(req.arg0)?;
                // A quarantined token is refused before any SMI: no budget spent.
                if !token.is_quarantined() {
                    self.take_smi(who)?;
                }
                self.machine.capture(token, uid).map(ControlReply::Owned)
            }
            Op::ScanStart => self.start_session(id, who, now, out, |me, sid| {
                me.last_scan_ms = now;
                let s = ScanSession::new(sid, me.machine.table().snapshot())?;
                Ok((s.start_reply(), SessionKind::Scan(s)))
            }),
            Op::ReadStart => {
                let token = Machine::token(req.arg0)?;
                if !token.is_quarantined() {
                    self.take_smi(who)?;
                }
                self.start_session(id, who, now, out, |me, sid| {
                    let data = me.machine.capture(token, uid)?;
                    let s = ReadSession::new(sid, token, data)?;
                    Ok((s.start_reply(), SessionKind::Read(s)))
                })
            }
            Op::ScanChunk | Op::ReadChunk => {
                if req.op == Op::ReadChunk {
                    self.machine.table().thermal().check()?;
                }
                let sessions = sessions_of(&mut self.handles, id)?;
                let session = sessions.get_mut(&req.arg1).ok_or(Error::new(EINVAL))?;
                session.last_used_ms = now;
                match (&mut session.kind, req.op) {
                    (SessionKind::Scan(s), Op::ScanChunk) => {
                        ControlReply::inline(out, |out| s.write_chunk(req.arg0, out))
                    }
                    (SessionKind::Read(s), Op::ReadChunk) => {
                        ControlReply::inline(out, |out| s.write_chunk(req.arg0, out))
                    }
                    _ => Err(Error::new(EINVAL)),
                }
            }
            Op::ScanComplete | Op::ReadComplete => {
                let sessions = sessions_of(&mut self.handles, id)?;
                let matches = match sessions.get(&req.arg1).map(|s| &s.kind) {
                    Some(SessionKind::Scan(_)) => req.op == Op::ScanComplete,
                    Some(SessionKind::Read(_)) => req.op == Op::ReadComplete,
                    None => false,
                };
                if !matches {
                    return Err(Error::new(EINVAL));
                }
                let summary = match sessions.remove(&req.arg1).map(|s| s.kind) {
                    Some(SessionKind::Scan(s)) => s.summary(),
                    Some(SessionKind::Read(s)) => s.summary(),
                    None => return Err(Error::new(EINVAL)),
                };
                self.release_sessions(who, 1, false);
                ControlReply::inline(out, |out| summary.encode(out))
            }
        }
    }
}
