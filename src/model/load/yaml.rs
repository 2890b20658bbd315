//! The YAML subset of SAT model configs (`sat/configs/**/*.yaml`), read into a JSON value:
//! block mappings and sequences by indentation, flow `[...]` / `{...}` collections (possibly over
//! several lines), comments, plain / single- / double-quoted scalars; scalars typed as OmegaConf
//! reads them (ints, floats incl. `1e-5`, `True`/`false`, `null`/`~`). Anchors, tags, multi-line
//! strings and multiple documents are refused with an error naming the line.
//!
//! Hand-written rather than a YAML crate: the maintained serde YAML crates pull `indexmap` in a
//! way that re-fingerprints and rebuilds the whole wgpu/burn dependency tree (measured), a cost
//! out of proportion to reading a few dozen numbers from a config.

use serde_json::{Map, Number, Value};

struct Line {
    /// 1-based line number in the file (of the line starting this logical line).
    no: usize,
    indent: usize,
    text: String,
}

/// Parses `text` into a JSON value; errors name the line.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut lines = logical_lines(text)?;
    if lines.is_empty() {
        return Ok(Value::Null);
    }
    let mut i = 0;
    let indent = lines[0].indent;
    let v = node(&mut lines, &mut i, indent)?;
    if let Some(l) = lines.get(i) {
        return Err(format!("line {}: unexpected content at this indentation", l.no));
    }
    Ok(v)
}

/// Lines without comments and blanks; a flow collection spanning lines becomes one line.
fn logical_lines(text: &str) -> Result<Vec<Line>, String> {
    let mut out: Vec<Line> = Vec::new();
    let mut open = 0i32;
    for (n, raw) in text.lines().enumerate() {
        let no = n + 1;
        let line = strip_comment(raw).trim_end().to_string();
        if line.trim().is_empty() {
            continue;
        }
        let body = line.trim_start();
        if line[..line.len() - body.len()].contains('\t') {
            return Err(format!("line {no}: tab indentation"));
        }
        if open > 0 {
            let last = out.last_mut().ok_or_else(|| format!("line {no}: unbalanced brackets"))?;
            last.text.push(' ');
            last.text.push_str(body);
        } else {
            if body == "---" && out.is_empty() {
                continue;
            }
            if body == "---" || body == "..." {
                return Err(format!("line {no}: several YAML documents"));
            }
            if body.starts_with(['&', '*', '!', '|', '>', '%', '@', '`']) {
                return Err(format!("line {no}: YAML feature not supported here (anchor, tag or block scalar)"));
            }
            out.push(Line { no, indent: line.len() - body.len(), text: body.to_string() });
        }
        open += bracket_balance(body);
        if open < 0 {
            return Err(format!("line {no}: unbalanced brackets"));
        }
    }
    if open != 0 {
        return Err("unclosed [ or { at the end of the file".into());
    }
    Ok(out)
}

/// Text before a `#` comment (one at the start or after whitespace, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev.is_whitespace() => return &line[..i],
            None => {}
        }
        prev = c;
    }
    line
}

/// Net count of opening minus closing flow brackets outside quotes.
fn bracket_balance(s: &str) -> i32 {
    let mut quote: Option<char> = None;
    let mut n = 0;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => n += 1,
                ']' | '}' => n -= 1,
                _ => {}
            },
        }
    }
    n
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// `key: rest` split at the first `:` followed by a space or the end, outside quotes/brackets.
fn split_key(text: &str) -> Option<(String, &str)> {
    let mut quote: Option<char> = None;
    let mut depth = 0;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' if i == 0 => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                ':' if depth == 0 && (i + 1 == text.len() || bytes[i + 1] == b' ') => {
                    let key = text[..i].trim();
                    let key = match scalar(key) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    return Some((key, text[i + 1..].trim()));
                }
                _ => {}
            },
        }
    }
    None
}

/// The block node whose first line is `lines[*i]`, at `indent`.
fn node(lines: &mut [Line], i: &mut usize, indent: usize) -> Result<Value, String> {
    let Some(l) = lines.get(*i) else { return Ok(Value::Null) };
    if l.indent != indent {
        return Err(format!("line {}: unexpected indentation", l.no));
    }
    if is_item(&l.text) {
        return sequence(lines, i, indent);
    }
    if split_key(&l.text).is_some() {
        return mapping(lines, i, indent);
    }
    let v = flow_or_scalar(&l.text).map_err(|e| format!("line {}: {e}", l.no))?;
    *i += 1;
    Ok(v)
}

