//! OpenSora 1.2 backbone: STDiT3 and rectified-flow parity over every `*/io/stdit3*` and
//! `*/io/rflow*` fixture (cpu, wgpu), and Tora's TE/MGF on STDiT3 (identity when
//! zero-initialised, trajectory-dependent with random weights).

use std::path::{Path, PathBuf};

use tora_studio::verify::{self, Kind};
use tora_studio::Backend;

/// Every io file `<model>/io/<prefix>*.safetensors` under the fixtures root.
fn io_files(prefix: &str) -> Vec<PathBuf> {
    let root = fixtures_root();
    let files: Vec<PathBuf> = verify::walk_files(&root)
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "safetensors")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix))
                && p.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "io")
        })
        .collect();
    if files.is_empty() {
        verify::say_loudly(&format!(
            "WARNING: no */io/{prefix}*.safetensors fixtures under {}: OpenSora {prefix} tests are SKIPPED. Set TORA_FIXTURES.",
            root.display()
        ));
    }
    files
}

fn run_verify(kind: Kind, prefix: &str, backend: Backend) {
    if io_files(prefix).is_empty() {
        return;
    }
    verify_passes(&[kind], backend);
}

#[test]
fn verify_stdit3_cpu() {
    run_verify(Kind::Stdit3, "stdit3", Backend::Cpu);
}

#[test]
fn verify_stdit3_wgpu() {
    run_verify(Kind::Stdit3, "stdit3", Backend::Wgpu);
}

#[test]
fn verify_rflow_cpu() {
    run_verify(Kind::Rflow, "rflow", Backend::Cpu);
}

#[test]
fn verify_rflow_wgpu() {
    run_verify(Kind::Rflow, "rflow", Backend::Wgpu);
}

// ---------------------------------------------------------------------------------------------
// Tora's TE/MGF on STDiT3.

use std::cell::RefCell;
use std::collections::HashMap;

use super::common::{cpu, fixtures_root, verify_passes};
use burn::tensor::{Bool, Int, Tensor, TensorData};
use tora_studio::model::load::LoadError;
use tora_studio::model::opensora::tora::ToraStdit3;
use tora_studio::model::opensora::{Stdit3, Stdit3Config};
use tora_studio::model::ComputeDevice;
use tora_studio::tensor_file::TensorFile;

/// One recorded STDiT3 call of a fixture, uploaded.
#[derive(Clone)]
struct Inputs {
    x: Tensor<5>,
    timestep: Tensor<1>,
    y: Tensor<4>,
    mask: Option<Tensor<2, Int>>,
    x_mask: Option<Tensor<2, Bool>>,
    fps: Tensor<1>,
    height: f32,
    width: f32,
}

impl Inputs {
    /// The plain STDiT3 forward on these inputs.
    fn plain(&self, model: &Stdit3) -> Tensor<5> {
        let i = self.clone();
        model.forward(i.x, i.timestep, i.y, i.mask, i.x_mask, i.fps, i.height, i.width)
    }

    /// The Tora forward on these inputs, guided by `flow` (a flow latent) or not.
    fn tora(&self, model: &ToraStdit3, flow: Option<Tensor<5>>) -> Tensor<5> {
        let i = self.clone();
        model.forward(i.x, i.timestep, i.y, i.mask, i.x_mask, i.fps, i.height, i.width, flow).expect("forward")
    }
}

fn inputs(path: &Path, device: &ComputeDevice) -> Inputs {
    let fx = TensorFile::open(path).expect("fixture");
    let f = |name: &str| fx.f32(name).unwrap_or_else(|e| panic!("{e}"));
    let up = |name: &str| {
        let t = f(name);
        TensorData::new(t.data, t.shape)
    };
    let names = fx.names();
    let mask = names.iter().any(|n| n == "mask").then(|| {
        let t = fx.i64("mask").expect("mask");
        Tensor::<2, Int>::from_data(TensorData::new(t.data, t.shape), device.device())
    });
    let x_mask = names.iter().any(|n| n == "x_mask").then(|| {
        let bytes = std::fs::read(path).expect("read");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid");
        let v = st.tensor("x_mask").expect("x_mask");
        let values: Vec<bool> = v.data().iter().map(|&b| b != 0).collect();
        Tensor::<2, Bool>::from_data(TensorData::new(values, v.shape().to_vec()), device.device())
    });
    Inputs {
        x: device.float_tensor(up("x")),
        timestep: device.float_tensor(up("timestep")),
        y: device.float_tensor(up("y")),
        mask,
        x_mask,
        fps: device.float_tensor(up("fps")),
        height: f("height").data[0],
        width: f("width").data[0],
    }
}

