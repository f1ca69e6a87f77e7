//! End-to-end training on a tiny random BERT (zsc_testkit::fixtures) and tiny data written here:
//! falling loss, best/ and last/ checkpoints with exact weight names, model type re-detected from
//! the checkpoint, `trainer eval --json`, seeded determinism and exact `--resume`.

use std::path::Path;
use std::process::Command;

use tch::Device;
use zsc_core::manifest::{checkpoint_files, tensor_names};
use zsc_core::metrics::EvalReport;
use zsc_core::ModelType;
use zsc_testkit::fixtures::TinyBert;
use zsc_trainer::checkpoint::Checkpoint;
use zsc_trainer::config::TrainConfig;
use zsc_trainer::train::{read_metrics, MetricsRecord};
use zsc_trainer::{train, TrainOptions};

mod common;
use common::{mean, setup, write_unseen_probe};

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
    // a calibration, when this tiny model's scores allow one, was fitted on the val split
    if let Some(cal) = zsc_core::Calibration::load_from_checkpoint(&run.join("best")).unwrap() {
        assert_eq!(cal.split.as_deref(), Some("val"));
        assert!(cal.n_texts > 0 && cal.n_labels > 1 && cal.temperature > 0.0, "{cal:?}");
    }
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
    let mut want: Vec<String> =
        zsc_testkit::fixtures::bert_weight_shapes(30522, &TinyBert::default()).into_iter().map(|x| x.0).collect();
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
    let labels = zsc_core::data::unique_labels(&samples);
    let lib = zsc_trainer::eval::evaluate(&ckpt.model, &ckpt.tokenizer, &samples, &labels, "all", 64).unwrap();
    assert!((lib.report.top1_accuracy - report.top1_accuracy).abs() < 1e-9);
}

/// The tests of this binary run one at a time: each seeds libtorch's one global RNG and compares
/// runs, and a concurrent test drawing from it between the seed and the head's init made a
/// comparison of two runs' first losses flaky under load.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn bi_encoder_trains_and_evaluates() {
    let _serial = serial();
    check_architecture(ModelType::BiEncoder);
}

#[test]
fn poly_encoder_trains_and_evaluates() {
    let _serial = serial();
    check_architecture(ModelType::PolyEncoder);
}

#[test]
fn colbert_trains_and_evaluates() {
    let _serial = serial();
    check_architecture(ModelType::Colbert);
}

