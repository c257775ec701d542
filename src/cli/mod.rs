//! The integrator commands: `listen`, `verify`, `send`, `endpoints …`, `deliveries …`,
//! `recover`, `workspaces tokens …`, `portal-link`, `completions`, and the operator's `backup`,
//! `migrate` and `bench`; `main` parses the whole command line (one clap definition, `args.rs`)
//! and runs `serve` (`crate::serve`) or the command; `run` hands each integrator command to its module.
//! Exit codes: 0 done (or valid), 1 failed (or
//! invalid), 2 usage error.

pub(crate) mod args;
pub(crate) mod backup;
pub(crate) mod bench;
mod completions;
mod listen;
pub(crate) mod migrate;
mod parse;
mod remote;
mod request;
mod verify;
mod workspaces;

use std::process::ExitCode;

use args::{ClientArgs, Command, Deliveries, Endpoints, Stop, Tokens, Workspaces};

use crate::config::Config;

/// How a command did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The command line is wrong: exit 2.
    Usage(String),
    /// The command ran and failed (or found the signature invalid): exit 1.
    Failed(String),
    /// Failed in a way no further request can avoid (server unreachable, token refused): bulk
    /// work stops. Exit 1.
    Stop(String),
}

pub(crate) type Outcome = Result<(), Failure>;

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}

fn failed(message: impl Into<String>) -> Failure {
    Failure::Failed(message.into())
}

