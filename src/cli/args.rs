//! The whole command line as one clap definition: `Cli` (the global flags `--server`,
//! `--token`, `--json`) and `Command`, one variant per command. `serve`'s flags live in
//! `config.rs`, `bench`'s in `bench/mod.rs`, `backup`'s in `backup.rs`; the integrator commands'
//! are here. Help text, environment variables, completions (`completions.rs`) and the one-line
//! usage errors (`parse.rs`) all come from this one definition.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cli::{backup, bench, migrate};
use crate::config;

/// Help of the endpoint flow-control flags (SPEC "Flow control").
const RATE_LIMIT_HELP: &str = "most deliveries started per second, 1-10000 (none: no limit)";
const ORDERING_HELP: &str =
    "subject: an event waits until the earlier ones about the same object are done";

/// Help of every command (after `clockeye-webhooks endpoints list`, say): what it does, usage,
/// flags, then examples (`after_help`).
pub(super) const COMMAND_HELP: &str = ": {about}\n\nusage: {usage}\n\n{all-args}{after-help}\n";

/// Said by every integrator command's help after its examples.
macro_rules! exit_status {
    () => {
        "\n\nexit status: 0 done, 1 failed (one line on stderr says why), 2 usage error"
    };
}

/// The top of `clockeye-webhooks --help`; the list of commands follows (`summary`).
pub(super) const TOP_HELP: &str = "clockeye-webhooks: delivers ClockEye events to webhook endpoints, signed and retried

usage:
  clockeye-webhooks serve [FLAGS]   run the API and the delivery engine (see serve --help)
  clockeye-webhooks bench [FLAGS]   measure throughput and latency on this machine (see bench --help)
  clockeye-webhooks backup PATH     a consistent copy of the live database (see backup --help)
  clockeye-webhooks migrate --from FILE --to URL   copy a SQLite database into Postgres (see migrate --help)
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
    /// copy a SQLite database into an empty Postgres database (stop the service first)
    Migrate(migrate::Options),
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

pub(crate) use super::parse::{Stop, command, parse};
