//! Tora transformer: parity over every `*/io/{traj_extractor,mgf,transformer}.safetensors` fixture
//! (cpu, wgpu), query-blocked attention == whole-matrix attention, loader errors on damaged copies
//! of the fixture transformer folders, and the `bench-step` smoke run on a fixture model.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::{cpu, fixtures_root, verify_passes};
use burn::tensor::{DType, Distribution, Tensor, TensorData};
use tora_studio::model::attention::{
    fused_attention, naive_attention, scaled_dot_product_attention, scaled_dot_product_attention_blocked,
};
use tora_studio::model::cogvideox::ToraTransformer3D;
use tora_studio::model::device::has_fused_attention;
use tora_studio::model::load::LoadError;
use tora_studio::model::{ComputeDevice, Precision};
use tora_studio::verify::{self, Kind};
use tora_studio::Backend;

/// Every model folder with a `transformer/config.json` and an `io/transformer.safetensors`.
fn model_dirs() -> Vec<PathBuf> {
    let root = fixtures_root();
    let dirs: Vec<PathBuf> = verify::walk_files(&root)
        .into_iter()
        .filter(|p| {
            p.file_name().is_some_and(|n| n == "transformer.safetensors")
                && p.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "io")
        })
        .filter_map(|p| p.parent().and_then(Path::parent).map(Path::to_path_buf))
        .filter(|m| m.join("transformer/config.json").is_file())
        .collect();
    if dirs.is_empty() {
        verify::say_loudly(&format!(
            "WARNING: no */io/transformer.safetensors fixtures under {}: transformer parity, loader-error and bench-step tests are SKIPPED. Set TORA_FIXTURES.",
            root.display()
        ));
    }
    dirs
}

fn run_verify(backend: Backend) {
    let dirs = model_dirs();
    if dirs.is_empty() {
        return;
    }
    let _root = fixtures_root();
    let results = verify_passes(&[Kind::TrajExtractor, Kind::Mgf, Kind::Transformer], backend);
    // Every model folder got each of its lines.
    for dir in &dirs {
        let name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
        for suffix in [
            "io/traj_extractor/feature_0",
            "io/mgf/output",
            "io/transformer/image_rotary_emb_cos",
            "io/transformer/image_rotary_emb_sin",
            "io/transformer/output_with_flow",
            "io/transformer/output_no_flow",
        ] {
            let case = format!("{name}/{suffix}");
            assert!(
                results.iter().any(|r| r.case.ends_with(&case)),
                "no '{case}' line among:\n{}",
                results.iter().map(|r| r.line()).collect::<Vec<_>>().join("\n")
            );
        }
    }
}

#[test]
fn verify_transformer_cpu() {
    run_verify(Backend::Cpu);
}

#[test]
fn verify_transformer_wgpu() {
    run_verify(Backend::Wgpu);
}

fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    let a = a.into_data().try_to_vec::<f32>().expect("f32");
    let b = b.into_data().try_to_vec::<f32>().expect("f32");
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn attention_agrees(backend: Backend) {
    let device = ComputeDevice::new(backend, Precision::F32).expect("device");
    let d = device.device();
    let normal = Distribution::Normal(0.0, 1.0);
    // CogVideoX-like: a text prefix joined to video tokens, head_dim 64, peaky scores.
    let q = Tensor::<4>::random([2, 3, 300, 64], normal, d).mul_scalar(2.0);
    let k = Tensor::<4>::random([2, 3, 300, 64], normal, d);
    let v = Tensor::<4>::random([2, 3, 300, 64], normal, d);
    let scale = 1.0 / 8.0;
    let full = naive_attention(q.clone(), k.clone(), v.clone(), None, scale);
    let auto = scaled_dot_product_attention(q.clone(), k.clone(), v.clone(), None, scale);
    assert!(max_diff(auto, full.clone()) < 1e-5);
    for block in [1, 7, 64, 299, 300, 1000] {
        let blk = scaled_dot_product_attention_blocked(q.clone(), k.clone(), v.clone(), None, scale, block);
        let e = max_diff(blk, full.clone());
        assert!(e < 1e-5, "{backend:?} block {block}: max |Δ| {e}");
    }
    // With an additive key mask broadcast over heads and queries.
    let mut mask = vec![0f32; 2 * 300];
    for x in &mut mask[300 + 250..] {
        *x = f32::NEG_INFINITY;
    }
    let bias = Tensor::<4>::from_data(TensorData::new(mask, [2, 1, 1, 300]), d);
    let masked = naive_attention(q.clone(), k.clone(), v.clone(), Some(bias.clone()), scale);
    let blk = scaled_dot_product_attention_blocked(q.clone(), k.clone(), v.clone(), Some(bias), scale, 37);
    let e = max_diff(blk, masked);
    assert!(e < 1e-5, "{backend:?} masked: max |Δ| {e}");
    // The fused call pads 300 queries to 384 and slices the padding off.
    let fused = fused_attention(q.clone(), k.clone(), v.clone());
    assert_eq!(fused.dims(), [2, 3, 300, 64]);
    let e = max_diff(fused, full);
    assert!(e < 1e-5, "{backend:?} fused: max |Δ| {e}");
}

/// On a GPU device in f16 the layer attention is one fused call where the build has burn's
/// autotune (f32 accumulators and softmax statistics in the kernel): within f16 rounding of the
/// f32 reference on the same inputs.
///
/// The wgpu device takes one float precision per process and the other tests hold it at f32, so
/// the check runs in a child process of this test binary.
#[test]
fn fused_attention_in_f16_matches_the_f32_reference_wgpu() {
    const CHILD: &str = "TORA_TEST_F16_ATTENTION_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args(["transformer::fused_attention_in_f16_matches_the_f32_reference_wgpu", "--exact", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .expect("run the child test");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "f16 child test failed:\n{text}");
        text.lines().filter(|l| l.starts_with("f16 fused attention")).for_each(|l| println!("{l}"));
        return;
    }
    let half = ComputeDevice::new(Backend::Wgpu, Precision::F16).expect("wgpu f16 device");
    // the fused call where burn's autotune is compiled in, else the blocked f32-softmax path
    assert_eq!(has_fused_attention(half.device()), cfg!(feature = "tuned-kernels"));
    let cpu = ComputeDevice::new(Backend::Cpu, Precision::F32).expect("cpu");
    // Fixed pseudo-normal inputs (the same every run), rounded to f16 once so both sides see them.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut make = |gain: f32| -> Vec<f32> {
        (0..2 * 3 * 300 * 64)
            .map(|_| {
                let mut sum = 0.0f32; // Irwin–Hall: 12 uniforms − 6 ≈ N(0, 1)
                for _ in 0..12 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    sum += (state >> 40) as f32 / (1u64 << 24) as f32;
                }
                half::f16::from_f32((sum - 6.0) * gain).to_f32()
            })
            .collect()
    };
    let dims = [2, 3, 300, 64];
    let (q, k, v) = (make(2.0), make(1.0), make(1.0));
    let on = |dev: &ComputeDevice, x: &[f32]| dev.float_tensor::<4>(TensorData::new(x.to_vec(), dims));
    let reference = naive_attention(on(&cpu, &q), on(&cpu, &k), on(&cpu, &v), None, 1.0 / 8.0);
    let fused = scaled_dot_product_attention(on(&half, &q), on(&half, &k), on(&half, &v), None, 1.0 / 8.0);
    assert_eq!(fused.dtype(), DType::F16);
    let peak = reference.clone().abs().max().into_scalar::<f32>();
    let e = max_diff(fused.cast(DType::F32), reference);
    println!("f16 fused attention: max |Δ| {e} (max |reference| {peak})");
    // The project's f16 tolerance (as T5's): 1e-2 · max|reference|.
    assert!(e <= 1e-2 * peak, "f16 attention: max |Δ| {e} > 1e-2 · {peak}");
}

fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let a = a.into_data().try_to_vec::<f32>().expect("f32");
    let b = b.into_data().try_to_vec::<f32>().expect("f32");
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The pipeline's flow-only work once per run: the TE's maps of ONE flow, made once and reused by
/// both CFG halves (each MGF's γ, β at batch 1, broadcast), give the forward on the flow tiled over
/// the batch (the TE and MGFs inside the forward), at motion strength 1 and below.
fn features_once_match_the_tiled_flow(backend: Backend) {
    let Some(model_dir) = model_dirs().into_iter().find(|d| {
        std::fs::read_to_string(d.join("transformer/config.json")).is_ok_and(|t| t.contains("\"in_channels\": 16"))
    }) else {
        return;
    };
    let device = ComputeDevice::new(backend, Precision::F32).expect("device");
    let (mut model, config) = ToraTransformer3D::load(&model_dir, &device).expect("load the transformer");
    let d = device.device();
    let normal = Distribution::Normal(0.0, 1.0);
    let f = (config.sample_frames - 1) / config.temporal_compression_ratio + 1;
    let (h, w) = (config.sample_height, config.sample_width);
    let hidden = Tensor::<5>::random([2, f, config.in_channels, h, w], normal, d);
    let text = Tensor::<3>::random([2, 12, config.text_embed_dim], normal, d);
    let timestep = Tensor::<1>::from_data(TensorData::new(vec![500.0f32, 500.0], [2]), d);
    let flow = Tensor::<5>::random([1, f, 16, h, w], normal, d);
    let features = model.flow_features(flow.clone());
    for strength in [1.0, 0.4] {
        model.motion_strength = strength;
        let run = |flow: Option<Tensor<5>>| model.forward(hidden.clone(), text.clone(), timestep.clone(), flow, None);
        let tiled = run(Some(Tensor::cat(vec![flow.clone(); 2], 0)));
        let once = model.forward_guided(hidden.clone(), text.clone(), timestep.clone(), Some(&features), None, None);
        let e = max_abs_diff(once, tiled.clone());
        assert!(e < 1e-5, "{backend:?} strength {strength}: features once vs tiled flow, max |Δ| {e}");
        let moved = max_abs_diff(run(None), tiled);
        assert!(moved > 1e-3, "{backend:?}: the flow did not change the output ({moved})");
    }
}

#[test]
fn features_once_match_the_tiled_flow_cpu() {
    features_once_match_the_tiled_flow(Backend::Cpu);
}

#[test]
fn features_once_match_the_tiled_flow_wgpu() {
    features_once_match_the_tiled_flow(Backend::Wgpu);
}

#[test]
fn blocked_attention_equals_full_cpu() {
    attention_agrees(Backend::Cpu);
}

#[test]
fn blocked_attention_equals_full_wgpu() {
    attention_agrees(Backend::Wgpu);
}

/// Copies `model/transformer` into a temp pipeline folder (writable copies).
fn copy_transformer(model: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dst = tmp.path().join("transformer");
    std::fs::create_dir_all(&dst).expect("mkdir");
    for entry in std::fs::read_dir(model.join("transformer")).expect("read fixture folder").flatten() {
        let to = dst.join(entry.file_name());
        std::fs::copy(entry.path(), &to).expect("copy");
        let mut perm = std::fs::metadata(&to).expect("metadata").permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(&to, perm).expect("chmod");
    }
    tmp
}

#[test]
fn missing_shard_is_named() {
    for model in model_dirs() {
        let tmp = copy_transformer(&model);
        let dir = tmp.path().join("transformer");
        let shard = std::fs::read_dir(&dir)
            .expect("read")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".safetensors") && p.to_string_lossy().contains("-of-"))
            .expect("a sharded fixture");
        std::fs::remove_file(&shard).expect("delete shard");
        let err = ToraTransformer3D::load(tmp.path(), &cpu()).expect_err("a missing shard must fail");
        let shard_name = shard.file_name().unwrap_or_default().to_string_lossy().to_string();
        assert!(matches!(err, LoadError::MissingShard { .. }), "{err}");
        assert!(err.to_string().contains(&shard_name), "message does not name {shard_name}: {err}");
    }
}

