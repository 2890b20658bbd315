//! SAT checkpoints: every `tiny-tora-i2v-sat`-like fixture (a folder holding
//! `tora/*/mp_rank_00_model_states.pt`) is served under diffusers names with the values of its
//! diffusers twin, bit for bit, and no SAT key is left unmapped but the documented drops; the yaml
//! gives the twin's configs; the torch zip reader refuses code-referencing pickles, truncated files
//! and missing top keys with messages naming file and key (on files written here, byte by byte).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::common::{cpu, fixtures_root};
use tora_studio::model::load::model_folder::{ComponentKind, FolderKind, ModelFolder, SatTree};
use tora_studio::model::load::sat::{self, SatSemantics};
use tora_studio::model::load::{Checkpoint, Layout, LoadError, Served, TensorLoader};
use tora_studio::verify;

/// Every SAT tree under the fixtures: the folder holding `tora/<variant>/mp_rank_00_model_states.pt`.
fn sat_folders() -> Vec<PathBuf> {
    let root = fixtures_root();
    let mut dirs: Vec<PathBuf> = verify::walk_files(&root)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "mp_rank_00_model_states.pt"))
        .filter_map(|p| Some(p.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|d| d.join("tora").is_dir())
        .collect();
    dirs.sort();
    dirs.dedup();
    if dirs.is_empty() {
        verify::say_loudly(&format!(
            "WARNING: no tora/*/mp_rank_00_model_states.pt fixtures under {}: SAT loading tests are SKIPPED. Set TORA_FIXTURES.",
            root.display()
        ));
    }
    dirs
}

/// The diffusers folder holding the same weights: named by the SAT folder's manifest, else the
/// sibling pipeline whose transformer serves exactly the SAT view's keys.
fn twin_of(sat_dir: &Path) -> PathBuf {
    let tree = SatTree::find(sat_dir).expect("sat tree");
    if let Some(t) = tree.diffusers_twin() {
        return t;
    }
    let view = sat::open_sat_transformer(sat_dir).expect("sat transformer");
    let want: BTreeSet<&str> = view.keys().collect();
    let parent = sat_dir.parent().expect("parent");
    let mut sibs: Vec<PathBuf> = std::fs::read_dir(parent).expect("ls").flatten().map(|e| e.path()).collect();
    sibs.sort();
    sibs.into_iter()
        .filter(|d| d.join("model_index.json").is_file())
        .find(|d| Checkpoint::open_dir(&d.join("transformer")).is_ok_and(|c| c.keys().collect::<BTreeSet<_>>() == want))
        .unwrap_or_else(|| panic!("{}: no diffusers twin found", sat_dir.display()))
}

/// The error of an open that must fail (`Checkpoint` has no Debug for `expect_err`).
fn fails(r: Result<Checkpoint, LoadError>) -> LoadError {
    match r {
        Ok(c) => panic!("{} opened, but should not have", c.source().display()),
        Err(e) => e,
    }
}

/// The view serves exactly the twin's keys, each with the same shape and bit-identical values
/// (the twin's f64 `pos_embedding` compared after the cast to f32, as loading does).
fn assert_same_tensors(view: &Checkpoint, twin: &Checkpoint, what: &str) {
    let a: Vec<&str> = view.keys().collect();
    let b: Vec<&str> = twin.keys().collect();
    let only_view: Vec<&&str> = a.iter().filter(|k| !twin.contains(k)).collect();
    let only_twin: Vec<&&str> = b.iter().filter(|k| !view.contains(k)).collect();
    assert!(
        only_view.is_empty() && only_twin.is_empty(),
        "{what}: only in SAT view {only_view:?}; only in twin {only_twin:?}"
    );
    for k in b {
        assert_eq!(view.shape(k), twin.shape(k), "{what}: {k} shape");
        let dt = twin.dtype(k).expect("dtype");
        let int = matches!(format!("{dt:?}").as_str(), "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL");
        if int {
            assert_eq!(view.read_i64(k).expect("sat int").0, twin.read_i64(k).expect("twin int").0, "{what}: {k}");
        } else {
            let (x, _) = view.read_f32(k, Layout::AsStored).expect("sat read");
            let (y, _) = twin.read_f32(k, Layout::AsStored).expect("twin read");
            let same = x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{what}: {k} (stored in SAT as {:?}) differs", view.stored_name(k));
        }
    }
}

