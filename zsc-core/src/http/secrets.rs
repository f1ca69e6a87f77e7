//! API keys and tokens: read from the environment or a `.env` file in the current folder, and
//! wrapped so that `Debug`/`Display` can never print them.

use std::path::Path;

/// A credential (API key, Hub token). Its `Debug` output is redacted; the value is only reachable
/// through [`Secret::expose`], which the HTTP layer uses to build the Authorization header.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The first of `names` set (non-empty) in the environment, else in `./.env`.
pub fn secret_from_env(names: &[&str]) -> Option<Secret> {
    for name in names {
        if let Ok(v) = std::env::var(name) {
            if !v.trim().is_empty() {
                return Some(Secret(v.trim().to_string()));
            }
        }
    }
    let text = std::fs::read_to_string(Path::new(".env")).ok()?;
    for name in names {
        if let Some(v) = dotenv_lookup(&text, name) {
            return Some(Secret(v));
        }
    }
    None
}

/// A plain (non-secret) setting from the environment, e.g. `HF_ENDPOINT`.
pub fn var_from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Look `name` up in the text of a `.env` file: `KEY=VALUE` lines, optional `export `, optional
/// single or double quotes, `#` comments.
pub fn dotenv_lookup(text: &str, name: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else { continue };
        if key.trim() != name {
            continue;
        }
        let value = value.trim();
        let value = if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"')) || (value.starts_with('\'') && value.ends_with('\'')))
        {
            &value[1..value.len() - 1]
        } else {
            // An unquoted value ends at an inline comment.
            value.split(" #").next().unwrap_or(value).trim()
        };
        if !value.is_empty() {
            return Some(value.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_forms() {
        let text = "# comment\nOTHER=1\nexport OPENAI_API_KEY=\"sk-abc\"\nHF_TOKEN=hf_x # inline\nEMPTY=\n";
        assert_eq!(dotenv_lookup(text, "OPENAI_API_KEY").as_deref(), Some("sk-abc"));
        assert_eq!(dotenv_lookup(text, "HF_TOKEN").as_deref(), Some("hf_x"));
        assert_eq!(dotenv_lookup(text, "EMPTY"), None);
        assert_eq!(dotenv_lookup(text, "MISSING"), None);
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("sk-very-secret");
        assert!(!format!("{s:?}").contains("very-secret"));
        assert_eq!(s.bearer(), "Bearer sk-very-secret");
    }
}