#[test]
fn missing_tensor_is_named() {
    for model in model_dirs() {
        // Re-write the weights as one file without one fuser tensor.
        let tmp = copy_transformer(&model);
        let dir = tmp.path().join("transformer");
        let dropped = "fuser.1.flow_cond_norm.weight";
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("read").flatten() {
            let p = entry.path();
            let name = p.file_name().unwrap_or_default().to_string_lossy().to_string();
            if name.ends_with(".safetensors") {
                files.push((p.clone(), std::fs::read(&p).expect("read shard")));
            }
            if name.ends_with(".safetensors") || name.ends_with(".index.json") {
                std::fs::remove_file(&p).expect("remove");
            }
        }
        let parsed: Vec<safetensors::SafeTensors> =
            files.iter().map(|(_, b)| safetensors::SafeTensors::deserialize(b).expect("valid shard")).collect();
        let mut views = Vec::new();
        for st in &parsed {
            for (name, view) in st.tensors() {
                if name != dropped {
                    views.push((name, view));
                }
            }
        }
        let out = dir.join("diffusion_pytorch_model.safetensors");
        safetensors::serialize_to_file(views, None, &out).expect("write");
        let err = ToraTransformer3D::load(tmp.path(), &cpu()).expect_err("a missing tensor must fail");
        match &err {
            LoadError::Keys { missing, unexpected, mismatched, .. } => {
                assert_eq!(missing, &vec![dropped.to_string()], "{err}");
                assert!(unexpected.is_empty() && mismatched.is_empty(), "{err}");
            }
            other => panic!("expected LoadError::Keys, got {other}"),
        }
        assert!(err.to_string().contains(dropped), "{err}");
    }
}

#[test]
fn config_with_more_layers_lists_missing_keys() {
    // A folder whose config says 3 layers while the weights have 2: every missing key is listed.
    for model in model_dirs() {
        let tmp = copy_transformer(&model);
        let cfg = tmp.path().join("transformer/config.json");
        let text = std::fs::read_to_string(&cfg).expect("config");
        let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
        let layers = json["num_layers"].as_u64().expect("num_layers");
        json["num_layers"] = serde_json::Value::from(layers + 1);
        std::fs::write(&cfg, serde_json::to_string(&json).expect("json")).expect("write");
        let err = ToraTransformer3D::load(tmp.path(), &cpu()).expect_err("too many layers must fail");
        let LoadError::Keys { missing, unexpected, .. } = &err else { panic!("expected LoadError::Keys, got {err}") };
        assert!(unexpected.is_empty(), "{err}");
        for key in [
            format!("transformer_blocks.{layers}.attn1.to_q.weight"),
            format!("fuser.{layers}.flow_cond_norm.weight"),
            format!("traj_extractor.body.{}.bn1.running_var", 2 * layers + 1),
        ] {
            assert!(missing.contains(&key), "{key} not among the missing keys: {missing:?}");
        }
        assert!(err.to_string().contains("missing key(s)"), "{err}");
    }
}

