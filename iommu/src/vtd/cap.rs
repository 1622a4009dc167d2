//! CAP and ECAP decoding, and the checks iommud makes before driving a unit.
//!
//! Field positions: VT-d specification 11.4.2/11.4.3, Linux `cap_*`/`ecap_*`
//! in `drivers/iommu/intel/iommu.h`, QEMU `VTD_CAP_*`/`VTD_ECAP_*`.

use core::fmt;

fn bits(value: u64, hi: u32, lo: u32) -> u64 {
    (value >> lo) & ((1u64 << (hi - lo + 1)) - 1)
}

/// The capability register (offset 0x08).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability(pub u64);

impl Capability {
    /// ND (2:0): the unit supports 2^(4 + 2·ND) domain ids.
    pub fn domains(self) -> u32 {
        let nd = bits(self.0, 2, 0) as u32;
        // ND 7 is reserved; cap at the 16-bit DID space (ND = 6).
        1 << (4 + 2 * nd.min(6))
    }
    /// RWBF (4): table updates need a write-buffer flush.
    pub fn write_buffer_flush(self) -> bool {
        self.0 & (1 << 4) != 0
    }
    /// PLMR (5) or PHMR (6): protected memory regions exist.
    pub fn protected_regions(self) -> bool {
        self.0 & (3 << 5) != 0
    }
    /// CM (7): caching mode, the unit may cache not-present entries.
    pub fn caching_mode(self) -> bool {
        self.0 & (1 << 7) != 0
    }
    /// SAGAW (12:8): bit 1 = 3 levels (39-bit), bit 2 = 4 levels (48-bit),
    /// bit 3 = 5 levels (57-bit).
    pub fn sagaw(self) -> u8 {
        bits(self.0, 12, 8) as u8
    }
    /// MGAW (21:16) + 1: the widest guest (input) address in bits.
    pub fn mgaw_bits(self) -> u32 {
        bits(self.0, 21, 16) as u32 + 1
    }
    /// FRO (33:24) × 16: offset of the first fault-recording register.
    pub fn fault_record_offset(self) -> u64 {
        bits(self.0, 33, 24) * 16
    }
    /// SLLPS bit 34: 2 MiB second-level pages.
    pub fn superpage_2m(self) -> bool {
        self.0 & (1 << 34) != 0
    }
    /// SLLPS bit 35: 1 GiB second-level pages.
    pub fn superpage_1g(self) -> bool {
        self.0 & (1 << 35) != 0
    }
    /// PSI (39): page-selective IOTLB invalidation.
    pub fn page_selective(self) -> bool {
        self.0 & (1 << 39) != 0
    }
    /// NFR (47:40) + 1: number of fault-recording registers.
    pub fn fault_records(self) -> u32 {
        bits(self.0, 47, 40) as u32 + 1
    }
    /// MAMV (53:48): the largest address mask a PSI may carry.
    pub fn max_address_mask(self) -> u8 {
        bits(self.0, 53, 48) as u8
    }
    /// DWD (54): write draining.
    pub fn write_drain(self) -> bool {
        self.0 & (1 << 54) != 0
    }
    /// DRD (55): read draining.
    pub fn read_drain(self) -> bool {
        self.0 & (1 << 55) != 0
    }
    /// ESRTPS (63): the unit invalidates its caches itself on SRTP.
    pub fn srtp_invalidates(self) -> bool {
        self.0 & (1 << 63) != 0
    }
}

/// The extended capability register (offset 0x10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtendedCapability(pub u64);

impl ExtendedCapability {
    /// C (0): page walks snoop the CPU caches.
    pub fn coherent(self) -> bool {
        self.0 & 1 != 0
    }
    /// QI (1): queued invalidation.
    pub fn queued_invalidation(self) -> bool {
        self.0 & (1 << 1) != 0
    }
    /// DT (2): device-TLBs (ATS).
    pub fn device_tlb(self) -> bool {
        self.0 & (1 << 2) != 0
    }
    /// PT (6): pass-through context entries (TT = 10).
    pub fn pass_through(self) -> bool {
        self.0 & (1 << 6) != 0
    }
    /// IRO (17:8) × 16: offset of the IOTLB register pair.
    pub fn iotlb_offset(self) -> u64 {
        bits(self.0, 17, 8) * 16
    }
    /// SMTS (43): scalable mode (unused here: iommud drives legacy mode).
    pub fn scalable_mode(self) -> bool {
        self.0 & (1 << 43) != 0
    }
}

