//! Device assignment: which unit owns a device, which alias its DMA
//! carries, the firmware's identity-mapped ranges, and who may move it.
//!
//! * ASSIGN by BDF (the v1 opcode) is root's, into a domain it owns, and
//!   only for a device no domain holds.
//! * ASSIGN by pcid channel needs no uid: the channel proves the device
//!   (pcid lets one channel per function be open), so it takes the device
//!   from whatever domain held it.
//! * Before a device's entry points at a domain, the IVMD/RMRR ranges the
//!   firmware lists for it are identity mapped there (IOVA = physical
//!   address), so its DMA to them never faults; they stay while the domain
//!   lives and its owner cannot unmap them.
//! * Its alias (a requester id its DMA carries instead, from IVRS alias
//!   entries) gets the same entry.

use syscall::error::{EACCES, EBUSY, ENODEV, ENOENT, Error, Result};

use crate::access::{Budgeted, Client};
use crate::bdf::Bdf;
use crate::service::{Assignment, Iommu, UNASSIGNED_DOMAIN_ID};

impl Iommu {
    /// ASSIGN by BDF (the v1 opcode): root only, into a domain `client`
    /// owns, and only for a device no domain holds (`EBUSY` otherwise; the
    /// same domain again is a no-op). `unit` `None`: the unit the firmware
    /// says owns the device.
    pub fn assign(
        &mut self,
        bdf: Bdf,
        id: u16,
        unit: Option<usize>,
        client: Client,
    ) -> Result<usize> {
        self.domain_for_change(id, client)?;
        if !client.is_root() {
            return Err(Error::new(EACCES));
        }
        if let Some(held) = self.devices.get(&bdf.requester_id()) {
            return if held.domain == id && unit.is_none_or(|u| u == held.unit) {
                Ok(held.unit)
            } else {
                Err(Error::new(EBUSY))
            };
        }
        self.attach(bdf, id, unit)
    }

    /// ASSIGN of the function a pcid channel proved to be `bdf`: into a
    /// domain `client` owns, taking the device from whatever domain held it.
    pub fn assign_proven(&mut self, bdf: Bdf, id: u16, client: Client) -> Result<usize> {
        self.domain_for_change(id, client)?;
        self.attach(bdf, id, None)
    }

    /// The requester ids whose entries describe `rid`: itself and its alias.
    fn entry_ids(&self, rid: u16) -> impl Iterator<Item = u16> + use<> {
        std::iter::once(rid).chain(self.topology.alias_of(rid))
    }

    /// Identity maps, in domain `id`, every firmware range `rid` needs.
    fn map_unity(&mut self, id: u16, rid: u16) -> Result<()> {
        let ranges: Vec<_> = self.topology.unity_for(rid).copied().collect();
        for r in ranges {
            let d = self.domains.get(&id).ok_or(Error::new(ENOENT))?;
            if d.unity.contains(&r.start) {
                continue;
            }
            let uid = d.charged_uid;
            let left = self.accounts.tables_left(uid);
            self.metered(id, |s| {
                let d = s.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
                let mut memory = Budgeted::new(&mut s.memory, left);
                d.domain
                    .map(&mut memory, r.start, r.length, r.flags, Some(r.start))
            })
            .inspect_err(|e| {
                log::error!(
                    "iommud: identity map {:#x}+{:#x} in domain {id} for {}: {e}",
                    r.start,
                    r.length,
                    Bdf::from_requester_id(rid)
                );
            })?;
            self.sync_new_mapping(id, r.start, r.length)?;
            self.accounts.add_bytes(uid, i128::from(r.length));
            if let Some(d) = self.domains.get_mut(&id) {
                d.unity.insert(r.start);
            }
        }
        Ok(())
    }

    /// Points `bdf`'s entries (its own and its alias's) at domain `id` on
    /// `unit` (`None`: the unit the firmware names, unit 0 without firmware
    /// tables), after identity mapping the ranges it needs.
    fn attach(&mut self, bdf: Bdf, id: u16, unit: Option<usize>) -> Result<usize> {
        let rid = bdf.requester_id();
        let unit = match unit {
            Some(u) => u,
            None => self.topology.unit_of(rid).ok_or(Error::new(ENODEV))?,
        };
        if unit >= self.units.len() {
            return Err(Error::new(ENODEV));
        }
        self.map_unity(id, rid)?;
        let d = self.domain(id)?;
        let entry = Self::translated(id, &d.domain);
        for r in self.entry_ids(rid) {
            self.write_entry(unit, r, entry)?;
        }
        if let Some(old) = self.devices.insert(rid, Assignment { domain: id, unit }) {
            self.leave(old.domain, rid);
            if old.unit != unit {
                let default = self.unassigned_entry();
                for r in self.entry_ids(rid) {
                    self.write_entry(old.unit, r, default)?;
                }
            }
            if old.domain != id {
                self.forget_old_domain(old.domain)?;
            }
        } else {
            // It was unassigned: passthrough translations it made are cached under
            // the id unassigned entries carry.
            self.forget_old_domain(UNASSIGNED_DOMAIN_ID)?;
        }
        if let Some(d) = self.domains.get_mut(&id) {
            d.devices.insert(rid);
        }
        Ok(unit)
    }

    /// `rid` left domain `id`; an ownerless domain left empty is destroyed.
    fn leave(&mut self, id: u16, rid: u16) {
        let Some(d) = self.domains.get_mut(&id) else {
            return;
        };
        d.devices.remove(&rid);
        if d.owner.is_none()
            && d.devices.is_empty()
            && let Err(e) = self.remove_domain(id)
        {
            log::error!("iommud: destroying ownerless domain {id}: {e}");
        }
    }

    /// Gives `bdf` back to the default (passthrough or blocked) and detaches
    /// it from its domain; returns the old assignment. The domain's owner may
    /// do it, and root for a domain whose owner is gone.
    pub fn unassign(&mut self, bdf: Bdf, client: Client) -> Result<Assignment> {
        let rid = bdf.requester_id();
        let a = *self.devices.get(&rid).ok_or(Error::new(ENOENT))?;
        let d = self.domain(a.domain)?;
        let allowed = client.owns(d.owner) || (d.owner.is_none() && client.is_root());
        if !allowed {
            return Err(Error::new(EACCES));
        }
        let default = self.unassigned_entry();
        for r in self.entry_ids(rid) {
            self.write_entry(a.unit, r, default)?;
        }
        self.forget_old_domain(a.domain)?;
        self.devices.remove(&rid);
        self.leave(a.domain, rid);
        Ok(a)
    }
}
