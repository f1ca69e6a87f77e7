//! The `zsc-export` command line (also `trainer export`): [`ExportArgs`] and [`run`].

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use zsc_core::{ColbertScoring, MaxSimDirection, ModelType, Quantization, Similarity, SpecialTokenSides};

use crate::quantize::{parse_keep_f32, LinearRole};
use crate::{export_bundle, ExportOptions, DEFAULT_OPSET};

/// Turns a trainer checkpoint folder (or a plain Hugging Face BERT folder, as a bi-encoder) into an
/// ONNX bundle: manifest.json, encoder.onnx, head.safetensors, tokenizer.json.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct ExportArgs {
    /// Checkpoint folder (model.safetensors, config.json, tokenizer.json, zsc_checkpoint.json), a
    /// plain Hugging Face / sentence-transformers folder, or a Hub id (`BAAI/bge-small-en-v1.5`,
    /// optionally `@revision`) fetched into the standard Hugging Face cache.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Bundle folder to write (replaced if it already holds a bundle).
    #[arg(long)]
    pub out: PathBuf,
    /// bi_encoder | poly_encoder | colbert. Checkpoints carry their own type (a different value is an
    /// error); a plain Hugging Face folder exports as bi_encoder, or as colbert scoring its own
    /// token vectors (the untrained floor of a ColBERT: identity projection, scale 1).
    #[arg(long)]
    pub model_type: Option<ModelType>,
    /// ONNX opset (17 or newer).
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    pub opset: i64,
    /// Tokens per text/label (default: the checkpoint's, or 128 for a plain folder).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Plain Hugging Face folder only: dot | cosine (a checkpoint keeps the similarity it was trained with).
    #[arg(long, value_parser = parse_similarity)]
    pub similarity: Option<Similarity>,
    /// none (f32) | int8: the encoder's linear layers with int8 weights (per output channel) and
    /// activations quantized per call (docs/speed.md for speed and accuracy). The runtime loads
    /// either without options.
    #[arg(long, default_value_t = Quantization::None)]
    pub quantize: Quantization,
    /// int8 only: linear layers kept in f32, comma-separated from attention-in, attention-out,
    /// ffn-in, ffn-out; or none (every layer int8: fastest, check it on your data). The default
    /// keeps the feed-forward output in f32, whose input has outliers int8 cannot hold (docs/encoders.md).
    // `std::vec::Vec`: one value holding the whole list, not clap's repeated flag.
    #[arg(long, default_value = "ffn-out", value_parser = parse_keep_f32)]
    pub int8_keep_f32: std::vec::Vec<LinearRole>,
    /// Plain folder only: prompt before every text: a name of the model's prompts (`query`) or the
    /// text itself (`""` for none). Default: the model's default prompt, if it has one.
    #[arg(long)]
    pub text_prompt: Option<String>,
    /// Plain folder only: the same for labels.
    #[arg(long)]
    pub label_prompt: Option<String>,
    /// ColBERT from a plain folder only: label_to_text | text_to_label | symmetric (a checkpoint
    /// keeps the direction it was trained with).
    #[arg(long)]
    pub maxsim: Option<MaxSimDirection>,
    /// ColBERT from a plain folder only: which sides keep [CLS]/[SEP] in MaxSim: both | text | label | none.
    #[arg(long)]
    pub colbert_special_tokens: Option<SpecialTokenSides>,
}

fn parse_similarity(s: &str) -> Result<Similarity, String> {
    match s {
        "dot" => Ok(Similarity::Dot),
        "cosine" => Ok(Similarity::Cosine),
        other => Err(format!("unknown similarity `{other}`, expected dot or cosine")),
    }
}

/// Export as the command line asks and print one line describing the bundle written.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let opts = ExportOptions {
        model_type: args.model_type,
        opset: args.opset,
        max_length: args.max_length,
        similarity: args.similarity,
        quantization: args.quantize,
        int8_keep_f32: args.int8_keep_f32,
        text_prompt: args.text_prompt,
        label_prompt: args.label_prompt,
        colbert_scoring: (args.maxsim.is_some() || args.colbert_special_tokens.is_some()).then(|| ColbertScoring {
            maxsim: args.maxsim.unwrap_or_default(),
            special_tokens: args.colbert_special_tokens.unwrap_or_default(),
        }),
    };
    let hub = zsc_core::hub::HubOptions::from_env().with_progress(std::io::stderr().is_terminal());
    let src = zsc_core::hub::resolve(&args.checkpoint.to_string_lossy(), zsc_core::hub::Wanted::Bert, &hub)
        .with_context(|| format!("finding {}", args.checkpoint.display()))?;
    let manifest = export_bundle(&src, &args.out, &opts)
        .with_context(|| format!("exporting {} to {}", args.checkpoint.display(), args.out.display()))?;
    println!(
        "wrote {} ({}, hidden {}, output `{}` dim {}, max_length {}, opset {}, quantization {})",
        args.out.display(),
        manifest.spec.model_type,
        manifest.spec.hidden_size,
        manifest.output,
        manifest.output_dim,
        manifest.spec.max_length,
        manifest.opset,
        manifest.quantization
    );
    Ok(())
}
