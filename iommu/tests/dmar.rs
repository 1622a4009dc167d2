//! DMAR parsing: QEMU's table shape, unit matching (scopes, bridges,
//! INCLUDE_PCI_ALL), RMRRs, and malformed tables (errors, never panics).

use iommu::Bdf;
use iommu::dmar::{Dmar, DmarError, FlatTopology, PciTopology, ScopeKind};
use proptest::prelude::*;

/// Builds DMAR bytes the way firmware lays them out (own encoder, so a
/// parser mistake does not cancel out).
struct Table(Vec<u8>);

impl Table {
    fn new(haw: u8, flags: u8) -> Self {
        let mut b = Vec::new();
        b.extend_from_slice(b"DMAR");
        b.extend_from_slice(&0u32.to_le_bytes());
        b.push(1); // revision
        b.push(0); // checksum
        b.extend_from_slice(b"BOCHS ");
        b.extend_from_slice(b"BXPC    ");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(b"BXPC");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(haw);
        b.push(flags);
        b.extend_from_slice(&[0; 10]);
        Table(b)
    }

    fn scope(kind: u8, id: u8, bus: u8, path: &[(u8, u8)]) -> Vec<u8> {
        let mut s = vec![kind, (6 + 2 * path.len()) as u8, 0, 0, id, bus];
        for &(d, f) in path {
            s.extend_from_slice(&[d, f]);
        }
        s
    }

    fn structure(&mut self, kind: u16, body: &[u8]) {
        self.0.extend_from_slice(&kind.to_le_bytes());
        self.0
            .extend_from_slice(&((body.len() + 4) as u16).to_le_bytes());
        self.0.extend_from_slice(body);
    }

    fn drhd(&mut self, flags: u8, base: u64, scopes: &[Vec<u8>]) {
        let mut body = vec![flags, 0, 0, 0];
        body.extend_from_slice(&base.to_le_bytes());
        body.extend(scopes.iter().flatten());
        self.structure(0, &body);
    }

    fn rmrr(&mut self, base: u64, limit: u64, scopes: &[Vec<u8>]) {
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&base.to_le_bytes());
        body.extend_from_slice(&limit.to_le_bytes());
        body.extend(scopes.iter().flatten());
        self.structure(1, &body);
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[4..8].copy_from_slice(&len.to_le_bytes());
        let sum = self.0.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        self.0[9] = 0u8.wrapping_sub(sum);
        self.0
    }
}

fn bdf(b: u8, d: u8, f: u8) -> Bdf {
    Bdf::new(b, d, f).unwrap()
}

/// QEMU 7.2 q35 with intel-iommu and edu (notes §A.6): one DRHD at
/// 0xFED90000 without INCLUDE_PCI_ALL; an IOAPIC scope, the host bridge, an
/// endpoint and a root port (bridge) covering bus 1.
fn qemu_like() -> Vec<u8> {
    let mut t = Table::new(0x26, 0x01);
    t.drhd(
        0,
        0xFED9_0000,
        &[
            Table::scope(3, 0, 0xFF, &[(0, 0)]),
            Table::scope(1, 0, 0, &[(0, 0)]),
            Table::scope(1, 0, 0, &[(3, 0)]),
            Table::scope(2, 0, 0, &[(2, 0)]),
        ],
    );
    t.finish()
}

/// Bridge 00:02.0 has bus 1 below it; bridge 01:00.0 has bus 2.
struct Topo;
impl PciTopology for Topo {
    fn bridge_buses(&self, b: Bdf) -> Option<(u8, u8)> {
        match (b.bus(), b.device(), b.function()) {
            (0, 2, 0) => Some((1, 2)),
            (1, 0, 0) => Some((2, 2)),
            _ => None,
        }
    }
}

#[test]
fn qemu_table_parses_and_matches_devices() {
    let dmar = Dmar::parse(&qemu_like()).unwrap();
    assert_eq!(dmar.host_address_width, 39);
    assert_eq!(dmar.flags, 1);
    assert_eq!(dmar.units.len(), 1);
    let u = &dmar.units[0];
    assert_eq!(u.register_base, 0xFED9_0000);
    assert!(!u.include_pci_all());
    assert_eq!(u.scopes[0].kind, ScopeKind::IoApic);
    assert_eq!(u.scopes[0].start_bus, 0xFF);
    assert_eq!(dmar.unit_for(bdf(0, 3, 0), &Topo), Some(0));
    // Behind the root port (and behind a bridge below it): covered.
    assert_eq!(dmar.unit_for(bdf(1, 0, 0), &Topo), Some(0));
    assert_eq!(dmar.unit_for(bdf(2, 5, 1), &Topo), Some(0));
    // Not listed, no INCLUDE_PCI_ALL unit: nobody translates it.
    assert_eq!(dmar.unit_for(bdf(0, 4, 0), &Topo), None);
    // Without topology the bridge covers only itself.
    assert_eq!(dmar.unit_for(bdf(1, 0, 0), &FlatTopology), None);
    assert_eq!(dmar.unit_for(bdf(0, 2, 0), &FlatTopology), Some(0));
}

