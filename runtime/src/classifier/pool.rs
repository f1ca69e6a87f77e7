//! A pool of texts encoded once, and the label vectors adapted to it ([`crate::adapt`]): the
//! BiEncoder side of [`Classifier`]. PolyEncoder and ColBERT score a text against a label with
//! the text's tokens, so no single label vector can be refined from the pool; they get
//! [`Error::NeedsBiEncoder`].

use ndarray::{Array2, ArrayView2};

use super::{prototypes, Classifier, Head, LabelRepr, LabelSet};
use crate::adapt::{assign, assign_balanced, AdaptOptions, AdaptReport, LabelSums, PoolAdapter};
use crate::error::{Error, Result};
use crate::label::ViewAggregation;
use crate::probability::{Prediction, ProbabilityMode};
use crate::scoring::{l2_normalize_rows, Cosine};

/// Texts encoded once by [`Classifier::pool_vectors`]: the unit vectors the BiEncoder head compares
/// and their lengths (a dot-product head needs them). `N x (dim + 1) x 4` bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolVectors {
    units: Array2<f32>,
    norms: Vec<f32>,
}

impl PoolVectors {
    /// From unit rows `[N, H]` and each row's length before normalisation (for example the parts
    /// of several [`Classifier::pool_vectors`] calls, or rows that travelled between workers).
    pub fn new(units: Array2<f32>, norms: Vec<f32>) -> Result<Self> {
        if units.nrows() != norms.len() {
            return Err(Error::InvalidOption {
                option: "norms",
                message: format!("{} rows of unit vectors but {} lengths", units.nrows(), norms.len()),
            });
        }
        if units.iter().chain(&norms).any(|v| !v.is_finite()) {
            return Err(Error::InvalidOption { option: "units", message: "NaN or infinite values".into() });
        }
        Ok(PoolVectors { units, norms })
    }

    /// The unit vectors `[N, H]`.
    pub fn units(&self) -> ArrayView2<'_, f32> {
        self.units.view()
    }

    /// Each text's vector length before normalisation.
    pub fn norms(&self) -> &[f32] {
        &self.norms
    }

    /// Texts in the pool.
    pub fn len(&self) -> usize {
        self.norms.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }

    /// The parts one after another, as one pool.
    pub fn concat(parts: &[PoolVectors]) -> Result<Self> {
        let views: Vec<ArrayView2<'_, f32>> = parts.iter().map(PoolVectors::units).collect();
        let units = ndarray::concatenate(ndarray::Axis(0), &views)
            .map_err(|e| Error::InvalidOption { option: "parts", message: format!("pool parts of different widths: {e}") })?;
        PoolVectors::new(units, parts.iter().flat_map(|p| p.norms.iter().copied()).collect())
    }

    /// Bytes a pool of `texts` vectors of width `dim` holds.
    pub fn memory_bytes(texts: usize, dim: usize) -> u64 {
        texts as u64 * (dim as u64 + 1) * 4
    }
}

/// Labels adapted to a pool ([`Classifier::adapt_labels`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Adaptation {
    /// The refined labels, used like any [`LabelSet`] of this classifier.
    pub labels: LabelSet,
    /// What moved.
    pub report: AdaptReport,
}

impl Classifier {
    /// The BiEncoder head, or the error naming what needed it.
    fn bi_head(&self, what: &'static str) -> Result<Option<Cosine>> {
        match &self.head {
            Head::Bi(cosine) => Ok(*cosine),
            _ => Err(Error::NeedsBiEncoder { what, model_type: self.model_type().to_string() }),
        }
    }

    /// The pool's vectors must have this bundle's width.
    fn check_pool(&self, pool: &PoolVectors) -> Result<()> {
        let dim = self.manifest.output_dim;
        if pool.units.ncols() != dim {
            return Err(Error::InvalidOption {
                option: "pool",
                message: format!("vectors of width {}, this bundle's are {dim}", pool.units.ncols()),
            });
        }
        Ok(())
    }

    /// One vector per label (a label's views merged into their prototype), `[L, H]`.
    fn label_matrix(&self, labels: &LabelSet) -> Result<Array2<f32>> {
        if labels.owner != self.id {
            return Err(Error::ForeignLabelSet { label_set_source: labels.source.clone() });
        }
        match &labels.repr {
            LabelRepr::Vectors(v) if v.nrows() == labels.len() => Ok(v.clone()),
            LabelRepr::Vectors(v) => Ok(prototypes(v, &labels.view_spans)),
            LabelRepr::Tokens { .. } => Err(Error::NeedsBiEncoder { what: "pool adaptation", model_type: "colbert".into() }),
        }
    }

