//! The trainer binary must load libtorch's CUDA libraries whenever the libtorch it was built
//! against has them: a linker with `--as-needed` drops libtorch_cuda.so (nothing references its
//! symbols; it registers CUDA kernels in static initialisers) and `--device auto` then silently
//! trains on the CPU of a GPU machine. Checked here on the CPU box, where no GPU is needed to see it.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn trainer_binary_links_libtorch_cuda_when_libtorch_has_it() {
    let libtorch = PathBuf::from(std::env::var("LIBTORCH").expect("LIBTORCH is set by .cargo/config.toml"));
    let has_cuda = libtorch.join("lib").join("libtorch_cuda.so").exists();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer")).args(["devices", "--json"]).output().expect("runs the trainer");
    assert!(out.status.success(), "trainer devices failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["cuda_linked"], has_cuda, "libtorch {} has CUDA: {has_cuda}; report {report}", libtorch.display());
    if has_cuda {
        // the CUDA-graph code is compiled whenever libtorch has CUDA and setup.sh put its headers there
        assert_eq!(report["cuda_graphs"], true, "{report}");
    }
    // and the dynamic section names the libraries (what a stripped copy carried to a GPU box relies on)
    if let Ok(elf) = Command::new("readelf").args(["-d", env!("CARGO_BIN_EXE_trainer")]).output() {
        let text = String::from_utf8_lossy(&elf.stdout);
        assert_eq!(text.contains("[libtorch_cuda.so]"), has_cuda, "{text}");
        assert_eq!(text.contains("[libc10_cuda.so]"), has_cuda, "{text}");
    }
}
