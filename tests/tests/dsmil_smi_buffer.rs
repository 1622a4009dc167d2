//! dsmild's calling-interface path as `main.rs` builds it on Redox: the command
//! buffer comes from driver-sys's `IommuDmaAllocator` (passthrough, 32-bit mask), so
//! it lies below 4 GiB and firmware finds it by physical address.

use dsmil::platform::{CallingInterface, CallingInterfaceConfig, DmaSmiBuffer, SmiBuffer};
use libredox::call;
use libredox::flag::O_RDONLY;
use redox_host::hw::smm::SimulatedDsmil;
use redox_host::hw::smm_calling_interface::SMI_CALLING_INTERFACE_CODE;
use redox_host::{Cred, Kernel};

#[test]
fn calling_interface_buffer_from_the_dma_allocator_reaches_firmware() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(45);
    let trigger = sim.calling_interface_trigger(k.phys());
    let sensor = sim.smm_thermal();
    let sim_tokens = sim.firmware.dmi_tokens();
    let daemon = k.spawn("dsmild", Cred::ROOT, move || {
        let buffer = DmaSmiBuffer::allocate().map_err(|e| e.to_string())?;
        if buffer.phys_addr() + buffer.size() as u64 > 1 << 32 {
            return Err(format!(
                "buffer at {:#x} is above 4 GiB",
                buffer.phys_addr()
            ));
        }
        let config = CallingInterfaceConfig::new(SMI_CALLING_INTERFACE_CODE);
        let tokens = sim_tokens;
        let smi =
            CallingInterface::new(buffer, trigger, config, tokens).map_err(|e| e.to_string())?;
        let hardware = dsmil::Hardware::with_firmware(sensor, Box::new(smi));
        dsmil::run(dsmil::Config::default(), hardware).map_err(|e| e.to_string())
    });
    assert!(
        k.wait_for_scheme_while("dsmil", || !daemon.is_finished()),
        "dsmild did not start: {:?}",
        daemon.join()
    );
    {
        let (_me, _g) = k.enter("reader", Cred::USER);
        let fd = call::open("/scheme/dsmil/device/0x8042", O_RDONLY, 0).expect("open device");
        let mut chunk = [0u8; 256];
        assert_eq!(call::read(fd, &mut chunk), Ok(256));
        assert_eq!(
            &chunk[32..36],
            &0x5000_8042u32.to_le_bytes(),
            "value read by SMI"
        );
        assert!(
            sim.firmware.reads(0x8042) > 0,
            "the read went through firmware"
        );
    }
    k.shutdown_scheme("dsmil");
    assert_eq!(daemon.join().ok(), Some(Ok(())));
}
