//! `redox-host demo` shows the scheme answering: listing, text files, control.

#[test]
fn demo_shows_dsmil_answering() {
    let report = redox_host::demo::run().expect("demo runs");
    for needle in [
        "== ls /scheme/dsmil/\ncontrol\nversion\nstatus\n",
        "version: 1.0.0",
        "temperature_celsius: 47",
        "version 1.0.0 (0x010000), 108 devices, 5 quarantined",
        "same answer: true",
        "No such file or directory (errno 2)",
        "dsmild stopped cleanly",
    ] {
        assert!(report.contains(needle), "missing {needle:?} in:\n{report}");
    }
}
