//! `qemu-guest`: `/init` of the QEMU suite's guest (see `dsmil_tests::qemu::guest`).
//! The harness packs it with its shared libraries; run it nowhere else (it mounts
//! filesystems and powers the machine off).

use redox_host as _;

fn main() {
    dsmil_tests::qemu::guest::init_main()
}
