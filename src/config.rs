//! `serve`'s flags and environment variables (`ServeArgs`, a clap definition that is part of
//! the command line in `cli/args.rs`), their checks and defaults, and the `Config` made from
//! them. Every value is validated once, while parsing; a bad one is one line naming the flag.
//! (The other commands' flags are in `cli/bench`, `cli/backup.rs` and `cli/args.rs`.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::net::Cidr;
use crate::store::DbTarget;
use crate::time::{format_duration, parse_duration};

/// Most sending threads `--workers` may ask for.
pub(crate) const WORKERS_MAX: usize = 512;
/// Most steps `--retry-schedule` may have.
pub(crate) const RETRY_SCHEDULE_STEPS_MAX: usize = 50;
/// Largest `--max-event-bytes`: 16 MiB, so a batch of events stays within memory.
pub(crate) const EVENT_BYTES_LIMIT_MAX: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The effective configuration of `serve`.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) db: DbTarget,
    /// Set by flag or environment; otherwise the one kept in the database is used.
    pub(crate) admin_token: Option<String>,
    pub(crate) workers: usize,
    /// Delays after each failed attempt; its length + 1 = attempts.
    pub(crate) retry_schedule: Vec<Duration>,
    pub(crate) attempt_timeout: Duration,
    pub(crate) endpoint_concurrency: usize,
    pub(crate) allow_http: bool,
    pub(crate) allow_private_networks: bool,
    pub(crate) allow_networks: Vec<Cidr>,
    pub(crate) ca_file: Option<PathBuf>,
    /// The certificates read from `ca_file` (DER), checked when the flag was read.
    pub(crate) extra_roots_der: Vec<Vec<u8>>,
    pub(crate) max_event_bytes: usize,
    pub(crate) retention: Duration,
    pub(crate) disable_after: Duration,
    pub(crate) log_format: LogFormat,
    /// Where people reach this service (`https://webhooks.example.com`), for the absolute URLs
    /// it answers (portal links); None: the request's `Host`.
    pub(crate) public_url: Option<String>,
}

impl Config {
    /// The attempts a delivery gets in all: one per schedule step, plus the first.
    #[cfg(test)]
    pub(crate) fn attempts_max(&self) -> u32 {
        self.retry_schedule.len() as u32 + 1
    }

