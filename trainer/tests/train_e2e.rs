//! End-to-end training on a tiny random BERT (zsc_core::fixtures) and tiny data written here:
//! falling loss, best/ and last/ checkpoints with exact weight names, model type re-detected from
//! the checkpoint, `trainer eval --json`, seeded determinism and exact `--resume`.

use std::path::{Path, PathBuf};
use std::process::Command;

use tch::Device;
use trainer::checkpoint::Checkpoint;
use trainer::train::read_metrics;
use trainer::{train, TrainOptions};
use zsc_core::fixtures::{write_tiny_bert, TinyBert};
use zsc_core::manifest::{checkpoint_files, tensor_names};
use zsc_core::metrics::EvalReport;
use zsc_core::{ModelType, TrainConfig};

const TOPICS: [(&str, [&str; 5]); 6] = [
    ("weather", ["rain", "sunny", "snow", "forecast", "storm"]),
    ("music", ["song", "guitar", "concert", "album", "piano"]),
    ("banking", ["account", "transfer", "loan", "deposit", "balance"]),
    ("travel", ["flight", "hotel", "airport", "passport", "luggage"]),
    ("cooking", ["recipe", "oven", "pasta", "soup", "bake"]),
    ("sports", ["football", "tennis", "goal", "match", "score"]),
];
const FRAMES: [&str; 3] = ["tell me about the {}", "i need help with my {} now", "what about {} today"];

fn write_data(path: &Path) {
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

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cfg: TrainConfig,
}

