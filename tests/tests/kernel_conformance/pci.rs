//! redox-real.md §4: pcid's `pci` scheme (base `drivers/pcid/src/scheme.rs`, with
//! `enable_function` in `drivers/pcid/src/main.rs` and the client in
//! `drivers/pcid/src/driver_interface/mod.rs`). Each test names the file it checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use driver_sys::memory::MemoryType;
use driver_sys::pci::pcid_wire::{
    self, PciFeature, PcidClientRequest, PcidClientResponse, SubdriverArguments,
};
use driver_sys::pci::{PciAddress, PciFunction, bar_mmap_offset};
use libredox::call::{self, MmapArgs};
use libredox::flag;
use redox_host::hw::pci_function::{
    MSI_CAP_OFFSET, MSIX_CAP_OFFSET, SimFunctionSpec, SimPciFunction,
};
use redox_host::kernel::kscheme::{Caller, KernelScheme};
use redox_host::{Cred, Kernel};
use syscall::CallFlags;
use syscall::dirent::DirentIter;
use syscall::error::{EACCES, EINVAL, EISDIR, ENOENT, ENOLCK, ENOTDIR, Error, Result};

const ADDR: PciAddress = PciAddress::new(0, 0x1f, 2);

fn channel_path() -> String {
    format!("/scheme/pci/{}/channel", ADDR.scheme_name())
}

fn machine() -> (Arc<Kernel>, Arc<SimPciFunction>) {
    let k = Kernel::boot();
    let f = SimPciFunction::new(&k, SimFunctionSpec::dsmil_like(ADDR, 4)).expect("function");
    k.pci().add_function(f.clone()).expect("plug in");
    (k, f)
}

fn open(path: &str, flags: i32) -> core::result::Result<usize, i32> {
    call::open(path, flags, 0).map_err(|e| e.errno())
}

fn names(fd: usize) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = call::getdents(fd, &mut buf, 0).expect("getdents");
    DirentIter::new(&buf[..n])
        .map(|e| e.expect("record"))
        .map(|(_, name)| {
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(name).into_owned()
        })
        .collect()
}

/// One raw exchange: `request` written as is, the answer read as length + body.
fn exchange(fd: usize, request: &[u8]) -> PcidClientResponse {
    assert_eq!(call::write(fd, request), Ok(request.len()));
    let mut len = [0u8; 8];
    assert_eq!(call::read(fd, &mut len), Ok(8));
    let len = u64::from_le_bytes(len) as usize;
    let mut body = vec![0u8; len];
    assert_eq!(call::read(fd, &mut body), Ok(len));
    pcid_wire::decode(&body).expect("decodes")
}

/// base `drivers/pcid/src/scheme.rs` (`openat`, `getdents`, `read`): the top level
/// lists functions as `ssss--bb--dd.f`, a function's directory lists `channel`;
/// directories need `O_DIRECTORY` (`EISDIR`), a file refuses a trailing `/`
/// (`ENOTDIR`), and `read` on a directory is `EISDIR`.
#[test]
fn layout_and_directory_rules() {
    let (k, _f) = machine();
    let (_p, _g) = k.enter("pcid-spawner", Cred::ROOT);
    let top = open("/scheme/pci", flag::O_RDONLY | flag::O_DIRECTORY).expect("top");
    assert_eq!(names(top), vec!["0000--00--1f.2".to_string()]);
    let mut b = [0u8; 8];
    assert_eq!(call::read(top, &mut b).map_err(|e| e.errno()), Err(EISDIR));
    assert_eq!(open("/scheme/pci", flag::O_RDONLY), Err(EISDIR));
    let dir = open("/scheme/pci/0000--00--1f.2/", flag::O_RDONLY).expect("a trailing / is a dir");
    assert_eq!(names(dir), vec!["channel".to_string()]);
    assert_eq!(
        open(
            "/scheme/pci/0000--00--1f.3",
            flag::O_RDONLY | flag::O_DIRECTORY
        ),
        Err(ENOENT)
    );
    assert_eq!(
        open(
            "/scheme/pci/0000--00--1f.2x",
            flag::O_RDONLY | flag::O_DIRECTORY
        ),
        Err(ENOENT)
    );
    assert_eq!(
        open(&format!("{}/", channel_path()), flag::O_RDWR),
        Err(ENOTDIR)
    );
}

