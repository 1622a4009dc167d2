//! Who may do what: the identity a handle recorded when it was opened, and
//! what each uid uses against its [`Limits`].
//!
//! Every Redox driver runs as root, so a uid proves little: a domain belongs
//! to the *process* that created it ([`Client::pid`]), and a request is judged
//! only on what its handle recorded at open. A `call` carries no uid or gid at
//! all (the kernel puts metadata in that Sqe word), so nothing here ever looks
//! at a request's own caller context.

use std::collections::BTreeMap;

use syscall::error::{EMFILE, ENOSPC, Error, Result};

use crate::config::Limits;

/// The opener of a handle, as the kernel described it on the open request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Client {
    /// Process id (`Sqe.caller` of the open).
    pub pid: usize,
    /// Effective uid of the open.
    pub uid: u32,
}

impl Client {
    /// A client.
    pub const fn new(pid: usize, uid: u32) -> Self {
        Self { pid, uid }
    }

    /// Whether the opener was root.
    pub const fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether `owner` is this very process.
    pub fn owns(&self, owner: Option<Client>) -> bool {
        owner.is_some_and(|o| o.pid == self.pid && o.uid == self.uid)
    }
}

/// What one uid holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Domains owned.
    pub domains: usize,
    /// Open handles.
    pub handles: usize,
    /// Bytes mapped over its domains.
    pub mapped_bytes: u64,
    /// Page-table pages of its domains.
    pub page_tables: usize,
}

/// Usage per uid, checked against [`Limits`].
#[derive(Clone, Debug, Default)]
pub struct Accounts {
    limits: Limits,
    by_uid: BTreeMap<u32, Usage>,
}

impl Accounts {
    /// Empty accounts under `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            by_uid: BTreeMap::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// What `uid` holds now.
    pub fn usage(&self, uid: u32) -> Usage {
        self.by_uid.get(&uid).copied().unwrap_or_default()
    }

    /// Every uid holding anything, lowest first.
    pub fn all(&self) -> impl Iterator<Item = (u32, Usage)> + '_ {
        self.by_uid.iter().map(|(&u, &usage)| (u, usage))
    }

    fn entry(&mut self, uid: u32) -> &mut Usage {
        self.by_uid.entry(uid).or_default()
    }

    fn tidy(&mut self, uid: u32) {
        if self.by_uid.get(&uid) == Some(&Usage::default()) {
            self.by_uid.remove(&uid);
        }
    }

    /// Takes one domain for `uid` (`EMFILE` at the limit).
    pub fn take_domain(&mut self, uid: u32) -> Result<()> {
        let limit = self.limits.domains_per_uid;
        let u = self.entry(uid);
        if u.domains >= limit {
            self.tidy(uid);
            return Err(Error::new(EMFILE));
        }
        u.domains += 1;
        Ok(())
    }

    /// Gives a domain back.
    pub fn give_domain(&mut self, uid: u32) {
        let u = self.entry(uid);
        u.domains = u.domains.saturating_sub(1);
        self.tidy(uid);
    }

    /// Takes one handle for `uid` (`EMFILE` at the limit).
    pub fn take_handle(&mut self, uid: u32) -> Result<()> {
        let limit = self.limits.handles_per_uid;
        let u = self.entry(uid);
        if u.handles >= limit {
            self.tidy(uid);
            return Err(Error::new(EMFILE));
        }
        u.handles += 1;
        Ok(())
    }

    /// Gives a handle back.
    pub fn give_handle(&mut self, uid: u32) {
        let u = self.entry(uid);
        u.handles = u.handles.saturating_sub(1);
        self.tidy(uid);
    }

    /// Whether `uid` may map `bytes` more (`ENOSPC` otherwise).
    pub fn check_bytes(&self, uid: u32, bytes: u64) -> Result<()> {
        let used = self.usage(uid).mapped_bytes;
        match used.checked_add(bytes) {
            Some(total) if total <= self.limits.mapped_bytes_per_uid => Ok(()),
            _ => Err(Error::new(ENOSPC)),
        }
    }

    /// Adds (or with a negative delta removes) mapped bytes.
    pub fn add_bytes(&mut self, uid: u32, delta: i128) {
        let u = self.entry(uid);
        let v = i128::from(u.mapped_bytes) + delta;
        u.mapped_bytes = u64::try_from(v.max(0)).unwrap_or(u64::MAX);
        self.tidy(uid);
    }

    /// Page-table pages `uid` may still take.
    pub fn tables_left(&self, uid: u32) -> usize {
        self.limits
            .page_tables_per_uid
            .saturating_sub(self.usage(uid).page_tables)
    }

    /// Adds (or removes) page-table pages.
    pub fn add_tables(&mut self, uid: u32, delta: isize) {
        let u = self.entry(uid);
        u.page_tables = u.page_tables.saturating_add_signed(delta);
        self.tidy(uid);
    }
}

/// [`PageTableMemory`](crate::phys::PageTableMemory) that hands out at most
/// `left` more tables (`ENOSPC` after): a uid's page-table limit, enforced
/// while a MAP builds its tables, so a refused MAP maps nothing.
pub struct Budgeted<'a, M: crate::phys::PageTableMemory + ?Sized> {
    inner: &'a mut M,
    left: usize,
}

impl<'a, M: crate::phys::PageTableMemory + ?Sized> Budgeted<'a, M> {
    /// `inner`, limited to `left` more tables.
    pub fn new(inner: &'a mut M, left: usize) -> Self {
        Self { inner, left }
    }
}

impl<M: crate::phys::PageTableMemory + ?Sized> crate::phys::PageTableMemory for Budgeted<'_, M> {
    fn alloc_table(&mut self) -> Result<u64> {
        if self.left == 0 {
            return Err(Error::new(ENOSPC));
        }
        let t = self.inner.alloc_table()?;
        self.left -= 1;
        Ok(t)
    }

    fn free_table(&mut self, phys: u64) {
        self.inner.free_table(phys);
        self.left = self.left.saturating_add(1);
    }

    fn read_u64(&self, phys: u64) -> u64 {
        self.inner.read_u64(phys)
    }

    fn write_u64(&mut self, phys: u64, value: u64) {
        self.inner.write_u64(phys, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_answer_emfile_and_enospc_and_give_back() {
        let mut a = Accounts::new(Limits {
            domains_per_uid: 1,
            handles_per_uid: 2,
            mapped_bytes_per_uid: 8192,
            page_tables_per_uid: 3,
        });
        a.take_domain(5).unwrap();
        assert_eq!(a.take_domain(5).unwrap_err().errno, EMFILE);
        a.take_domain(6).unwrap();
        a.give_domain(5);
        a.take_domain(5).unwrap();
        a.take_handle(5).unwrap();
        a.take_handle(5).unwrap();
        assert_eq!(a.take_handle(5).unwrap_err().errno, EMFILE);
        a.check_bytes(5, 8192).unwrap();
        a.add_bytes(5, 4096);
        assert_eq!(a.check_bytes(5, 8192).unwrap_err().errno, ENOSPC);
        assert_eq!(a.check_bytes(5, u64::MAX).unwrap_err().errno, ENOSPC);
        a.add_tables(5, 2);
        assert_eq!(a.tables_left(5), 1);
        a.add_tables(5, -5);
        assert_eq!(a.tables_left(5), 3);
        assert!(Client::new(7, 0).owns(Some(Client::new(7, 0))));
        assert!(!Client::new(8, 0).owns(Some(Client::new(7, 0))));
        assert!(!Client::new(7, 0).owns(None));
    }
}
