//! End-to-end throughput of the runtime: load a bundle, encode the labels once, then classify the
//! same texts a few times and print one JSON line (`texts_per_s` from the fastest run, every run's
//! time, label-encoding time, top-1 label of every text for cross-checks).
//!
//! ```text
//! cargo run -p zsc --release --example throughput -- --model-type bi_encoder --n 2000 --threads 2
//! cargo run -p zsc --release --example throughput -- --model-type bi_encoder --quantize int8 --latency-calls 300
//! cargo run -p zsc --release --example throughput -- --bundle bundles/minilm --workload w.json
//! cargo run -p zsc --release --example throughput -- --make-bundles   # only build target/speed-bundles (f32 and int8)
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
use zsc::{Classifier, ClassifierOptions};
use zsc_core::{ModelType, Quantization};

#[derive(Debug, Parser)]
#[command(about = "Texts per second of the runtime, end to end (tokenise, encode, score)")]
struct Args {
    /// Bundle folder. Either this or --model-type.
    #[arg(long, conflicts_with = "model_type")]
    bundle: Option<PathBuf>,
    /// Use the MiniLM speed bundle of this type (bi_encoder, poly_encoder, colbert).
    #[arg(long)]
    model_type: Option<ModelType>,
    /// With --model-type: the f32 (none) or int8 speed bundle.
    #[arg(long, default_value_t = Quantization::None)]
    quantize: Quantization,
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
    /// ONNX Runtime intra-op spinning (on | off; default: ONNX Runtime's, on).
    #[arg(long, value_parser = parse_on_off)]
    spinning: Option<bool>,
    /// Also time this many single-text calls (one text against all labels, texts taken in turn)
    /// and report their median and 90th percentile (latency of a service answering one request).
    #[arg(long, default_value_t = 0)]
    latency_calls: usize,
    /// Pause between the latency calls, in milliseconds (requests that arrive apart find ONNX
    /// Runtime's threads asleep, back-to-back ones may find them still spinning).
    #[arg(long, default_value_t = 0.0)]
    latency_gap_ms: f64,
    /// Timed runs over all texts (after one untimed warm-up run).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Only build the speed bundles (three architectures, f32 and int8) under target/speed-bundles
    /// and print their paths.
    #[arg(long)]
    make_bundles: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.make_bundles {
        let mut out = serde_json::Map::new();
        for t in speed_bundles::ALL_TYPES {
            for q in [Quantization::None, Quantization::Int8] {
                let dir = speed_bundles::ensure_speed_bundle_quantized(t, q)?;
                out.insert(speed_bundles::speed_bundle_name(t, q), serde_json::Value::String(dir.display().to_string()));
            }
        }
        println!("{}", serde_json::Value::Object(out));
        return Ok(());
    }
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let bundle = match (&args.bundle, args.model_type) {
        (Some(b), _) => b.clone(),
        (None, Some(t)) => speed_bundles::ensure_speed_bundle_quantized(t, args.quantize)?,
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
    let mut options = ClassifierOptions::default().with_intra_threads(args.threads).with_batch_size(args.batch_size);
    if let Some(spinning) = args.spinning {
        options = options.with_intra_op_spinning(spinning);
    }
    let clf = Classifier::from_dir(&bundle, options).with_context(|| format!("loading {}", bundle.display()))?;
    let load_s = t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let cache = clf.encode_labels(&labels)?;
    let label_encode_s = t0.elapsed().as_secs_f64();

    // Warm-up: first runs allocate ONNX Runtime's arenas and fault in the weights.
    let mut scores = clf.scores(&texts, &cache)?;
    let mut runs_s = Vec::with_capacity(args.repeats);
    for _ in 0..args.repeats {
        let t0 = Instant::now();
        scores = clf.scores(&texts, &cache)?;
        runs_s.push(t0.elapsed().as_secs_f64());
    }
    let best_s = runs_s.iter().copied().fold(f64::INFINITY, f64::min);
    let mut sorted = runs_s.clone();
    sorted.sort_by(f64::total_cmp);
    let median_s = sorted[sorted.len() / 2];
    let top1: Vec<usize> = scores.iter().map(|row| zsc_core::metrics::top_k_indices(row, 1)[0]).collect();

    // One text per call, as a service sees requests; warm-up calls first. CPU time is the whole
    // process's (all threads, spinning included) over the timed calls.
    let mut latency_ms = Vec::with_capacity(args.latency_calls);
    let warmup = args.latency_calls.min(20);
    let mut cpu_start = None;
    for i in 0..args.latency_calls + warmup {
        if args.latency_gap_ms > 0.0 {
            std::thread::sleep(std::time::Duration::from_secs_f64(args.latency_gap_ms / 1e3));
        }
        if i == warmup {
            cpu_start = process_cpu_seconds();
        }
        let text = &texts[i % texts.len()];
        let t0 = Instant::now();
        clf.scores(&[text], &cache)?;
        if i >= warmup {
            latency_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let cpu_ms_per_call = match (cpu_start, process_cpu_seconds()) {
        (Some(a), Some(b)) if !latency_ms.is_empty() => Some((b - a) * 1e3 / latency_ms.len() as f64),
        _ => None,
    };
    latency_ms.sort_by(f64::total_cmp);
    let percentile =
        |p: f64| latency_ms.get(((latency_ms.len() as f64 * p) as usize).min(latency_ms.len().saturating_sub(1))).copied();
    let report = serde_json::json!({
        "system": "rust runtime (zsc)",
        "model_type": clf.model_type().as_str(),
        "bundle": bundle.display().to_string(),
        "n_texts": texts.len(),
        "n_labels": labels.len(),
        "batch_size": args.batch_size,
        "intra_threads": args.threads,
        "intra_op_spinning": args.spinning,
        "quantization": clf.manifest().quantization.as_str(),
        "rayon_threads": rayon_threads(),
        "load_s": load_s,
        "label_encode_s": label_encode_s,
        "runs_s": runs_s,
        "best_s": best_s,
        "median_s": median_s,
        "texts_per_s": texts.len() as f64 / best_s,
        "texts_per_s_median": texts.len() as f64 / median_s,
        "latency_calls": latency_ms.len(),
        "latency_ms_median": percentile(0.5),
        "latency_ms_p90": percentile(0.9),
        "latency_gap_ms": args.latency_gap_ms,
        "latency_cpu_ms_per_call": cpu_ms_per_call,
        "top1": top1,
    });
    println!("{report}");
    Ok(())
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`; `None` elsewhere).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        other => Err(format!("expected on or off, got `{other}`")),
    }
}

/// Threads the tokenizer's batch encoding may use (rayon's global pool, `RAYON_NUM_THREADS`).
fn rayon_threads() -> usize {
    rayon::current_num_threads()
}
