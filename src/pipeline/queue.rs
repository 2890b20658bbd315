//! The render queue: variants of one set of settings, run one after another.
//!
//! A [`VariantSpec`] (prompts one per line, a seed sweep such as `42..46` or `1, 7, 9`, a trajectory
//! strength sweep such as `0.5, 1, 1.5`) expands into every combination of the three; a
//! [`RenderQueue`] keeps each variant's status while the worker runs them in order. Pure data: the
//! studio sends the runs and reports how they ended.

use serde::{Deserialize, Serialize};

use super::request::Settings;

/// More variants than this in one click is almost surely a typo in a range (`1..1000`).
pub const MAX_VARIANTS: usize = 64;

/// The trajectory strengths the Generate panel allows.
const STRENGTHS: std::ops::RangeInclusive<f32> = 0.0..=3.0;

/// What varies across a batch. An empty field keeps the base settings' value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VariantSpec {
    /// One prompt per line; blank lines are skipped.
    pub prompts: String,
    /// `42..46` (inclusive), `42..=46`, or a list `1, 7, 9`; ranges and numbers can be mixed.
    pub seeds: String,
    /// A list such as `0.5, 1, 1.5`.
    pub strengths: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VariantError {
    #[error("seeds {text:?}: {reason}; write a range such as 42..46 or a list such as 1, 7, 9")]
    Seeds { text: String, reason: String },
    #[error("trajectory strengths {text:?}: {reason}; write a list such as 0.5, 1, 1.5 (each from 0 to 3)")]
    Strengths { text: String, reason: String },
    #[error("{count} variants is more than {MAX_VARIANTS} in one batch; narrow a sweep")]
    TooMany { count: usize },
}

