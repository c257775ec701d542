//! The whole command line as one clap definition: `Cli` (the global flags `--server`,
//! `--token`, `--json`) and `Command`, one variant per command. `serve`'s flags live in
//! `config.rs`, `bench`'s in `bench/mod.rs`, `backup`'s in `backup.rs`; the integrator commands'
//! are here. Help text, environment variables, completions (`completions.rs`) and the one-line
//! usage errors (`error_line`) all come from this one definition.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::cli::{backup, bench};
use crate::config;

/// Help of the endpoint flow-control flags (SPEC "Flow control").
const RATE_LIMIT_HELP: &str = "most deliveries started per second, 1-10000 (none: no limit)";
const ORDERING_HELP: &str =
    "subject: an event waits until the earlier ones about the same object are done";

/// Help of every command (after `clockeye-webhooks endpoints list`, say): what it does, usage,
/// flags, then examples (`after_help`).
const COMMAND_HELP: &str = ": {about}\n\nusage: {usage}\n\n{all-args}{after-help}\n";

/// Said by every integrator command's help after its examples.
macro_rules! exit_status {
    () => {
        "\n\nexit status: 0 done, 1 failed (one line on stderr says why), 2 usage error"
    };
}

/// The top of `clockeye-webhooks --help`; the list of commands follows (`summary`).
const TOP_HELP: &str = "clockeye-webhooks: delivers ClockEye events to webhook endpoints, signed and retried

usage:
  clockeye-webhooks serve [FLAGS]   run the API and the delivery engine (see serve --help)
  clockeye-webhooks bench [FLAGS]   measure throughput and latency on this machine (see bench --help)
  clockeye-webhooks backup PATH     a consistent copy of the live database (see backup --help)
  clockeye-webhooks --version

quick start:
  clockeye-webhooks serve           listens on 127.0.0.1:7740, database ./clockeye-webhooks.db

for receivers and operators (each has --help with examples; those that call the API take
--server, --token and --json, before or after the command, or CLOCKEYE_SERVER and CLOCKEYE_TOKEN):
";

#[derive(Debug, Parser)]
// A flag given twice takes its last value, as before clap (scripts append overrides).
#[command(
    name = "clockeye-webhooks",
    version,
    propagate_version = true,
    args_override_self = true
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// The flags of every command that talks to the server; given before or after the command.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Client flags (for the commands that call the API)")]
pub(crate) struct ClientArgs {
    #[arg(
        long,
        global = true,
        env = "CLOCKEYE_SERVER",
        value_name = "URL",
        help = "the service's API (default http://127.0.0.1:7740)"
    )]
    pub(crate) server: Option<String>,
    #[arg(
        long,
        short = 't',
        global = true,
        env = "CLOCKEYE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help = "bearer token: the admin token or a workspace token"
    )]
    pub(crate) token: Option<String>,
    #[arg(
        long,
        short = 'j',
        global = true,
        help = "print the API's JSON instead of a table (listen: one JSON object per webhook)"
    )]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// run the API and the delivery engine
    Serve(config::ServeArgs),
    /// measure the real service on this machine
    Bench(bench::Options),
    /// a consistent copy of the live database
    Backup(backup::Options),
    /// a local receiver: prints each webhook (type, id, attempt, whether its signature verified) and answers 200, or forwards it and relays the answer
    Listen(Listen),
    /// check a webhook signature against a body (from the file, or stdin); exit 0 when valid, else 1 and why in plain words
    Verify(Verify),
    /// send an event of TYPE (the catalog's sample data unless --data is given)
    Send(SendEvent),
    /// commands for endpoints: list, show, add, update, remove, rotate, secret, test
    #[command(subcommand)]
    Endpoints(Endpoints),
    /// commands for deliveries: list, show, retry
    #[command(subcommand)]
    Deliveries(Deliveries),
    /// re-send an endpoint's failed deliveries created in a time window
    Recover(Recover),
    /// commands for a workspace's tokens: create, list, revoke (admin token)
    #[command(subcommand)]
    Workspaces(Workspaces),
    /// a single-use link that opens the dashboard signed in as a workspace (admin token)
    PortalLink(PortalLink),
    /// print a shell completion script
    Completions(Completions),
    /// print the version
    #[command(hide = true)]
    Version,
}

