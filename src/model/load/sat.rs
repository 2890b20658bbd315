//! Tora's SwissArmyTransformer (SAT) checkpoints served under diffusers names.
//!
//! Tora's image-to-video weights exist only as SAT files: `tora/<i2v|t2v>/mp_rank_00_model_states.pt`
//! (`{"module": state_dict}`, keys prefixed `model.diffusion_model.`) and CogVideoX's SAT VAE
//! `vae/3d-vae.pt` (`{"state_dict": ...}`). [`TRANSFORMER`] and [`VAE`] are THE table from SAT names
//! to the names of our (diffusers-layout) modules; [`sat_to_diffusers`] applies it forwards (how a
//! file is served) and [`diffusers_to_sat`] backwards (where a module's tensor comes from). The rules
//! are those of diffusers' `scripts/convert_cogvideox_to_diffusers.py`, plus Tora's
//! `fuser_list` -> `fuser`; facts in the fixtures README, section `tiny-tora-i2v-sat/`.
//!
//! SAT runs the same weights with slightly different numerics than diffusers: see [`SatSemantics`].

use std::collections::BTreeSet;
use std::path::Path;

use super::checkpoint::{Checkpoint, Served};
use super::model_folder::SatTree;
use super::LoadError;

/// How one SAT tensor becomes diffusers tensors. Patterns are dot-separated names where `{i}`
/// and `{j}` match an index, `{~i}` is the reversed index `N-1-i` (N = number of VAE up blocks),
/// and a trailing `*` matches the rest of the name (`weight`, `conv.bias`, ...).
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// The same tensor under the diffusers pattern.
    Rename(&'static str),
    /// Not a module weight: SAT buffers the model recomputes, unused embeddings, training losses.
    Drop,
    /// Split along dim 0 into `chunks` equal row chunks; each part concatenates its chunks in order.
    Split(usize, &'static [(&'static str, &'static [usize])]),
}

/// A SAT -> diffusers table: SAT keys may carry `prefix` (dropped before matching).
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub prefix: &'static str,
    pub rows: &'static [(&'static str, Rule)],
}

use Rule::{Drop, Rename, Split};

/// The transformer (+ Tora's trajectory extractor and MGF fusers) of `mp_rank_00_model_states.pt`.
pub const TRANSFORMER: Table = Table {
    prefix: "model.diffusion_model.",
    rows: &[
        // learned positional embedding of CogVideoX-5B-I2V (SAT never adds it; see SatSemantics)
        ("mixins.pos_embed.pos_embedding", Rename("patch_embed.pos_embedding")),
        // RoPE tables: recomputed by the model
        ("mixins.pos_embed.freqs_sin", Drop),
        ("mixins.pos_embed.freqs_cos", Drop),
        ("mixins.patch_embed.*", Rename("patch_embed.*")),
        // one [12D, ...] adaLN projection per layer; chunks 0-2 and 6-8 modulate the video/text
        // halves before attention (norm1), 3-5 and 9-11 before the MLP (norm2)
        (
            "mixins.adaln_layer.adaLN_modulations.{i}.1.*",
            Split(
                12,
                &[
                    ("transformer_blocks.{i}.norm1.linear.*", &[0, 1, 2, 6, 7, 8]),
                    ("transformer_blocks.{i}.norm2.linear.*", &[3, 4, 5, 9, 10, 11]),
                ],
            ),
        ),
        ("mixins.adaln_layer.query_layernorm_list.{i}.*", Rename("transformer_blocks.{i}.attn1.norm_q.*")),
        ("mixins.adaln_layer.key_layernorm_list.{i}.*", Rename("transformer_blocks.{i}.attn1.norm_k.*")),
        ("mixins.adaln_layer.fuser_list.{i}.*", Rename("fuser.{i}.*")),
        ("mixins.final_layer.norm_final.*", Rename("norm_out.norm.*")),
        ("mixins.final_layer.linear.*", Rename("proj_out.*")),
        ("mixins.final_layer.adaLN_modulation.1.*", Rename("norm_out.linear.*")),
        // SAT's BaseTransformer embedding table, unused by the video model
        ("transformer.position_embeddings.*", Drop),
        ("transformer.layers.{i}.input_layernorm.*", Rename("transformer_blocks.{i}.norm1.norm.*")),
        (
            "transformer.layers.{i}.attention.query_key_value.*",
            Split(
                3,
                &[
                    ("transformer_blocks.{i}.attn1.to_q.*", &[0]),
                    ("transformer_blocks.{i}.attn1.to_k.*", &[1]),
                    ("transformer_blocks.{i}.attn1.to_v.*", &[2]),
                ],
            ),
        ),
        ("transformer.layers.{i}.attention.dense.*", Rename("transformer_blocks.{i}.attn1.to_out.0.*")),
        ("transformer.layers.{i}.post_attention_layernorm.*", Rename("transformer_blocks.{i}.norm2.norm.*")),
        ("transformer.layers.{i}.mlp.dense_h_to_4h.*", Rename("transformer_blocks.{i}.ff.net.0.proj.*")),
        ("transformer.layers.{i}.mlp.dense_4h_to_h.*", Rename("transformer_blocks.{i}.ff.net.2.*")),
        ("transformer.final_layernorm.*", Rename("norm_final.*")),
        ("time_embed.0.*", Rename("time_embedding.linear_1.*")),
        ("time_embed.2.*", Rename("time_embedding.linear_2.*")),
        // CogVideoX 1.5 I2V only (not in Tora's files)
        ("ofs_embed.0.*", Rename("ofs_embedding.linear_1.*")),
        ("ofs_embed.2.*", Rename("ofs_embedding.linear_2.*")),
        ("traj_extractor.*", Rename("traj_extractor.*")),
    ],
};

