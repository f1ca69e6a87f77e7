//! Property test of the public API on arbitrary texts, labels and batch sizes: never a panic,
//! every score finite, one row per text and one score per label; empty inputs are typed errors.

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;
use zsc::{Classifier, ClassifierOptions, Error};

/// `[model type][batch size - 1]`: every model at batch sizes 1..=4, loaded once.
fn classifiers() -> &'static Vec<Vec<Classifier>> {
    static C: OnceLock<Vec<Vec<Classifier>>> = OnceLock::new();
    C.get_or_init(|| {
        let b = common::bundles();
        [&b.bi, &b.poly, &b.colbert]
            .into_iter()
            .map(|d| {
                (1..=4)
                    .map(|bs| {
                        let o = ClassifierOptions::default().with_intra_threads(1).with_batch_size(bs);
                        Classifier::from_dir(d, o).unwrap()
                    })
                    .collect()
            })
            .collect()
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z ]{0,40}", "\\PC{0,30}", any::<String>().prop_map(|s| s.chars().take(60).collect()),]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn scores_are_finite(
        texts in proptest::collection::vec(text(), 0..6),
        labels in proptest::collection::vec(text(), 0..5),
        batch_size in 1usize..5,
        which in 0usize..3,
    ) {
        let clf = &classifiers()[which][batch_size - 1];
        match clf.scores(&texts, &labels) {
            Ok(scores) => {
                prop_assert!(!labels.is_empty());
                prop_assert_eq!(scores.len(), texts.len());
                for row in &scores {
                    prop_assert_eq!(row.len(), labels.len());
                    prop_assert!(row.iter().all(|s| s.is_finite()));
                }
            }
            Err(Error::NoLabels) => prop_assert!(labels.is_empty()),
            Err(Error::EmptyLabel { index }) => prop_assert!(labels[index].trim().is_empty()),
            Err(Error::EmptyText { index }) => prop_assert!(texts[index].trim().is_empty()),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
