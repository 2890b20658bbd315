//! The fuzz corpus replayed: every seed and every crasher the fuzzer ever found, in
//! `tests/fuzz_corpus/<target>/`, goes through its target again and must not panic. The seeds are
//! checked to be valid files (a fuzzer mutating garbage explores little), and inputs whose
//! declared sizes dwarf the file are refused before anything is allocated for them.

use std::path::{Path, PathBuf};

use tora_studio::fuzz::TARGETS;
use tora_studio::model::load::Checkpoint;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_replays_without_a_panic() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let files = corpus(target.name);
        assert!(!files.is_empty(), "{}: no seeds in tests/fuzz_corpus/{}", target.name, target.name);
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(|| (target.run)(&bytes)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that still panic:\n{}", failures.join("\n"));
}

#[test]
fn the_seeds_are_valid_files_of_their_format() {
    for file in corpus("pt").iter().filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("crash-")) {
        let name = file.file_name().unwrap().to_string_lossy();
        let top = ["module", "state_dict"].into_iter().find(|t| name.starts_with(t));
        let ckpt = Checkpoint::open_pt(file, top).unwrap_or_else(|e| panic!("{e}"));
        assert!(ckpt.keys().count() > 0, "{name}");
    }
    for file in corpus("safetensors").iter().filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("crash-"))
    {
        assert!(Checkpoint::open_file(file).unwrap_or_else(|e| panic!("{e}")).keys().count() > 0);
    }
    let spm = std::fs::read(&corpus("spm")[0]).unwrap();
    tora_studio::model::t5::spm::SpmModel::parse(&spm).unwrap();
    for file in corpus("project") {
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed = tora_studio::trajectory::project::from_json(&file, &text);
        if file.file_name().unwrap().to_string_lossy().starts_with("huge-") {
            // 4e8 frames or 4e9 pixels a side: refused by the scene's limits, before any sampling.
            let err = parsed.expect_err("an absurd scene was accepted").to_string();
            assert!(err.contains("at most"), "{err}");
        } else {
            parsed.unwrap();
        }
    }
    for file in corpus("points") {
        let text = std::fs::read_to_string(&file).unwrap();
        tora_studio::trajectory::point_file::parse_points(&file, &text).unwrap();
    }
}

/// Offsets of every central-directory entry named `name` in a zip (the header's start).
fn central_entry(zip: &[u8], name: &str) -> usize {
    (0..zip.len() - 46)
        .find(|&i| {
            zip[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] && {
                let n = u16::from_le_bytes([zip[i + 28], zip[i + 29]]) as usize;
                zip.get(i + 46..i + 46 + n) == Some(name.as_bytes())
            }
        })
        .unwrap_or_else(|| panic!("no central entry {name}"))
}

#[test]
fn declared_sizes_past_the_file_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    // A deflated data.pkl whose zip entry claims 4 GB (central and local headers both).
    let deflated = corpus("pt").into_iter().find(|p| p.ends_with("module-deflated.pt")).unwrap();
    let mut zip = std::fs::read(deflated).unwrap();
    let c = central_entry(&zip, "archive/data.pkl");
    zip[c + 24..c + 28].copy_from_slice(&u32::MAX.to_le_bytes());
    let local = u32::from_le_bytes(zip[c + 42..c + 46].try_into().unwrap()) as usize;
    zip[local + 22..local + 26].copy_from_slice(&u32::MAX.to_le_bytes());
    let path = tmp.path().join("huge-entry.pt");
    std::fs::write(&path, &zip).unwrap();
    let err = Checkpoint::open_pt(&path, Some("module")).err().expect("a 4 GB claim opened").to_string();
    // (refused from the sizes alone: nothing was allocated or inflated for the claim)
    assert!(err.contains("huge-entry.pt") && err.contains("4294967295"), "{err}");
    assert!(err.contains("more than deflate can produce"), "{err}");

    // A safetensors header claiming a 2^40 x 2^40 tensor over 24 bytes of data.
    let header = br#"{"x":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,24]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend_from_slice(&[0; 24]);
    let path = tmp.path().join("huge-shape.safetensors");
    std::fs::write(&path, &st).unwrap();
    let err = Checkpoint::open_file(&path).err().expect("a huge shape opened").to_string();
    assert!(err.contains("huge-shape.safetensors"), "{err}");
    // ... and a header length past the end of the file.
    let mut st = u64::MAX.to_le_bytes().to_vec();
    st.extend_from_slice(b"{}");
    std::fs::write(&path, &st).unwrap();
    assert!(Checkpoint::open_file(&path).is_err());

    // spiece.model: a piece whose length runs past the end of the file.
    let err = tora_studio::model::t5::spm::SpmModel::parse(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a']).unwrap_err();
    assert!(!err.is_empty());
    assert!(started.elapsed().as_secs() < 5, "the refusals took {:?}", started.elapsed());
}
