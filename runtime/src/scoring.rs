//! The scoring kernels of the three heads, applied to the encoder's token outputs with ndarray:
//! pooling, PolyEncoder attention, ColBERT MaxSim, cosine. [`crate::Classifier`] uses them; they are
//! public for those who score embeddings themselves (for example from
//! [`crate::Classifier::token_embeddings`]).
//!
//! The semantics are the team contract (docs/architectures.md) and must match the trainer bit for bit in
//! intent: masks are `attention_mask` rows (non-zero = real token, `[CLS]`/`[SEP]` included;
//! ColBERT may leave them out, as its bundle says), padded positions never influence a result.

use std::ops::Range;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayView3, Axis};
use zsc_core::{MaxSimDirection, Pooling};

/// Masked mean pooling: `sum(H * mask) / max(sum(mask), 1e-9)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MeanPool;

impl MeanPool {
    /// Denominator clamp of the contract; it only matters for an all-padding row (result 0).
    pub const MIN_COUNT: f32 = 1e-9;

    /// Pool one sequence: `hidden [T, H]`, `mask [T]` -> `[H]`.
    pub fn pool_one(hidden: ArrayView2<'_, f32>, mask: ArrayView1<'_, i64>) -> Array1<f32> {
        let mut sum = Array1::<f32>::zeros(hidden.ncols());
        let mut count = 0.0f32;
        for (row, &m) in hidden.outer_iter().zip(mask.iter()) {
            if m != 0 {
                sum += &row;
                count += 1.0;
            }
        }
        sum / count.max(Self::MIN_COUNT)
    }

    /// Pool a batch: `hidden [B, T, H]`, `mask [B, T]` -> `[B, H]`.
    pub fn pool(hidden: ArrayView3<'_, f32>, mask: ArrayView2<'_, i64>) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((hidden.len_of(Axis(0)), hidden.len_of(Axis(2))));
        for ((h, m), mut o) in hidden.outer_iter().zip(mask.outer_iter()).zip(out.outer_iter_mut()) {
            o.assign(&Self::pool_one(h, m));
        }
        out
    }
}

/// Sentence pooling of a bundle (`manifest.spec.embedding.pooling`), as sentence-transformers'
/// `Pooling` module computes it; padding never takes part.
#[derive(Debug, Clone, Copy, Default)]
pub struct SentencePool(pub Pooling);

impl SentencePool {
    /// Pool one sequence: `hidden [T, H]`, `mask [T]` -> `[H]`. A row without real tokens gives zeros.
    pub fn pool_one(&self, hidden: ArrayView2<'_, f32>, mask: ArrayView1<'_, i64>) -> Array1<f32> {
        let real = || hidden.outer_iter().zip(mask.iter()).filter(|(_, &m)| m != 0).map(|(row, _)| row);
        let zeros = || Array1::<f32>::zeros(hidden.ncols());
        match self.0 {
            Pooling::Mean => MeanPool::pool_one(hidden, mask),
            Pooling::Cls => hidden.outer_iter().next().map_or_else(zeros, |r| r.to_owned()),
            Pooling::LastToken => real().last().map_or_else(zeros, |r| r.to_owned()),
            Pooling::Max => real()
                .fold(None, |acc: Option<Array1<f32>>, row| {
                    Some(match acc {
                        None => row.to_owned(),
                        Some(a) => ndarray::Zip::from(&a).and(&row).map_collect(|&x, &y| x.max(y)),
                    })
                })
                .unwrap_or_else(zeros),
            Pooling::MeanSqrtLenTokens => {
                let n = real().count() as f32;
                real().fold(zeros(), |acc, row| acc + row) / n.sqrt().max(MeanPool::MIN_COUNT)
            }
        }
    }