/// base `drivers/pcid/src/scheme.rs` (`requires_root`): `channel` and `access` need
/// uid 0 (`EACCES`).
#[test]
fn channel_and_access_are_root_only() {
    let (k, _f) = machine();
    let (_p, _g) = k.enter("user", Cred::USER);
    assert_eq!(open("/scheme/pci/access", flag::O_RDWR), Err(EACCES));
    assert_eq!(open(&channel_path(), flag::O_RDWR), Err(EACCES));
    let top = open("/scheme/pci", flag::O_RDONLY | flag::O_DIRECTORY).expect("listing is open");
    assert_eq!(names(top).len(), 1);
}

/// base `drivers/pcid/src/scheme.rs` (`parse_after_pci_addr` runs before the uid
/// check): a refused channel open has already enabled and taken the function, so the
/// next open is `ENOLCK` — upstream's behaviour, copied.
#[test]
fn a_refused_channel_open_still_takes_the_function() {
    let (k, f) = machine();
    {
        let (_p, _g) = k.enter("user", Cred::USER);
        assert_eq!(open(&channel_path(), flag::O_RDWR), Err(EACCES));
    }
    assert!(
        f.config_read_u32(0x04).expect("cmd") & 0b100 != 0,
        "bus master on"
    );
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    assert_eq!(open(&channel_path(), flag::O_RDWR), Err(ENOLCK));
}

/// base `drivers/pcid/src/scheme.rs`: a second open of a function's channel while one
/// is open is `ENOLCK`; closing it (`on_close`) frees the function again.
#[test]
fn a_second_channel_is_enolck_until_the_first_closes() {
    let (k, _f) = machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let first = open(&channel_path(), flag::O_RDWR).expect("first");
    assert_eq!(open(&channel_path(), flag::O_RDWR), Err(ENOLCK));
    call::close(first).expect("close");
    assert!(open(&channel_path(), flag::O_RDWR).is_ok());
}

/// base `drivers/pcid/src/main.rs` (`enable_function`, run by opening a channel): bus
/// mastering, memory and I/O decode on; MSI and MSI-X off; an INTx line of 0xFF
/// becomes 9.
#[test]
fn opening_a_channel_enables_the_function_and_disables_msi() {
    let (k, f) = machine();
    let mut spec = SimFunctionSpec::dsmil_like(PciAddress::new(0, 4, 0), 1);
    spec.intx_line = None;
    let no_line = SimPciFunction::new(&k, spec).expect("function");
    k.pci().add_function(no_line.clone()).expect("plug in");
    // A previous driver left both interrupt modes on and decoding off.
    let msi = u16::from(MSI_CAP_OFFSET);
    let msix = u16::from(MSIX_CAP_OFFSET);
    f.config_write_u32(0x04, 0).expect("cmd");
    let v = f.config_read_u32(msi).expect("msi");
    f.config_write_u32(msi, v | 1 << 16).expect("msi on");
    let v = f.config_read_u32(msix).expect("msix");
    f.config_write_u32(msix, v | 1 << 31).expect("msix on");
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let _fd = open(&channel_path(), flag::O_RDWR).expect("channel");
    assert_eq!(f.config_read_u32(0x04).expect("cmd") & 0b111, 0b111);
    assert_eq!(f.config_read_u32(msi).expect("msi") & 1 << 16, 0);
    assert_eq!(f.config_read_u32(msix).expect("msix") & 1 << 31, 0);
    assert_eq!(no_line.config_read_u32(0x3C).expect("intr") & 0xFF, 0xFF);
    let path = format!(
        "/scheme/pci/{}/channel",
        PciAddress::new(0, 4, 0).scheme_name()
    );
    let _other = open(&path, flag::O_RDWR).expect("channel");
    assert_eq!(no_line.config_read_u32(0x3C).expect("intr") & 0xFF, 9);
}

