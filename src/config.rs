//! The only reader of `serve`'s flags and environment variables. `parse` validates everything
//! once and returns a `Config` or one clear line for stderr. (The other commands read their own
//! few: `bench.rs`, `backup.rs`, and `cli/mod.rs` for the integrator commands.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::net::Cidr;
use crate::time::{format_duration, parse_duration};

/// Most sending threads `--workers` may ask for.
pub const WORKERS_MAX: usize = 512;
/// Most steps `--retry-schedule` may have.
pub const RETRY_SCHEDULE_STEPS_MAX: usize = 50;
/// Largest `--max-event-bytes`: 16 MiB, so a batch of events stays within memory.
pub const EVENT_BYTES_LIMIT_MAX: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The effective configuration of `serve`.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub db: PathBuf,
    /// Set by flag or environment; otherwise the one kept in the database is used.
    pub admin_token: Option<String>,
    pub workers: usize,
    /// Delays after each failed attempt; its length + 1 = attempts.
    pub retry_schedule: Vec<Duration>,
    pub attempt_timeout: Duration,
    pub endpoint_concurrency: usize,
    pub allow_http: bool,
    pub allow_private_networks: bool,
    pub allow_networks: Vec<Cidr>,
    pub ca_file: Option<PathBuf>,
    /// The certificates read from `ca_file` (DER), checked when the flag was read.
    pub extra_roots_der: Vec<Vec<u8>>,
    pub max_event_bytes: usize,
    pub retention: Duration,
    pub disable_after: Duration,
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:7740".parse().expect("valid default address"),
            db: PathBuf::from("./clockeye-webhooks.db"),
            admin_token: None,
            workers: 128,
            retry_schedule: [60, 300, 1800, 7200].map(Duration::from_secs).to_vec(),
            attempt_timeout: Duration::from_secs(5),
            endpoint_concurrency: 64,
            allow_http: false,
            allow_private_networks: false,
            allow_networks: Vec::new(),
            ca_file: None,
            extra_roots_der: Vec::new(),
            max_event_bytes: 262_144,
            retention: Duration::from_secs(30 * 86_400),
            disable_after: Duration::from_secs(5 * 86_400),
            log_format: LogFormat::Text,
        }
    }
}

impl Config {
    /// The attempts a delivery gets in all: one per schedule step, plus the first.
    pub fn attempts_max(&self) -> u32 {
        self.retry_schedule.len() as u32 + 1
    }

    /// One line for the log: every setting, the admin token redacted.
    pub fn describe(&self) -> String {
        let schedule: Vec<String> = self
            .retry_schedule
            .iter()
            .map(|d| format_duration(*d))
            .collect();
        let networks: Vec<String> = self.allow_networks.iter().map(Cidr::to_string).collect();
        format!(
            "listen={} db={} admin_token={} workers={} retry_schedule={} attempt_timeout={} \
             endpoint_concurrency={} allow_http={} allow_private_networks={} allow_network={} \
             ca_file={} max_event_bytes={} retention={} disable_after={} log_format={:?}",
            self.listen,
            self.db.display(),
            if self.admin_token.is_some() {
                "[set]"
            } else {
                "[from database]"
            },
            self.workers,
            schedule.join(","),
            format_duration(self.attempt_timeout),
            self.endpoint_concurrency,
            self.allow_http,
            self.allow_private_networks,
            if networks.is_empty() {
                "none".to_string()
            } else {
                networks.join(",")
            },
            self.ca_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none".into()),
            self.max_event_bytes,
            format_duration(self.retention),
            format_duration(self.disable_after),
            self.log_format,
        )
    }
}

/// What a flag takes: a value, or nothing (a switch).
#[derive(Clone, Copy, PartialEq)]
enum Arity {
    Value,
    Switch,
}

/// Every flag of `serve`: name, arity, default shown in help, meaning.
const SERVE_FLAGS: &[(&str, Arity, &str, &str)] = &[
    (
        "listen",
        Arity::Value,
        "127.0.0.1:7740",
        "address for the API; 127.0.0.1:0 picks a free port",
    ),
    (
        "db",
        Arity::Value,
        "./clockeye-webhooks.db",
        "the SQLite database file (WAL)",
    ),
    (
        "admin-token",
        Arity::Value,
        "generated once, kept in the database",
        "full-access bearer token",
    ),
    ("workers", Arity::Value, "128", "sending threads"),
    (
        "retry-schedule",
        Arity::Value,
        "1m,5m,30m,2h",
        "delays after each failed attempt; length + 1 = attempts",
    ),
    (
        "attempt-timeout",
        Arity::Value,
        "5s",
        "whole attempt: connect, send, wait, read",
    ),
    (
        "endpoint-concurrency",
        Arity::Value,
        "64",
        "the largest adaptive window of attempts in flight to one endpoint",
    ),
    (
        "allow-http",
        Arity::Switch,
        "off",
        "accept http:// endpoint URLs (development only)",
    ),
    (
        "allow-private-networks",
        Arity::Switch,
        "off",
        "allow loopback, private, link-local, CGNAT, metadata addresses",
    ),
    (
        "allow-network",
        Arity::Value,
        "none",
        "allow one private range (CIDR); repeatable",
    ),
    (
        "ca-file",
        Arity::Value,
        "none",
        "extra trusted root certificates (PEM) for endpoint TLS",
    ),
    (
        "max-event-bytes",
        Arity::Value,
        "262144",
        "largest accepted event body",
    ),
    (
        "retention",
        Arity::Value,
        "30d",
        "prune finished deliveries, attempts and events older than this",
    ),
    (
        "disable-after",
        Arity::Value,
        "5d",
        "disable an endpoint whose every attempt failed for this long",
    ),
    (
        "log-format",
        Arity::Value,
        "text",
        "stderr log lines: text or json",
    ),
];

