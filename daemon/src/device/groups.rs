//! Group dependencies: which groups of 12 devices must be up before another
//! group's devices may become operational.

use crate::wire::GROUP_COUNT;

/// The groups that `group` depends on (empty for groups 0, 6, 7, 8).
///
/// Group 1 needs 0; 2 needs 0–1; 3 needs 0; 4 needs 0–2; 5 needs 0–4.
/// Unknown group numbers depend on nothing (there are none: callers derive
/// groups from validated tokens).
pub const fn dependencies(group: usize) -> &'static [usize] {
    match group {
        1 => &[0],
        2 => &[0, 1],
        3 => &[0],
        4 => &[0, 1, 2],
        5 => &[0, 1, 2, 3, 4],
        _ => &[],
    }
}

// Dependencies only point at lower groups, so bringing groups up in numeric
// order always satisfies them (and no cycle is possible).
const _: () = {
    let mut g = 0;
    while g < GROUP_COUNT {
        let deps = dependencies(g);
        let mut i = 0;
        while i < deps.len() {
            assert!(deps[i] < g);
            i += 1;
        }
        g += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_dependencies() {
        assert_eq!(dependencies(0), &[] as &[usize]);
        assert_eq!(dependencies(1), &[0]);
        assert_eq!(dependencies(2), &[0, 1]);
        assert_eq!(dependencies(3), &[0]);
        assert_eq!(dependencies(4), &[0, 1, 2]);
        assert_eq!(dependencies(5), &[0, 1, 2, 3, 4]);
        for g in 6..GROUP_COUNT {
            assert!(dependencies(g).is_empty());
        }
    }
}
