//! `scripts/gpu_check.sh --dry-run`: the GPU check's own script, run on the CPU with tiny sizes
//! (the real MiniLM, 4 steps of batch 8), so that what a GPU machine runs cannot rot unseen: it
//! must find the trainer's libtorch, train, read the metrics back and write its JSON report.
//! The PyTorch peer needs `transformers`, which the CI venv lacks: its row then records the error.

use std::process::Command;

use zsc_testkit::fixtures::workspace_root;

#[test]
fn gpu_check_dry_run_trains_and_reports() {
    let root = workspace_root();
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(root.join("scripts/gpu_check.sh"))
        .args(["--dry-run", "--skip-quality", "--trainer", env!("CARGO_BIN_EXE_trainer")])
        .arg("--out")
        .arg(out.path())
        .arg("--work")
        .arg(work.path())
        .current_dir(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "gpu_check.sh --dry-run failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("gpu_check.json")).unwrap()).unwrap();
    assert_eq!(report["dry_run"], true);
    let has_cuda = std::path::Path::new(&std::env::var("LIBTORCH").unwrap()).join("lib/libtorch_cuda.so").exists();
    assert_eq!(report["devices"]["cuda_linked"], has_cuda, "{report}");
    let ours: Vec<&serde_json::Value> =
        report["speed"].as_array().unwrap().iter().filter(|r| r["impl"] == "trainer (tch)").collect();
    assert_eq!(ours.len(), 2, "{report}");
    for r in ours {
        assert_eq!(r["rc"], 0, "{r}");
        assert!(r["steps_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["mode"], "cpu");
    }
    assert!(report["speed"].as_array().unwrap().iter().any(|r| r["impl"].as_str().unwrap().starts_with("pytorch")));
}
