//! Which (text, label) pairs each training step sees, and getting them tokenised ahead of time.
//!
//! Every batch comes from one data `source` (so its in-batch negatives are labels of the same
//! task); the source of step `s` is drawn with probability proportional to (its pairs)^alpha
//! from an RNG seeded by (seed, s), and within a source batches are consecutive slices of that
//! source's seeded per-epoch shuffle. Everything is a function of the step, so `--resume`
//! replays the same order. With one source this is exactly the plain seeded epoch order.
//! With `label_negatives` = K, every batch also carries K more labels of its source that none of
//! its texts has (drawn per step, seeded): each text is then scored against B + K labels, closer
//! to evaluation, where a text competes with every label of its task.
//! A worker thread tokenises the next batches while the current step runs.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use zsc_core::data::{expand_pairs, Pair, Sample};
use zsc_core::rng::SplitMix64;
use zsc_core::tokenize::{TextTokenizer, TokenBatch};

use crate::error::{Result, TrainerError};

/// The training pairs of one data source.
#[derive(Debug, Clone)]
pub struct SourcePairs {
    /// The samples' `source` (`"default"` for samples without one).
    pub name: String,
    pub pairs: Vec<Pair>,
    /// Its distinct labels, sorted (where label negatives are drawn from).
    labels: Vec<String>,
    /// Every label of each text (a multi-label text has several pairs).
    labels_of_text: HashMap<String, Vec<String>>,
}

impl SourcePairs {
    /// Its distinct labels, sorted.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn new(name: String, pairs: Vec<Pair>) -> Self {
        let labels: BTreeSet<&str> = pairs.iter().map(|p| p.label.as_str()).collect();
        let labels = labels.into_iter().map(str::to_owned).collect();
        let mut labels_of_text: HashMap<String, Vec<String>> = HashMap::new();
        for p in &pairs {
            labels_of_text.entry(p.text.clone()).or_default().push(p.label.clone());
        }
        SourcePairs { name, pairs, labels, labels_of_text }
    }

    /// `k` labels of this source that no text of `batch` has, in a seeded order of `step`, each
    /// with `false`; when the source has fewer such labels the rest are fillers (the batch's
    /// first label, `true`), which the loss leaves out. Always `k` entries, so shapes stay fixed.
    pub fn label_negatives(&self, batch: &[Pair], k: usize, seed: u64, step: usize) -> Vec<(String, bool)> {
        if k == 0 || batch.is_empty() {
            return Vec::new();
        }
        // every pair of the batch is one of this source's, so its label is among its text's
        let taken: BTreeSet<&str> =
            batch.iter().flat_map(|p| self.labels_of_text.get(&p.text).into_iter().flatten()).map(String::as_str).collect();
        let mut free: Vec<&String> = self.labels.iter().filter(|l| !taken.contains(l.as_str())).collect();
        let mut rng = SplitMix64::new(seed ^ (step as u64 + 1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ 0x27BB_2EE6_87B0_B0FD);
        rng.shuffle(&mut free);
        let mut out: Vec<(String, bool)> = free.into_iter().take(k).map(|l| (l.clone(), false)).collect();
        out.resize(k, (batch[0].label.clone(), true));
        out
    }
}

/// Pairs grouped by source, sources sorted by name.
pub fn pairs_by_source(samples: &[Sample]) -> Vec<SourcePairs> {
    let mut groups: std::collections::BTreeMap<String, Vec<Sample>> = Default::default();
    for s in samples {
        groups.entry(s.source.clone().unwrap_or_else(|| "default".into())).or_default().push(s.clone());
    }
    groups.into_iter().map(|(name, ss)| SourcePairs::new(name, expand_pairs(&ss))).collect()
}

/// The seeded order of pair indices in `epoch`.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed ^ (epoch as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    rng.shuffle(&mut idx);
    idx
}

/// Pair indices of every step: the step's source, then a slice of that source's epoch order.
pub struct BatchPlan {
    sizes: Vec<usize>,
    batch_size: usize,
    seed: u64,
    /// Cumulative source probabilities (empty with a single source).
    cumulative: Vec<f64>,
    /// Batches each source has served before step `next_step` (sequential access is O(1)).
    served: Vec<usize>,
    next_step: usize,
    cached_order: Option<(usize, usize, Vec<usize>)>,
}

