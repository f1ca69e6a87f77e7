//! Seeded determinism and exact `--resume`. Alone in its own test binary: the torch RNG is
//! process-global, so concurrent tests in one process would interleave their dropout draws.

use tch::Device;
use zsc_core::ModelType;
use zsc_trainer::checkpoint::Checkpoint;
use zsc_trainer::train::read_metrics;
use zsc_trainer::{train, TrainOptions};

mod common;
use common::setup;

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
