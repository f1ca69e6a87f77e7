//! Every supported encoder family in tch (issue #26): the forward against transformers' own
//! implementation, then each head trained a few steps, exported and scored by the runtime. The
//! tiny random models and transformers' outputs come from `scripts/tiny_families.py`.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;
use tch::{Device, Tensor};
use zsc_core::tokenize::TextTokenizer;
use zsc_core::{ModelSpec, ModelType};
use zsc_trainer::config::TrainConfig;
use zsc_trainer::models::{to_vec_f32, BatchTensors};
use zsc_trainer::{train, EncoderConfig, TrainOptions, ZscModel};

const NAMES: [&str; 6] = ["bert_cls", "bert_mean_prompt", "bert_lasttoken", "mpnet", "xlm_roberta", "modernbert"];
/// last_hidden_state, tch vs transformers (f32, random weights).
const TOLERANCE: f64 = 1e-4;

fn families() -> &'static (PathBuf, Value) {
    static F: OnceLock<(PathBuf, Value)> = OnceLock::new();
    F.get_or_init(|| zsc_testkit::tiny_families(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("trainer-families")))
}

fn bi_spec(hidden: usize) -> ModelSpec {
    ModelSpec {
        model_type: ModelType::BiEncoder,
        hidden_size: hidden,
        max_length: 64,
        n_code_vectors: None,
        colbert_dim: None,
        label_template: None,
        similarity: Default::default(),
        embedding: Default::default(),
        colbert_scoring: Default::default(),
    }
}

