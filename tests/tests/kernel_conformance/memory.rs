//! redox-real.md §2: the kernel `memory` scheme (kernel `src/scheme/memory.rs`, with
//! `Grant::physmap` and the zero-frame rules of `src/context/memory.rs`). Each test
//! names the file it checks.

use std::sync::Arc;

use libredox::call::{self, MmapArgs};
use libredox::error::Error;
use libredox::flag;
use redox_host::hw::pci_function::{SimFunctionSpec, SimPciFunction};
use redox_host::mock::phys::{HIGH_BASE, PAGE};
use redox_host::{Cred, Kernel};
use syscall::CallFlags;
use syscall::error::{EACCES, EINVAL, ENOENT, EOPNOTSUPP, EPERM};

const ROOT: &str = "/scheme/memory";
/// Linux `MAP_FIXED`: libredox passes the host's `MAP_*` values and does not name this
/// one; the mocked kernel translates it to Redox `MAP_FIXED`.
const HOST_MAP_FIXED: u32 = 0x10;

fn open(path: &str) -> Result<usize, i32> {
    call::open(format!("{ROOT}/{path}"), flag::O_RDWR | flag::O_CLOEXEC, 0).map_err(|e| e.errno())
}

fn mmap(fd: usize, addr: usize, len: usize, flags: u32, offset: u64) -> Result<usize, i32> {
    // SAFETY: the kernel picks a fresh range (or refuses); nothing else refers to it.
    unsafe {
        call::mmap(MmapArgs {
            addr: addr as *mut (),
            length: len,
            prot: flag::PROT_READ | flag::PROT_WRITE,
            flags,
            fd,
            offset,
        })
    }
    .map(|p| p as usize)
    .map_err(|e| e.errno())
}

fn translate(tr: usize, virt: usize) -> Result<u64, i32> {
    let mut b = virt.to_ne_bytes();
    let r = call::call_ro(tr, &mut b, CallFlags::empty(), &[]).map_err(|e| e.errno())?;
    assert_eq!(r, 0, "translation returns 0");
    Ok(usize::from_ne_bytes(b) as u64)
}

fn root_machine() -> Arc<Kernel> {
    Kernel::boot()
}

/// kernel `src/scheme/memory.rs`: a path longer than 64 bytes is `ENOENT`, counted
/// before the leading `/` are removed.
#[test]
fn paths_over_64_bytes_are_enoent() {
    let k = root_machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let pad = "/".repeat(64 - "zeroed@wb".len());
    assert!(open(&format!("{pad}zeroed@wb")).is_ok(), "64 bytes");
    assert_eq!(open(&format!("/{pad}zeroed@wb")), Err(ENOENT), "65 bytes");
}

/// kernel `src/scheme/memory.rs`: unknown kinds, memory types (lowercase only) and
/// flags are `ENOENT`; there is no below-4 GiB flag.
#[test]
fn unknown_kinds_types_and_flags_are_enoent() {
    let k = root_machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    for path in [
        "anonymous",
        "zeroed@WB",
        "zeroed@xx",
        "physical@",
        "zeroed@wb?phys_contiguous,32",
        "zeroed@wb?phys_contiguous&below4g",
        "zeroed@wb?below4g",
    ] {
        let want = if path == "physical@" {
            Ok(())
        } else {
            Err(ENOENT)
        };
        assert_eq!(open(path).map(|_| ()), want, "{path}");
    }
    for path in [
        "zeroed@uc",
        "zeroed@wc",
        "zeroed@dev",
        "physical@dev",
        "translation",
    ] {
        assert!(open(path).is_ok(), "{path}");
    }
}

/// kernel `src/scheme/memory.rs`: the path splits at the first `@`, then at `?`, so a
/// `?` before any `@` belongs to the kind (`ENOENT`); `zeroed@?phys_contiguous` is
/// write-back; empty flags between commas are ignored.
#[test]
fn a_question_mark_counts_only_after_an_at() {
    let k = root_machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    assert_eq!(open("zeroed?phys_contiguous"), Err(ENOENT));
    assert!(open("zeroed@?phys_contiguous").is_ok());
    assert!(open("zeroed@wb?,phys_contiguous,").is_ok());
    assert!(open("@wb").is_ok(), "an empty kind is zeroed");
}

