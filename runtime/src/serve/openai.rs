//! OpenAI-compatible routes: `POST /v1/embeddings` and `GET /v1/models`, so that clients written
//! for OpenAI's embeddings API (the official SDKs; tested with the Python one) talk to `zsc serve`.
//! Token arrays as `input` are refused: clients that send them by default (LangChain's
//! `OpenAIEmbeddings`) need to send text (`check_embedding_ctx_length=False` there).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::api::{check_inputs, embed_texts, pick_model, read_json, ApiError};
use super::{AppState, ModelState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmbeddingsRequest {
    /// A string or a list of strings (token arrays are refused).
    input: serde_json::Value,
    /// A served model's name (default: the first).
    #[serde(default)]
    model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32 bytes).
    #[serde(default)]
    encoding_format: Option<String>,
    /// Width of the vectors: the model's, or fewer when it allows truncation.
    #[serde(default)]
    dimensions: Option<usize>,
    /// OpenAI's end-user id: accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Debug, Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct EmbeddingsResponse {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: String,
    usage: Usage,
}

/// `input` as texts: one string or a list of strings.
fn input_texts(input: serde_json::Value) -> Result<Vec<String>, ApiError> {
    let refused = || ApiError::bad("`input` must be a string or a list of strings (token arrays are not supported)");
    match input {
        serde_json::Value::String(s) => Ok(vec![s]),
        serde_json::Value::Array(items) => {
            items.into_iter().map(|v| if let serde_json::Value::String(s) = v { Ok(s) } else { Err(refused()) }).collect()
        }
        _ => Err(refused()),
    }
}

/// The width to return, checked against the model's and whether it may be cut.
fn output_width(st: &AppState, model: &ModelState, dimensions: Option<usize>) -> Result<usize, ApiError> {
    let dim = model.classifier.manifest().output_dim;
    match dimensions {
        None => Ok(dim),
        Some(d) if d == dim => Ok(dim),
        Some(0) => Err(ApiError::bad("`dimensions` must be at least 1")),
        Some(d) if d > dim => Err(ApiError::bad(format!("`dimensions` {d} is over model `{}`'s {dim}", model.name))),
        Some(d) if st.options.truncatable_embeddings => Ok(d),
        Some(d) => Err(ApiError::bad(format!(
            "model `{}` gives {dim}-dimensional embeddings and was not trained to be cut to {d} \
             (start zsc serve with --truncatable-embeddings for Matryoshka models)",
            model.name
        ))),
    }
}

/// The first `width` entries, renormalised when the model's vectors are unit length.
fn truncate(mut v: Vec<f32>, width: usize, normalize: bool) -> Vec<f32> {
    if width < v.len() {
        v.truncate(width);
        if normalize {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
        }
    }
    v
}

fn encode(v: Vec<f32>, base64: bool) -> Vector {
    if !base64 {
        return Vector::Float(v);
    }
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
}

pub(crate) async fn embeddings(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EmbeddingsResponse>, ApiError> {
    let arriving = st.models[0].queue.arriving();
    let req: EmbeddingsRequest = read_json(&st, &headers, body).await?;
    let (model, arriving) = pick_model(&st, req.model.as_deref(), arriving)?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(ApiError::bad(format!("`encoding_format` `{other}`: expected float or base64"))),
    };
    let width = output_width(&st, model, req.dimensions)?;
    let texts = input_texts(req.input)?;
    let o = &st.options;
    check_inputs(&texts, "input", ("max_texts", o.max_texts), ("max_text_chars", o.max_text_chars))?;
    let counting = {
        // tokenising for `usage` is CPU work: off the async threads, beside the embedding
        let (clf, texts) = (model.classifier.clone(), texts.clone());
        tokio::task::spawn_blocking(move || clf.token_counts(&texts))
    };
    let vectors = embed_texts(&st, model, texts, arriving).await?;
    let tokens: usize = match counting.await {
        Ok(Ok(counts)) => counts.iter().sum(),
        Ok(Err(e)) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())),
        Err(e) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("counting tokens: {e}"))),
    };
    let normalize = model.classifier.spec().embedding.normalize;
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| EmbeddingItem { object: "embedding", index, embedding: encode(truncate(v, width, normalize), base64) })
        .collect();
    let usage = Usage { prompt_tokens: tokens, total_tokens: tokens };
    Ok(Json(EmbeddingsResponse { object: "list", data, model: model.name.clone(), usage }))
}

/// `GET /v1/models`: OpenAI's list, with what a zero-shot client wants to know about each model.
pub(crate) async fn models(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let data: Vec<serde_json::Value> = st
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            serde_json::json!({
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": "zsc",
                "model_type": m.classifier.model_type().as_str(),
                "dimensions": m.classifier.manifest().output_dim,
                "calibrated": m.classifier.calibration().is_some(),
                "default": i == 0,
            })
        })
        .collect();
    Json(serde_json::json!({"object": "list", "data": data}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_renormalises_unit_vectors_only() {
        let v = vec![0.6, 0.0, 0.8];
        assert_eq!(truncate(v.clone(), 3, true), v);
        assert_eq!(truncate(v.clone(), 1, true), vec![1.0]);
        assert_eq!(truncate(v, 2, false), vec![0.6, 0.0]);
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let Vector::Base64(s) = encode(vec![1.0, -2.5], true) else { panic!("not base64") };
        let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        let back: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(back, vec![1.0, -2.5]);
    }

    #[test]
    fn input_is_a_string_or_strings() {
        assert_eq!(input_texts(serde_json::json!("a")).unwrap(), vec!["a"]);
        assert_eq!(input_texts(serde_json::json!(["a", "b"])).unwrap(), vec!["a", "b"]);
        assert!(input_texts(serde_json::json!([1, 2])).is_err());
        assert!(input_texts(serde_json::json!({"a": 1})).is_err());
    }
}