/// A flow latent shaped like `x`, deterministic from `seed`.
fn flow_latent(like: &Tensor<5>, seed: u64, device: &ComputeDevice) -> Tensor<5> {
    let dims = like.dims();
    device.float_tensor(TensorData::new(random(dims.iter().product(), seed, 1.0), dims))
}

/// Uniform values in `[-scale, scale)` from a 64-bit LCG.
fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn max_diff(a: Tensor<5>, b: Tensor<5>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar::<f32>()
}

fn stdit3_cases() -> Vec<(PathBuf, PathBuf)> {
    io_files("stdit3")
        .into_iter()
        .filter_map(|p| p.parent().and_then(Path::parent).map(|m| (m.to_path_buf(), p.clone())))
        .collect()
}

/// Random TE/MGF weights (keys of Tora's release) for `config`, written to `path`.
fn write_random_motion(config: &Stdit3Config, features: usize, blocks_per_layer: usize, seed: u64, path: &Path) {
    let [pt, ph, pw] = config.patch_size;
    let (c, f) = (config.hidden_size, features);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut seed = seed;
    let mut add = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        seed += 1;
        let n = shape.iter().product();
        let values = random(n, seed, scale).into_iter().map(|v| v + offset).collect();
        tensors.push((name, shape, values));
    };
    add("traj_extractor.conv_in.weight".into(), vec![f, config.in_channels * pt * ph * pw, 3, 3], 0.3, 0.0);
    add("traj_extractor.conv_in.bias".into(), vec![f], 0.1, 0.0);
    for j in 0..config.depth * blocks_per_layer {
        let p = format!("traj_extractor.body.{j}");
        for bn in ["bn1", "bn2"] {
            add(format!("{p}.{bn}.weight"), vec![f], 0.2, 1.0);
            add(format!("{p}.{bn}.bias"), vec![f], 0.1, 0.0);
            add(format!("{p}.{bn}.running_mean"), vec![f], 0.1, 0.0);
            add(format!("{p}.{bn}.running_var"), vec![f], 0.2, 1.0);
        }
        for conv in ["block1", "block2"] {
            add(format!("{p}.{conv}.weight"), vec![f, f, 3, 3], 0.2, 0.0);
            add(format!("{p}.{conv}.bias"), vec![f], 0.1, 0.0);
        }
    }
    for i in 0..config.depth {
        let p = format!("fuser.{i}");
        for m in ["gamma", "beta"] {
            add(format!("{p}.flow_{m}_spatial.weight"), vec![c / 4, f, 3, 3], 0.2, 0.0);
            add(format!("{p}.flow_{m}_spatial.bias"), vec![c / 4], 0.1, 0.0);
            add(format!("{p}.flow_{m}_temporal.weight"), vec![c, c / 4, 3], 0.2, 0.0);
            add(format!("{p}.flow_{m}_temporal.bias"), vec![c], 0.1, 0.0);
        }
        add(format!("{p}.flow_cond_norm.weight"), vec![c], 0.2, 1.0);
        add(format!("{p}.flow_cond_norm.bias"), vec![c], 0.1, 0.0);
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.into_iter().map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect())).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("view"))
        })
        .collect();
    let meta: Option<HashMap<String, String>> = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(views, meta, path).expect("write TE/MGF weights");
}

/// Zero-initialised TE/MGF (what loading only OpenSora 1.2 weights gives): a Tora forward with
/// a trajectory equals the plain STDiT3 forward exactly, on every recorded STDiT3 call.
#[test]
fn tora_zero_init_reproduces_stdit3() {
    let device = cpu();
    for (model_dir, case) in stdit3_cases() {
        let (tora, _) = ToraStdit3::load(&model_dir, None, &device).expect("load Tora-STDiT3");
        let i = inputs(&case, &device);
        let flow = flow_latent(&i.x, 7, &device);
        let plain = i.plain(&tora.base);
        let guided = i.tora(&tora, Some(flow));
        let d = max_diff(plain, guided);
        println!("{}: |tora(zero TE/MGF) - stdit3| = {d:e}", case.display());
        assert_eq!(d, 0.0, "{}: zero-initialised TE/MGF changed the output by {d}", case.display());
    }
}