    /// One line for the log: every setting, the admin token redacted. `stored_admin_token`
    /// says where the token comes from when no flag set it (kept, or generated just now).
    pub(crate) fn describe(&self, stored_admin_token: &str) -> String {
        let schedule: Vec<String> = self
            .retry_schedule
            .iter()
            .map(|d| format_duration(*d))
            .collect();
        let networks: Vec<String> = self.allow_networks.iter().map(Cidr::to_string).collect();
        format!(
            "listen={} db={} admin_token={} workers={} retry_schedule={} attempt_timeout={} \
             endpoint_concurrency={} allow_http={} allow_private_networks={} allow_network={} \
             ca_file={} max_event_bytes={} retention={} disable_after={} log_format={:?} \
             public_url={}",
            self.listen,
            self.db.describe(),
            if self.admin_token.is_some() {
                "[set]"
            } else {
                stored_admin_token
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
            self.public_url.as_deref().unwrap_or("none"),
        )
    }
}

/// `serve`'s flags. Each is also read from its environment variable (`--db` ↔ `CLOCKEYE_DB`:
/// upper-case, `-` → `_`); a flag given overrides its variable. Every value is checked here,
/// when the command line is parsed, so a bad one is a usage error naming the flag.
/// Switches take no value on the command line (`--allow-http`, not `--allow-http=yes`); in the
/// environment they take true/false, yes/no, on/off or 1/0.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = concat!(
    "examples:\n",
    "  clockeye-webhooks serve\n",
    "  clockeye-webhooks serve --listen 0.0.0.0:7740 --db /var/lib/clockeye/webhooks.db\n",
    "  CLOCKEYE_RETRY_SCHEDULE=5s,30s clockeye-webhooks serve --allow-http --allow-network 10.0.0.0/8",
))]
pub(crate) struct ServeArgs {
    #[arg(long, short = 'l', env = "CLOCKEYE_LISTEN", value_name = "ADDR",
        default_value = "127.0.0.1:7740", value_parser = parse_listen,
        help = "address for the API; 127.0.0.1:0 picks a free port")]
    pub(crate) listen: SocketAddr,
    #[arg(long, short = 'd', env = "CLOCKEYE_DB", value_name = "PATH|URL",
        default_value = "./clockeye-webhooks.db", value_parser = parse_db,
        help = "the SQLite database file (WAL), or postgres://user:pass@host:port/db for several instances on one Postgres database")]
    pub(crate) db: DbTarget,
    #[arg(long, env = "CLOCKEYE_ADMIN_TOKEN", hide_env_values = true, value_name = "TOKEN",
        value_parser = parse_admin_token,
        help = "full-access bearer token (default: generated once, kept in the database)")]
    pub(crate) admin_token: Option<String>,
    #[arg(long, short = 'w', env = "CLOCKEYE_WORKERS", value_name = "N", default_value = "128",
        value_parser = parse_workers,
        help = "sending threads (enough for two full windows of 64; see Flow control)")]
    pub(crate) workers: usize,
    #[arg(long, env = "CLOCKEYE_RETRY_SCHEDULE", value_name = "LIST",
        default_value = "1m,5m,30m,2h", value_parser = parse_retry_schedule,
        help = "delays after each failed attempt; length + 1 = attempts")]
    pub(crate) retry_schedule: RetrySchedule,
    #[arg(long, env = "CLOCKEYE_ATTEMPT_TIMEOUT", value_name = "DURATION", default_value = "5s",
        value_parser = parse_attempt_timeout, help = "whole attempt: connect, send, wait, read")]
    pub(crate) attempt_timeout: Duration,
    #[arg(long, env = "CLOCKEYE_ENDPOINT_CONCURRENCY", value_name = "N", default_value = "64",
        value_parser = parse_workers,
        help = "the largest adaptive window of attempts in flight to one endpoint (at most half of --workers)")]
    pub(crate) endpoint_concurrency: usize,
    #[arg(long, env = "CLOCKEYE_ALLOW_HTTP", action = clap::ArgAction::SetTrue,
        value_parser = parse_switch,
        help = "accept http:// endpoint URLs (development only)")]
    pub(crate) allow_http: bool,
    #[arg(long, env = "CLOCKEYE_ALLOW_PRIVATE_NETWORKS", action = clap::ArgAction::SetTrue,
        value_parser = parse_switch,
        help = "allow loopback, private, link-local, CGNAT, metadata addresses")]
    pub(crate) allow_private_networks: bool,
    #[arg(long = "allow-network", env = "CLOCKEYE_ALLOW_NETWORK", value_name = "CIDR",
        value_parser = parse_cidrs,
        help = "allow one private range; repeatable (or comma-separated)")]
    pub(crate) allow_networks: Vec<Cidrs>,
    #[arg(long, env = "CLOCKEYE_CA_FILE", value_name = "PEM", value_parser = parse_ca_file,
        help = "extra trusted root certificates (PEM) for endpoint TLS")]
    pub(crate) ca_file: Option<CaFile>,
    #[arg(long, env = "CLOCKEYE_MAX_EVENT_BYTES", value_name = "N", default_value = "262144",
        value_parser = parse_max_event_bytes, help = "largest accepted event body")]
    pub(crate) max_event_bytes: usize,
    #[arg(long, env = "CLOCKEYE_RETENTION", value_name = "DURATION", default_value = "30d",
        value_parser = positive_duration,
        help = "prune finished deliveries, attempts and events older than this")]
    pub(crate) retention: Duration,
    #[arg(long, env = "CLOCKEYE_DISABLE_AFTER", value_name = "DURATION", default_value = "5d",
        value_parser = positive_duration,
        help = "disable an endpoint whose every attempt failed for this long")]
    pub(crate) disable_after: Duration,
    #[arg(long, env = "CLOCKEYE_LOG_FORMAT", value_name = "FORMAT", default_value = "text",
        value_parser = parse_log_format, help = "stderr log lines: text or json")]
    pub(crate) log_format: LogFormat,
    #[arg(long, env = "CLOCKEYE_PUBLIC_URL", value_name = "URL", value_parser = parse_public_url,
        help = "where people reach this service, for portal links' URLs (default: the request's Host)")]
    pub(crate) public_url: Option<String>,
}