fn setup(model_type: ModelType, run_name: &str) -> Setup {
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

fn mean(v: &[(usize, f64)]) -> f64 {
    v.iter().map(|x| x.1).sum::<f64>() / v.len() as f64
}

fn eval_json(model_path: &Path, extra: &[&str]) -> EvalReport {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["eval", "--model-path"])
        .arg(model_path)
        .args(["--json", "--device", "cpu", "--split", "all"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "eval failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("top1_accuracy:") && stdout.contains("accuracy_at_k:"), "{stdout}");
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn check_architecture(model_type: ModelType) {
    let s = setup(model_type, "run");
    let summary = train(&s.cfg, &TrainOptions::default()).unwrap();
    assert_eq!(summary.steps, 20);
    let (first, last) = (mean(&summary.losses[..5]), mean(&summary.losses[15..]));
    assert!(last < first, "{model_type}: train loss did not fall: {first} -> {last}");
    assert_eq!(summary.val_losses.len(), 4);

    let run = s.cfg.output_dir.join("run");
    for name in ["best", "last"] {
        for f in [checkpoint_files::WEIGHTS, checkpoint_files::BERT_CONFIG, checkpoint_files::TOKENIZER, checkpoint_files::INFO] {
            assert!(run.join(name).join(f).exists(), "{name}/{f} missing");
        }
    }
    assert!(run.join("last").join(checkpoint_files::OPTIMIZER).exists());
    assert!(run.join("config.yml").exists() && run.join("loss.png").exists());
    let metrics = read_metrics(&run.join("metrics.jsonl"));
    assert_eq!(metrics.len(), 20);
    assert_eq!(metrics.iter().filter(|m| m.val_loss.is_some()).count(), 4);

    // the model type comes from the checkpoint; the weight names are exactly HF BERT + head names
    let ckpt = Checkpoint::load(&run.join("best"), Device::Cpu).unwrap();
    assert_eq!(ckpt.info.spec.model_type, model_type);
    let best_step = ckpt.info.step;
    let best_val = summary.val_losses.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);
    assert_eq!(ckpt.info.val_loss, Some(best_val));
    assert!(summary.val_losses.iter().any(|&(st, v)| st == best_step && v == best_val));
    let bytes = std::fs::read(run.join("best").join(checkpoint_files::WEIGHTS)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    let mut want: Vec<String> = zsc_core::fixtures::bert_weight_shapes(30522, &TinyBert::default()).into_iter().map(|x| x.0).collect();
    match model_type {
        ModelType::BiEncoder => {}
        ModelType::PolyEncoder => want.push(tensor_names::POLY_CODES.into()),
        ModelType::Colbert => want.extend([tensor_names::COLBERT_PROJ.to_string(), tensor_names::COLBERT_SCALE.to_string()]),
    }
    want.sort();
    assert_eq!(names, want);
    match model_type {
        ModelType::PolyEncoder => assert_eq!(st.tensor(tensor_names::POLY_CODES).unwrap().shape(), &[4, 32]),
        ModelType::Colbert => {
            assert_eq!(st.tensor(tensor_names::COLBERT_PROJ).unwrap().shape(), &[16, 32]);
            assert_eq!(st.tensor(tensor_names::COLBERT_SCALE).unwrap().shape(), &[1]);
        }
        ModelType::BiEncoder => {}
    }

    // eval through the binary: the checkpoint's own data and all its labels
    let report = eval_json(&run.join("best"), &[]);
    assert_eq!(report.n_labels, 6);
    assert_eq!(report.n_texts, 92);
    assert!((0.0..=1.0).contains(&report.top1_accuracy) && (0.0..=1.0).contains(&report.accuracy_at_k));
    // the library gives the same numbers
    let samples = zsc_core::data::load_samples(&s.root.join("data.json")).unwrap();
    let labels = zsc_core::data::sorted_labels(&samples);
    let lib = trainer::eval::evaluate(&ckpt.model, &ckpt.tokenizer, &samples, &labels, "all", 64).unwrap();
    assert!((lib.report.top1_accuracy - report.top1_accuracy).abs() < 1e-9);
}

#[test]
fn bi_encoder_trains_and_evaluates() {
    check_architecture(ModelType::BiEncoder);
}

#[test]
fn poly_encoder_trains_and_evaluates() {
    check_architecture(ModelType::PolyEncoder);
}

#[test]
fn colbert_trains_and_evaluates() {
    check_architecture(ModelType::Colbert);
}

#[test]
fn seeded_runs_repeat_and_resume_is_exact() {
    let full = setup(ModelType::Colbert, "full");
    let a = train(&full.cfg, &TrainOptions::default()).unwrap();

    let mut cfg = full.cfg.clone();
    cfg.run_name = "interrupted".into();
    let b1 = train(&cfg, &TrainOptions { stop_after: Some(10), ..Default::default() }).unwrap();
    assert_eq!(b1.steps, 10);
    assert_eq!(b1.losses, a.losses[..10].to_vec(), "same seed, same losses");
    let state = Checkpoint::load(&cfg.output_dir.join("interrupted/last"), Device::Cpu).unwrap().trainer_state().unwrap();
    assert_eq!(state.step, 10);

    let b2 = train(&cfg, &TrainOptions { resume: true, ..Default::default() }).unwrap();
    assert_eq!(b2.start_step, 10);
    assert_eq!(b2.losses.first().map(|l| l.0), Some(11));
    for ((sa, la), (sb, lb)) in a.losses[10..].iter().zip(&b2.losses) {
        assert_eq!(sa, sb);
        assert!((la - lb).abs() <= 1e-6, "step {sa}: {la} vs resumed {lb}");
    }
    let metrics = read_metrics(&cfg.output_dir.join("interrupted/metrics.jsonl"));
    assert_eq!(metrics.iter().map(|m| m.step).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
}

#[test]
fn cli_train_flags_override_config_and_leftover_temp_dirs_are_tolerated() {
    let s = setup(ModelType::BiEncoder, "unused");
    let cfg_path = s.root.join("config.yml");
    let mut cfg = s.cfg.clone();
    cfg.max_steps = 999;
    std::fs::write(&cfg_path, serde_yaml::to_string(&cfg).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "--config"])
        .arg(&cfg_path)
        .args(["--model-type", "poly_encoder", "--max-steps", "6", "--run-name", "cli", "--device", "cpu", "--seed", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = s.cfg.output_dir.join("cli");
    let saved = TrainConfig::load(&run.join("config.yml")).unwrap();
    assert_eq!((saved.model_type, saved.max_steps, saved.seed), (ModelType::PolyEncoder, 6, 3));
    let info = zsc_core::CheckpointInfo::load(&run.join("last")).unwrap();
    assert_eq!((info.step, info.seed), (6, 3));

    // a crash between the two renames of a save leaves `.best.old-<pid>` and a temp folder
    std::fs::rename(run.join("best"), run.join(".best.old-12345")).unwrap();
    std::fs::create_dir_all(run.join(".best.tmp-999")).unwrap();
    std::fs::write(run.join(".best.tmp-999").join(checkpoint_files::WEIGHTS), b"half").unwrap();
    let ckpt = Checkpoint::load(&run.join("best"), Device::Cpu).unwrap();
    assert_eq!(ckpt.info.spec.model_type, ModelType::PolyEncoder);

    // bad input: a clear error naming the flag value, non-zero exit
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["eval", "--model-path", "/nonexistent/ckpt", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ckpt"));
}