/// Why a unit cannot be driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapabilityError {
    /// ECAP.QI = 0: iommud invalidates through the queue only.
    NoQueuedInvalidation,
    /// SAGAW offers neither 3- nor 4-level tables.
    NoSupportedWidth(u8),
    /// MGAW is below 32 bits.
    GuestWidthTooSmall(u32),
}

impl fmt::Display for CapabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoQueuedInvalidation => write!(f, "no queued invalidation (ECAP.QI = 0)"),
            Self::NoSupportedWidth(s) => {
                write!(f, "SAGAW {s:#x} offers neither 3- nor 4-level tables")
            }
            Self::GuestWidthTooSmall(w) => write!(f, "MGAW of {w} bits is below 32"),
        }
    }
}

/// What iommud uses of a unit, decided once from CAP and ECAP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// The context entries' AW: 1 (39-bit, 3 levels) or 2 (48-bit, 4 levels).
    pub agaw: u8,
    /// Second-level table levels (`agaw + 2`).
    pub levels: u8,
    /// Widest IOVA the unit translates: min(AW width, MGAW).
    pub address_bits: u32,
    /// Domain ids the unit has (DID 0 is reserved, so `domains - 1` usable).
    pub domains: u32,
    /// 2 MiB leaves allowed.
    pub superpage_2m: bool,
    /// 1 GiB leaves allowed.
    pub superpage_1g: bool,
    /// Largest PSI address mask, `None` without PSI (every range flush is a DSI).
    pub max_address_mask: Option<u8>,
    /// CM: entries are flushed after being made present, too.
    pub caching_mode: bool,
    /// C: table writes need no cache flush. When false, real hardware needs
    /// every table write flushed from the CPU caches (Linux `clflush_cache_range`).
    pub coherent: bool,
    /// RWBF: a write-buffer flush after table updates.
    pub write_buffer_flush: bool,
    /// Pass-through context entries exist (ECAP.PT).
    pub pass_through: bool,
    /// Drain reads and writes on IOTLB invalidation (CAP.DRD / CAP.DWD).
    pub drain_reads: bool,
    /// See `drain_reads`.
    pub drain_writes: bool,
    /// The unit drops its caches itself on SRTP (CAP.ESRTPS).
    pub srtp_invalidates: bool,
    /// Offset of the first fault-recording register.
    pub fault_record_offset: u64,
    /// Number of fault-recording registers.
    pub fault_records: u32,
    /// Offset of the IVA/IOTLB register pair.
    pub iotlb_offset: u64,
    /// Bytes of register window the unit needs (Linux `map_iommu`: the end of
    /// the IOTLB pair or of the fault records, rounded up to pages).
    pub register_bytes: u64,
}