#[test]
fn include_pci_all_takes_what_no_other_unit_lists() {
    let mut t = Table::new(0x26, 0);
    // The graphics unit lists 00:02.0; the catch-all unit comes last.
    t.drhd(0, 0xFED9_0000, &[Table::scope(1, 0, 0, &[(2, 0)])]);
    t.drhd(1, 0xFED9_1000, &[Table::scope(3, 2, 0xF0, &[(0x1f, 0)])]);
    let dmar = Dmar::parse(&t.finish()).unwrap();
    assert_eq!(dmar.unit_for(bdf(0, 2, 0), &FlatTopology), Some(0));
    assert_eq!(dmar.unit_for(bdf(0, 0x1f, 3), &FlatTopology), Some(1));
    assert_eq!(dmar.unit_for(bdf(5, 0, 0), &FlatTopology), Some(1));
}

#[test]
fn multi_element_paths_follow_bridges() {
    let mut t = Table::new(0x26, 0);
    // Endpoint 2:03.1 reached through 00:02.0 then 01:00.0.
    t.drhd(
        0,
        0xFED9_0000,
        &[Table::scope(1, 0, 0, &[(2, 0), (0, 0), (3, 1)])],
    );
    let dmar = Dmar::parse(&t.finish()).unwrap();
    assert_eq!(dmar.units[0].scopes[0].resolve(&Topo), Some(bdf(2, 3, 1)));
    assert_eq!(dmar.unit_for(bdf(2, 3, 1), &Topo), Some(0));
    assert_eq!(dmar.unit_for(bdf(2, 3, 0), &Topo), None);
}

#[test]
fn rmrrs_apply_to_their_devices_and_broken_ones_are_dropped() {
    let mut t = Table::new(0x26, 0);
    t.drhd(1, 0xFED9_0000, &[]);
    t.rmrr(0x7_0000, 0x7_FFFF, &[Table::scope(1, 0, 0, &[(0x14, 0)])]);
    t.rmrr(0x8_0000, 0x8_0FFE, &[Table::scope(1, 0, 0, &[(0x14, 0)])]);
    t.rmrr(0x9_0000, 0x8_FFFF, &[Table::scope(1, 0, 0, &[(0x14, 0)])]);
    let dmar = Dmar::parse(&t.finish()).unwrap();
    assert_eq!(dmar.reserved.len(), 1);
    let r: Vec<_> = dmar.reserved_for(bdf(0, 0x14, 0), &FlatTopology).collect();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].base, r[0].size()), (0x7_0000, 0x1_0000));
    assert_eq!(dmar.reserved_for(bdf(0, 3, 0), &FlatTopology).count(), 0);
}

#[test]
fn atsr_rhsa_and_unknown_structures_are_skipped() {
    let mut t = Table::new(0x26, 0);
    t.structure(2, &[1, 0, 0, 0]); // ATSR ALL_PORTS
    t.drhd(1, 0xFED9_0000, &[]);
    t.structure(3, &[0, 0, 0, 0, 0, 0, 0x90, 0xFE, 0, 0, 0, 0, 0, 0, 0, 0]);
    t.structure(9, &[]);
    let dmar = Dmar::parse(&t.finish()).unwrap();
    assert_eq!(dmar.units.len(), 1);
}

#[test]
fn malformed_tables_are_errors() {
    let good = qemu_like();
    assert_eq!(Dmar::parse(&good[..40]), Err(DmarError::Truncated));
    let mut sig = good.clone();
    sig[0] = b'X';
    assert_eq!(Dmar::parse(&sig), Err(DmarError::Signature));
    let mut sum = good.clone();
    sum[40] ^= 1;
    assert_eq!(Dmar::parse(&sum), Err(DmarError::Checksum));
    // Length field beyond the bytes.
    let mut long = good.clone();
    long[4] = 0xFF;
    assert_eq!(Dmar::parse(&long), Err(DmarError::Truncated));
    // A structure of length 2 (would loop forever if accepted).
    let mut t = Table::new(0x26, 0);
    t.0.extend_from_slice(&[0, 0, 2, 0]);
    assert_eq!(Dmar::parse(&t.finish()), Err(DmarError::Structure(48)));
    // A scope whose length runs past its structure.
    let mut t = Table::new(0x26, 0);
    t.drhd(0, 0xFED9_0000, &[vec![1, 10, 0, 0, 0, 0, 3, 0]]);
    assert_eq!(Dmar::parse(&t.finish()), Err(DmarError::Scope(48)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes: an answer, never a panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Dmar::parse(&bytes);
    }

    /// A valid table with bytes flipped (and the checksum fixed so the
    /// structure parser is reached): an answer, never a panic; whatever it
    /// accepts, unit matching works on it.
    #[test]
    fn mutated_tables_never_panic(
        flips in proptest::collection::vec((48usize..200, any::<u8>()), 1..8),
        cut in 48usize..200,
    ) {
        let mut t = qemu_like();
        for (at, v) in flips {
            if let Some(b) = t.get_mut(at) {
                *b = v;
            }
        }
        let cut = cut.min(t.len());
        t.truncate(cut);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t[9] = 0;
        let sum = t.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        t[9] = 0u8.wrapping_sub(sum);
        if let Ok(dmar) = Dmar::parse(&t) {
            for rid in [0u16, 0x18, 0x100, 0xFFFF] {
                let _ = dmar.unit_for(Bdf::from_requester_id(rid), &Topo);
            }
        }
    }
}
