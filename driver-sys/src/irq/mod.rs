//! irq