/// Every combination of the spec's prompts, seeds and strengths applied to `base`, prompt-major.
pub fn expand(base: &Settings, spec: &VariantSpec) -> Result<Vec<Settings>, VariantError> {
    let mut prompts: Vec<String> =
        spec.prompts.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if prompts.is_empty() {
        prompts.push(base.prompt.clone());
    }
    let mut seeds = parse_seeds(&spec.seeds)?;
    if seeds.is_empty() {
        seeds.push(base.seed);
    }
    let mut strengths = parse_strengths(&spec.strengths)?;
    if strengths.is_empty() {
        strengths.push(base.motion.strength);
    }
    let count = prompts.len() * seeds.len() * strengths.len();
    if count > MAX_VARIANTS {
        return Err(VariantError::TooMany { count });
    }
    let mut out = Vec::with_capacity(count);
    for prompt in &prompts {
        for &seed in &seeds {
            for &strength in &strengths {
                let mut s = base.clone();
                s.prompt = prompt.clone();
                s.seed = seed;
                s.motion.strength = strength;
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn items(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty())
}

/// Seeds in the order written; a range longer than a batch may be is refused before it is listed.
fn parse_seeds(text: &str) -> Result<Vec<u64>, VariantError> {
    let bad = |reason: String| VariantError::Seeds { text: text.trim().to_string(), reason };
    let number = |t: &str| t.trim().parse::<u64>().map_err(|_| bad(format!("{t:?} is not a whole number")));
    let mut seeds = Vec::new();
    for item in items(text) {
        match item.split_once("..") {
            Some((from, to)) => {
                let (from, to) = (number(from)?, number(to.strip_prefix('=').unwrap_or(to))?);
                if to < from {
                    return Err(bad(format!("{item} runs backwards")));
                }
                let len = (to - from).saturating_add(1);
                if len > MAX_VARIANTS as u64 {
                    return Err(VariantError::TooMany { count: usize::try_from(len).unwrap_or(usize::MAX) });
                }
                seeds.extend(from..=to);
            }
            None => seeds.push(number(item)?),
        }
        if seeds.len() > MAX_VARIANTS {
            return Err(VariantError::TooMany { count: seeds.len() });
        }
    }
    Ok(seeds)
}

fn parse_strengths(text: &str) -> Result<Vec<f32>, VariantError> {
    let bad = |reason: String| VariantError::Strengths { text: text.trim().to_string(), reason };
    items(text)
        .map(|t| match t.parse::<f32>() {
            Ok(v) if STRENGTHS.contains(&v) => Ok(v),
            Ok(v) => Err(bad(format!("{v} is outside 0..3"))),
            Err(_) => Err(bad(format!("{t:?} is not a number"))),
        })
        .collect()
}

/// Where a queued variant is.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemStatus {
    Pending,
    Running,
    /// Finished; the take's id when it was kept.
    Done(Option<String>),
    Failed(String),
    Cancelled,
}

/// One variant waiting, running or run.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    pub settings: Settings,
    /// The batch (one click of Queue) it belongs to; its takes carry the same name.
    pub batch: String,
    pub status: ItemStatus,
}

impl QueueItem {
    /// "seed 43 · strength 1.5 · a red kite over ..." (prompt cut to `prompt_chars`).
    pub fn label(&self, prompt_chars: usize) -> String {
        let s = &self.settings;
        let prompt = s.prompt.trim();
        let prompt = if prompt.chars().count() > prompt_chars {
            format!("{}…", prompt.chars().take(prompt_chars).collect::<String>())
        } else {
            prompt.to_string()
        };
        format!("seed {} · strength {} · {prompt}", s.seed, s.motion.strength)
    }
}

/// The variants in the order they run.
#[derive(Debug, Clone, Default)]
pub struct RenderQueue {
    items: Vec<QueueItem>,
}

impl RenderQueue {
    pub fn items(&self) -> &[QueueItem] {
        &self.items
    }

    /// Adds one batch at the end.
    pub fn push_batch(&mut self, batch: &str, variants: Vec<Settings>) {
        self.items.extend(variants.into_iter().map(|settings| QueueItem {
            settings,
            batch: batch.to_string(),
            status: ItemStatus::Pending,
        }));
    }

    pub fn running(&self) -> Option<usize> {
        self.items.iter().position(|i| i.status == ItemStatus::Running)
    }

    pub fn pending(&self) -> usize {
        self.items.iter().filter(|i| i.status == ItemStatus::Pending).count()
    }

    /// Marks the next pending item running and returns it; `None` while one runs or none waits.
    pub fn start_next(&mut self) -> Option<&QueueItem> {
        if self.running().is_some() {
            return None;
        }
        let next = self.items.iter_mut().find(|i| i.status == ItemStatus::Pending)?;
        next.status = ItemStatus::Running;
        Some(next)
    }

    /// Records how the running item ended (nothing happens when none runs).
    pub fn finish_running(&mut self, status: ItemStatus) {
        if let Some(i) = self.running() {
            self.items[i].status = status;
        }
    }

    /// Removes item `index` if it is still pending.
    pub fn remove_pending(&mut self, index: usize) -> bool {
        let removable = self.items.get(index).is_some_and(|i| i.status == ItemStatus::Pending);
        if removable {
            self.items.remove(index);
        }
        removable
    }

    /// Every pending item becomes cancelled; returns whether one is running (the caller stops it).
    pub fn cancel_all(&mut self) -> bool {
        for item in &mut self.items {
            if item.status == ItemStatus::Pending {
                item.status = ItemStatus::Cancelled;
            }
        }
        self.running().is_some()
    }

    /// Forgets every item that is no longer pending or running.
    pub fn clear_finished(&mut self) {
        self.items.retain(|i| matches!(i.status, ItemStatus::Pending | ItemStatus::Running));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prompts: &str, seeds: &str, strengths: &str) -> VariantSpec {
        VariantSpec { prompts: prompts.into(), seeds: seeds.into(), strengths: strengths.into() }
    }

    fn base() -> Settings {
        Settings { prompt: "a kite".into(), seed: 7, ..Settings::default() }
    }

    #[test]
    fn expands_every_combination_prompt_major() {
        let v = expand(&base(), &spec("a red kite\n\n  a blue kite  \n", "42..44", "0.5, 1.5")).unwrap();
        assert_eq!(v.len(), 2 * 3 * 2);
        let keys: Vec<(&str, u64, f32)> = v.iter().map(|s| (s.prompt.as_str(), s.seed, s.motion.strength)).collect();
        assert_eq!(keys[0], ("a red kite", 42, 0.5));
        assert_eq!(keys[1], ("a red kite", 42, 1.5));
        assert_eq!(keys[2], ("a red kite", 43, 0.5));
        assert_eq!(keys[11], ("a blue kite", 44, 1.5));
        assert!(v.iter().all(|s| s.steps == base().steps && s.guidance_scale == base().guidance_scale));
    }

    #[test]
    fn empty_fields_keep_the_base_settings() {
        let v = expand(&base(), &VariantSpec::default()).unwrap();
        assert_eq!(v, vec![base()]);
        let v = expand(&base(), &spec("", "1, 9 3", "")).unwrap();
        assert_eq!(v.iter().map(|s| s.seed).collect::<Vec<_>>(), [1, 9, 3]);
        assert!(v.iter().all(|s| s.prompt == "a kite"));
        let v = expand(&base(), &spec("", "5..=6,10", "")).unwrap();
        assert_eq!(v.iter().map(|s| s.seed).collect::<Vec<_>>(), [5, 6, 10]);
    }

    #[test]
    fn bad_sweeps_say_what_to_write() {
        let e = expand(&base(), &spec("", "42..x", "")).unwrap_err().to_string();
        assert!(e.contains("\"x\" is not a whole number") && e.contains("42..46"), "{e}");
        let e = expand(&base(), &spec("", "9..3", "")).unwrap_err().to_string();
        assert!(e.contains("runs backwards"), "{e}");
        let e = expand(&base(), &spec("", "", "1, 4")).unwrap_err().to_string();
        assert!(e.contains("4 is outside 0..3"), "{e}");
        let e = expand(&base(), &spec("", "", "fast")).unwrap_err().to_string();
        assert!(e.contains("\"fast\" is not a number"), "{e}");
        // A huge range is refused without listing it.
        let e = expand(&base(), &spec("", "0..18446744073709551615", "")).unwrap_err();
        assert!(matches!(e, VariantError::TooMany { .. }), "{e}");
        let e = expand(&base(), &spec("a\nb\nc", "1..10", "0,1,2")).unwrap_err();
        assert_eq!(e, VariantError::TooMany { count: 90 });
    }

    #[test]
    fn runs_in_order_one_at_a_time_with_remove_and_cancel() {
        let mut q = RenderQueue::default();
        q.push_batch("b1", expand(&base(), &spec("", "1..4", "")).unwrap());
        assert_eq!(q.start_next().map(|i| i.settings.seed), Some(1));
        assert!(q.start_next().is_none(), "one at a time");
        assert!(!q.remove_pending(0), "the running item stays");
        assert!(q.remove_pending(2), "seed 3 removed");
        q.finish_running(ItemStatus::Done(Some("take-1".into())));
        assert_eq!(q.start_next().map(|i| i.settings.seed), Some(2));
        assert!(q.cancel_all(), "one is still running");
        q.finish_running(ItemStatus::Cancelled);
        let statuses: Vec<_> = q.items().iter().map(|i| (i.settings.seed, i.status.clone())).collect();
        assert_eq!(
            statuses,
            [(1, ItemStatus::Done(Some("take-1".into()))), (2, ItemStatus::Cancelled), (4, ItemStatus::Cancelled)]
        );
        assert!(q.start_next().is_none());
        q.clear_finished();
        assert!(q.items().is_empty());
        assert_eq!(q.items().first().map(|i| i.label(10)), None);
    }

    #[test]
    fn labels_name_what_varies() {
        let item = QueueItem {
            settings: Settings { prompt: "a very long prompt indeed".into(), seed: 3, ..Settings::default() },
            batch: "b".into(),
            status: ItemStatus::Pending,
        };
        assert_eq!(item.label(6), "seed 3 · strength 1 · a very…");
    }
}