/// `--retry-schedule`'s steps.
#[derive(Debug, Clone)]
pub(crate) struct RetrySchedule(pub Vec<Duration>);

/// One `--allow-network`'s ranges (a comma-separated list, as `CLOCKEYE_ALLOW_NETWORK` takes).
#[derive(Debug, Clone)]
pub(crate) struct Cidrs(pub Vec<Cidr>);

/// `--ca-file`: the path, and the certificates read from it (DER) when the flag was parsed.
#[derive(Debug, Clone)]
pub(crate) struct CaFile {
    pub(crate) path: PathBuf,
    pub(crate) roots_der: Vec<Vec<u8>>,
}

impl From<ServeArgs> for Config {
    fn from(args: ServeArgs) -> Config {
        let (ca_file, extra_roots_der) = match args.ca_file {
            Some(CaFile { path, roots_der }) => (Some(path), roots_der),
            None => (None, Vec::new()),
        };
        Config {
            listen: args.listen,
            db: args.db,
            admin_token: args.admin_token,
            workers: args.workers,
            retry_schedule: args.retry_schedule.0,
            attempt_timeout: args.attempt_timeout,
            endpoint_concurrency: args.endpoint_concurrency,
            allow_http: args.allow_http,
            allow_private_networks: args.allow_private_networks,
            allow_networks: args.allow_networks.into_iter().flat_map(|c| c.0).collect(),
            ca_file,
            extra_roots_der,
            max_event_bytes: args.max_event_bytes,
            retention: args.retention,
            disable_after: args.disable_after,
            log_format: args.log_format,
            public_url: args.public_url,
        }
    }
}

fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("\"{value}\" is not an address (example: 127.0.0.1:7740)"))
}

fn parse_db(value: &str) -> Result<DbTarget, String> {
    if value.is_empty() {
        return Err("needs a file path or a postgres:// URL".into());
    }
    let target = DbTarget::parse(value);
    if let DbTarget::Postgres(url) = &target {
        // The URL is not echoed: it may carry a password.
        url.parse::<postgres::Config>()
            .map_err(|error| format!("is not a Postgres URL ({error})"))?;
    }
    Ok(target)
}

fn parse_admin_token(value: &str) -> Result<String, String> {
    if value.len() < 16 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be at least 16 printable characters without spaces".into());
    }
    Ok(value.to_string())
}

fn parse_workers(value: &str) -> Result<usize, String> {
    count(value, 1, WORKERS_MAX)
}

fn parse_max_event_bytes(value: &str) -> Result<usize, String> {
    count(value, 256, EVENT_BYTES_LIMIT_MAX)
}

fn parse_retry_schedule(value: &str) -> Result<RetrySchedule, String> {
    let steps: Vec<Duration> = if value.trim().is_empty() {
        Vec::new()
    } else {
        value
            .split(',')
            .map(|step| parse_duration(step.trim()))
            .collect::<Result<_, _>>()?
    };
    if steps.len() > RETRY_SCHEDULE_STEPS_MAX {
        return Err(format!("at most {RETRY_SCHEDULE_STEPS_MAX} steps"));
    }
    Ok(RetrySchedule(steps))
}

fn parse_attempt_timeout(value: &str) -> Result<Duration, String> {
    let timeout = parse_duration(value)?;
    if timeout < Duration::from_millis(10) || timeout > Duration::from_secs(300) {
        return Err("must be between 10ms and 5m".into());
    }
    Ok(timeout)
}

fn parse_cidrs(value: &str) -> Result<Cidrs, String> {
    let cidrs = value
        .split(',')
        .map(str::trim)
        .filter(|cidr| !cidr.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    Ok(Cidrs(cidrs))
}

/// A switch's environment variable (on the command line a switch takes no value).
fn parse_switch(value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("\"{value}\" is not true or false")),
    }
}

