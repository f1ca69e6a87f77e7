//! The committed data files keep their promises (scripts/build_data.py builds them, data/README.md
//! describes them): the training mixture has several sources, and every held-out task's labels and
//! texts stay out of it, with dev (probe) and test (reported) texts disjoint.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use zsc_core::data::{parse_samples, Sample};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data")
}

/// Load through the project's own parser, and insist that the builder wrote no duplicates (the
/// loader would drop them silently but for a warning).
fn load(rel: &str) -> Vec<Sample> {
    let path = data_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let (samples, duplicates) = parse_samples(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(duplicates, 0, "{rel}: {duplicates} duplicate samples");
    samples
}

fn train() -> &'static [Sample] {
    static TRAIN: OnceLock<Vec<Sample>> = OnceLock::new();
    TRAIN.get_or_init(|| load("train.json"))
}

/// What counts as the same text: case and runs of whitespace ignored (as in build_data.py).
fn norm(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn labels(samples: &[Sample]) -> BTreeSet<String> {
    samples.iter().flat_map(|s| s.labels.iter().cloned()).collect()
}

struct Task {
    name: String,
    dev: Vec<Sample>,
    test: Vec<Sample>,
}

/// The CLINC150 held-out domains (their files stay where other code expects them) and every
/// `data/heldout/NAME_dev.json` with its `NAME_test.json`.
fn tasks() -> &'static [Task] {
    static TASKS: OnceLock<Vec<Task>> = OnceLock::new();
    TASKS.get_or_init(|| {
        let mut tasks = vec![Task {
            name: "clinc150_unseen".into(),
            dev: load("clinc150_unseen_dev.json"),
            test: load("clinc150_unseen.json"),
        }];
        let mut names: Vec<String> = std::fs::read_dir(data_dir().join("heldout"))
            .expect("data/heldout/")
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix("_dev.json").map(str::to_string))
            .collect();
        names.sort();
        for name in names {
            let dev = load(&format!("heldout/{name}_dev.json"));
            let test_rel = format!("heldout/{name}_test.json");
            assert!(data_dir().join(&test_rel).exists(), "{name}: dev file without {test_rel}");
            tasks.push(Task { name, dev, test: load(&test_rel) });
        }
        tasks
    })
}

#[test]
fn held_out_tasks_are_all_there() {
    let names: Vec<&str> = tasks().iter().map(|t| t.name.as_str()).collect();
    for expected in ["clinc150_unseen", "trec", "wordnet_domains", "fortunes"] {
        assert!(names.contains(&expected), "held-out task {expected} missing; found {names:?}");
    }
    for t in tasks() {
        assert!(t.dev.len() <= 1000, "{}: the dev file is scored at every validation; {} texts", t.name, t.dev.len());
    }
}

#[test]
fn train_mixture_has_five_sources_and_every_sample_names_one() {
    let train = train();
    let missing = train.iter().filter(|s| s.source.is_none()).count();
    assert_eq!(missing, 0, "{missing} samples of train.json have no `source`");
    let sources: BTreeSet<&str> = train.iter().filter_map(|s| s.source.as_deref()).collect();
    assert!(sources.len() >= 5, "train.json has {} sources: {sources:?}", sources.len());
    // TREC is held out whole.
    assert!(!sources.contains("trec"), "trec is a held-out source");
    // The previous default stays as a comparison row, sources named too.
    let old = load("train_clinc_nlupp.json");
    let old_sources: BTreeSet<&str> = old.iter().filter_map(|s| s.source.as_deref()).collect();
    assert_eq!(old.iter().filter(|s| s.source.is_none()).count(), 0);
    assert_eq!(old_sources, BTreeSet::from(["clinc150", "nlupp"]));
}

#[test]
fn held_out_labels_are_never_trained() {
    let trained: HashSet<String> = labels(train()).iter().map(|l| l.to_lowercase()).collect();
    for t in tasks() {
        for l in labels(&t.dev).union(&labels(&t.test)) {
            assert!(!trained.contains(&l.to_lowercase()), "{}: held-out label `{l}` is in train.json", t.name);
        }
    }
}

#[test]
fn held_out_texts_are_never_trained() {
    let trained: HashSet<String> = train().iter().map(|s| norm(&s.text)).collect();
    for t in tasks() {
        for s in t.dev.iter().chain(&t.test) {
            assert!(!trained.contains(&norm(&s.text)), "{}: held-out text in train.json: {:?}", t.name, s.text);
        }
    }
}

#[test]
fn dev_and_test_texts_are_disjoint() {
    for t in tasks() {
        let dev: HashSet<String> = t.dev.iter().map(|s| norm(&s.text)).collect();
        let both: Vec<&str> = t.test.iter().filter(|s| dev.contains(&norm(&s.text))).map(|s| s.text.as_str()).collect();
        assert!(both.is_empty(), "{}: {} texts in both dev and test, e.g. {:?}", t.name, both.len(), both.first());
    }
}

#[test]
fn every_held_out_file_has_five_labels() {
    for t in tasks() {
        for (part, samples) in [("dev", &t.dev), ("test", &t.test)] {
            let n = labels(samples).len();
            assert!(n >= 5, "{} {part}: {n} labels", t.name);
        }
    }
}