/// CogVideoX's SAT VAE (`vae/3d-vae.pt`).
pub const VAE: Table = Table {
    prefix: "",
    rows: &[
        ("encoder.down.{i}.block.{j}.nin_shortcut.*", Rename("encoder.down_blocks.{i}.resnets.{j}.conv_shortcut.*")),
        ("encoder.down.{i}.block.{j}.*", Rename("encoder.down_blocks.{i}.resnets.{j}.*")),
        ("encoder.down.{i}.downsample.*", Rename("encoder.down_blocks.{i}.downsamplers.0.*")),
        ("encoder.mid.block_1.*", Rename("encoder.mid_block.resnets.0.*")),
        ("encoder.mid.block_2.*", Rename("encoder.mid_block.resnets.1.*")),
        ("encoder.conv_in.*", Rename("encoder.conv_in.*")),
        ("encoder.norm_out.*", Rename("encoder.norm_out.*")),
        ("encoder.conv_out.*", Rename("encoder.conv_out.*")),
        ("decoder.conv_in.*", Rename("decoder.conv_in.*")),
        ("decoder.mid.block_1.*", Rename("decoder.mid_block.resnets.0.*")),
        ("decoder.mid.block_2.*", Rename("decoder.mid_block.resnets.1.*")),
        // SAT's `up` is indexed from the highest resolution, diffusers' `up_blocks` from the lowest
        ("decoder.up.{i}.block.{j}.nin_shortcut.*", Rename("decoder.up_blocks.{~i}.resnets.{j}.conv_shortcut.*")),
        ("decoder.up.{i}.block.{j}.*", Rename("decoder.up_blocks.{~i}.resnets.{j}.*")),
        ("decoder.up.{i}.upsample.*", Rename("decoder.up_blocks.{~i}.upsamplers.0.*")),
        ("decoder.norm_out.*", Rename("decoder.norm_out.*")),
        ("decoder.conv_out.*", Rename("decoder.conv_out.*")),
        ("loss.*", Drop),
    ],
};

/// How Tora's SAT code runs the transformer, where it differs from diffusers' `ToraTransformer3DModel`
/// on the same weights (fixtures README, `io_sat/`: with both switched the outputs are bit-identical).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SatSemantics {
    /// diffusers adds `patch_embed.pos_embedding` to the [text; video] tokens when
    /// `use_learned_positional_embeddings`; SAT's `Rotary3DPositionEmbeddingMixin.
    /// position_embedding_forward` returns None, so the loaded embedding is never added.
    pub add_learned_pos_embedding: bool,
    /// eps of the final adaLN LayerNorm (`norm_out.norm`): SAT's `FinalLayerMixin` hard-codes 1e-6,
    /// diffusers uses the config's `norm_eps` (1e-5; `None` here). Block and `norm_final` LayerNorms agree.
    pub final_norm_eps: Option<f64>,
}

