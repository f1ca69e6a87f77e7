//! The anchor (`anchor_weight`): fine-tuning on a few thousand (text, label) pairs can walk the
//! encoder away from what its pre-training taught it about texts and labels it will never see
//! here. The anchor adds to the loss, per batch, the cross-entropy of the trained model's in-batch
//! scores against a target's own score distribution (cosine similarities times [`Anchor::SCALE`]),
//! rows (text -> labels) and columns (label -> texts) alike: the data's lesson is learnt as a
//! change from the target's ranking, not instead of it ("learning without forgetting").
//! The target is a frozen copy of the base encoder (one no-grad forward per step), or, with
//! `anchor_teacher`, a stronger encoder's embeddings of every training text and label, computed
//! once beforehand (`scripts/embed_teacher.py`): distillation from the teacher.
//! Any architecture: it only needs the batch's score matrix.

use std::collections::HashMap;
use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

use crate::encoders::{self, Encoder, EncoderConfig};
use crate::error::{Result, TrainerError};
use crate::models::{l2_normalize, sentence_pool, BatchTensors};
use zsc_core::Pooling;

/// What the anchor pulls the in-batch scores towards.
#[derive(Debug)]
enum AnchorTarget {
    /// The frozen base encoder.
    Base { _vs: nn::VarStore, encoder: Box<Encoder>, pooling: Pooling },
    /// A teacher's precomputed embeddings.
    Teacher(TeacherTable),
}

/// The anchor's target and the weight of its term in the loss.
#[derive(Debug)]
pub struct Anchor {
    target: AnchorTarget,
    pub weight: f64,
}

impl Anchor {
    /// Cosine scores are multiplied by this before the softmax (temperature 0.05, the scale
    /// sentence-transformers trains this family of models with).
    pub const SCALE: f64 = 20.0;
    /// Finite stand-in for -inf where a batch entry is another positive (0 * -inf would be NaN).
    const MASKED: f64 = -1e4;

    /// The base model of `base_dir` (Hugging Face folder), frozen, on `device`, pooled as the
    /// trained model pools.
    pub fn base(base_dir: &Path, pooling: Pooling, device: Device, weight: f64) -> Result<Self> {
        let cfg = EncoderConfig::load(&base_dir.join("config.json"))?;
        let mut vs = nn::VarStore::new(device);
        let encoder = Encoder::new(vs.root(), &cfg);
        encoders::load_hf_weights(&vs.variables(), &base_dir.join("model.safetensors"), &cfg)?;
        vs.freeze();
        Ok(Anchor { target: AnchorTarget::Base { _vs: vs, encoder: Box::new(encoder), pooling }, weight })
    }

    /// The teacher embeddings of `stem` (.safetensors + .json), on `device`.
    pub fn teacher(stem: &Path, device: Device, weight: f64) -> Result<Self> {
        Ok(Anchor { target: AnchorTarget::Teacher(TeacherTable::load(stem, device)?), weight })
    }

    /// The teacher's table, if the target is one.
    pub fn teacher_table(&self) -> Option<&TeacherTable> {
        match &self.target {
            AnchorTarget::Teacher(t) => Some(t),
            AnchorTarget::Base { .. } => None,
        }
    }

    /// The target's in-batch logits `[texts, labels]` (no gradient, no dropout): the base scores
    /// the batch's tokens; a teacher's come precomputed (`teacher_logits`, from
    /// [`TeacherTable::logits`]).
    pub fn scores(&self, texts: &BatchTensors, labels: &BatchTensors, teacher_logits: Option<&Tensor>) -> Result<Tensor> {
        match (&self.target, teacher_logits) {
            (AnchorTarget::Base { encoder, pooling, .. }, _) => Ok(tch::no_grad(|| {
                let pooled = |t: &BatchTensors| {
                    let h = encoder.forward(&t.input_ids, &t.attention_mask, &t.token_type_ids, false);
                    l2_normalize(&sentence_pool(&h, &t.attention_mask, *pooling).to_kind(Kind::Float))
                };
                pooled(texts).matmul(&pooled(labels).tr()) * Self::SCALE
            })),
            (AnchorTarget::Teacher(_), Some(t)) => Ok(t.shallow_clone()),
            (AnchorTarget::Teacher(_), None) => {
                Err(TrainerError::Invalid("teacher anchor without the batch's teacher logits".into()))
            }
        }
    }