    /// Pool a batch: `hidden [B, T, H]`, `mask [B, T]` -> `[B, H]`.
    pub fn pool(&self, hidden: ArrayView3<'_, f32>, mask: ArrayView2<'_, i64>) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((hidden.len_of(Axis(0)), hidden.len_of(Axis(2))));
        for ((h, m), mut o) in hidden.outer_iter().zip(mask.outer_iter()).zip(out.outer_iter_mut()) {
            o.assign(&self.pool_one(h, m));
        }
        out
    }
}

/// Numerically stable softmax of a slice into `out` (the maximum is subtracted first).
/// `-inf` entries get weight 0; if every entry is `-inf` all weights are 0.
fn softmax_into(logits: impl Iterator<Item = f32> + Clone, out: &mut [f32]) {
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    }
    let mut total = 0.0f32;
    for (o, x) in out.iter_mut().zip(logits) {
        *o = (x - max).exp();
        total += *o;
    }
    out.iter_mut().for_each(|o| *o /= total);
}

/// PolyEncoder head: `m` learnable codes attend over the text's tokens, then the label attends
/// over the `m` context vectors.
#[derive(Debug, Clone)]
pub struct PolyAttention {
    codes: Array2<f32>,
}

impl PolyAttention {
    /// `codes [m, H]` (`poly.codes`).
    pub fn new(codes: Array2<f32>) -> Self {
        PolyAttention { codes }
    }

    /// The number of code vectors `m`.
    pub fn n_codes(&self) -> usize {
        self.codes.nrows()
    }

    /// The width `H` of each code vector.
    pub fn hidden_size(&self) -> usize {
        self.codes.ncols()
    }

    /// Context vectors of one text: `a = softmax_T(C @ H^T)` with padded positions at `-inf`
    /// (no 1/sqrt(d) scaling), `ctx = a @ H` -> `[m, H]`. A text with no real token gets zeros.
    pub fn context(&self, hidden: ArrayView2<'_, f32>, mask: ArrayView1<'_, i64>) -> Array2<f32> {
        let logits = self.codes.dot(&hidden.t()); // [m, T]
        let t = hidden.nrows();
        let mut weights = Array2::<f32>::zeros((self.codes.nrows(), t));
        for (row, mut w) in logits.outer_iter().zip(weights.outer_iter_mut()) {
            let masked = row.iter().zip(mask.iter()).map(|(&x, &m)| if m != 0 { x } else { f32::NEG_INFINITY });
            if let Some(slice) = w.as_slice_mut() {
                softmax_into(masked, slice);
            }
        }
        weights.dot(&hidden)
    }

    /// Scores of one text's context `ctx [m, H]` against label vectors `labels [L, H]` -> `[L]`:
    /// `w = softmax_m(ctx @ l)`, `v = w @ ctx`, `score = v . l`. Since `v . l = sum_m w_m (ctx_m . l)`,
    /// this is computed from `A = ctx @ labels^T` without forming `v`.
    pub fn score(ctx: ArrayView2<'_, f32>, labels: ArrayView2<'_, f32>) -> Array1<f32> {
        let a = ctx.dot(&labels.t()); // [m, L]
        let mut w = vec![0.0f32; a.nrows()];
        a.axis_iter(Axis(1))
            .map(|col| {
                softmax_into(col.iter().copied(), &mut w);
                w.iter().zip(col.iter()).map(|(wi, ai)| wi * ai).sum::<f32>()
            })
            .collect()
    }
}

/// ColBERT late interaction on L2-normalised token embeddings, in the bundle's MaxSim direction
/// ([`MaxSimDirection`]): label to text is
/// `score_scale * mean_{label tokens s} max_{text tokens t} E_text[t] . E_label[s]`, text to label
/// swaps the roles, symmetric is the mean of both. Which tokens take part (padding never, the
/// special tokens as the bundle says) is decided by the caller.
#[derive(Debug, Clone, Copy)]
pub struct MaxSim {
    /// `colbert.score_scale` of the bundle.
    pub score_scale: f32,
    /// Which side's tokens are matched against the other's.
    pub direction: MaxSimDirection,
}

