//! T5's SentencePiece Unigram tokenizer, read from `spiece.model` + `tokenizer_config.json`
//! (no `tokenizer.json` needed), producing the ids transformers' `T5Tokenizer` produces.
//!
//! The pipeline is the one transformers (>= 5, the fixtures' producer) builds from `spiece.model`,
//! which also matches sentencepiece itself on ordinary text:
//! 1. added tokens (`<pad>`, `</s>`, `<unk>`, `<extra_id_N>`, user-defined pieces) are cut out of
//!    the raw text first (leftmost-longest; `lstrip`/`rstrip` flags from the config eat adjacent
//!    whitespace);
//! 2. every other segment is normalised with the model's precompiled charsmap (`nmt_nfkc`),
//!    per extended grapheme cluster as HF tokenizers does (a cluster shorter than 6 bytes is
//!    replaced whole by its first trie match, else each char separately);
//! 3. split on whitespace; every word gets the `▁` prefix (and splits again before any `▁`);
//! 4. each word is segmented by Viterbi over the piece scores (f64 path scores; an uncovered
//!    character costs `min_score − 10` as `<unk>`, consecutive unknowns fuse into one `<unk>`);
//! 5. truncate to `max_length − 1`, append `</s>`, pad with `<pad>` to `max_length`; the
//!    attention mask is 1 on real tokens and `</s>`, 0 on padding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use unicode_segmentation::UnicodeSegmentation;

use super::spm::{CharsMap, PieceType, SpmModel};
use crate::model::load::LoadError;

const SPACE: char = '\u{2581}'; // ▁
const UNK_PENALTY: f64 = 10.0;

/// A token matched on the raw text before normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedToken {
    pub content: String,
    pub id: u32,
    pub lstrip: bool,
    pub rstrip: bool,
    pub special: bool,
}

/// `tokenizer_config.json` fields used here (others ignored).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenizerConfig {
    #[serde(default)]
    pub eos_token: Option<TokenSpec>,
    #[serde(default)]
    pub pad_token: Option<TokenSpec>,
    #[serde(default)]
    pub unk_token: Option<TokenSpec>,
    #[serde(default)]
    pub extra_ids: Option<usize>,
    #[serde(default)]
    pub model_max_length: Option<f64>,
    #[serde(default)]
    pub added_tokens_decoder: Option<HashMap<String, AddedTokenSpec>>,
}

/// A token given as a string or as an `AddedToken` object.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TokenSpec {
    Plain(String),
    Object { content: String },
}

