//! `trainer`: train and evaluate zero-shot classifiers (libtorch).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use zsc_core::{data, ModelType, Split};
use zsc_trainer::config::TrainConfig;
use zsc_trainer::{parse_device, Checkpoint, TrainOptions};

#[derive(Parser)]
#[command(name = "trainer", version, about = "Train and evaluate zero-shot text classifiers (BiEncoder, PolyEncoder, ColBERT)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model; flags override config.yml.
    Train(TrainArgs),
    /// Score every text of a split against all labels and print top-1 accuracy and accuracy@k.
    Eval(EvalArgs),
    /// Turn a checkpoint (or a plain Hugging Face folder or Hub id) into an ONNX bundle for the
    /// runtime; the same as the standalone `zsc-export`.
    Export(zsc_export::cli::ExportArgs),
    /// Upload a checkpoint or bundle folder to the Hugging Face Hub (private by default).
    Push(zsc_trainer::hub_commands::PushArgs),
    /// Download a Hub repo (checkpoint, bundle or base model) into a local folder.
    Pull(zsc_trainer::hub_commands::PullArgs),
    /// Show what this binary's libtorch can use: CUDA linked, devices, cuDNN, CUDA graphs.
    Devices {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// Training settings (default: ./config.yml when it exists, else built-in defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, value_parser = parse_model_type)]
    model_type: Option<ModelType>,
    #[arg(long)]
    max_steps: Option<usize>,
    #[arg(long)]
    output_dir: Option<PathBuf>,
    #[arg(long)]
    run_name: Option<String>,
    /// cpu | cuda | cuda:N | auto
    #[arg(long)]
    device: Option<String>,
    /// Training data file (JSON list of {"text", "labels"}).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Hugging Face BERT to start from: a local folder or a Hub id `org/name[@revision]`.
    #[arg(long)]
    base_model: Option<String>,
    #[arg(long)]
    val_every: Option<usize>,
    /// Override any config.yml key, e.g. `--set freeze_layers=2 --set label_template=null`
    /// (the value is YAML; repeatable; applied before the flags above).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Continue `<output_dir>/<run_name>` from its `last/` checkpoint (weights, optimizer, step, data order).
    #[arg(long)]
    resume: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// Checkpoint folder (e.g. runs/default/best).
    #[arg(long)]
    model_path: PathBuf,
    /// Data file (default: the one the checkpoint was trained with). Repeat it to evaluate several
    /// files with one model load: one report (and with --json one JSON line) per file.
    #[arg(long)]
    data: Vec<PathBuf>,
    /// train | val | test | all (default: test on the data the checkpoint was trained with, else all).
    #[arg(long)]
    split: Option<String>,
    /// Score against the labels of this data file instead of those of the evaluated data.
    #[arg(long)]
    labels_from: Option<PathBuf>,
    /// Print the report as one JSON object on the last stdout line.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value = "auto")]
    device: String,
}

fn parse_model_type(s: &str) -> std::result::Result<ModelType, String> {
    s.parse::<ModelType>().map_err(|e| e.to_string())
}

fn main() {
    zsc_core::logging::init("info");
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => run_train(a),
        Command::Eval(a) => run_eval(a),
        Command::Export(a) => zsc_export::cli::run(a),
        Command::Push(a) => zsc_trainer::hub_commands::run_push(a),
        Command::Pull(a) => zsc_trainer::hub_commands::run_pull(a),
        Command::Devices { json } => run_devices(json),
    };
    if let Err(e) = result {
        eprintln!("error: {}", zsc_core::error::error_chain(e.as_ref()));
        std::process::exit(1);
    }
}

fn load_config(path: Option<&Path>) -> Result<TrainConfig> {
    match path {
        Some(p) => TrainConfig::load(p).with_context(|| format!("reading config {}", p.display())),
        None if Path::new("config.yml").exists() => TrainConfig::load(Path::new("config.yml")).context("reading ./config.yml"),
        None => Ok(TrainConfig::default()),
    }
}