impl MaxSim {
    /// Label to text (what bundles without a direction mean).
    pub fn new(score_scale: f32) -> Self {
        MaxSim { score_scale, direction: MaxSimDirection::LabelToText }
    }

    /// The same scale in `direction`.
    pub fn with_direction(mut self, direction: MaxSimDirection) -> Self {
        self.direction = direction;
        self
    }

    /// Unscaled MaxSim of one (text, label) pair, both padded, with their masks. An empty side
    /// (no real token) gives 0 rather than a NaN or an infinity.
    pub fn similarity(
        &self,
        text: ArrayView2<'_, f32>,
        text_mask: ArrayView1<'_, i64>,
        label: ArrayView2<'_, f32>,
        label_mask: ArrayView1<'_, i64>,
    ) -> f32 {
        let real = |m: ArrayView1<'_, i64>| m.iter().enumerate().filter(|(_, &x)| x != 0).map(|(i, _)| i).collect::<Vec<_>>();
        let text = text.select(Axis(0), &real(text_mask));
        let label = label.select(Axis(0), &real(label_mask));
        self.of_similarities(label.dot(&text.t()).view())
    }

    /// Scaled score (the logit) of one padded pair.
    pub fn score(
        &self,
        text: ArrayView2<'_, f32>,
        text_mask: ArrayView1<'_, i64>,
        label: ArrayView2<'_, f32>,
        label_mask: ArrayView1<'_, i64>,
    ) -> f32 {
        self.score_scale * self.similarity(text, text_mask, label, label_mask)
    }

    /// Scaled scores of one text against many labels at once. `text [T, d]` holds only the text's
    /// scored tokens; `label_tokens [N, d]` stacks the scored tokens of all labels, label `j`
    /// owning rows `spans[j]`. One matrix product for all labels, then MaxSim per span.
    pub fn score_many(
        &self,
        text: ArrayView2<'_, f32>,
        label_tokens: ArrayView2<'_, f32>,
        spans: &[Range<usize>],
    ) -> Array1<f32> {
        let sim = label_tokens.dot(&text.t()); // [N, T]
        spans.iter().map(|r| self.score_scale * self.of_similarities(sim.slice(ndarray::s![r.clone(), ..]))).collect()
    }

    /// MaxSim of one pair from its token similarities `sim [label tokens, text tokens]`.
    fn of_similarities(&self, sim: ArrayView2<'_, f32>) -> f32 {
        match self.direction {
            MaxSimDirection::LabelToText => mean_of_max(sim),
            MaxSimDirection::TextToLabel => mean_of_max(sim.t()),
            MaxSimDirection::Symmetric => 0.5 * (mean_of_max(sim) + mean_of_max(sim.t())),
        }
    }
}

/// Mean over the rows of each row's maximum; 0 when there are no rows or no columns.
fn mean_of_max(sim: ArrayView2<'_, f32>) -> f32 {
    if sim.nrows() == 0 || sim.ncols() == 0 {
        return 0.0;
    }
    let total: f32 = sim.outer_iter().map(|row| row.iter().copied().fold(f32::NEG_INFINITY, f32::max)).sum();
    total / sim.nrows() as f32
}

/// Each row divided by its L2 norm (a zero row stays zero), as the trainer's `l2_normalize`.
pub fn l2_normalize_rows(mut m: Array2<f32>) -> Array2<f32> {
    /// eps of the trainer's normalisation (`torch.nn.functional.normalize`).
    const EPS: f32 = 1e-12;
    for mut row in m.outer_iter_mut() {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(EPS);
        row.mapv_inplace(|x| x / norm);
    }
    m
}

/// `similarity: cosine` of a BiEncoder or PolyEncoder bundle: cosine times the learned
/// `cosine.score_scale`.
#[derive(Debug, Clone, Copy)]
pub struct Cosine {
    /// `cosine.score_scale` of the bundle.
    pub score_scale: f32,
}

