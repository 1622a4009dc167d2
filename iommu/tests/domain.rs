//! Domains: IOVA allocation + page tables + records + quota.

use iommu::page_table::{PAGE_2M, PAGE_4K, PagePolicy};
use iommu::{Domain, DomainConfig, MapFlags, TableArena};
use syscall::error::{EEXIST, EINVAL, ENOENT, ENOSPC};

fn domain(config: DomainConfig) -> (TableArena, Domain) {
    let mut mem = TableArena::new(0x100_0000, 1 << 16);
    let d = Domain::new(5, config, &mut mem).unwrap();
    (mem, d)
}

#[test]
fn map_translate_unmap() {
    let (mut mem, mut d) = domain(DomainConfig::default());
    assert_eq!((d.id(), d.levels()), (5, 3));
    let iova = d
        .map(
            &mut mem,
            0x8000_0000,
            2 * PAGE_2M,
            MapFlags::READ_WRITE,
            None,
        )
        .unwrap();
    assert_eq!(iova % PAGE_2M, 0, "aligned so superpages can be used");
    let t = d.translate(&mem, iova + PAGE_2M + 0x10).unwrap();
    assert_eq!((t.phys, t.page_size), (0x8020_0010, PAGE_2M));
    assert!(t.access.read && t.access.write);
    let ro = d
        .map(&mut mem, 0x1000, PAGE_4K, MapFlags::READ, None)
        .unwrap();
    assert!(!d.translate(&mem, ro).unwrap().access.write);
    assert_eq!(d.mapping_count(), 2);
    assert_eq!(d.mapped_bytes(), 2 * PAGE_2M + PAGE_4K);

    let u = d.unmap(&mut mem, iova).unwrap();
    assert_eq!(
        (u.iova, u.size),
        (iova, 2 * PAGE_2M),
        "the range to invalidate"
    );
    assert_eq!(d.translate(&mem, iova), None);
    assert_eq!(d.unmap(&mut mem, iova).unwrap_err().errno, ENOENT);
    assert_eq!(d.unmap(&mut mem, ro + PAGE_4K).unwrap_err().errno, ENOENT);
    let s = d.stats();
    assert_eq!(
        (s.maps, s.unmaps, s.failed_unmaps, s.mappings),
        (2, 1, 2, 1)
    );
    assert_eq!(s.translations, 3);
}

#[test]
fn fixed_iova_and_overlap() {
    let (mut mem, mut d) = domain(DomainConfig::default());
    assert_eq!(
        d.map(
            &mut mem,
            0x5000,
            PAGE_4K,
            MapFlags::READ_WRITE,
            Some(0x4000_0000)
        )
        .unwrap(),
        0x4000_0000
    );
    let err = d
        .map(
            &mut mem,
            0x6000,
            2 * PAGE_4K,
            MapFlags::READ_WRITE,
            Some(0x3FFF_F000),
        )
        .unwrap_err();
    assert_eq!(err.errno, EEXIST);
    assert_eq!(d.translate(&mem, 0x3FFF_F000), None);
    let err = d
        .map(
            &mut mem,
            0x6000,
            PAGE_4K,
            MapFlags::READ_WRITE,
            Some(0xFEE0_0000),
        )
        .unwrap_err();
    assert_eq!(err.errno, EINVAL, "MSI window is reserved");
    assert_eq!(d.stats().failed_maps, 2);
}

#[test]
fn dma_mask_keeps_iovas_low() {
    let config = DomainConfig {
        dma_mask: 0xFFFF_FFFF,
        ..DomainConfig::default()
    };
    let (mut mem, mut d) = domain(config);
    let before = d.iova_free_bytes();
    assert!(before < 1 << 32);
    for _ in 0..100 {
        let iova = d
            .map(&mut mem, 0x1000, 16 * PAGE_4K, MapFlags::READ_WRITE, None)
            .unwrap();
        assert!(iova + 16 * PAGE_4K <= 1 << 32);
    }
    assert_eq!(d.iova_free_bytes(), before - 100 * 16 * PAGE_4K);
    let w31 = d
        .iova_usage()
        .into_iter()
        .find(|u| u.start == 1 << 31)
        .unwrap();
    assert_eq!(w31.usable_bytes - w31.free_bytes, 100 * 16 * PAGE_4K);
    let err = d
        .map(
            &mut mem,
            0x1000,
            PAGE_4K,
            MapFlags::READ_WRITE,
            Some(1 << 32),
        )
        .unwrap_err();
    assert_eq!(err.errno, EINVAL);
}

