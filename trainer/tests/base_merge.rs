//! `base_merge` (zsc_trainer::merge): after training, `best_probe/` is interpolated with the base and
//! the best merge on the zero-shot probe is kept; the weights are exactly
//! `w * trained + (1 - w) * base` on the encoder, the heads as trained.

use std::path::Path;
use std::process::Command;

use tch::{Device, Tensor};
use zsc_core::manifest::tensor_names;
use zsc_core::metrics::EvalReport;
use zsc_core::ModelType;
use zsc_trainer::checkpoint::Checkpoint;
use zsc_trainer::merge::{choose_merge, MergeEnds};
use zsc_trainer::probe::{Probe, ProbeScores};
use zsc_trainer::train::read_metrics;
use zsc_trainer::{train, TrainOptions, ZscModel};

mod common;
use common::{setup, write_unseen_probe};

fn eval_top1(model_path: &Path, data: &Path) -> f64 {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["eval", "--model-path"])
        .arg(model_path)
        .args(["--json", "--device", "cpu", "--split", "all", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: EvalReport = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    report.top1_accuracy
}

fn close(a: &Tensor, b: &Tensor) -> bool {
    (a - b).abs().max().double_value(&[]) < 1e-6
}

#[test]
fn training_keeps_the_best_merge_on_the_probe() {
    let mut s = setup(ModelType::PolyEncoder, "merged");
    // the training data itself as the probe (seen labels: the trainer warns): a tiny random model
    // surely improves on it, so best_probe/ is a trained step and the merge runs
    let probe = s.cfg.data.clone();
    s.cfg.probe_data = vec![probe.clone()];
    s.cfg.max_steps = 60;
    s.cfg.val_every = 20;
    s.cfg.learning_rate = 5e-3;
    s.cfg.calibrate = false;
    s.cfg.base_merge = vec![0.5, 0.25];
    let summary = train(&s.cfg, &TrainOptions::default()).unwrap();
    eprintln!("probe curve: {:?}", summary.probe_top1);
    let run = summary.run_dir;
    let best_probe = Checkpoint::load(&run.join("best_probe"), Device::Cpu).unwrap();
    assert!(best_probe.info.step > 0, "the tiny run must beat step 0 on the probe for this test to merge anything");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("base_merge.json")).unwrap()).unwrap();
    eprintln!("base_merge.json: {report}");
    let trials = report["trials"].as_array().unwrap();
    let weights: Vec<f64> = trials.iter().map(|t| t["weight"].as_f64().unwrap()).collect();
    assert_eq!(weights, [1.0, 0.5, 0.25]);
    assert_eq!(report["step"].as_u64(), Some(best_probe.info.step as u64));
    // weight 1 is the unmerged step: the probe value training logged for it
    let records = read_metrics(&run.join("metrics.jsonl"));
    let logged = records.iter().find(|r| r.step == best_probe.info.step).and_then(|r| r.probe_top1).unwrap();
    assert!((trials[0]["probe_top1"].as_f64().unwrap() - logged).abs() < 1e-9, "{report} vs {logged}");
    // the chosen one is the first of the highest, and best_probe/ now scores exactly that
    let scores: Vec<f64> = trials.iter().map(|t| t["probe_top1"].as_f64().unwrap()).collect();
    let top = scores.iter().cloned().fold(f64::MIN, f64::max);
    let chosen = weights[scores.iter().position(|&v| v == top).unwrap()];
    assert_eq!(report["chosen_weight"].as_f64(), Some(chosen), "{report}");
    assert!((eval_top1(&run.join("best_probe"), &probe) - top).abs() < 1e-9, "{report}");
}

#[test]
fn a_merge_is_the_interpolation_of_the_encoders_with_the_heads_as_trained() {
    let mut s = setup(ModelType::PolyEncoder, "plain");
    let probe_path = write_unseen_probe(&s.root);
    s.cfg.max_steps = 10;
    s.cfg.val_every = 10;
    s.cfg.calibrate = false;
    let run = train(&s.cfg, &TrainOptions::default()).unwrap().run_dir;
    let ckpt = Checkpoint::load(&run.join("last"), Device::Cpu).unwrap();
    let trained = ckpt.model.named_tensors_cpu();
    let trained: Vec<(String, Tensor)> = trained.into_iter().map(|(k, v)| (k, v.copy())).collect();
    let base_dir = s.root.join("tiny-bert");
    let base = ZscModel::from_base(ckpt.model.spec.clone(), &base_dir, Device::Cpu).unwrap().named_tensors_cpu();

    let ends = MergeEnds::new(&ckpt.model, &base_dir).unwrap();
    let probe = Probe::load(&[probe_path], 0, 7, &[]).unwrap();
    // an unmerged score below any real one: a merge must win
    let unmerged = ProbeScores { macro_top1: -1.0, per_task: Default::default() };
    let report = choose_merge(&ckpt.model, &ends, &[0.25], &probe, &ckpt.tokenizer, 10, unmerged).unwrap();
    assert_eq!(report.chosen_weight, 0.25);
    assert_eq!(report.trials.len(), 2);

    let now = ckpt.model.named_tensors_cpu();
    let (mut encoder_checked, mut moved) = (0, 0);
    for (name, t) in &trained {
        if name == tensor_names::POLY_CODES || ZscModel::is_head_param(name) {
            assert!(close(&now[name], t), "head parameter {name} must keep its trained value");
            continue;
        }
        let want = t * 0.25 + &base[name] * 0.75;
        assert!(close(&now[name], &want), "{name} is not 0.25 * trained + 0.75 * base");
        encoder_checked += 1;
        moved += usize::from(!close(t, &base[name]));
    }
    // the check means something only if training moved the encoder away from the base
    assert!(encoder_checked > 10 && moved * 2 > encoder_checked, "{moved} of {encoder_checked} moved");

    // out of range weights are a config error
    s.cfg.base_merge = vec![1.5];
    assert!(train(&s.cfg, &TrainOptions::default()).unwrap_err().to_string().contains("base_merge"));
}
