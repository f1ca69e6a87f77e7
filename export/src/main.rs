//! `zsc-export --checkpoint CKPT --out BUNDLE [--model-type bi_encoder] [--opset 17] [--max-length N] [--quantize none|int8]`
//!
//! The exporter without libtorch, for boxes that only export; `trainer export` is the same command.

use clap::Parser;
use zsc_export::cli::ExportArgs;

/// Turns a trainer checkpoint folder (or a plain Hugging Face / sentence-transformers folder) into an
/// ONNX bundle: manifest.json, encoder.onnx, head.safetensors, tokenizer.json.
#[derive(Debug, Parser)]
#[command(name = "zsc-export", version)]
struct Cli {
    #[command(flatten)]
    args: ExportArgs,
}

fn main() {
    zsc_core::logging::init("info");
    if let Err(e) = zsc_export::cli::run(Cli::parse().args) {
        eprintln!("error: {}", zsc_core::error::error_chain(e.as_ref()));
        std::process::exit(1);
    }
}