impl SatSemantics {
    /// Tora's SAT inference (`sat/dit_video_concat.py`).
    pub const TORA_SAT: SatSemantics = SatSemantics { add_learned_pos_embedding: false, final_norm_eps: Some(1e-6) };
    /// diffusers' `ToraTransformer3DModel` on the same weights.
    pub const DIFFUSERS: SatSemantics = SatSemantics { add_learned_pos_embedding: true, final_norm_eps: None };
}

// ---------------------------------------------------------------------------------------------
// patterns

/// Values bound while matching: `{i}`, `{j}` and the `*` tail.
#[derive(Debug, Default, Clone)]
struct Bound<'a> {
    i: Option<usize>,
    j: Option<usize>,
    rest: Option<&'a str>,
}

/// Matches `name` against `pattern`; `up` = number of VAE up blocks (for `{~i}`).
fn bind<'a>(pattern: &str, name: &'a str, up: usize) -> Option<Bound<'a>> {
    let mut b = Bound::default();
    let mut rest = name;
    let segs: Vec<&str> = pattern.split('.').collect();
    for (n, seg) in segs.iter().enumerate() {
        if *seg == "*" {
            if n + 1 != segs.len() || rest.is_empty() {
                return None;
            }
            b.rest = Some(rest);
            return Some(b);
        }
        let (head, tail) = match rest.split_once('.') {
            Some((h, t)) => (h, t),
            None => (rest, ""),
        };
        let index = || head.parse::<usize>().ok().filter(|_| !head.starts_with('+') && !head.is_empty());
        match *seg {
            "{i}" => b.i = Some(index()?),
            "{j}" => b.j = Some(index()?),
            "{~i}" => b.i = Some(up.checked_sub(1)?.checked_sub(index()?)?),
            lit if lit == head => {}
            _ => return None,
        }
        let last = n + 1 == segs.len();
        if last != tail.is_empty() || (!last && !rest.contains('.')) {
            return None;
        }
        rest = tail;
    }
    Some(b)
}

/// Writes `pattern` with the bound values.
fn render(pattern: &str, b: &Bound<'_>, up: usize) -> Option<String> {
    let segs: Vec<String> = pattern
        .split('.')
        .map(|seg| match seg {
            "{i}" => b.i.map(|i| i.to_string()),
            "{j}" => b.j.map(|j| j.to_string()),
            "{~i}" => b.i.and_then(|i| up.checked_sub(1)?.checked_sub(i)).map(|r| r.to_string()),
            "*" => b.rest.map(str::to_string),
            lit => Some(lit.to_string()),
        })
        .collect::<Option<_>>()?;
    Some(segs.join("."))
}

/// How the SAT tensor `sat_key` is served under diffusers names; `None` when the table has no
/// rule for it (the key is then served under its SAT name and reported as unexpected by the loader).
/// `up`: number of VAE decoder up blocks ([`up_blocks`]), unused by the transformer table.
pub fn sat_to_diffusers(table: &Table, sat_key: &str, up: usize) -> Option<Served> {
    let name = sat_key.strip_prefix(table.prefix).unwrap_or(sat_key);
    for (pat, rule) in table.rows {
        let Some(b) = bind(pat, name, up) else { continue };
        return match rule {
            Rename(to) => render(to, &b, up).map(Served::As),
            Drop => Some(Served::Dropped),
            Split(chunks, parts) => {
                let parts: Option<Vec<(String, Vec<usize>)>> =
                    parts.iter().map(|(to, idx)| Some((render(to, &b, up)?, idx.to_vec()))).collect();
                Some(Served::RowChunks { chunks: *chunks, parts: parts? })
            }
        };
    }
    None
}

/// `(chunks, indices)`: a tensor made of these row chunks of its SAT tensor split in `chunks`.
pub type RowChunks = (usize, Vec<usize>);