impl BatchPlan {
    /// `sizes`: pairs per source (each > 0); sources are drawn ∝ size^`alpha`.
    pub fn new(sizes: &[usize], batch_size: usize, seed: u64, alpha: f64) -> Self {
        let weights: Vec<f64> = sizes.iter().map(|&n| (n as f64).powf(alpha)).collect();
        let total: f64 = weights.iter().sum();
        let cumulative = if sizes.len() > 1 {
            weights
                .iter()
                .scan(0.0, |acc, w| {
                    *acc += w / total;
                    Some(*acc)
                })
                .collect()
        } else {
            Vec::new()
        };
        BatchPlan {
            sizes: sizes.to_vec(),
            batch_size: batch_size.max(1),
            seed,
            cumulative,
            served: vec![0; sizes.len()],
            next_step: 0,
            cached_order: None,
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Probability of each source.
    pub fn source_probabilities(&self) -> Vec<f64> {
        if self.cumulative.is_empty() {
            return vec![1.0; self.sizes.len().min(1)];
        }
        let mut prev = 0.0;
        self.cumulative
            .iter()
            .map(|&c| {
                let p = c - prev;
                prev = c;
                p
            })
            .collect()
    }

    /// Batch size of a source: the configured one, or the whole source if it is smaller.
    pub fn source_batch_size(&self, source: usize) -> usize {
        self.batch_size.min(self.sizes[source]).max(1)
    }

    /// Full batches in one pass over all pairs (for logs).
    pub fn batches_per_epoch(&self) -> usize {
        (self.sizes.iter().sum::<usize>() / self.batch_size).max(1)
    }

    fn source_of(&self, step: usize) -> usize {
        if self.cumulative.is_empty() {
            return 0;
        }
        let mut rng = SplitMix64::new(self.seed ^ (step as u64).wrapping_mul(0xA24B_AED4_963E_E407) ^ 0x5851_F42D_4C95_7F2D);
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        self.cumulative.iter().position(|&c| u < c).unwrap_or(self.cumulative.len() - 1)
    }

    /// (source, pair indices within it) of 0-based training step `step`.
    pub fn batch(&mut self, step: usize) -> (usize, Vec<usize>) {
        if step < self.next_step {
            self.served.iter_mut().for_each(|c| *c = 0);
            self.next_step = 0;
        }
        while self.next_step < step {
            let s = self.source_of(self.next_step);
            self.served[s] += 1;
            self.next_step += 1;
        }
        let source = self.source_of(step);
        let k = self.served[source];
        self.served[source] += 1;
        self.next_step += 1;

        let bs = self.source_batch_size(source);
        let per_epoch = (self.sizes[source] / bs).max(1);
        let (epoch, slot) = (k / per_epoch, k % per_epoch);
        // source 0 keeps the run's seed, so single-source data gets the plain epoch order
        let seed = self.seed ^ (source as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if self.cached_order.as_ref().map(|c| (c.0, c.1)) != Some((source, epoch)) {
            self.cached_order = Some((source, epoch, epoch_order(self.sizes[source], seed, epoch)));
        }
        let order = self.cached_order.as_ref().map(|c| c.2.as_slice()).unwrap_or(&[]);
        (source, order[slot * bs..(slot + 1) * bs].to_vec())
    }
}

/// One training step's batch, tokenised.
pub struct PreparedBatch {
    pub step: usize,
    pub source: usize,
    pub pairs: Vec<Pair>,
    pub texts: TokenBatch,
    /// The labels with the label template applied: the pairs' labels, then the label negatives.
    pub labels: TokenBatch,
    /// The same labels as written in the data (no template), e.g. for a teacher's lookup.
    pub label_names: Vec<String>,
    /// One per label negative: true where it is a filler (left out of the loss).
    pub negative_fillers: Vec<bool>,
}

/// Token lengths for CUDA graphs, whose input shapes never change: (`max_length` of the texts,
/// the longest templated label). Texts are padded to their [`text_bucket`], labels to the longest.
pub type StaticLengths = Option<(usize, usize)>;

/// The padded length of a CUDA-graph batch of texts whose longest has `seq` tokens: the next of
/// four buckets (`max_length` × 1/4, 2/4, 3/4, 1, in multiples of 8), so at most four graphs cover
/// every batch and a batch of short texts does not pay for `max_length` (at batch 512 padding
/// everything to 64 made graph steps slower than PyTorch's eager ones).
pub fn text_bucket(seq: usize, max_length: usize) -> usize {
    let step = max_length.div_ceil(4).next_multiple_of(8);
    (seq.div_ceil(step) * step).clamp(step.min(max_length), max_length)
}

/// How batches are tokenised: the label template, the label negatives per batch, and the static
/// token lengths (CUDA graphs).
#[derive(Debug, Clone)]
pub struct BatchShape {
    /// The model's label template and prompts.
    pub spec: zsc_core::ModelSpec,
    pub label_negatives: usize,
    pub lengths: StaticLengths,
}

/// Tokenise the batch of `step` with its label negatives (padded to `shape.lengths` when given).
pub fn prepare(
    plan: &mut BatchPlan,
    sources: &[SourcePairs],
    tok: &TextTokenizer,
    shape: &BatchShape,
    step: usize,
) -> Result<PreparedBatch> {
    let (source, idx) = plan.batch(step);
    let pairs: Vec<Pair> = idx.into_iter().map(|i| sources[source].pairs[i].clone()).collect();
    let negatives = sources[source].label_negatives(&pairs, shape.label_negatives, plan.seed(), step);
    let texts: Vec<String> = pairs.iter().map(|p| shape.spec.text_input(&p.text)).collect();
    let label_names: Vec<String> = pairs.iter().map(|p| p.label.clone()).chain(negatives.iter().map(|n| n.0.clone())).collect();
    let labels: Vec<String> = label_names.iter().map(|l| shape.spec.label_input(l)).collect();
    let mut texts = tok.encode_batch(&texts)?;
    let mut labels = tok.encode_batch(&labels)?;
    if let Some((t, l)) = shape.lengths {
        texts = texts.padded_to(text_bucket(texts.seq, t), tok.pad_id());
        labels = labels.padded_to(l, tok.pad_id());
    }
    let negative_fillers = negatives.into_iter().map(|n| n.1).collect();
    Ok(PreparedBatch { step, source, pairs, texts, labels, label_names, negative_fillers })
}

/// Batches of steps `start..end`, prepared on a worker thread a few steps ahead.
pub struct Prefetcher {
    rx: Receiver<Result<PreparedBatch>>,
}

impl Prefetcher {
    /// How many prepared batches may wait (bounds memory; enough to hide tokenisation).
    const AHEAD: usize = 8;

    pub fn spawn(
        mut plan: BatchPlan,
        sources: Arc<Vec<SourcePairs>>,
        tok: TextTokenizer,
        shape: BatchShape,
        steps: std::ops::Range<usize>,
    ) -> Prefetcher {
        let (tx, rx) = sync_channel(Self::AHEAD);
        std::thread::spawn(move || {
            for step in steps {
                let batch = prepare(&mut plan, &sources, &tok, &shape, step);
                let failed = batch.is_err();
                // the receiver is gone when training stopped early: nothing more to do
                if tx.send(batch).is_err() || failed {
                    return;
                }
            }
        });
        Prefetcher { rx }
    }

    /// The next step's batch.
    pub fn next(&self) -> Result<PreparedBatch> {
        self.rx.recv().map_err(|_| TrainerError::Invalid("the batch preparation thread stopped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_text_lengths_fall_in_four_buckets() {
        let buckets = |max: usize| -> Vec<usize> {
            let mut b: Vec<usize> = (0..=max).map(|seq| text_bucket(seq, max)).collect();
            b.dedup();
            b
        };
        assert_eq!(buckets(64), vec![16, 32, 48, 64]);
        assert_eq!(buckets(128), vec![32, 64, 96, 128]);
        assert_eq!(buckets(10), vec![8, 10], "never past max_length");
        for seq in 0..=64 {
            assert!(text_bucket(seq, 64) >= seq, "a bucket holds its batch");
        }
        assert_eq!(text_bucket(17, 64), 32);
        assert_eq!(text_bucket(16, 64), 16);
    }

    #[test]
    fn one_source_is_the_plain_seeded_epoch_order() {
        let mut plan = BatchPlan::new(&[10], 3, 5, 1.0);
        assert_eq!(plan.batches_per_epoch(), 3);
        let epoch0: Vec<usize> = (0..3).flat_map(|s| plan.batch(s).1).collect();
        assert_eq!(epoch0, epoch_order(10, 5, 0)[..9].to_vec());
        let mut sorted = epoch0.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 9, "no pair twice within an epoch");
        let epoch1: Vec<usize> = (3..6).flat_map(|s| plan.batch(s).1).collect();
        assert_ne!(epoch0, epoch1, "each epoch has its own order");
        // stateless: any step can be asked for first (what --resume relies on)
        assert_eq!(BatchPlan::new(&[10], 3, 5, 1.0).batch(4), plan.batch(4));
        assert_ne!(BatchPlan::new(&[10], 3, 6, 1.0).batch(0), BatchPlan::new(&[10], 3, 5, 1.0).batch(0));
    }

    #[test]
    fn sources_are_drawn_by_size_to_the_alpha() {
        let sizes = [900, 100];
        for (alpha, want0) in [(1.0, 0.9), (0.0, 0.5), (0.5, 0.75)] {
            let mut plan = BatchPlan::new(&sizes, 10, 1, alpha);
            let p = plan.source_probabilities();
            assert!((p[0] - want0).abs() < 1e-9, "alpha {alpha}: {p:?}");
            let n = 4000;
            let from0 = (0..n).filter(|&s| plan.batch(s).0 == 0).count() as f64 / n as f64;
            assert!((from0 - want0).abs() < 0.03, "alpha {alpha}: {from0}");
        }
    }

    #[test]
    fn each_batch_is_one_source_and_sources_cycle_through_their_pairs() {
        let mut plan = BatchPlan::new(&[20, 6], 4, 9, 0.0);
        let mut seen = [Vec::new(), Vec::new()];
        for s in 0..40 {
            let (src, idx) = plan.batch(s);
            assert_eq!(idx.len(), 4);
            assert!(idx.iter().all(|&i| i < [20, 6][src]));
            seen[src].extend(idx);
        }
        // the small source: one batch per epoch (6 / 4), each epoch a new shuffle of its pairs
        assert!(seen[1].len() >= 40);
        // random access equals sequential access
        let mut fresh = BatchPlan::new(&[20, 6], 4, 9, 0.0);
        assert_eq!(fresh.batch(33), plan.batch(33));
        assert_eq!(fresh.batch(2), BatchPlan::new(&[20, 6], 4, 9, 0.0).batch(2));
    }

    #[test]
    fn a_source_smaller_than_the_batch_is_one_batch() {
        let mut plan = BatchPlan::new(&[3, 50], 8, 2, 1.0);
        assert_eq!(plan.source_batch_size(0), 3);
        for s in 0..50 {
            let (src, idx) = plan.batch(s);
            assert_eq!(idx.len(), if src == 0 { 3 } else { 8 });
        }
    }

    #[test]
    fn pairs_are_grouped_by_source() {
        let s = |t: &str, l: &[&str], src: Option<&str>| Sample {
            text: t.into(),
            labels: l.iter().map(|x| x.to_string()).collect(),
            source: src.map(String::from),
        };
        let groups = pairs_by_source(&[s("a", &["x", "y"], Some("b")), s("c", &["z"], None), s("d", &["x"], Some("b"))]);
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["b", "default"]);
        assert_eq!(groups[0].pairs.len(), 3);
    }

    #[test]
    fn label_negatives_are_source_labels_that_no_batch_text_has() {
        let p = |t: &str, l: &str| Pair { text: t.into(), label: l.into() };
        let all = vec![p("t1", "a"), p("t1", "b"), p("t2", "c"), p("t3", "d"), p("t4", "e"), p("t5", "f")];
        let src = SourcePairs::new("s".into(), all.clone());
        // t1's pair with "a" is in the batch, its "b" pair is not: "b" is still t1's label
        let batch = vec![all[0].clone(), all[2].clone()];
        let mut got: Vec<(String, bool)> = src.label_negatives(&batch, 3, 7, 4);
        assert_eq!(got, src.label_negatives(&batch, 3, 7, 4), "a function of (seed, step)");
        got.sort();
        assert_eq!(got, [("d".to_string(), false), ("e".into(), false), ("f".into(), false)]);
        // more than the source has: the rest are fillers, so the shape stays fixed
        let padded = src.label_negatives(&batch, 5, 7, 4);
        assert_eq!(padded.len(), 5);
        assert_eq!(padded.iter().filter(|n| n.1).count(), 2);
        assert!(padded.iter().filter(|n| n.1).all(|n| n.0 == "a"));
        assert!(src.label_negatives(&batch, 0, 7, 4).is_empty());
        // the draw changes with the step
        let firsts: BTreeSet<String> = (0..20).map(|step| src.label_negatives(&batch, 1, 7, step)[0].0.clone()).collect();
        assert_eq!(firsts.len(), 3);
    }
}
