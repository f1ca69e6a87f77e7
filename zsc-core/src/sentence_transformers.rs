//! The sentence-transformers folder around a Hugging Face encoder: how token states become one
//! sentence vector (`modules.json`, `1_Pooling/config.json`, a `Normalize` module), the prompts
//! texts and labels get (`config_sentence_transformers.json`), the length limit
//! (`sentence_bert_config.json`) and the similarity the model was trained for. Checkpoints and
//! bundles record the result as [`SentenceEmbedding`], so that an untouched base scores as
//! sentence-transformers scores it and a trained one keeps its base's pooling and prompts.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Similarity;
use crate::error::{CoreError, Result};
use crate::json_file::read_json;

/// How token states `[T, H]` become one vector (sentence-transformers' `Pooling` modes).
/// Padding never takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean of the real tokens (what every bundle before this field used).
    #[default]
    Mean,
    /// The first token (`[CLS]` / `<s>`).
    Cls,
    /// Element-wise max over the real tokens.
    Max,
    /// The last real token.
    LastToken,
    /// Sum of the real tokens divided by the square root of their count.
    MeanSqrtLenTokens,
}

impl Pooling {
    pub const ALL: [Pooling; 5] = [Pooling::Mean, Pooling::Cls, Pooling::Max, Pooling::LastToken, Pooling::MeanSqrtLenTokens];

    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::LastToken => "last_token",
            Pooling::MeanSqrtLenTokens => "mean_sqrt_len_tokens",
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Pooling {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        Pooling::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| CoreError::Config {
            field: "pooling".into(),
            message: format!("unknown pooling `{s}` (expected one of mean, cls, max, last_token, mean_sqrt_len_tokens)"),
        })
    }
}

/// How a model turns a text or a label into one vector: recorded in checkpoints and bundles.
/// Absent in older files, whose default (mean pooling, no prompt, no normalisation) is what they did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentenceEmbedding {
    #[serde(default)]
    pub pooling: Pooling,
    /// The model ends in a `Normalize` module: `embed` returns unit vectors. Scores do not depend
    /// on it (cosine models are scale-free; a dot model is scored as it was trained).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub normalize: bool,
    /// Put before every text (e5: `"query: "`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text_prompt: String,
    /// Put before every label, after any label template is applied.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label_prompt: String,
}

impl SentenceEmbedding {
    pub fn is_default(&self) -> bool {
        *self == SentenceEmbedding::default()
    }

    /// A text as the encoder sees it.
    pub fn text_input(&self, text: &str) -> String {
        format!("{}{text}", self.text_prompt)
    }

    /// A label (already through any template) as the encoder sees it.
    pub fn label_input(&self, label: &str) -> String {
        format!("{}{label}", self.label_prompt)
    }
}

/// What a sentence-transformers folder says about its model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SentenceTransformerFolder {
    /// Pooling and normalisation from the modules; the prompts of [`Self::default_prompt`].
    pub embedding: SentenceEmbedding,
    /// `sentence_bert_config.json`'s `max_seq_length`, else `tokenizer_config.json`'s `model_max_length`.
    pub max_seq_length: Option<usize>,
    /// `similarity_fn_name` (sentence-transformers' default is cosine); `None` without the file.
    pub similarity: Option<Similarity>,
    /// Named prompts (`{"query": "query: ", "passage": "passage: "}`).
    pub prompts: BTreeMap<String, String>,
    /// The prompt `encode` applies when none is named.
    pub default_prompt_name: Option<String>,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

