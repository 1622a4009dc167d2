//! The registers behind the DSMIL 360 MiB MMIO window on the simulated machine,
//! and a mapper dsmild's `MmioWindow` maps its 4 MiB chunks through. Device
//! memory keeps its contents across unmaps; the host can read what dsmild wrote
//! and see which chunks are mapped right now (and the most ever mapped at once).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use dsmil::platform::{MMIO_WINDOW_SIZE, MmioChunk, PhysMapper};
use syscall::error::{EFAULT, Error, Result};

use crate::kernel::wait::lock;

#[derive(Default)]
struct State {
    /// Bytes written so far (unwritten bytes read 0).
    bytes: BTreeMap<u64, u8>,
    live: BTreeSet<u64>,
    most_live: usize,
    maps: u64,
}

/// The window's registers; clones share them.
#[derive(Clone)]
pub struct SimMmioWindow {
    base: u64,
    state: Arc<Mutex<State>>,
}

impl SimMmioWindow {
    /// A window at physical `base`.
    pub fn new(base: u64) -> SimMmioWindow {
        SimMmioWindow {
            base,
            state: Arc::default(),
        }
    }

    /// A mapper for dsmild's `MmioWindow`.
    pub fn mapper(&self) -> SimMmioMapper {
        SimMmioMapper {
            window: self.clone(),
        }
    }

    /// The byte at physical `phys`.
    pub fn byte(&self, phys: u64) -> u8 {
        lock(&self.state).bytes.get(&phys).copied().unwrap_or(0)
    }

    /// Physical bases of the chunks mapped now, ascending.
    pub fn mapped(&self) -> Vec<u64> {
        lock(&self.state).live.iter().copied().collect()
    }

    /// The most chunks ever mapped at once.
    pub fn most_mapped(&self) -> usize {
        lock(&self.state).most_live
    }

    /// Chunks mapped so far.
    pub fn maps(&self) -> u64 {
        lock(&self.state).maps
    }
}

/// Maps chunks of a [`SimMmioWindow`]; anything outside it is `EFAULT`.
pub struct SimMmioMapper {
    window: SimMmioWindow,
}

/// One mapped chunk; unmapped on drop.
pub struct SimMmioChunk {
    window: SimMmioWindow,
    phys: u64,
    len: usize,
}

impl PhysMapper for SimMmioMapper {
    type Chunk = SimMmioChunk;
    fn map(&mut self, phys: u64, len: usize) -> Result<SimMmioChunk> {
        let base = self.window.base;
        let end = phys.checked_add(len as u64).ok_or(Error::new(EFAULT))?;
        if phys < base || end > base + MMIO_WINDOW_SIZE {
            return Err(Error::new(EFAULT));
        }
        let mut state = lock(&self.window.state);
        state.live.insert(phys);
        state.most_live = state.most_live.max(state.live.len());
        state.maps += 1;
        Ok(SimMmioChunk {
            window: self.window.clone(),
            phys,
            len,
        })
    }
}

impl MmioChunk for SimMmioChunk {
    fn read(&self, offset: usize, out: &mut [u8]) {
        let state = lock(&self.window.state);
        for (i, byte) in out.iter_mut().enumerate() {
            let at = self.phys + (offset + i) as u64;
            *byte = if offset + i < self.len {
                state.bytes.get(&at).copied().unwrap_or(0)
            } else {
                0xFF
            };
        }
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        let mut state = lock(&self.window.state);
        for (i, byte) in data.iter().enumerate() {
            if offset + i < self.len {
                state.bytes.insert(self.phys + (offset + i) as u64, *byte);
            }
        }
    }
}

impl Drop for SimMmioChunk {
    fn drop(&mut self) {
        lock(&self.window.state).live.remove(&self.phys);
    }
}
