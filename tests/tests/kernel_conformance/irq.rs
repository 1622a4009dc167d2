//! redox-real.md §1: the kernel `irq` scheme (kernel `src/scheme/irq.rs`), with the
//! IDT reservations of `src/arch/x86_shared/idt.rs` and the interrupt entry of
//! `src/arch/x86_shared/interrupt/irq.rs`. Each test names the file it checks.

use std::sync::Arc;

use driver_sys::irq::listing::{DirName, list_dir, parse_dirents};
use event::{EventFlags, EventQueue};
use libredox::call;
use libredox::error::Error;
use libredox::flag::{O_CREAT, O_DIRECTORY, O_EXCL, O_NONBLOCK, O_PATH, O_RDONLY, O_RDWR};
use redox_host::{Cred, Kernel, MachineConfig};
use syscall::error::{EACCES, EBADF, EEXIST, EINVAL, EISDIR, ENOENT, ENOTDIR};
use syscall::flag::{MODE_CHR, MODE_DIR};

const ROOT: &str = "/scheme/irq";
const CREATE: i32 = O_RDWR | O_CREAT;

fn boot(cpus: usize) -> Arc<Kernel> {
    Kernel::boot_with(MachineConfig {
        cpus,
        ..MachineConfig::default()
    })
}

fn open(path: &str, flags: i32) -> Result<usize, i32> {
    call::open(format!("{ROOT}/{path}"), flags, 0).map_err(|e| e.errno())
}

fn err(errno: i32) -> Result<usize, Error> {
    Err(Error::new(errno))
}

/// One getdents answer with a buffer of `len` bytes from cookie `opaque`.
fn getdents(fd: usize, len: usize, opaque: u64) -> Result<Vec<DirName>, i32> {
    let mut buf = vec![0u8; len];
    let n = call::getdents(fd, &mut buf, opaque).map_err(|e| e.errno())?;
    parse_dirents(&buf[..n]).map_err(|e| e.errno)
}

fn irqs_listed(dir: &str) -> Vec<u8> {
    list_dir(&format!("{ROOT}/{dir}"))
        .expect("listing")
        .iter()
        .map(|n| n.parse().expect("decimal IRQ number"))
        .collect()
}

fn read_count(fd: usize) -> Result<Option<u64>, i32> {
    let mut b = [0u8; 8];
    match call::read(fd, &mut b).map_err(|e| e.errno())? {
        0 => Ok(None),
        8 => Ok(Some(u64::from_le_bytes(b))),
        n => panic!("an IRQ read returned {n} bytes"),
    }
}

/// `src/scheme/irq.rs` `kopen`: a non-root caller gets EACCES for every path,
/// before the path is parsed (so even a malformed one is EACCES, not ENOENT).
#[test]
fn opens_are_root_only_before_path_parsing() {
    let k = boot(2);
    let (_p, _g) = k.enter("user", Cred::USER);
    for (path, flags) in [
        ("", O_DIRECTORY),
        ("bsp", O_RDONLY),
        ("cpu-00", O_DIRECTORY),
        ("cpu-01/40", CREATE),
        ("5", O_RDWR),
        ("no-such-thing", O_RDONLY),
        ("cpu-", O_RDONLY),
    ] {
        assert_eq!(open(path, flags), Err(EACCES), "{path:?}");
    }
}

/// `src/scheme/irq.rs` `kopenat`: an open must be relative to the scheme root; relative
/// to a CPU directory (or any other irq handle) it is EACCES.
#[test]
fn openat_relative_to_anything_but_the_root_is_eacces() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let root = open("", O_DIRECTORY).expect("root");
    let via_root = call::openat(root, "cpu-01/40", CREATE, 0).expect("relative to the root");
    let dir = open("cpu-01", O_DIRECTORY).expect("cpu dir");
    assert_eq!(call::openat(dir, "41", CREATE, 0), err(EACCES));
    assert_eq!(call::openat(via_root, "x", O_RDONLY, 0), err(EACCES));
    assert!(
        !k.irq().is_reserved(1, 41),
        "nothing reserved by the refused open"
    );
}