fn sequence(lines: &mut [Line], i: &mut usize, indent: usize) -> Result<Value, String> {
    let mut items = Vec::new();
    while let Some(l) = lines.get(*i) {
        if l.indent != indent || !is_item(&l.text) {
            break;
        }
        let rest = l.text[1..].trim_start().to_string();
        if rest.is_empty() {
            *i += 1;
            match lines.get(*i) {
                Some(next) if next.indent > indent => {
                    let ind = next.indent;
                    items.push(node(lines, i, ind)?);
                }
                _ => items.push(Value::Null),
            }
        } else {
            // `- key: v` starts a mapping whose further keys align with `key`.
            let col = indent + (l.text.len() - rest.len());
            lines[*i] = Line { no: l.no, indent: col, text: rest };
            items.push(node(lines, i, col)?);
        }
    }
    Ok(Value::Array(items))
}

fn mapping(lines: &mut [Line], i: &mut usize, indent: usize) -> Result<Value, String> {
    let mut map = Map::new();
    while let Some(l) = lines.get(*i) {
        if l.indent != indent || is_item(&l.text) {
            break;
        }
        let no = l.no;
        let (key, rest) = split_key(&l.text).ok_or_else(|| format!("line {no}: expected 'key: value'"))?;
        let rest = rest.to_string();
        *i += 1;
        let value = if rest.is_empty() {
            match lines.get(*i) {
                // nested block, or a sequence at the key's own indentation (legal YAML)
                Some(next) if next.indent > indent || (next.indent == indent && is_item(&next.text)) => {
                    let ind = next.indent;
                    node(lines, i, ind)?
                }
                _ => Value::Null,
            }
        } else {
            flow_or_scalar(&rest).map_err(|e| format!("line {no}: {e}"))?
        };
        if map.insert(key.clone(), value).is_some() {
            return Err(format!("line {no}: duplicate key '{key}'"));
        }
    }
    if let Some(l) = lines.get(*i) {
        if l.indent > indent {
            return Err(format!("line {}: unexpected indentation", l.no));
        }
    }
    Ok(Value::Object(map))
}

fn flow_or_scalar(text: &str) -> Result<Value, String> {
    if text.starts_with('[') || text.starts_with('{') {
        let chars: Vec<char> = text.chars().collect();
        let mut p = 0;
        let v = flow(&chars, &mut p)?;
        skip_ws(&chars, &mut p);
        if p != chars.len() {
            return Err(format!("text after a flow collection: '{}'", chars[p..].iter().collect::<String>()));
        }
        Ok(v)
    } else if text.starts_with(['&', '*', '!', '|', '>', '%', '@', '`']) {
        Err("YAML feature not supported here (anchor, alias, tag or block scalar)".into())
    } else {
        Ok(scalar(text))
    }
}

fn skip_ws(c: &[char], p: &mut usize) {
    while *p < c.len() && c[*p].is_whitespace() {
        *p += 1;
    }
}

/// A flow value starting at `c[*p]`.
fn flow(c: &[char], p: &mut usize) -> Result<Value, String> {
    skip_ws(c, p);
    match c.get(*p) {
        Some('[') => {
            *p += 1;
            let mut items = Vec::new();
            loop {
                skip_ws(c, p);
                match c.get(*p) {
                    Some(']') => {
                        *p += 1;
                        return Ok(Value::Array(items));
                    }
                    None => return Err("unclosed [".into()),
                    _ => {}
                }
                items.push(flow(c, p)?);
                skip_ws(c, p);
                match c.get(*p) {
                    Some(',') => *p += 1,
                    Some(']') => {}
                    _ => return Err("expected ',' or ']'".into()),
                }
            }
        }
        Some('{') => {
            *p += 1;
            let mut map = Map::new();
            loop {
                skip_ws(c, p);
                match c.get(*p) {
                    Some('}') => {
                        *p += 1;
                        return Ok(Value::Object(map));
                    }
                    None => return Err("unclosed {".into()),
                    _ => {}
                }
                let key = match flow_scalar(c, p, true)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                skip_ws(c, p);
                if c.get(*p) != Some(&':') {
                    return Err(format!("expected ':' after '{key}'"));
                }
                *p += 1;
                let v = flow(c, p)?;
                map.insert(key, v);
                skip_ws(c, p);
                match c.get(*p) {
                    Some(',') => *p += 1,
                    Some('}') => {}
                    _ => return Err("expected ',' or '}'".into()),
                }
            }
        }
        _ => flow_scalar(c, p, false),
    }
}