#[derive(Debug, Args)]
#[command(after_help = concat!(
    "examples:\n",
    "  clockeye-webhooks listen --secret whsec_…\n",
    "  clockeye-webhooks listen --port 0 --secret \"$SECRET\" --forward-to http://localhost:3000/webhooks\n",
    "  clockeye-webhooks listen --register --token \"$TOKEN\"   # a temporary endpoint for this listener\n",
    "  clockeye-webhooks endpoints add http://127.0.0.1:7741/ --events '*'   # then send events",
    exit_status!()
))]
pub(crate) struct Listen {
    #[arg(
        long,
        help = "add a temporary endpoint pointing at this listener (its secret verifies), removed when listen stops; the service must allow http:// and 127.0.0.1 (serve --allow-http --allow-network 127.0.0.0/8)"
    )]
    pub register: bool,
    #[arg(
        long,
        value_name = "TYPES",
        requires = "register",
        help = "with --register: the event types, comma-separated (default: all)"
    )]
    pub events: Option<String>,
    #[arg(
        long,
        short = 'w',
        value_name = "WORKSPACE",
        requires = "register",
        help = "with --register: the endpoint's workspace (admin token; default: the token's own)"
    )]
    pub workspace: Option<String>,
    #[arg(
        long,
        short = 'p',
        value_name = "PORT",
        help = "port on 127.0.0.1 (default 7741; 0 picks a free one)"
    )]
    pub(crate) port: Option<String>,
    #[arg(
        long,
        env = "CLOCKEYE_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        help = "the endpoint's secret, to verify signatures"
    )]
    pub(crate) secret: Option<String>,
    #[arg(
        long,
        value_name = "URL",
        help = "send each webhook on to this URL as given (same body bytes and headers) and relay its answer"
    )]
    pub(crate) forward_to: Option<String>,
    #[arg(
        long,
        value_name = "CODE",
        help = "answer this status when not forwarding (default 200), e.g. 500 to watch retries"
    )]
    pub(crate) status: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = concat!(
    "examples:\n",
    "  clockeye-webhooks verify --secret whsec_… --signature sha256=5d1c… body.json\n",
    "  clockeye-webhooks verify --secret whsec_… --signature 'v1,K5oZ…=' --id evt_… --timestamp 1705314600 - < body.json\n",
    "\nexit status: 0 done (valid), 1 invalid (the reason is printed), 2 usage error"
))]
pub(crate) struct Verify {
    #[arg(
        value_name = "BODY_FILE|-",
        help = "the body as received (default: stdin)"
    )]
    pub(crate) body: Option<String>,
    #[arg(
        long,
        env = "CLOCKEYE_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        help = "the endpoint's secret"
    )]
    pub(crate) secret: Option<String>,
    #[arg(
        long,
        value_name = "VALUE",
        help = "an X-ClockEye-Signature (sha256=<hex>) or webhook-signature (v1,<base64> …) value"
    )]
    pub(crate) signature: Option<String>,
    #[arg(
        long,
        value_name = "UNIX_SECONDS",
        help = "webhook-timestamp (needed for a webhook-signature)"
    )]
    pub(crate) timestamp: Option<String>,
    #[arg(
        long,
        value_name = "ID",
        help = "webhook-id (needed for a webhook-signature)"
    )]
    pub(crate) id: Option<String>,
    #[arg(
        long,
        value_name = "SECRET",
        help = "the endpoint's previous secret, to tell whether it signed this"
    )]
    pub(crate) previous_secret: Option<String>,
    #[arg(
        long,
        value_name = "DURATION",
        help = "how far webhook-timestamp may be from now (default 5m)"
    )]
    pub(crate) tolerance: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = concat!(
    "examples:\n",
    "  clockeye-webhooks send time_entry.created\n",
    "  clockeye-webhooks send user.invited --data '{\"id\":\"usr_1\",\"email\":\"sam@example.com\",\"role\":\"member\",\"invited_by\":\"usr_2\"}'\n",
    "  clockeye-webhooks send project.created --data @project.json --workspace acme",
    exit_status!()
))]
pub(crate) struct SendEvent {
    #[arg(value_name = "TYPE", help = "the event type, e.g. time_entry.created")]
    pub(crate) event_type: String,
    #[arg(
        long,
        short = 'd',
        value_name = "JSON|@FILE|@-",
        help = "the event's data: JSON text, a file, or stdin"
    )]
    pub(crate) data: Option<String>,
    #[arg(
        long,
        short = 'w',
        value_name = "WORKSPACE",
        help = "the workspace (default: the token's, or default)"
    )]
    pub(crate) workspace: Option<String>,
    #[arg(
        long,
        value_name = "ID",
        help = "the event id, for idempotency (default: the server picks one)"
    )]
    pub(crate) id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Endpoints {
    /// list endpoints, newest first
    #[command(after_help = concat!(
        "examples:\n",
        "  clockeye-webhooks endpoints list\n",
        "  clockeye-webhooks endpoints list --all --json | jq -r '.data[].url'",
        exit_status!()
    ))]
    List {
        #[arg(
            long,
            short = 'w',
            value_name = "WORKSPACE",
            help = "only this workspace's"
        )]
        workspace: Option<String>,
        #[arg(long, short = 'n', value_name = "N", help = "at most N (default 50)")]
        limit: Option<String>,
        #[arg(
            long,
            short = 'a',
            help = "every one, following pages (progress on stderr)"
        )]
        all: bool,
    },
    /// one endpoint
    #[command(after_help = concat!("examples:\n  clockeye-webhooks endpoints show ep_3f…", exit_status!()))]
    Show {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// create an endpoint; prints its id and signing secret
    #[command(after_help = concat!(
        "examples:\n",
        "  clockeye-webhooks endpoints add https://example.com/webhooks --events time_entry.created,user.invited\n",
        "  clockeye-webhooks endpoints add https://example.com/hooks --header 'Authorization: Basic dXNlcjpwdw=='",
        exit_status!()
    ))]
    Add {
        #[arg(value_name = "URL")]
        url: String,
        #[arg(
            long,
            short = 'e',
            value_name = "TYPES",
            help = "comma-separated event types, or '*' for all (default '*')"
        )]
        events: Option<String>,
        #[arg(long, value_name = "TEXT", help = "a note for people")]
        description: Option<String>,
        #[arg(
            long,
            short = 'w',
            value_name = "WORKSPACE",
            help = "the workspace (default: the token's, or default)"
        )]
        workspace: Option<String>,
        #[arg(
            long,
            value_name = "'NAME: VALUE'",
            help = "an extra header sent with each webhook; repeatable"
        )]
        header: Vec<String>,
        #[arg(long, value_name = "N", help = RATE_LIMIT_HELP)]
        rate_limit: Option<String>,
        #[arg(long, value_name = "none|subject", help = ORDERING_HELP)]
        ordering: Option<String>,
    },
    /// change an endpoint: only the fields given
    #[command(after_help = concat!(
        "examples:\n",
        "  clockeye-webhooks endpoints update ep_3f… --disable\n",
        "  clockeye-webhooks endpoints update ep_3f… --url https://example.com/v2/webhooks --events '*'",
        exit_status!()
    ))]
    Update {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long, value_name = "URL", help = "the new URL")]
        url: Option<String>,
        #[arg(
            long,
            short = 'e',
            value_name = "TYPES",
            help = "comma-separated event types, or '*' for all"
        )]
        events: Option<String>,
        #[arg(long, value_name = "TEXT", help = "a note for people")]
        description: Option<String>,
        #[arg(
            long,
            value_name = "'NAME: VALUE'",
            help = "extra headers (replace all of them); repeatable"
        )]
        header: Vec<String>,
        #[arg(long, value_name = "N|none", help = RATE_LIMIT_HELP)]
        rate_limit: Option<String>,
        #[arg(long, value_name = "none|subject", help = ORDERING_HELP)]
        ordering: Option<String>,
        #[arg(long, help = "enable it (its waiting deliveries go out)")]
        enable: bool,
        #[arg(long, help = "disable it (it gets nothing until enabled)")]
        disable: bool,
    },
    /// delete endpoints and their deliveries (progress on stderr for several)
    #[command(after_help = concat!("examples:\n  clockeye-webhooks endpoints remove ep_3f… ep_9a…", exit_status!()))]
    Remove {
        #[arg(value_name = "ID")]
        ids: Vec<String>,
    },
    /// give an endpoint a new signing secret; the old one stays valid during the overlap
    #[command(after_help = concat!(
        "examples:\n",
        "  clockeye-webhooks endpoints rotate ep_3f…\n",
        "  clockeye-webhooks endpoints rotate ep_3f… --overlap 0s   # the old secret leaked",
        exit_status!()
    ))]
    Rotate {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(
            long,
            value_name = "DURATION",
            help = "how long the old secret stays valid (default 24h; 0s for a leaked secret)"
        )]
        overlap: Option<String>,
    },
    /// print an endpoint's signing secret (and the previous one's end, during an overlap)
    #[command(after_help = concat!(
        "examples:\n",
        "  clockeye-webhooks endpoints secret ep_3f…\n",
        "  clockeye-webhooks listen --secret \"$(clockeye-webhooks endpoints secret ep_3f…)\"",
        exit_status!()
    ))]
    Secret {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// send a sample event to this endpoint only
    #[command(after_help = concat!(
        "examples:\n",
        "  clockeye-webhooks endpoints test ep_3f… --wait\n",
        "  clockeye-webhooks endpoints test ep_3f… --type user.invited",
        exit_status!()
    ))]
    Test {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(
            long = "type",
            value_name = "TYPE",
            help = "the event type (default: the endpoint's first, or time_entry.created)"
        )]
        event_type: Option<String>,
        #[arg(
            long,
            help = "wait for the first attempt's result (up to 60 s) and print it"
        )]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum Deliveries {
    /// list deliveries, newest first
    #[command(after_help = concat!(
        "examples:\n",
        "  clockeye-webhooks deliveries list --status failed\n",
        "  clockeye-webhooks deliveries list --endpoint ep_3f… --all --ids | clockeye-webhooks deliveries retry -",
        exit_status!()
    ))]
    List {
        #[arg(long, value_name = "ID", help = "only this endpoint's")]
        endpoint: Option<String>,
        #[arg(long, value_name = "ID", help = "only this event's")]
        event: Option<String>,
        #[arg(long, value_name = "STATUS", value_parser = crate::model::DELIVERY_STATUSES, help = "only deliveries in this state")]
        status: Option<String>,
        #[arg(
            long,
            short = 'w',
            value_name = "WORKSPACE",
            help = "only this workspace's"
        )]
        workspace: Option<String>,
        #[arg(
            long,
            short = 'n',
            value_name = "N",
            help = "at most N (default 50; more than 500 follows pages)"
        )]
        limit: Option<String>,
        #[arg(
            long,
            short = 'a',
            help = "every one, following pages (progress on stderr)"
        )]
        all: bool,
        #[arg(long, help = "print only the ids, one a line (for deliveries retry -)")]
        ids: bool,
    },
    /// one delivery with its attempts
    #[command(after_help = concat!(
        "examples:\n",
        "  clockeye-webhooks deliveries show dlv_7c…\n",
        "  clockeye-webhooks deliveries show dlv_7c… --request 2   # the headers and body attempt 2 sent",
        exit_status!()
    ))]
    Show {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(
            long,
            value_name = "N",
            help = "print what attempt N sent instead: its headers (no secret; extra headers' values masked) and body"
        )]
        request: Option<String>,
    },
    /// send deliveries again now (ids as arguments, or - to read them from stdin); progress on stderr
    #[command(after_help = concat!(
        "examples:\n",
        "  clockeye-webhooks deliveries retry dlv_7c… dlv_1d…\n",
        "  clockeye-webhooks deliveries list --status failed --all --ids | clockeye-webhooks deliveries retry -",
        exit_status!()
    ))]
    Retry {
        #[arg(value_name = "ID...|-")]
        ids: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Workspaces {
    /// commands for a workspace's tokens: create, list, revoke
    #[command(subcommand)]
    Tokens(Tokens),
}

#[derive(Debug, Subcommand)]
pub enum Tokens {
    /// a new token for a workspace; shown once
    #[command(after_help = concat!(
        "examples:\n",
        "  clockeye-webhooks workspaces tokens create acme --description \"Acme's integration\"",
        exit_status!()
    ))]
    Create {
        #[arg(value_name = "WORKSPACE")]
        workspace: String,
        #[arg(long, short = 'd', value_name = "TEXT", help = "what the token is for")]
        description: Option<String>,
    },
    /// a workspace's tokens (never the tokens themselves)
    #[command(after_help = concat!("examples:\n  clockeye-webhooks workspaces tokens list acme", exit_status!()))]
    List {
        #[arg(value_name = "WORKSPACE")]
        workspace: String,
    },
    /// revoke tokens of a workspace; whoever uses one is refused at their next request
    #[command(after_help = concat!("examples:\n  clockeye-webhooks workspaces tokens revoke acme tok_3f…", exit_status!()))]
    Revoke {
        #[arg(value_name = "WORKSPACE")]
        workspace: String,
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
}

