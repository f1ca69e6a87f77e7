//! [`LabelSets`]: an LRU cache of encoded label sets, bounded by the total number of label views
//! (names, descriptions, examples) it holds (an entry's memory grows with its labels, not with the number of entries). Concurrent
//! requests with the same new label set share one encoding.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::classifier::LabelSet;
use crate::label::Label;

use super::metrics::Metrics;

/// One label set: encoded once (the cell), shared by every request that names the same labels in
/// the same order.
pub(crate) type LabelCell = Arc<OnceCell<Arc<LabelSet>>>;

#[derive(Debug)]
struct Entry {
    cell: LabelCell,
    last_used: u64,
    labels: usize,
}

#[derive(Debug, Default)]
struct Lru {
    map: HashMap<Vec<Label>, Entry>,
    tick: u64,
    labels: usize,
    /// What this cache last added to the shared gauges (labels, sets): one cache per model.
    published: (i64, i64),
}

#[derive(Debug)]
pub(crate) struct LabelSets {
    inner: Mutex<Lru>,
    max_labels: usize,
    metrics: Arc<Metrics>,
}

impl LabelSets {
    pub(crate) fn new(max_labels: usize, metrics: Arc<Metrics>) -> Self {
        LabelSets { inner: Mutex::new(Lru::default()), max_labels, metrics }
    }

    /// The cell for `labels` (new and empty on a miss), and whether it was already encoded.
    /// Inserting evicts the least recently used sets until the total fits `max_labels`.
    pub(crate) fn cell(&self, labels: &[Label]) -> (LabelCell, bool) {
        let size: usize = labels.iter().map(Label::views).sum();
        let mut lru = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        lru.tick += 1;
        let tick = lru.tick;
        if let Some(e) = lru.map.get_mut(labels) {
            e.last_used = tick;
            let hit = e.cell.initialized();
            let cell = e.cell.clone();
            self.count(hit);
            return (cell, hit);
        }
        while lru.labels + size > self.max_labels {
            let Some(oldest) = lru.map.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone()) else { break };
            if let Some(e) = lru.map.remove(&oldest) {
                lru.labels -= e.labels;
            }
        }
        let cell: LabelCell = Arc::new(OnceCell::new());
        lru.labels += size;
        lru.map.insert(labels.to_vec(), Entry { cell: cell.clone(), last_used: tick, labels: size });
        self.publish(&mut lru);
        self.count(false);
        (cell, false)
    }

    fn publish(&self, lru: &mut Lru) {
        let now = (lru.labels as i64, lru.map.len() as i64);
        self.metrics.label_cache_labels.fetch_add(now.0 - lru.published.0, Ordering::Relaxed);
        self.metrics.label_cache_sets.fetch_add(now.1 - lru.published.1, Ordering::Relaxed);
        lru.published = now;
    }

    fn count(&self, hit: bool) {
        let c = if hit { &self.metrics.label_cache_hits } else { &self.metrics.label_cache_misses };
        c.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let lru = self.inner.lock().unwrap();
        (lru.map.len(), lru.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> Vec<Label> {
        names.iter().map(|s| Label::new(*s)).collect()
    }

    #[test]
    fn evicts_least_recently_used_by_label_count() {
        let sets = LabelSets::new(5, Arc::new(Metrics::default()));
        let (a, hit) = sets.cell(&set(&["a", "b"]));
        assert!(!hit);
        sets.cell(&set(&["c", "d"]));
        // touch the first set, so the second is the oldest
        let (a2, _) = sets.cell(&set(&["a", "b"]));
        assert!(Arc::ptr_eq(&a, &a2), "same labels, same cell");
        // 2 + 2 + 3 > 5: the least recently used set goes
        sets.cell(&set(&["e", "f", "g"]));
        assert_eq!(sets.held(), (2, 5));
        let (_, _) = sets.cell(&set(&["a", "b"]));
        assert_eq!(sets.held(), (2, 5), "a/b survived");
        // the evicted set comes back as a new, empty cell
        let (cd, hit) = sets.cell(&set(&["c", "d"]));
        assert!(!hit && !cd.initialized());
        // order matters: another order is another set
        let (ba, _) = sets.cell(&set(&["b", "a"]));
        assert!(!Arc::ptr_eq(&a, &ba));
        assert!(sets.held().1 <= 5);
    }
}