/// `src/scheme/irq.rs` `kopen`: `cpu-` takes exactly two hex digits (either case);
/// anything after them must start with `/`. Short paths (which would panic the real
/// kernel) and CPUs without an IDT are refused with ENOENT by the mock.
#[test]
fn cpu_paths_take_exactly_two_hex_digits() {
    let k = boot(12);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    for bad in [
        "cpu-", "cpu-0", "cpu-001", "cpu-00x", "cpu-0g", "cpu-é", "cpu-ff", "bsp/", "cpu-0/",
    ] {
        assert_eq!(open(bad, O_DIRECTORY), Err(ENOENT), "{bad:?}");
    }
    for good in [
        "cpu-00", "cpu-00/", "/cpu-01", "cpu-0a", "cpu-0A", "cpu-0b//",
    ] {
        assert!(open(good, O_DIRECTORY).is_ok(), "{good:?}");
    }
    assert_eq!(open("cpu-001/40", CREATE), Err(ENOENT));
    assert!(
        open("cpu-0A/40", CREATE).is_ok(),
        "upper-case hex reserves too"
    );
    assert!(k.irq().is_reserved(10, 40));
}

/// `src/scheme/irq.rs` `kopen`: the top level needs O_DIRECTORY or O_STAT (EISDIR
/// otherwise), and `kreadoff` answers EISDIR on every directory: listings only come
/// from getdents.
#[test]
fn directories_are_listed_by_getdents_only() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    assert_eq!(open("", O_RDONLY), Err(EISDIR));
    assert!(open("", O_PATH).is_ok(), "O_STAT");
    let mut buf = [0u8; 256];
    for dir in [
        open("", O_DIRECTORY).expect("top"),
        open("cpu-00", O_RDONLY).expect("cpu-00"),
        open("cpu-01", O_DIRECTORY).expect("cpu-01"),
    ] {
        assert_eq!(call::read(dir, &mut buf), err(EISDIR));
    }
    // getdents on a file is ENOTDIR.
    let bsp = open("bsp", O_RDONLY).expect("bsp");
    assert_eq!(getdents(bsp, 512, 0), Err(ENOTDIR));
}

/// `src/scheme/irq.rs` `getdents`: the top level lists `bsp` (a character device)
/// and one `cpu-%02x` directory per CPU.
#[test]
fn top_level_lists_bsp_and_each_cpu() {
    let k = boot(12);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let top = open("", O_DIRECTORY).expect("top");
    let entries = getdents(top, 4096, 0).expect("getdents");
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let mut want = vec!["bsp".to_string()];
    want.extend((0..12).map(|c| format!("cpu-{c:02x}")));
    assert_eq!(names, want);
    assert_eq!(entries[0].kind, 2, "bsp is a character device");
    assert!(
        entries[1..].iter().all(|e| e.kind == 4),
        "CPUs are directories"
    );
}

/// `src/scheme/irq.rs` `getdents` over `src/arch/x86_shared/idt.rs`: a CPU lists its
/// free vectors of 32..=254 as decimal IRQ numbers; boot reserves exceptions, the IPIs
/// 0x40–0x43 and vector 49 everywhere, and 32–49 on the BSP, whose listing also hides
/// IRQs below 16. A reserved vector disappears from the listing; vector 255 (IRQ 223)
/// can be reserved but is never listed.
#[test]
fn cpu_listing_is_the_free_irq_numbers_of_its_idt() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let bsp: Vec<u8> = (18..=31).chain(36..=222).collect();
    let ap: Vec<u8> = (0..=16).chain(18..=31).chain(36..=222).collect();
    assert_eq!(irqs_listed("cpu-00"), bsp);
    assert_eq!(irqs_listed("cpu-01"), ap);
    let entries = getdents(open("cpu-01", O_DIRECTORY).expect("dir"), 8192, 0).expect("list");
    assert!(
        entries.iter().all(|e| e.kind == 2),
        "IRQs are character devices"
    );
    open("cpu-01/100", CREATE).expect("reserve");
    open("cpu-01/223", CREATE).expect("vector 255 can be reserved");
    assert!(!irqs_listed("cpu-01").contains(&100));
    assert_eq!(irqs_listed("cpu-00"), bsp, "other CPUs unaffected");
}

