//! Bookkeeping shared by scan and read sessions: which chunk comes next and
//! which chunks a client has fetched.

use syscall::error::{EINVAL, Error, Result};

use crate::wire::CHUNK_SIZE;

/// Position in a session of `total` chunks.
///
/// Two ways to fetch: by explicit index (the control ops — idempotent, a
/// lost reply can be asked for again) and sequentially (the `scan` and
/// `device/<token>` files, where the file offset is the cursor). Both mark
/// the chunk as delivered; the distinct count ends up in the session
/// summary.
#[derive(Clone, Debug)]
pub(crate) struct ChunkCursor {
    total: u32,
    next: u32,
    delivered: Vec<u64>,
    delivered_count: u32,
}

impl ChunkCursor {
    pub(crate) fn new(total: u32) -> ChunkCursor {
        ChunkCursor {
            total,
            next: 0,
            delivered: vec![0; (total as usize).div_ceil(64)],
            delivered_count: 0,
        }
    }

    pub(crate) fn total(&self) -> u32 {
        self.total
    }

    pub(crate) fn delivered_count(&self) -> u32 {
        self.delivered_count
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.next >= self.total
    }

    pub(crate) fn mark(&mut self, index: u32) {
        let word = (index / 64) as usize;
        let bit = 1u64 << (index % 64);
        if let Some(w) = self.delivered.get_mut(word)
            && *w & bit == 0
        {
            *w |= bit;
            self.delivered_count += 1;
        }
    }

    /// The next sequential index, advancing past it; `None` at the end.
    pub(crate) fn take_next(&mut self) -> Option<u32> {
        if self.is_finished() {
            return None;
        }
        let index = self.next;
        self.next += 1;
        self.mark(index);
        Some(index)
    }

    /// Fills `out` with as many whole sequential chunks as fit, encoding each
    /// with `encode(index, slot)`. A buffer smaller than one chunk is
    /// `EINVAL`; at the end it returns 0. An encode failure after some
    /// chunks were written returns the bytes written so far (the failed
    /// chunk is not consumed).
    pub(crate) fn fill<F>(&mut self, out: &mut [u8], mut encode: F) -> Result<usize>
    where
        F: FnMut(u32, &mut [u8]) -> Result<usize>,
    {
        if out.len() < CHUNK_SIZE {
            return Err(Error::new(EINVAL));
        }
        let mut written = 0;
        for slot in out.chunks_exact_mut(CHUNK_SIZE) {
            if self.is_finished() {
                break;
            }
            match encode(self.next, slot) {
                Ok(_) => {
                    let _ = self.take_next();
                    written += CHUNK_SIZE;
                }
                Err(error) if written == 0 => return Err(error),
                Err(_) => break,
            }
        }
        Ok(written)
    }
}
