//! `zsc`: zero-shot classification from an ONNX bundle on the command line.
//!
//! ```text
//! zsc classify --model BUNDLE|org/name --label banking --label cooking [--multi-label] "how do i transfer money"
//! zsc classify --model BUNDLE --labels-file labels.yaml --input FILE [--output FILE] [--id-field F] [--adapt] [--resume]
//! zsc eval --model BUNDLE|org/name [--data FILE] [--split test] [--labels-from FILE] [--restrict-to FILE]
//!          [--tune-threshold | --threshold P] [--json]
//! zsc calibrate --model BUNDLE [--data FILE] [--split val] [--json]
//! zsc serve --model BUNDLE|org/name [--host 127.0.0.1] [--port 8080] [...]
//! ```
//!
//! `--model` takes a bundle folder or a Hugging Face Hub id `org/name[@revision]` (fetched through
//! hf-hub into the standard Hugging Face cache; `HF_ENDPOINT`, `HF_HOME`, `HF_TOKEN`,
//! `HF_HUB_OFFLINE` as in Python).

mod corpus;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use zsc::{
    read_labels_file, Classifier, ClassifierOptions, ExecutionProvider, Label, LabelSet, Prediction, ProbabilityMode,
    ViewAggregation,
};
use zsc_core::calibration::{fit_calibration, pairwise_ece, top1_ece};
use zsc_core::data::{load_samples, select_split, unique_labels, Sample};
use zsc_core::eval_protocol::{best_micro_f1_threshold, restrict_to_samples, sample_key, ProtocolReport, SampleKey};
use zsc_core::metrics::{accuracy, f1_at_threshold, EvalReport};
use zsc_core::{Split, SplitRatios};