#[test]
fn quota_gives_enospc() {
    let config = DomainConfig {
        quota_bytes: 4 * PAGE_4K,
        ..DomainConfig::default()
    };
    let (mut mem, mut d) = domain(config);
    let a = d
        .map(&mut mem, 0x1000, 3 * PAGE_4K, MapFlags::READ_WRITE, None)
        .unwrap();
    assert_eq!(
        d.map(&mut mem, 0x1000, 2 * PAGE_4K, MapFlags::READ_WRITE, None)
            .unwrap_err()
            .errno,
        ENOSPC
    );
    d.map(&mut mem, 0x1000, PAGE_4K, MapFlags::READ_WRITE, None)
        .unwrap();
    d.unmap(&mut mem, a).unwrap();
    d.map(&mut mem, 0x1000, 2 * PAGE_4K, MapFlags::READ_WRITE, None)
        .unwrap();
}

#[test]
fn deferred_unmap_holds_the_iova_until_released() {
    let (mut mem, mut d) = domain(DomainConfig::default());
    let iova = d
        .map(&mut mem, 0x1000, PAGE_4K, MapFlags::READ_WRITE, None)
        .unwrap();
    let u = d.unmap_deferred(&mut mem, iova).unwrap();
    assert_eq!(d.translate(&mem, iova), None);
    let other = d
        .map(&mut mem, 0x2000, PAGE_4K, MapFlags::READ_WRITE, None)
        .unwrap();
    assert_ne!(other, iova, "not reused before release");
    assert_eq!(
        d.map(&mut mem, 0x2000, PAGE_4K, MapFlags::READ_WRITE, Some(iova))
            .unwrap_err()
            .errno,
        EEXIST
    );
    d.release_iova(u).unwrap();
    d.map(&mut mem, 0x2000, PAGE_4K, MapFlags::READ_WRITE, Some(iova))
        .unwrap();
}

#[test]
fn forced_small_pages_and_destroy_frees_tables() {
    let config = DomainConfig {
        page_policy: PagePolicy::Only4K,
        ..DomainConfig::default()
    };
    let (mut mem, mut d) = domain(config);
    let iova = d
        .map(&mut mem, 0x4000_0000, PAGE_2M, MapFlags::READ_WRITE, None)
        .unwrap();
    assert_eq!(d.translate(&mem, iova).unwrap().page_size, PAGE_4K);
    assert!(mem.live_tables() > 1);
    d.destroy(&mut mem);
    assert_eq!(mem.live_tables(), 0);
}

#[test]
fn bad_sizes_and_table_growth_across_48_bits() {
    let (mut mem, mut d) = domain(DomainConfig::default());
    assert_eq!(
        d.map(&mut mem, 0x1000, 0, MapFlags::READ_WRITE, None)
            .unwrap_err()
            .errno,
        EINVAL
    );
    assert_eq!(
        d.map(&mut mem, 0x1001, PAGE_4K, MapFlags::READ_WRITE, None)
            .unwrap_err()
            .errno,
        EINVAL
    );
    let root = d.root();
    d.map(
        &mut mem,
        0x1000,
        PAGE_4K,
        MapFlags::READ_WRITE,
        Some(1 << 40),
    )
    .unwrap();
    assert_eq!(d.levels(), 4);
    assert_ne!(d.root(), root, "the device table entry must be rewritten");
}

#[test]
fn hostile_arguments_give_errors_not_panics() {
    let (mut mem, mut d) = domain(DomainConfig::default());
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Mix wild values with page-aligned ones so some calls succeed.
        match seed % 4 {
            0 => seed,
            1 => seed & !0xFFF,
            2 => (seed % 64) * PAGE_4K,
            _ => u64::MAX - (seed % 3) * PAGE_4K,
        }
    };
    let mut mapped = Vec::new();
    for _ in 0..20_000 {
        let (phys, size, iova) = (next(), next(), next());
        let wanted = (iova % 2 == 0).then_some(iova);
        match d.map(&mut mem, phys, size, MapFlags::READ_WRITE, wanted) {
            Ok(at) => mapped.push(at),
            Err(e) => assert!(
                [EINVAL, EEXIST, ENOSPC, syscall::error::ENOMEM].contains(&e.errno),
                "{e:?}"
            ),
        }
        let _ = d.translate(&mem, next());
        if let Err(e) = d.unmap(&mut mem, next()) {
            assert_eq!(e.errno, ENOENT);
        }
    }
    // Some were unmapped by the random unmaps above; the rest must still be.
    let left: Vec<u64> = d.mappings().map(|(iova, _)| iova).collect();
    assert!(left.iter().all(|iova| mapped.contains(iova)));
    assert!(!left.is_empty());
    for iova in left {
        d.unmap(&mut mem, iova).unwrap();
    }
    assert_eq!(d.mapping_count(), 0);
    // Emptied tables wait for the caller's invalidation, then go back.
    d.prune_tables(&mut mem, 0, u64::MAX);
    let gathered = d.take_gathered_tables();
    assert_eq!(mem.live_tables(), 1 + gathered.len());
    Domain::free_tables(&mut mem, gathered);
    assert_eq!(mem.live_tables(), 1);
}