/// `--set KEY=VALUE` overrides: the value is parsed as YAML and checked like a config.yml entry
/// (unknown keys and wrong types are errors naming the key).
fn apply_sets(cfg: &TrainConfig, sets: &[String]) -> Result<TrainConfig> {
    if sets.is_empty() {
        return Ok(cfg.clone());
    }
    let mut value = serde_yaml::to_value(cfg).context("serialising the settings")?;
    let map = value.as_mapping_mut().context("settings are not a mapping")?;
    for s in sets {
        let (key, raw) = s.split_once('=').with_context(|| format!("--set {s:?}: expected KEY=VALUE"))?;
        let parsed: serde_yaml::Value =
            serde_yaml::from_str(raw).with_context(|| format!("--set {key}: {raw:?} is not a YAML value"))?;
        map.insert(serde_yaml::Value::String(key.trim().to_string()), parsed);
    }
    let text = serde_yaml::to_string(&value).context("serialising the settings")?;
    TrainConfig::from_yaml_str(&text, Path::new("--set")).context("applying --set")
}

fn apply_flags(cfg: &mut TrainConfig, a: &TrainArgs) {
    if let Some(v) = a.model_type {
        cfg.model_type = v;
    }
    if let Some(v) = a.max_steps {
        cfg.max_steps = v;
    }
    if let Some(v) = &a.output_dir {
        cfg.output_dir = v.clone();
    }
    if let Some(v) = &a.run_name {
        cfg.run_name = v.clone();
    }
    if let Some(v) = &a.device {
        cfg.device = v.clone();
    }
    if let Some(v) = &a.data {
        cfg.data = v.clone();
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = a.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = a.learning_rate {
        cfg.learning_rate = v;
    }
    if let Some(v) = &a.base_model {
        cfg.base_model = v.clone();
    }
    if let Some(v) = a.val_every {
        cfg.val_every = v;
    }
}

/// A base model given as a Hub repo id (`org/name[@revision]`) rather than a local folder is
/// fetched through hf-hub into the standard Hugging Face cache (`HF_HOME`, `HF_ENDPOINT`,
/// `HF_TOKEN`, `HF_HUB_OFFLINE`); local folders always win.
fn resolve_base_model(cfg: &mut TrainConfig) -> Result<()> {
    let hub = zsc_trainer::hub_commands::hub_options(None);
    let dir = zsc_core::hub::resolve(&cfg.base_model, zsc_core::hub::Wanted::Bert, &hub)
        .with_context(|| format!("base_model {:?}: fetching it from the Hugging Face Hub", cfg.base_model))?;
    cfg.base_model = dir.to_string_lossy().into_owned();
    Ok(())
}

/// Keys the command line sets explicitly (`--set` and flags): `per_architecture` does not override them.
fn explicit_keys(a: &TrainArgs) -> std::collections::BTreeSet<String> {
    let mut keys: std::collections::BTreeSet<String> =
        a.set.iter().filter_map(|s| s.split_once('=').map(|(k, _)| k.trim().to_string())).collect();
    let flags = [
        ("model_type", a.model_type.is_some()),
        ("max_steps", a.max_steps.is_some()),
        ("output_dir", a.output_dir.is_some()),
        ("run_name", a.run_name.is_some()),
        ("device", a.device.is_some()),
        ("data", a.data.is_some()),
        ("seed", a.seed.is_some()),
        ("batch_size", a.batch_size.is_some()),
        ("learning_rate", a.learning_rate.is_some()),
        ("base_model", a.base_model.is_some()),
        ("val_every", a.val_every.is_some()),
    ];
    keys.extend(flags.iter().filter(|f| f.1).map(|f| f.0.to_string()));
    keys
}

fn run_train(a: TrainArgs) -> Result<()> {
    let mut cfg = apply_sets(&load_config(a.config.as_deref())?, &a.set)?;
    apply_flags(&mut cfg, &a);
    cfg = cfg.with_architecture_defaults(&explicit_keys(&a)).context("applying per_architecture settings")?;
    resolve_base_model(&mut cfg)?;
    if a.resume {
        // continue with the run's own resolved settings (flags still win)
        let saved = cfg.output_dir.join(&cfg.run_name).join("config.yml");
        if saved.exists() {
            cfg = TrainConfig::load(&saved).with_context(|| format!("reading the run's {}", saved.display()))?;
            cfg = apply_sets(&cfg, &a.set)?;
            apply_flags(&mut cfg, &a);
        }
    }
    cfg.validate().context("invalid training settings")?;
    let summary = zsc_trainer::train(&cfg, &TrainOptions { resume: a.resume, stop_after: None, progress: true })
        .with_context(|| format!("training run {}", cfg.output_dir.join(&cfg.run_name).display()))?;
    let last_loss = summary.losses.last().map(|l| l.1);
    println!(
        "trained {} steps ({}..{}) at {:.2} steps/s; last train loss {}; best val loss {}; checkpoints in {}",
        summary.steps - summary.start_step,
        summary.start_step,
        summary.steps,
        summary.steps_per_s,
        last_loss.map_or("-".into(), |l| format!("{l:.4}")),
        summary.best_val_loss.map_or("-".into(), |l| format!("{l:.4}")),
        summary.run_dir.display()
    );
    Ok(())
}

fn run_devices(json: bool) -> Result<()> {
    let r = zsc_trainer::device::DeviceReport::probe();
    if json {
        println!("{}", serde_json::to_string(&r).context("serialising the report")?);
    } else {
        println!("libtorch: {}", r.libtorch.as_deref().unwrap_or("?"));
        println!("libtorch_cuda linked: {}", r.cuda_linked);
        println!("CUDA devices: {}", r.cuda_devices);
        println!("cuDNN: {}", r.cudnn);
        println!("CUDA graphs: {}", r.cuda_graphs);
        println!("--device auto: {}", r.auto_choice());
    }
    Ok(())
}

fn run_eval(a: EvalArgs) -> Result<()> {
    let device = parse_device(&a.device).context("--device")?;
    let ckpt =
        Checkpoint::load(&a.model_path, device).with_context(|| format!("loading checkpoint {}", a.model_path.display()))?;
    let files = if a.data.is_empty() { vec![ckpt.info.data.clone()] } else { a.data.clone() };
    for data_path in &files {
        eval_one(&a, &ckpt, data_path)?;
    }
    Ok(())
}

fn eval_one(a: &EvalArgs, ckpt: &Checkpoint, data_path: &Path) -> Result<()> {
    let info = &ckpt.info;
    if !data_path.exists() {
        anyhow::bail!(
            "data file {} does not exist (relative paths resolve against the current directory; the checkpoint records {}): \
             run from the repository root or pass --data FILE",
            data_path.display(),
            info.data.display()
        );
    }
    // the test split only means something on the data the model was trained with
    let same_as_trained = match (data_path.canonicalize(), info.data.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    };
    let default_split = if same_as_trained { Split::Test } else { Split::All };
    let split: Split = match &a.split {
        Some(s) => s.parse().context("--split")?,
        None => default_split,
    };
    let samples = data::load_samples(data_path).with_context(|| format!("loading data {}", data_path.display()))?;
    let samples = data::select_split(&samples, info.split, info.seed, split);
    if samples.is_empty() {
        anyhow::bail!("the {split} split of {} is empty", data_path.display());
    }
    let labels = match &a.labels_from {
        Some(p) => data::unique_labels(&data::load_samples(p).with_context(|| format!("loading --labels-from {}", p.display()))?),
        None => data::unique_labels(&samples),
    };
    eprintln!(
        "evaluating {} ({}) on {} texts of the {split} split of {} against {} labels",
        ckpt.dir.display(),
        info.spec.model_type,
        samples.len(),
        data_path.display(),
        labels.len()
    );
    let out = zsc_trainer::eval::evaluate(&ckpt.model, &ckpt.tokenizer, &samples, &labels, split.as_str(), a.batch_size)
        .context("evaluating")?;
    let r = &out.report;
    println!("model_type: {}", info.spec.model_type);
    println!("data: {}", data_path.display());
    println!("split: {} ({} texts, {} labels)", r.split, r.n_texts, r.n_labels);
    println!("top1_accuracy: {:.4}", r.top1_accuracy);
    println!("accuracy_at_k: {:.4}", r.accuracy_at_k);
    if a.json {
        let mut v = serde_json::to_value(r).context("serialising the report")?;
        v["data"] = serde_json::Value::String(data_path.display().to_string());
        println!("{v}");
    }
    Ok(())
}
