//! redox-real.md §6: the `acpi` scheme (base `drivers/acpid/src/scheme.rs`), and the
//! IVRS the simulated firmware publishes through it.

use std::sync::Arc;

use driver_sys::pci::PciAddress;
use libredox::call;
use libredox::error::Error;
use libredox::flag;
use redox_host::hw::amdvi::SimAmdVi;
use redox_host::hw::ivrs::{AMDVI_MMIO_BASE, IVRS_HEADER_LENGTH};
use redox_host::hw::pci_function::{SimFunctionSpec, SimPciFunction};
use redox_host::mock::acpi::checksum_ok;
use redox_host::{Cred, Kernel, MachineConfig};
use syscall::dirent::{DirentIter, DirentKind};
use syscall::error::{EBADFD, EINVAL, EISDIR, ENOENT, ENOTDIR, EPERM};
use syscall::flag::{MODE_DIR, MODE_FILE, MODE_TYPE};

fn err(errno: i32) -> Error {
    Error::new(errno)
}

/// Names in a directory, by getdents (one call with a buffer that holds them all).
fn list(path: &str) -> Vec<(String, u8)> {
    let fd = call::open(path, flag::O_RDONLY | flag::O_DIRECTORY, 0).expect("open dir");
    let mut buf = vec![0u8; 8192];
    let n = call::getdents(fd, &mut buf, 0).expect("getdents");
    call::close(fd).expect("close");
    DirentIter::new(&buf[..n])
        .map(|e| e.expect("well-formed record"))
        .map(|(h, name)| {
            // The record's name is NUL-terminated and padded to the record length.
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            (String::from_utf8_lossy(name).into_owned(), h.kind)
        })
        .collect()
}