/// Where the diffusers tensor `key` comes from: the SAT key (with the table's prefix) and, for a
/// derived tensor, `(chunks, indices)` of its row chunks. The inverse of [`sat_to_diffusers`].
#[allow(clippy::type_complexity)]
pub fn diffusers_to_sat(table: &Table, key: &str, up: usize) -> Option<(String, Option<RowChunks>)> {
    for (pat, rule) in table.rows {
        // (diffusers name, row chunks it takes)
        let targets: Vec<(&str, Option<(usize, &[usize])>)> = match rule {
            Rename(to) => vec![(to, None)],
            Drop => continue,
            Split(chunks, parts) => parts.iter().map(|(to, idx)| (*to, Some((*chunks, *idx)))).collect(),
        };
        for (to, chunks) in targets {
            let Some(b) = bind(to, key, up) else { continue };
            let sat = render(pat, &b, up)?;
            return Some((format!("{}{sat}", table.prefix), chunks.map(|(n, idx)| (n, idx.to_vec()))));
        }
    }
    None
}

/// Number of VAE decoder up blocks named by `keys` (SAT `decoder.up.<i>` or diffusers
/// `decoder.up_blocks.<i>`): one more than the highest index.
pub fn up_blocks<'k>(keys: impl IntoIterator<Item = &'k str>) -> usize {
    let mut seen = BTreeSet::new();
    for k in keys {
        let tail = k.strip_prefix("decoder.up.").or_else(|| k.strip_prefix("decoder.up_blocks."));
        if let Some(i) = tail.and_then(|t| t.split('.').next()).and_then(|s| s.parse::<usize>().ok()) {
            seen.insert(i);
        }
    }
    seen.last().map_or(0, |m| m + 1)
}

// ---------------------------------------------------------------------------------------------
// opening

/// A SAT transformer checkpoint served under diffusers names.
pub fn transformer_view(ckpt: Checkpoint) -> Result<Checkpoint, LoadError> {
    ckpt.renamed(|k| sat_to_diffusers(&TRANSFORMER, k, 0).unwrap_or_else(|| Served::As(k.to_string())))
}

/// A SAT VAE checkpoint served under diffusers names.
pub fn vae_view(ckpt: Checkpoint) -> Result<Checkpoint, LoadError> {
    let up = up_blocks(ckpt.keys());
    ckpt.renamed(|k| sat_to_diffusers(&VAE, k, up).unwrap_or_else(|| Served::As(k.to_string())))
}

/// The transformer of a SAT tree (`folder`: the `ckpts/` folder, or the `.pt` file itself), under
/// diffusers names: feed it to the transformer's `from_checkpoint` with [`SatSemantics::TORA_SAT`].
pub fn open_sat_transformer(folder: &Path) -> Result<Checkpoint, LoadError> {
    let file = if folder.is_file() { folder.to_path_buf() } else { SatTree::find(folder)?.transformer_file()? };
    transformer_view(Checkpoint::open_pt(&file, Some("module"))?)
}