/// `src/scheme/irq.rs` `getdents`: an entry that does not fit fails the whole call with
/// EINVAL (relibc doubles its buffer), and a continuation skips `opaque` *entries*
/// although each entry's cookie is its vector + 1.
#[test]
fn getdents_fails_whole_and_continues_by_entries() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let dir = open("cpu-01", O_DIRECTORY).expect("dir");
    assert_eq!(
        getdents(dir, 512, 0),
        Err(EINVAL),
        "too small for the listing"
    );
    let all = getdents(dir, 8192, 0).expect("whole listing");
    assert_eq!(all[0].name, "0");
    assert_eq!(all[0].next_opaque_id, 33, "vector 32 + 1");
    // Continuing from the first entry's cookie skips 33 entries, not vectors < 33.
    let cont = getdents(dir, 8192, all[0].next_opaque_id).expect("continuation");
    assert_eq!(
        cont.first().map(|e| e.name.as_str()),
        Some(all[33].name.as_str())
    );
    // After the last entry's cookie there is nothing more.
    let last = all.last().expect("entries").next_opaque_id;
    assert_eq!(getdents(dir, 8192, last).expect("end"), Vec::new());
}

/// `src/scheme/irq.rs` `kopen`: a plain decimal number below 16 is a legacy handle
/// (Rust `u8::from_str`: `05` and `+5` too), shareable, reserving nothing; 16 and up,
/// or hex, is ENOENT. `cpu-<BSP>/N` with N < 16 is the same legacy handle.
#[test]
fn plain_numbers_below_16_are_shared_legacy_handles() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    for path in ["5", "05", "+5", "cpu-00/5", "5", "15"] {
        assert!(open(path, O_RDWR).is_ok(), "{path:?}");
    }
    for bad in ["16", "0x5", "-1", "300"] {
        assert_eq!(open(bad, O_RDWR), Err(ENOENT), "{bad:?}");
    }
    assert_eq!(
        k.irq().reserved_vectors(),
        0,
        "legacy opens reserve nothing"
    );
}

/// `src/scheme/irq.rs` `open_ext_irq`: `cpu-XX/N` (N ≥ 16, or any N on an AP) needs
/// O_CREAT (reserves) or O_STAT (does not), EINVAL without either; N ≥ 224 or not a
/// number is ENOENT.
#[test]
fn extended_irqs_need_o_creat_or_o_stat() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    assert_eq!(open("cpu-00/50", O_RDWR), Err(EINVAL));
    assert_eq!(open("cpu-01/5", O_RDWR), Err(EINVAL), "N < 16 on an AP");
    assert!(open("cpu-00/50", O_PATH).is_ok());
    assert!(!k.irq().is_reserved(0, 50), "O_STAT reserves nothing");
    assert!(open("cpu-00/50", CREATE).is_ok());
    assert!(k.irq().is_reserved(0, 50));
    assert!(open("cpu-01/5", CREATE).is_ok());
    assert!(k.irq().is_reserved(1, 5));
    for bad in ["cpu-00/224", "cpu-00/abc", "cpu-00/0x20", "cpu-00/"] {
        let r = open(bad, CREATE);
        if bad == "cpu-00/" {
            assert!(r.is_ok(), "a trailing slash is the directory");
        } else {
            assert_eq!(r, Err(ENOENT), "{bad:?}");
        }
    }
}