#[test]
fn sat_transformer_serves_every_diffusers_tensor_bit_identically() {
    for dir in sat_folders() {
        let twin = twin_of(&dir);
        let view = sat::open_sat_transformer(&dir).expect("open SAT transformer");
        let diff = Checkpoint::open_dir(&twin.join("transformer")).expect("open twin");
        assert_same_tensors(&view, &diff, &format!("{} transformer", dir.display()));
        // The same view also through a Linear load (transposed) as the modules do.
        let k = "transformer_blocks.0.attn1.to_k.weight";
        let (rows, cols) = match view.shape(k) {
            Some(&[r, c]) => (r, c),
            other => panic!("{k}: {other:?}"),
        };
        let (t, shape) = view.read_f32(k, Layout::Transposed).expect("transposed");
        let (s, _) = diff.read_f32(k, Layout::Transposed).expect("twin transposed");
        assert_eq!(shape, vec![cols, rows]);
        assert_eq!(t, s);
    }
}

#[test]
fn sat_vae_serves_every_diffusers_tensor_bit_identically() {
    for dir in sat_folders() {
        let twin = twin_of(&dir);
        let view = sat::open_sat_vae(&dir).expect("open SAT vae");
        let diff = Checkpoint::open_dir(&twin.join("vae")).expect("open twin");
        assert_same_tensors(&view, &diff, &format!("{} vae", dir.display()));
    }
}

/// "Both ways": every SAT key maps forwards (or is a documented drop), every twin key maps back
/// to a SAT key of the file, and the two directions agree.
#[test]
fn sat_table_covers_both_directions() {
    let documented_drops =
        ["mixins.pos_embed.freqs_sin", "mixins.pos_embed.freqs_cos", "transformer.position_embeddings.weight"];
    for dir in sat_folders() {
        let tree = SatTree::find(&dir).expect("tree");
        let twin = twin_of(&dir);
        let cases = [
            (
                Checkpoint::open_pt(&tree.transformer_file().unwrap(), Some("module")).unwrap(),
                sat::TRANSFORMER,
                "transformer",
            ),
            (Checkpoint::open_pt(&tree.vae_file().unwrap(), Some("state_dict")).unwrap(), sat::VAE, "vae"),
        ];
        for (raw, table, sub) in cases {
            let up = sat::up_blocks(raw.keys());
            let mut dropped = Vec::new();
            for k in raw.keys() {
                match sat::sat_to_diffusers(&table, k, up) {
                    None => panic!("{}: SAT key '{k}' has no rule", raw.source().display()),
                    Some(Served::Dropped) => dropped.push(k.strip_prefix(table.prefix).unwrap_or(k).to_string()),
                    Some(_) => {}
                }
            }
            for d in &dropped {
                assert!(documented_drops.contains(&d.as_str()), "{sub}: undocumented drop {d}");
            }
            let diff = Checkpoint::open_dir(&twin.join(sub)).unwrap();
            let up_d = sat::up_blocks(diff.keys());
            assert_eq!(up, up_d, "{sub}: up block count");
            for k in diff.keys() {
                let (sat_key, chunks) =
                    sat::diffusers_to_sat(&table, k, up_d).unwrap_or_else(|| panic!("{sub}: '{k}' has no SAT source"));
                assert!(raw.contains(&sat_key), "{sub}: '{k}' maps back to '{sat_key}', absent from the file");
                let fwd = sat::sat_to_diffusers(&table, &sat_key, up).expect("forward");
                let back_ok = match (&fwd, &chunks) {
                    (Served::As(n), None) => n == k,
                    (Served::RowChunks { chunks: c, parts }, Some((c2, idx))) => {
                        c == c2 && parts.iter().any(|(n, i)| n == k && i == idx)
                    }
                    _ => false,
                };
                assert!(back_ok, "{sub}: '{k}' -> '{sat_key}' {chunks:?} -> {fwd:?}");
            }
        }
    }
}