#[derive(Debug, Args)]
#[command(after_help = concat!(
    "examples:\n",
    "  clockeye-webhooks portal-link acme\n",
    "  clockeye-webhooks portal-link acme --expires-in 15m",
    exit_status!()
))]
pub struct PortalLink {
    #[arg(value_name = "WORKSPACE")]
    pub workspace: String,
    #[arg(
        long,
        value_name = "DURATION",
        help = "the link works once, within this time (default 1h, at most 24h)"
    )]
    pub expires_in: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = concat!(
    "examples:\n",
    "  clockeye-webhooks recover ep_3f… --since 2h\n",
    "  clockeye-webhooks recover ep_3f… --since 2024-01-15T00:00:00Z --until 2024-01-16T00:00:00Z",
    exit_status!()
))]
pub(crate) struct Recover {
    #[arg(value_name = "ENDPOINT")]
    pub(crate) endpoint: String,
    #[arg(
        long,
        value_name = "TIME",
        help = "start: RFC 3339 (2024-01-15T10:00:00Z) or a duration ago (2h)"
    )]
    pub(crate) since: Option<String>,
    #[arg(
        long,
        value_name = "TIME",
        help = "end (default now): RFC 3339 or a duration ago"
    )]
    pub(crate) until: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = concat!(
    "examples:\n",
    "  source <(clockeye-webhooks completions bash)\n",
    "  clockeye-webhooks completions zsh > \"${fpath[1]}/_clockeye-webhooks\"\n",
    "  clockeye-webhooks completions fish > ~/.config/fish/completions/clockeye-webhooks.fish",
    exit_status!()
))]
pub(crate) struct Completions {
    #[arg(value_name = "SHELL")]
    pub(crate) shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The clap command: the derive's, with the help layout every command shares and the top
/// help's list of commands.
pub(crate) fn command() -> clap::Command {
    let command = with_help_template(Cli::command(), "clockeye-webhooks");
    let top = format!(
        "{TOP_HELP}{}\nflags (before or after the command):\n{{options}}\n",
        summary(&command)
    );
    command.help_template(top)
}

fn with_help_template(command: clap::Command, words: &str) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    names.iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| {
            let words = format!("{words} {name}");
            let template = format!("{words}{COMMAND_HELP}");
            with_help_template(sub.help_template(template), &words)
        })
    })
}