#[test]
fn cli_train_flags_override_config_and_leftover_temp_dirs_are_tolerated() {
    let _serial = serial();
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
    // logs piped to a file carry no colour codes
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\x1b'), "ANSI codes in piped logs");

    // `trainer export` is the exporter (the same flags as the standalone `zsc-export`)
    let bundle = s.root.join("bundle");
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["export", "--checkpoint"])
        .arg(run.join("last"))
        .arg("--out")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("poly_encoder"));
    let manifest = zsc_core::BundleManifest::load(&bundle).unwrap();
    assert_eq!(manifest.spec.model_type, ModelType::PolyEncoder);

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
    // a missing config: the OS cause is said once, not once per layer of context
    let out =
        Command::new(env!("CARGO_BIN_EXE_trainer")).args(["train", "--config", "/nonexistent/config.yml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("/nonexistent/config.yml"), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

fn tensor_bytes(path: &Path, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name).unwrap().data().to_vec()
}

#[test]
fn freeze_layers_keeps_embeddings_and_lowest_layers_fixed() {
    let _serial = serial();
    let mut s = setup(ModelType::BiEncoder, "frozen");
    s.cfg.freeze_layers = 1;
    s.cfg.max_steps = 3;
    s.cfg.val_every = 3;
    train(&s.cfg, &TrainOptions::default()).unwrap();
    let base = s.root.join("tiny-bert/model.safetensors");
    let trained = s.cfg.output_dir.join("frozen/last").join(checkpoint_files::WEIGHTS);
    for name in
        ["embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight", "encoder.layer.0.attention.self.query.weight"]
    {
        assert_eq!(tensor_bytes(&base, name), tensor_bytes(&trained, name), "{name} must stay frozen");
    }
    let name = "encoder.layer.1.attention.self.query.weight";
    assert_ne!(tensor_bytes(&base, name), tensor_bytes(&trained, name), "{name} must train");
}

#[test]
fn diverging_training_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    let _serial = serial();
    let mut s = setup(ModelType::BiEncoder, "diverge");
    s.cfg.max_steps = 8;
    s.cfg.val_every = 2;
    train(&s.cfg, &TrainOptions { stop_after: Some(2), ..Default::default() }).unwrap();
    let last = s.cfg.output_dir.join("diverge/last");
    let good = std::fs::read(last.join(checkpoint_files::WEIGHTS)).unwrap();
    // continue with an absurd learning rate: the weights blow up after one update
    let mut cfg = s.cfg.clone();
    cfg.learning_rate = 1e30;
    cfg.head_learning_rate = Some(1e30);
    let err = train(&cfg, &TrainOptions { resume: true, ..Default::default() }).unwrap_err();
    assert!(
        matches!(err, zsc_trainer::TrainerError::NonFiniteLoss { .. } | zsc_trainer::TrainerError::NonFiniteGradient { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("diverged") && err.to_string().contains("last good checkpoint"), "{err}");
    assert_eq!(std::fs::read(last.join(checkpoint_files::WEIGHTS)).unwrap(), good, "last/ must keep the good weights");
    assert_eq!(zsc_core::CheckpointInfo::load(&last).unwrap().step, 2);
}

#[test]
fn zero_shot_probe_is_logged_and_matches_eval_and_set_overrides_config() {
    let _serial = serial();
    let s = setup(ModelType::BiEncoder, "unused");
    let cfg_path = s.root.join("config.yml");
    std::fs::write(&cfg_path, serde_yaml::to_string(&s.cfg).unwrap()).unwrap();
    let probe = write_unseen_probe(&s.root);
    let trainer = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
        c.args(["train", "--config"]).arg(&cfg_path).args(["--run-name", "probe", "--device", "cpu"]);
        c
    };
    let out = trainer()
        .arg("--set")
        .arg(format!("probe_data={}", probe.display()))
        .args(["--set", "max_steps=10", "--set", "freeze_layers=1", "--set", "label_template=\"about {}\""])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run = s.cfg.output_dir.join("probe");
    let saved = TrainConfig::load(&run.join("config.yml")).unwrap();
    assert_eq!(saved.max_steps, 10);
    assert_eq!(saved.freeze_layers, 1);
    assert_eq!(saved.label_template.as_deref(), Some("about {}"));
    assert_eq!(saved.probe_data, vec![probe.clone()]);
    assert!(stderr.contains("5 texts against 5 labels") && stderr.contains("zero-shot probe top-1"), "{stderr}");

    let records = read_metrics(&run.join("metrics.jsonl"));
    let probed: Vec<(usize, f64)> = records.iter().filter_map(|r| r.probe_top1.map(|p| (r.step, p))).collect();
    assert_eq!(probed.iter().map(|p| p.0).collect::<Vec<_>>(), vec![5, 10], "{records:?}");
    assert!(probed.iter().all(|p| (0.0..=1.0).contains(&p.1) && (p.1 * 5.0).fract().abs() < 1e-9), "{probed:?}");
    // the logged probe is exactly what `trainer eval` says of the saved checkpoint
    let report = eval_json(&run.join("last"), &["--data", probe.to_str().unwrap()]);
    assert_eq!(report.n_labels, 5);
    assert!((report.top1_accuracy - probed[1].1).abs() < 1e-9, "{report:?} vs {probed:?}");
    assert!(run.join("loss.png").metadata().unwrap().len() > 1000);
    // best_probe/ holds the first step with the highest probe accuracy, step 0 (the base) included
    let step0 = probe_at_step0(&stderr);
    let candidates: Vec<(usize, f64)> = std::iter::once((0, step0)).chain(probed.iter().copied()).collect();
    let best = candidates.iter().fold(candidates[0], |b, p| if p.1 > b.1 { *p } else { b });
    let info = zsc_core::CheckpointInfo::load(&run.join("best_probe")).unwrap();
    assert_eq!(info.step, best.0, "{candidates:?}");
    let report = eval_json(&run.join("best_probe"), &["--data", probe.to_str().unwrap()]);
    assert!((report.top1_accuracy - best.1).abs() < 1e-9, "{report:?} vs {candidates:?}");

    // a run whose steps change nothing never beats the base: best_probe/ keeps step 0, and says so
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "--config"])
        .arg(&cfg_path)
        .args(["--run-name", "probe_frozen", "--device", "cpu", "--set", &format!("probe_data={}", probe.display())])
        .args(["--set", "max_steps=5", "--set", "learning_rate=0", "--set", "head_learning_rate=0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let frozen = s.cfg.output_dir.join("probe_frozen");
    assert_eq!(zsc_core::CheckpointInfo::load(&frozen.join("best_probe")).unwrap().step, 0);
    assert!(stderr.contains("no trained step beat the untrained model"), "{stderr}");
    let report = eval_json(&frozen.join("best_probe"), &["--data", probe.to_str().unwrap()]);
    assert!((report.top1_accuracy - probe_at_step0(&stderr)).abs() < 1e-9, "{report:?}");

    // bad overrides: non-zero exit naming the key
    for (bad, needle) in [("no_such_key=1", "no_such_key"), ("max_steps=lots", "max_steps"), ("max_steps", "KEY=VALUE")] {
        let out = trainer().args(["--set", bad]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(needle), "--set {bad}: {stderr}");
    }
    // a missing probe file is an error naming it, before any training
    let out = trainer().args(["--set", "probe_data=/nonexistent/probe.json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("/nonexistent/probe.json"), "{stderr}");
}

#[test]
fn softmax_loss_trains_every_architecture() {
    let _serial = serial();
    for model_type in [ModelType::BiEncoder, ModelType::PolyEncoder, ModelType::Colbert] {
        let mut s = setup(model_type, "softmax");
        s.cfg.loss = zsc_trainer::config::LossKind::Softmax;
        s.cfg.score_scale_learning_rate = Some(0.05);
        if model_type == ModelType::Colbert {
            // MaxSim on a tiny random BERT needs a larger step to move within 60 steps (and a random
            // projection: on a random encoder an orthonormal one stays at chance this short)
            s.cfg.learning_rate = 1e-2;
            s.cfg.colbert_init = zsc_trainer::config::ColbertInit::Kaiming;
        }
        s.cfg.max_steps = 60;
        let summary = train(&s.cfg, &TrainOptions::default()).unwrap();
        let (first, last) = (mean(&summary.losses[..10]), mean(&summary.losses[50..]));
        assert!(last < first, "{model_type}: softmax loss did not fall: {first} -> {last}");
        assert!(summary.val_losses.iter().all(|v| v.1.is_finite() && v.1 >= 0.0), "{:?}", summary.val_losses);
        let saved = TrainConfig::load(&summary.run_dir.join("config.yml")).unwrap();
        assert_eq!(saved.loss, zsc_trainer::config::LossKind::Softmax);
        if model_type == ModelType::Colbert {
            // the score scale has its own learning rate: it moves off its init of 10
            let scale = tensor_bytes(&summary.run_dir.join("last").join(checkpoint_files::WEIGHTS), tensor_names::COLBERT_SCALE);
            let v = f32::from_le_bytes(scale[..4].try_into().unwrap());
            assert!((v - 10.0).abs() > 0.05, "score_scale stayed at {v}");
        }
    }
}

#[test]
fn batches_come_from_one_source_and_the_probe_reports_every_held_out_task() {
    let _serial = serial();
    let mut s = setup(ModelType::BiEncoder, "mix");
    // two sources: the topic data, and a second task whose labels are moods
    let mut samples: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&s.cfg.data).unwrap()).unwrap();
    for v in samples.iter_mut() {
        v["source"] = "topics".into();
    }
    for (mood, words) in
        [("happy", ["glad", "joy", "smile"]), ("sad", ["tears", "gloom", "cry"]), ("angry", ["rage", "furious", "mad"])]
    {
        for w in words {
            for frame in ["i feel {} today", "so much {}", "{} all day long"] {
                samples.push(serde_json::json!({"text": frame.replace("{}", w), "labels": [mood], "source": "moods"}));
            }
        }
    }
    std::fs::write(&s.cfg.data, serde_json::to_string(&samples).unwrap()).unwrap();
    let task = |name: &str, rows: serde_json::Value| {
        let p = s.root.join(format!("{name}.json"));
        std::fs::write(&p, rows.to_string()).unwrap();
        p
    };
    let a = task(
        "task_a",
        serde_json::json!([
            {"text": "bring an umbrella, rain later", "labels": ["umbrella"]},
            {"text": "play the guitar song again", "labels": ["replay"]},
        ]),
    );
    let b = task(
        "task_b",
        serde_json::json!([
            {"text": "move money to my deposit account", "labels": ["wire"]},
            {"text": "the oven is hot, bake the pasta", "labels": ["kitchen"]},
            {"text": "who scored the goal in the match", "labels": ["results"]},
        ]),
    );
    s.cfg.probe_data = vec![a, b];
    s.cfg.source_sampling_alpha = 0.0;
    s.cfg.max_steps = 30;
    s.cfg.val_every = 10;
    let summary = train(&s.cfg, &TrainOptions::default()).unwrap();
    assert_eq!(summary.steps, 30);
    let records = read_metrics(&summary.run_dir.join("metrics.jsonl"));
    assert_eq!(records.len(), 30);
    // alpha 0: both sources are drawn although the moods are 1/4 of the data; each step names its source
    let from = |name: &str| records.iter().filter(|r| r.source.as_deref() == Some(name)).count();
    assert!(from("moods") >= 8 && from("topics") >= 8, "moods {} topics {}", from("moods"), from("topics"));
    assert_eq!(from("moods") + from("topics"), 30);
    // every validation step has both tasks and their mean
    let probed: Vec<&MetricsRecord> = records.iter().filter(|r| r.probe_top1.is_some()).collect();
    assert_eq!(probed.iter().map(|r| r.step).collect::<Vec<_>>(), vec![10, 20, 30]);
    for r in probed {
        assert_eq!(r.probe_tasks.keys().collect::<Vec<_>>(), vec!["task_a", "task_b"]);
        let mean = r.probe_tasks.values().sum::<f64>() / 2.0;
        assert!((r.probe_top1.unwrap() - mean).abs() < 1e-12, "{r:?}");
    }
    // the probe's start value (the untrained model) is in the summary
    assert_eq!(summary.probe_top1.first().map(|p| p.0), Some(0));
}

/// The probe's macro top-1 before training, from the trainer's "step 0: zero-shot probe top-1 X" line.
fn probe_at_step0(stderr: &str) -> f64 {
    let line = stderr.lines().find(|l| l.contains("step 0: zero-shot probe top-1")).expect("a step-0 probe line");
    let value = line.split("top-1 ").nth(1).unwrap().split_whitespace().next().unwrap();
    value.parse().unwrap_or_else(|_| panic!("probe value in {line:?}"))
}

#[test]
fn training_ends_with_calibrated_checkpoints() {
    let _serial = serial();
    // texts equal to their labels, cosine, no template: the right label always scores highest
    // (identical embeddings), so the fit has signal whatever the tiny random weights are
    let mut s = setup(ModelType::BiEncoder, "calibrated");
    let words = ["alarm", "weather", "music", "traffic", "recipe", "timer", "news", "sports", "travel", "bank"];
    let samples: Vec<serde_json::Value> = (0..200)
        .map(|i| {
            let w = words[i % words.len()];
            serde_json::json!({"text": format!("{w} {}", "x ".repeat(i / words.len()).trim()).trim(), "labels": [w]})
        })
        .collect();
    let data = s.root.join("self.json");
    std::fs::write(&data, serde_json::Value::from(samples).to_string()).unwrap();
    s.cfg.data = data;
    s.cfg.label_template = None;
    s.cfg.similarity = zsc_core::Similarity::Cosine;
    s.cfg.max_steps = 2;
    s.cfg.val_every = 2;
    s.cfg.learning_rate = 0.0;
    s.cfg.head_learning_rate = Some(0.0);
    train(&s.cfg, &TrainOptions::default()).unwrap();
    let run = s.cfg.output_dir.join("calibrated");
    let cal = zsc_core::Calibration::load_from_checkpoint(&run.join("best")).unwrap().expect("best/calibration.json");
    // the val split (10 % of 200) scored against the labels it holds
    assert_eq!((cal.split.as_deref(), cal.n_texts), (Some("val"), 20), "{cal:?}");
    assert!((2..=words.len()).contains(&cal.n_labels), "{cal:?}");
    assert!(cal.temperature.is_finite() && cal.temperature > 0.0, "{cal:?}");
    assert!(cal.ece.is_some_and(|e| (0.0..=1.0).contains(&e)), "{cal:?}");
    assert!(zsc_core::Calibration::load_from_checkpoint(&run.join("last")).unwrap().is_none());

    // calibrate: false writes none
    s.cfg.calibrate = false;
    s.cfg.run_name = "uncalibrated".into();
    train(&s.cfg, &TrainOptions::default()).unwrap();
    let best = s.cfg.output_dir.join("uncalibrated").join("best");
    assert!(zsc_core::Calibration::load_from_checkpoint(&best).unwrap().is_none());
}

/// How far a checkpoint's in-batch score distributions are from the base's on a fixed batch (the
/// anchor term itself, `zsc_trainer::anchor::anchor_term`).
fn drift_from_base(run: &Path, base: &Path) -> f64 {
    let ckpt = Checkpoint::load(&run.join("last"), Device::Cpu).unwrap();
    let texts = ckpt
        .tokenizer
        .encode_batch(&[
            "tell me about the rain",
            "i need help with my loan now",
            "what about pasta today",
            "songs to play while i bake",
        ])
        .unwrap();
    let labels = ckpt.tokenizer.encode_batch(&["weather", "banking", "cooking", "music"]).unwrap();
    let logits = ckpt.model.score_matrix(&texts, &labels, false).unwrap();
    let anchor = zsc_trainer::anchor::Anchor::base(base, zsc_core::Pooling::Mean, Device::Cpu, 1.0).unwrap();
    let t = zsc_trainer::models::BatchTensors::new(&texts, Device::Cpu).unwrap();
    let l = zsc_trainer::models::BatchTensors::new(&labels, Device::Cpu).unwrap();
    let none = tch::Tensor::zeros([4, 4], (tch::Kind::Bool, Device::Cpu));
    zsc_trainer::anchor::anchor_term(&logits, &anchor.scores(&t, &l, None).unwrap(), &none).double_value(&[])
}

/// A teacher table (`scripts/embed_teacher.py`'s format) for every text and label of `data`:
/// random unit vectors (seeded), so its rankings are nothing the data or the base would teach.
fn write_random_teacher(data: &Path, stem: &Path) -> (Vec<String>, Vec<String>) {
    let samples: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(data).unwrap()).unwrap();
    let mut texts: Vec<String> = samples.iter().map(|s| s["text"].as_str().unwrap().to_string()).collect();
    let mut labels: Vec<String> =
        samples.iter().flat_map(|s| s["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string())).collect();
    for v in [&mut texts, &mut labels] {
        v.sort();
        v.dedup();
    }
    tch::manual_seed(3);
    let unit = |n: usize| {
        let t = tch::Tensor::randn([n as i64, 8], (tch::Kind::Float, Device::Cpu));
        (&t / t.norm_scalaropt_dim(2.0, [1], true)).to_kind(tch::Kind::Half)
    };
    let (t, l) = (unit(texts.len()), unit(labels.len()));
    tch::Tensor::write_safetensors(&[("text_embeddings", &t), ("label_embeddings", &l)], stem.with_extension("safetensors"))
        .unwrap();
    std::fs::write(stem.with_extension("json"), serde_json::json!({"texts": texts, "labels": labels}).to_string()).unwrap();
    (texts, labels)
}

#[test]
fn a_teacher_anchor_pulls_the_scores_towards_the_teacher() {
    let _serial = serial();
    let mut distance = Vec::new();
    for (name, teacher) in [("base_anchor", false), ("teacher_anchor", true)] {
        let mut s = setup(ModelType::BiEncoder, name);
        let stem = s.root.join("teacher");
        let (texts, labels) = write_random_teacher(&s.cfg.data, &stem);
        s.cfg.similarity = zsc_core::Similarity::Cosine;
        (s.cfg.max_steps, s.cfg.val_every, s.cfg.calibrate, s.cfg.anchor_weight) = (30, 30, false, 20.0);
        s.cfg.anchor_teacher = teacher.then(|| stem.clone());
        train(&s.cfg, &TrainOptions::default()).unwrap();
        // the trained model's in-batch distributions against the teacher's, on 6 training texts
        let ckpt = Checkpoint::load(&s.cfg.output_dir.join(name).join("last"), Device::Cpu).unwrap();
        let (t, l): (Vec<&str>, Vec<&str>) =
            (texts.iter().take(6).map(String::as_str).collect(), labels.iter().take(6).map(String::as_str).collect());
        let logits = ckpt
            .model
            .score_matrix(&ckpt.tokenizer.encode_batch(&t).unwrap(), &ckpt.tokenizer.encode_batch(&l).unwrap(), false)
            .unwrap();
        let table = zsc_trainer::anchor::TeacherTable::load(&stem, Device::Cpu).unwrap();
        let none = tch::Tensor::zeros([6, 6], (tch::Kind::Bool, Device::Cpu));
        distance.push(zsc_trainer::anchor::anchor_term(&logits, &table.logits(&t, &l).unwrap(), &none).double_value(&[]));
    }
    eprintln!("anchor term against the teacher, base-anchored vs teacher-anchored: {distance:?}");
    assert!(distance[1] < distance[0], "teacher-anchored training must end closer to the teacher: {distance:?}");
    // a table that lacks the training strings is refused before the first step
    let mut s = setup(ModelType::BiEncoder, "uncovered");
    let samples: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&s.cfg.data).unwrap()).unwrap();
    let fewer = s.root.join("fewer.json");
    std::fs::write(&fewer, serde_json::to_vec(&samples[samples.len() / 2..]).unwrap()).unwrap();
    let stem = s.root.join("teacher");
    write_random_teacher(&fewer, &stem);
    s.cfg.anchor_weight = 1.0;
    s.cfg.anchor_teacher = Some(stem);
    let err = train(&s.cfg, &TrainOptions::default()).unwrap_err().to_string();
    assert!(err.contains("lacks") && err.contains("embed_teacher.py"), "{err}");
}