/// `src/scheme/irq.rs` `open_ext_irq`: O_EXCL is never looked at — with O_CREAT it
/// reserves a free vector and meets EEXIST on a taken one exactly as O_CREAT alone;
/// without O_CREAT it is still EINVAL.
#[test]
fn o_excl_is_ignored() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    assert_eq!(open("cpu-01/60", O_RDWR | O_EXCL), Err(EINVAL));
    assert!(open("cpu-01/60", CREATE | O_EXCL).is_ok());
    assert_eq!(open("cpu-01/60", CREATE | O_EXCL), Err(EEXIST));
    assert_eq!(open("cpu-01/60", CREATE), Err(EEXIST));
    assert!(open("cpu-01/61", CREATE).is_ok());
    assert_eq!(open("cpu-01/61", CREATE | O_EXCL), Err(EEXIST));
}

/// `src/scheme/irq.rs` `kreadoff`: `bsp` writes a u32 (the BSP's APIC id) and reports
/// 8 bytes, leaving the rest of the buffer as it was; under 8 bytes is EINVAL.
#[test]
fn bsp_reads_a_u32_but_reports_8() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let bsp = open("bsp", O_RDONLY).expect("bsp");
    let mut b = [0xFFu8; 8];
    assert_eq!(call::read(bsp, &mut b), Ok(8));
    assert_eq!(b, [0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(call::read(bsp, &mut b[..4]), err(EINVAL));
    assert_eq!(
        call::write(bsp, &b),
        err(EBADF),
        "only IRQ handles take writes"
    );
}

/// `src/scheme/irq.rs` `kreadoff`: an IRQ read returns the 8-byte count when it differs
/// from the handle's acknowledged count and 0 at once otherwise — never blocking and
/// never EAGAIN, with or without O_NONBLOCK; under 8 bytes is EINVAL.
#[test]
fn irq_reads_never_block_and_never_eagain() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let blocking = open("cpu-01/40", CREATE).expect("reserve");
    let nonblocking = open("cpu-00/40", CREATE | O_NONBLOCK).expect("reserve");
    for fd in [blocking, nonblocking] {
        assert_eq!(read_count(fd), Ok(None), "nothing fired: 0 bytes at once");
    }
    assert!(k.irq().raise(1, 40));
    assert_eq!(read_count(blocking), Ok(Some(1)));
    assert_eq!(read_count(blocking), Ok(Some(1)), "until acknowledged");
    let mut small = [0u8; 7];
    assert_eq!(call::read(blocking, &mut small), err(EINVAL));
    // A new handle starts with ack 0: it sees the IRQ number's count at once.
    let fresh = open("cpu-01/40", O_PATH).expect("O_STAT handle of the same IRQ");
    assert_eq!(read_count(fresh), Ok(Some(1)));
}

/// `src/scheme/irq.rs` `kwrite`: a write acknowledges only when it equals the current
/// count (returns 8); any other value returns 0 and changes nothing; under 8 bytes is
/// EINVAL.
#[test]
fn a_write_acknowledges_only_the_current_count() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let fd = open("cpu-01/70", CREATE).expect("reserve");
    k.irq().raise(1, 70);
    k.irq().raise(1, 70);
    assert_eq!(read_count(fd), Ok(Some(2)));
    assert_eq!(call::write(fd, &1u64.to_le_bytes()), Ok(0), "stale count");
    assert_eq!(call::write(fd, &3u64.to_le_bytes()), Ok(0), "future count");
    assert_eq!(read_count(fd), Ok(Some(2)), "still pending");
    assert_eq!(call::write(fd, &[2, 0, 0]), err(EINVAL));
    assert_eq!(call::write(fd, &2u64.to_le_bytes()), Ok(8));
    assert_eq!(read_count(fd), Ok(None));
}