impl TokenSpec {
    fn content(&self) -> &str {
        match self {
            TokenSpec::Plain(s) => s,
            TokenSpec::Object { content } => content,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AddedTokenSpec {
    pub content: String,
    #[serde(default)]
    pub lstrip: bool,
    #[serde(default)]
    pub rstrip: bool,
    #[serde(default = "yes")]
    pub special: bool,
}

fn yes() -> bool {
    true
}

/// Token ids and attention masks of a batch, `[batch][max_length]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    pub input_ids: Vec<Vec<i64>>,
    pub attention_mask: Vec<Vec<i64>>,
    /// Length of each prompt's ids before truncation, `</s>` included.
    pub untruncated_lengths: Vec<usize>,
}

pub struct T5Tokenizer {
    /// id -> (piece, score); sentencepiece pieces then the extra ids (score 0).
    vocab: Vec<(String, f64)>,
    piece_to_id: HashMap<String, u32>,
    max_piece_bytes: usize,
    min_score: f64,
    unk_id: u32,
    eos_id: u32,
    pad_id: u32,
    charsmap: Option<CharsMap>,
    /// Sorted longest first, so the first match at a position is the longest.
    added: Vec<AddedToken>,
}

impl T5Tokenizer {
    /// Finds the tokenizer of a model folder: `DIR/tokenizer/`, `DIR` itself (a folder holding
    /// `spiece.model`), or the `tokenizer/` next to a `text_encoder/` folder.
    pub fn find_dir(dir: &Path) -> Result<PathBuf, LoadError> {
        let candidates =
            [dir.join("tokenizer"), dir.to_path_buf(), dir.parent().map(|p| p.join("tokenizer")).unwrap_or_default()];
        candidates.into_iter().find(|c| c.join("spiece.model").is_file()).ok_or_else(|| LoadError::NotFound {
            path: dir.join("tokenizer").join("spiece.model"),
            hint: " (the SentencePiece model of the T5 tokenizer; a pipeline folder has it in tokenizer/)".into(),
        })
    }

    /// Loads `spiece.model` and (if present) `tokenizer_config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let spm_path = dir.join("spiece.model");
        let bytes = std::fs::read(&spm_path).map_err(|e| LoadError::io(&spm_path, e))?;
        let model = SpmModel::parse(&bytes).map_err(|reason| LoadError::Unsupported {
            path: spm_path.clone(),
            reason: format!("not a SentencePiece model: {reason}"),
        })?;
        let cfg_path = dir.join("tokenizer_config.json");
        let config: TokenizerConfig =
            if cfg_path.is_file() { crate::model::load::read_config(&cfg_path)? } else { TokenizerConfig::default() };
        Self::from_parts(&model, &config).map_err(|reason| LoadError::Unsupported { path: spm_path, reason })
    }

    pub fn from_parts(model: &SpmModel, config: &TokenizerConfig) -> Result<Self, String> {
        if model.model_type != 1 {
            return Err(format!("model_type {} is not Unigram (1); T5 uses Unigram", model.model_type));
        }
        if model.byte_fallback {
            return Err("byte_fallback models are not supported (T5 does not use them)".into());
        }
        let mut vocab: Vec<(String, f64)> = model.pieces.iter().map(|p| (p.piece.clone(), p.score as f64)).collect();
        // transformers' T5 appends the sentinels after the pieces: <extra_id_{n-1}> ... <extra_id_0>.
        let extra_ids = config.extra_ids.unwrap_or(100);
        let has_extra = model.pieces.iter().any(|p| p.piece.starts_with("<extra_id_"));
        if !has_extra {
            for i in (0..extra_ids).rev() {
                vocab.push((format!("<extra_id_{i}>"), 0.0));
            }
        }
        let mut piece_to_id = HashMap::with_capacity(vocab.len());
        for (id, (piece, _)) in vocab.iter().enumerate() {
            piece_to_id.entry(piece.clone()).or_insert(id as u32);
        }
        let lookup = |spec: &Option<TokenSpec>, default: &str| -> Result<u32, String> {
            let name = spec.as_ref().map(TokenSpec::content).unwrap_or(default);
            piece_to_id.get(name).copied().ok_or_else(|| format!("token {name:?} is not in the vocabulary"))
        };
        let unk_id = match model.unk_id {
            Some(u) => u as u32,
            None => lookup(&config.unk_token, "<unk>")?,
        };
        let eos_id = lookup(&config.eos_token, "</s>")?;
        let pad_id = lookup(&config.pad_token, "<pad>")?;
        let min_score = vocab.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);

        // Added tokens: from the config when it lists them (with their strip flags), else the
        // control pieces, the sentinels and the user-defined pieces.
        let mut added: Vec<AddedToken> = Vec::new();
        if let Some(decoder) = &config.added_tokens_decoder {
            for (id, spec) in decoder {
                let id: u32 = id.parse().map_err(|_| format!("added_tokens_decoder key {id:?} is not an id"))?;
                added.push(AddedToken {
                    content: spec.content.clone(),
                    id,
                    lstrip: spec.lstrip,
                    rstrip: spec.rstrip,
                    special: spec.special,
                });
            }
        } else {
            for (id, p) in model.pieces.iter().enumerate() {
                if matches!(p.kind, PieceType::Control | PieceType::Unknown) && !p.piece.is_empty() {
                    added.push(AddedToken {
                        content: p.piece.clone(),
                        id: id as u32,
                        lstrip: false,
                        rstrip: false,
                        special: true,
                    });
                }
            }
            for (id, (piece, _)) in vocab.iter().enumerate().skip(model.pieces.len()) {
                added.push(AddedToken {
                    content: piece.clone(),
                    id: id as u32,
                    lstrip: false,
                    rstrip: false,
                    special: true,
                });
            }
        }
        for (id, p) in model.pieces.iter().enumerate() {
            if p.kind == PieceType::UserDefined && !added.iter().any(|a| a.content == p.piece) {
                added.push(AddedToken {
                    content: p.piece.clone(),
                    id: id as u32,
                    lstrip: false,
                    rstrip: false,
                    special: false,
                });
            }
        }
        added.retain(|a| !a.content.is_empty());
        added.sort_by(|a, b| b.content.len().cmp(&a.content.len()).then(a.content.cmp(&b.content)));

        let charsmap = if model.precompiled_charsmap.is_empty() {
            None
        } else {
            Some(CharsMap::parse(&model.precompiled_charsmap)?)
        };
        let max_piece_bytes = vocab.iter().map(|v| v.0.len()).max().unwrap_or(1);
        Ok(T5Tokenizer { vocab, piece_to_id, max_piece_bytes, min_score, unk_id, eos_id, pad_id, charsmap, added })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.vocab.get(id as usize).map(|v| v.0.as_str())
    }