/// kernel `src/scheme/memory.rs` (`kopenat`): a caller whose euid is not 0 may open
/// only plain write-back anonymous memory without flags; everything else `EACCES`.
#[test]
fn non_root_may_open_only_plain_zeroed() {
    let k = root_machine();
    let (_p, _g) = k.enter("user", Cred::USER);
    for path in ["", "zeroed", "zeroed@", "zeroed@wb", "@wb"] {
        assert!(open(path).is_ok(), "{path:?}");
    }
    for path in [
        "zeroed@wb?phys_contiguous",
        "zeroed@uc",
        "zeroed@wc",
        "physical@uc",
        "translation",
        "scheme-root",
    ] {
        assert_eq!(open(path), Err(EACCES), "{path}");
    }
    // The grammar is checked first: a bad path is ENOENT even for a user.
    assert_eq!(open("zeroed@wb?below4g"), Err(ENOENT));
}

/// kernel `src/scheme/memory.rs` (`scheme-root` kind) and base
/// `drivers/common/src/lib.rs` (`init`): upstream drivers open `scheme-root` and
/// the rest relative to it.
#[test]
fn scheme_root_then_openat() {
    let k = root_machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let root = open("scheme-root").expect("root");
    let zeroed = call::openat(root, "zeroed@wb?phys_contiguous", flag::O_RDWR, 0)
        .expect("zeroed relative to the root");
    let tr = call::openat(root, "translation", flag::O_RDWR, 0).expect("translation");
    let virt = mmap(zeroed, 0, PAGE, flag::MAP_PRIVATE, 0).expect("map");
    assert!(translate(tr, virt).is_ok());
    assert_eq!(
        call::openat(root, "zeroed?phys_contiguous", flag::O_RDWR, 0).map(|_| ()),
        Err(Error::new(ENOENT))
    );
    // fpath is the same for every handle.
    let mut b = [0u8; 64];
    let n = call::fpath(zeroed, &mut b).expect("fpath");
    assert_eq!(&b[..n], b"/scheme/memory/");
}

/// kernel `src/scheme/memory.rs` and `src/memory/mod.rs`: a `phys_contiguous` mapping
/// is rounded up to a power of two pages and is one block aligned to its own size.
#[test]
fn phys_contiguous_is_a_naturally_aligned_power_of_two_block() {
    let k = root_machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let fd = open("zeroed@wb?phys_contiguous").expect("open");
    let tr = open("translation").expect("translation");
    let before = k.phys().free_ram();
    let virt = mmap(fd, 0, 3 * PAGE, flag::MAP_PRIVATE, 0).expect("3 pages");
    let phys = translate(tr, virt).expect("translate");
    assert_eq!(phys % (4 * PAGE as u64), 0, "aligned to 4 pages");
    let after = k.phys().free_ram();
    let taken = (before.0 + before.1) - (after.0 + after.1);
    assert_eq!(taken, 4 * PAGE as u64, "3 pages take a 4-page block");
    for page in 0..3 {
        assert_eq!(
            translate(tr, virt + page * PAGE + 7),
            Ok(phys + (page * PAGE) as u64 + 7),
            "contiguous"
        );
    }
}

/// kernel `src/scheme/memory.rs`: `phys_contiguous` with `MAP_SHARED` is
/// `EOPNOTSUPP` (upstream maps DMA memory private).
#[test]
fn phys_contiguous_refuses_map_shared() {
    let k = root_machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let fd = open("zeroed@wb?phys_contiguous").expect("open");
    assert_eq!(mmap(fd, 0, PAGE, flag::MAP_SHARED, 0), Err(EOPNOTSUPP));
    let plain = open("zeroed").expect("plain");
    assert!(mmap(plain, 0, PAGE, flag::MAP_SHARED, 0).is_ok());
}

/// kernel `src/scheme/memory.rs` (`PageSpan::validate_nonempty`): anonymous memory
/// needs a page-aligned, non-zero length and a page-aligned address (`EINVAL`).
#[test]
fn anonymous_mappings_need_page_aligned_non_zero_spans() {
    let k = root_machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let fd = open("zeroed@wb?phys_contiguous").expect("open");
    assert_eq!(mmap(fd, 0, 0, flag::MAP_PRIVATE, 0), Err(EINVAL));
    assert_eq!(mmap(fd, 0, PAGE + 1, flag::MAP_PRIVATE, 0), Err(EINVAL));
    assert_eq!(mmap(fd, 0x1234, PAGE, flag::MAP_PRIVATE, 0), Err(EINVAL));
}