    /// Column weights of the assignment: label lengths for a dot-product head, 1 for cosine.
    fn label_weights(cosine: Option<Cosine>, matrix: &Array2<f32>) -> Vec<f32> {
        match cosine {
            Some(_) => vec![1.0; matrix.nrows()],
            None => matrix.outer_iter().map(|r| r.dot(&r).sqrt()).collect(),
        }
    }

    /// Encode texts once, for adaptation and scoring without the encoder ([`Classifier::pool_scores`]).
    /// BiEncoder bundles only.
    pub fn pool_vectors<S: AsRef<str>>(&self, texts: &[S]) -> Result<PoolVectors> {
        self.bi_head("pool adaptation")?;
        if let Some(index) = texts.iter().position(|t| t.as_ref().trim().is_empty()) {
            return Err(Error::EmptyText { index });
        }
        if texts.is_empty() {
            return PoolVectors::new(Array2::zeros((0, self.manifest.output_dim)), Vec::new());
        }
        let pooled = self.pooled(&self.text_inputs(texts))?;
        let norms: Vec<f32> = pooled.outer_iter().map(|r| r.dot(&r).sqrt()).collect();
        PoolVectors::new(l2_normalize_rows(pooled), norms)
    }

    /// One pass's statistics: every text of `pool` assigned to its best label of `labels` (the
    /// current ones), and the per-label sums of their unit vectors. Sums of the parts of a pool,
    /// merged, equal the sums of the whole (what a distributed pass computes).
    pub fn label_sums(&self, pool: &PoolVectors, labels: &LabelSet, options: &AdaptOptions) -> Result<LabelSums> {
        let cosine = self.bi_head("pool adaptation")?;
        self.check_pool(pool)?;
        let matrix = self.label_matrix(labels)?;
        let protos = l2_normalize_rows(matrix.clone());
        let assignment = if options.balanced {
            assign_balanced(pool.units(), &protos)
        } else {
            assign(pool.units(), &protos, &Self::label_weights(cosine, &matrix))
        };
        let mut sums = LabelSums::zeros(matrix.nrows(), matrix.ncols());
        sums.add(pool.units(), &assignment);
        Ok(sums)
    }

    /// The labels after one round: `start` (the labels as given) refined by a pass's `sums`.
    pub fn adapted_labels(&self, start: &LabelSet, sums: &LabelSums, options: &AdaptOptions) -> Result<(LabelSet, usize)> {
        options.check().map_err(|message| Error::InvalidOption { option: "adapt", message })?;
        let matrix = self.label_matrix(start)?;
        if sums.counts.len() != matrix.nrows() || sums.sums.dim() != matrix.dim() {
            return Err(Error::InvalidOption {
                option: "sums",
                message: format!("sums of shape {:?} for {} labels of width {}", sums.sums.dim(), matrix.nrows(), matrix.ncols()),
            });
        }
        let (mut protos, moved) = PoolAdapter::new(&matrix, options.clone()).update(sums);
        // a moved label keeps its starting length (the norms a dot-product head was trained with);
        // one that did not move keeps its starting vector exactly
        for ((mut p, e), &m) in protos.outer_iter_mut().zip(matrix.outer_iter()).zip(&moved) {
            if m {
                let length = e.dot(&e).sqrt();
                p.mapv_inplace(|x| x * length);
            } else {
                p.assign(&e);
            }
        }
        let moved = moved.iter().filter(|&&m| m).count();
        let labels = self.labels_from_vectors(start.labels.clone(), protos)?;
        Ok((labels, moved))
    }

    /// Refine `labels` from the pool ([`crate::adapt`]): `options.rounds` rounds of assigning
    /// every text and moving every label with enough texts toward their mean. BiEncoder only.
    pub fn adapt_labels(&self, pool: &PoolVectors, labels: &LabelSet, options: &AdaptOptions) -> Result<Adaptation> {
        self.adapt_labels_parts(std::slice::from_ref(pool), labels, options)
    }

    /// [`Classifier::adapt_labels`] over a pool kept in parts (the chunks of a file): each round
    /// sums every part's [`LabelSums`], so the result equals the concatenated pool's (within float
    /// rounding) without a second copy of it. Balanced assignment needs the pool in one piece and
    /// concatenates the parts.
    pub fn adapt_labels_parts(&self, parts: &[PoolVectors], labels: &LabelSet, options: &AdaptOptions) -> Result<Adaptation> {
        if options.balanced && parts.len() > 1 {
            return self.adapt_labels_parts(&[PoolVectors::concat(parts)?], labels, options);
        }
        options.check().map_err(|message| Error::InvalidOption { option: "adapt", message })?;
        let matrix = self.label_matrix(labels)?;
        let pool: usize = parts.iter().map(PoolVectors::len).sum();
        let skipped = PoolAdapter::new(&matrix, options.clone()).pool_guard(pool);
        let mut current = labels.clone();
        let mut report = AdaptReport { rounds: 0, pool, moved: 0, counts: vec![0; labels.len()], skipped: skipped.clone() };
        if skipped.is_some() {
            return Ok(Adaptation { labels: current, report });
        }
        for _ in 0..options.rounds {
            let mut sums = LabelSums::zeros(matrix.nrows(), matrix.ncols());
            for part in parts {
                sums.merge(&self.label_sums(part, &current, options)?);
            }
            let (next, moved) = self.adapted_labels(labels, &sums, options)?;
            (current, report.moved, report.counts) = (next, moved, sums.counts);
            report.rounds += 1;
        }
        Ok(Adaptation { labels: current, report })
    }