#[test]
fn sat_view_loads_through_tensor_loader_and_names_file_and_key_on_mismatch() {
    for dir in sat_folders() {
        let view = sat::open_sat_transformer(&dir).unwrap();
        let dev = cpu();
        let mut loader = TensorLoader::new(&view, &dev);
        let shape = view.shape("proj_out.bias").unwrap().to_vec();
        let _ok = loader.tensor::<1>("proj_out.bias", [shape[0]]);
        let _bad = loader.tensor::<1>("norm_final.weight", [shape[0] + 1]);
        let err = loader.finish().expect_err("mismatch and unused keys");
        let msg = err.to_string();
        println!("{msg}");
        assert!(msg.contains("norm_final.weight"), "{msg}");
        assert!(msg.contains("mp_rank_00_model_states.pt"), "{msg}");
        match err {
            LoadError::Keys { mismatched, unexpected, .. } => {
                assert_eq!(mismatched.len(), 1);
                assert_eq!(unexpected.len(), view.keys().count() - 2);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn yaml_gives_the_twins_configs() {
    for dir in sat_folders() {
        let tree = SatTree::find(&dir).unwrap();
        let yaml = tree.yaml().expect("yaml");
        let twin = twin_of(&dir);
        let read =
            |p: PathBuf| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap() };
        let want_t = read(twin.join("transformer/config.json"));
        let want_v = read(twin.join("vae/config.json"));
        let got_t = yaml.transformer_config().expect("transformer config");
        let groups = want_v["norm_num_groups"].as_u64();
        let got_v = yaml.vae_config(groups).expect("vae config");
        // diffusers' version stamp; the VAE's tiling sizes, which SAT has no field for.
        let skip = ["_diffusers_version", "sample_height", "sample_width"];
        for (what, want, got, skip) in
            [("transformer", &want_t, &got_t, &skip[..1]), ("vae", &want_v, &got_v, &skip[..])]
        {
            let want = want.as_object().unwrap();
            let got = got.as_object().unwrap();
            for (k, w) in want {
                if skip.contains(&k.as_str()) {
                    continue;
                }
                let g = got.get(k).unwrap_or_else(|| panic!("{what}: yaml config lacks '{k}'"));
                let same = match (w.as_f64(), g.as_f64()) {
                    (Some(a), Some(b)) => a == b,
                    _ => w == g,
                };
                assert!(same, "{what}.{k}: twin {w}, from yaml {g}");
            }
            for k in got.keys() {
                assert!(want.contains_key(k), "{what}: yaml config has '{k}', the twin's does not");
            }
        }
        // Without a twin, SAT's hard-coded 32 groups.
        assert_eq!(yaml.vae_config(None).unwrap()["norm_num_groups"], 32);
        let i2v = want_t["in_channels"].as_u64() == want_t["out_channels"].as_u64().map(|o| 2 * o);
        assert_eq!(yaml.variant().as_deref(), Some(if i2v { "i2v" } else { "t2v" }));
        let sat = SatSemantics { add_learned_pos_embedding: false, final_norm_eps: Some(1e-6) };
        assert_eq!(SatSemantics::TORA_SAT, sat);
    }
}

#[test]
fn model_folders_are_recognised_by_content() {
    for dir in sat_folders() {
        let m = ModelFolder::inspect(&dir).expect("inspect");
        println!("{}", m.describe());
        assert_eq!(m.kind, FolderKind::Sat);
        assert!(m.missing.is_empty(), "{:?}", m.missing);
        for k in [
            ComponentKind::Transformer,
            ComponentKind::Vae,
            ComponentKind::TextEncoder,
            ComponentKind::Tokenizer,
            ComponentKind::ModelConfig,
        ] {
            let c = m.component(k).unwrap_or_else(|| panic!("{k:?} not found"));
            assert!(c.bytes > 0);
        }
        let t = m.component(ComponentKind::Transformer).unwrap();
        assert!(t.dtype.as_deref().is_some_and(|d| !d.starts_with("unreadable") && d != "empty"), "{:?}", t.dtype);
        assert!(t.variant.is_some());

        let twin = twin_of(&dir);
        let d = ModelFolder::inspect(&twin).unwrap();
        println!("{}", d.describe());
        assert!(matches!(d.kind, FolderKind::Diffusers { ref class } if !class.is_empty()));
        assert!(d.missing.is_empty(), "{:?}", d.missing);
        let v = ModelFolder::inspect(&twin.join("vae")).unwrap();
        assert_eq!(v.kind, FolderKind::Component(ComponentKind::Vae));

        // A SAT tree without its VAE says what is missing and where to get it.
        let tmp = tempfile::tempdir().unwrap();
        let pt = tree_file(&dir, "tora");
        let rel = pt.strip_prefix(&dir).unwrap();
        std::fs::create_dir_all(tmp.path().join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&pt, tmp.path().join(rel)).unwrap();
        let m = ModelFolder::inspect(tmp.path()).unwrap();
        println!("{}", m.describe());
        let kinds: Vec<ComponentKind> = m.missing.iter().map(|x| x.kind).collect();
        assert_eq!(kinds, [ComponentKind::Vae, ComponentKind::TextEncoder, ComponentKind::ModelConfig]);
        assert!(m.missing[0].hint.contains("3d-vae.pt"));
        let err = fails(sat::open_sat_vae(tmp.path()));
        assert!(matches!(err, LoadError::NotFound { .. }), "{err}");
    }
}

fn tree_file(dir: &Path, under: &str) -> PathBuf {
    verify::walk_files(&dir.join(under)).into_iter().find(|p| p.extension().is_some_and(|x| x == "pt")).unwrap()
}

#[test]
fn truncated_or_keyless_pt_files_name_file_and_key() {
    for dir in sat_folders() {
        let tree = SatTree::find(&dir).unwrap();
        let file = tree.vae_file().unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        for cut in [bytes.len() / 2, bytes.len() - 30, 100] {
            let p = tmp.path().join(format!("cut{cut}.pt"));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let err = fails(Checkpoint::open_pt(&p, Some("state_dict")));
            let msg = err.to_string();
            println!("{msg}");
            assert!(matches!(err, LoadError::Pt { .. }), "{err:?}");
            assert!(msg.contains(&p.display().to_string()), "{msg}");
        }
        // The VAE file holds "state_dict", not "module".
        let err = fails(Checkpoint::open_pt(&file, Some("module")));
        let msg = err.to_string();
        println!("{msg}");
        assert!(matches!(err, LoadError::MissingTopKey { .. }));
        assert!(msg.contains("'module'") && msg.contains("'state_dict'") && msg.contains("3d-vae.pt"), "{msg}");
    }
}

#[test]
fn torch_zip_in_a_component_folder_loads_and_legacy_pickles_are_refused() {
    for dir in sat_folders() {
        let tree = SatTree::find(&dir).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(tree.vae_file().unwrap(), tmp.path().join("pytorch_model.bin")).unwrap();
        let c = Checkpoint::open_dir(tmp.path()).expect("zip .bin opens");
        let raw = Checkpoint::open_pt(&tree.vae_file().unwrap(), Some("state_dict")).unwrap();
        assert_eq!(c.keys().count(), raw.keys().count());
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("pytorch_model.bin"), b"\x80\x02}q\x00.").unwrap();
    let err = fails(Checkpoint::open_dir(tmp.path()));
    println!("{err}");
    assert!(matches!(err, LoadError::Pickle { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// hand-written torch.save files

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// A zip archive of `(name, data, deflate)` entries, as torch.save lays them out.
fn zip(entries: &[(&str, Vec<u8>, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data, deflate) in entries {
        let stored = if *deflate {
            use std::io::Write;
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        } else {
            data.clone()
        };
        let method: u16 = if *deflate { 8 } else { 0 };
        let offset = out.len() as u32;
        let crc = crc32(data);
        let mut h = Vec::new();
        h.extend(0x0403_4b50u32.to_le_bytes());
        h.extend(20u16.to_le_bytes());
        h.extend(0u16.to_le_bytes());
        h.extend(method.to_le_bytes());
        h.extend([0u8; 4]);
        h.extend(crc.to_le_bytes());
        h.extend((stored.len() as u32).to_le_bytes());
        h.extend((data.len() as u32).to_le_bytes());
        h.extend((name.len() as u16).to_le_bytes());
        h.extend(0u16.to_le_bytes());
        h.extend(name.as_bytes());
        out.extend(&h);
        out.extend(&stored);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        central.extend(0u16.to_le_bytes());
        central.extend(method.to_le_bytes());
        central.extend([0u8; 4]);
        central.extend(crc.to_le_bytes());
        central.extend((stored.len() as u32).to_le_bytes());
        central.extend((data.len() as u32).to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend([0u8; 12]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// Protocol-2 pickle bytes of a unicode string.
fn s(text: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend((text.len() as u32).to_le_bytes());
    v.extend(text.as_bytes());
    v
}

fn int(i: u8) -> Vec<u8> {
    vec![b'K', i]
}

fn tuple(items: &[u8]) -> Vec<u8> {
    let mut v = vec![b'('];
    v.extend(items);
    v.push(b't');
    v
}

/// `_rebuild_tensor_v2(('storage', <class>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`.
fn tensor(class: &str, key: &str, numel: u8, offset: u8, size: &[u8], stride: &[u8]) -> Vec<u8> {
    let mut v = b"ctorch._utils\n_rebuild_tensor_v2\n".to_vec();
    let mut pid = s("storage");
    pid.extend(format!("ctorch\n{class}\n").as_bytes());
    pid.extend(s(key));
    pid.extend(s("cpu"));
    pid.extend(int(numel));
    let mut args = tuple(&pid);
    args.push(b'Q');
    args.extend(int(offset));
    args.extend(tuple(&size.iter().flat_map(|&d| int(d)).collect::<Vec<_>>()));
    args.extend(tuple(&stride.iter().flat_map(|&d| int(d)).collect::<Vec<_>>()));
    args.push(0x89);
    args.extend(b"ccollections\nOrderedDict\n)R");
    v.extend(tuple(&args));
    v.push(b'R');
    v
}

/// `{"state_dict": {k: v, ...}}` with the given pickled values.
fn state_dict_pickle(items: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut inner = Vec::new();
    for (k, v) in items {
        inner.extend(s(k));
        inner.extend(v);
    }
    let mut p = b"\x80\x02}q\x00".to_vec();
    p.extend(s("state_dict"));
    p.extend(b"ccollections\nOrderedDict\nq\x01)R(");
    p.extend(inner);
    p.extend(b"us.");
    p
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn crafted_pickles_referencing_code_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // The classic: os.system('ls') via REDUCE, and builtins.eval via the protocol-4 STACK_GLOBAL.
    let os_system = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.".to_vec();
    let mut eval = b"\x80\x04".to_vec();
    eval.extend(s("builtins"));
    eval.extend(s("eval"));
    eval.extend(b"\x93");
    eval.extend(s("1+1"));
    eval.extend(b"\x85R.");
    // A state dict whose tensor hides a call to posix.system as its backward hooks.
    let hooks = state_dict_pickle(&[(
        "w",
        [b"ctorch._utils\n_rebuild_tensor_v2\n(".to_vec(), b"cposix\nsystem\n".to_vec()].concat(),
    )]);
    for (name, pkl, global) in
        [("os.pt", os_system, "os.system"), ("eval.pt", eval, "builtins.eval"), ("hooks.pt", hooks, "posix.system")]
    {
        let bytes = zip(&[("archive/data.pkl", pkl, false), ("archive/byteorder", b"little".to_vec(), false)]);
        let p = write(tmp.path(), name, &bytes);
        let err = fails(Checkpoint::open_pt(&p, None));
        let msg = err.to_string();
        println!("{msg}");
        assert!(matches!(&err, LoadError::PickleGlobal { global: g, .. } if g == global), "{err:?}");
        assert!(msg.contains(global) && msg.contains(name), "{msg}");
    }
}

#[test]
fn crafted_views_shared_storages_and_compressed_entries_read_right() {
    let tmp = tempfile::tempdir().unwrap();
    let f32s: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let bf16s: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| half::bf16::from_f32(*x).to_bits().to_le_bytes()).collect();
    let pkl = state_dict_pickle(&[
        // storage 0 seen as [2,3], as its transpose [3,2] (stride [1,3]) and as the tail [2..6)
        ("a", tensor("FloatStorage", "0", 6, 0, &[2, 3], &[3, 1])),
        ("a_t", tensor("FloatStorage", "0", 6, 0, &[3, 2], &[1, 3])),
        ("tail", tensor("FloatStorage", "0", 6, 2, &[4], &[1])),
        ("h", tensor("BFloat16Storage", "1", 2, 0, &[2], &[1])),
        ("n", tensor("LongStorage", "2", 1, 0, &[], &[])),
    ]);
    let entries = [
        ("m/data.pkl", pkl.clone(), false),
        ("m/byteorder", b"little".to_vec(), false),
        ("m/data/0", f32s.clone(), false),
        ("m/data/1", bf16s.clone(), true),
        ("m/data/2", 7i64.to_le_bytes().to_vec(), false),
    ];
    let p = write(tmp.path(), "views.pt", &zip(&entries));
    let c = Checkpoint::open_pt(&p, Some("state_dict")).expect("open");
    let f = |k: &str| c.read_f32(k, Layout::AsStored).unwrap();
    assert_eq!(f("a"), (vec![0., 1., 2., 3., 4., 5.], vec![2, 3]));
    assert_eq!(f("a_t"), (vec![0., 3., 1., 4., 2., 5.], vec![3, 2]));
    assert_eq!(c.read_f32("a", Layout::Transposed).unwrap().0, f("a_t").0);
    assert_eq!(f("tail"), (vec![2., 3., 4., 5.], vec![4]));
    assert_eq!(f("h"), (vec![1.5, -2.0], vec![2]));
    assert_eq!(c.read_i64("n").unwrap(), (vec![7], vec![]));
    assert!(matches!(c.read_f32("n", Layout::AsStored), Err(LoadError::Dtype { .. })));

    // Row chunks of a strided view, through the rename mechanism.
    let r = Checkpoint::open_pt(&p, Some("state_dict"))
        .unwrap()
        .renamed(|k| match k {
            "a_t" => Served::RowChunks { chunks: 3, parts: vec![("x".into(), vec![2, 0]), ("y".into(), vec![1])] },
            "a" | "tail" | "h" | "n" => Served::Dropped,
            other => Served::As(other.into()),
        })
        .unwrap();
    assert_eq!(r.read_f32("x", Layout::AsStored).unwrap(), (vec![2., 5., 0., 3.], vec![2, 2]));
    assert_eq!(r.read_f32("y", Layout::AsStored).unwrap(), (vec![1., 4.], vec![1, 2]));
    assert_eq!(r.stored_name("y"), Some("a_t (row chunks [1] of 3)"));

    // A storage the pickle names but the archive lacks: file and tensor named.
    let p2 = write(tmp.path(), "nodata.pt", &zip(&entries[..4]));
    let err = fails(Checkpoint::open_pt(&p2, Some("state_dict")));
    let msg = err.to_string();
    println!("{msg}");
    assert!(msg.contains("nodata.pt") && msg.contains("'n'") && msg.contains("m/data/2"), "{msg}");

    // A storage shorter than the pickle says (a cut-down data entry).
    let mut short = entries.clone();
    short[2].1.truncate(20);
    let p3 = write(tmp.path(), "short.pt", &zip(&short));
    let err = fails(Checkpoint::open_pt(&p3, Some("state_dict")));
    println!("{err}");
    assert!(err.to_string().contains("short.pt") && err.to_string().contains("'a'"), "{err}");

    // Something other than a tensor in the state dict.
    let odd = state_dict_pickle(&[("x", int(3))]);
    let p4 = write(tmp.path(), "odd.pt", &zip(&[("m/data.pkl", odd, false)]));
    let err = fails(Checkpoint::open_pt(&p4, Some("state_dict")));
    assert!(err.to_string().contains("'x'"), "{err}");
}

/// Copies `from` to `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What `generate` checks before loading anything, on a copied model folder.
fn check_error(model: &Path) -> String {
    use tora_studio::pipeline::tora::{check_model, ClipShape};
    let shape = ClipShape { width: 64, height: 48, frames: 17, fps: 8.0 };
    match check_model(model, &shape, true) {
        Ok(_) => panic!("{}: the model check passed, but a file is wrong", model.display()),
        Err(e) => e.to_string(),
    }
}

/// A checkpoint file replaced by another model's file is named, with what is wrong with it, by the
/// check `generate` runs before loading anything; never a neighbouring file that happens to load
/// first. Also: a SAT tree copied away from the diffusers twin its group count comes from names
/// its yaml, and a diffusers folder with a swapped shard names the shard's index.
#[test]
fn swapped_checkpoint_files_are_named_by_the_first_check() {
    for dir in sat_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let sat_copy = tmp.path().join("sat");
        copy_tree(&dir, &sat_copy);
        if let Some(twin) = SatTree::find(&dir).unwrap().diffusers_twin() {
            copy_tree(&twin, &tmp.path().join(twin.file_name().unwrap()));
        }
        let tree = SatTree::find(&sat_copy).unwrap();
        let (transformer, vae) = (tree.transformer_file().unwrap(), tree.vae_file().unwrap());
        let (transformer_bytes, vae_bytes) = (std::fs::read(&transformer).unwrap(), std::fs::read(&vae).unwrap());

        // Tora's transformer replaced by the VAE's torch file.
        std::fs::write(&transformer, &vae_bytes).unwrap();
        let msg = check_error(&sat_copy);
        assert!(msg.starts_with(&transformer.display().to_string()), "{msg}");
        assert!(msg.contains("'module'") && msg.contains("'state_dict'"), "{msg}");
        assert!(!msg.contains("3d-vae.pt"), "names the VAE file, which is not the wrong one: {msg}");

        // The VAE replaced by the transformer's file.
        std::fs::write(&transformer, &transformer_bytes).unwrap();
        std::fs::write(&vae, &transformer_bytes).unwrap();
        let msg = check_error(&sat_copy);
        assert!(msg.starts_with(&vae.display().to_string()), "{msg}");
        assert!(msg.contains("'state_dict'") && msg.contains("'module'"), "{msg}");
        std::fs::write(&vae, &vae_bytes).unwrap();

        // Without its twin, a tree whose channels SAT's 32 groups do not divide names its yaml.
        let lone = tempfile::tempdir().unwrap();
        copy_tree(&dir, lone.path());
        let yaml = SatTree::find(lone.path()).unwrap().yaml.unwrap();
        let shape = tora_studio::pipeline::tora::ClipShape { width: 64, height: 48, frames: 17, fps: 8.0 };
        if let Err(e) = tora_studio::pipeline::tora::check_model(lone.path(), &shape, true) {
            let msg = e.to_string();
            assert!(msg.starts_with(&yaml.display().to_string()), "{msg}");
            assert!(msg.contains("norm_num_groups") && msg.contains("manifest.json"), "{msg}");
        }

        // A diffusers folder: the transformer's first shard replaced by the VAE's weights.
        let Some(twin) = SatTree::find(&dir).unwrap().diffusers_twin() else { continue };
        let twin_copy = tmp.path().join(twin.file_name().unwrap());
        let shards: Vec<PathBuf> = verify::walk_files(&twin_copy.join("transformer"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        let vae_weights = verify::walk_files(&twin_copy.join("vae"))
            .into_iter()
            .find(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .unwrap();
        let mut shards = shards;
        shards.sort();
        if shards.len() < 2 {
            continue; // one unindexed file: its keys are checked when loaded
        }
        std::fs::copy(&vae_weights, &shards[0]).unwrap();
        // (check_model runs this after the size check, which this twin's fixed grid would fail first)
        let source = tora_studio::model::cogvideox::ModelSource::open(&twin_copy).unwrap();
        let msg = match source.check_checkpoint_files() {
            Ok(()) => panic!("{}: a swapped shard passed the check", twin_copy.display()),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains(&shards[0].display().to_string()), "{msg}");
    }
}