/// One line per command (`endpoints list`, not `endpoints`), for the top-level help.
fn summary(command: &clap::Command) -> String {
    let mut lines = Vec::new();
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        if ["serve", "bench", "backup"].contains(&sub.get_name()) {
            continue;
        }
        if sub.has_subcommands() {
            for leaf in sub.get_subcommands() {
                // Two levels at most: `workspaces tokens create WORKSPACE`.
                if leaf.has_subcommands() {
                    for deeper in leaf.get_subcommands() {
                        let words = format!(
                            "{} {} {}",
                            sub.get_name(),
                            leaf.get_name(),
                            usage_args(deeper)
                        );
                        lines.push((words, deeper));
                    }
                } else {
                    lines.push((format!("{} {}", sub.get_name(), usage_args(leaf)), leaf));
                }
            }
        } else {
            lines.push((usage_args(sub), sub));
        }
    }
    let mut text = String::new();
    for (words, sub) in lines {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        // The first clause is enough for the overview.
        let about = about
            .split([';', '('])
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        text.push_str(&format!(
            "  clockeye-webhooks {:<26}  {about}\n",
            words.trim_end()
        ));
    }
    text
}

/// `show ID`: a command's name and its positional arguments.
fn usage_args(command: &clap::Command) -> String {
    let mut words = vec![command.get_name().to_string()];
    for arg in command.get_positionals() {
        let name = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(|name| name.to_string())
            .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
        let many = matches!(arg.get_action(), clap::ArgAction::Append);
        words.push(if many { format!("{name}...") } else { name });
    }
    words.join(" ")
}

