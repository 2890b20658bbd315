//! A reader for SentencePiece `.model` files (the `ModelProto` protobuf), and its precompiled
//! normalisation charsmap (a darts-clone double-array trie plus a blob of replacement strings).
//!
//! Only the fields a Unigram tokenizer needs are read; the protobuf wire format is decoded by
//! hand (varints and length-delimited fields), unknown fields are skipped.

/// `ModelProto.SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// What the tokenizer needs from a `ModelProto`.
#[derive(Debug, Clone)]
pub struct SpmModel {
    pub pieces: Vec<Piece>,
    /// `TrainerSpec.model_type`: 1 = UNIGRAM (default), 2 = BPE, 3 = WORD, 4 = CHAR.
    pub model_type: i32,
    pub unk_id: Option<usize>,
    pub byte_fallback: bool,
    /// `NormalizerSpec.name` (`nmt_nfkc` for T5).
    pub normalizer_name: String,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end =
            self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or("field runs past the end of the data")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Next `(field number, value)`, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u32, Value<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = (key >> 3) as u32;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let n = self.varint()? as usize;
                Value::Bytes(self.take(n)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "fixed32")?)),
            w => return Err(format!("unsupported protobuf wire type {w} (field {field})")),
        };
        Ok(Some((field, value)))
    }
}

impl SpmModel {
    /// Parses a serialized `ModelProto`.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let mut m = SpmModel {
            pieces: Vec::new(),
            model_type: 1,
            unk_id: None,
            byte_fallback: false,
            normalizer_name: String::new(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        };
        let mut trainer_unk: Option<u64> = None;
        let mut r = Reader::new(bytes);
        while let Some((field, value)) = r.field()? {
            match (field, value) {
                (1, Value::Bytes(b)) => m.pieces.push(parse_piece(b)?),
                (2, Value::Bytes(b)) => {
                    let mut t = Reader::new(b);
                    while let Some((f, v)) = t.field()? {
                        match (f, v) {
                            (3, Value::Varint(x)) => m.model_type = x as i32,
                            (35, Value::Varint(x)) => m.byte_fallback = x != 0,
                            (40, Value::Varint(x)) => trainer_unk = Some(x),
                            _ => {}
                        }
                    }
                }
                (3, Value::Bytes(b)) => {
                    let mut n = Reader::new(b);
                    while let Some((f, v)) = n.field()? {
                        match (f, v) {
                            (1, Value::Bytes(s)) => m.normalizer_name = String::from_utf8_lossy(s).into_owned(),
                            (2, Value::Bytes(s)) => m.precompiled_charsmap = s.to_vec(),
                            (3, Value::Varint(x)) => m.add_dummy_prefix = x != 0,
                            (4, Value::Varint(x)) => m.remove_extra_whitespaces = x != 0,
                            (5, Value::Varint(x)) => m.escape_whitespaces = x != 0,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if m.pieces.is_empty() {
            return Err("no pieces: not a SentencePiece model".into());
        }
        m.unk_id = m.pieces.iter().position(|p| p.kind == PieceType::Unknown).or(trainer_unk.map(|u| u as usize));
        Ok(m)
    }
}

fn parse_piece(b: &[u8]) -> Result<Piece, String> {
    let mut p = Piece { piece: String::new(), score: 0.0, kind: PieceType::Normal };
    let mut r = Reader::new(b);
    while let Some((f, v)) = r.field()? {
        match (f, v) {
            (1, Value::Bytes(s)) => {
                p.piece = String::from_utf8(s.to_vec()).map_err(|_| "a piece is not valid UTF-8")?
            }
            (2, Value::Fixed32(x)) => p.score = f32::from_bits(x),
            (3, Value::Varint(x)) => {
                p.kind = match x {
                    1 => PieceType::Normal,
                    2 => PieceType::Unknown,
                    3 => PieceType::Control,
                    4 => PieceType::UserDefined,
                    5 => PieceType::Unused,
                    6 => PieceType::Byte,
                    other => return Err(format!("unknown piece type {other}")),
                }
            }
            _ => {}
        }
    }
    Ok(p)
}

/// The precompiled charsmap: `u32 trie_size | darts double array (trie_size bytes) | strings`.
#[derive(Debug, Clone)]
pub struct CharsMap {
    units: Vec<u32>,
    normalized: Vec<u8>,
}

impl CharsMap {
    pub fn parse(blob: &[u8]) -> Result<Self, String> {
        let size = blob.get(..4).ok_or("charsmap shorter than its header")?;
        let trie_size = u32::from_le_bytes(size.try_into().map_err(|_| "header")?) as usize;
        if trie_size % 4 != 0 || 4 + trie_size > blob.len() {
            return Err(format!("charsmap trie size {trie_size} does not fit the {}-byte blob", blob.len()));
        }
        let units =
            blob[4..4 + trie_size].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(CharsMap { units, normalized: blob[4 + trie_size..].to_vec() })
    }

    /// darts-clone `commonPrefixSearch`: `(value, length)` of every key that is a prefix of
    /// `key`, shortest first.
    pub fn common_prefix_search(&self, key: &[u8]) -> Vec<(u32, usize)> {
        let unit = |i: usize| self.units.get(i).copied();
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let label = |u: u32| u & ((1 << 31) | 0xff);
        let has_leaf = |u: u32| (u >> 8) & 1 == 1;
        let value = |u: u32| u & ((1 << 31) - 1);
        let mut out = Vec::new();
        let Some(root) = unit(0) else { return out };
        let mut node_pos = offset(root);
        for (i, &c) in key.iter().enumerate() {
            node_pos ^= c as usize;
            let Some(u) = unit(node_pos) else { return out };
            if label(u) != c as u32 {
                return out;
            }
            node_pos ^= offset(u);
            if has_leaf(u) {
                if let Some(leaf) = unit(node_pos) {
                    out.push((value(leaf), i + 1));
                }
            }
        }
        out
    }

    /// The replacement string stored at `offset` (NUL-terminated).
    pub fn replacement(&self, offset: u32) -> Option<&str> {
        let start = offset as usize;
        let rest = self.normalized.get(start..)?;
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// HF tokenizers' `Precompiled::transform`: the replacement of the *first* (shortest) prefix
    /// match of `chunk`, if any.
    pub fn transform(&self, chunk: &str) -> Option<&str> {
        let results = self.common_prefix_search(chunk.as_bytes());
        let (value, _) = results.first()?;
        self.replacement(*value)
    }
}