/// kernel `src/context/memory.rs`: plain `zeroed` pages are the shared zero frame
/// until touched, so they have no translation a device could use (`ENOENT`).
#[test]
fn plain_zeroed_memory_has_no_usable_translation() {
    let k = root_machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let fd = open("zeroed").expect("open");
    let tr = open("translation").expect("translation");
    let virt = mmap(fd, 0, PAGE, flag::MAP_PRIVATE, 0).expect("map");
    assert_eq!(translate(tr, virt), Err(ENOENT));
}

/// A machine with a function whose 16 KiB BAR0 lies in the device window.
fn machine_with_bar() -> (Arc<Kernel>, u64) {
    let k = Kernel::boot();
    let f = SimPciFunction::new(
        &k,
        SimFunctionSpec::dsmil_like(driver_sys::pci::PciAddress::new(0, 3, 0), 1),
    )
    .expect("function");
    let (bar, _) = f.bar(0).expect("BAR0");
    k.pci().add_function(f).expect("plug in");
    (k, bar)
}

/// kernel `src/scheme/memory.rs` (`physmap`): the physical address is the mmap offset;
/// the requested address and `MAP_FIXED` are ignored.
#[test]
fn physical_takes_the_address_from_the_offset() {
    let (k, bar) = machine_with_bar();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let fd = open("physical@uc").expect("open");
    let hint = 0x7000_0000_0000usize;
    let virt = mmap(fd, hint, PAGE, flag::MAP_SHARED | HOST_MAP_FIXED, bar).expect("map");
    assert_ne!(virt, hint, "the address is the kernel's choice");
    // SAFETY: one mapped page.
    unsafe { (virt as *mut u32).add(4).write_volatile(0xFEED_F00D) };
    assert_eq!(
        k.phys().read_u64(bar + 16).map(|v| v as u32),
        Some(0xFEED_F00D)
    );
    let tr = open("translation").expect("translation");
    assert_eq!(translate(tr, virt + 8), Ok(bar + 8));
}

/// kernel `src/scheme/memory.rs` (`physmap`): the address must be page aligned, the size
/// a non-zero page multiple and the end at most 2^52 (`EINVAL`).
#[test]
fn physical_checks_alignment_size_and_range() {
    let (k, bar) = machine_with_bar();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let fd = open("physical@uc").expect("open");
    assert_eq!(mmap(fd, 0, PAGE, flag::MAP_SHARED, bar + 8), Err(EINVAL));
    assert_eq!(mmap(fd, 0, 0, flag::MAP_SHARED, bar), Err(EINVAL));
    assert_eq!(mmap(fd, 0, PAGE + 8, flag::MAP_SHARED, bar), Err(EINVAL));
    assert_eq!(
        mmap(fd, 0, 2 * PAGE, flag::MAP_SHARED, (1 << 52) - PAGE as u64),
        Err(EINVAL)
    );
}

/// kernel `src/context/memory.rs` (`Grant::physmap` checks every frame): RAM the frame
/// allocator manages is refused with `EPERM`, even one's own DMA buffer.
#[test]
fn physical_refuses_ram_frames() {
    let k = root_machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let zeroed = open("zeroed@wb?phys_contiguous").expect("open");
    let tr = open("translation").expect("translation");
    let virt = mmap(zeroed, 0, PAGE, flag::MAP_PRIVATE, 0).expect("map");
    let mine = translate(tr, virt).expect("translate");
    let fd = open("physical@wb").expect("open");
    assert_eq!(mmap(fd, 0, PAGE, flag::MAP_SHARED, mine), Err(EPERM));
    assert_eq!(mmap(fd, 0, PAGE, flag::MAP_SHARED, HIGH_BASE), Err(EPERM));
}

/// kernel `src/scheme/memory.rs` (`kcall`, `translation`): a `call` with the virtual
/// address in an 8-byte in/out payload, returning 0; an unmapped address is `ENOENT`;
/// read, write and mmap on the handle fail, and `call` on other kinds is `EOPNOTSUPP`.
#[test]
fn translation_is_a_call() {
    let k = root_machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let tr = open("translation").expect("translation");
    assert_eq!(translate(tr, 0x10_0000), Err(ENOENT));
    let mut b = [0u8; 8];
    assert!(call::read(tr, &mut b).is_err());
    assert!(call::write(tr, &b).is_err());
    assert_eq!(mmap(tr, 0, PAGE, flag::MAP_PRIVATE, 0), Err(EOPNOTSUPP));
    let zeroed = open("zeroed@wb?phys_contiguous").expect("open");
    assert_eq!(
        call::call_ro(zeroed, &mut b, CallFlags::empty(), &[]).map_err(|e| e.errno()),
        Err(EOPNOTSUPP)
    );
}