#[derive(Parser, Debug)]
#[command(name = "zsc", version, about = "Zero-shot text classification with an exported ONNX bundle")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Common {
    /// ONNX Runtime intra-op threads (default: ClassifierOptions::throughput(), docs/speed.md).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    /// ONNX Runtime intra-op spinning: on (idle worker threads busy-wait) or off (default:
    /// ClassifierOptions::throughput()).
    #[arg(long, global = true, value_name = "on|off", value_parser = parse_on_off)]
    spinning: Option<bool>,
    /// Texts per encoder call.
    #[arg(long, global = true, value_name = "N", default_value_t = 32)]
    batch_size: usize,
    /// cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    /// How a label's views (name, description, examples from --labels-file) combine into its
    /// score: prototype, mean or max (docs/labels.md).
    #[arg(long, global = true, value_name = "HOW", default_value = "prototype")]
    views: ViewAggregation,
    /// Label template, `{}` where the label goes (the HF pipeline's hypothesis_template), e.g.
    /// "This text is about {}."; "{}" uses the bare labels [default: the bundle's, if it has one].
    #[arg(long, global = true, value_name = "T")]
    template: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Rank candidate labels for each text.
    Classify(ClassifyArgs),
    /// Accuracy and calibration error of a bundle on a data file (same metrics and JSON as the trainer's eval, plus ECE).
    Eval(EvalArgs),
    /// Fit the probability calibration on the val split of a data file and store it in the bundle's manifest.
    Calibrate(CalibrateArgs),
    /// Serve the bundle over HTTP: /v1/classify, /v1/embed, /health, /ready, /metrics.
    #[cfg(feature = "serve")]
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
struct ClassifyArgs {
    /// Bundle folder written by `export`, or a Hugging Face Hub id `org/name[@revision]`.
    #[arg(long, value_name = "BUNDLE")]
    model: String,
    /// A candidate label (repeat the flag for more).
    #[arg(long = "label", value_name = "L")]
    labels: Vec<String>,
    /// Candidate labels from a file: YAML or JSON (`.yaml`, `.yml`, `.json`), a list of names or
    /// `{name, description, examples}` objects; any other file, one name per line.
    #[arg(long, value_name = "F")]
    labels_file: Option<PathBuf>,
    /// Show the K best labels per text (default 5; 0 = all).
    #[arg(long, value_name = "K")]
    top_k: Option<usize>,
    /// Multi-label: independent per-label probabilities (calibrated sigmoid) instead of a softmax
    /// over the candidate labels.
    #[arg(long)]
    multi_label: bool,
    /// Show every label whose probability is at least P (with --top-k as a cap); implies --multi-label.
    #[arg(long, value_name = "P")]
    threshold: Option<f32>,
    /// One JSON object per text per line.
    #[arg(long)]
    json: bool,
    /// Texts to classify; none (or `-`) reads one text per line from stdin.
    #[arg(value_name = "TEXT", conflicts_with = "input")]
    texts: Vec<String>,
    #[command(flatten)]
    corpus: corpus::CorpusArgs,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// Bundle folder written by `export`, or a Hugging Face Hub id `org/name[@revision]`.
    #[arg(long, value_name = "BUNDLE")]
    model: String,
    /// Data file (default: the one recorded in the bundle's manifest).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// train, val, test or all (default: test of the manifest's data; all for another file).
    #[arg(long)]
    split: Option<String>,
    /// Use this data file's unique labels as the candidate set (e.g. to add distractors).
    #[arg(long, value_name = "FILE")]
    labels_from: Option<PathBuf>,
    /// Descriptions and examples of the candidate labels, by name (a labels file as for
    /// `classify`); labels it does not name keep their name only.
    #[arg(long, value_name = "F")]
    labels_file: Option<PathBuf>,
    /// Keep only samples that also occur in this data file, same text and labels (e.g. `data/nlupp.json`:
    /// the NLU++ part of the training file's split); candidate labels are then those of the kept samples.
    #[arg(long, value_name = "FILE")]
    restrict_to: Option<PathBuf>,
    /// Multi-label F1: tune the decision threshold for the best micro-F1 on the val split of the same
    /// data (same restriction and candidate labels), then report micro/macro F1 at it.
    #[arg(long, conflicts_with = "threshold")]
    tune_threshold: bool,
    /// Multi-label F1 at this probability threshold (a pair is predicted when its multi-label
    /// probability, calibrated if the bundle is, is above P).
    #[arg(long, value_name = "P")]
    threshold: Option<f64>,
    /// Print the report as JSON on the last stdout line.
    #[arg(long)]
    json: bool,
    /// Also write every text's top-1 prediction to this file, one JSON object per line:
    /// `{"text", "gold": [...], "predicted", "score", "correct"}` (paired comparisons of two models:
    /// scripts/paired_bootstrap.py).
    #[arg(long, value_name = "FILE")]
    predictions: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct CalibrateArgs {
    /// Bundle folder (local: its manifest.json is rewritten, atomically).
    #[arg(long, value_name = "BUNDLE")]
    model: PathBuf,
    /// Data file (default: the one recorded in the bundle's manifest).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Split to fit on, drawn with the bundle's split ratios and seed (default val).
    #[arg(long, default_value = "val")]
    split: String,
    /// Use this data file's unique labels as the candidate set (default: those of the split).
    #[arg(long, value_name = "FILE")]
    labels_from: Option<PathBuf>,
    /// Descriptions and examples of the candidate labels, by name, so the calibration fits the
    /// scores of labels with views.
    #[arg(long, value_name = "F")]
    labels_file: Option<PathBuf>,
    /// Print the fitted calibration as JSON on the last stdout line.
    #[arg(long)]
    json: bool,
}

#[cfg(feature = "serve")]
#[derive(Args, Debug)]
struct ServeArgs {
    /// Bundle folder or Hugging Face Hub id `org/name[@revision]`, optionally named `NAME=BUNDLE`;
    /// repeat for several models (requests choose with `"model": NAME`; the first is the default).
    #[arg(long, value_name = "[NAME=]BUNDLE", required = true)]
    model: Vec<String>,
    /// Require `Authorization: Bearer KEY` on every route but /health and /ready (repeatable;
    /// prefer ZSC_API_KEYS, comma-separated, or --api-key-file: the command line is visible to
    /// other users of the machine).
    #[arg(long, value_name = "KEY", env = "ZSC_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    api_key: Vec<String>,
    /// Read API keys from a file, one per line (blank lines and `#` comments skipped).
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// /v1/embeddings may cut vectors to `dimensions` (Matryoshka models only).
    #[arg(long)]
    truncatable_embeddings: bool,
    /// Address to listen on (loopback by default; 0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Most texts per encoder batch, gathered across concurrent requests.
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Milliseconds the oldest queued request waits for a batch to fill.
    #[arg(long, default_value_t = 2)]
    max_wait_ms: u64,
    /// Inference threads, each with its own ONNX Runtime session [default: the number of CPU
    /// cores], each session with --threads intra-op threads [default here: cores / workers].
    /// Single-threaded sessions side by side beat one session on all cores when the HTTP threads
    /// (and a load generator) share the machine: no thread waits for a preempted partner.
    #[arg(long)]
    workers: Option<usize>,
    /// Most texts waiting in the queue; beyond it requests get 503 with Retry-After.
    #[arg(long, default_value_t = 2048)]
    max_queue: usize,
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Most texts per request.
    #[arg(long, default_value_t = 256)]
    max_texts: usize,
    /// Most labels per request.
    #[arg(long, default_value_t = 1000)]
    max_labels: usize,
    #[arg(long, default_value_t = 10_000)]
    max_text_chars: usize,
    #[arg(long, default_value_t = 1000)]
    max_label_chars: usize,
    /// Labels (over all label sets) the LRU cache of encoded label sets holds.
    #[arg(long, default_value_t = 50_000)]
    label_cache_labels: usize,
    #[arg(long, default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// Connections that send no complete request head within this time are closed (idle keep-alive too).
    #[arg(long, default_value_t = 10_000)]
    header_timeout_ms: u64,
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Let ONNX Runtime's threads busy-wait between operators and after a batch (off by default
    /// here: between batches the HTTP threads need those cores).
    #[arg(long)]
    spinning: bool,
}

fn main() {
    zsc_core::logging::init("warn,ort=warn");
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {}", zsc_core::error::error_chain(e.as_ref()));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Classify(args) => classify(&cli.common, args),
        Command::Eval(args) => eval(&cli.common, args),
        Command::Calibrate(args) => calibrate(&cli.common, args),
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve(&cli.common, args),
    }
}

