//! `PciFunction::connect_default`: the channel fd pcid-spawner hands over in
//! `PCID_CLIENT_CHANNEL`. Alone in its binary because it sets the environment.

use driver_sys::pci::{PCID_CLIENT_CHANNEL, PciAddress, PciFunction, PcidError};
use dsmil_tests as _;
use libredox::{call, flag};
use redox_host::hw::pci_function::{SimFunctionSpec, SimPciFunction};
use redox_host::{Cred, Kernel};

#[test]
fn connects_through_the_fd_in_pcid_client_channel() {
    let addr = PciAddress::new(1, 0, 0);
    let k = Kernel::boot();
    let f = SimPciFunction::new(&k, SimFunctionSpec::dsmil_like(addr, 2)).expect("function");
    k.pci().add_function(f).expect("plug in");
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    // SAFETY: the only test of this binary; no other thread reads the environment.
    unsafe { std::env::remove_var(PCID_CLIENT_CHANNEL) };
    assert!(matches!(
        PciFunction::connect_default(),
        Err(PcidError::NoChannel)
    ));
    // What pcid-spawner does: open the channel, pass its number.
    let fd = call::open(
        format!("/scheme/pci/{}/channel", addr.scheme_name()),
        flag::O_RDWR,
        0,
    )
    .expect("channel");
    // SAFETY: as above.
    unsafe { std::env::set_var(PCID_CLIENT_CHANNEL, fd.to_string()) };
    let func = PciFunction::connect_default().expect("connect");
    assert_eq!(func.address(), addr);
    assert_eq!(func.channel_fd(), fd);
}