/// The VAE of a SAT tree (`folder`: the `ckpts/` folder, or `3d-vae.pt` itself), under diffusers names.
pub fn open_sat_vae(folder: &Path) -> Result<Checkpoint, LoadError> {
    let file = if folder.is_file() { folder.to_path_buf() } else { SatTree::find(folder)?.vae_file()? };
    vae_view(Checkpoint::open_pt(&file, Some("state_dict"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(t: &Table, k: &str, up: usize) -> Option<Served> {
        sat_to_diffusers(t, k, up)
    }

    #[test]
    fn patterns_bind_whole_segments() {
        assert!(bind("a.{i}.*", "a.3.weight", 0).is_some());
        assert!(bind("a.{i}.*", "a.x.weight", 0).is_none());
        assert!(bind("a.{i}.*", "a.3", 0).is_none(), "the tail must not be empty");
        assert!(bind("ab.*", "a.weight", 0).is_none());
        assert!(bind("a.b", "a.b.c", 0).is_none());
        assert!(bind("a.b", "a.bc", 0).is_none());
        assert!(bind("a.b", "a.b", 0).is_some());
        assert!(bind("a.{~i}.*", "a.3.w", 4).is_some_and(|b| b.i == Some(0)));
        assert!(bind("a.{~i}.*", "a.4.w", 4).is_none());
    }

    #[test]
    fn transformer_rules_forwards_and_back() {
        let p = "model.diffusion_model.";
        let cases: &[(&str, Served)] = &[
            ("mixins.pos_embed.pos_embedding", Served::As("patch_embed.pos_embedding".into())),
            ("mixins.pos_embed.freqs_sin", Served::Dropped),
            ("transformer.position_embeddings.weight", Served::Dropped),
            (
                "transformer.layers.7.attention.dense.bias",
                Served::As("transformer_blocks.7.attn1.to_out.0.bias".into()),
            ),
            (
                "mixins.adaln_layer.fuser_list.3.flow_cond_norm.weight",
                Served::As("fuser.3.flow_cond_norm.weight".into()),
            ),
            ("traj_extractor.body.1.bn1.running_var", Served::As("traj_extractor.body.1.bn1.running_var".into())),
            (
                "transformer.layers.11.attention.query_key_value.weight",
                Served::RowChunks {
                    chunks: 3,
                    parts: vec![
                        ("transformer_blocks.11.attn1.to_q.weight".into(), vec![0]),
                        ("transformer_blocks.11.attn1.to_k.weight".into(), vec![1]),
                        ("transformer_blocks.11.attn1.to_v.weight".into(), vec![2]),
                    ],
                },
            ),
            (
                "mixins.adaln_layer.adaLN_modulations.0.1.bias",
                Served::RowChunks {
                    chunks: 12,
                    parts: vec![
                        ("transformer_blocks.0.norm1.linear.bias".into(), vec![0, 1, 2, 6, 7, 8]),
                        ("transformer_blocks.0.norm2.linear.bias".into(), vec![3, 4, 5, 9, 10, 11]),
                    ],
                },
            ),
        ];
        for (sat, want) in cases {
            assert_eq!(fwd(&TRANSFORMER, &format!("{p}{sat}"), 0).as_ref(), Some(want), "{sat}");
            match want {
                Served::As(d) => assert_eq!(diffusers_to_sat(&TRANSFORMER, d, 0), Some((format!("{p}{sat}"), None))),
                Served::RowChunks { chunks, parts } => {
                    for (d, idx) in parts {
                        assert_eq!(
                            diffusers_to_sat(&TRANSFORMER, d, 0),
                            Some((format!("{p}{sat}"), Some((*chunks, idx.clone()))))
                        );
                    }
                }
                Served::Dropped => {}
            }
        }
        assert_eq!(fwd(&TRANSFORMER, "model.diffusion_model.mixins.unknown.weight", 0), None);
    }

    #[test]
    fn vae_up_blocks_are_reversed_and_shortcuts_renamed() {
        let up = 4;
        let f = |k: &str| match fwd(&VAE, k, up) {
            Some(Served::As(d)) => d,
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(f("decoder.up.0.block.2.conv1.conv.weight"), "decoder.up_blocks.3.resnets.2.conv1.conv.weight");
        assert_eq!(f("decoder.up.3.upsample.conv.bias"), "decoder.up_blocks.0.upsamplers.0.conv.bias");
        assert_eq!(f("decoder.up.1.block.0.nin_shortcut.weight"), "decoder.up_blocks.2.resnets.0.conv_shortcut.weight");
        assert_eq!(f("encoder.down.2.block.0.nin_shortcut.bias"), "encoder.down_blocks.2.resnets.0.conv_shortcut.bias");
        assert_eq!(f("encoder.down.1.downsample.conv.weight"), "encoder.down_blocks.1.downsamplers.0.conv.weight");
        assert_eq!(
            f("decoder.mid.block_2.norm1.conv_y.conv.weight"),
            "decoder.mid_block.resnets.1.norm1.conv_y.conv.weight"
        );
        assert_eq!(fwd(&VAE, "loss.logvar", up), Some(Served::Dropped));
        assert_eq!(fwd(&VAE, "decoder.up.4.block.0.conv1.conv.weight", up), None, "index past N");
        for sat in ["decoder.up.0.block.2.conv1.conv.weight", "decoder.up.1.block.0.nin_shortcut.weight"] {
            let d = f(sat);
            assert_eq!(diffusers_to_sat(&VAE, &d, up), Some((sat.to_string(), None)));
        }
        assert_eq!(up_blocks(["decoder.up.0.x", "decoder.up.3.y", "encoder.down.7.z"]), 4);
        assert_eq!(up_blocks(["decoder.up_blocks.1.x"]), 2);
    }
}
