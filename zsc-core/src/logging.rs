//! One logging set-up for every binary (`trainer`, `zsc`, `zsc-export`, `datagen`): `tracing` to
//! stderr, filtered by `RUST_LOG` (default given by the binary), colour only when stderr is a
//! terminal and `NO_COLOR` is unset, so logs redirected to a file carry no ANSI codes.

use std::io::IsTerminal;

/// Whether log lines may use colour: stderr is a terminal and `NO_COLOR` is unset or empty
/// (<https://no-color.org>).
pub fn use_colour() -> bool {
    colour_allowed(std::env::var_os("NO_COLOR").as_deref(), std::io::stderr().is_terminal())
}

fn colour_allowed(no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Install the global subscriber. `default_filter` applies when `RUST_LOG` is unset or invalid
/// (for example `"info"`, or `"warn,ort=warn"`). A second call does nothing.
pub fn init(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(use_colour()).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_allowed(None, true));
        assert!(colour_allowed(Some(OsStr::new("")), true));
        assert!(!colour_allowed(Some(OsStr::new("1")), true));
        assert!(!colour_allowed(None, false), "a file or a pipe gets no ANSI codes");
    }
}
