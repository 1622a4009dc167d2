//! Which interrupt vectors each CPU's IDT has reserved, as the x86 Redox kernel keeps
//! them (kernel `src/arch/x86_shared/idt.rs`).

/// Vectors per IDT.
const VECTORS: usize = 256;
const WORDS: usize = VECTORS / 64;

/// The first vector of the IPIs (`0x40..=0x43`: wakeup, TLB, switch, pit).
const IPI_FIRST: u8 = 0x40;
/// The last IPI vector the kernel reserves without its profiling feature.
const IPI_LAST: u8 = 0x43;
/// The BSP's local APIC timer vector (IRQ 16).
const BSP_TIMER: u8 = 48;
/// The local APIC error vector (IRQ 17), reserved on every CPU.
const LAPIC_ERROR: u8 = 49;

/// One CPU's reserved-vector bitmap.
#[derive(Clone, Copy)]
pub(super) struct Idt {
    reserved: [u64; WORDS],
}

fn bit(vector: u8) -> (usize, u64) {
    (usize::from(vector / 64), 1u64 << (vector % 64))
}

impl Idt {
    /// The IDT of a freshly booted CPU.
    ///
    /// Copies kernel `src/arch/x86_shared/idt.rs` (`init_generic`): vectors 0–31
    /// (exceptions) and the IPIs `0x40..=0x43` on every CPU; on the BSP also 32–49
    /// (legacy IRQs 0–15, the LAPIC timer and error vectors); on APs vector 49.
    /// The `0x80` software-interrupt vector is only reserved on 32-bit x86, and `0x44`
    /// only with the profiling feature; the simulated machine is x86_64 without it.
    pub(super) fn boot(is_bsp: bool) -> Self {
        let mut idt = Self {
            reserved: [0; WORDS],
        };
        for v in 0..32 {
            idt.set(v);
        }
        for v in IPI_FIRST..=IPI_LAST {
            idt.set(v);
        }
        if is_bsp {
            for v in 32..=LAPIC_ERROR {
                idt.set(v);
            }
        } else {
            idt.set(LAPIC_ERROR);
        }
        idt
    }

    fn set(&mut self, vector: u8) {
        let (w, b) = bit(vector);
        if let Some(word) = self.reserved.get_mut(w) {
            *word |= b;
        }
    }

    /// Whether `vector` is reserved (kernel `idt.rs` `is_reserved`).
    pub(super) fn is_reserved(&self, vector: u8) -> bool {
        let (w, b) = bit(vector);
        self.reserved.get(w).is_some_and(|word| word & b != 0)
    }

    /// Kernel `idt.rs` `set_reserved`: the bit is combined with `fetch_or`, so
    /// reserving sets it and **clearing is a no-op**. This is why no vector reserved
    /// through `/scheme/irq` is ever released on x86.
    pub(super) fn set_reserved(&mut self, vector: u8, reserved: bool) {
        let (w, b) = bit(vector);
        if let Some(word) = self.reserved.get_mut(w) {
            *word |= if reserved { b } else { 0 };
        }
    }

    /// The free vectors of 32..=254, ascending (kernel `idt.rs`
    /// `available_irqs_iter`; vector 255 can be reserved but is never listed).
    pub(super) fn available(&self) -> impl Iterator<Item = u8> + '_ {
        (32..=254u8).filter(|&v| !self.is_reserved(v))
    }

    /// Whether the kernel's own handler owns `vector` (exceptions, IPIs, the LAPIC
    /// timer and error vectors): an MSI sent there never reaches the `irq` scheme.
    pub(super) fn is_kernel_vector(vector: u8, is_bsp: bool) -> bool {
        vector < 32
            || (IPI_FIRST..=IPI_LAST).contains(&vector)
            || vector == LAPIC_ERROR
            || (is_bsp && vector == BSP_TIMER)
    }

    /// Number of reserved vectors.
    pub(super) fn reserved_count(&self) -> usize {
        self.reserved.iter().map(|w| w.count_ones() as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_irqs_after_boot_match_the_kernel() {
        let irqs = |idt: &Idt| -> Vec<u8> { idt.available().map(|v| v - 32).collect() };
        let bsp: Vec<u8> = (18..=31).chain(36..=222).collect();
        assert_eq!(irqs(&Idt::boot(true)), bsp);
        let ap: Vec<u8> = (0..=16).chain(18..=31).chain(36..=222).collect();
        assert_eq!(irqs(&Idt::boot(false)), ap);
    }

    #[test]
    fn clearing_a_reservation_does_nothing() {
        let mut idt = Idt::boot(false);
        idt.set_reserved(100, true);
        idt.set_reserved(100, false);
        assert!(idt.is_reserved(100));
    }
}
