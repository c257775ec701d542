//! The `log` backend: one line per happening on stderr, as text or JSON. Callers never pass
//! secrets or payloads; this module only formats.

use std::io::Write;

use crate::config::LogFormat;
use crate::time::{format_rfc3339_millis, now_ms};

struct Logger {
    format: LogFormat,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ts = format_rfc3339_millis(now_ms());
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("main");
        let line = match self.format {
            LogFormat::Text => format!("{ts} {:<5} [{thread}] {}\n", record.level(), record.args()),
            LogFormat::Json => format!(
                "{}\n",
                serde_json::json!({"ts": ts, "level": record.level().as_str().to_lowercase(), "thread": thread, "msg": record.args().to_string()})
            ),
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger once; later calls do nothing.
pub(crate) fn init(format: LogFormat, level: log::LevelFilter) {
    if log::set_logger(Box::leak(Box::new(Logger { format }))).is_ok() {
        log::set_max_level(level);
    }
}
