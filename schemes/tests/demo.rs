//! `redox-host demo` shows the scheme answering: listing, scan table, chunked
//! device read, an event, text files, control.

#[test]
fn demo_shows_dsmil_answering() {
    let report = redox_host::demo::run().expect("demo runs");
    for needle in [
        "== ls /scheme/dsmil/\ncontrol\nscan\ndevice\n",
        "5632 bytes = 22 chunks",
        "108 devices",
        "0x8009 QUARANTINED",
        "chunk 3/4 offset 672 size 72",
        "744 data bytes, token value 0x50008001",
        "thermal_exceeded at 93 °C (limit 85)",
        "Device or resource busy (errno 16)",
        "version: 1.0.0",
        "temperature_celsius: 60",
        "grade: ok",
        "version 1.0.0 (0x010000), 108 devices, 5 quarantined",
        "same answer: true",
        "No such file or directory (errno 2)",
        "dsmild stopped cleanly",
    ] {
        assert!(report.contains(needle), "missing {needle:?} in:\n{report}");
    }
}

#[test]
#[should_panic(expected = "dsmild failed to start scheme no/such: registering the scheme failed")]
fn a_daemon_that_cannot_register_fails_fast() {
    let k = redox_host::Kernel::boot();
    // Scheme names cannot contain '/': registration fails with EINVAL and the daemon
    // returns; the starter must report that instead of waiting for the name forever.
    let config = dsmil::Config {
        scheme_name: "no/such".into(),
        ..dsmil::Config::default()
    };
    let _d = redox_host::boot::dsmild(&k, config, dsmil::Hardware::minimal(40));
}