/// `1_Pooling/config.json`: sentence-transformers 6 writes `pooling_mode` (a name, or a list of
/// names whose results are concatenated); older versions one `pooling_mode_*` flag per mode.
#[derive(Deserialize)]
struct PoolingFile {
    #[serde(default)]
    pooling_mode: Option<serde_json::Value>,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
    #[serde(default = "yes")]
    include_prompt: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct StConfigFile {
    #[serde(default)]
    prompts: BTreeMap<String, String>,
    #[serde(default)]
    default_prompt_name: Option<String>,
    #[serde(default)]
    similarity_fn_name: Option<String>,
}

#[derive(Deserialize)]
struct SbertConfigFile {
    #[serde(default)]
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct TokenizerConfigFile {
    #[serde(default)]
    model_max_length: Option<f64>,
}

fn data_err(path: &Path, message: String) -> CoreError {
    CoreError::Data { path: path.to_path_buf(), message }
}

fn pooling_of(path: &Path) -> Result<Pooling> {
    let p: PoolingFile = read_json(path)?;
    if !p.include_prompt {
        return Err(data_err(path, "include_prompt: false (prompt tokens left out of the pooling) is not supported".into()));
    }
    if let Some(mode) = &p.pooling_mode {
        let names: Vec<&str> = match mode {
            serde_json::Value::String(s) => vec![s.as_str()],
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => vec![],
        };
        return match names.as_slice() {
            [name] => match *name {
                "mean" => Ok(Pooling::Mean),
                "cls" => Ok(Pooling::Cls),
                "max" => Ok(Pooling::Max),
                "lasttoken" => Ok(Pooling::LastToken),
                "mean_sqrt_len_tokens" => Ok(Pooling::MeanSqrtLenTokens),
                other => Err(data_err(
                    path,
                    format!("pooling mode `{other}` is not supported (mean, cls, max, lasttoken, mean_sqrt_len_tokens)"),
                )),
            },
            _ => Err(data_err(path, format!("pooling_mode {mode}: exactly one mode is supported"))),
        };
    }
    let modes = [
        (p.pooling_mode_mean_tokens, Some(Pooling::Mean), "mean"),
        (p.pooling_mode_cls_token, Some(Pooling::Cls), "cls"),
        (p.pooling_mode_max_tokens, Some(Pooling::Max), "max"),
        (p.pooling_mode_lasttoken, Some(Pooling::LastToken), "lasttoken"),
        (p.pooling_mode_mean_sqrt_len_tokens, Some(Pooling::MeanSqrtLenTokens), "mean_sqrt_len_tokens"),
        (p.pooling_mode_weightedmean_tokens, None, "weightedmean"),
    ];
    let on: Vec<_> = modes.iter().filter(|m| m.0).collect();
    match on.as_slice() {
        [(_, Some(mode), _)] => Ok(*mode),
        [(_, None, name)] => Err(data_err(
            path,
            format!("pooling mode `{name}` is not supported (mean, cls, max, lasttoken, mean_sqrt_len_tokens)"),
        )),
        // sentence-transformers takes no mode at all as mean
        [] => Ok(Pooling::Mean),
        several => {
            let names: Vec<&str> = several.iter().map(|m| m.2).collect();
            Err(data_err(path, format!("several pooling modes at once ({}) are not supported", names.join(" + "))))
        }
    }
}

impl SentenceTransformerFolder {
    /// Read the folder's sentence-transformers files. A plain Hugging Face folder (no
    /// `modules.json`) gives mean pooling and no prompt, what this project always did. Modules
    /// other than Transformer, Pooling and Normalize (a `Dense` layer, say) are an error naming them.
    pub fn read(dir: &Path) -> Result<Self> {
        let mut out = SentenceTransformerFolder::default();
        let modules_path = dir.join("modules.json");
        if modules_path.is_file() {
            let modules: Vec<ModuleEntry> = read_json(&modules_path)?;
            let mut pooling = None;
            for m in &modules {
                let kind = m.kind.rsplit('.').next().unwrap_or(&m.kind);
                match kind {
                    "Transformer" => {}
                    "Pooling" => pooling = Some(pooling_of(&dir.join(&m.path).join("config.json"))?),
                    "Normalize" => out.embedding.normalize = true,
                    other => {
                        return Err(data_err(
                            &modules_path,
                            format!("module `{other}` ({}) is not supported: only Transformer, Pooling and Normalize", m.kind),
                        ))
                    }
                }
            }
            out.embedding.pooling = pooling.unwrap_or_default();
        }
        // the length: `max_seq_length` of older folders, else the tokenizer's `model_max_length`
        // (where sentence-transformers 6 keeps it); only for sentence-transformers folders
        let sbert = dir.join("sentence_bert_config.json");
        if sbert.is_file() {
            out.max_seq_length = read_json::<SbertConfigFile>(&sbert)?.max_seq_length;
            let tok = dir.join("tokenizer_config.json");
            if out.max_seq_length.is_none() && tok.is_file() {
                // tokenizers without a limit write a huge sentinel (1e30): not a length
                out.max_seq_length =
                    read_json::<TokenizerConfigFile>(&tok)?.model_max_length.filter(|&n| n < 1e9).map(|n| n as usize);
            }
        }
        let st = dir.join("config_sentence_transformers.json");
        if st.is_file() {
            let c: StConfigFile = read_json(&st)?;
            out.similarity = match c.similarity_fn_name.as_deref() {
                None | Some("cosine") => Some(Similarity::Cosine),
                Some("dot") | Some("dot_product") => Some(Similarity::Dot),
                Some(other) => return Err(data_err(&st, format!("similarity_fn_name `{other}` is not supported (cosine, dot)"))),
            };
            out.prompts = c.prompts;
            out.default_prompt_name = c.default_prompt_name.filter(|n| !n.is_empty());
            if let Some(name) = &out.default_prompt_name {
                let prompt = out
                    .prompt(name)
                    .ok_or_else(|| data_err(&st, format!("default_prompt_name `{name}` is not among the prompts")))?;
                out.embedding.text_prompt = prompt.clone();
                out.embedding.label_prompt = prompt;
            }
        } else if modules_path.is_file() {
            out.similarity = Some(Similarity::Cosine);
        }
        Ok(out)
    }

