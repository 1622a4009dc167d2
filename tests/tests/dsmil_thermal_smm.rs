//! dsmild's thermal guard reads the simulated platform's SMM temperature sensor
//! (the i8k call through the port-I/O trait, probed at start). An excursion
//! still trips the guard; without a working sensor the temperature is
//! `unavailable` everywhere, never a made-up value.

use dsmil::wire::NO_TEMPERATURE_READING;
use libredox::call;
use libredox::error::Error;
use libredox::flag::O_RDONLY;
use redox_host::hw::smm::SimulatedDsmil;
use redox_host::{Cred, Kernel, boot};
use syscall::CallFlags;
use syscall::error::{EBUSY, ENODEV};

fn cat(path: &str) -> String {
    let fd = call::open(path, O_RDONLY, 0).expect(path);
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match call::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read {path}: {e:?}"),
        }
    }
    call::close(fd).expect("close");
    String::from_utf8(out).expect("utf8")
}

/// `GET_THERMAL` / `GET_STATUS` as a `call` on `control` (metadata[0] = op).
fn control_call(op: u64, reply: &mut [u8]) -> Result<usize, Error> {
    let fd = call::open("/scheme/dsmil/control", libredox::flag::O_RDWR, 0).expect("control");
    let r = call::call_ro(fd, reply, CallFlags::empty(), &[op]);
    call::close(fd).expect("close");
    r
}

#[test]
fn an_excursion_read_through_smm_trips_the_guard() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(50);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_me, _g) = k.enter("client", Cred::USER);
    assert!(cat("/scheme/dsmil/thermal").contains("temperature_celsius: 50"));
    sim.thermal.set(97);
    assert_eq!(
        call::open("/scheme/dsmil/device/0x8001", O_RDONLY, 0),
        Err(Error::new(EBUSY))
    );
    let status = cat("/scheme/dsmil/status");
    assert!(status.contains("temperature_celsius: 97"), "{status}");
    assert!(status.contains("thermal_safe: false"), "{status}");
}

#[test]
fn no_sensor_reads_unavailable_and_reads_stay_allowed_by_default() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(50);
    sim.thermal.set_absent(true);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_me, _g) = k.enter("client", Cred::USER);
    for file in ["status", "thermal"] {
        let text = cat(&format!("/scheme/dsmil/{file}"));
        assert!(
            text.contains("temperature_celsius: unavailable"),
            "{file}: {text}"
        );
        assert!(!text.contains("temperature_celsius: 50"), "{file}: {text}");
    }
    let health = cat("/scheme/dsmil/health");
    assert!(health.contains("thermal: unavailable"), "{health}");
    let mut reply = [0u8; 64];
    assert_eq!(
        control_call(5, &mut reply),
        Err(Error::new(ENODEV)),
        "GET_THERMAL"
    );
    let n = control_call(2, &mut reply).expect("GET_STATUS");
    let status = dsmil::wire::SystemStatus::decode(&reply[..n]).expect("status");
    assert!(!status.thermal_safe);
    assert_eq!(status.current_temp_celsius, NO_TEMPERATURE_READING);
    assert!(call::open("/scheme/dsmil/device/0x8001", O_RDONLY, 0).is_ok());
    // Even a heat wave cannot be seen: the sensor is gone, not cold.
    sim.thermal.set(120);
    assert!(cat("/scheme/dsmil/thermal").contains("unavailable"));
}

#[test]
fn reads_without_a_sensor_can_be_refused_by_configuration() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(50);
    sim.thermal.set_absent(true);
    let config = dsmil::Config {
        reads_without_thermal_sensor: false,
        ..dsmil::Config::default()
    };
    let _d = boot::dsmild_simulated(&k, config, &sim);
    let (_me, _g) = k.enter("client", Cred::USER);
    assert_eq!(
        call::open("/scheme/dsmil/device/0x8001", O_RDONLY, 0),
        Err(Error::new(EBUSY))
    );
    assert!(cat("/scheme/dsmil/thermal").contains("reads_without_sensor: refused"));
}

#[test]
fn a_sensor_that_fails_later_is_not_reported_stale() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(61);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_me, _g) = k.enter("client", Cred::USER);
    assert!(cat("/scheme/dsmil/thermal").contains("temperature_celsius: 61"));
    sim.thermal.set_failed(true);
    let text = cat("/scheme/dsmil/thermal");
    assert!(text.contains("temperature_celsius: unavailable"), "{text}");
    sim.thermal.set_failed(false);
    assert!(cat("/scheme/dsmil/thermal").contains("temperature_celsius: 61"));
}