/// The names of `serve`'s flags (for shell completions).
pub fn serve_flag_names() -> impl Iterator<Item = &'static str> {
    SERVE_FLAGS.iter().map(|(name, ..)| *name)
}

/// Help for `serve`, listing every flag with its environment variable and default.
pub fn serve_help() -> String {
    let mut help = String::from(
        "clockeye-webhooks serve: run the API and the delivery engine\n\n\
         usage: clockeye-webhooks serve [FLAGS]\n\nflags (each also read from its environment variable):\n",
    );
    for (name, arity, default, meaning) in SERVE_FLAGS {
        let value = if *arity == Arity::Value { " VALUE" } else { "" };
        help.push_str(&format!(
            "  --{name}{value}\n      {meaning}\n      env {}, default: {default}\n",
            env_name(name)
        ));
    }
    help.push_str(
        "\nexamples:\n  clockeye-webhooks serve\n  \
         clockeye-webhooks serve --listen 0.0.0.0:7740 --db /var/lib/clockeye/webhooks.db\n  \
         CLOCKEYE_RETRY_SCHEDULE=5s,30s clockeye-webhooks serve --allow-http --allow-network 10.0.0.0/8\n",
    );
    help
}

fn env_name(flag: &str) -> String {
    format!("CLOCKEYE_{}", flag.to_uppercase().replace('-', "_"))
}

/// `parse_serve` with this process's environment.
pub fn parse_serve_from_env(args: &[String]) -> Result<Config, String> {
    parse_serve(args, &|name| std::env::var(name).ok())
}

/// Reads `serve`'s flags (after the subcommand) and the environment. `Err` is one line.
pub fn parse_serve(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, String> {
    let mut given: Vec<(&'static str, String)> = Vec::new();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        let Some(stripped) = arg.strip_prefix("--") else {
            return Err(format!(
                "unexpected argument \"{arg}\" (see clockeye-webhooks serve --help)"
            ));
        };
        let (name, inline) = match stripped.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (stripped, None),
        };
        let Some((flag, arity, ..)) = SERVE_FLAGS.iter().find(|(flag, ..)| *flag == name) else {
            return Err(format!(
                "unknown flag --{name} (see clockeye-webhooks serve --help)"
            ));
        };
        let value = match (arity, inline) {
            (Arity::Switch, None) => "true".to_string(),
            (Arity::Switch, Some(value)) => value,
            (Arity::Value, Some(value)) => value,
            (Arity::Value, None) => {
                index += 1;
                args.get(index)
                    .cloned()
                    .ok_or_else(|| format!("--{name} needs a value"))?
            }
        };
        given.push((flag, value));
        index += 1;
    }
    // Environment first, so flags given on the command line override it.
    let mut settings: Vec<(&'static str, String)> = Vec::new();
    for (flag, ..) in SERVE_FLAGS {
        if given.iter().any(|(name, _)| name == flag) {
            continue;
        }
        if let Some(value) = env(&env_name(flag)) {
            if *flag == "allow-network" {
                for cidr in value.split(',').filter(|c| !c.trim().is_empty()) {
                    settings.push((flag, cidr.trim().to_string()));
                }
            } else {
                settings.push((flag, value));
            }
        }
    }
    settings.extend(given);

    let mut config = Config::default();
    for (flag, value) in settings {
        apply(&mut config, flag, &value).map_err(|message| format!("--{flag}: {message}"))?;
    }
    Ok(config)
}