/// The bytes of a file, read in small pieces (the handle keeps the offset).
fn read_all(path: &str) -> Vec<u8> {
    let fd = call::open(path, flag::O_RDONLY, 0).expect("open table");
    let mut out = Vec::new();
    let mut chunk = [0u8; 50];
    loop {
        let n = call::read(fd, &mut chunk).expect("read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    call::close(fd).expect("close");
    out
}

fn ivrs_path() -> String {
    let name = list("/scheme/acpi/tables")
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| n.starts_with("IVRS-"))
        .expect("an IVRS is listed");
    format!("/scheme/acpi/tables/{name}")
}

/// A machine with two functions 00:03.0 and 00:1f.0..=00:1f.2, an AMD-Vi unit, and a
/// firmware-reserved range.
fn amd_machine() -> (Arc<Kernel>, Arc<SimAmdVi>) {
    let k = Kernel::boot_with(MachineConfig {
        reserved_memory: Some((0xD000_0000, 0x10_0000)),
        ..MachineConfig::default()
    });
    for addr in [
        PciAddress::new(0, 3, 0),
        PciAddress::new(0, 0x1f, 0),
        PciAddress::new(0, 0x1f, 1),
        PciAddress::new(0, 0x1f, 2),
    ] {
        let f = SimPciFunction::new(&k, SimFunctionSpec::dsmil_like(addr, 1)).expect("function");
        k.pci().add_function(f).expect("plug in");
    }
    let unit = SimAmdVi::new(&k);
    (k, unit)
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// base `drivers/acpid/src/scheme.rs` (`getdents`): the top level lists `tables` and
/// `symbols`; `tables` one `SIG-<12 hex>-<16 hex>` name per table, uppercase.
#[test]
fn tables_are_listed_by_getdents_with_uppercase_hex_names() {
    let (k, _unit) = amd_machine();
    k.acpi()
        .publish(*b"TEST", *b"ab\x01\x02\xfe\xff", *b"table_id", &[1, 2, 3])
        .expect("publish");
    let (_p, _g) = k.enter("reader", Cred::USER);
    let top = list("/scheme/acpi");
    assert_eq!(
        top,
        vec![
            ("tables".to_string(), DirentKind::Directory as u8),
            ("symbols".to_string(), DirentKind::Directory as u8),
        ]
    );
    let names: Vec<String> = list("/scheme/acpi/tables")
        .into_iter()
        .map(|(n, kind)| {
            assert_eq!(kind, DirentKind::Regular as u8);
            n
        })
        .collect();
    assert!(names.contains(&"TEST-616201 02FEFF-7461626C655F6964".replace(' ', "")));
    assert!(names.iter().all(|n| n.len() == 34), "{names:?}");
}

/// base `drivers/acpid/src/scheme.rs` (`openat`, `read`): a directory opened without
/// `O_DIRECTORY` is `EISDIR`, a table opened with it `ENOTDIR`; `read` on a directory
/// handle is `EINVAL` (acpid's read only serves tables and symbols).
#[test]
fn directory_rules() {
    let (k, _unit) = amd_machine();
    let (_p, _g) = k.enter("reader", Cred::USER);
    assert_eq!(
        call::open("/scheme/acpi/tables", flag::O_RDONLY, 0),
        Err(err(EISDIR))
    );
    let path = ivrs_path();
    assert_eq!(
        call::open(&path, flag::O_RDONLY | flag::O_DIRECTORY, 0),
        Err(err(ENOTDIR))
    );
    let dir =
        call::open("/scheme/acpi/tables", flag::O_RDONLY | flag::O_DIRECTORY, 0).expect("dir");
    let mut b = [0u8; 16];
    assert_eq!(call::read(dir, &mut b), Err(err(EINVAL)));
    assert_eq!(
        call::fstat(dir).map(|s| s.st_mode as u16 & MODE_TYPE),
        Ok(MODE_DIR)
    );
}

/// base `drivers/acpid/src/scheme.rs` (`parse_table`): a name must be exactly 34 bytes
/// with dashes at 4 and 17 and hex digits of either case, otherwise `ENOENT`; a
/// well-formed name of a table that does not exist opens, and reading it is `EBADFD`.
#[test]
fn table_names_are_34_bytes_of_either_case() {
    let (k, _unit) = amd_machine();
    let (_p, _g) = k.enter("reader", Cred::USER);
    let path = ivrs_path();
    let table = read_all(&path);
    assert_eq!(
        read_all(&path.to_lowercase().replace("ivrs", "IVRS")),
        table
    );
    assert_eq!(
        call::open(&path[..path.len() - 1], flag::O_RDONLY, 0),
        Err(err(ENOENT))
    );
    assert_eq!(
        call::open(format!("{path}0"), flag::O_RDONLY, 0),
        Err(err(ENOENT))
    );
    assert_eq!(
        call::open(path.replace("IVRS-", "IVRS_"), flag::O_RDONLY, 0),
        Err(err(ENOENT))
    );
    let missing = call::open(
        "/scheme/acpi/tables/NONE-000000000000-0000000000000000",
        flag::O_RDONLY,
        0,
    )
    .expect("any well-formed name opens");
    let mut b = [0u8; 4];
    assert_eq!(call::read(missing, &mut b), Err(err(EBADFD)));
}

/// base `drivers/acpid/src/scheme.rs` (`read`, `fstat`): reading returns the raw table,
/// header included; `fstat` gives its length and `MODE_FILE`.
#[test]
fn a_table_reads_raw_with_its_header_and_fstat_size() {
    let (k, _unit) = amd_machine();
    let (_p, _g) = k.enter("reader", Cred::USER);
    let path = ivrs_path();
    let table = read_all(&path);
    assert_eq!(&table[..4], b"IVRS");
    let len = u32::from_le_bytes(table[4..8].try_into().expect("4")) as usize;
    assert_eq!(len, table.len());
    assert!(checksum_ok(&table), "the bytes sum to 0");
    let fd = call::open(&path, flag::O_RDONLY, 0).expect("open");
    let st = call::fstat(fd).expect("fstat");
    assert_eq!(st.st_size as usize, table.len());
    assert_eq!(st.st_mode as u16 & MODE_TYPE, MODE_FILE);
}

/// base `drivers/acpid/src/scheme.rs` (`openat`): `O_RDONLY` is for anyone; any other
/// access mode needs uid 0 and is `EINVAL` otherwise; writes are `EBADF`, and `call`
/// on a table handle opened read-only is `EPERM`.
#[test]
fn read_only_for_anyone_other_modes_need_root() {
    let (k, _unit) = amd_machine();
    let path = {
        let (_p, _g) = k.enter("reader", Cred::USER);
        let path = ivrs_path();
        assert_eq!(call::open(&path, flag::O_RDWR, 0), Err(err(EINVAL)));
        assert_eq!(call::open(&path, flag::O_WRONLY, 0), Err(err(EINVAL)));
        let fd = call::open(&path, flag::O_RDONLY, 0).expect("read-only is fine");
        let mut b = [0u8; 8];
        assert_eq!(
            call::call_ro(fd, &mut b, syscall::CallFlags::empty(), &[]),
            Err(err(EPERM))
        );
        path
    };
    let (_p, _g) = k.enter("root", Cred::ROOT);
    let fd = call::open(&path, flag::O_RDWR, 0).expect("root may");
    assert_eq!(call::write(fd, b"x"), Err(err(syscall::error::EBADF)));
}

/// The simulated machine's IVRS (AMD IOMMU spec 48882; Linux
/// `drivers/iommu/amd/init.c` offsets): IVHD types 0x10 and 0x11 for the unit with
/// its register base and DeviceID, device entries for every PCI function (RANGE for
/// consecutive requester ids, SELECT otherwise), and an IVMD unity range for the
/// firmware-reserved memory.
#[test]
fn the_ivrs_describes_the_machine() {
    let (k, unit) = amd_machine();
    let (_p, _g) = k.enter("reader", Cred::USER);
    let t = read_all(&ivrs_path());
    assert_eq!(t[8], 2, "revision 2 (type 0x11 IVHDs)");
    let mut at = IVRS_HEADER_LENGTH;
    let mut seen = Vec::new();
    while at < t.len() {
        let kind = t[at];
        let len = usize::from(u16_at(&t, at + 2));
        assert!(len > 0 && at + len <= t.len());
        seen.push(kind);
        match kind {
            0x10 | 0x11 => {
                assert_eq!(u16_at(&t, at + 4), unit.placement().device_id);
                assert_eq!(u16_at(&t, at + 4), 0x0002, "00:00.2, where AMD puts it");
                assert_eq!(u64_at(&t, at + 8), AMDVI_MMIO_BASE);
                assert_eq!(u64_at(&t, at + 8), unit.placement().mmio_base);
                let header = if kind == 0x10 { 24 } else { 40 };
                let entries = &t[at + header..at + len];
                assert_eq!(
                    entries,
                    &[
                        2, 0x18, 0, 0, // SELECT 00:03.0
                        3, 0xF8, 0, 0, // RANGE 00:1f.0 ..
                        4, 0xFA, 0, 0, // .. 00:1f.2
                    ]
                );
            }
            0x20 => {
                assert_eq!(t[at + 1] & 0b111, 0b111, "unity, readable, writable");
                assert_eq!(u64_at(&t, at + 16), 0xD000_0000);
                assert_eq!(u64_at(&t, at + 24), 0x10_0000);
            }
            other => panic!("unexpected IVRS block {other:#x}"),
        }
        at += len;
    }
    assert_eq!(seen, vec![0x10, 0x11, 0x20]);
}

/// The IVRS follows the machine: a function plugged in later is listed, and a machine
/// without an AMD-Vi unit has no IVRS at all.
#[test]
fn the_ivrs_is_built_from_the_current_layout() {
    let k = Kernel::boot();
    {
        let (_p, _g) = k.enter("reader", Cred::USER);
        assert!(list("/scheme/acpi/tables").is_empty(), "no unit, no IVRS");
    }
    let _unit = SimAmdVi::new(&k);
    let f = SimPciFunction::new(&k, SimFunctionSpec::dsmil_like(PciAddress::new(0, 5, 0), 1))
        .expect("function");
    k.pci().add_function(f).expect("plug in");
    let (_p, _g) = k.enter("reader", Cred::USER);
    let t = read_all(&ivrs_path());
    let ivhd = IVRS_HEADER_LENGTH;
    assert_eq!(&t[ivhd + 24..ivhd + 28], &[2, 0x28, 0, 0], "SELECT 00:05.0");
}