/// Random TE/MGF weights, loaded from their own file: the trajectory changes the output, two
/// trajectories give two outputs, and no trajectory is the plain STDiT3.
#[test]
fn tora_random_weights_follow_the_trajectory() {
    let device = cpu();
    for (model_dir, case) in stdit3_cases() {
        let (_, config) = Stdit3::load(&model_dir, &device).expect("load STDiT3");
        let tmp = tempfile::tempdir().expect("tempdir");
        let weights = tmp.path().join("tora_motion.safetensors");
        write_random_motion(&config, 8, 2, 11, &weights);
        let (tora, _) = ToraStdit3::load(&model_dir, Some(&weights), &device).expect("load TE/MGF weights");
        assert_eq!(tora.motion.fuser.len(), config.depth);
        assert_eq!(tora.motion.traj_extractor.body.len(), 2 * config.depth);
        let i = inputs(&case, &device);
        let run = |flow: Option<Tensor<5>>| i.tora(&tora, flow);
        let plain = i.plain(&tora.base);
        let none = run(None);
        let a = run(Some(flow_latent(&i.x, 1, &device)));
        let b = run(Some(flow_latent(&i.x, 2, &device)));
        assert_eq!(max_diff(plain.clone(), none), 0.0, "no trajectory must be the plain model");
        let (d_a, d_ab) = (max_diff(plain, a.clone()), max_diff(a, b));
        println!("{}: |tora(a) - stdit3| = {d_a:e}, |tora(a) - tora(b)| = {d_ab:e}", case.display());
        assert!(d_a > 1e-3, "{}: the trajectory did not change the output ({d_a})", case.display());
        assert!(d_ab > 1e-3, "{}: two trajectories gave the same output ({d_ab})", case.display());
    }
}

/// The pipeline computes the TE features once, for one flow, and every step's batch shares them
/// (γ, β broadcast): the same output as the flow tiled over the batch.
#[test]
fn tora_features_once_match_the_tiled_flow() {
    let device = cpu();
    for (model_dir, case) in stdit3_cases() {
        let (_, config) = Stdit3::load(&model_dir, &device).expect("load STDiT3");
        let tmp = tempfile::tempdir().expect("tempdir");
        let weights = tmp.path().join("tora_motion.safetensors");
        write_random_motion(&config, 8, 2, 11, &weights);
        let (tora, _) = ToraStdit3::load(&model_dir, Some(&weights), &device).expect("load TE/MGF weights");
        let i = inputs(&case, &device);
        let b = i.x.dims()[0];
        let one = flow_latent(&i.x, 3, &device).narrow(0, 0, 1);
        let tiled = i.tora(&tora, Some(one.clone().repeat_dim(0, b)));
        let features = tora.motion_features(one).expect("features");
        let c = i.clone();
        let once = tora
            .forward_guided(c.x, c.timestep, c.y, c.mask, c.x_mask, c.fps, c.height, c.width, Some(&features))
            .expect("forward");
        let e = max_diff(once, tiled);
        println!("{}: batch {b}, features once vs tiled flow: max |Δ| {e:e}", case.display());
        assert!(e < 1e-5, "{}: {e}", case.display());
    }
}

/// The fuser is called once per temporal block, in order, with `[(B T), C, H', W']` tokens.
#[test]
fn motion_fuser_sees_every_temporal_block() {
    let device = cpu();
    for (model_dir, case) in stdit3_cases() {
        let (model, config) = Stdit3::load(&model_dir, &device).expect("load STDiT3");
        let i = inputs(&case, &device);
        let [b, _, t, h, w] = i.x.dims();
        let [_, ph, pw] = config.patch_size;
        let calls = RefCell::new(Vec::new());
        let hook = |layer: usize, x: Tensor<4>| {
            calls.borrow_mut().push((layer, x.dims()));
            x
        };
        model
            .try_forward(i.x, i.timestep, i.y, i.mask, i.x_mask, i.fps, i.height, i.width, Some(&hook))
            .expect("forward");
        let expected: Vec<(usize, [usize; 4])> =
            (0..config.depth).map(|l| (l, [b * t, config.hidden_size, h.div_ceil(ph), w.div_ceil(pw)])).collect();
        assert_eq!(calls.into_inner(), expected, "{}", case.display());
    }
}

/// A TE/MGF file that does not fit names what is wrong.
#[test]
fn tora_weights_missing_keys_are_reported() {
    let device = cpu();
    let Some((model_dir, _)) = stdit3_cases().into_iter().next() else { return };
    let (_, config) = Stdit3::load(&model_dir, &device).expect("load STDiT3");
    let tmp = tempfile::tempdir().expect("tempdir");
    let full = tmp.path().join("full.safetensors");
    write_random_motion(&config, 8, 2, 3, &full);
    // Drop one fuser's norm: reported as missing, naming the key.
    let bytes = std::fs::read(&full).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid");
    let kept: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().filter(|(n, _)| n != "fuser.0.flow_cond_norm.bias").collect();
    let damaged = tmp.path().join("damaged.safetensors");
    safetensors::serialize_to_file(kept, None, &damaged).expect("write");
    match ToraStdit3::load(&model_dir, Some(&damaged), &device) {
        Err(LoadError::Keys { missing, .. }) => assert_eq!(missing, vec!["fuser.0.flow_cond_norm.bias".to_string()]),
        Err(e) => panic!("expected missing keys, got {e}"),
        Ok(_) => panic!("a TE/MGF file without fuser.0.flow_cond_norm.bias must not load"),
    }
}