/// `src/scheme/irq.rs` `irq_trigger`: one counter per IRQ number, shared by every CPU;
/// a trigger posts EVENT_READ to every handle of that number, whatever its CPU.
#[test]
fn counters_and_events_are_per_irq_number_across_cpus() {
    let k = boot(3);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let on1 = open("cpu-01/80", CREATE).expect("cpu-01");
    let on2 = open("cpu-02/80", CREATE).expect("cpu-02");
    let queue = EventQueue::<usize>::new().expect("queue");
    queue.subscribe(on1, 1, EventFlags::READ).expect("sub");
    queue.subscribe(on2, 2, EventFlags::READ).expect("sub");
    assert!(k.irq().raise(2, 80));
    let mut got = [
        queue.next_event().expect("event").user_data,
        queue.next_event().expect("event").user_data,
    ];
    got.sort_unstable();
    assert_eq!(got, [1, 2], "both handles of IRQ 80 hear CPU 2's interrupt");
    assert_eq!(read_count(on1), Ok(Some(1)));
    assert_eq!(read_count(on2), Ok(Some(1)));
    assert_eq!(k.irq().count(80), 1);
}

/// `src/arch/x86_shared/interrupt/irq.rs`: a generic (MSI) vector is EOI'd at once and
/// keeps counting without any acknowledgement; a legacy line is masked when it fires
/// and stays masked (its edges lost) until a successful ack; lines 0–4 and 12 and the
/// kernel's own vectors (IPIs, LAPIC timer/error) never reach the scheme.
#[test]
fn msi_vectors_keep_counting_and_legacy_lines_wait_for_the_ack() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let msi = open("cpu-01/90", CREATE).expect("msi");
    for _ in 0..3 {
        assert!(k.irq().raise(1, 90));
    }
    assert_eq!(
        read_count(msi),
        Ok(Some(3)),
        "no ack needed to keep counting"
    );

    let line = open("11", O_RDWR).expect("legacy 11");
    assert!(k.irq().raise_legacy(11));
    assert!(k.irq().is_legacy_masked(11));
    assert!(!k.irq().raise_legacy(11), "lost while masked");
    assert_eq!(read_count(line), Ok(Some(1)));
    assert_eq!(
        call::write(line, &0u64.to_le_bytes()),
        Ok(0),
        "stale: stays masked"
    );
    assert!(k.irq().is_legacy_masked(11));
    assert_eq!(call::write(line, &1u64.to_le_bytes()), Ok(8));
    assert!(!k.irq().is_legacy_masked(11), "the ack unmasks");
    assert!(k.irq().raise_legacy(11));
    assert_eq!(read_count(line), Ok(Some(2)));

    let pit = open("0", O_RDWR).expect("legacy 0");
    assert!(!k.irq().raise_legacy(0));
    assert!(!k.irq().raise_legacy(12));
    assert_eq!(read_count(pit), Ok(None), "the kernel owns the PIT");
    let ipi = open("cpu-01/32", O_PATH).expect("stat handle of IRQ 32");
    assert!(!k.irq().raise(1, 32), "vector 0x40 is an IPI");
    assert_eq!(read_count(ipi), Ok(None));
}

/// `src/scheme/irq.rs` `fevent` (always empty) with `src/event.rs`: subscribing after
/// an interrupt fired posts nothing, so only an explicit read sees it.
#[test]
fn subscribing_reports_nothing_that_already_fired() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let early = open("cpu-01/100", CREATE).expect("early");
    let later = open("cpu-01/101", CREATE).expect("later");
    assert!(k.irq().raise(1, 100));
    let queue = EventQueue::<usize>::new().expect("queue");
    queue.subscribe(early, 100, EventFlags::READ).expect("sub");
    queue.subscribe(later, 101, EventFlags::READ).expect("sub");
    assert!(k.irq().raise(1, 101));
    assert_eq!(
        queue.next_event().expect("event").user_data,
        101,
        "no event was queued for the interrupt before the subscription"
    );
    assert_eq!(read_count(early), Ok(Some(1)), "but a read sees it");
}