/// How parsing ended when it did not give a command to run.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Help or the version was asked for (or nothing at all): print this on stdout, exit 0.
    Print(String),
    /// A usage error: this one line on stderr, exit 2.
    Usage(String),
}

/// Parses the process's arguments (`args` includes the program name).
pub(crate) fn parse(args: &[std::ffi::OsString]) -> Result<Cli, Stop> {
    let mut command = command();
    let matches = match command.try_get_matches_from_mut(args) {
        Ok(matches) => matches,
        Err(error) => return Err(stop(&error, &command, args)),
    };
    if let Some((name, sub)) = matches.subcommand() {
        // The global flags are accepted everywhere by clap; only some commands use them.
        let uses: &[&str] = match name {
            "serve" | "bench" | "backup" | "verify" | "completions" | "version" => &[],
            "listen" => &["server", "token", "json"],
            _ => &["server", "token", "json"],
        };
        for flag in ["server", "token", "json"] {
            if !uses.contains(&flag)
                && sub.value_source(flag) == Some(clap::parser::ValueSource::CommandLine)
            {
                return Err(Stop::Usage(format!(
                    "--{flag} is for the commands that call the API, not {name} \
                     (see clockeye-webhooks {name} --help)"
                )));
            }
        }
    }
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
        .map_err(|error| stop(&error, &command, args))?;
    match cli.command {
        None => Err(Stop::Print(format!(
            "{}\n",
            command.render_help().to_string().trim_end()
        ))),
        Some(Command::Version) => Err(Stop::Print(version())),
        Some(_) => Ok(cli),
    }
}