    /// Ids of `text` without `</s>`, truncation or padding.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for segment in self.split_added(text) {
            match segment {
                Segment::Added(id) => ids.push(id),
                Segment::Text(t) => {
                    let normalized = self.normalize(t);
                    for word in pre_tokenize(&normalized) {
                        self.unigram(&word, &mut ids);
                    }
                }
            }
        }
        ids
    }

    /// `T5Tokenizer(text, padding="max_length", max_length, truncation=True)`:
    /// `(input_ids, attention_mask, untruncated length)`.
    pub fn encode(&self, text: &str, max_length: usize) -> (Vec<i64>, Vec<i64>, usize) {
        let mut ids: Vec<i64> = self.tokenize(text).into_iter().map(i64::from).collect();
        let untruncated = ids.len() + 1;
        ids.truncate(max_length.saturating_sub(1));
        if max_length > 0 {
            ids.push(self.eos_id as i64);
        }
        let mut mask = vec![1i64; ids.len()];
        ids.resize(max_length, self.pad_id as i64);
        mask.resize(max_length, 0);
        (ids, mask, untruncated)
    }

    pub fn encode_batch<S: AsRef<str>>(&self, prompts: &[S], max_length: usize) -> Encoding {
        let mut e = Encoding { input_ids: Vec::new(), attention_mask: Vec::new(), untruncated_lengths: Vec::new() };
        for p in prompts {
            let (ids, mask, n) = self.encode(p.as_ref(), max_length);
            e.input_ids.push(ids);
            e.attention_mask.push(mask);
            e.untruncated_lengths.push(n);
        }
        e
    }

    /// Cuts added tokens out of the raw text (leftmost, then longest).
    fn split_added<'t>(&self, text: &'t str) -> Vec<Segment<'t>> {
        let mut out = Vec::new();
        let mut start = 0; // start of the pending text segment
        let mut pos = 0;
        let bytes = text.as_bytes();
        while pos < text.len() {
            let hit = self.added.iter().find(|a| bytes[pos..].starts_with(a.content.as_bytes()));
            if let Some(tok) = hit {
                let mut seg_end = pos;
                if tok.lstrip {
                    seg_end = text[start..pos].trim_end().len() + start;
                }
                let mut next = pos + tok.content.len();
                if tok.rstrip {
                    next = text.len() - text[next..].trim_start().len();
                }
                if seg_end > start {
                    out.push(Segment::Text(&text[start..seg_end]));
                }
                out.push(Segment::Added(tok.id));
                start = next;
                pos = next;
            } else {
                pos += text[pos..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if start < text.len() {
            out.push(Segment::Text(&text[start..]));
        }
        out
    }

    /// The precompiled-charsmap normaliser, as HF tokenizers' `Precompiled` applies it.
    fn normalize(&self, text: &str) -> String {
        let Some(map) = &self.charsmap else { return text.to_string() };
        let mut out = String::with_capacity(text.len());
        for grapheme in text.graphemes(true) {
            if grapheme.len() < 6 {
                if let Some(norm) = map.transform(grapheme) {
                    out.push_str(norm);
                    continue;
                }
            }
            for (i, c) in grapheme.char_indices() {
                let part = &grapheme[i..i + c.len_utf8()];
                match map.transform(part) {
                    Some(norm) => out.push_str(norm),
                    None => out.push(c),
                }
            }
        }
        out
    }

    /// Viterbi segmentation of one pre-token (HF `Unigram::encode_optimized`), appending ids.
    fn unigram(&self, word: &str, ids: &mut Vec<u32>) {
        #[derive(Clone, Copy)]
        struct Node {
            id: u32,
            score: f64,
            starts_at: Option<usize>,
        }
        let size = word.len();
        let unk_score = self.min_score - UNK_PENALTY;
        let mut best = vec![Node { id: 0, score: 0.0, starts_at: None }; size + 1];
        let mut starts_at = 0;
        while starts_at < size {
            let till_here = best[starts_at].score;
            let mblen = word[starts_at..].chars().next().map_or(1, char::len_utf8);
            let mut has_single = false;
            // every vocabulary piece that is a prefix of word[starts_at..], shortest first
            let limit = (starts_at + self.max_piece_bytes).min(size);
            let mut end = starts_at;
            for c in word[starts_at..limit].chars() {
                end += c.len_utf8();
                if let Some(&id) = self.piece_to_id.get(&word[starts_at..end]) {
                    let candidate = self.vocab[id as usize].1 + till_here;
                    let target = &mut best[end];
                    if target.starts_at.is_none() || candidate > target.score {
                        *target = Node { id, score: candidate, starts_at: Some(starts_at) };
                    }
                    if end - starts_at == mblen {
                        has_single = true;
                    }
                }
            }
            if !has_single {
                let candidate = unk_score + till_here;
                let target = &mut best[starts_at + mblen];
                if target.starts_at.is_none() || candidate > target.score {
                    *target = Node { id: self.unk_id, score: candidate, starts_at: Some(starts_at) };
                }
            }
            starts_at += mblen;
        }
        // backtrack; consecutive unknowns fuse into one <unk>
        let mut path = Vec::new();
        let mut ends_at = size;
        while ends_at > 0 {
            let node = best[ends_at];
            let Some(s) = node.starts_at else { break };
            if !(node.id == self.unk_id && path.last() == Some(&self.unk_id)) {
                path.push(node.id);
            }
            ends_at = s;
        }
        ids.extend(path.into_iter().rev());
    }
}

enum Segment<'t> {
    Text(&'t str),
    Added(u32),
}

/// `WhitespaceSplit` then `Metaspace(▁, prepend_scheme="always", split=true)`.
fn pre_tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        let word = if word.starts_with(SPACE) { word.to_string() } else { format!("{SPACE}{word}") };
        // split before every ▁ (the delimiter merges with what follows)
        let mut current = String::new();
        for c in word.chars() {
            if c == SPACE && !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            current.push(c);
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}