fn apply(config: &mut Config, flag: &str, value: &str) -> Result<(), String> {
    match flag {
        "listen" => {
            config.listen = value
                .parse()
                .map_err(|_| format!("\"{value}\" is not an address (example: 127.0.0.1:7740)"))?
        }
        "db" => {
            if value.is_empty() {
                return Err("needs a file path".into());
            }
            config.db = PathBuf::from(value)
        }
        "admin-token" => {
            if value.len() < 16 || !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err("must be at least 16 printable characters without spaces".into());
            }
            config.admin_token = Some(value.to_string())
        }
        "workers" => config.workers = count(value, 1, WORKERS_MAX)?,
        "endpoint-concurrency" => config.endpoint_concurrency = count(value, 1, WORKERS_MAX)?,
        "retry-schedule" => {
            let steps: Result<Vec<Duration>, String> = if value.trim().is_empty() {
                Ok(Vec::new())
            } else {
                value
                    .split(',')
                    .map(|step| parse_duration(step.trim()))
                    .collect()
            };
            let steps = steps?;
            if steps.len() > RETRY_SCHEDULE_STEPS_MAX {
                return Err(format!("at most {RETRY_SCHEDULE_STEPS_MAX} steps"));
            }
            config.retry_schedule = steps
        }
        "attempt-timeout" => {
            let timeout = parse_duration(value)?;
            if timeout < Duration::from_millis(10) || timeout > Duration::from_secs(300) {
                return Err("must be between 10ms and 5m".into());
            }
            config.attempt_timeout = timeout
        }
        "allow-http" => config.allow_http = switch(value)?,
        "allow-private-networks" => config.allow_private_networks = switch(value)?,
        "allow-network" => config.allow_networks.push(value.parse()?),
        "ca-file" => {
            config.extra_roots_der = read_certificates(value)?;
            config.ca_file = Some(PathBuf::from(value));
        }
        "max-event-bytes" => config.max_event_bytes = count(value, 256, EVENT_BYTES_LIMIT_MAX)?,
        "retention" => config.retention = positive_duration(value)?,
        "disable-after" => config.disable_after = positive_duration(value)?,
        "log-format" => {
            config.log_format = match value {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(format!("\"{value}\" is not a log format (text or json)")),
            }
        }
        _ => unreachable!("every flag in SERVE_FLAGS is applied"),
    }
    Ok(())
}

/// Every certificate in a PEM file, as DER; an error names the file and the problem.
fn read_certificates(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read \"{path}\": {e}"))?;
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => {
                certificates.push(certificate.der().to_vec())
            }
            Ok(_) => {}
            Err(error) => return Err(format!("\"{path}\" is not valid PEM: {error}")),
        }
    }
    if certificates.is_empty() {
        return Err(format!(
            "\"{path}\" holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certificates)
}

fn count(value: &str, min: usize, max: usize) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "\"{value}\" is not a whole number from {min} to {max}"
        )),
    }
}

fn switch(value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("\"{value}\" is not true or false")),
    }
}

fn positive_duration(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration.is_zero() {
        return Err("must be longer than 0s".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_serve(&args, &|name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_match_the_spec() {
        let config = parse(&[], &[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7740");
        assert_eq!(config.workers, 128);
        assert_eq!(config.endpoint_concurrency, 64);
        assert_eq!(config.attempts_max(), 5);
        assert_eq!(config.attempt_timeout, Duration::from_secs(5));
        assert_eq!(config.max_event_bytes, 262_144);
        assert!(!config.allow_http && !config.allow_private_networks);
    }

    #[test]
    fn flags_override_environment_and_both_forms_work() {
        let config = parse(
            &[
                "--workers",
                "4",
                "--retry-schedule=100ms,1s",
                "--allow-http",
            ],
            &[
                ("CLOCKEYE_WORKERS", "9"),
                ("CLOCKEYE_ATTEMPT_TIMEOUT", "2s"),
                ("CLOCKEYE_ALLOW_NETWORK", "10.0.0.0/8"),
            ],
        )
        .unwrap();
        assert_eq!(config.workers, 4);
        assert_eq!(
            config.retry_schedule,
            vec![Duration::from_millis(100), Duration::from_secs(1)]
        );
        assert_eq!(config.attempt_timeout, Duration::from_secs(2));
        assert!(config.allow_http);
        assert_eq!(config.allow_networks.len(), 1);
    }

    #[test]
    fn bad_values_name_the_flag_and_the_problem() {
        let cases = [
            (
                vec!["--retry-schedule", "5x"],
                "--retry-schedule: \"5x\" is not a duration",
            ),
            (
                vec!["--workers", "0"],
                "--workers: \"0\" is not a whole number",
            ),
            (
                vec!["--listen", "nowhere"],
                "--listen: \"nowhere\" is not an address",
            ),
            (vec!["--frobnicate"], "unknown flag --frobnicate"),
            (vec!["--db"], "--db needs a value"),
            (vec!["--allow-network", "10.0.0.0/33"], "--allow-network:"),
            (
                vec!["--log-format", "xml"],
                "--log-format: \"xml\" is not a log format",
            ),
        ];
        for (args, expected) in cases {
            let error = parse(&args, &[]).unwrap_err();
            assert!(error.starts_with(expected), "{args:?}: {error}");
            assert!(!error.contains('\n'));
        }
    }
}
