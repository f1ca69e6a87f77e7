//! Data files: JSON lists of `{"text": ..., "labels": [...]}`, validated on load; the seeded
//! sample-level train/val/test split; (text, label) pair expansion for training.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::SplitRatios;
use crate::error::{CoreError, Result};
use crate::rng::SplitMix64;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub text: String,
    pub labels: Vec<String>,
    /// Where the sample comes from (e.g. `clinc150`, `wordnet_domains`): training batches are
    /// drawn from one source at a time. Optional, so files without it still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
    All,
}

impl Split {
    pub fn as_str(&self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::All => "all",
        }
    }
}

impl std::str::FromStr for Split {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "train" => Ok(Split::Train),
            "val" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            "all" => Ok(Split::All),
            other => Err(CoreError::Invalid(format!("unknown split `{other}`, expected train, val, test or all"))),
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parse and validate a data file's text. Exact duplicate samples are dropped (and counted in the
/// returned number); labels repeated within one sample are merged.
pub fn parse_samples(text: &str, path: &Path) -> Result<(Vec<Sample>, usize)> {
    let data_err = |message: String| CoreError::Data { path: path.to_path_buf(), message };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|source| CoreError::Json { path: path.to_path_buf(), source })?;
    let items =
        value.as_array().ok_or_else(|| data_err("expected a JSON list of {\"text\": ..., \"labels\": [...]} objects".into()))?;
    if items.is_empty() {
        return Err(data_err("the data file holds no samples".into()));
    }
    let mut seen = HashSet::new();
    let mut samples = Vec::with_capacity(items.len());
    let mut duplicates = 0;
    for (i, item) in items.iter().enumerate() {
        let obj = item.as_object().ok_or_else(|| data_err(format!("sample {i}: expected an object")))?;
        let text = match obj.get("text") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(_) => return Err(data_err(format!("sample {i}: `text` must be a string"))),
            None => return Err(data_err(format!("sample {i}: missing `text`"))),
        };
        if text.trim().is_empty() {
            return Err(data_err(format!("sample {i}: `text` is empty")));
        }
        let labels = match obj.get("labels") {
            Some(serde_json::Value::Array(ls)) => ls,
            Some(_) => return Err(data_err(format!("sample {i}: `labels` must be a list of strings"))),
            None => return Err(data_err(format!("sample {i}: missing `labels`"))),
        };
        if labels.is_empty() {
            return Err(data_err(format!("sample {i}: `labels` is empty (every sample needs at least one label)")));
        }
        let mut out_labels: Vec<String> = Vec::with_capacity(labels.len());
        for l in labels {
            let l = l.as_str().ok_or_else(|| data_err(format!("sample {i}: every label must be a string, got {l}")))?;
            if l.trim().is_empty() {
                return Err(data_err(format!("sample {i}: empty label")));
            }
            if !out_labels.iter().any(|x| x == l) {
                out_labels.push(l.to_string());
            }
        }
        let source = match obj.get("source") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(_) => return Err(data_err(format!("sample {i}: `source` must be a non-empty string"))),
        };
        if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "text" | "labels" | "source")) {
            return Err(data_err(format!("sample {i}: unknown field `{key}` (expected text, labels and optionally source)")));
        }
        let sample = Sample { text, labels: out_labels, source };
        if seen.insert(sample.clone()) {
            samples.push(sample);
        } else {
            duplicates += 1;
        }
    }
    Ok((samples, duplicates))
}

/// Load a data file; duplicates are reported with a warning and dropped.
pub fn load_samples(path: &Path) -> Result<Vec<Sample>> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    let (samples, duplicates) = parse_samples(&text, path)?;
    if duplicates > 0 {
        tracing::warn!("{}: dropped {duplicates} duplicate sample(s)", path.display());
    }
    Ok(samples)
}

/// The seeded sample-level split: shuffle sample indices with `seed`, then cut train, val, test
/// in that order. The same (data, ratios, seed) always gives the same split, in every crate.
pub fn split_indices(n: usize, ratios: SplitRatios, seed: u64) -> [Vec<usize>; 3] {
    let mut idx: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed).shuffle(&mut idx);
    let n_train = ((n as f64) * ratios.train).round() as usize;
    let n_val = (((n as f64) * ratios.val).round() as usize).min(n - n_train.min(n));
    let n_train = n_train.min(n);
    let test = idx.split_off(n_train + n_val);
    let val = idx.split_off(n_train);
    [idx, val, test]
}

