//! Logging: tracing to stderr as text or JSON, with a level that `PUT /log-level` changes at run time.
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

use crate::cli::LogFormat;

/// Changes the log filter of the running process.
#[derive(Clone)]
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
}

impl LogLevel {
    /// Sets a new filter (same syntax as RUST_LOG, e.g. `info,flotilla_controller=debug`).
    pub fn set(&self, directives: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(directives)
            .map_err(|e| format!("invalid filter {directives:?}: {e}"))?;
        self.handle
            .modify(|f| *f = filter)
            .map_err(|e| e.to_string())
    }
}

/// Installs the global subscriber. The level comes from RUST_LOG (default `info`).
pub fn init(format: LogFormat) -> LogLevel {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init(),
        LogFormat::Text => {
            use std::io::IsTerminal;
            let ansi = std::io::stderr().is_terminal();
            registry
                .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
                .init()
        }
    }
    LogLevel { handle }
}