fn options(common: &Common) -> Result<ClassifierOptions> {
    let device: ExecutionProvider = common.device.parse().map_err(anyhow::Error::msg).context("--device")?;
    if common.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    // classify and eval run batches of texts: the throughput settings
    let mut o = ClassifierOptions::throughput().with_execution_provider(device).with_batch_size(common.batch_size);
    if let Some(n) = common.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        o = o.with_intra_threads(n);
    }
    if let Some(spinning) = common.spinning {
        o = o.with_intra_op_spinning(spinning);
    }
    if let Some(t) = &common.template {
        o = o.with_label_template(zsc::LabelTemplate::Custom(t.clone()));
    }
    Ok(o.with_view_aggregation(common.views))
}

/// The candidate labels `names` with the descriptions and examples `labels_file` gives by name.
fn with_views(names: &[String], labels_file: Option<&Path>) -> Result<Vec<Label>> {
    let Some(path) = labels_file else {
        return Ok(names.iter().map(Label::from).collect());
    };
    let mut by_name: HashMap<String, Label> = read_labels_file(path)?.into_iter().map(|l| (l.name.clone(), l)).collect();
    let labels: Vec<Label> = names.iter().map(|n| by_name.remove(n).unwrap_or_else(|| Label::from(n))).collect();
    if let Some(extra) = by_name.keys().next() {
        bail!("{} names `{extra}`, which is not a candidate label here", path.display());
    }
    Ok(labels)
}

fn parse_on_off(s: &str) -> std::result::Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected on or off, got `{other}`")),
    }
}

/// A bundle folder, or a Hub id fetched into the Hugging Face cache (feature `hub`).
fn load(model: &str, options: ClassifierOptions) -> Result<Classifier> {
    #[cfg(feature = "hub")]
    let clf = {
        use std::io::IsTerminal;
        let hub = zsc_core::hub::HubOptions::from_env().with_progress(std::io::stderr().is_terminal());
        Classifier::from_pretrained_with(model, options, &hub)
    };
    #[cfg(not(feature = "hub"))]
    let clf = Classifier::from_dir(model, options);
    clf.with_context(|| format!("loading bundle {model}"))
}

