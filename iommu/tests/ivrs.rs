//! The IVRS parser against tables built by hand from the specification
//! (notes/iommu-hw.md §B.1), and against fuzzed bytes: malformed tables are
//! errors, never panics.

use iommu::ivrs::{DeviceRange, DeviceSet, Ivrs, IvrsError, Special, with_header};
use proptest::prelude::*;

fn ivhd(kind: u8, base: u64, device_id: u16, entries: &[u8]) -> Vec<u8> {
    let header = if kind == 0x10 { 24 } else { 40 };
    let len = header + entries.len();
    let mut b = vec![kind, 0x20];
    b.extend_from_slice(&(len as u16).to_le_bytes());
    b.extend_from_slice(&device_id.to_le_bytes());
    b.extend_from_slice(&0x40u16.to_le_bytes());
    b.extend_from_slice(&base.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    if kind != 0x10 {
        b.extend_from_slice(&0x1234u64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
    }
    b.extend_from_slice(entries);
    b
}

fn ivmd(kind: u8, flags: u8, device: u16, aux: u16, start: u64, len: u64) -> Vec<u8> {
    let mut b = vec![kind, flags];
    b.extend_from_slice(&32u16.to_le_bytes());
    b.extend_from_slice(&device.to_le_bytes());
    b.extend_from_slice(&aux.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&start.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b
}

fn table(blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut body = 1u32.to_le_bytes().to_vec();
    body.extend_from_slice(&[0; 8]);
    for b in blocks {
        body.extend_from_slice(b);
    }
    with_header(*b"IVRS", 2, &body)
}

fn entry4(t: u8, id: u16) -> [u8; 4] {
    let [lo, hi] = id.to_le_bytes();
    [t, lo, hi, 0]
}

fn entry8(t: u8, id: u16, ext: u32) -> [u8; 8] {
    let [lo, hi] = id.to_le_bytes();
    let e = ext.to_le_bytes();
    [t, lo, hi, 0, e[0], e[1], e[2], e[3]]
}

#[test]
fn every_device_entry_kind_and_the_highest_ivhd_type() {
    let mut entries = Vec::new();
    entries.extend_from_slice(&entry4(0x02, 0x0028)); // SELECT 00:05.0
    entries.extend_from_slice(&entry4(0x03, 0x0100)); // RANGE 01:00.0 ..
    entries.extend_from_slice(&entry4(0x04, 0x01FF)); // .. 01:1f.7
    entries.extend_from_slice(&entry8(0x42, 0x0300, 0x0002_0000 << 8 >> 8)); // ALIAS SELECT
    entries.extend_from_slice(&entry8(0x43, 0x0400, 0x0004_0800)); // ALIAS RANGE -> 0x0408
    entries.extend_from_slice(&entry4(0x04, 0x0407));
    entries.extend_from_slice(&entry8(0x46, 0x0500, 1 << 31)); // EXT SELECT
    entries.extend_from_slice(&entry8(0x48, 0, 0x0100_A021)); // SPECIAL IOAPIC 0x21 at 0x00A0
    entries.extend_from_slice(&entry4(0x00, 0)); // padding
    entries.extend_from_slice(&entry8(0x40, 0, 0)); // padding 8
    let t = table(&[
        ivhd(0x10, 0xFEB8_0000, 0x0002, &entry4(0x01, 0)),
        ivhd(0x11, 0xFEB8_0000, 0x0002, &entries),
        ivmd(0x20, 0b111, 0, 0, 0xD000_0000, 0x2000),
        ivmd(0x21, 0b011, 0x0028, 0, 0xD100_0000, 0x1000),
        ivmd(0x22, 0b1000, 0x0100, 0x01FF, 0xD200_0000, 0x1000),
    ]);
    let ivrs = Ivrs::parse(&t).expect("parses");
    assert_eq!(ivrs.ivhds.len(), 2);
    assert_eq!(ivrs.ivhd_type(), Some(0x11));
    let units: Vec<_> = ivrs.units().collect();
    assert_eq!(units.len(), 1, "the 0x10 copy of the unit is not used");
    let u = units[0];
    assert_eq!((u.base, u.device_id, u.efr), (0xFEB8_0000, 2, Some(0x1234)));
    let c = &u.coverage;
    assert!(!c.all);
    assert!(c.covers(0x0028) && c.covers(0x0180) && c.covers(0x0404) && c.covers(0x00A0));
    assert!(!c.covers(0x0029) && !c.covers(0x0200));
    assert_eq!(c.alias_of(0x0403), Some(0x0408));
    assert_eq!(c.alias_of(0x0028), None);
    assert!(c.ranges.contains(&DeviceRange {
        first: 0x0100,
        last: 0x01FF,
        alias: None
    }));
    assert_eq!(
        c.specials,
        vec![Special {
            handle: 0x21,
            device_id: 0x00A0,
            variety: 1
        }]
    );
    assert_eq!(ivrs.ivmds.len(), 3);
    assert_eq!(ivrs.ivmds[0].devices, DeviceSet::All);
    assert!(ivrs.ivmds[0].identity_mapped() && ivrs.ivmds[0].writable());
    assert_eq!(ivrs.ivmds[1].devices, DeviceSet::Range(0x28, 0x28));
    assert!(ivrs.ivmds[1].readable() && !ivrs.ivmds[1].writable());
    assert!(
        ivrs.ivmds[2].identity_mapped() && ivrs.ivmds[2].writable(),
        "exclusion = RW unity"
    );
    // ALL on the 0x10 copy.
    assert!(ivrs.ivhds[0].coverage.all);
}

#[test]
fn malformed_tables_are_errors() {
    let good = table(&[ivhd(0x11, 0xFEB8_0000, 2, &entry4(0x02, 0x28))]);
    assert!(Ivrs::parse(&good).is_ok());
    assert_eq!(Ivrs::parse(&good[..47]), Err(IvrsError::Truncated));
    let mut sig = good.clone();
    sig[0] = b'X';
    assert!(matches!(Ivrs::parse(&sig), Err(IvrsError::Signature(_))));
    let mut sum = good.clone();
    sum[60] ^= 1;
    assert_eq!(Ivrs::parse(&sum), Err(IvrsError::Checksum));
    assert_eq!(
        Ivrs::parse(&good[..good.len() - 1]),
        Err(IvrsError::Truncated),
        "length field beyond the bytes"
    );
    let bad = |blocks: &[Vec<u8>]| Ivrs::parse(&table(blocks)).unwrap_err();
    // A block of length 0 would never advance.
    let mut zero = ivhd(0x11, 0, 2, &[]);
    zero[2] = 0;
    zero[3] = 0;
    assert!(matches!(bad(&[zero]), IvrsError::Block { .. }));
    // An IVHD shorter than its header.
    let mut short = ivhd(0x11, 0, 2, &[]);
    short[2] = 24;
    assert!(matches!(
        bad(&[short[..24].to_vec()]),
        IvrsError::Block { .. }
    ));
    // An 8-byte entry cut by the block's end.
    let cut = ivhd(0x11, 0, 2, &entry8(0x42, 1, 0)[..4]);
    assert!(matches!(bad(&[cut]), IvrsError::Entry { .. }));
    // RANGE END alone, END below START, START never closed.
    assert!(matches!(
        bad(&[ivhd(0x11, 0, 2, &entry4(0x04, 5))]),
        IvrsError::Range { .. }
    ));
    let mut down = entry4(0x03, 9).to_vec();
    down.extend_from_slice(&entry4(0x04, 5));
    assert!(matches!(
        bad(&[ivhd(0x11, 0, 2, &down)]),
        IvrsError::Range { .. }
    ));
    assert!(matches!(
        bad(&[ivhd(0x11, 0, 2, &entry4(0x03, 9))]),
        IvrsError::Range { .. }
    ));
    // IVMD: empty, unaligned, wrapping, backwards device range.
    for m in [
        ivmd(0x20, 1, 0, 0, 0x1000, 0),
        ivmd(0x20, 1, 0, 0, 0x1001, 0x1000),
        ivmd(0x20, 1, 0, 0, u64::MAX - 0xFFF, 0x2000),
        ivmd(0x22, 1, 9, 5, 0x1000, 0x1000),
    ] {
        assert!(matches!(bad(&[m]), IvrsError::Memory { .. }));
    }
}

fn valid_table() -> impl Strategy<Value = Vec<u8>> {
    let entry = prop_oneof![
        any::<u16>().prop_map(|id| entry4(0x02, id).to_vec()),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            [entry4(0x03, a), entry4(0x04, b)].concat()
        }),
        (any::<u16>(), any::<u32>()).prop_map(|(id, e)| entry8(0x42, id, e).to_vec()),
        (any::<u16>(), any::<u32>()).prop_map(|(id, e)| entry8(0x48, id, e).to_vec()),
        Just(entry4(0x01, 0).to_vec()),
    ];
    (
        prop::collection::vec(entry, 0..8),
        any::<u64>(),
        0u64..0x1_0000,
        1u64..0x100,
    )
        .prop_map(|(entries, base, start, pages)| {
            table(&[
                ivhd(0x10, base, 2, &entries.concat()),
                ivhd(0x11, base, 2, &entries.concat()),
                ivmd(0x20, 0b111, 0, 0, start << 12, pages << 12),
            ])
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes at all: a result, never a panic.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Ivrs::parse(&bytes);
        let mut t = bytes.clone();
        if t.len() >= 48 {
            t[..4].copy_from_slice(b"IVRS");
            let len = t.len() as u32;
            t[4..8].copy_from_slice(&len.to_le_bytes());
            let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
            t[9] = t[9].wrapping_sub(sum);
            let _ = Ivrs::parse(&t);
        }
    }

    /// Valid tables parse; any corruption of one (a byte changed, the
    /// checksum fixed up so the parser looks inside) is a result, never a panic.
    #[test]
    fn corrupted_valid_tables_never_panic(
        t in valid_table(),
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let ivrs = Ivrs::parse(&t).expect("a valid table parses");
        prop_assert_eq!(ivrs.units().count(), 1);
        let mut bad = t.clone();
        let i = at.index(bad.len());
        bad[i] = value;
        let sum = bad.iter().fold(0u8, |s, b| s.wrapping_add(*b));
        bad[9] = bad[9].wrapping_sub(sum);
        let _ = Ivrs::parse(&bad);
        let n = cut.index(t.len());
        let mut short = t[..n].to_vec();
        if short.len() >= 8 {
            short[4..8].copy_from_slice(&(n as u32).to_le_bytes());
        }
        let _ = Ivrs::parse(&short);
    }
}