impl Cosine {
    /// BiEncoder: `scale * cos(t_i, l_j)` of pooled text vectors `[N, H]` and label vectors `[L, H]`.
    pub fn scores(&self, texts: &Array2<f32>, labels: &Array2<f32>) -> Array2<f32> {
        let t = l2_normalize_rows(texts.clone());
        let l = l2_normalize_rows(labels.clone());
        t.dot(&l.t()) * self.score_scale
    }

    /// PolyEncoder: the label attends over the context vectors as in [`PolyAttention::score`]
    /// (`w = softmax_m(ctx @ l)`, `v = w @ ctx`), then `scale * cos(v, l)`.
    pub fn poly_scores(&self, ctx: ArrayView2<'_, f32>, labels: ArrayView2<'_, f32>) -> Array1<f32> {
        let a = ctx.dot(&labels.t()); // [m, L]
        let mut w = vec![0.0f32; a.nrows()];
        a.axis_iter(Axis(1))
            .zip(labels.outer_iter())
            .map(|(col, l)| {
                softmax_into(col.iter().copied(), &mut w);
                let v = ArrayView1::from(&w[..]).dot(&ctx); // [H]
                let norms = v.dot(&v).sqrt().max(1e-12) * l.dot(&l).sqrt().max(1e-12);
                self.score_scale * w.iter().zip(col.iter()).map(|(wi, ai)| wi * ai).sum::<f32>() / norms
            })
            .collect()
    }
}