fn parse_ca_file(value: &str) -> Result<CaFile, String> {
    Ok(CaFile {
        roots_der: read_certificates(value)?,
        path: PathBuf::from(value),
    })
}

/// `--public-url`: an http(s) origin, maybe with a path prefix; kept without a trailing `/`.
fn parse_public_url(value: &str) -> Result<String, String> {
    let trimmed = value.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains(['?', '#', ' ']) => {
            Ok(trimmed.to_string())
        }
        _ => Err(format!(
            "\"{value}\" is not an http(s) URL (example: https://webhooks.example.com)"
        )),
    }
}

fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("\"{value}\" is not a log format (text or json)")),
    }
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
    use crate::cli::args::{Cli, Command, Stop};
    use std::sync::Mutex;

    /// The environment is the process's: tests that set it take turns.
    static ENVIRONMENT: Mutex<()> = Mutex::new(());

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let _turn = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
        for (name, value) in env {
            // SAFETY: the tests that read or write CLOCKEYE_* variables hold ENVIRONMENT, and
            // nothing else in this test binary reads them.
            unsafe { std::env::set_var(name, value) };
        }
        let argv: Vec<std::ffi::OsString> = ["clockeye-webhooks", "serve"]
            .iter()
            .chain(args)
            .map(|arg| arg.into())
            .collect();
        let parsed = crate::cli::args::parse(&argv);
        for (name, _) in env {
            // SAFETY: as above.
            unsafe { std::env::remove_var(name) };
        }
        match parsed {
            Ok(Cli {
                command: Some(Command::Serve(args)),
                ..
            }) => Ok(Config::from(args)),
            Ok(other) => panic!("not serve: {other:?}"),
            Err(Stop::Usage(line)) => Err(line),
            Err(Stop::Print(text)) => panic!("printed: {text}"),
        }
    }

    #[test]
    fn a_postgres_url_is_postgres_and_a_bad_one_is_refused_without_echoing_it() {
        assert_eq!(
            parse_db("postgres://user:secret@127.0.0.1:5432/hooks").unwrap(),
            DbTarget::Postgres("postgres://user:secret@127.0.0.1:5432/hooks".into())
        );
        assert_eq!(
            parse_db("hooks.db").unwrap(),
            DbTarget::Sqlite("hooks.db".into())
        );
        let error = parse_db("postgres://user:secret@127.0.0.1:notaport/hooks").unwrap_err();
        assert!(error.contains("not a Postgres URL"), "{error}");
        assert!(!error.contains("secret"), "{error}");
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
    fn a_flag_given_twice_takes_its_last_value() {
        let config = parse(
            &[
                "--workers",
                "4",
                "--workers",
                "8",
                "--allow-http",
                "--allow-http",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(config.workers, 8);
        assert!(config.allow_http);
    }

    #[test]
    fn switches_take_no_value_on_the_command_line_and_a_word_in_the_environment() {
        let error = parse(&["--allow-http=yes"], &[]).unwrap_err();
        assert!(error.contains("--allow-http"), "{error}");
        assert!(!error.contains('\n'));
        for (value, expected) in [("yes", true), ("1", true), ("off", false), ("false", false)] {
            let config = parse(&[], &[("CLOCKEYE_ALLOW_PRIVATE_NETWORKS", value)]).unwrap();
            assert_eq!(config.allow_private_networks, expected, "{value}");
        }
        let error = parse(&[], &[("CLOCKEYE_ALLOW_HTTP", "maybe")]).unwrap_err();
        assert!(
            error.starts_with("--allow-http: \"maybe\" is not true or false"),
            "{error}"
        );
        // Empty variables are unset.
        let config = parse(
            &[],
            &[("CLOCKEYE_ALLOW_HTTP", ""), ("CLOCKEYE_ALLOW_NETWORK", "")],
        )
        .unwrap();
        assert!(!config.allow_http && config.allow_networks.is_empty());
    }

    #[test]
    fn allowed_networks_are_repeatable_and_comma_separated() {
        let config = parse(
            &[
                "--allow-network",
                "10.0.0.0/8, 192.168.0.0/16",
                "--allow-network",
                "fd00::/8",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(config.allow_networks.len(), 3);
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