    /// `weight` × the anchor term of the trained model's `logits` against the target's
    /// `target_logits` (both `[B,B+K]`), entries in `masked` (other positives, fillers) left out.
    pub fn loss(&self, logits: &Tensor, target_logits: &Tensor, masked: &Tensor) -> Tensor {
        anchor_term(logits, target_logits, masked) * self.weight
    }
}

/// A teacher's L2-normalised embeddings of texts and labels, looked up by their exact strings.
#[derive(Debug)]
pub struct TeacherTable {
    texts: Tensor,
    labels: Tensor,
    text_rows: HashMap<String, i64>,
    label_rows: HashMap<String, i64>,
}

#[derive(serde::Deserialize)]
struct TeacherStrings {
    texts: Vec<String>,
    labels: Vec<String>,
}

impl TeacherTable {
    /// `STEM.safetensors` (`text_embeddings` [N,D], `label_embeddings` [M,D]) and `STEM.json`
    /// (`{"texts": [N], "labels": [M]}`, the rows' strings).
    pub fn load(stem: &Path, device: Device) -> Result<Self> {
        let with = |ext: &str| stem.with_file_name(format!("{}.{ext}", stem.file_name().unwrap_or_default().to_string_lossy()));
        let (weights, names) = (with("safetensors"), with("json"));
        if !names.exists() || !weights.exists() {
            return Err(TrainerError::model(
                stem,
                "anchor_teacher: no STEM.json + STEM.safetensors here; build them with `make teacher` (scripts/embed_teacher.py)",
            ));
        }
        let raw = std::fs::read(&names).map_err(|e| TrainerError::io(&names, e))?;
        let strings: TeacherStrings =
            serde_json::from_slice(&raw).map_err(|e| TrainerError::model(&names, format!("not a teacher string table: {e}")))?;
        let mut tensors = encoders::read_safetensors(&weights)?;
        let mut take = |name: &str, rows: usize| -> Result<Tensor> {
            let t = tensors.remove(name).ok_or_else(|| TrainerError::model(&weights, format!("no tensor {name}")))?;
            if t.dim() != 2 || t.size()[0] != rows as i64 {
                return Err(TrainerError::model(
                    &weights,
                    format!("{name} is {:?}, expected {rows} rows (one per string of {})", t.size(), names.display()),
                ));
            }
            Ok(t.to_kind(Kind::Float).to_device(device))
        };
        let texts = take("text_embeddings", strings.texts.len())?;
        let labels = take("label_embeddings", strings.labels.len())?;
        if texts.size()[1] != labels.size()[1] {
            return Err(TrainerError::model(&weights, "text and label embeddings differ in width"));
        }
        let rows = |v: Vec<String>| v.into_iter().enumerate().map(|(i, s)| (s, i as i64)).collect();
        Ok(TeacherTable { texts, labels, text_rows: rows(strings.texts), label_rows: rows(strings.labels) })
    }

