//! `redox-host demo`: boot the simulated machine, start the daemons, and act as a
//! client through plain `libredox` calls — what a user of the real system would see.

use std::fmt::Write as _;

use libredox::call;
use libredox::flag::{O_DIRECTORY, O_RDONLY, O_RDWR};
use syscall::CallFlags;

use crate::boot;
use crate::kernel::{Cred, Kernel};

fn read_all(fd: usize) -> libredox::error::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = call::read(fd, &mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn cat(path: &str) -> Result<String, String> {
    let fd = call::open(path, O_RDONLY, 0).map_err(|e| format!("open {path}: {e}"))?;
    let bytes = read_all(fd).map_err(|e| format!("read {path}: {e}"));
    let _ = call::close(fd);
    Ok(String::from_utf8_lossy(&bytes?).into_owned())
}

fn scan_table(out: &mut String) -> Result<(), String> {
    use dsmil::wire::{CHUNK_SIZE, ScanChunk};
    let _ = writeln!(
        out,
        "\n== scan: open /scheme/dsmil/scan, one bulk read, close"
    );
    let fd =
        call::open("/scheme/dsmil/scan", O_RDONLY, 0).map_err(|e| format!("open scan: {e}"))?;
    let mut buf = vec![0u8; 32 * CHUNK_SIZE];
    let n = call::read(fd, &mut buf).map_err(|e| format!("read scan: {e}"))?;
    let _ = call::close(fd);
    let _ = writeln!(out, "{} bytes = {} chunks", n, n / CHUNK_SIZE);
    let _ = writeln!(out, "chunk token  state          access quarantined");
    let mut devices = 0;
    for raw in buf[..n].chunks_exact(CHUNK_SIZE) {
        let chunk = ScanChunk::decode(raw).map_err(|e| format!("decode: {e}"))?;
        for d in chunk.valid_devices() {
            devices += 1;
            let line = format!(
                "{:>5} {:#06x} {:<14} {:<6} {}",
                { chunk.header.chunk_index },
                d.device_id,
                d.state.name(),
                if d.is_quarantined { "none" } else { "read" },
                if d.is_quarantined { "QUARANTINED" } else { "" }
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    let _ = writeln!(out, "{devices} devices");
    Ok(())
}

fn device_read(out: &mut String) -> Result<(), String> {
    use dsmil::wire::{CHUNK_SIZE, ReadChunk};
    let _ = writeln!(
        out,
        "\n== chunked read of /scheme/dsmil/device/0x8001 (one chunk per read)"
    );
    let fd = call::open("/scheme/dsmil/device/0x8001", O_RDONLY, 0)
        .map_err(|e| format!("open device: {e}"))?;
    let mut data = Vec::new();
    let mut buf = [0u8; CHUNK_SIZE];
    loop {
        let n = call::read(fd, &mut buf).map_err(|e| format!("read device: {e}"))?;
        if n == 0 {
            break;
        }
        let c = ReadChunk::decode(&buf[..n]).map_err(|e| format!("decode: {e}"))?;
        let _ = writeln!(
            out,
            "chunk {}/{} offset {} size {} session {}",
            { c.header.chunk_index },
            { c.header.total_chunks },
            { c.header.data_offset },
            { c.header.chunk_size },
            { c.header.session_id }
        );
        data.extend_from_slice(c.valid_data());
    }
    let _ = call::close(fd);
    let value = data
        .get(..4)
        .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
    let _ = writeln!(
        out,
        "{} data bytes, token value {:#010x}",
        data.len(),
        value.unwrap_or(0)
    );
    Ok(())
}

fn thermal_event(
    kernel: &std::sync::Arc<Kernel>,
    sim: &crate::hw::smm::SimulatedDsmil,
    out: &mut String,
) -> Result<(), String> {
    use dsmil::wire::EventRecord;
    let _ = writeln!(
        out,
        "\n== events: a blocked reader, then a thermal excursion to 93 °C"
    );
    let reader = kernel.spawn("event-reader", Cred::USER, || {
        let fd = call::open("/scheme/dsmil/events", O_RDONLY, 0)?;
        let mut rec = [0u8; EventRecord::SIZE];
        let n = call::read(fd, &mut rec)?;
        let _ = call::close(fd);
        Ok::<_, libredox::error::Error>(rec[..n].to_vec())
    });
    // Wait until the reader's open reached the daemon (the status file counts
    // handles, its own among them: it is rendered at read time).
    while !cat("/scheme/dsmil/status")?.contains("open_handles: 2\n") {
        std::thread::yield_now();
    }
    sim.thermal.set(93);
    // Housekeeping runs on a time-scheme deadline: move the clock past it.
    kernel.clock().advance(std::time::Duration::from_secs(2));
    let rec = reader
        .join()
        .map_err(|_| "event reader panicked".to_string())?
        .map_err(|e| format!("read events: {e}"))?;
    let r = EventRecord::decode(&rec).map_err(|e| format!("decode: {e}"))?;
    let _ = writeln!(
        out,
        "event #{}: {} at {} °C (limit {})",
        r.sequence,
        r.kind.name(),
        r.arg0,
        r.arg1
    );
    match call::open("/scheme/dsmil/device/0x8001", O_RDONLY, 0) {
        Ok(_) => return Err("a device read succeeded above the thermal limit".into()),
        Err(e) => {
            let _ = writeln!(out, "device read while hot: {e} (errno {})", e.errno());
        }
    }
    sim.thermal.set(60);
    kernel.clock().advance(std::time::Duration::from_secs(2));
    Ok(())
}

/// Runs the demo and returns its report.
pub fn run() -> Result<String, String> {
    let kernel = Kernel::boot();
    let sim = crate::hw::smm::SimulatedDsmil::new(47);
    let dsmild = boot::dsmild_simulated(&kernel, dsmil::Config::default(), &sim);
    let (_client, _g) = kernel.enter("demo-client", Cred::USER);
    let mut out = String::new();

    let _ = writeln!(
        out,
        "== schemes registered: {}",
        kernel.scheme_names().join(", ")
    );

    let root = call::open("/scheme/dsmil/", O_RDONLY | O_DIRECTORY, 0)
        .map_err(|e| format!("open /scheme/dsmil/: {e}"))?;
    let listing = read_all(root).map_err(|e| format!("read /scheme/dsmil/: {e}"))?;
    let _ = call::close(root);
    let _ = writeln!(out, "\n== ls /scheme/dsmil/");
    out.push_str(&String::from_utf8_lossy(&listing));

    scan_table(&mut out)?;
    device_read(&mut out)?;
    thermal_event(&kernel, &sim, &mut out)?;

    for file in ["version", "status", "health"] {
        let path = format!("/scheme/dsmil/{file}");
        let _ = writeln!(out, "\n== cat {path}");
        out.push_str(&cat(&path)?);
    }

    let _ = writeln!(
        out,
        "\n== control: GET_VERSION (write request, read response)"
    );
    let ctl =
        call::open("/scheme/dsmil/control", O_RDWR, 0).map_err(|e| format!("open control: {e}"))?;
    let req = dsmil::wire::ControlRequest::new(dsmil::wire::Op::GetVersion, 0, 0).to_bytes();
    call::write(ctl, &req).map_err(|e| format!("write control: {e}"))?;
    let mut resp = [0u8; dsmil::wire::VersionInfo::SIZE];
    let n = call::read(ctl, &mut resp).map_err(|e| format!("read control: {e}"))?;
    let v = dsmil::wire::VersionInfo::decode(&resp[..n]).map_err(|e| format!("decode: {e}"))?;
    let _ = writeln!(
        out,
        "version {}.{}.{} ({:#08x}), {} devices, {} quarantined",
        v.major(),
        v.minor(),
        v.patch(),
        v.version_code,
        v.device_count,
        v.quarantined_count
    );
    let _ = writeln!(
        out,
        "\n== control: GET_VERSION as one call (metadata[0] = 1)"
    );
    let mut resp = [0u8; dsmil::wire::VersionInfo::SIZE];
    let n = call::call_ro(ctl, &mut resp, CallFlags::empty(), &[1])
        .map_err(|e| format!("call control: {e}"))?;
    let v2 = dsmil::wire::VersionInfo::decode(&resp[..n]).map_err(|e| format!("decode: {e}"))?;
    let _ = writeln!(out, "same answer: {}", v == v2);
    let _ = call::close(ctl);

    let _ = writeln!(out, "\n== an unknown path");
    match call::open("/scheme/dsmil/no-such-file", O_RDONLY, 0) {
        Ok(_) => return Err("an unknown path opened".into()),
        Err(e) => {
            let _ = writeln!(
                out,
                "open /scheme/dsmil/no-such-file: {e} (errno {})",
                e.errno()
            );
        }
    }

    dsmild.stop().map_err(|e| format!("dsmild: {e}"))?;
    let _ = writeln!(out, "\n== dsmild stopped cleanly");
    // iommud is driven by a driver, and drivers run as root on Redox.
    drop(_g);
    let (_driver, _g) = kernel.enter("demo-driver", Cred::ROOT);
    iommu_demo(&kernel, &mut out)?;
    Ok(out)
}

/// The IOMMU part of the demo: iommud in front of a simulated AMD-Vi unit and
/// a bus-mastering PCI function; one domain, a mapping, a translation, the
/// device's DMA through it, and a rogue DMA outside it that is blocked and
/// logged. The caller must already be a process of `kernel`, running as root
/// (raw physical MAP and ASSIGN by BDF are root's).
pub fn iommu_demo(kernel: &std::sync::Arc<Kernel>, out: &mut String) -> Result<(), String> {
    use crate::hw::amdvi::SimAmdVi;
    use crate::hw::pci_function::{COMMAND_BUS_MASTER, SimFunctionSpec, SimPciFunction};
    use driver_sys::pci::PciAddress;
    use iommu::client::IommuDomain;
    use iommu::protocol::MapFlags;

    let unit = SimAmdVi::new(kernel);
    let addr = PciAddress::new(0, 6, 0);
    let device = SimPciFunction::new(kernel, SimFunctionSpec::dsmil_like(addr, 1))
        .map_err(|e| format!("simulated function: {e}"))?;
    device
        .config_write_u32(0x04, u32::from(COMMAND_BUS_MASTER))
        .map_err(|e| format!("bus master: {e}"))?;
    unit.attach(&device);
    let iommud = boot::iommud(kernel, iommu::Config::default(), &unit);
    let bdf = iommu::Bdf::new(0, 6, 0).ok_or("bdf")?;

    let _ = writeln!(out, "\n== iommu: domain 1, device {bdf}");
    let domain = IommuDomain::open(1).map_err(|e| format!("open domain/1: {e}"))?;
    domain.assign(bdf).map_err(|e| format!("assign: {e}"))?;
    let buffer = kernel
        .phys()
        .alloc(4096, false)
        .map_err(|e| format!("ram: {e}"))?;
    let iova = domain
        .map(buffer, 4096, MapFlags::READ_WRITE, None)
        .map_err(|e| format!("map: {e}"))?;
    let translated = domain
        .translate(iova + 0x10)
        .map_err(|e| format!("translate: {e}"))?;
    let _ = writeln!(out, "MAP phys {buffer:#x} (4 KiB) -> IOVA {iova:#x}");
    let _ = writeln!(out, "TRANSLATE {:#x} -> phys {translated:#x}", iova + 0x10);

    let message = b"DMA through the IOMMU";
    device
        .dma_write(iova + 0x10, message)
        .map_err(|e| format!("device DMA: {e:?}"))?;
    let mut landed = vec![0u8; message.len()];
    kernel.phys().read(translated, &mut landed);
    let _ = writeln!(
        out,
        "device wrote to IOVA {:#x}; phys {translated:#x} now holds {:?}",
        iova + 0x10,
        String::from_utf8_lossy(&landed)
    );

    let rogue = iova + (1 << 20);
    match device.dma_write(rogue, b"rogue") {
        Ok(()) => return Err("a rogue DMA got through".into()),
        Err(e) => {
            let _ = writeln!(out, "rogue DMA to IOVA {rogue:#x}: blocked ({e:?})");
        }
    }
    let drained = domain
        .drain_events()
        .map_err(|e| format!("drain events: {e}"))?;
    if let Some(f) = drained.first {
        let vendor = f.vendor.map_or("unknown", iommu::Vendor::name);
        let _ = writeln!(
            out,
            "DRAIN_EVENTS: {} event(s), first: {:?} {} by {} at {:#x} ({vendor} code {:#x})",
            drained.count,
            f.cause,
            if f.write { "write" } else { "read" },
            f.device,
            f.address,
            f.code
        );
    }
    let _ = writeln!(out, "\n== cat /scheme/iommu/faults");
    out.push_str(&cat("/scheme/iommu/faults")?);
    let _ = writeln!(out, "\n== cat /scheme/iommu/stats (summary)");
    let stats = cat("/scheme/iommu/stats")?;
    for line in stats.lines().take_while(|l| !l.starts_with("domain ")) {
        let _ = writeln!(out, "{line}");
    }
    domain.unmap(iova).map_err(|e| format!("unmap: {e}"))?;
    domain.unassign(bdf).map_err(|e| format!("unassign: {e}"))?;
    drop(domain);
    iommud.stop().map_err(|e| format!("iommud: {e}"))?;
    let _ = writeln!(out, "\n== iommud stopped cleanly");
    Ok(())
}
