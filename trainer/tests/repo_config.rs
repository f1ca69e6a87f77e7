//! The repository's own `config.yml` (what `trainer train` and `make demo` use when no config is
//! named) loads for every architecture, names files that exist, and keeps the protocol's promise:
//! checkpoints are chosen on the held-out *dev* files only, never on the files the README reports.

use std::path::{Path, PathBuf};

use zsc_core::ModelType;
use zsc_trainer::config::TrainConfig;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn repo_config() -> TrainConfig {
    TrainConfig::load(&repo().join("config.yml")).unwrap_or_else(|e| panic!("config.yml: {e}"))
}

#[test]
fn config_yml_resolves_for_every_architecture() {
    let cfg = repo_config();
    for model_type in [ModelType::BiEncoder, ModelType::PolyEncoder, ModelType::Colbert] {
        let mut c = cfg.clone();
        c.model_type = model_type;
        let resolved =
            c.with_architecture_defaults(&Default::default()).unwrap_or_else(|e| panic!("config.yml for {model_type}: {e}"));
        assert!(resolved.per_architecture.is_empty());
        assert!(repo().join(&resolved.data).is_file(), "{}: no such data file", resolved.data.display());
    }
}

#[test]
fn config_yml_probes_dev_files_only() {
    let cfg = repo_config();
    assert!(cfg.probe_data.len() >= 4, "the probe is the four held-out tasks: {:?}", cfg.probe_data);
    for path in &cfg.probe_data {
        assert!(repo().join(path).is_file(), "{}: no such probe file", path.display());
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(name.ends_with("_dev.json"), "{name}: probe files must be dev files (tests are reported, never chosen on)");
    }
}

/// Every recipe of the grid files (`scripts/zero_shot_grid*.json`, what `zero_shot_grid.py` and
/// the GPU check pass as `--set` over `config.yml`) is a valid config: a typo must not cost a GPU
/// session.
#[test]
fn grid_recipes_are_valid_configs() {
    let base: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(repo().join("config.yml")).unwrap()).unwrap();
    let mut checked = 0;
    for file in ["scripts/zero_shot_grid_gpu.json", "scripts/zero_shot_grid_runs.json"] {
        let recipes: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(repo().join(file)).unwrap()).unwrap();
        for r in recipes {
            let mut cfg = base.clone();
            let map = cfg.as_mapping_mut().unwrap();
            if let Some(t) = r.get("model_type") {
                map.insert("model_type".into(), serde_yaml::to_value(t).unwrap());
            }
            for (k, v) in r["set"].as_object().into_iter().flatten() {
                map.insert(k.as_str().into(), serde_yaml::to_value(v).unwrap());
            }
            let text = serde_yaml::to_string(&cfg).unwrap();
            TrainConfig::from_yaml_str(&text, Path::new(file)).unwrap_or_else(|e| panic!("{file} {}: {e}", r["name"]));
            checked += 1;
        }
    }
    assert!(checked >= 9, "{checked}");
}