    /// An error naming how many of `texts` and `labels` the table lacks (and one of each).
    pub fn check_covers<'a>(&self, texts: impl Iterator<Item = &'a str>, labels: impl Iterator<Item = &'a str>) -> Result<()> {
        let missing = |items: Vec<&'a str>, rows: &HashMap<String, i64>| -> (usize, Option<&'a str>) {
            let lacking: Vec<&str> = items.into_iter().filter(|s| !rows.contains_key(*s)).collect();
            (lacking.len(), lacking.first().copied())
        };
        let (nt, t) = missing(texts.collect(), &self.text_rows);
        let (nl, l) = missing(labels.collect(), &self.label_rows);
        if nt + nl == 0 {
            return Ok(());
        }
        Err(TrainerError::Invalid(format!(
            "anchor_teacher lacks {nt} training text(s) (e.g. {t:?}) and {nl} label(s) (e.g. {l:?}): embed this data with scripts/embed_teacher.py"
        )))
    }

    /// The teacher's logits `[texts, labels]` (cosine × [`Anchor::SCALE`]) on `device`.
    pub fn logits(&self, texts: &[&str], labels: &[&str]) -> Result<Tensor> {
        let rows = |items: &[&str], table: &HashMap<String, i64>| -> Result<Tensor> {
            let idx: Result<Vec<i64>> = items
                .iter()
                .map(|s| {
                    table
                        .get(*s)
                        .copied()
                        .ok_or_else(|| TrainerError::Invalid(format!("anchor_teacher has no embedding of {s:?}")))
                })
                .collect();
            Ok(Tensor::from_slice(&idx?).to_device(self.texts.device()))
        };
        let t = self.texts.index_select(0, &rows(texts, &self.text_rows)?);
        let l = self.labels.index_select(0, &rows(labels, &self.label_rows)?);
        Ok(t.matmul(&l.tr()) * Anchor::SCALE)
    }
}