impl Features {
    /// Decides how to drive a unit, using at most `max_bits` of IOVA (48: up
    /// to 4 levels). Picks the widest AW that SAGAW offers and `max_bits`
    /// allows, as Linux's `iommu_calculate_agaw` does.
    pub fn decide(
        cap: Capability,
        ecap: ExtendedCapability,
        max_bits: u32,
    ) -> Result<Self, CapabilityError> {
        if !ecap.queued_invalidation() {
            return Err(CapabilityError::NoQueuedInvalidation);
        }
        let mgaw = cap.mgaw_bits();
        if mgaw < 32 {
            return Err(CapabilityError::GuestWidthTooSmall(mgaw));
        }
        let sagaw = cap.sagaw();
        let agaw = [2u8, 1]
            .into_iter()
            .find(|&a| sagaw & (1 << a) != 0 && (a == 1 || 30 + 9 * u32::from(a) <= max_bits))
            .ok_or(CapabilityError::NoSupportedWidth(sagaw))?;
        let width = 30 + 9 * u32::from(agaw);
        let fault_end = cap.fault_record_offset() + 16 * u64::from(cap.fault_records());
        let iotlb_end = ecap.iotlb_offset() + 16;
        Ok(Self {
            agaw,
            levels: agaw + 2,
            address_bits: width.min(mgaw).min(max_bits.max(32)),
            domains: cap.domains(),
            superpage_2m: cap.superpage_2m(),
            superpage_1g: cap.superpage_1g(),
            max_address_mask: cap.page_selective().then_some(cap.max_address_mask()),
            caching_mode: cap.caching_mode(),
            coherent: ecap.coherent(),
            write_buffer_flush: cap.write_buffer_flush(),
            pass_through: ecap.pass_through(),
            drain_reads: cap.read_drain(),
            drain_writes: cap.write_drain(),
            srtp_invalidates: cap.srtp_invalidates(),
            fault_record_offset: cap.fault_record_offset(),
            fault_records: cap.fault_records(),
            iotlb_offset: ecap.iotlb_offset(),
            register_bytes: fault_end.max(iotlb_end).max(0x100).next_multiple_of(4096),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 7.2 `-device intel-iommu` (notes §A.1, read with `xp`).
    const QEMU_CAP: u64 = 0x00d2_008c_2226_0206;
    const QEMU_ECAP: u64 = 0x0000_0000_00f0_0f4a;
    /// `caching-mode=on,aw-bits=48`.
    const QEMU_CM48_CAP: u64 = 0x00d2_008c_222f_0686;
    const QEMU_CM48_ECAP: u64 = 0x0000_0000_0000_0f46;

    #[test]
    fn qemu_default_decodes_as_the_notes_say() {
        let cap = Capability(QEMU_CAP);
        let ecap = ExtendedCapability(QEMU_ECAP);
        assert_eq!(cap.domains(), 65_536);
        assert_eq!(cap.sagaw(), 0x2);
        assert_eq!(cap.mgaw_bits(), 39);
        assert_eq!(cap.fault_record_offset(), 0x220);
        assert_eq!(cap.fault_records(), 1);
        assert!(cap.superpage_2m() && cap.superpage_1g() && cap.page_selective());
        assert_eq!(cap.max_address_mask(), 18);
        assert!(!cap.caching_mode() && cap.read_drain() && cap.write_drain());
        assert!(ecap.queued_invalidation() && ecap.pass_through() && !ecap.coherent());
        assert_eq!(ecap.iotlb_offset(), 0xF0);
        let f = Features::decide(cap, ecap, 48).unwrap();
        assert_eq!((f.agaw, f.levels, f.address_bits), (1, 3, 39));
        assert_eq!(f.register_bytes, 4096);
        assert_eq!(f.max_address_mask, Some(18));
    }

    #[test]
    fn caching_mode_and_48_bit_pick_four_levels() {
        let f = Features::decide(
            Capability(QEMU_CM48_CAP),
            ExtendedCapability(QEMU_CM48_ECAP),
            48,
        )
        .unwrap();
        assert!(f.caching_mode);
        assert_eq!((f.agaw, f.levels, f.address_bits), (2, 4, 48));
        // A 39-bit limit keeps 3 levels even where 4 exist.
        let f = Features::decide(
            Capability(QEMU_CM48_CAP),
            ExtendedCapability(QEMU_CM48_ECAP),
            39,
        )
        .unwrap();
        assert_eq!((f.agaw, f.levels), (1, 3));
    }

    #[test]
    fn units_iommud_cannot_drive_are_refused() {
        let no_qi = ExtendedCapability(QEMU_ECAP & !2);
        assert_eq!(
            Features::decide(Capability(QEMU_CAP), no_qi, 48),
            Err(CapabilityError::NoQueuedInvalidation)
        );
        // SAGAW with only 5-level tables.
        let five = Capability((QEMU_CAP & !(0x1F << 8)) | (0x8 << 8));
        assert_eq!(
            Features::decide(five, ExtendedCapability(QEMU_ECAP), 48),
            Err(CapabilityError::NoSupportedWidth(0x8))
        );
        // No PSI: range flushes become domain flushes.
        let no_psi = Capability(QEMU_CAP & !(1 << 39));
        let f = Features::decide(no_psi, ExtendedCapability(QEMU_ECAP), 48).unwrap();
        assert_eq!(f.max_address_mask, None);
        // ND = 0: 16 domain ids.
        assert_eq!(Capability(QEMU_CAP & !7).domains(), 16);
    }
}