#[test]
fn tch_encoders_match_transformers() {
    let (dir, reference) = families();
    for name in NAMES {
        let base = dir.join(name);
        let cfg = EncoderConfig::load(&base.join("config.json")).unwrap();
        let model = ZscModel::from_base(bi_spec(cfg.hidden_size), &base, Device::Cpu).unwrap();
        let tok = TextTokenizer::from_file(&base.join("tokenizer.json"), 64).unwrap();
        let r = &reference[name];
        let texts: Vec<&str> = r["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        // all texts in one padded batch: padding must not change any real token's state
        let batch = tok.encode_batch(&texts).unwrap();
        let h = tch::no_grad(|| model.encode_tensors(&BatchTensors::new(&batch, Device::Cpu).unwrap(), false));
        let mut worst = 0.0f64;
        for (i, want) in r["hidden"].as_array().unwrap().iter().enumerate() {
            let ids: Vec<i64> = want["input_ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
            assert_eq!(&batch.input_ids[i * batch.seq..i * batch.seq + ids.len()], ids.as_slice(), "{name}: token ids");
            let want: Vec<f32> = want["last_hidden_state"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32))
                .collect();
            let got = to_vec_f32(&h.get(i as i64).narrow(0, 0, ids.len() as i64)).unwrap();
            assert_eq!(got.len(), want.len(), "{name}");
            worst = got.iter().zip(&want).map(|(a, b)| f64::from((a - b).abs())).fold(worst, f64::max);
        }
        println!("{name:>18}: max |tch - transformers| last_hidden_state = {worst:.2e}");
        assert!(worst < TOLERANCE, "{name}: {worst}");
    }
}

/// A few steps of every head on every family, then export and the runtime's scores against the
/// checkpoint's own (tch) scores.
#[test]
fn every_head_trains_exports_and_classifies_on_every_family() {
    let (dir, reference) = families();
    let work = tempfile::tempdir().unwrap();
    common::write_data(&work.path().join("data.json"));
    for (i, name) in NAMES.into_iter().enumerate() {
        let r = &reference[name];
        // half the families train ColBERT with symmetric MaxSim over content tokens only
        let (colbert_maxsim, colbert_special_tokens) = if i % 2 == 1 {
            (zsc_core::MaxSimDirection::Symmetric, zsc_core::SpecialTokenSides::Neither)
        } else {
            Default::default()
        };
        let texts: Vec<String> = r["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        let labels: Vec<String> = r["labels"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        for model_type in [ModelType::BiEncoder, ModelType::PolyEncoder, ModelType::Colbert] {
            let cfg = TrainConfig {
                model_type,
                base_model: dir.join(name).to_string_lossy().into(),
                data: work.path().join("data.json"),
                output_dir: work.path().join("runs"),
                run_name: format!("{name}-{model_type}"),
                device: "cpu".into(),
                max_length: 32,
                batch_size: 8,
                max_steps: 3,
                val_every: 3,
                val_batches: 1,
                n_code_vectors: 4,
                colbert_dim: 16,
                colbert_maxsim,
                colbert_special_tokens,
                anchor_weight: 1.0,
                calibrate: false,
                seed: 3,
                ..TrainConfig::default()
            };
            let summary = train(&cfg, &TrainOptions::default()).unwrap();
            let ckpt_dir = summary.run_dir.join("last");
            let ckpt = zsc_trainer::checkpoint::Checkpoint::load(&ckpt_dir, Device::Cpu).unwrap();
            // the checkpoint keeps its base's pooling and prompts
            let st = zsc_core::SentenceTransformerFolder::read(&dir.join(name)).unwrap();
            assert_eq!(ckpt.info.spec.embedding.pooling, st.embedding.pooling, "{name}");
            assert_eq!(ckpt.info.spec.embedding.text_prompt, st.embedding.text_prompt, "{name}");
            if model_type == ModelType::Colbert {
                assert_eq!(
                    (ckpt.info.spec.colbert_scoring.maxsim, ckpt.info.spec.colbert_scoring.special_tokens),
                    (colbert_maxsim, colbert_special_tokens)
                );
            }
            let want = zsc_trainer::eval::score_texts_labels(&ckpt.model, &ckpt.tokenizer, &texts, &labels, 8).unwrap();
            let bundle = work.path().join(format!("bundle-{name}-{model_type}"));
            zsc_export::export_bundle(&ckpt_dir, &bundle, &zsc_export::ExportOptions::default()).unwrap();
            let clf = zsc::Classifier::from_dir(&bundle, zsc::ClassifierOptions::default()).unwrap();
            let got = clf.scores(&texts, &labels).unwrap();
            let diff = got.iter().flatten().zip(want.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            println!("{name:>18} {model_type:>13}: max |runtime - tch| score = {diff:.2e}");
            assert!(diff < 2e-3, "{name} {model_type}: {diff}");
            assert!(got.iter().flatten().all(|s| s.is_finite()));
        }
    }
    drop(Tensor::zeros([1], (tch::Kind::Float, Device::Cpu)));
}

/// `trainer train --base-model org/name`: a sentence-transformers repo on the Hub stand-in (no
/// network) is fetched into the standard cache with its pooling files, trains, and the checkpoint
/// keeps that pooling; a warm cache trains again offline with the Hub unreachable.
#[test]
fn base_model_by_hub_id_trains_through_the_cache() {
    use zsc_testkit::hub_stand_in::{add_repo, clean_hf_env, dead_endpoint, start_hub};
    let (dir, _) = families();
    let work = tempfile::tempdir().unwrap();
    common::write_data(&work.path().join("data.json"));
    let cfg = TrainConfig {
        data: work.path().join("data.json"),
        output_dir: work.path().join("runs"),
        device: "cpu".into(),
        max_length: 32,
        batch_size: 8,
        max_steps: 2,
        val_every: 2,
        val_batches: 1,
        calibrate: false,
        probe_data: vec![],
        ..TrainConfig::default()
    };
    let cfg_path = work.path().join("config.yml");
    std::fs::write(&cfg_path, serde_yaml::to_string(&cfg).unwrap()).unwrap();
    let (url, state) = start_hub();
    add_repo(&state, "zsc-test/bert-cls", false, &dir.join("bert_cls"));
    let home = work.path().join("hf_home");
    let train = |run: &str, env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"));
        clean_hf_env(&mut c).args(["train", "--config"]).arg(&cfg_path).args([
            "--base-model",
            "zsc-test/bert-cls",
            "--run-name",
            run,
        ]);
        let out = c.env("HF_HOME", &home).envs(env.iter().copied()).output().unwrap();
        assert!(out.status.success(), "{run}: {}", String::from_utf8_lossy(&out.stderr));
        zsc_core::CheckpointInfo::load(&work.path().join("runs").join(run).join("last")).unwrap()
    };
    let info = train("cold", &[("HF_ENDPOINT", &url)]);
    assert!(home.join("hub/models--zsc-test--bert-cls/snapshots").is_dir(), "not in the standard cache layout");
    // cls pooling and Normalize come only from the repo's sentence-transformers files
    assert_eq!((info.spec.embedding.pooling, info.spec.embedding.normalize), (zsc_core::Pooling::Cls, true));
    let info = train("warm", &[("HF_ENDPOINT", &dead_endpoint()), ("HF_HUB_OFFLINE", "1")]);
    assert_eq!(info.spec.embedding.pooling, zsc_core::Pooling::Cls);
}
