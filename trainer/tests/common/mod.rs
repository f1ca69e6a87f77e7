//! Shared set-up of the training tests: a tiny random BERT and tiny topic data in a temp folder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use zsc_core::ModelType;
use zsc_testkit::fixtures::{write_tiny_bert, TinyBert};
use zsc_trainer::config::TrainConfig;

const TOPICS: [(&str, [&str; 5]); 6] = [
    ("weather", ["rain", "sunny", "snow", "forecast", "storm"]),
    ("music", ["song", "guitar", "concert", "album", "piano"]),
    ("banking", ["account", "transfer", "loan", "deposit", "balance"]),
    ("travel", ["flight", "hotel", "airport", "passport", "luggage"]),
    ("cooking", ["recipe", "oven", "pasta", "soup", "bake"]),
    ("sports", ["football", "tennis", "goal", "match", "score"]),
];
const FRAMES: [&str; 3] = ["tell me about the {}", "i need help with my {} now", "what about {} today"];

pub fn write_data(path: &Path) {
    let mut samples = Vec::new();
    for (label, words) in TOPICS {
        for w in words {
            for f in FRAMES {
                samples.push(serde_json::json!({"text": f.replace("{}", w), "labels": [label]}));
            }
        }
    }
    // a few multi-label samples
    samples.push(serde_json::json!({"text": "book a flight and a hotel with my account", "labels": ["travel", "banking"]}));
    samples.push(serde_json::json!({"text": "songs to play while i bake", "labels": ["music", "cooking"]}));
    std::fs::write(path, serde_json::to_string(&samples).unwrap()).unwrap();
}

/// A held-out task at `root/probe.json`: five texts with labels the tiny training data never has.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn write_unseen_probe(root: &Path) -> PathBuf {
    let p = root.join("probe.json");
    let samples = serde_json::json!([
        {"text": "bring an umbrella, rain and storm later", "labels": ["umbrella"]},
        {"text": "play the guitar song again", "labels": ["replay"]},
        {"text": "move money to my deposit account", "labels": ["wire"]},
        {"text": "the oven is hot, bake the pasta", "labels": ["kitchen"]},
        {"text": "who scored the goal in the match", "labels": ["results"]},
    ]);
    std::fs::write(&p, samples.to_string()).unwrap();
    p
}

pub struct Setup {
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub cfg: TrainConfig,
}

pub fn setup(model_type: ModelType, run_name: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write_tiny_bert(&root.join("tiny-bert"), TinyBert::default()).unwrap();
    write_data(&root.join("data.json"));
    let cfg = TrainConfig {
        model_type,
        base_model: root.join("tiny-bert").to_string_lossy().into(),
        data: root.join("data.json"),
        output_dir: root.join("runs"),
        run_name: run_name.into(),
        device: "cpu".into(),
        max_length: 16,
        batch_size: 8,
        learning_rate: 2e-3,
        head_learning_rate: Some(5e-3),
        warmup_ratio: 0.1,
        max_steps: 20,
        val_every: 5,
        val_batches: 2,
        n_code_vectors: 4,
        colbert_dim: 16,
        seed: 7,
        ..TrainConfig::default()
    };
    Setup { _dir: dir, root, cfg }
}

pub fn mean(v: &[(usize, f64)]) -> f64 {
    v.iter().map(|x| x.1).sum::<f64>() / v.len() as f64
}