/// The whole command line: parses it and runs the command; the exit code follows SPEC.
pub(crate) fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = match args::parse(&args) {
        Ok(parsed) => parsed,
        Err(Stop::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(Stop::Usage(line)) => {
            eprintln!("clockeye-webhooks: {line}");
            return ExitCode::from(2);
        }
    };
    let Some(command) = parsed.command else {
        unreachable!("parse answers Stop::Print when no command is given")
    };
    match command {
        Command::Serve(args) => match crate::serve::serve(Config::from(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("clockeye-webhooks: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Bench(options) => match bench::main(options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(line) => {
                eprintln!("clockeye-webhooks bench: {line}");
                ExitCode::from(2)
            }
        },
        Command::Backup(options) => match backup::run(&options) {
            Ok(summary) => {
                println!(
                    "backup written to {}: {} bytes, {} events, {} deliveries pending",
                    options.dest.display(),
                    summary.bytes,
                    summary.events,
                    summary.deliveries_pending
                );
                ExitCode::SUCCESS
            }
            Err(line) => {
                eprintln!("clockeye-webhooks backup: {line}");
                ExitCode::FAILURE
            }
        },
        Command::Migrate(options) => match migrate::run(&options) {
            Ok(lines) => {
                for line in lines {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(line) => {
                eprintln!("clockeye-webhooks migrate: {line}");
                ExitCode::FAILURE
            }
        },
        command => client_main(command, parsed.client),
    }
}

/// Runs one integrator command (`serve`, `bench`, `backup` and `migrate` are run by `main` above).
fn client_main(command: Command, client: ClientArgs) -> ExitCode {
    // Like other command-line tools, end quietly when a reader such as `head` closes the pipe
    // (Rust's runtime ignores SIGPIPE, and a failed print would panic).
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default has no preconditions; done before
    // any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(command, client) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(message) | Failure::Stop(message)) => {
            if !message.is_empty() {
                eprintln!("clockeye-webhooks: {message}");
            }
            ExitCode::FAILURE
        }
        Err(Failure::Usage(message)) => {
            eprintln!("clockeye-webhooks: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command, client: ClientArgs) -> Outcome {
    let remote = |name: &str, parsed: Parsed| remote::main(name, &parsed.client(client.clone()));
    match command {
        Command::Listen(listen) => listen::main(
            &Parsed::new(vec![])
                .value("port", listen.port)
                .value("secret", non_empty(listen.secret))
                .value("forward-to", listen.forward_to)
                .value("status", listen.status)
                .switch("register", listen.register)
                .value("events", listen.events)
                .value("workspace", listen.workspace)
                .client(client.clone()),
        ),
        Command::Verify(verify) => verify::main(
            &Parsed::new(verify.body.into_iter().collect())
                .value("secret", non_empty(verify.secret))
                .value("signature", verify.signature)
                .value("timestamp", verify.timestamp)
                .value("id", verify.id)
                .value("previous-secret", verify.previous_secret)
                .value("tolerance", verify.tolerance),
        ),
        Command::Completions(completions) => completions::main(completions.shell),
        Command::Send(send) => remote(
            "send",
            Parsed::new(vec![send.event_type])
                .value("data", send.data)
                .value("workspace", send.workspace)
                .value("id", send.id),
        ),
        Command::Endpoints(endpoints) => match endpoints {
            Endpoints::List {
                workspace,
                limit,
                all,
            } => remote(
                "endpoints list",
                Parsed::new(vec![])
                    .value("workspace", workspace)
                    .value("limit", limit)
                    .switch("all", all),
            ),
            Endpoints::Show { id } => remote("endpoints show", Parsed::new(vec![id])),
            Endpoints::Add {
                url,
                events,
                description,
                workspace,
                header,
                rate_limit,
                ordering,
            } => remote(
                "endpoints add",
                Parsed::new(vec![url])
                    .value("events", events)
                    .value("description", description)
                    .value("workspace", workspace)
                    .values("header", header)
                    .value("rate-limit", rate_limit)
                    .value("ordering", ordering),
            ),
            Endpoints::Update {
                id,
                url,
                events,
                description,
                header,
                rate_limit,
                ordering,
                enable,
                disable,
            } => remote(
                "endpoints update",
                Parsed::new(vec![id])
                    .value("url", url)
                    .value("events", events)
                    .value("description", description)
                    .values("header", header)
                    .value("rate-limit", rate_limit)
                    .value("ordering", ordering)
                    .switch("enable", enable)
                    .switch("disable", disable),
            ),
            Endpoints::Remove { ids } => remote("endpoints remove", Parsed::new(ids)),
            Endpoints::Rotate { id, overlap } => remote(
                "endpoints rotate",
                Parsed::new(vec![id]).value("overlap", overlap),
            ),
            Endpoints::Secret { id } => remote("endpoints secret", Parsed::new(vec![id])),
            Endpoints::Test {
                id,
                event_type,
                wait,
            } => remote(
                "endpoints test",
                Parsed::new(vec![id])
                    .value("type", event_type)
                    .switch("wait", wait),
            ),
        },
        Command::Deliveries(deliveries) => match deliveries {
            Deliveries::List {
                endpoint,
                event,
                status,
                workspace,
                limit,
                all,
                ids,
            } => remote(
                "deliveries list",
                Parsed::new(vec![])
                    .value("endpoint", endpoint)
                    .value("event", event)
                    .value("status", status)
                    .value("workspace", workspace)
                    .value("limit", limit)
                    .switch("all", all)
                    .switch("ids", ids),
            ),
            Deliveries::Show { id, request } => remote(
                "deliveries show",
                Parsed::new(vec![id]).value("request", request),
            ),
            Deliveries::Retry { ids } => remote("deliveries retry", Parsed::new(ids)),
        },
        Command::Recover(recover) => remote(
            "recover",
            Parsed::new(vec![recover.endpoint])
                .value("since", recover.since)
                .value("until", recover.until),
        ),
        Command::Workspaces(Workspaces::Tokens(tokens)) => match tokens {
            Tokens::Create {
                workspace,
                description,
            } => workspaces::main(
                "workspaces tokens create",
                &Parsed::new(vec![workspace])
                    .value("description", description)
                    .client(client),
            ),
            Tokens::List { workspace } => workspaces::main(
                "workspaces tokens list",
                &Parsed::new(vec![workspace]).client(client),
            ),
            Tokens::Revoke { workspace, ids } => workspaces::main(
                "workspaces tokens revoke",
                &Parsed::new([vec![workspace], ids].concat()).client(client),
            ),
        },
        Command::PortalLink(link) => workspaces::main(
            "portal-link",
            &Parsed::new(vec![link.workspace])
                .value("expires-in", link.expires_in)
                .client(client),
        ),
        Command::Serve(_)
        | Command::Bench(_)
        | Command::Backup(_)
        | Command::Migrate(_)
        | Command::Version => {
            unreachable!("`main` runs serve, bench, backup, migrate and version")
        }
    }
}

/// A value that may come from the environment: an empty variable counts as unset.
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

/// A command's arguments as its module reads them: positional arguments and flag values by
/// flag name. Made from the typed clap structs in `run`, so the modules need no clap.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) positionals: Vec<String>,
    values: Vec<(&'static str, String)>,
}

impl Parsed {
    fn new(positionals: Vec<String>) -> Parsed {
        Parsed {
            positionals,
            values: Vec::new(),
        }
    }

    /// Adds a flag's value when it was given.
    fn value(mut self, name: &'static str, value: Option<String>) -> Parsed {
        if let Some(value) = value {
            self.values.push((name, value));
        }
        self
    }

    fn values(mut self, name: &'static str, values: Vec<String>) -> Parsed {
        self.values
            .extend(values.into_iter().map(|value| (name, value)));
        self
    }

    fn switch(mut self, name: &'static str, on: bool) -> Parsed {
        if on {
            self.values.push((name, "true".into()));
        }
        self
    }

    /// Adds `--server`, `--token` (either from flag or environment) and `--json`.
    fn client(self, client: ClientArgs) -> Parsed {
        self.value("server", non_empty(client.server))
            .value("token", non_empty(client.token))
            .switch("json", client.json)
    }

    /// The last value given for a flag.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(flag, _)| *flag == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value given for a repeatable flag.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(flag, _)| *flag == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A flag's value, else an environment variable's.
    pub(crate) fn get_or_env(&self, name: &str, env: &str) -> Option<String> {
        self.get(name)
            .map(str::to_string)
            .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
    }

    /// A flag that must be given.
    pub(crate) fn required(&self, name: &str, command: &str) -> Result<&str, Failure> {
        self.get(name).ok_or_else(|| {
            usage(format!(
                "{command} needs --{name} (see clockeye-webhooks {command} --help)"
            ))
        })
    }
}
