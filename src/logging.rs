//! The log output of `trailkeep serve` (tracing, on stderr): human-readable lines on a terminal,
//! JSON lines otherwise; colours only on a terminal and never with `NO_COLOR`.
//!
//! What an operator must read once (the admin key created at first start, the address) is not a
//! log event: `server::run` prints it as plain lines on stdout, whatever the log format.

use std::io::IsTerminal;
use std::str::FromStr;

/// `--log-format` / `TRAILKEEP_LOG_FORMAT`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Pretty when stderr is a terminal, JSON otherwise.
    #[default]
    Auto,
    Pretty,
    Json,
}

impl LogFormat {
    pub const NAMES: [&'static str; 3] = ["auto", "pretty", "json"];
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?} (auto, pretty or json)")),
        }
    }
}

/// How the log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogStyle {
    pub json: bool,
    /// ANSI colour codes (pretty lines only).
    pub ansi: bool,
}

/// The style for `format` given whether stderr is a terminal and whether `NO_COLOR` is set.
pub fn style(format: LogFormat, stderr_is_terminal: bool, no_color: bool) -> LogStyle {
    let json = match format {
        LogFormat::Auto => !stderr_is_terminal,
        LogFormat::Pretty => false,
        LogFormat::Json => true,
    };
    LogStyle { json, ansi: !json && stderr_is_terminal && !no_color }
}

/// `NO_COLOR` set to anything but the empty string (<https://no-color.org>).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Installs the global subscriber: filter from `TRAILKEEP_LOG` (default `info`), output on stderr.
pub fn init(format: LogFormat) {
    let style = style(format, std::io::stderr().is_terminal(), no_color());
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAILKEEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(style.ansi);
    if style.json { builder.json().init() } else { builder.init() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_pretty_with_colours_on_a_terminal_and_json_elsewhere() {
        assert_eq!(style(LogFormat::Auto, true, false), LogStyle { json: false, ansi: true });
        assert_eq!(style(LogFormat::Auto, false, false), LogStyle { json: true, ansi: false });
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert_eq!(style(LogFormat::Pretty, false, false), LogStyle { json: false, ansi: false });
        assert_eq!(style(LogFormat::Pretty, true, true), LogStyle { json: false, ansi: false });
        assert_eq!(style(LogFormat::Auto, true, true), LogStyle { json: false, ansi: false });
        assert_eq!(style(LogFormat::Json, true, false), LogStyle { json: true, ansi: false });
    }

    #[test]
    fn parses_the_three_names_only() {
        for name in LogFormat::NAMES {
            assert!(name.parse::<LogFormat>().is_ok(), "{name}");
        }
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert!("JSON".parse::<LogFormat>().is_err());
        assert!("".parse::<LogFormat>().is_err());
    }
}
