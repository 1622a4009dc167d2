//! The committed fuzz corpora (`fuzz/corpus/<target>/`), replayed through the
//! same functions the `cargo fuzz` targets call, so `cargo test` on stable
//! paths keeps every input that once mattered passing. `.ci/run` also runs each
//! target under libFuzzer for a fixed time.

use std::path::Path;

use dsmil_tests::fuzzing;

/// What one fuzz target runs on one input.
type Target = fn(&[u8]);

/// Every target, by corpus directory name, and what it runs.
const TARGETS: &[(&str, Target)] = &[
    ("dsmil_wire", fuzzing::dsmil_wire),
    ("iommu_wire", fuzzing::iommu_wire),
    ("pcid_wire", fuzzing::pcid_wire),
    ("ivrs", fuzzing::ivrs),
    ("dmar", fuzzing::dmar),
    ("dsmil_requests", fuzzing::dsmil_requests),
    ("iommu_requests", fuzzing::iommu_requests),
];

fn replay(target: &str, run: Target) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        run(&data);
        inputs += 1;
    }
    inputs
}

#[test]
fn every_target_has_a_corpus_that_replays_clean() {
    for (target, run) in TARGETS {
        let n = replay(target, *run);
        assert!(n > 0, "fuzz/corpus/{target} is empty");
    }
}

#[test]
fn every_fuzz_target_is_replayed_here() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fuzz/fuzz_targets")
        .map(|e| {
            e.expect("entry")
                .path()
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let mut ours: Vec<String> = TARGETS.iter().map(|(t, _)| t.to_string()).collect();
    ours.sort();
    assert_eq!(names, ours);
}

#[test]
fn empty_and_tiny_inputs_are_fine_everywhere() {
    for (_, run) in TARGETS {
        for data in [&[][..], &[0], &[0xff; 3], &[7; 64]] {
            run(data);
        }
    }
}
