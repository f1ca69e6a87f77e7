//! What the HTTP clients (Hub uploads, `datagen`'s chat-completions client) share (feature
//! `http`): the retry policy and credentials that never print.

pub mod retry;
pub mod secrets;

/// Cut a server's error body to something loggable (500 bytes at most).
pub fn truncate_body(body: &str) -> String {
    const MAX: usize = 500;
    let body = body.trim();
    if body.len() <= MAX {
        return body.to_string();
    }
    let mut end = MAX;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}