fn version() -> String {
    format!("clockeye-webhooks {}\n", env!("CARGO_PKG_VERSION"))
}

fn stop(error: &clap::Error, command: &clap::Command, args: &[std::ffi::OsString]) -> Stop {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let text = error.render().to_string();
            Stop::Print(format!("{}\n", text.trim_end()))
        }
        ErrorKind::DisplayVersion => Stop::Print(version()),
        _ => Stop::Usage(error_line(error, &command_words(command, args))),
    }
}

/// The words of the command being parsed, e.g. `endpoints list`, from the arguments given.
fn command_words(command: &clap::Command, args: &[std::ffi::OsString]) -> String {
    let mut words = Vec::new();
    let mut current = command;
    for arg in args.iter().skip(1) {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        if let Some(sub) = current.find_subcommand(arg) {
            words.push(sub.get_name().to_string());
            current = sub;
        }
    }
    words.join(" ")
}

fn context(error: &clap::Error, kind: ContextKind) -> Option<String> {
    match error.get(kind)? {
        ContextValue::String(text) => Some(text.clone()),
        ContextValue::Strings(texts) => Some(texts.join(", ")),
        ContextValue::StyledStr(text) => Some(text.to_string()),
        other => Some(other.to_string()),
    }
}

/// A clap error as the one line SPEC asks for, naming the flag or value: e.g.
/// `--retry-schedule: "5x" is not a duration (…)`, `unknown flag --frob (see …)`.
pub(crate) fn error_line(error: &clap::Error, words: &str) -> String {
    let see = if words.is_empty() || words == "help" {
        "see clockeye-webhooks --help".to_string()
    } else {
        format!("see clockeye-webhooks {words} --help")
    };
    // `--retry-schedule <LIST>` → `--retry-schedule`; `<ID>` → `ID`.
    let arg = context(error, ContextKind::InvalidArg).map(|arg| {
        let name = arg.split_whitespace().next().unwrap_or("").to_string();
        name.trim_start_matches('<')
            .trim_end_matches('>')
            .to_string()
    });
    let value = context(error, ContextKind::InvalidValue);
    match (error.kind(), arg, value) {
        (ErrorKind::UnknownArgument, Some(arg), _) if arg.starts_with('-') => {
            format!("unknown flag {arg} ({see})")
        }
        (ErrorKind::UnknownArgument, Some(arg), _) => {
            format!("unexpected argument \"{arg}\" ({see})")
        }
        (ErrorKind::InvalidSubcommand, ..) => {
            let word = context(error, ContextKind::InvalidSubcommand).unwrap_or_default();
            // `help frob` asks about the command `frob`.
            let words = words.strip_prefix("help").unwrap_or(words);
            let command = [words.trim(), &word].join(" ");
            format!("unknown command \"{}\" ({see})", command.trim())
        }
        (ErrorKind::ValueValidation, Some(arg), _) => match std::error::Error::source(error) {
            Some(source) => format!("{arg}: {source}"),
            None => format!("{arg}: {}", first_line(error)),
        },
        (ErrorKind::InvalidValue, Some(arg), Some(value)) if value.is_empty() => {
            format!("{arg} needs a value")
        }
        (ErrorKind::InvalidValue, Some(arg), Some(value)) => {
            let valid = context(error, ContextKind::ValidValue).unwrap_or_default();
            format!("{arg}: \"{value}\" is not one of: {valid}")
        }
        (ErrorKind::TooManyValues, Some(arg), _) if arg.starts_with('-') => {
            format!("{arg} takes no value ({see})")
        }
        (ErrorKind::MissingRequiredArgument, ..) => {
            let missing = context(error, ContextKind::InvalidArg)
                .unwrap_or_default()
                .replace(['<', '>'], "");
            format!("{words} needs {missing} ({see})")
                .trim()
                .to_string()
        }
        (ErrorKind::ArgumentConflict, Some(arg), _) => {
            let prior = context(error, ContextKind::PriorArg).unwrap_or_default();
            format!("{arg} and {prior} do not go together")
        }
        _ => format!("{} ({see})", first_line(error)),
    }
}

/// clap's own message, first line, without its `error: ` prefix.
fn first_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let line = text.lines().next().unwrap_or("").trim();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}