/// One `--json` line of `zsc classify` (fields in this order).
#[derive(serde::Serialize)]
struct ClassifyLine<'a> {
    text: &'a str,
    labels: &'a [Prediction],
    multi_label: bool,
    /// False: the bundle has no calibration; probabilities are the raw sigmoid(score).
    calibrated: bool,
}

fn classify(common: &Common, args: &ClassifyArgs) -> Result<()> {
    let mut labels: Vec<Label> = args.labels.iter().map(Label::from).collect();
    if let Some(f) = &args.labels_file {
        labels.extend(read_labels_file(f)?);
    }
    if labels.is_empty() {
        bail!("no candidate labels: give --label L (repeatable) or --labels-file F");
    }
    if let Some(p) = args.threshold {
        if !(0.0..=1.0).contains(&p) {
            bail!("--threshold must be a probability between 0 and 1, got {p}");
        }
    }
    let k = match (args.top_k, args.threshold) {
        (Some(0), _) | (None, Some(_)) => labels.len(),
        (Some(k), _) => k,
        (None, None) => 5,
    };
    let multi_label = args.multi_label || args.threshold.is_some();
    let clf = load(&args.model, options(common)?)?;
    let cache = clf.encode_labels(&labels).context("encoding the labels")?;
    if args.corpus.input.is_some() {
        let ranking = corpus::Ranking { top_k: k, multi_label, threshold: args.threshold };
        return corpus::classify_input(&clf, &cache, &args.corpus, &ranking);
    }
    let texts = read_texts(&args.texts)?;
    let (cache, scores) = score_texts(&clf, cache, &texts, args.corpus.adapt_options())?;
    let mode = if multi_label { ProbabilityMode::MultiLabel } else { ProbabilityMode::SingleLabel };
    let probability = clf.probability(mode);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !args.json {
        writeln!(out, "# {}", probability.describe(cache.len()))?;
    }
    for (text, row) in texts.iter().zip(&scores) {
        let mut ranked: Vec<Prediction> = probability.rank(row, cache.labels(), k);
        if let Some(p) = args.threshold {
            ranked.retain(|l| l.probability >= p);
        }
        if args.json {
            let line = serde_json::to_string(&ClassifyLine {
                text,
                labels: &ranked,
                multi_label,
                calibrated: probability.is_calibrated(),
            })?;
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{text}")?;
            if ranked.is_empty() {
                writeln!(out, "  (no label reaches the threshold)")?;
            }
            for l in &ranked {
                writeln!(out, "  {:>9.4}  p={:.4}  {}", l.score, l.probability, l.label)?;
            }
        }
    }
    Ok(())
}

/// TEXT arguments, or one text per line of stdin when there are none (or `-`).
fn read_texts(texts: &[String]) -> Result<Vec<String>> {
    if !texts.is_empty() && texts != ["-"] {
        return Ok(texts.to_vec());
    }
    let lines = std::io::stdin().lock().lines().collect::<std::io::Result<Vec<_>>>().context("reading texts from stdin")?;
    Ok(lines.into_iter().filter(|l| !l.trim().is_empty()).collect())
}

/// The texts' scores against the labels, the labels first adapted to the texts as a pool when asked.
fn score_texts(
    clf: &Classifier,
    labels: LabelSet,
    texts: &[String],
    adapt: Option<zsc::AdaptOptions>,
) -> Result<(LabelSet, Vec<Vec<f32>>)> {
    let Some(options) = adapt else {
        let scores = clf.scores(texts, &labels).context("classifying")?;
        return Ok((labels, scores));
    };
    let pool = clf.pool_vectors(texts).context("encoding the pool")?;
    let adapted = clf.adapt_labels(&pool, &labels, &options).context("adapting the labels")?;
    if let Some(why) = &adapted.report.skipped {
        eprintln!("warning: {why}");
    }
    let scores = clf.pool_scores(&pool, &adapted.labels).context("classifying")?;
    Ok((adapted.labels, scores))
}