pub fn select_split(samples: &[Sample], ratios: SplitRatios, seed: u64, split: Split) -> Vec<Sample> {
    if split == Split::All {
        return samples.to_vec();
    }
    let [train, val, test] = split_indices(samples.len(), ratios, seed);
    let idx = match split {
        Split::Train => train,
        Split::Val => val,
        Split::Test => test,
        Split::All => unreachable!(),
    };
    idx.into_iter().map(|i| samples[i].clone()).collect()
}

/// For each sample, the indices of its gold labels in `labels` (gold labels not in `labels` are
/// left out: a text with none of them among the candidates gets an empty list).
pub fn gold_indices(samples: &[Sample], labels: &[String]) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
    samples.iter().map(|s| s.labels.iter().filter_map(|l| index.get(l.as_str()).copied()).collect()).collect()
}

/// Unique labels in first-seen order.
pub fn unique_labels(samples: &[Sample]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for s in samples {
        for l in &s.labels {
            if seen.insert(l.as_str()) {
                out.push(l.clone());
            }
        }
    }
    out
}

/// Sorted unique labels (a stable order for reports).
pub fn sorted_labels(samples: &[Sample]) -> Vec<String> {
    samples.iter().flat_map(|s| s.labels.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect()
}

/// One training item: a text and one of its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub text: String,
    pub label: String,
}

/// Each sample with n labels gives n (text, label) pairs.
pub fn expand_pairs(samples: &[Sample]) -> Vec<Pair> {
    samples.iter().flat_map(|s| s.labels.iter().map(move |l| Pair { text: s.text.clone(), label: l.clone() })).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<(Vec<Sample>, usize)> {
        parse_samples(s, Path::new("d.json"))
    }

    #[test]
    fn parses_and_dedupes() {
        let (s, d) = p(r#"[{"text":"a","labels":["x","x","y"]},{"text":"a","labels":["x","y"]}]"#).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(d, 1);
        assert_eq!(s[0].labels, vec!["x", "y"]);
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(p("not json").unwrap_err().to_string().contains("invalid JSON"));
        assert!(p(r#"{"text":"a"}"#).unwrap_err().to_string().contains("JSON list"));
        assert!(p(r#"[{"labels":["x"]}]"#).unwrap_err().to_string().contains("missing `text`"));
        assert!(p(r#"[{"text":"a"}]"#).unwrap_err().to_string().contains("missing `labels`"));
        assert!(p(r#"[{"text":"a","labels":[]}]"#).unwrap_err().to_string().contains("`labels` is empty"));
        assert!(p(r#"[{"text":" ","labels":["x"]}]"#).unwrap_err().to_string().contains("`text` is empty"));
        assert!(p(r#"[]"#).unwrap_err().to_string().contains("no samples"));
        assert!(p(r#"[{"text":"a","labels":[1]}]"#).unwrap_err().to_string().contains("must be a string"));
        assert!(p(r#"[{"text":"a","labels":["x"],"source":3}]"#).unwrap_err().to_string().contains("`source` must be"));
        assert!(p(r#"[{"text":"a","labels":["x"],"topic":"y"}]"#).unwrap_err().to_string().contains("unknown field `topic`"));
    }

    #[test]
    fn source_is_optional() {
        let (s, _) = p(r#"[{"text":"a","labels":["x"],"source":"trec"},{"text":"b","labels":["y"]}]"#).unwrap();
        assert_eq!(s[0].source.as_deref(), Some("trec"));
        assert_eq!(s[1].source, None);
    }

    #[test]
    fn split_is_a_seeded_partition() {
        let ratios = SplitRatios { train: 0.8, val: 0.1, test: 0.1 };
        let [a, b, c] = split_indices(1000, ratios, 3);
        assert_eq!((a.len(), b.len(), c.len()), (800, 100, 100));
        let mut all: Vec<usize> = a.iter().chain(&b).chain(&c).copied().collect();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(split_indices(1000, ratios, 3), [a, b, c]);
        let [a2, _, _] = split_indices(1000, ratios, 4);
        assert_ne!(a2, split_indices(1000, ratios, 3)[0]);
    }

    #[test]
    fn pairs() {
        let s = vec![Sample { text: "t".into(), labels: vec!["a".into(), "b".into()], source: None }];
        assert_eq!(expand_pairs(&s).len(), 2);
        assert_eq!(unique_labels(&s), vec!["a", "b"]);
    }
}
