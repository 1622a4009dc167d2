//! The MMIO window against a fake physmap that counts live mappings.

use std::cell::RefCell;
use std::rc::Rc;

use syscall::error::{EINVAL, ENOMEM, Error};

use super::test_doubles::{FakeMapper, PhysState};
use super::*;

const BASE: u64 = 0x5200_0000;
const MIB: u64 = 1024 * 1024;

fn window(max_resident: usize) -> (MmioWindow<FakeMapper>, Rc<RefCell<PhysState>>) {
    let state = Rc::new(RefCell::new(PhysState::default()));
    let mapper = FakeMapper {
        state: Rc::clone(&state),
    };
    (MmioWindow::new(mapper, BASE, max_resident).unwrap(), state)
}

fn resident(window: &MmioWindow<FakeMapper>) -> Vec<usize> {
    let mut chunks: Vec<usize> = window.resident_chunks().collect();
    chunks.sort_unstable();
    chunks
}

#[test]
fn geometry() {
    assert_eq!(MMIO_WINDOW_SIZE, 360 * MIB);
    assert_eq!(MMIO_CHUNK_SIZE, 4 * MIB);
    assert_eq!(MMIO_CHUNK_COUNT, 90);
}

#[test]
fn maps_on_demand_at_the_right_address() {
    let (mut window, state) = window(4);
    assert!(resident(&window).is_empty(), "nothing mapped up front");
    assert_eq!(window.read_u32(5 * MIB), Ok(0));
    assert_eq!(resident(&window), [1]);
    assert_eq!(state.borrow().mapped, [BASE + 4 * MIB]);
    window.write_u32(5 * MIB + 8, 0xDEAD_BEEF).unwrap();
    assert_eq!(window.read_u32(5 * MIB + 8), Ok(0xDEAD_BEEF));
    assert_eq!(state.borrow().mapped.len(), 1, "resident chunk reused");
    let counters = window.counters();
    assert_eq!((counters.maps, counters.hits), (1, 2));
    // Little-endian at the right physical bytes.
    let memory = &state.borrow().memory;
    assert_eq!(memory.get(&(BASE + 5 * MIB + 8)), Some(&0xEF));
    assert_eq!(memory.get(&(BASE + 5 * MIB + 11)), Some(&0xDE));
}

#[test]
fn every_access_is_bounds_checked() {
    let (mut window, state) = window(2);
    let mut four = [0u8; 4];
    assert_eq!(window.read(MMIO_WINDOW_SIZE - 4, &mut four), Ok(()));
    for offset in [
        MMIO_WINDOW_SIZE - 3,
        MMIO_WINDOW_SIZE,
        u64::MAX - 1,
        u64::MAX,
    ] {
        assert_eq!(
            window.read(offset, &mut four),
            Err(Error::new(EINVAL)),
            "{offset:#x}"
        );
        assert_eq!(
            window.write(offset, &four),
            Err(Error::new(EINVAL)),
            "{offset:#x}"
        );
    }
    assert_eq!(
        window.read_u32(MMIO_WINDOW_SIZE - 2),
        Err(Error::new(EINVAL))
    );
    assert_eq!(window.write_u32(u64::MAX - 2, 1), Err(Error::new(EINVAL)));
    let mut huge = vec![0u8; 8];
    assert_eq!(
        window.read(MMIO_WINDOW_SIZE - 7, &mut huge),
        Err(Error::new(EINVAL))
    );
    assert_eq!(window.counters().rejected, 11);
    // Only the one valid access mapped anything (the last chunk).
    assert_eq!(state.borrow().mapped, [BASE + 89 * MMIO_CHUNK_SIZE]);
    // A zero-length access at the very end is in bounds and maps nothing.
    assert_eq!(window.read(MMIO_WINDOW_SIZE, &mut []), Ok(()));
    assert_eq!(state.borrow().mapped.len(), 1);
}

#[test]
fn lru_eviction_keeps_residency_bounded() {
    let (mut window, state) = window(3);
    for chunk in [0u64, 1, 2] {
        window
            .write_u32(chunk * MMIO_CHUNK_SIZE, chunk as u32 + 100)
            .unwrap();
    }
    assert_eq!(resident(&window), [0, 1, 2]);
    window.read_u32(0).unwrap(); // 0 is now most recent; 1 is least
    window.read_u32(3 * MMIO_CHUNK_SIZE).unwrap();
    assert_eq!(
        resident(&window),
        [0, 2, 3],
        "chunk 1 was least recently used"
    );
    window.read_u32(2 * MMIO_CHUNK_SIZE).unwrap();
    window.read_u32(89 * MMIO_CHUNK_SIZE).unwrap();
    assert_eq!(resident(&window), [2, 3, 89], "then chunk 0");
    // Sweep the whole window: residency never exceeds the bound.
    for chunk in 0..MMIO_CHUNK_COUNT as u64 {
        window.read_u32(chunk * MMIO_CHUNK_SIZE + 12).unwrap();
        assert!(window.resident_chunks().count() <= 3);
    }
    assert_eq!(
        state.borrow().max_live,
        3,
        "never more than 3 live mappings"
    );
    assert_eq!(state.borrow().live, 3);
    // Data written before eviction is still there after remapping.
    assert_eq!(window.read_u32(MMIO_CHUNK_SIZE), Ok(101));
    assert!(window.counters().evictions > 0);
    window.unmap_all();
    assert_eq!(state.borrow().live, 0);
}

#[test]
fn access_spanning_chunks_is_split() {
    let (mut window, state) = window(1);
    let data: Vec<u8> = (1..=8).collect();
    window.write(MMIO_CHUNK_SIZE - 4, &data).unwrap();
    assert_eq!(state.borrow().mapped, [BASE, BASE + MMIO_CHUNK_SIZE]);
    assert_eq!(state.borrow().max_live, 1, "one at a time even when split");
    let mut back = [0u8; 8];
    window.read(MMIO_CHUNK_SIZE - 4, &mut back).unwrap();
    assert_eq!(back.as_slice(), data.as_slice());
    let memory = &state.borrow().memory;
    assert_eq!(memory.get(&(BASE + MMIO_CHUNK_SIZE - 4)), Some(&1));
    assert_eq!(memory.get(&(BASE + MMIO_CHUNK_SIZE + 3)), Some(&8));
}

#[test]
fn construction_is_validated() {
    let mapper = || FakeMapper {
        state: Rc::new(RefCell::new(PhysState::default())),
    };
    assert!(MmioWindow::new(mapper(), BASE, 0).is_err());
    assert!(MmioWindow::new(mapper(), BASE, MMIO_CHUNK_COUNT + 1).is_err());
    assert!(MmioWindow::new(mapper(), u64::MAX - MMIO_WINDOW_SIZE + 1, 1).is_err());
    assert!(MmioWindow::new(mapper(), u64::MAX - MMIO_WINDOW_SIZE, 1).is_ok());
    let ok = MmioWindow::new(mapper(), BASE, MMIO_CHUNK_COUNT).unwrap();
    assert_eq!((ok.base(), ok.max_resident()), (BASE, 90));
}

#[test]
fn mapping_failure_is_reported_and_recoverable() {
    let (mut window, state) = window(2);
    state.borrow_mut().fail_next = Some(Error::new(ENOMEM));
    assert_eq!(window.read_u32(0), Err(Error::new(ENOMEM)));
    assert!(resident(&window).is_empty());
    assert_eq!(window.read_u32(0), Ok(0));
    assert_eq!(resident(&window), [0]);
}