/// `1 / (1 + e^-x)`, the probability of a logit.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2, Array3};

    #[test]
    fn cosine_scores_by_hand() {
        // text (3,4) vs labels (1,0) and (0,-2): cosines 0.6 and -0.8, times 20
        let c = Cosine { score_scale: 20.0 };
        let s = c.scores(&arr2(&[[3.0, 4.0]]), &arr2(&[[1.0, 0.0], [0.0, -2.0]]));
        assert!((s[[0, 0]] - 12.0).abs() < 1e-5 && (s[[0, 1]] + 16.0).abs() < 1e-5, "{s:?}");
        // poly with one context vector: w = 1, v = ctx, the same cosines
        let p = c.poly_scores(arr2(&[[3.0, 4.0]]).view(), arr2(&[[1.0, 0.0], [0.0, -2.0]]).view());
        assert!((p[0] - 12.0).abs() < 1e-5 && (p[1] + 16.0).abs() < 1e-5, "{p:?}");
        // two context vectors: v is the w-weighted mix, its norm is not 1
        let ctx = arr2(&[[1.0, 0.0], [0.0, 2.0]]);
        let l = arr2(&[[1.0, 1.0]]);
        let (e1, e2) = (1f32.exp(), 2f32.exp());
        let (w1, w2) = (e1 / (e1 + e2), e2 / (e1 + e2));
        let v = [w1, 2.0 * w2];
        let want = 20.0 * (v[0] + v[1]) / ((v[0] * v[0] + v[1] * v[1]).sqrt() * 2f32.sqrt());
        let got = c.poly_scores(ctx.view(), l.view())[0];
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }

    fn close(a: f32, b: f64, tol: f64) -> bool {
        ((a as f64) - b).abs() <= tol
    }

    #[test]
    fn sentence_pooling_modes_by_hand() {
        // tokens (1,4), (3,2), padding (100,-100)
        let h = ndarray::array![[1.0f32, 4.0], [3.0, 2.0], [100.0, -100.0]];
        let m = ndarray::array![1i64, 1, 0];
        let pooled = |p: Pooling| SentencePool(p).pool_one(h.view(), m.view()).to_vec();
        assert_eq!(pooled(Pooling::Mean), vec![2.0, 3.0]);
        assert_eq!(pooled(Pooling::Cls), vec![1.0, 4.0]);
        assert_eq!(pooled(Pooling::LastToken), vec![3.0, 2.0]);
        assert_eq!(pooled(Pooling::Max), vec![3.0, 4.0]);
        let r = 2f32.sqrt();
        assert_eq!(pooled(Pooling::MeanSqrtLenTokens), vec![4.0 / r, 6.0 / r]);
        let none = ndarray::array![0i64, 0, 0];
        for p in Pooling::ALL {
            let v = SentencePool(p).pool_one(h.view(), none.view());
            assert!(v.iter().all(|x| x.is_finite()), "{p}: {v:?}");
        }
        let n = l2_normalize_rows(ndarray::array![[3.0f32, 4.0], [0.0, 0.0]]);
        assert_eq!(n, ndarray::array![[0.6f32, 0.8], [0.0, 0.0]]);
    }

    #[test]
    fn mean_pool_ignores_padding() {
        // Row 0: tokens [1,2] and [3,4] are real, [100,100] is padding -> mean [2, 3].
        // Row 1: only the first token is real -> [5, 6].
        let hidden = Array3::from_shape_vec((2, 3, 2), vec![1., 2., 3., 4., 100., 100., 5., 6., -7., 8., 90., 90.]).unwrap();
        let mask = arr2(&[[1i64, 1, 0], [1, 0, 0]]);
        let pooled = MeanPool::pool(hidden.view(), mask.view());
        assert_eq!(pooled, arr2(&[[2.0f32, 3.0], [5.0, 6.0]]));
        // Without the mask the padding would change the result (sanity check of the fixture).
        let unmasked = MeanPool::pool(hidden.view(), arr2(&[[1i64, 1, 1], [1, 1, 1]]).view());
        assert_ne!(unmasked, pooled);
    }

    #[test]
    fn mean_pool_of_all_padding_is_zero() {
        let hidden = arr2(&[[3.0f32, 4.0]]);
        assert_eq!(MeanPool::pool_one(hidden.view(), arr1(&[0i64]).view()), arr1(&[0.0f32, 0.0]));
    }

    /// codes C = I (m = 2, H = 2); text tokens t0 = [1,0], t1 = [0,1], t2 = [50,50] padded.
    /// code 0 logits [1, 0] -> a0 = [e/(1+e), 1/(1+e)] = [s, 1-s] with s = sigmoid(1) ~ 0.731059
    /// code 1 logits [0, 1] -> a1 = [1-s, s]
    /// ctx = [[s, 1-s], [1-s, s]].
    /// label l = [1, 0]: A = ctx @ l = [s, 1-s]; w = softmax(A) = [sigmoid(2s-1), 1 - sigmoid(2s-1)]
    /// score = w0 * s + w1 * (1-s).
    #[test]
    fn poly_attention_hand_computed_with_padding() {
        let poly = PolyAttention::new(arr2(&[[1.0f32, 0.0], [0.0, 1.0]]));
        let hidden = arr2(&[[1.0f32, 0.0], [0.0, 1.0], [50.0, 50.0]]);
        let mask = arr1(&[1i64, 1, 0]);
        let ctx = poly.context(hidden.view(), mask.view());
        let s = 1.0 / (1.0 + (-1.0f64).exp());
        assert!(close(ctx[[0, 0]], s, 1e-6) && close(ctx[[0, 1]], 1.0 - s, 1e-6), "{ctx}");
        assert!(close(ctx[[1, 0]], 1.0 - s, 1e-6) && close(ctx[[1, 1]], s, 1e-6), "{ctx}");

        let labels = arr2(&[[1.0f32, 0.0], [0.0, 2.0]]);
        let scores = PolyAttention::score(ctx.view(), labels.view());
        let w0 = 1.0 / (1.0 + (-(2.0 * s - 1.0)).exp());
        let expected0 = w0 * s + (1.0 - w0) * (1.0 - s);
        assert!(close(scores[0], expected0, 1e-6), "{} vs {expected0}", scores[0]);
        // Label 1 = [0, 2]: A = [2(1-s), 2s] -> w = softmax, score = w . A.
        let (a0, a1) = (2.0 * (1.0 - s), 2.0 * s);
        let v0 = 1.0 / (1.0 + (a1 - a0).exp());
        let expected1 = v0 * a0 + (1.0 - v0) * a1;
        assert!(close(scores[1], expected1, 1e-6), "{} vs {expected1}", scores[1]);
        // ~0.5525 by hand for label 0.
        assert!(close(scores[0], 0.5525, 1e-3));

        // Had the padded token counted, ctx would be dominated by [50, 50].
        let unmasked = poly.context(hidden.view(), arr1(&[1i64, 1, 1]).view());
        assert!(unmasked[[0, 0]] > 40.0);
    }

    #[test]
    fn poly_attention_matches_explicit_formula() {
        // v = w @ ctx, score = v . l, done the long way.
        let ctx = arr2(&[[0.3f32, -1.2, 0.5], [2.0, 0.1, -0.4], [-0.7, 0.9, 1.1]]);
        let l = arr1(&[0.2f32, -0.5, 1.5]);
        let a: Vec<f64> = ctx.outer_iter().map(|c| c.dot(&l) as f64).collect();
        let z: f64 = a.iter().map(|x| x.exp()).sum();
        let w: Vec<f64> = a.iter().map(|x| x.exp() / z).collect();
        let mut v = [0.0f64; 3];
        for (m, c) in ctx.outer_iter().enumerate() {
            for h in 0..3 {
                v[h] += w[m] * c[h] as f64;
            }
        }
        let expected: f64 = v.iter().zip(l.iter()).map(|(a, b)| a * *b as f64).sum();
        let got = PolyAttention::score(ctx.view(), l.view().insert_axis(Axis(0)));
        assert!(close(got[0], expected, 1e-5), "{} vs {expected}", got[0]);
    }

    #[test]
    fn poly_attention_all_padding_gives_zero_context() {
        let poly = PolyAttention::new(arr2(&[[1.0f32, 0.0]]));
        let ctx = poly.context(arr2(&[[1.0f32, 2.0]]).view(), arr1(&[0i64]).view());
        assert_eq!(ctx, arr2(&[[0.0f32, 0.0]]));
        assert!(PolyAttention::score(ctx.view(), arr2(&[[1.0f32, 1.0]]).view())[0].is_finite());
    }

    /// Text tokens t0 = [1,0], t1 = [0,1], padded t2 = [0.6, 0.8].
    /// Label tokens s0 = [0.6,0.8], s1 = [1,0], padded s2 = [0,-1].
    /// s0: max(0.6, 0.8) = 0.8 (1.0 if t2 counted); s1: max(1, 0) = 1.
    /// MaxSim = (0.8 + 1) / 2 = 0.9; with score_scale 10 -> 9.0.
    /// Counting s2 would give (0.8 + 1 + 0) / 3 = 0.6.
    #[test]
    fn maxsim_hand_computed_with_padding() {
        let text = arr2(&[[1.0f32, 0.0], [0.0, 1.0], [0.6, 0.8]]);
        let text_mask = arr1(&[1i64, 1, 0]);
        let label = arr2(&[[0.6f32, 0.8], [1.0, 0.0], [0.0, -1.0]]);
        let label_mask = arr1(&[1i64, 1, 0]);
        let head = MaxSim::new(10.0);
        let sim = head.similarity(text.view(), text_mask.view(), label.view(), label_mask.view());
        assert!(close(sim, 0.9, 1e-6), "{sim}");
        assert!(close(head.score(text.view(), text_mask.view(), label.view(), label_mask.view()), 9.0, 1e-5));
        let all = arr1(&[1i64, 1, 1]);
        assert!(close(head.similarity(text.view(), all.view(), label.view(), label_mask.view()), 1.0, 1e-6));
        assert!(close(head.similarity(text.view(), text_mask.view(), label.view(), all.view()), 0.6, 1e-6));
        // text to label: t0 -> max(0.6, 1) = 1, t1 -> max(0.8, 0) = 0.8 (the label pad s2 never
        // counts); mean 0.9. Symmetric: 0.9 too. A pair where they differ: label s1 alone.
        let t2l = head.with_direction(MaxSimDirection::TextToLabel);
        assert!(close(t2l.similarity(text.view(), text_mask.view(), label.view(), label_mask.view()), 0.9, 1e-6));
        let only_s1 = arr1(&[0i64, 1, 0]);
        // label to text: s1 -> 1; text to label: t0 -> 1, t1 -> 0, mean 0.5; symmetric 0.75
        assert!(close(head.similarity(text.view(), text_mask.view(), label.view(), only_s1.view()), 1.0, 1e-6));
        assert!(close(t2l.similarity(text.view(), text_mask.view(), label.view(), only_s1.view()), 0.5, 1e-6));
        let sym = head.with_direction(MaxSimDirection::Symmetric);
        assert!(close(sym.similarity(text.view(), text_mask.view(), label.view(), only_s1.view()), 0.75, 1e-6));
        // an empty side scores 0 in every direction
        let none = arr1(&[0i64, 0, 0]);
        for m in [head, t2l, sym] {
            assert_eq!(m.similarity(text.view(), none.view(), label.view(), label_mask.view()), 0.0);
            assert_eq!(m.similarity(text.view(), text_mask.view(), label.view(), none.view()), 0.0);
        }
    }

    #[test]
    fn maxsim_many_equals_pairwise() {
        for direction in [MaxSimDirection::TextToLabel, MaxSimDirection::Symmetric] {
            let head = MaxSim::new(2.5).with_direction(direction);
            let text = arr2(&[[1.0f32, 0.0], [0.0, 1.0]]);
            let stacked = arr2(&[[0.6f32, 0.8], [1.0, 0.0], [-0.8, 0.6]]);
            let spans = [0..2, 2..3, 3..3];
            let many = head.score_many(text.view(), stacked.view(), &spans);
            for (j, r) in spans.iter().enumerate() {
                let label = stacked.slice(ndarray::s![r.clone(), ..]);
                let pair = head.score(text.view(), Array1::<i64>::ones(2).view(), label, Array1::<i64>::ones(r.len()).view());
                assert!((many[j] - pair).abs() < 1e-6, "{direction:?} {j}");
            }
            assert_eq!(many[2], 0.0);
        }
        let head = MaxSim::new(2.5);
        let text = arr2(&[[1.0f32, 0.0], [0.0, 1.0]]);
        // Label A: rows 0..2, label B: rows 2..3.
        let stacked = arr2(&[[0.6f32, 0.8], [1.0, 0.0], [-0.8, 0.6]]);
        let spans = [0..2, 2..3];
        let many = head.score_many(text.view(), stacked.view(), &spans);
        let ones = |n| Array1::<i64>::ones(n);
        for (j, r) in spans.iter().enumerate() {
            let label = stacked.slice(ndarray::s![r.clone(), ..]);
            let pair = head.score(text.view(), ones(2).view(), label, ones(r.len()).view());
            assert!((many[j] - pair).abs() < 1e-6);
        }
        assert!(close(many[0], 2.5 * 0.9, 1e-6));
        assert!(close(many[1], 2.5 * 0.6, 1e-6));
    }

    #[test]
    fn sigmoid_is_stable() {
        assert!(close(sigmoid(0.0), 0.5, 1e-7));
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!(close(sigmoid(2.0), 1.0 / (1.0 + (-2.0f64).exp()), 1e-7));
    }
}