    pub fn prompt(&self, name: &str) -> Option<String> {
        self.prompts.get(name).cloned()
    }

    /// A prompt option: the name of one of the model's prompts (`query`), else the literal text
    /// (`"query: "`; `""` for none).
    pub fn resolve_prompt(&self, option: &str) -> String {
        self.prompt(option).unwrap_or_else(|| option.to_string())
    }

    /// The folder's embedding with the prompts a user chose (`None` keeps the model's default).
    pub fn embedding_with(&self, text_prompt: Option<&str>, label_prompt: Option<&str>) -> SentenceEmbedding {
        let mut e = self.embedding.clone();
        if let Some(p) = text_prompt {
            e.text_prompt = self.resolve_prompt(p);
        }
        if let Some(p) = label_prompt {
            e.label_prompt = self.resolve_prompt(p);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    const MODULES: &str = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
        {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
        {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#;

    #[test]
    fn a_plain_folder_is_what_bundles_always_did() {
        let d = folder(&[]);
        let f = SentenceTransformerFolder::read(d.path()).unwrap();
        assert!(f.embedding.is_default() && f.similarity.is_none() && f.max_seq_length.is_none());
    }

    #[test]
    fn modules_pooling_prompts_and_length_are_read() {
        let d = folder(&[
            ("modules.json", MODULES),
            (
                "1_Pooling/config.json",
                r#"{"word_embedding_dimension": 8, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
            ),
            ("sentence_bert_config.json", r#"{"max_seq_length": 256, "do_lower_case": false}"#),
            (
                "config_sentence_transformers.json",
                r#"{"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": "query", "similarity_fn_name": "dot"}"#,
            ),
        ]);
        let f = SentenceTransformerFolder::read(d.path()).unwrap();
        assert_eq!(f.embedding.pooling, Pooling::Cls);
        assert!(f.embedding.normalize);
        assert_eq!((f.max_seq_length, f.similarity), (Some(256), Some(Similarity::Dot)));
        assert_eq!((f.embedding.text_prompt.as_str(), f.embedding.label_prompt.as_str()), ("query: ", "query: "));
        let e = f.embedding_with(None, Some("passage"));
        assert_eq!((e.text_input("hi"), e.label_input("sports")), ("query: hi".to_string(), "passage: sports".to_string()));
        assert_eq!(f.embedding_with(Some(""), Some("Topic: ")).label_input("x"), "Topic: x");
        assert_eq!(f.embedding_with(Some(""), None).text_input("x"), "x");
    }

    #[test]
    fn what_cannot_be_honoured_is_an_error_naming_it() {
        let dense = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"name":"1","path":"2_Dense","type":"sentence_transformers.models.Dense"}]"#;
        let e = SentenceTransformerFolder::read(folder(&[("modules.json", dense)]).path()).unwrap_err();
        assert!(e.to_string().contains("`Dense`"), "{e}");
        for (pooling, needle) in [
            (r#"{"pooling_mode_weightedmean_tokens": true}"#, "weightedmean"),
            (r#"{"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}"#, "mean + max"),
            (r#"{"pooling_mode_mean_tokens": true, "include_prompt": false}"#, "include_prompt"),
            (r#"{"pooling_mode": ["mean", "cls"]}"#, "exactly one"),
            (r#"{"pooling_mode": "weightedmean"}"#, "weightedmean"),
        ] {
            let d = folder(&[("modules.json", MODULES), ("1_Pooling/config.json", pooling)]);
            let e = SentenceTransformerFolder::read(d.path()).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
        let d = folder(&[("config_sentence_transformers.json", r#"{"similarity_fn_name": "manhattan"}"#)]);
        assert!(SentenceTransformerFolder::read(d.path()).unwrap_err().to_string().contains("manhattan"));
        let d = folder(&[("config_sentence_transformers.json", r#"{"prompts": {}, "default_prompt_name": "query"}"#)]);
        assert!(SentenceTransformerFolder::read(d.path()).unwrap_err().to_string().contains("default_prompt_name"));
    }

    #[test]
    fn sentence_transformers_6_layout_is_read() {
        let modules = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.base.modules.transformer.Transformer"},
            {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
            {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.base.modules.normalize.Normalize"}]"#;
        let d = folder(&[
            ("modules.json", modules),
            ("1_Pooling/config.json", r#"{"embedding_dimension": 64, "pooling_mode": "lasttoken", "include_prompt": true}"#),
            ("sentence_bert_config.json", r#"{"transformer_task": "feature-extraction"}"#),
            ("tokenizer_config.json", r#"{"model_max_length": 48}"#),
            (
                "config_sentence_transformers.json",
                r#"{"prompts": {"query": "query: ", "document": ""}, "default_prompt_name": null, "similarity_fn_name": "cosine"}"#,
            ),
        ]);
        let f = SentenceTransformerFolder::read(d.path()).unwrap();
        assert_eq!((f.embedding.pooling, f.embedding.normalize, f.max_seq_length), (Pooling::LastToken, true, Some(48)));
        assert_eq!((f.embedding.text_prompt.as_str(), f.similarity), ("", Some(Similarity::Cosine)));
        let d = folder(&[("modules.json", MODULES), ("1_Pooling/config.json", "{}")]);
        assert_eq!(SentenceTransformerFolder::read(d.path()).unwrap().embedding.pooling, Pooling::Mean);
    }

    #[test]
    fn older_specs_read_as_the_default_and_it_is_not_written() {
        assert_eq!(serde_json::from_str::<SentenceEmbedding>("{}").unwrap(), SentenceEmbedding::default());
        assert!(SentenceEmbedding::default().is_default());
        assert_eq!("last_token".parse::<Pooling>().unwrap(), Pooling::LastToken);
        assert!("weighted".parse::<Pooling>().is_err());
    }
}