    /// Scores of the pool's texts against `labels` without running the encoder again; equal to
    /// [`Classifier::scores`] of the same texts (within float rounding), views aggregated alike.
    pub fn pool_scores(&self, pool: &PoolVectors, labels: &LabelSet) -> Result<Vec<Vec<f32>>> {
        let cosine = self.bi_head("pool adaptation")?;
        self.check_pool(pool)?;
        if labels.owner != self.id {
            return Err(Error::ForeignLabelSet { label_set_source: labels.source.clone() });
        }
        let LabelRepr::Vectors(views) = &labels.repr else {
            return Err(Error::NeedsBiEncoder { what: "pool adaptation", model_type: "colbert".into() });
        };
        let scores = match cosine {
            Some(c) => pool.units().dot(&l2_normalize_rows(views.clone()).t()) * c.score_scale,
            None => {
                let mut s = pool.units().dot(&views.t());
                s.outer_iter_mut().zip(pool.norms()).for_each(|(mut row, &n)| row.mapv_inplace(|x| x * n));
                s
            }
        };
        Ok(scores.outer_iter().map(|r| labels.aggregate(r.to_vec())).collect())
    }

    /// Classify a whole pool with its labels adapted to it: encode once, adapt, score, rank
    /// (`top_k` best, single-label probabilities). BiEncoder only.
    ///
    /// ```no_run
    /// # fn main() -> zsc::Result<()> {
    /// let clf = zsc::Classifier::from_dir("bundles/minilm", zsc::ClassifierOptions::default())?;
    /// let texts = ["where is my parcel", "the box never came", "refund my order"];
    /// let labels = clf.encode_labels(&["delivery", "refund"])?;
    /// let (ranked, report) = clf.classify_corpus(&texts, &labels, 1, &zsc::AdaptOptions::default())?;
    /// println!("{} ({} labels moved)", ranked[0][0].label, report.moved);
    /// # Ok(())
    /// # }
    /// ```
    pub fn classify_corpus<S: AsRef<str>>(
        &self,
        texts: &[S],
        labels: &LabelSet,
        top_k: usize,
        options: &AdaptOptions,
    ) -> Result<(Vec<Vec<Prediction>>, AdaptReport)> {
        if top_k == 0 {
            return Err(Error::InvalidOption { option: "top_k", message: "must be at least 1".into() });
        }
        let pool = self.pool_vectors(texts)?;
        let adapted = self.adapt_labels(&pool, labels, options)?;
        let scores = self.pool_scores(&pool, &adapted.labels)?;
        let p = self.probability(ProbabilityMode::SingleLabel);
        Ok((scores.iter().map(|s| p.rank(s, adapted.labels.labels(), top_k)).collect(), adapted.report))
    }
}

impl Classifier {
    /// One vector per label, `[L, H]` (a label's views merged into their prototype): what
    /// [`Classifier::labels_from_vectors`] takes back, for example on another worker. BiEncoder
    /// and PolyEncoder sets only.
    pub fn label_vectors(&self, labels: &LabelSet) -> Result<Array2<f32>> {
        self.label_matrix(labels)
    }

    /// A label set from its names and vectors (as [`Classifier::label_vectors`] gives them, or
    /// adapted elsewhere), for this classifier. BiEncoder and PolyEncoder bundles only.
    pub fn labels_from_vectors(&self, names: Vec<String>, vectors: Array2<f32>) -> Result<LabelSet> {
        if let Head::Colbert(_) = self.head {
            return Err(Error::NeedsBiEncoder { what: "labels from vectors", model_type: self.model_type().to_string() });
        }
        if names.is_empty() {
            return Err(Error::NoLabels);
        }
        if vectors.dim() != (names.len(), self.manifest.output_dim) || vectors.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidOption {
                option: "vectors",
                message: format!(
                    "need {} finite rows of width {}, got shape {:?}",
                    names.len(),
                    self.manifest.output_dim,
                    vectors.dim()
                ),
            });
        }
        Ok(LabelSet {
            view_spans: (0..names.len()).map(|j| j..j + 1).collect(),
            labels: names,
            owner: self.id,
            source: self.dir.display().to_string(),
            repr: LabelRepr::Vectors(vectors),
            aggregation: ViewAggregation::Mean,
        })
    }
}