/// A scalar inside a flow collection: quoted, or plain up to `,` `]` `}` (and `:` for keys).
fn flow_scalar(c: &[char], p: &mut usize, key: bool) -> Result<Value, String> {
    skip_ws(c, p);
    if let Some(&q) = c.get(*p).filter(|&&q| q == '"' || q == '\'') {
        let start = *p;
        *p += 1;
        while *p < c.len() {
            if c[*p] == '\\' && q == '"' {
                *p += 2;
                continue;
            }
            if c[*p] == q {
                if q == '\'' && c.get(*p + 1) == Some(&'\'') {
                    *p += 2;
                    continue;
                }
                *p += 1;
                return Ok(scalar(&c[start..*p].iter().collect::<String>()));
            }
            *p += 1;
        }
        return Err("unclosed quote".into());
    }
    let start = *p;
    while *p < c.len() && !matches!(c[*p], ',' | ']' | '}') && !(key && c[*p] == ':') {
        *p += 1;
    }
    Ok(scalar(c[start..*p].iter().collect::<String>().trim()))
}

/// A scalar typed as OmegaConf / PyYAML read config values.
fn scalar(s: &str) -> Value {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        let inner = &s[1..s.len() - 1];
        let mut out = String::new();
        let mut it = inner.chars();
        while let Some(ch) = it.next() {
            if ch == '\\' {
                match it.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(o) => out.push(o),
                    None => {}
                }
            } else {
                out.push(ch);
            }
        }
        return Value::String(out);
    }
    if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
        return Value::String(s[1..s.len() - 1].replace("''", "'"));
    }
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "on" | "On" => return Value::Bool(true),
        "false" | "False" | "FALSE" | "no" | "No" | "off" | "Off" => return Value::Bool(false),
        _ => {}
    }
    let numeric = s.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E' | '_'))
        && s.chars().any(|c| c.is_ascii_digit());
    if numeric {
        let t = s.replace('_', "");
        if let Ok(i) = t.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Some(n) = t.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_sat_config_subset() {
        let text = r#"
# comment
model:
  scale_factor: 0.7 # trailing comment
  flag: True
  trainable_modules: [
    "fuser",
    "traj_extractor",
  ]
  network_config:
    target: dit_video_concat.DiffusionTransformer
    params:
      eps: 1e-5
      neg: -3
      ch_mult: [1,  2, 2, 4 ]
      empty:
      modules:
        pos: {a: 1, b: 'x y'}
  emb_models:
    - is_trainable: false
      input_key: txt
      params:
        model_dir: "ckpts/t5-v1_1-xxl" # the t5
        hash: "a#b"
    - plain
  list_at_key_indent:
  - 1
  - - 2
    - 3
"#;
        let v = parse(text).unwrap();
        assert_eq!(
            v,
            json!({"model": {
                "scale_factor": 0.7, "flag": true, "trainable_modules": ["fuser", "traj_extractor"],
                "network_config": {"target": "dit_video_concat.DiffusionTransformer", "params": {
                    "eps": 1e-5, "neg": -3, "ch_mult": [1, 2, 2, 4], "empty": null,
                    "modules": {"pos": {"a": 1, "b": "x y"}}}},
                "emb_models": [
                    {"is_trainable": false, "input_key": "txt", "params": {"model_dir": "ckpts/t5-v1_1-xxl", "hash": "a#b"}},
                    "plain"],
                "list_at_key_indent": [1, [2, 3]]
            }})
        );
    }

    #[test]
    fn refuses_what_it_does_not_read() {
        for bad in ["a: [1, 2", "a:\n  b: 1\n c: 2", "a: 1\na: 2", "a: &x 1\nb: *x", "a: |\n  text", "a:\n\t b: 1"] {
            assert!(parse(bad).is_err(), "{bad:?} -> {:?}", parse(bad));
        }
    }
}
