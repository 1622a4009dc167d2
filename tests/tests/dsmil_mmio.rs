//! The `mmio` file of scheme `dsmil`: the 360 MiB MMIO window read and written at
//! offsets (what the kernel passes for a positioned file), root only, every
//! access bounds-checked, at most N 4 MiB chunks mapped, least recently used
//! unmapped first; `ENODEV` without a configured window.

use dsmil::platform::{MMIO_CHUNK_SIZE, MMIO_WINDOW_SIZE, MmioWindow};
use dsmil::scheme::DsmilScheme;
use dsmil_tests::sqe::SqeHarness;
use redox_host::hw::dsmil_mmio::SimMmioWindow;
use redox_host::hw::smm::SimulatedDsmil;
use syscall::error::{EACCES, EINVAL, ENODEV};
use syscall::flag::{O_RDONLY, O_RDWR};

const BASE: u64 = 0xE000_0000;
const RESIDENT: usize = 2;
const MIB: u64 = 1 << 20;

fn rig() -> (SqeHarness<DsmilScheme>, SimMmioWindow) {
    let sim = SimulatedDsmil::new(45);
    let window = SimMmioWindow::new(BASE);
    let mmio = MmioWindow::new(window.mapper(), BASE, RESIDENT).expect("window");
    let hw = sim.hardware().mmio(Box::new(mmio));
    let config = dsmil::Config {
        mmio_base: Some(BASE),
        mmio_resident_chunks: RESIDENT,
        ..dsmil::Config::default()
    };
    (SqeHarness::new(DsmilScheme::new(config, hw)), window)
}

#[test]
fn reads_and_writes_land_at_the_offset_in_the_window() {
    let (mut h, window) = rig();
    let fd = h.open("mmio", O_RDWR).expect("root opens mmio");
    let at = 5 * MIB + 8;
    assert_eq!(h.pwrite(fd, &0xDEAD_BEEFu32.to_le_bytes(), at), Ok(4));
    assert_eq!(window.byte(BASE + at), 0xEF);
    assert_eq!(window.byte(BASE + at + 3), 0xDE);
    let mut back = [0u8; 4];
    assert_eq!(h.pread(fd, &mut back, at), Ok(4));
    assert_eq!(u32::from_le_bytes(back), 0xDEAD_BEEF);
    // Across a chunk boundary: split, both chunks mapped.
    let edge = 4 * MIB - 2;
    assert_eq!(h.pwrite(fd, &[1, 2, 3, 4], edge), Ok(4));
    assert_eq!(
        (window.byte(BASE + edge), window.byte(BASE + edge + 3)),
        (1, 4)
    );
}

#[test]
fn accesses_outside_the_window_are_refused_before_any_mapping() {
    let (mut h, window) = rig();
    let fd = h.open("mmio", O_RDWR).expect("open");
    let mut four = [0u8; 4];
    assert_eq!(h.pread(fd, &mut four, MMIO_WINDOW_SIZE - 4), Ok(4));
    let maps = window.maps();
    assert_eq!(h.pread(fd, &mut four, MMIO_WINDOW_SIZE - 3), Err(EINVAL));
    assert_eq!(h.pwrite(fd, &four, MMIO_WINDOW_SIZE - 1), Err(EINVAL));
    assert_eq!(h.pwrite(fd, &four, u64::MAX - 1), Err(EINVAL));
    assert_eq!(
        h.pread(fd, &mut four, MMIO_WINDOW_SIZE),
        Ok(0),
        "end of file"
    );
    assert_eq!(window.maps(), maps, "nothing mapped for a refused access");
}

#[test]
fn at_most_n_chunks_stay_mapped_least_recently_used_out_first() {
    let (mut h, window) = rig();
    let fd = h.open("mmio", O_RDONLY).expect("open");
    let mut b = [0u8; 1];
    for chunk in [0u64, 1, 0, 2] {
        h.pread(fd, &mut b, chunk * MMIO_CHUNK_SIZE).expect("read");
    }
    // Chunk 1 was the least recently used when 2 came in.
    assert_eq!(window.mapped(), [BASE, BASE + 2 * MMIO_CHUNK_SIZE]);
    for chunk in 0..20u64 {
        h.pread(fd, &mut b, chunk * 4 * MMIO_CHUNK_SIZE)
            .expect("read");
    }
    assert_eq!(
        window.most_mapped(),
        RESIDENT,
        "never more than the bound, even briefly"
    );
}

#[test]
fn only_root_opens_it() {
    let (mut h, _window) = rig();
    h.as_user(1000, 1000);
    assert_eq!(h.open("mmio", O_RDONLY), Err(EACCES));
    assert_eq!(h.open("mmio", O_RDWR), Err(EACCES));
}

#[test]
fn without_a_configured_window_it_is_enodev() {
    let sim = SimulatedDsmil::new(45);
    let mut h = SqeHarness::new(DsmilScheme::new(dsmil::Config::default(), sim.hardware()));
    assert_eq!(h.open("mmio", O_RDWR), Err(ENODEV));
}

#[test]
fn through_the_kernel_the_offset_is_the_descriptions_position() {
    use libredox::call;
    use libredox::flag::{O_RDONLY as RO, O_RDWR as RW};
    use redox_host::{Cred, Kernel, boot};

    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(45);
    let window = SimMmioWindow::new(BASE);
    let mmio = MmioWindow::new(window.mapper(), BASE, RESIDENT).expect("window");
    let config = dsmil::Config {
        mmio_base: Some(BASE),
        ..dsmil::Config::default()
    };
    let _d = boot::dsmild(&k, config, sim.hardware().mmio(Box::new(mmio)));
    {
        let (_u, _g) = k.enter("user", Cred::USER);
        assert_eq!(
            call::open("/scheme/dsmil/mmio", RO, 0).map_err(|e| e.errno()),
            Err(EACCES)
        );
    }
    let (_r, _g) = k.enter("root", Cred::ROOT);
    let fd = call::open("/scheme/dsmil/mmio", RW, 0).expect("root");
    assert_eq!(call::write(fd, &[1, 2, 3, 4, 5, 6, 7, 8]), Ok(8));
    assert_eq!(
        window.byte(BASE + 7),
        8,
        "the first write lands at offset 0"
    );
    let again = call::open("/scheme/dsmil/mmio", RO, 0).expect("root");
    let mut four = [0u8; 4];
    assert_eq!(call::read(again, &mut four), Ok(4));
    assert_eq!(call::read(again, &mut four), Ok(4));
    assert_eq!(
        four,
        [5, 6, 7, 8],
        "the second read continues where the first ended"
    );
}