fn eval(common: &Common, args: &EvalArgs) -> Result<()> {
    let clf = load(&args.model, options(common)?)?;
    let manifest = clf.manifest();
    let recorded = manifest.data.clone();
    let data = match (&args.data, &recorded) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => bail!("the bundle {} records no training data (an untuned base model?): pass --data FILE", args.model),
    };
    if !data.is_file() {
        if args.data.is_none() {
            bail!(
                "the data file {} recorded in {} does not exist here (relative paths are resolved against the \
                 current directory {}): run from the repository root or pass --data FILE",
                data.display(),
                clf.dir().join("manifest.json").display(),
                std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default()
            );
        }
        bail!("data file {} does not exist", data.display());
    }
    let same_as_trained = recorded.as_ref().is_some_and(|r| same_file(r, &data));
    let split: Split = match &args.split {
        Some(s) => s.parse().map_err(|e: zsc_core::CoreError| anyhow::anyhow!("--split: {e}"))?,
        None if same_as_trained => Split::Test,
        None => Split::All,
    };
    let ratios = manifest.split.unwrap_or_else(|| {
        if split != Split::All {
            tracing::warn!("the bundle records no split; using the default ratios {:?} and seed 42", SplitRatios::default());
        }
        SplitRatios::default()
    });
    let seed = manifest.seed.unwrap_or(42);
    let all_samples = load_samples(&data).with_context(|| format!("loading {}", data.display()))?;
    let restrict: Option<HashSet<SampleKey>> = match &args.restrict_to {
        Some(f) => Some(
            load_samples(f).with_context(|| format!("loading --restrict-to {}", f.display()))?.iter().map(sample_key).collect(),
        ),
        None => None,
    };
    let pick = |split: Split| -> Vec<Sample> {
        let chosen = select_split(&all_samples, ratios, seed, split);
        match &restrict {
            Some(keep) => restrict_to_samples(chosen, keep),
            None => chosen,
        }
    };
    let samples = pick(split);
    if samples.is_empty() {
        match &args.restrict_to {
            Some(f) => bail!("no sample of split `{split}` of {} occurs in {}", data.display(), f.display()),
            None => bail!("split `{split}` of {} is empty", data.display()),
        }
    }
    let labels = match &args.labels_from {
        Some(f) => unique_labels(&load_samples(f).with_context(|| format!("loading labels from {}", f.display()))?),
        None => unique_labels(&samples),
    };
    let gold = zsc_core::data::gold_indices(&samples, &labels);
    let uncovered = gold.iter().filter(|g| g.is_empty()).count();
    if uncovered > 0 {
        tracing::warn!("{uncovered} text(s) have no gold label among the candidate labels; they count as misses");
    }
    eprintln!(
        "evaluating {} text(s) of {} (split {split}{}) against {} label(s)",
        samples.len(),
        data.display(),
        args.restrict_to.as_ref().map(|f| format!(", restricted to {}", f.display())).unwrap_or_default(),
        labels.len()
    );
    let cache = clf.encode_labels(&with_views(&labels, args.labels_file.as_deref())?).context("encoding the labels")?;
    let scores = score_all(&clf, &cache, &samples)?;
    let (top1, at_k) = accuracy(&scores, &gold);
    if let Some(path) = &args.predictions {
        write_predictions(path, &samples, &labels, &scores, &gold).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut report = ProtocolReport::new(EvalReport {
        split: split.to_string(),
        n_texts: samples.len(),
        n_labels: labels.len(),
        top1_accuracy: top1,
        accuracy_at_k: at_k,
    });
    report.restricted_to = args.restrict_to.as_ref().map(|f| f.display().to_string());
    report.labels_from = args.labels_from.as_ref().map(|f| f.display().to_string());
    let single = clf.probability(ProbabilityMode::SingleLabel);
    let multi = clf.probability(ProbabilityMode::MultiLabel);
    report.calibrated = Some(single.is_calibrated());
    report.ece = Some(top1_ece(&scores, &gold, |row| single.of_row(row)));
    report.multi_label_ece = Some(pairwise_ece(&scores, &gold, |s| multi.of_row(&[s])[0]));

    let threshold_logit: Option<f32> = if args.tune_threshold {
        if split == Split::All || split == Split::Val {
            bail!("--tune-threshold tunes on the val split, so evaluate --split test (or train), not `{split}`");
        }
        let val = pick(Split::Val);
        let val_gold = zsc_core::data::gold_indices(&val, &labels);
        eprintln!("tuning the threshold on {} val text(s)", val.len());
        let val_scores = score_all(&clf, &cache, &val)?;
        let (t, f1) = best_micro_f1_threshold(&val_scores, &val_gold).with_context(|| {
            format!("cannot tune a threshold: the val split of {} has no gold pair among the candidate labels", data.display())
        })?;
        report.threshold_source = Some("val".into());
        report.val_micro_f1 = Some(f1);
        Some(t)
    } else if let Some(p) = args.threshold {
        if !(p > 0.0 && p < 1.0) {
            bail!("--threshold must be a probability strictly between 0 and 1, got {p}");
        }
        report.threshold_source = Some("given".into());
        // the score at which the multi-label probability (calibrated or not) equals P
        let logit = (p / (1.0 - p)).ln();
        Some(match clf.calibration() {
            Some(c) => (c.multi_label_temperature * (logit - c.multi_label_bias)) as f32,
            None => logit as f32,
        })
    } else {
        None
    };
    if let Some(t) = threshold_logit {
        // F1 on the logits: same decisions as on sigmoid probabilities, without f32 saturation
        let (micro, macro_) = f1_at_threshold(&scores, &gold, labels.len(), t);
        report.threshold_logit = Some(t as f64);
        report.threshold = Some(match clf.calibration() {
            Some(c) => zsc_core::calibration::sigmoid_f64(t as f64 / c.multi_label_temperature + c.multi_label_bias),
            None => zsc_core::calibration::sigmoid_f64(t as f64),
        });
        report.micro_f1 = Some(micro);
        report.macro_f1 = Some(macro_);
    }

    let r = &report.report;
    println!("split         {}", r.split);
    println!("texts         {}", r.n_texts);
    println!("labels        {}", r.n_labels);
    println!("top1 accuracy {:.4}", r.top1_accuracy);
    println!("accuracy@k    {:.4}", r.accuracy_at_k);
    let how = if report.calibrated == Some(true) { "calibrated" } else { "UNCALIBRATED sigmoid(score): run `zsc calibrate`" };
    if let (Some(e), Some(m)) = (report.ece, report.multi_label_ece) {
        println!("ECE top-1     {e:.4} ({how})");
        println!("ECE pairs     {m:.4} (multi-label probabilities)");
    }
    if let (Some(t), Some(tl), Some(micro), Some(macro_)) =
        (report.threshold, report.threshold_logit, report.micro_f1, report.macro_f1)
    {
        println!("threshold     p={t:.6} (score {tl:.4}, {})", report.threshold_source.as_deref().unwrap_or(""));
        if let Some(v) = report.val_micro_f1 {
            println!("val micro-F1  {v:.4}");
        }
        println!("micro-F1      {micro:.4}");
        println!("macro-F1      {macro_:.4}");
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

fn calibrate(common: &Common, args: &CalibrateArgs) -> Result<()> {
    if !args.model.join("manifest.json").is_file() {
        bail!(
            "{} is not a local bundle folder: `zsc calibrate` writes into the bundle's manifest.json \
             (for a Hub model, copy its snapshot folder first)",
            args.model.display()
        );
    }
    let model = args.model.to_string_lossy();
    let clf = load(&model, options(common)?)?;
    let manifest = clf.manifest();
    let data = match (&args.data, &manifest.data) {
        (Some(d), _) | (None, Some(d)) => d.clone(),
        (None, None) => bail!("the bundle {} records no training data: pass --data FILE", args.model.display()),
    };
    if !data.is_file() {
        bail!(
            "data file {} does not exist (relative paths resolve against the current directory; run from the repository root or pass --data FILE)",
            data.display()
        );
    }
    let split: Split = args.split.parse().map_err(|e: zsc_core::CoreError| anyhow::anyhow!("--split: {e}"))?;
    let ratios = manifest.split.unwrap_or_default();
    let seed = manifest.seed.unwrap_or(42);
    let all = load_samples(&data).with_context(|| format!("loading {}", data.display()))?;
    let samples = select_split(&all, ratios, seed, split);
    if samples.is_empty() {
        bail!("split `{split}` of {} is empty", data.display());
    }
    let labels = match &args.labels_from {
        Some(f) => unique_labels(&load_samples(f).with_context(|| format!("loading labels from {}", f.display()))?),
        None => unique_labels(&samples),
    };
    let gold = zsc_core::data::gold_indices(&samples, &labels);
    eprintln!(
        "calibrating on {} text(s) of {} (split {split}, ratios {}/{}/{}, seed {seed}) against {} label(s)",
        samples.len(),
        data.display(),
        ratios.train,
        ratios.val,
        ratios.test,
        labels.len()
    );
    let cache = clf.encode_labels(&with_views(&labels, args.labels_file.as_deref())?).context("encoding the labels")?;
    let scores = score_all(&clf, &cache, &samples)?;
    let fit = fit_calibration(&scores, &gold).context("fitting the calibration")?;
    let mut c = fit.calibration;
    c.data = Some(data.display().to_string());
    c.split = Some(split.to_string());
    // rewrite manifest.json as JSON, not through BundleManifest, so fields this version does not
    // know survive; atomically (temp file, fsync, rename)
    let path = args.model.join("manifest.json");
    let mut value: serde_json::Value =
        zsc_core::manifest::read_json(&path).with_context(|| format!("reading {}", path.display()))?;
    let obj = value.as_object_mut().with_context(|| format!("{} is not a JSON object", path.display()))?;
    obj.insert("calibration".into(), serde_json::to_value(&c)?);
    zsc_core::manifest::write_json_atomic(&path, &value).with_context(|| format!("writing {}", path.display()))?;

    println!("texts         {} ({} with a gold label among the candidates)", c.n_texts, fit.n_used);
    println!("labels        {}", c.n_labels);
    println!("temperature   {:.6}  (single-label: softmax(score / T))", c.temperature);
    println!("multi-label   T {:.6}, bias {:+.6}  (sigmoid(score / T + b))", c.multi_label_temperature, c.multi_label_bias);
    println!("NLL           {:.4} -> {:.4}", fit.nll_before, fit.nll_after);
    if let (Some(before), Some(after), Some(ml)) = (c.ece_before, c.ece, c.multi_label_ece) {
        println!("ECE top-1     {before:.4} (sigmoid(score)) -> {after:.4} (calibrated softmax)");
        println!("ECE pairs     {ml:.4} (calibrated multi-label sigmoid)");
    }
    println!("wrote         {}", path.display());
    if args.json {
        println!("{}", serde_json::to_string(&c)?);
    }
    Ok(())
}

#[cfg(feature = "serve")]
fn serve(common: &Common, args: &ServeArgs) -> Result<()> {
    use std::sync::Arc;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let workers = args.workers.unwrap_or(cores);
    let o = serve_options(args, workers)?;
    // every model has `workers` sessions: share the cores among all of them
    let sessions = workers * args.model.len();
    let mut clf_options = options(common)?.with_sessions(workers).with_intra_op_spinning(args.spinning);
    if common.threads.is_none() {
        clf_options = clf_options.with_intra_threads((cores / sessions.max(1)).max(1));
    }
    let threads = clf_options.intra_threads.unwrap_or(1);
    let mut models = Vec::with_capacity(args.model.len());
    let mut described = Vec::with_capacity(args.model.len());
    for spec in &args.model {
        let (name, bundle) = model_name(spec);
        let clf = load(bundle, clf_options.clone())?;
        let calibrated = if clf.calibration().is_some() { "calibrated" } else { "uncalibrated probabilities" };
        described.push(format!("{name} ({}, {calibrated})", clf.model_type()));
        models.push((name.to_string(), Arc::new(clf)));
    }
    let secured = if o.api_keys.is_empty() { "no API key" } else { "API keys required" };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async {
        let server = zsc::serve::Server::bind_models(models, o).await?;
        let addr = server.local_addr().context("reading the bound address")?;
        // the first stdout line, for scripts (and tests) that start the server on port 0
        println!("listening on http://{addr}");
        std::io::stdout().flush()?;
        eprintln!(
            "zsc serve: {} on http://{addr}, {workers} worker(s) x {threads} thread(s) per model, {secured}; \
             Ctrl-C or SIGTERM drains in-flight requests and stops",
            described.join(", ")
        );
        server.run(zsc::serve::shutdown_signal()).await;
        eprintln!("zsc serve: stopped");
        anyhow::Ok(())
    })
}

/// The service settings of `zsc serve`'s flags.
#[cfg(feature = "serve")]
fn serve_options(args: &ServeArgs, workers: usize) -> Result<zsc::serve::ServeOptions> {
    use std::time::Duration;
    let mut o = zsc::serve::ServeOptions::default();
    o.host = args.host;
    o.port = args.port;
    o.max_batch = args.max_batch;
    o.max_wait = Duration::from_millis(args.max_wait_ms);
    o.workers = workers;
    o.max_queue = args.max_queue;
    o.max_body_bytes = args.max_body_bytes;
    o.max_texts = args.max_texts;
    o.max_labels = args.max_labels;
    o.max_text_chars = args.max_text_chars;
    o.max_label_chars = args.max_label_chars;
    o.label_cache_labels = args.label_cache_labels;
    o.request_timeout = Duration::from_millis(args.request_timeout_ms);
    o.header_read_timeout = Duration::from_millis(args.header_timeout_ms);
    o.max_connections = args.max_connections;
    o.api_keys = api_keys(args)?;
    o.truncatable_embeddings = args.truncatable_embeddings;
    o.validate().context("zsc serve")?;
    Ok(o)
}

/// `NAME=BUNDLE` as (NAME, BUNDLE); a bare bundle is named by itself.
#[cfg(feature = "serve")]
fn model_name(spec: &str) -> (&str, &str) {
    match spec.split_once('=') {
        Some((name, bundle)) if !name.is_empty() && !name.contains(['/', '\\']) => (name, bundle),
        _ => (spec, spec),
    }
}

/// The keys of --api-key / ZSC_API_KEYS and --api-key-file.
#[cfg(feature = "serve")]
fn api_keys(args: &ServeArgs) -> Result<zsc::serve::ApiKeys> {
    if args.api_key.iter().any(|k| k.trim().is_empty()) {
        // `ZSC_API_KEYS=,` or `--api-key ""` must not start an open server
        bail!("an API key given by --api-key or ZSC_API_KEYS is blank");
    }
    let mut keys = args.api_key.clone();
    if let Some(file) = &args.api_key_file {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading API keys from {}", file.display()))?;
        let from_file: Vec<String> =
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
        if from_file.is_empty() {
            bail!("{} holds no API key", file.display());
        }
        keys.extend(from_file);
    }
    Ok(zsc::serve::ApiKeys::new(keys))
}

/// One JSON line per text: its gold labels, the top-1 label (as `accuracy` ranks), its score, and
/// whether it is a gold label.
fn write_predictions(path: &Path, samples: &[Sample], labels: &[String], scores: &[Vec<f32>], gold: &[Vec<usize>]) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for ((sample, row), g) in samples.iter().zip(scores).zip(gold) {
        let top = zsc_core::metrics::top_k_indices(row, 1);
        let best = top.first().copied();
        let line = serde_json::json!({
            "text": sample.text,
            "gold": sample.labels,
            "predicted": best.map(|i| labels[i].as_str()),
            "score": best.map(|i| row[i]),
            "correct": best.is_some_and(|i| g.contains(&i)),
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Scores of every sample's text against the cached labels, with a progress bar.
fn score_all(clf: &Classifier, cache: &LabelSet, samples: &[Sample]) -> Result<Vec<Vec<f32>>> {
    let texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
    let bar = indicatif::ProgressBar::new(texts.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} texts ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut scores = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(256) {
        scores.extend(clf.scores(chunk, cache).context("classifying")?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(scores)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
