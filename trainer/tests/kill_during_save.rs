//! A crash never loses a model: the real `trainer` binary saves `best/` and `last/` after every
//! step (`val_every: 1`) and is SIGKILLed at several moments, resuming the same run each time.
//! After every kill both checkpoints load (or, before the first save, neither exists half-written)
//! and the binary never panicked.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tch::Device;
use zsc_core::manifest::checkpoint_files;
use zsc_core::ModelType;
use zsc_trainer::Checkpoint;

mod common;
use common::setup;

/// A checkpoint name under `run` is either absent or complete (`zsc_checkpoint.json` present);
/// returns whether it is complete.
fn complete_or_absent(run: &Path, name: &str) -> bool {
    let dir = run.join(name);
    if dir.exists() {
        assert!(dir.join(checkpoint_files::INFO).exists(), "{} exists without {}", dir.display(), checkpoint_files::INFO);
        return true;
    }
    // a kill between the two renames of a save leaves the previous complete version as `.<name>.old-<pid>`
    std::fs::read_dir(run)
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(&format!(".{name}.old-"))
                    && e.path().join(checkpoint_files::INFO).exists()
            })
        })
        .unwrap_or(false)
}

/// Process `pid` is saving `best/` or `last/`: its temporary folder exists.
fn save_in_progress(run: &Path, pid: u32) -> bool {
    std::fs::read_dir(run)
        .map(|entries| {
            entries.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n == format!(".best.tmp-{pid}") || n == format!(".last.tmp-{pid}")
            })
        })
        .unwrap_or(false)
}

#[test]
fn sigkill_at_any_moment_leaves_loadable_checkpoints() {
    let s = setup(ModelType::PolyEncoder, "killed");
    let mut cfg = s.cfg.clone();
    cfg.max_steps = 400;
    cfg.val_every = 1;
    cfg.val_batches = 1;
    let cfg_path = s.root.join("config.yml");
    std::fs::write(&cfg_path, serde_yaml::to_string(&cfg).unwrap()).unwrap();
    let run = cfg.output_dir.join("killed");

    let mut saved: Vec<&str> = Vec::new();
    let mut last_step_seen = 0;
    // Kill 0 comes 300 ms after the start, before any save. The others wait until a save is
    // under way (its `.best.tmp-<pid>` / `.last.tmp-<pid>` folder appears), then kill after
    // 0..250 ms: inside the save, between its renames, or just after it. Waiting for the event
    // rather than a fixed time keeps the test meaningful on a slow or loaded machine.
    for (i, delay_ms) in [None, Some(0u64), Some(100), Some(250), Some(0), Some(40)].into_iter().enumerate() {
        let stderr_path = s.root.join(format!("stderr-{i}.txt"));
        let resume = complete_or_absent(&run, "last");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
        cmd.args(["train", "--config"]).arg(&cfg_path).args(["--device", "cpu"]);
        if resume {
            cmd.arg("--resume");
        }
        let mut child =
            cmd.stdout(Stdio::null()).stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap())).spawn().unwrap();
        match delay_ms {
            None => std::thread::sleep(Duration::from_millis(300)),
            Some(ms) => {
                let t0 = Instant::now();
                while !save_in_progress(&run, child.id()) && t0.elapsed() < Duration::from_secs(120) {
                    if child.try_wait().unwrap().is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                std::thread::sleep(Duration::from_millis(ms));
            }
        }
        let sleep_ms = delay_ms.unwrap_or(300);
        // SIGKILL: no destructor, no cleanup; the run may also have ended already
        let _ = child.kill();
        let status = child.wait().unwrap();
        let stderr = std::fs::read_to_string(&stderr_path).unwrap();
        assert!(!stderr.contains("panicked"), "run {i} (resume {resume}) panicked:\n{stderr}");
        if status.success() {
            // finished before the kill: it must have reached the last step
            assert_eq!(zsc_core::CheckpointInfo::load(&run.join("last")).unwrap().step, cfg.max_steps);
        }

        for name in ["best", "last"] {
            if !complete_or_absent(&run, name) {
                // only a kill before this checkpoint's first save may leave it absent
                assert!(!saved.contains(&name), "after kill {i}: {name}/, saved earlier, is gone");
                continue;
            }
            saved.push(name);
            let ckpt = Checkpoint::load(&run.join(name), Device::Cpu)
                .unwrap_or_else(|e| panic!("after kill {i} ({sleep_ms} ms): {name}/ does not load: {e}"));
            assert_eq!(ckpt.info.spec.model_type, ModelType::PolyEncoder);
            assert!(ckpt.info.step >= 1 && ckpt.info.step <= cfg.max_steps);
            if name == "last" {
                let state = ckpt.trainer_state().unwrap();
                assert_eq!(state.step, ckpt.info.step);
                assert!(state.step >= last_step_seen, "last/ went back from step {last_step_seen} to {}", state.step);
                last_step_seen = state.step;
            }
        }
    }
    assert!(saved.contains(&"last"), "no kill came after the first save of last/");

    // the run still continues from what the kills left behind
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "--config"])
        .arg(&cfg_path)
        .args(["--device", "cpu", "--resume", "--max-steps"])
        .arg((last_step_seen + 1).to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("panicked"), "{stderr}");
    let last = Checkpoint::load(&run.join("last"), Device::Cpu).unwrap();
    assert_eq!(last.info.step, last_step_seen + 1);
    Checkpoint::load(&run.join("best"), Device::Cpu).unwrap();
}