#[test]
fn the_base_anchor_keeps_scores_near_the_base() {
    let _serial = serial();
    let mut drift = Vec::new();
    for (name, weight) in [("free", 0.0), ("anchored", 20.0)] {
        let mut s = setup(ModelType::BiEncoder, name);
        s.cfg.similarity = zsc_core::Similarity::Cosine;
        s.cfg.max_steps = 20;
        s.cfg.val_every = 20;
        s.cfg.calibrate = false;
        s.cfg.anchor_weight = weight;
        let summary = train(&s.cfg, &TrainOptions::default()).unwrap();
        assert!(summary.losses.iter().all(|(_, l)| l.is_finite()), "{:?}", summary.losses);
        drift.push(drift_from_base(&s.cfg.output_dir.join(name), &s.root.join("tiny-bert")));
    }
    eprintln!("anchor term after training, free vs anchored: {drift:?}");
    assert!(drift[1] < drift[0], "anchored training must stay closer to the base: {drift:?}");
    let mut s = setup(ModelType::BiEncoder, "bad");
    s.cfg.anchor_weight = -1.0;
    assert!(train(&s.cfg, &TrainOptions::default()).unwrap_err().to_string().contains("anchor_weight"));
}

#[test]
fn label_negatives_train_every_architecture_and_make_the_first_step_harder() {
    let _serial = serial();
    for model_type in [ModelType::BiEncoder, ModelType::PolyEncoder, ModelType::Colbert] {
        let mut first_losses = Vec::new();
        for (name, k) in [("plain", 0), ("negatives", 4)] {
            let mut s = setup(model_type, name);
            s.cfg.loss = zsc_trainer::config::LossKind::Softmax;
            s.cfg.anchor_weight = 1.0;
            s.cfg.label_negatives = k;
            s.cfg.max_steps = 6;
            s.cfg.val_every = 3;
            s.cfg.calibrate = false;
            let summary = train(&s.cfg, &TrainOptions::default()).unwrap();
            assert_eq!(summary.losses.len(), 6, "{model_type:?} {name}");
            assert!(summary.losses.iter().all(|(_, l)| l.is_finite()), "{model_type:?} {name}: {:?}", summary.losses);
            first_losses.push(summary.losses[0].1);
        }
        // step 1 is the same batch and weights; its texts now also compete with labels of the
        // 6 topics that none of them has (batch of 8), so the softmax rows lose more
        assert!(first_losses[1] > first_losses[0] + 1e-4, "{model_type:?}: {first_losses:?}");
    }
    let mut s = setup(ModelType::BiEncoder, "bce");
    s.cfg.loss = zsc_trainer::config::LossKind::Bce;
    s.cfg.label_negatives = 4;
    assert!(train(&s.cfg, &TrainOptions::default()).unwrap_err().to_string().contains("label_negatives"));
}
