//! Tokenisation shared by the trainer and the runtime, so both see identical ids.
//!
//! The base model's `tokenizer.json` pads every input to a fixed 128 tokens; here padding is
//! always reset to the longest sequence of the batch, and truncation to `max_length`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::error::{CoreError, Result};

static TRUNCATION_WARNED: AtomicBool = AtomicBool::new(false);

/// A batch of token ids, row-major `[batch, seq]`, ready for BERT.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub token_type_ids: Vec<i64>,
    pub batch: usize,
    pub seq: usize,
}

impl TokenBatch {
    /// Number of real (non-padding) tokens of row `i`.
    pub fn real_len(&self, i: usize) -> usize {
        self.attention_mask[i * self.seq..(i + 1) * self.seq].iter().filter(|&&m| m != 0).count()
    }

    /// The same rows padded on the right to `seq` tokens (`pad_id`, mask 0, type 0), for inputs
    /// of a fixed shape. Rows longer than `seq` are cut to it (never the case after truncation to
    /// `max_length` when `seq >= max_length`).
    pub fn padded_to(&self, seq: usize, pad_id: i64) -> TokenBatch {
        let mut out = TokenBatch {
            input_ids: Vec::with_capacity(self.batch * seq),
            attention_mask: Vec::with_capacity(self.batch * seq),
            token_type_ids: Vec::with_capacity(self.batch * seq),
            batch: self.batch,
            seq,
        };
        for i in 0..self.batch {
            let row = i * self.seq..(i + 1) * self.seq;
            for (dst, src, fill) in [
                (&mut out.input_ids, &self.input_ids[row.clone()], pad_id),
                (&mut out.attention_mask, &self.attention_mask[row.clone()], 0),
                (&mut out.token_type_ids, &self.token_type_ids[row], 0),
            ] {
                dst.extend(src.iter().take(seq));
                dst.extend(std::iter::repeat_n(fill, seq.saturating_sub(src.len())));
            }
        }
        out
    }
}

#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_length: usize,
    path: PathBuf,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer").field("path", &self.path).field("max_length", &self.max_length).finish()
    }
}

impl TextTokenizer {
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self> {
        let terr = |message: String| CoreError::Tokenizer { path: path.to_path_buf(), message };
        if !path.exists() {
            return Err(terr("file not found".into()));
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| terr(e.to_string()))?;
        let mut padding = inner.get_padding().cloned().unwrap_or_else(|| {
            let (pad_token, pad_id) = match inner.token_to_id("[PAD]") {
                Some(id) => ("[PAD]".to_string(), id),
                None => ("<pad>".to_string(), 0),
            };
            PaddingParams { pad_token, pad_id, ..Default::default() }
        });
        padding.strategy = PaddingStrategy::BatchLongest;
        padding.pad_to_multiple_of = None;
        inner.with_padding(Some(padding));
        inner.with_truncation(Some(TruncationParams { max_length, ..Default::default() })).map_err(|e| terr(e.to_string()))?;
        Ok(TextTokenizer { inner, max_length, path: path.to_path_buf() })
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Id of the padding token.
    pub fn pad_id(&self) -> i64 {
        self.inner.get_padding().map_or(0, |p| i64::from(p.pad_id))
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Errors unless the tokenizer wraps every sequence in exactly one special token on each side
    /// (`[CLS] ... [SEP]`, `<s> ... </s>`): ColBERT's `special_tokens` setting drops them by
    /// position, the first and the last real token of each row.
    pub fn check_wraps_in_special_tokens(&self) -> Result<()> {
        let terr = |message: String| CoreError::Tokenizer { path: self.path.clone(), message };
        let e = self.inner.encode("a b", true).map_err(|e| terr(e.to_string()))?;
        let special = e.get_special_tokens_mask();
        let wrapped = special.len() >= 3
            && special[0] == 1
            && special[special.len() - 1] == 1
            && special[1..special.len() - 1].iter().all(|&m| m == 0);
        if wrapped {
            Ok(())
        } else {
            Err(terr(format!(
                "dropping ColBERT's special tokens needs a tokenizer that wraps each sequence in one start and one end token; \
                 this one marks {special:?} as special in \"a b\" (use special_tokens: both)"
            )))
        }
    }

    /// Tokenise a batch, padded to its longest member. Warns once per process when a text is
    /// truncated to `max_length`.
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<TokenBatch> {
        let inputs: Vec<String> = texts.iter().map(|t| t.as_ref().to_string()).collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| CoreError::Tokenizer { path: self.path.clone(), message: e.to_string() })?;
        let batch = encodings.len();
        let seq = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut out = TokenBatch {
            input_ids: Vec::with_capacity(batch * seq),
            attention_mask: Vec::with_capacity(batch * seq),
            token_type_ids: Vec::with_capacity(batch * seq),
            batch,
            seq,
        };
        for e in &encodings {
            if !e.get_overflowing().is_empty() && !TRUNCATION_WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!("a text is longer than max_length = {} tokens and was truncated", self.max_length);
            }
            out.input_ids.extend(e.get_ids().iter().map(|&x| x as i64));
            out.attention_mask.extend(e.get_attention_mask().iter().map(|&x| x as i64));
            out.token_type_ids.extend(e.get_type_ids().iter().map(|&x| x as i64));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_to_a_fixed_length_keeps_rows_and_masks_the_rest() {
        let b = TokenBatch {
            input_ids: vec![1, 2, 3, 4, 0, 0],
            attention_mask: vec![1, 1, 1, 1, 0, 0],
            token_type_ids: vec![0; 6],
            batch: 2,
            seq: 3,
        };
        let p = b.padded_to(5, 9);
        assert_eq!((p.batch, p.seq), (2, 5));
        assert_eq!(p.input_ids, vec![1, 2, 3, 9, 9, 4, 0, 0, 9, 9]);
        assert_eq!(p.attention_mask, vec![1, 1, 1, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(p.real_len(0), 3);
    }

    /// A WordLevel tokenizer.json; with `wrap`, a BERT post-processor adds [CLS] ... [SEP].
    fn word_level(dir: &Path, wrap: bool) -> PathBuf {
        let post = if wrap { r#"{"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}"# } else { "null" };
        let json = format!(
            r#"{{"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [{{"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}},
                   {{"id": 2, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}},
                   {{"id": 3, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}}],
  "normalizer": null, "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": {post}, "decoder": null,
  "model": {{"type": "WordLevel", "vocab": {{"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4, "b": 5}}, "unk_token": "[UNK]"}}}}"#
        );
        let path = dir.join(if wrap { "wrapped.json" } else { "bare.json" });
        std::fs::write(&path, json).unwrap();
        path
    }

    #[test]
    fn dropping_special_tokens_needs_a_tokenizer_that_wraps_sequences() {
        let d = tempfile::tempdir().unwrap();
        let wrapped = TextTokenizer::from_file(&word_level(d.path(), true), 16).unwrap();
        assert!(wrapped.check_wraps_in_special_tokens().is_ok());
        let bare_path = word_level(d.path(), false);
        let bare = TextTokenizer::from_file(&bare_path, 16).unwrap();
        let e = bare.check_wraps_in_special_tokens().unwrap_err().to_string();
        assert!(e.contains("bare.json") && e.contains("special_tokens: both"), "{e}");
    }
}
