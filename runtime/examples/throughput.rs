//! End-to-end throughput of the runtime: load a bundle, encode the labels once, then classify the
//! same texts a few times and print one JSON line (`texts_per_s` from the fastest run, every run's
//! time, label-encoding time, top-1 label of every text for cross-checks).
//!
//! ```text
//! cargo run -p runtime --release --example throughput -- --model-type bi_encoder --n 2000 --threads 2
//! cargo run -p runtime --release --example throughput -- --bundle bundles/minilm --workload w.json
//! cargo run -p runtime --release --example throughput -- --make-bundles   # only build target/speed-bundles
//! ```
//! `--model-type` uses (and builds on first use) the speed bundle of `benches/speed_bundles.rs`:
//! the real MiniLM, with random untrained heads for poly/colbert. Texts default to the first `--n`
//! of `data/clinc150_test.json` against its 150 labels; `--workload FILE` (`{"texts": [...],
//! "labels": [...]}`) gives them explicitly (what `scripts/compare_speed.py` does).

#[path = "../../benches/speed_bundles.rs"]
mod speed_bundles;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use runtime::{Classifier, ClassifierOptions};
use zsc_core::ModelType;

#[derive(Debug, Parser)]
#[command(about = "Texts per second of the runtime, end to end (tokenise, encode, score)")]
struct Args {
    /// Bundle folder. Either this or --model-type.
    #[arg(long, conflicts_with = "model_type")]
    bundle: Option<PathBuf>,
    /// Use the MiniLM speed bundle of this type (bi_encoder, poly_encoder, colbert).
    #[arg(long)]
    model_type: Option<ModelType>,
    /// JSON `{"texts": [...], "labels": [...]}`; overrides --data/--n.
    #[arg(long)]
    workload: Option<PathBuf>,
    /// CLINC150-style data file (default data/clinc150_test.json).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Number of texts taken from --data (from the start, cycling if the file has fewer).
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Texts per encoder call.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed runs over all texts (after one untimed warm-up run).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Only build the three speed bundles under target/speed-bundles and print their paths.
    #[arg(long)]
    make_bundles: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.make_bundles {
        let mut out = serde_json::Map::new();
        for t in speed_bundles::ALL_TYPES {
            let dir = speed_bundles::ensure_speed_bundle(t)?;
            out.insert(t.as_str().into(), serde_json::Value::String(dir.display().to_string()));
        }
        println!("{}", serde_json::Value::Object(out));
        return Ok(());
    }
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let bundle = match (&args.bundle, args.model_type) {
        (Some(b), _) => b.clone(),
        (None, Some(t)) => speed_bundles::ensure_speed_bundle(t)?,
        (None, None) => bail!("give --bundle DIR or --model-type TYPE"),
    };
    let (texts, labels) = match &args.workload {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            #[derive(serde::Deserialize)]
            struct Workload {
                texts: Vec<String>,
                labels: Vec<String>,
            }
            let w: Workload = serde_json::from_str(&text)
                .with_context(|| format!("{}: expected {{\"texts\": [...], \"labels\": [...]}}", path.display()))?;
            (w.texts, w.labels)
        }
        None => {
            let path = args.data.clone().unwrap_or_else(speed_bundles::clinc_test_path);
            let (all, labels) = speed_bundles::load_clinc(&path)?;
            if all.is_empty() {
                bail!("{}: no texts", path.display());
            }
            (all.iter().cycle().take(args.n).cloned().collect(), labels)
        }
    };
    if texts.is_empty() || labels.is_empty() {
        bail!("the workload needs at least one text and one label");
    }

    let t0 = Instant::now();
    let options = ClassifierOptions::default().with_intra_threads(args.threads).with_batch_size(args.batch_size);
    let clf = Classifier::from_dir(&bundle, options).with_context(|| format!("loading {}", bundle.display()))?;
    let load_s = t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let cache = clf.encode_labels(&labels)?;
    let label_encode_s = t0.elapsed().as_secs_f64();

    // Warm-up: first runs allocate ONNX Runtime's arenas and fault in the weights.
    let mut scores = clf.classify_with(&texts, &cache)?;
    let mut runs_s = Vec::with_capacity(args.repeats);
    for _ in 0..args.repeats {
        let t0 = Instant::now();
        scores = clf.classify_with(&texts, &cache)?;
        runs_s.push(t0.elapsed().as_secs_f64());
    }
    let best_s = runs_s.iter().copied().fold(f64::INFINITY, f64::min);
    let mut sorted = runs_s.clone();
    sorted.sort_by(f64::total_cmp);
    let median_s = sorted[sorted.len() / 2];
    let top1: Vec<usize> = scores.iter().map(|row| zsc_core::metrics::top_k_indices(row, 1)[0]).collect();
    let report = serde_json::json!({
        "system": "rust runtime (zsc)",
        "model_type": clf.model_type().as_str(),
        "bundle": bundle.display().to_string(),
        "n_texts": texts.len(),
        "n_labels": labels.len(),
        "batch_size": args.batch_size,
        "intra_threads": args.threads,
        "rayon_threads": rayon_threads(),
        "load_s": load_s,
        "label_encode_s": label_encode_s,
        "runs_s": runs_s,
        "best_s": best_s,
        "median_s": median_s,
        "texts_per_s": texts.len() as f64 / best_s,
        "texts_per_s_median": texts.len() as f64 / median_s,
        "top1": top1,
    });
    println!("{report}");
    Ok(())
}

/// Threads the tokenizer's batch encoding may use (rayon's global pool, `RAYON_NUM_THREADS`).
fn rayon_threads() -> usize {
    rayon::current_num_threads()
}
