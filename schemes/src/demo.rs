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

/// Runs the demo and returns its report.
pub fn run() -> Result<String, String> {
    let kernel = Kernel::boot();
    let dsmild = boot::dsmild(
        &kernel,
        dsmil::Config::default(),
        dsmil::Hardware::minimal(47),
    );
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

    for file in ["version", "status"] {
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
    Ok(out)
}
