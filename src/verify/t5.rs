//! `t5` parity: every `*/io/t5.safetensors` — the tokenizer's `input_ids` / `attention_mask`
//! (exact) and the encoder's `last_hidden_state` (unmasked, as the pipeline calls it) and
//! `last_hidden_state_masked`, using the model folder the `io/` folder sits in.
//!
//! Tolerance (f32, both backends): 1e-4 absolute. The fixtures' README measures the f32
//! reference against the same module in f64 at ≤ 5e-5 (|values| ≤ ~5, no attention scaling so
//! softmaxes are peaky); a correct f32 port with another reduction order lands within a few
//! times that, and 1e-4 is the README's module tolerance. Ids and masks must match exactly.

use std::path::{Path, PathBuf};

use super::{cogvideox_cases, max_abs_diff, run_cases, CheckResult, Kind, ModelCase};
use crate::model::device::read_f32;
use crate::model::ComputeDevice;
use crate::tensor_file::TensorFile;
use crate::Backend;

/// Absolute tolerance on `last_hidden_state` in f32 (see the module docs for why).
pub const HIDDEN_TOL_F32: f64 = 1e-4;

/// Every `<model>/io/t5.safetensors`, and the SAT trees made from such a folder (their T5 folder).
pub fn run(root: &Path, files: &[PathBuf], backend: Backend, report: &mut dyn FnMut(CheckResult)) {
    let cases = cogvideox_cases(root, files, "t5.safetensors", |_| true);
    run_cases(Kind::T5, &cases, backend, report, check_case);
}

fn check_case(c: &ModelCase, device: &ComputeDevice, report: &mut dyn FnMut(CheckResult)) -> Result<(), String> {
    let (case, fx) = (c.case.as_str(), TensorFile::open(&c.io).map_err(|e| e.to_string())?);
    let meta = fx.metadata();
    let prompts: Vec<String> = serde_json::from_str(meta.get("prompts").ok_or("metadata has no 'prompts'")?)
        .map_err(|e| format!("bad 'prompts' metadata: {e}"))?;
    let ref_ids = fx.i64("input_ids").map_err(|e| e.to_string())?;
    let ref_mask = fx.i64("attention_mask").map_err(|e| e.to_string())?;
    let &[batch, max_length] = ref_ids.shape.as_slice() else {
        return Err(format!("input_ids has shape {:?}, expected [batch, tokens]", ref_ids.shape));
    };
    if batch != prompts.len() {
        return Err(format!("{} prompts but input_ids has {batch} rows", prompts.len()));
    }
    let enc = c.source.load_t5(device).map_err(|e| e.to_string())?;

    // Tokenizer: exact.
    let ours = enc.tokenizer.encode_batch(&prompts, max_length);
    let flat_ids: Vec<i64> = ours.input_ids.iter().flatten().copied().collect();
    let flat_mask: Vec<i64> = ours.attention_mask.iter().flatten().copied().collect();
    let ids_err = max_abs_diff_i64(&flat_ids, &ref_ids.data);
    let mut ids_check = CheckResult::compare(Kind::T5, format!("{case}/input_ids"), ids_err, 0.0);
    if ids_err > 0.0 {
        ids_check = ids_check.with_note(first_difference(&ours.input_ids, &ref_ids.data, max_length));
    }
    report(ids_check);
    report(CheckResult::compare(
        Kind::T5,
        format!("{case}/attention_mask"),
        max_abs_diff_i64(&flat_mask, &ref_mask.data),
        0.0,
    ));
    if let Some(lengths) = meta.get("untruncated_lengths") {
        let reference: Vec<usize> =
            serde_json::from_str(lengths).map_err(|e| format!("bad 'untruncated_lengths' metadata: {e}"))?;
        let err = if reference == ours.untruncated_lengths { 0.0 } else { f64::INFINITY };
        let mut r = CheckResult::compare(Kind::T5, format!("{case}/untruncated_lengths"), err, 0.0);
        if err > 0.0 {
            r = r.with_note(format!("ours {:?}, reference {reference:?}", ours.untruncated_lengths));
        }
        report(r);
    }

    // Encoder on the reference ids (so its check is independent of the tokenizer's).
    let ids: Vec<Vec<i64>> = ref_ids.data.chunks(max_length).map(<[i64]>::to_vec).collect();
    let mask: Vec<Vec<i64>> = ref_mask.data.chunks(max_length).map(<[i64]>::to_vec).collect();
    for (name, with_mask) in [("last_hidden_state", false), ("last_hidden_state_masked", true)] {
        let Ok(reference) = fx.f32(name) else {
            if with_mask {
                continue; // reference-only extra
            }
            return Err(format!("fixture has no '{name}'"));
        };
        let hidden = enc.encode_ids(&ids, with_mask.then_some(mask.as_slice()));
        let dims = hidden.dims();
        let values = read_f32(hidden).map_err(|e| format!("reading {name} back: {e}"))?;
        let err = if dims.as_slice() == reference.shape.as_slice() {
            max_abs_diff(&values, &reference.data)
        } else {
            f64::INFINITY
        };
        let mut note = format!("{} f32", device_label(device));
        if dims.as_slice() != reference.shape.as_slice() {
            note.push_str(&format!("; shape {dims:?}, reference {:?}", reference.shape));
        }
        report(CheckResult::compare(Kind::T5, format!("{case}/{name}"), err, HIDDEN_TOL_F32).with_note(note));
    }
    Ok(())
}

fn device_label(device: &ComputeDevice) -> &'static str {
    crate::model::device::backend_name(device.backend())
}

fn max_abs_diff_i64(a: &[i64], b: &[i64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).unsigned_abs() as f64).fold(0.0, f64::max)
}

fn first_difference(ours: &[Vec<i64>], reference: &[i64], len: usize) -> String {
    for (row, ids) in ours.iter().enumerate() {
        for (col, &id) in ids.iter().enumerate() {
            let r = reference.get(row * len + col).copied().unwrap_or(-1);
            if id != r {
                return format!("prompt {row}, position {col}: ours {id}, reference {r}");
            }
        }
    }
    "lengths differ".into()
}
