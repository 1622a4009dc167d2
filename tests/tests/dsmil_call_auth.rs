//! dsmild authorises and attributes a `call` by what its handle recorded at open,
//! never by the call's `CallerCtx.uid`: the kernel builds a call's Sqe without
//! credentials, `args[5]` being metadata word 2 (`redox-os/kernel
//! src/scheme/user.rs`, `UserScheme::kcall`), and the mocked kernel does the same.

use dsmil::wire::{EventKind, EventRecord};
use libredox::call;
use libredox::error::Error;
use libredox::flag::{O_NONBLOCK, O_RDONLY, O_RDWR};
use redox_host::hw::smm::SimulatedDsmil;
use redox_host::{Cred, Kernel, boot};
use syscall::CallFlags;
use syscall::error::EACCES;

/// A non-root client's `READ_DEVICE` call on a quarantined token, with metadata
/// word 2 = 0 — so the scheme's `CallerCtx` claims uid 0, gid 0. The refusal event
/// must name the opener, uid 1000; a daemon trusting `ctx.uid` would report root.
#[test]
fn a_call_is_attributed_to_the_opener_not_to_metadata_word_2() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(45);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_me, _g) = k.enter("user", Cred::USER);
    let events = call::open("/scheme/dsmil/events", O_RDONLY | O_NONBLOCK, 0).expect("events");
    let control = call::open("/scheme/dsmil/control", O_RDWR, 0).expect("control");
    let mut reply = [0u8; 512];
    let read_device = dsmil::wire::Op::ReadDevice as u64;
    assert_eq!(
        call::call_ro(
            control,
            &mut reply,
            CallFlags::empty(),
            &[read_device, 0x8009, 0]
        ),
        Err(Error::new(EACCES))
    );
    let mut rec = [0u8; EventRecord::SIZE];
    assert_eq!(call::read(events, &mut rec), Ok(EventRecord::SIZE));
    let r = EventRecord::decode(&rec).expect("record");
    assert_eq!((r.kind, r.token), (EventKind::RefusedAccess, 0x8009));
    assert_eq!(r.arg0, EACCES);
    assert_eq!(r.arg1, 1000, "the opener's uid, not the call's word 2");
}
