//! A small client for OpenAI-compatible `POST {base_url}/chat/completions` with structured output
//! (`response_format: {"type": "json_schema", ...}`), retries and a per-request timeout.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use zsc_core::http::retry::{server_retry_after, RetryPolicy};
use zsc_core::http::secrets::Secret;
use zsc_core::http::truncate_body;

use crate::error::{DatagenError, Result};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message { role: "system".into(), content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message { role: "user".into(), content: content.into() }
    }
}

/// A JSON schema the model's answer must follow (sent as `response_format.json_schema`).
#[derive(Debug, Clone)]
pub struct OutputSchema {
    pub name: &'static str,
    pub schema: Value,
}

#[derive(Debug, Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<Secret>,
    temperature: Option<f64>,
    retry: RetryPolicy,
}

/// What one attempt ended with.
enum Attempt<T> {
    Done(T),
    /// Worth another try (429, 5xx, timeout, connection error, malformed or invalid answer).
    Retry {
        reason: String,
        server_asked: Option<Duration>,
    },
    /// Retrying cannot help (bad key, unknown model, bad request).
    Fatal(DatagenError),
}

impl ChatClient {
    pub fn new(
        base_url: &str,
        model: &str,
        api_key: Option<Secret>,
        timeout: Duration,
        retry: RetryPolicy,
        temperature: Option<f64>,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("zsc-datagen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| DatagenError::Http { url: base_url.to_string(), source })?;
        Ok(ChatClient {
            http,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model: model.to_string(),
            api_key,
            temperature,
            retry,
        })
    }

    /// The request body (public so that tests and the README can show exactly what is sent).
    pub fn request_body(&self, messages: &[Message], schema: &OutputSchema) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": schema.name, "strict": true, "schema": schema.schema},
            },
        });
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        body
    }

    /// Ask once per attempt until the answer parses as `T` and passes `validate`; `what` names the
    /// request in logs and errors.
    pub async fn complete_json<T, F>(&self, what: &str, messages: &[Message], schema: &OutputSchema, validate: F) -> Result<T>
    where
        T: DeserializeOwned,
        F: Fn(T) -> std::result::Result<T, String>,
    {
        let body = self.request_body(messages, schema);
        let mut last = String::new();
        for attempt in 0..=self.retry.max_retries {
            match self.attempt(&body, &validate).await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry { reason, server_asked } => {
                    last = reason;
                    if attempt < self.retry.max_retries {
                        let wait = self.retry.delay(attempt, server_asked);
                        tracing::debug!("{what}: attempt {} failed ({last}); retrying in {wait:?}", attempt + 1);
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Err(DatagenError::RetriesExhausted { what: what.to_string(), attempts: self.retry.max_retries + 1, last })
    }

    async fn attempt<T, F>(&self, body: &Value, validate: &F) -> Attempt<T>
    where
        T: DeserializeOwned,
        F: Fn(T) -> std::result::Result<T, String>,
    {
        let mut req = self.http.post(&self.url).json(body);
        if let Some(key) = &self.api_key {
            req = req.header(reqwest::header::AUTHORIZATION, key.bearer());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry { reason: describe_reqwest(&e), server_asked: None },
        };
        let status = resp.status();
        let server_asked = server_retry_after(resp.headers());
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return Attempt::Retry { reason: describe_reqwest(&e), server_asked: None },
        };
        if status.as_u16() == 429 || status.is_server_error() {
            return Attempt::Retry { reason: format!("HTTP {status}: {}", truncate_body(&text)), server_asked };
        }
        if !status.is_success() {
            return Attempt::Fatal(DatagenError::Status {
                what: "chat completion".into(),
                url: self.url.clone(),
                status: status.as_u16(),
                body: truncate_body(&text),
            });
        }
        match parse_structured_answer::<T>(&text).and_then(validate) {
            Ok(v) => Attempt::Done(v),
            Err(reason) => Attempt::Retry { reason, server_asked: None },
        }
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "request timed out".into()
    } else if e.is_connect() {
        format!("connection failed: {e}")
    } else {
        e.to_string()
    }
}

/// `choices[0].message.content` of a chat-completions response, parsed as `T`.
pub fn parse_structured_answer<T: DeserializeOwned>(response_text: &str) -> std::result::Result<T, String> {
    let v: Value = serde_json::from_str(response_text).map_err(|e| format!("response is not JSON: {e}"))?;
    let message = v.pointer("/choices/0/message").ok_or("response has no choices[0].message")?;
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
        return Err(format!("model refused: {refusal}"));
    }
    let content = message.get("content").and_then(Value::as_str).ok_or("choices[0].message.content is not a string")?;
    serde_json::from_str(content).map_err(|e| format!("answer content is not the requested JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct A {
        text: String,
    }

    #[test]
    fn parses_openai_shape_and_rejects_malformed() {
        let ok = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"{\"text\":\"hi\"}"}}]}"#;
        assert_eq!(parse_structured_answer::<A>(ok).unwrap(), A { text: "hi".into() });
        let bad = r#"{"choices":[{"message":{"role":"assistant","content":"{\"text\": "}}]}"#;
        assert!(parse_structured_answer::<A>(bad).unwrap_err().contains("not the requested JSON"));
        let refused = r#"{"choices":[{"message":{"role":"assistant","content":null,"refusal":"no"}}]}"#;
        assert!(parse_structured_answer::<A>(refused).unwrap_err().contains("refused"));
        assert!(parse_structured_answer::<A>("<html>").is_err());
    }
}