/// Mean over rows and columns of the cross-entropy of softmax(`logits`) against
/// softmax(`base_logits`), `masked` entries excluded; rows over all B+K labels, columns over the
/// B pairs' labels (as in the training loss). Equals the KL divergence plus the base's (constant)
/// entropy, so its gradient is the KL's.
pub fn anchor_term(logits: &Tensor, base_logits: &Tensor, masked: &Tensor) -> Tensor {
    let b = logits.size()[0];
    let logits = logits.to_kind(Kind::Float).masked_fill(masked, Anchor::MASKED);
    let base = base_logits.to_kind(Kind::Float).masked_fill(masked, Anchor::MASKED);
    let cross_entropy = |logits: &Tensor, base: &Tensor, dim: i64| -> Tensor {
        let target = base.softmax(dim, Kind::Float);
        -(target * logits.log_softmax(dim, Kind::Float)).sum_dim_intlist(dim, false, Kind::Float).mean(Kind::Float)
    };
    let rows = cross_entropy(&logits, &base, 1);
    let cols = cross_entropy(&logits.narrow(1, 0, b), &base.narrow(1, 0, b), 0);
    (rows + cols) * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entropy_of(base: &Tensor, masked: &Tensor) -> f64 {
        anchor_term(base, base, masked).double_value(&[])
    }

    #[test]
    fn anchor_term_is_smallest_where_the_model_agrees_with_the_base() {
        let base = Tensor::from_slice(&[5.0f32, 1.0, 0.0, 2.0, 4.0, 1.0, 0.0, 1.0, 3.0]).view([3, 3]);
        let none = Tensor::zeros([3, 3], (Kind::Bool, Device::Cpu));
        let at_base = entropy_of(&base, &none);
        // the minimum over logits is the base itself (cross-entropy >= entropy, Gibbs)
        for other in [&base * 2.0, base.tr().contiguous(), Tensor::zeros([3, 3], (Kind::Float, Device::Cpu)), &base + 1.0] {
            let v = anchor_term(&other, &base, &none).double_value(&[]);
            assert!(v >= at_base - 1e-6, "{v} < {at_base}");
        }
        // a constant shift changes nothing (softmax), a sharper copy does
        assert!((anchor_term(&(&base + 1.0), &base, &none).double_value(&[]) - at_base).abs() < 1e-5);
        assert!(anchor_term(&(&base * 2.0), &base, &none).double_value(&[]) > at_base + 1e-3);
    }

    #[test]
    fn masked_entries_are_left_out_and_stay_finite() {
        let base = Tensor::from_slice(&[5.0f32, 1.0, 0.0, 4.0]).view([2, 2]);
        let mask = Tensor::from_slice(&[false, true, false, false]).view([2, 2]);
        // whatever the model says at the masked entry, the term is the same and finite
        let a = anchor_term(&Tensor::from_slice(&[5.0f32, 100.0, 0.0, 4.0]).view([2, 2]), &base, &mask).double_value(&[]);
        let b = anchor_term(&Tensor::from_slice(&[5.0f32, -100.0, 0.0, 4.0]).view([2, 2]), &base, &mask).double_value(&[]);
        assert!(a.is_finite() && (a - b).abs() < 1e-6, "{a} vs {b}");
    }

    #[test]
    fn gradient_pulls_towards_the_base_ranking() {
        let base = Tensor::from_slice(&[3.0f32, 0.0, 0.0, 3.0]).view([2, 2]);
        let none = Tensor::zeros([2, 2], (Kind::Bool, Device::Cpu));
        let logits = Tensor::from_slice(&[0.0f32, 3.0, 3.0, 0.0]).view([2, 2]).set_requires_grad(true);
        anchor_term(&logits, &base, &none).backward();
        let g = logits.grad();
        // descent raises the diagonal (where the base scores high) and lowers the rest
        assert!(g.double_value(&[0, 0]) < 0.0 && g.double_value(&[0, 1]) > 0.0);
    }

    /// A table of 3 texts and 2 labels in 2 dimensions, written as `embed_teacher.py` writes it.
    fn write_table(dir: &Path) -> std::path::PathBuf {
        let texts = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, 0.6, 0.8]).view([3, 2]).to_kind(Kind::Half);
        let labels = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0]).view([2, 2]).to_kind(Kind::Half);
        Tensor::write_safetensors(&[("text_embeddings", &texts), ("label_embeddings", &labels)], dir.join("t.safetensors"))
            .unwrap();
        std::fs::write(dir.join("t.json"), r#"{"texts": ["a", "b", "c"], "labels": ["x", "y"]}"#).unwrap();
        dir.join("t")
    }

    #[test]
    fn teacher_logits_are_scaled_cosines_of_the_named_rows() {
        let dir = tempfile::tempdir().unwrap();
        let table = TeacherTable::load(&write_table(dir.path()), Device::Cpu).unwrap();
        let got = table.logits(&["c", "a"], &["y", "x", "y"]).unwrap();
        let want = Tensor::from_slice(&[0.8f32, 0.6, 0.8, 0.0, 1.0, 0.0]).view([2, 3]) * Anchor::SCALE;
        assert!(got.allclose(&want, 1e-3, 1e-2, false), "{got:?}");
        assert!(table.logits(&["nope"], &["x"]).is_err());
    }

    #[test]
    fn a_teacher_that_lacks_training_strings_is_an_error_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let table = TeacherTable::load(&write_table(dir.path()), Device::Cpu).unwrap();
        assert!(table.check_covers(["a", "c"].into_iter(), ["x"].into_iter()).is_ok());
        let err = table.check_covers(["a", "d"].into_iter(), ["x", "z"].into_iter()).unwrap_err().to_string();
        assert!(err.contains("1 training text") && err.contains("\"d\"") && err.contains("\"z\""), "{err}");
    }

    #[test]
    fn a_missing_teacher_table_says_how_to_build_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = TeacherTable::load(&dir.path().join("none"), Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("make teacher"), "{err}");
    }

    #[test]
    fn a_table_whose_rows_do_not_match_its_strings_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let stem = write_table(dir.path());
        std::fs::write(dir.path().join("t.json"), r#"{"texts": ["a", "b"], "labels": ["x", "y"]}"#).unwrap();
        let err = TeacherTable::load(&stem, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("expected 2 rows"), "{err}");
    }

    #[test]
    fn the_teacher_anchor_uses_the_given_logits() {
        let dir = tempfile::tempdir().unwrap();
        let anchor = Anchor::teacher(&write_table(dir.path()), Device::Cpu, 1.0).unwrap();
        let t = Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
        let dummy =
            BatchTensors { input_ids: t.shallow_clone(), attention_mask: t.shallow_clone(), token_type_ids: t.shallow_clone() };
        assert!(anchor.scores(&dummy, &dummy, Some(&t)).unwrap().equal(&t));
        assert!(anchor.scores(&dummy, &dummy, None).is_err());
    }
}
