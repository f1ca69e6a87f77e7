//! Build script of the trainer:
//! - bakes an rpath to libtorch into every binary, so `cargo run -p zsc-trainer`, `cargo test` and the
//!   built binary find libtorch without LD_LIBRARY_PATH;
//! - links libtorch's CUDA libraries when it has them. torch-sys names them, but Linux linkers
//!   default to `--as-needed` and drop a library no symbol is taken from; libtorch_cuda only
//!   registers its kernels in static initialisers, so without it CUDA looks absent at run time
//!   (`--device auto` then silently trains on the CPU). `--no-as-needed` keeps them.
//! - compiles `csrc/fast_ops.cpp` (fused AdamW, foreach clipping, autocast dtype, CUDA graphs).
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-changed=csrc/fast_ops.cpp");
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        println!("cargo:warning=LIBTORCH is not set: run scripts/setup.sh (the fast ops need libtorch's headers)");
        return;
    };
    let libtorch = libtorch.canonicalize().unwrap_or(libtorch);
    let lib = libtorch.join("lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());

    let has_cuda = lib.join("libtorch_cuda.so").exists();
    if has_cuda {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,-lc10_cuda,--as-needed");
    }
    let cuda_include = if has_cuda { cuda_runtime_include(&libtorch) } else { None };
    if has_cuda && cuda_include.is_none() {
        println!("cargo:warning=libtorch has CUDA but no CUDA headers (cuda_runtime_api.h, crt/host_config.h) were found (re-run scripts/setup.sh, or set CUDA_HOME): training on CUDA runs without CUDA graphs");
    }

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("csrc/fast_ops.cpp")
        .include(libtorch.join("include"))
        .flag_if_supported("-std=c++17")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .define("_GLIBCXX_USE_CXX11_ABI", std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into()).as_str());
    if let Some(inc) = &cuda_include {
        build.include(inc).define("ZSC_WITH_CUDA", None);
        println!("cargo:rustc-cfg=zsc_cuda_graphs");
    }
    println!("cargo::rustc-check-cfg=cfg(zsc_cuda_graphs)");
    build.compile("zsc_fast_ops");
}

/// The folder holding `cuda_runtime_api.h`: a CUDA toolkit, or the `nvidia-cuda-runtime` wheel
/// that sits beside a PyPI torch (`site-packages/nvidia/cu*/include`).
fn cuda_runtime_include(libtorch: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        candidates.push(PathBuf::from(home).join("include"));
    }
    if let Some(site) = libtorch.parent() {
        if let Ok(entries) = std::fs::read_dir(site.join("nvidia")) {
            for e in entries.flatten() {
                candidates.push(e.path().join("include"));
                candidates.push(e.path().join("cuda_runtime").join("include"));
            }
        }
        candidates.push(site.join("nvidia").join("cuda_runtime").join("include"));
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    candidates.into_iter().find(|d| d.join("cuda_runtime_api.h").exists() && d.join("crt").join("host_config.h").exists())
}
