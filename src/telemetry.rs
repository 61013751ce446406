//! JSON logs on stdout, one object per line, as Lambda's JSON log format expects.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. `RUST_LOG` overrides the default of `info`; Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` (set by LoggingConfig) is honoured when `RUST_LOG` is not.
pub fn init() {
    let level = lambda_log_level(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing::subscriber::set_global_default(json_subscriber(filter, std::io::stdout))
        .unwrap_or_else(|_| eprintln!("a tracing subscriber was already installed"));
}

/// The worker's log format: one JSON object per line, with the fields of the span the
/// line was written in (a record's span carries the request, message and correlation
/// ids).
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
        .finish()
}

/// Lambda's application log levels in tracing's terms. FATAL has no tracing level and
/// an unknown word would be read as a target name that lets everything through, so
/// both map to a real level.
pub fn lambda_log_level(level: Option<&str>) -> &'static str {
    match level.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR" | "FATAL") => "error",
        _ => "info",
    }
}

#[cfg(test)]
mod tests {
    use super::lambda_log_level;

    #[test]
    fn lambda_levels_map_to_tracing_levels() {
        assert_eq!(lambda_log_level(Some("FATAL")), "error");
        assert_eq!(lambda_log_level(Some("warn")), "warn");
        assert_eq!(lambda_log_level(Some("DEBUG")), "debug");
        assert_eq!(lambda_log_level(Some("nonsense")), "info");
        assert_eq!(lambda_log_level(None), "info");
    }

    /// The template passes its `LogLevel` parameter, in capitals, as `RUST_LOG`.
    #[test]
    fn the_templates_log_levels_read_as_levels() {
        use tracing_subscriber::{EnvFilter, filter::LevelFilter};
        for (word, level) in [
            ("TRACE", LevelFilter::TRACE),
            ("DEBUG", LevelFilter::DEBUG),
            ("INFO", LevelFilter::INFO),
            ("WARN", LevelFilter::WARN),
            ("ERROR", LevelFilter::ERROR),
        ] {
            let filter = EnvFilter::try_new(word).map(|filter| filter.max_level_hint());
            assert_eq!(filter.ok(), Some(Some(level)), "{word}");
        }
    }
}