/// base `drivers/pcid/src/scheme.rs` (`write_channel`) and
/// `drivers/pcid/src/driver_interface/mod.rs` (`send`/`recv`): a request is one write of
/// the bare bincode-1 bytes, no length prefix; the answer is a u64-LE length and the
/// body. A length-prefixed request is read as a different request.
#[test]
fn requests_have_no_prefix_responses_a_u64_length() {
    let (k, _f) = machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let fd = open(&channel_path(), flag::O_RDWR).expect("channel");
    match exchange(fd, &[1, 0, 0, 0]) {
        PcidClientResponse::Config(SubdriverArguments { func }) => {
            assert_eq!(func.addr, ADDR);
            assert_eq!(func.rom, None);
            assert_eq!(func.legacy_interrupt_line.map(|l| l.irq), Some(11));
        }
        other => panic!("{other:?}"),
    }
    // [len = 4][RequestConfig] reads as variant 4 (EnableFeature) of feature 0 (MSI).
    let mut prefixed = 4u64.to_le_bytes().to_vec();
    prefixed.extend_from_slice(&[1, 0, 0, 0]);
    assert_eq!(
        exchange(fd, &prefixed),
        PcidClientResponse::FeatureEnabled(PciFeature::Msi)
    );
}

/// base `drivers/pcid/src/scheme.rs` (`ChannelState`): one exchange at a time — a write
/// while an answer is unread, or a read with none waiting, is `EINVAL`; undecodable
/// bytes are `EINVAL`.
#[test]
fn one_exchange_at_a_time() {
    let (k, _f) = machine();
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let fd = open(&channel_path(), flag::O_RDWR).expect("channel");
    let einval = Err(libredox::error::Error::new(EINVAL));
    let mut b = [0u8; 16];
    assert_eq!(call::read(fd, &mut b), einval);
    assert_eq!(call::write(fd, &[0xFF; 4]), einval);
    let req = pcid_wire::encode(&PcidClientRequest::ReadConfig(0)).expect("encode");
    assert_eq!(call::write(fd, &req), Ok(req.len()));
    assert_eq!(call::write(fd, &req), einval);
}

/// pcid after base `e9fd66c7` (`mmap_prep` on a channel): BAR index in offset bits
/// 63–61, memory type in 60–59; the mapping is the BAR. The kernel's `physical@`
/// (`src/scheme/memory.rs`) maps the same BAR by address.
#[test]
fn bars_map_through_the_channel_and_through_physical() {
    let (k, f) = machine();
    let (bar0, size0) = f.bar(0).expect("BAR0");
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let fd = open(&channel_path(), flag::O_RDWR).expect("channel");
    let map = |offset: u64, len: usize| {
        // SAFETY: a fresh shared mapping chosen by the kernel.
        unsafe {
            call::mmap(MmapArgs {
                addr: core::ptr::null_mut(),
                length: len,
                prot: flag::PROT_READ | flag::PROT_WRITE,
                flags: flag::MAP_SHARED,
                fd,
                offset,
            })
        }
        .map(|p| p as usize)
        .map_err(|e| e.errno())
    };
    let off = bar_mmap_offset(0, MemoryType::Uncacheable, 0).expect("offset");
    assert_eq!(off, 1 << 59);
    let virt = map(off, size0 as usize).expect("BAR0 through the channel");
    // SAFETY: BAR0 is mapped, 16 KiB.
    unsafe { (virt as *mut u32).add(2).write_volatile(0xB0B0_CAFE) };
    assert_eq!(
        k.phys().read_u64(bar0 + 8).map(|v| v as u32),
        Some(0xB0B0_CAFE)
    );
    assert_eq!(map(6 << 61, 4096), Err(EINVAL), "no BAR 6");
    assert_eq!(map(1 << 61, 4096), Err(EINVAL), "BAR 1 is not implemented");
    assert_eq!(map(size0, 4096), Err(EINVAL), "past the end of BAR0");
    let phys = open("/scheme/memory/physical@uc", flag::O_RDWR).expect("physical");
    // SAFETY: as above.
    let by_addr = unsafe {
        call::mmap(MmapArgs {
            addr: core::ptr::null_mut(),
            length: 4096,
            prot: flag::PROT_READ | flag::PROT_WRITE,
            flags: flag::MAP_SHARED,
            fd: phys,
            offset: bar0,
        })
    }
    .expect("physmap of the BAR");
    // SAFETY: one mapped page.
    assert_eq!(
        unsafe { (by_addr as *const u32).add(2).read_volatile() },
        0xB0B0_CAFE
    );
}