#[test]
fn bench_step_smoke_on_fixture_model() {
    let Some(model) = model_dirs().into_iter().find(|d| {
        std::fs::read_to_string(d.join("transformer/config.json")).is_ok_and(|t| t.contains("\"in_channels\": 16"))
    }) else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_tora-studio"))
        .args(["bench-step", "--model"])
        .arg(&model)
        .args(["--size", "48x32", "--frames", "9", "--steps", "1"])
        .output()
        .expect("run tora-studio");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench-step failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("time per transformer forward: mean "), "{stdout}");
    let mem = stdout.lines().find(|l| l.starts_with("peak memory: ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(mem.contains("GiB") && mem.contains("VmHWM"), "{mem}");
    assert!(stdout.contains("(weights loaded)"), "{stdout}");
    // The run says which backend, shader compiler and precision it uses; without a real GPU
    // adapter (CI: lavapipe only) the CLI's default is the CPU in f32.
    let line = stdout.lines().find(|l| l.starts_with("device: compute: ")).unwrap_or_else(|| panic!("{stdout}"));
    if !tora_studio::model::device::wgpu_adapters().iter().any(|a| a.is_real_gpu()) {
        assert!(line.contains("compute: cpu") && line.contains(", f32 — no GPU adapter found"), "{line}");
    }
}

#[test]
fn bench_step_refuses_preset_without_random_weights() {
    let out = Command::new(env!("CARGO_BIN_EXE_tora-studio"))
        .args(["bench-step", "--preset", "cogvideox-5b-tora", "--steps", "1"])
        .output()
        .expect("run tora-studio");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--random-weights"));
}

/// The SAT switches (`add_learned_pos_embedding = false`, `final_norm_eps = Some(1e-6)`) on the
/// diffusers weights reproduce Tora's own SAT forward (`<model>-sat/io_sat/transformer.safetensors`,
/// same weights as `<model>/`), as the fixtures' README says they must (bit-identical there).
#[test]
fn sat_switches_reproduce_sat_forward() {
    let root = fixtures_root();
    let cases: Vec<(PathBuf, PathBuf)> = verify::walk_files(&root)
        .into_iter()
        .filter(|p| {
            p.file_name().is_some_and(|n| n == "transformer.safetensors")
                && p.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "io_sat")
        })
        .filter_map(|p| {
            let sat_dir = p.parent()?.parent()?;
            let name = sat_dir.file_name()?.to_string_lossy().strip_suffix("-sat")?.to_string();
            let diffusers = sat_dir.parent()?.join(name);
            diffusers.join("transformer/config.json").is_file().then_some((p.clone(), diffusers))
        })
        .collect();
    if cases.is_empty() {
        verify::say_loudly("WARNING: no <model>-sat/io_sat/transformer.safetensors fixtures: SAT-switch test SKIPPED");
        return;
    }
    let device = cpu();
    for (io, diffusers) in cases {
        let (_, mut config) = ToraTransformer3D::load(&diffusers, &device).expect("load");
        config.add_learned_pos_embedding = false;
        config.final_norm_eps = Some(1e-6);
        let dir = diffusers.join("transformer");
        let ckpt = tora_studio::model::load::Checkpoint::open_dir(&dir).expect("open");
        let model = ToraTransformer3D::from_checkpoint(&config, &ckpt, &device).expect("from_checkpoint");
        let fx = tora_studio::tensor_file::TensorFile::open(&io).expect("io_sat");
        let t5 = |name: &str| -> Tensor<5> {
            let t = fx.f32(name).expect(name);
            let s: [usize; 5] = t.shape.clone().try_into().expect("5-D");
            Tensor::from_data(TensorData::new(t.data, s), device.device())
        };
        let text = fx.f32("encoder_hidden_states").expect("text");
        let ts: [usize; 3] = text.shape.clone().try_into().expect("3-D");
        let text = Tensor::<3>::from_data(TensorData::new(text.data, ts), device.device());
        let steps = fx.i64("timestep").expect("timestep");
        let n = steps.data.len();
        let timestep = Tensor::<1>::from_data(
            TensorData::new(steps.data.iter().map(|&t| t as f32).collect::<Vec<_>>(), [n]),
            device.device(),
        );
        for (name, flow) in [("output_with_flow", Some(t5("video_flow"))), ("output_no_flow", None)] {
            let out = model.forward(t5("hidden_states"), text.clone(), timestep.clone(), flow, None);
            let ours = out.into_data().try_to_vec::<f32>().expect("f32");
            let reference = fx.f32(name).expect(name).data;
            let err = verify::max_abs_diff(&ours, &reference);
            println!("{} {name}: max |Δ| {err:.3e}", io.display());
            assert!(err <= 1e-4, "{}: {name} max |Δ| {err}", io.display());
        }
    }
}
