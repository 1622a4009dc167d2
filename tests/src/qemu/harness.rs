//! The host side of the QEMU suite: build the guest, boot QEMU, judge the lines.
//!
//! The guest program is this crate's `qemu-guest` binary relinked statically
//! ([`static_guest`]: `cargo rustc … -C target-feature=+crt-static`, only the final
//! link redone) and packed as `/init`. The archive also holds `/dev/console`
//! and the mount points (newc, [`super::initramfs`]). It is booted
//! with Debian's cloud kernel:
//! `qemu-system-x86_64 -machine q35 -accel tcg -m 512 -nographic -no-reboot`, the
//! IOMMU device first, then edu. One boot runs every scenario of a model. The boot is
//! bounded by [`BOOT_TIMEOUT`]: past it QEMU is killed and the console log is the
//! failure message.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::LINE_PREFIX;
use super::initramfs::Archive;
use super::model::{Expect, Model};

/// Longest a boot may take, all scenarios included (about 10 s on an idle 2-core
/// machine under TCG).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
/// The guest's kernel command line (model appended).
pub const KERNEL_ARGS: &str = "console=ttyS0 iomem=relaxed intel_iommu=off quiet panic=-1";

/// What the suite needs from the machine.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// The guest kernel (`vmlinuz`).
    pub kernel: PathBuf,
}

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Finds QEMU and a guest kernel: `$DSMIL_QEMU_KERNEL`, else the newest
/// `/boot/vmlinuz-*-cloud-amd64` (Debian's `linux-image-cloud-amd64`). `Err` says
/// what is missing and how to install it.
pub fn find_tools() -> Result<Tools, String> {
    let qemu = in_path("qemu-system-x86_64")
        .ok_or("qemu-system-x86_64 is not installed (Debian: apt-get install qemu-system-x86)")?;
    let kernel = match std::env::var_os("DSMIL_QEMU_KERNEL") {
        Some(k) => PathBuf::from(k),
        None => {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
                .map_err(|e| format!("/boot: {e}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("vmlinuz-") && n.ends_with("-cloud-amd64"))
                })
                .collect();
            found.sort();
            found.pop().ok_or(
                "no /boot/vmlinuz-*-cloud-amd64 (Debian: apt-get install linux-image-cloud-amd64)",
            )?
        }
    };
    std::fs::File::open(&kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
    Ok(Tools { qemu, kernel })
}

/// Builds the guest program statically and returns its path.
///
/// `cargo test` builds `qemu-guest` as an ordinary dynamic executable; the guest's
/// `/init` must be static (the initramfs holds no loader or libc). `cargo rustc` with
/// `-C target-feature=+crt-static` relinks just that binary against glibc's `libc.a`
/// (the `#[link]` attributes of std and libc choose static libraries by that feature
/// in the linking crate), reusing every dependency `cargo test` already compiled: a
/// few seconds, where a whole-tree `RUSTFLAGS` build took six minutes on 2 cores.
/// Cargo's lock on the build directory is not held while tests run, so the nested
/// build does not wait on the outer one.
pub fn static_guest() -> Result<PathBuf, String> {
    static GUEST: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    GUEST.get_or_init(build_static_guest).clone()
}

fn build_static_guest() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    let out = Command::new(cargo)
        .args([
            "rustc",
            "--quiet",
            "--message-format=json",
            "--bin",
            "qemu-guest",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .args([
            "--profile",
            profile,
            "--",
            "-C",
            "target-feature=+crt-static",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running cargo rustc for the static guest: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo rustc for the static guest failed ({})",
            out.status
        ));
    }
    // The compiler-artifact message of the binary carries `"executable":"<path>"`.
    let text = String::from_utf8_lossy(&out.stdout);
    let path = text
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .find_map(|l| {
            let rest = &l[l.find("\"executable\":\"")? + 14..];
            Some(PathBuf::from(&rest[..rest.find('"')?]))
        })
        .ok_or("cargo rustc named no qemu-guest executable")?;
    let elf = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if has_interpreter(&elf)? {
        return Err(format!("{} is still dynamically linked", path.display()));
    }
    Ok(path)
}

/// Whether a 64-bit little-endian ELF image asks for a program interpreter
/// (`PT_INTERP`, i.e. the dynamic loader): a static `/init` must not.
pub fn has_interpreter(elf: &[u8]) -> Result<bool, String> {
    const PT_INTERP: u32 = 3;
    let field = |at: usize, len: usize| -> Result<u64, String> {
        let bytes = elf.get(at..at + len).ok_or("ELF image truncated")?;
        Ok(bytes.iter().rev().fold(0, |v, b| (v << 8) | u64::from(*b)))
    };
    if elf.get(..5) != Some(b"\x7fELF\x02".as_slice()) {
        return Err("not a 64-bit ELF image".into());
    }
    let (phoff, phentsize, phnum) = (field(0x20, 8)?, field(0x36, 2)?, field(0x38, 2)?);
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phentsize).map_err(|_| "ELF offset too large")?;
        if field(at, 4)? == u64::from(PT_INTERP) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The initramfs: the static `/init`, `/dev/console`, mount points.
pub fn initramfs(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut a = Archive::new();
    let mut dirs: Vec<String> = vec!["dev".into(), "proc".into(), "sys".into()];
    for (name, _) in files {
        let mut at = name.as_str();
        while let Some((parent, _)) = at.rsplit_once('/') {
            dirs.push(parent.to_string());
            at = parent;
        }
    }
    // Parents before children: the kernel creates entries in archive order.
    dirs.sort_by_key(|d| (d.matches('/').count(), d.clone()));
    dirs.dedup();
    for d in &dirs {
        a.dir(d);
    }
    a.char_device("dev/console", 5, 1);
    for (name, data) in files {
        a.file(name, 0o755, data);
    }
    a.finish()
}

/// How a boot ended.
#[derive(Debug)]
pub struct Boot {
    /// Everything QEMU printed (the guest's console).
    pub console: String,
    /// Whether the guest printed its END line before QEMU exited.
    pub finished: bool,
}

/// Boots `model` with the initramfs at `initrd` and collects the console.
pub fn boot(
    tools: &Tools,
    model: &Model,
    initrd: &Path,
    timeout: Duration,
) -> Result<Boot, String> {
    let append = format!("{KERNEL_ARGS} dsmil.model={}", model.name);
    let mut child = Command::new(&tools.qemu)
        .args(["-machine", "q35", "-accel", "tcg", "-m", "512"])
        .args(["-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(&tools.kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &append])
        .args(["-device", model.iommu_device])
        .args(["-device", model.edu_device])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", tools.qemu.display()))?;
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take();
    let err = child.stderr.take();
    let tx2 = tx.clone();
    let readers = [
        std::thread::spawn(move || {
            if let Some(o) = out {
                for line in BufReader::new(o).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            }
        }),
        std::thread::spawn(move || {
            if let Some(o) = err {
                for line in BufReader::new(o).lines().map_while(Result::ok) {
                    let _ = tx2.send(format!("[qemu stderr] {line}"));
                }
            }
        }),
    ];
    let end = format!("{LINE_PREFIX} {} END", model.name);
    let deadline = Instant::now() + timeout;
    let mut console = String::new();
    let mut finished = false;
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                finished |= line.trim() == end;
                console.push_str(&line);
                console.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
        }
    }
    if timed_out {
        let _ = child.kill();
    }
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    if timed_out {
        return Err(format!(
            "QEMU did not finish within {timeout:?}; it was killed. Console:\n{console}"
        ));
    }
    Ok(Boot { console, finished })
}

/// One scenario's line as the guest printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLine {
    /// Scenario name.
    pub scenario: String,
    /// `PASS`, `FAIL` or `NOT-YET-AVAILABLE`.
    pub verdict: String,
    /// The guest's explanation.
    pub detail: String,
}

