//! SQE-level property test: random client requests never panic the scheme,
//! never write a quarantined token, and closing every handle frees every session.

use dsmil::platform::ManualClock;
use dsmil::scheme::DsmilScheme;
use dsmil_tests::sqe::SqeHarness;
use proptest::prelude::*;
use redox_host::hw::smm::SimulatedDsmil;
use syscall::flag::{O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};

#[derive(Clone, Debug)]
enum Req {
    Open {
        path: usize,
        mode: usize,
        root: bool,
    },
    Read {
        handle: usize,
        len: usize,
        nonblock: bool,
    },
    Write {
        handle: usize,
        bytes: Vec<u8>,
        root: bool,
    },
    Call {
        handle: usize,
        len: usize,
        meta: Vec<u64>,
    },
    Close {
        handle: usize,
    },
    Housekeeping {
        advance_secs: u64,
    },
    Heat {
        celsius: i32,
    },
}

const PATHS: &[&str] = &[
    "",
    "control",
    "scan",
    "device",
    "device/0x8000",
    "device/0x8009",
    "device/0x8019",
    "device/806b",
    "device/0x806c",
    "events",
    "config/session_limit",
    "config/thermal_limit",
    "config/session_idle_timeout",
    "status",
    "stats",
    "log",
    "health",
    "nope",
];

fn req() -> impl Strategy<Value = Req> {
    let handle = 0usize..12;
    prop_oneof![
        (0..PATHS.len(), 0usize..3, any::<bool>()).prop_map(|(path, mode, root)| Req::Open {
            path,
            mode,
            root
        }),
        (handle.clone(), 0usize..2000, any::<bool>()).prop_map(|(handle, len, nonblock)| {
            Req::Read {
                handle,
                len,
                nonblock,
            }
        }),
        (
            handle.clone(),
            prop::collection::vec(any::<u8>(), 0..24),
            any::<bool>()
        )
            .prop_map(|(handle, bytes, root)| Req::Write {
                handle,
                bytes,
                root
            }),
        (
            handle.clone(),
            0usize..600,
            prop::collection::vec(
                prop_oneof![0u64..13, Just(0x8009), Just(0x8000), any::<u64>()],
                0..4
            )
        )
            .prop_map(|(handle, len, meta)| Req::Call { handle, len, meta }),
        handle.prop_map(|handle| Req::Close { handle }),
        (0u64..40).prop_map(|advance_secs| Req::Housekeeping { advance_secs }),
        (20i32..110).prop_map(|celsius| Req::Heat { celsius }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_are_answered_and_leave_nothing(reqs in prop::collection::vec(req(), 1..80)) {
        let sim = SimulatedDsmil::new(45);
        let clock = ManualClock::new();
        let hw = sim.hardware_timed_by(clock.clone()).clock(Box::new(clock.clone()));
        let mut h = SqeHarness::new(DsmilScheme::new(dsmil::Config::default(), hw));
        let mut open: Vec<usize> = Vec::new();
        for r in &reqs {
            match r {
                Req::Open { path, mode, root } => {
                    h.as_user(if *root { 0 } else { 1000 }, 1000);
                    let flags = [O_RDONLY, O_WRONLY, O_RDWR][*mode];
                    if let Ok(id) = h.open(PATHS[*path], flags) {
                        open.push(id);
                    }
                }
                Req::Read { handle, len, nonblock } => {
                    if let Some(&id) = open.get(*handle) {
                        let mut buf = vec![0u8; *len];
                        let flags = if *nonblock { O_NONBLOCK } else { 0 };
                        let _ = h.read_flags(id, &mut buf, flags);
                    }
                }
                Req::Write { handle, bytes, root } => {
                    h.as_user(if *root { 0 } else { 1000 }, 1000);
                    if let Some(&id) = open.get(*handle) {
                        let _ = h.write(id, bytes);
                    }
                }
                Req::Call { handle, len, meta } => {
                    if let Some(&id) = open.get(*handle) {
                        let mut buf = vec![0u8; *len];
                        let _ = h.call(id, &mut buf, meta);
                    }
                }
                Req::Close { handle } => {
                    if *handle < open.len() {
                        let id = open.swap_remove(*handle);
                        h.close(id);
                    }
                }
                Req::Housekeeping { advance_secs } => {
                    clock.advance(std::time::Duration::from_secs(*advance_secs));
                    h.scheme.housekeeping();
                }
                Req::Heat { celsius } => sim.thermal.set(*celsius),
            }
        }
        prop_assert_eq!(sim.firmware.quarantined_writes(), 0);
        for id in open.drain(..) {
            h.close(id);
        }
        prop_assert_eq!(h.scheme.session_count(), 0);
        prop_assert_eq!(h.scheme.open_handles(), 0);
    }
}
