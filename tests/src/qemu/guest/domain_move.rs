//! Moving edu between two domains while the unit holds a cached translation for
//! the old one, by either of the two ASSIGNs a client has: by BDF (root only,
//! only for a device no domain holds, so the move is UNASSIGN then ASSIGN) and by
//! pcid channel (the driver hands iommud its channel fd; iommud asks pcid which
//! function it is and takes it from whatever domain held it, in one step).
//! Shared by the AMD-Vi and VT-d models.

use iommu::IommuDomain;
use iommu::protocol::MapFlags;

use super::Outcome;
use super::amdvi::Env;
use super::pages::{CANARY, pattern};

type Result<T> = std::result::Result<T, String>;

/// Which ASSIGN moves the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveBy {
    /// UNASSIGN from the old domain, then ASSIGN by BDF to the new one.
    Bdf,
    /// ASSIGN by pcid channel to the new domain, straight from the old one.
    Channel,
}

impl MoveBy {
    fn describe(self) -> &'static str {
        match self {
            MoveBy::Bdf => "UNASSIGN, then ASSIGN by BDF",
            MoveBy::Channel => "ASSIGN with edu's pcid channel, no UNASSIGN",
        }
    }
}

fn e<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{what}: {err}")
}

impl Env {
    /// Moves edu from the domain that holds it (`from`) to `to`.
    fn move_edu(&self, by: MoveBy, from: &IommuDomain, to: &IommuDomain) -> Result<()> {
        match by {
            MoveBy::Bdf => {
                from.unassign(self.edu.bdf())
                    .map_err(e("UNASSIGN from the old domain"))?;
                to.assign(self.edu.bdf())
                    .map_err(e("ASSIGN by BDF to the new domain"))
            }
            MoveBy::Channel => to
                .assign_channel(self.edu.channel_fd())
                .map_err(e("ASSIGN by pcid channel to the new domain")),
        }
    }

    /// The same IOVA mapped in domains 1 and 2 to different pages, cached for
    /// domain 1 by a DMA; after the move the DMA must reach only domain 2's page.
    pub(super) fn domain_move(&self, by: MoveBy) -> Result<Outcome> {
        let b = IommuDomain::open(2).map_err(e("domain 2"))?;
        let in_a = self.pages(4096)?;
        let in_b = self.pages(4096)?;
        let data = pattern(8);
        // The same IOVA in both domains: after the move it must lead to B's page.
        let iova = self.map_and_reach(&in_a, &pattern(9))?;
        let r = (|| {
            b.map(in_b.phys(), 4096, MapFlags::READ_WRITE, Some(iova))
                .map_err(e("map the same IOVA in domain 2"))?;
            self.load(&self.a, &data)?;
            // The load's own unmap flushed domain 1: let the unit cache `iova` again.
            self.write(iova)?;
            if !in_a.holds(0, &data) {
                return Err(format!("DMA to {iova:#x} in domain 1 did not land"));
            }
            in_a.fill(CANARY);
            in_b.fill(CANARY);
            self.move_edu(by, &self.a, &b)?;
            self.write(iova)?;
            let reached_b = in_b.holds(0, &data);
            let a_intact = in_a.canary_intact();
            self.move_edu(by, &b, &self.a)?;
            b.unmap(iova).map_err(e("unmap in domain 2"))?;
            Ok::<_, String>((reached_b, a_intact))
        })();
        self.a.unmap(iova).map_err(e("unmap"))?;
        let (reached_b, a_intact) = r?;
        let (ida, idb) = (self.a.id(), b.id());
        Ok(match (reached_b, a_intact) {
            (true, true) => Outcome::Pass(format!(
                "IOVA {iova:#x} mapped in domains {ida} and {idb}; cached for domain {ida}, then the device moved \
                 ({}): its DMA reached only domain {idb}'s page",
                by.describe()
            )),
            (_, false) => Outcome::Fail(format!(
                "after the move to domain {idb} ({}) a DMA to {iova:#x} still reached domain {ida}'s page \
                 (the old domain's IOTLB entries were not invalidated)",
                by.describe()
            )),
            (false, true) => Outcome::Fail(format!(
                "after the move ({}) a DMA to {iova:#x} reached neither domain's page",
                by.describe()
            )),
        })
    }
}