/// base `drivers/pcid/src/scheme.rs` (`call` on `access`): metadata[0] 1 read / 2
/// write, metadata[1] the packed address; the payload is read or written at any
/// offset and length; an absent function reads as all ones.
#[test]
fn access_reads_and_writes_config_space_by_call() {
    let (k, f) = machine();
    let (_p, _g) = k.enter("pcid", Cred::ROOT);
    let fd = open("/scheme/pci/access", flag::O_RDWR).expect("access");
    let addr = |a: PciAddress, off: u64| {
        (u64::from(a.segment) << 28)
            | (u64::from(a.bus) << 20)
            | (u64::from(a.device) << 15)
            | (u64::from(a.function) << 12)
            | off
    };
    let mut id = [0u8; 4];
    assert_eq!(
        call::call_ro(fd, &mut id, CallFlags::empty(), &[1, addr(ADDR, 0)]),
        Ok(4)
    );
    assert_eq!(u32::from_le_bytes(id), 0xD511_1028);
    let mut dev = [0u8; 2];
    call::call_ro(fd, &mut dev, CallFlags::empty(), &[1, addr(ADDR, 2)]).expect("unaligned");
    assert_eq!(u16::from_le_bytes(dev), 0xD511);
    let line = [5u8];
    call::call_wo(fd, &line, CallFlags::empty(), &[2, addr(ADDR, 0x3C)]).expect("write");
    assert_eq!(f.config_read_u32(0x3C).expect("intr") & 0xFF, 5);
    let mut absent = [0u8; 4];
    call::call_ro(
        fd,
        &mut absent,
        CallFlags::empty(),
        &[1, addr(PciAddress::new(0, 9, 0), 0)],
    )
    .expect("absent");
    assert_eq!(absent, [0xFF; 4]);
    assert!(call::call_ro(fd, &mut absent, CallFlags::empty(), &[3, 0]).is_err());
}

/// A stand-in pcid that records the bytes of each write and answers with a framed
/// response, to see exactly what driver-sys sends.
#[derive(Default)]
struct TapPcid {
    writes: Mutex<Vec<Vec<u8>>>,
    answers: Mutex<HashMap<usize, Vec<u8>>>,
    function: Mutex<Option<Arc<SimPciFunction>>>,
}

impl KernelScheme for TapPcid {
    fn open(&self, path: &str, _flags: usize, _c: &Caller) -> Result<usize> {
        (path == "dev/channel")
            .then_some(1)
            .ok_or(Error::new(ENOENT))
    }
    fn write(&self, h: usize, buf: &[u8], _f: usize, _c: &Caller) -> Result<usize> {
        self.writes
            .lock()
            .map_err(|_| Error::new(EINVAL))?
            .push(buf.to_vec());
        let req: PcidClientRequest = pcid_wire::decode(buf).map_err(|_| Error::new(EINVAL))?;
        let f = self
            .function
            .lock()
            .map_err(|_| Error::new(EINVAL))?
            .clone();
        let f = f.ok_or(Error::new(EINVAL))?;
        let resp = redox_host::mock::pcid_handler::respond(&f, req);
        let framed = pcid_wire::frame_response(&resp).map_err(|_| Error::new(EINVAL))?;
        self.answers
            .lock()
            .map_err(|_| Error::new(EINVAL))?
            .insert(h, framed);
        Ok(buf.len())
    }
    fn read(&self, h: usize, buf: &mut [u8], _f: usize, _c: &Caller) -> Result<usize> {
        let mut answers = self.answers.lock().map_err(|_| Error::new(EINVAL))?;
        let a = answers.get_mut(&h).ok_or(Error::new(EINVAL))?;
        let n = a.len().min(buf.len());
        buf[..n].copy_from_slice(&a[..n]);
        a.drain(..n);
        Ok(n)
    }
}

/// base `drivers/pcid/src/driver_interface/mod.rs` (`send`): driver-sys's client writes
/// each request as one write of exactly the bincode-1 bytes, nothing before them.
#[test]
fn the_driver_sys_client_sends_bare_bincode() {
    let (k, f) = machine();
    let tap = Arc::new(TapPcid::default());
    *tap.function.lock().expect("lock") = Some(f);
    k.register_kernel_scheme("pcitap", tap.clone())
        .expect("register");
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let mut pci = PciFunction::connect_by_path("/scheme/pcitap/dev").expect("connect");
    pci.enable_device().expect("enable");
    let writes = tap.writes.lock().expect("lock").clone();
    assert_eq!(writes, vec![vec![1, 0, 0, 0], vec![0, 0, 0, 0]]);
    assert_eq!(pci.address(), ADDR);
}