/// The result lines of `model` in a console log.
pub fn result_lines(model: &Model, console: &str) -> Vec<ResultLine> {
    let prefix = format!("{LINE_PREFIX} {} ", model.name);
    console
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&prefix))
        .filter_map(|rest| {
            let mut w = rest.splitn(3, ' ');
            let scenario = w.next()?.to_string();
            let verdict = w.next()?.to_string();
            matches!(verdict.as_str(), "PASS" | "FAIL" | "NOT-YET-AVAILABLE").then(|| ResultLine {
                scenario,
                verdict,
                detail: w.next().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// How long the guest says `scenario` took (its `NOTE TIME <scenario> <n> ms` line,
/// printed by the guest's watchdog).
pub fn scenario_ms(model: &Model, console: &str, scenario: &str) -> Option<u64> {
    let prefix = format!("{LINE_PREFIX} {} NOTE TIME {scenario} ", model.name);
    console
        .lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .and_then(|rest| rest.strip_suffix(" ms"))
        .and_then(|n| n.parse().ok())
}

/// Judges a boot: every scenario of `model` must have its line, PASS (or
/// NOT-YET-AVAILABLE where the model expects that). Returns the report on success,
/// the report and the console on failure.
pub fn judge(model: &Model, boot: &Boot) -> Result<String, String> {
    let lines = result_lines(model, &boot.console);
    let mut report = format!(
        "QEMU {} ({}): {}\n",
        model.name, model.iommu_device, model.caveat
    );
    let mut failed = !boot.finished;
    for s in model.scenarios {
        let line = lines.iter().find(|l| l.scenario == s.name);
        let ok = matches!(
            (line.map(|l| l.verdict.as_str()), s.expect),
            (Some("PASS"), _) | (Some("NOT-YET-AVAILABLE"), Expect::NotYetAvailable)
        );
        failed |= !ok;
        let shown = line.map_or("MISSING: the guest printed no result".to_string(), |l| {
            format!("{} {}", l.verdict, l.detail)
        });
        let shown = match scenario_ms(model, &boot.console, s.name) {
            Some(ms) => format!("[{ms} ms] {shown}"),
            None => shown,
        };
        report.push_str(&format!(
            "  [{}] {:<20} {shown}\n",
            if ok { " ok " } else { "FAIL" },
            s.name
        ));
    }
    if failed {
        Err(format!(
            "{report}{}\n--- console ---\n{}",
            if boot.finished {
                ""
            } else {
                "the guest never printed its END line"
            },
            boot.console
        ))
    } else {
        Ok(report)
    }
}

/// The whole suite for one model, with `qemu-guest` built statically by
/// [`static_guest`]: skips (with the reason) when QEMU or the kernel is missing,
/// unless `CI=true`, where that fails.
pub fn run_model(model: &Model) -> Result<String, String> {
    let tools = match find_tools() {
        Ok(t) => t,
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                return Err(format!("CI=true and the QEMU suite cannot run: {why}"));
            }
            eprintln!("SKIPPED the QEMU suite ({}): {why}", model.name);
            return Ok(format!("skipped: {why}"));
        }
    };
    let guest = static_guest()?;
    let files = vec![(
        "init".to_string(),
        std::fs::read(&guest).map_err(|e| format!("{}: {e}", guest.display()))?,
    )];
    let initrd = guest.with_file_name(format!("qemu-initramfs-{}.cpio", model.name));
    std::fs::write(&initrd, initramfs(&files)).map_err(|e| format!("{}: {e}", initrd.display()))?;
    let boot = boot(&tools, model, &initrd, BOOT_TIMEOUT)?;
    judge(model, &boot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::model::{AMD_VI, Scenario};

    const TWO: Model = Model {
        name: "m",
        iommu_device: "x",
        edu_device: "edu",
        scenarios: &[
            Scenario {
                name: "a",
                expect: Expect::Pass,
                what: "",
            },
            Scenario {
                name: "b",
                expect: Expect::NotYetAvailable,
                what: "",
            },
        ],
        caveat: "",
    };

    fn boot(console: &str) -> Boot {
        Boot {
            console: console.into(),
            finished: console.contains("DSMIL-QEMU m END"),
        }
    }

    #[test]
    fn lines_parse_and_noise_is_ignored() {
        let c = "[ 1.0] kernel noise\nDSMIL-QEMU m a PASS all fine\r\nDSMIL-QEMU m NOTE x\nDSMIL-QEMU other a FAIL\n";
        let lines = result_lines(&TWO, c);
        let timed = "DSMIL-QEMU m NOTE TIME a 1234 ms\nDSMIL-QEMU m NOTE TIME ab 9 ms\n";
        assert_eq!(scenario_ms(&TWO, timed, "a"), Some(1234));
        assert_eq!(scenario_ms(&TWO, timed, "b"), None);
        assert_eq!(
            lines,
            vec![ResultLine {
                scenario: "a".into(),
                verdict: "PASS".into(),
                detail: "all fine".into()
            }]
        );
    }

    #[test]
    fn judging_needs_every_line_an_end_and_no_failure() {
        let ok = "DSMIL-QEMU m a PASS x\nDSMIL-QEMU m b NOT-YET-AVAILABLE y\nDSMIL-QEMU m END\n";
        assert!(judge(&TWO, &boot(ok)).is_ok());
        let also_ok = "DSMIL-QEMU m a PASS x\nDSMIL-QEMU m b PASS y\nDSMIL-QEMU m END\n";
        assert!(judge(&TWO, &boot(also_ok)).is_ok());
        let failed = "DSMIL-QEMU m a FAIL x\nDSMIL-QEMU m b PASS y\nDSMIL-QEMU m END\n";
        assert!(judge(&TWO, &boot(failed)).is_err());
        let missing = "DSMIL-QEMU m b PASS y\nDSMIL-QEMU m END\n";
        let why = judge(&TWO, &boot(missing)).expect_err("missing line");
        assert!(why.contains("MISSING"));
        let unfinished = "DSMIL-QEMU m a PASS x\nDSMIL-QEMU m b PASS y\n";
        assert!(judge(&TWO, &boot(unfinished)).is_err(), "no END line");
        let not_yet = "DSMIL-QEMU amd-vi unit-up NOT-YET-AVAILABLE z\n";
        let b = Boot {
            console: not_yet.into(),
            finished: true,
        };
        assert!(
            judge(&AMD_VI, &b).is_err(),
            "NOT-YET-AVAILABLE is no pass where the model expects one"
        );
    }

    #[test]
    fn a_dynamic_executable_has_an_interpreter_and_junk_is_refused() {
        // This test binary is an ordinary (dynamic) build: the check must see it.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(has_interpreter(&me), Ok(true));
        assert!(has_interpreter(b"#!/bin/sh\n").is_err());
        assert!(has_interpreter(&me[..0x30]).is_err());
        // Program headers pointing past the end are an error, not a panic.
        let mut cut = me[..0x40].to_vec();
        cut[0x20..0x28].copy_from_slice(&0x1000u64.to_le_bytes());
        assert!(has_interpreter(&cut).is_err());
    }

    #[test]
    fn initramfs_holds_parents_before_children() {
        let files = vec![
            ("init".to_string(), b"x".to_vec()),
            ("lib/x86_64-linux-gnu/libc.so.6".to_string(), b"y".to_vec()),
        ];
        let a = initramfs(&files);
        let text = String::from_utf8_lossy(&a);
        let at = |n: &str| text.find(&format!("{n}\0")).expect(n);
        assert!(at("lib") < at("lib/x86_64-linux-gnu"));
        assert!(at("lib/x86_64-linux-gnu") < at("lib/x86_64-linux-gnu/libc.so.6"));
        assert!(at("dev/console") < at("init"));
    }
}