/// A T5 fixture folder whose width fits `caption_channels` (OpenSora fixtures ship no T5; the
/// CogVideoX/Tora T5 is the same model family, as a real install would reuse it).
fn t5_for(caption_channels: usize) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_root()).ok()?.flatten().map(|e| e.path()).collect();
    dirs.sort();
    dirs.into_iter().find(|d| {
        std::fs::read_to_string(d.join("text_encoder/config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|c| c["d_model"].as_u64())
            == Some(caption_channels as u64)
    })
}

/// `tora-studio generate --family opensora` on every OpenSora fixture folder: a clip of the asked
/// size and length; without Tora weights the trajectory has no effect (plain OpenSora 1.2), with
/// TE/MGF weights (`--motion-weights`) another trajectory gives another clip.
#[test]
fn generate_family_opensora_writes_a_clip_that_follows_the_trajectory() {
    let device = cpu();
    let models: Vec<PathBuf> =
        stdit3_cases().into_iter().map(|(m, _)| m).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    if models.is_empty() {
        return;
    }
    for model in models {
        let (_, config) = Stdit3::load(&model, &device).expect("load STDiT3");
        let Some(t5) = t5_for(config.caption_channels) else {
            verify::say_loudly("WARNING: no T5 fixture fits the OpenSora fixture's caption width: SKIPPED");
            continue;
        };
        let tmp = tempfile::tempdir().unwrap();
        let weights = tmp.path().join("motion.safetensors");
        write_random_motion(&config, 8, 2, 5, &weights);
        let tracks = [("a.txt", "30,200\n200,40\n"), ("b.txt", "220,220\n20,30\n")];
        for (name, text) in tracks {
            std::fs::write(tmp.path().join(name), text).unwrap();
        }
        let run = |track: &str, motion: bool, out: &str| -> Vec<u8> {
            let out = tmp.path().join(out);
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tora-studio"));
            cmd.args(["generate", "--family", "opensora", "--model"]).arg(&model).arg("--text-encoder").arg(&t5);
            cmd.args(["--prompt", "a kite in the wind", "--steps", "2", "--size", "64x48", "--frames", "17"]);
            cmd.arg("--points").arg(tmp.path().join(track)).arg("--out").arg(&out);
            if motion {
                cmd.arg("--motion-weights").arg(&weights);
            }
            let o = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "generate --family opensora failed:\n{stderr}");
            assert_eq!(stderr.contains("the trajectory has no effect"), !motion, "{stderr}");
            let mut frames: Vec<PathBuf> = std::fs::read_dir(&out).unwrap().flatten().map(|e| e.path()).collect();
            frames.sort();
            assert_eq!(frames.len(), 17, "{}", out.display());
            let first = image::open(&frames[0]).unwrap();
            assert_eq!((first.width(), first.height()), (64, 48));
            frames.iter().flat_map(|f| image::open(f).unwrap().to_rgb8().into_raw()).collect()
        };
        let (plain_a, plain_b) = (run("a.txt", false, "plain_a"), run("b.txt", false, "plain_b"));
        assert!(plain_a == plain_b, "zero TE/MGF (plain OpenSora 1.2): the trajectory must not change the clip");
        let spread = plain_a.iter().max().unwrap() - plain_a.iter().min().unwrap();
        assert!(spread > 0, "a flat clip: the run produced no picture");
        let (tora_a, tora_b) = (run("a.txt", true, "tora_a"), run("b.txt", true, "tora_b"));
        assert!(tora_a != tora_b, "with TE/MGF weights another trajectory must give another clip");

        // A playable video, decoded back by ffmpeg.
        if !tora_studio::export::video::ffmpeg_available() {
            verify::say_loudly("WARNING: ffmpeg not installed: the OpenSora mp4 check is SKIPPED");
            continue;
        }
        let mp4 = tmp.path().join("clip.mp4");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tora-studio"))
            .args(["generate", "--model"])
            .arg(&model)
            .arg("--text-encoder")
            .arg(&t5)
            .args(["--prompt", "a kite", "--steps", "1", "--size", "64x48", "--frames", "17", "--points"])
            .arg(tmp.path().join("a.txt"))
            .arg("--out")
            .arg(&mp4)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let probe = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&mp4)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        assert!(
            probe.status.success(),
            "ffmpeg cannot decode {}: {}",
            mp4.display(),
            String::from_utf8_lossy(&probe.stderr)
        );
    }
}
