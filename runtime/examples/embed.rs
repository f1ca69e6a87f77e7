//! An application embedding the runtime: load a bundle once, encode the candidate labels once,
//! then classify from several worker threads sharing the same classifier.
//!
//! ```text
//! cargo run -p zsc --release --example embed -- BUNDLE
//! ```
//! (make one with `cargo run -p zsc-export -- --checkpoint models/all-MiniLM-L6-v2 --out bundles/minilm`).

use std::sync::Arc;

use anyhow::Context;
use zsc::{Classifier, ClassifierOptions};

fn main() -> anyhow::Result<()> {
    let bundle = std::env::args().nth(1).context("usage: embed BUNDLE")?;

    // Load once. Two sessions let two threads run the encoder at the same time; one intra-op
    // thread each keeps them from fighting over the cores.
    let options = ClassifierOptions::default().with_sessions(2).with_intra_threads(1).with_batch_size(16);
    let classifier = Arc::new(Classifier::from_dir(&bundle, options).with_context(|| format!("loading {bundle}"))?);

    // Encode the labels once; every request reuses them.
    let labels = ["banking", "cooking", "travel", "weather", "music"];
    let cache = Arc::new(classifier.encode_labels(&labels)?);

    let requests: Vec<Vec<&'static str>> = vec![
        vec!["how do i transfer money to my savings account", "my card was declined"],
        vec!["what can i make with eggs and spinach", "how long should pasta boil"],
        vec!["book me a flight to lisbon", "will it snow in denver tomorrow"],
        vec!["play something by miles davis"],
    ];
    let workers: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(worker, texts)| {
            let classifier = Arc::clone(&classifier);
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || -> zsc::Result<Vec<String>> {
                let ranked = classifier.classify(&texts, &cache, 2)?;
                Ok(texts
                    .iter()
                    .zip(ranked)
                    .map(|(t, r)| {
                        let best: Vec<String> = r.iter().map(|l| format!("{} ({:.3})", l.label, l.probability)).collect();
                        format!("[worker {worker}] {t} -> {}", best.join(", "))
                    })
                    .collect())
            })
        })
        .collect();
    for w in workers {
        let lines = w.join().map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
        for l in lines {
            println!("{l}");
        }
    }
    Ok(())
}