/// `src/scheme/irq.rs`: there is no affinity file (nor any other IRQ affinity
/// interface); such paths are ENOENT.
#[test]
fn there_is_no_affinity_path() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    open("cpu-00/50", CREATE).expect("reserve");
    for flags in [O_RDWR, CREATE, O_PATH] {
        assert_eq!(open("cpu-00/50/affinity", flags), Err(ENOENT));
        assert_eq!(open("cpu-00/51/affinity", flags), Err(ENOENT));
    }
}

/// `src/scheme/irq.rs` `close` with `src/arch/x86_shared/idt.rs` `set_reserved`
/// (`fetch_or`): on x86 a closed vector is never released — reopening is EEXIST and
/// it never comes back into the listing, whatever its CPU or number.
#[test]
fn a_closed_vector_is_never_released() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    for path in ["cpu-00/60", "cpu-01/60", "cpu-01/16", "cpu-01/5"] {
        let fd = open(path, CREATE).expect("reserve");
        call::close(fd).expect("close");
        assert_eq!(open(path, CREATE), Err(EEXIST), "{path}");
    }
    assert!(!irqs_listed("cpu-00").contains(&60));
    assert!(!irqs_listed("cpu-01").contains(&60));
    assert_eq!(k.irq().reserved_vectors(), 4);
}

/// `src/scheme/irq.rs` `kfpath`: the old colon format — `irq:N` without the CPU,
/// `irq:bsp`, `irq:cpu-` plus a space-padded `{:2x}`, and `irq:` for the top level.
#[test]
fn fpath_uses_the_old_colon_format() {
    let k = boot(12);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let path = |fd: usize| {
        let mut b = [0u8; 64];
        let n = call::fpath(fd, &mut b).expect("fpath");
        String::from_utf8_lossy(&b[..n]).into_owned()
    };
    assert_eq!(path(open("cpu-03/77", CREATE).expect("irq")), "irq:77");
    assert_eq!(path(open("5", O_RDWR).expect("legacy")), "irq:5");
    assert_eq!(path(open("bsp", O_RDONLY).expect("bsp")), "irq:bsp");
    assert_eq!(
        path(open("cpu-01", O_DIRECTORY).expect("dir")),
        "irq:cpu- 1"
    );
    assert_eq!(
        path(open("cpu-0b", O_DIRECTORY).expect("dir")),
        "irq:cpu- b"
    );
    assert_eq!(path(open("", O_DIRECTORY).expect("top")), "irq:");
}

/// `src/scheme/irq.rs` `kfstat`: IRQ handles MODE_CHR|0600, size 8, inode = IRQ
/// number; `bsp` MODE_CHR|0400; a CPU directory MODE_DIR|0700; the top MODE_DIR|0500
/// (Redox `MODE_*` bits equal Linux `S_IF*`, so the host `stat` carries them as is).
#[test]
fn fstat_modes_sizes_and_inodes() {
    let k = boot(2);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let stat = |fd: usize| call::fstat(fd).expect("fstat");
    let irq = stat(open("cpu-01/42", CREATE).expect("irq"));
    assert_eq!(
        (irq.st_mode, irq.st_size, irq.st_ino),
        (u32::from(MODE_CHR | 0o600), 8, 42)
    );
    let bsp = stat(open("bsp", O_RDONLY).expect("bsp"));
    assert_eq!(bsp.st_mode, u32::from(MODE_CHR | 0o400));
    let dir = stat(open("cpu-01", O_DIRECTORY).expect("dir"));
    assert_eq!(dir.st_mode, u32::from(MODE_DIR | 0o700));
    let top = stat(open("", O_DIRECTORY).expect("top"));
    assert_eq!(top.st_mode, u32::from(MODE_DIR | 0o500));
}
