//! The integrator commands: `listen`, `verify`, `send`, `endpoints …`, `deliveries …`,
//! `recover`, `completions`, and help for each. One table (`COMMANDS`) names every command and
//! its flags; parsing, help and shell completions are all made from it. Flags are parsed by
//! hand, as in `config.rs` (`serve` keeps its own parser there). Exit codes: 0 done (or valid),
//! 1 failed (or invalid), 2 usage error.

mod completions;
mod listen;
mod remote;
mod verify;

use std::process::ExitCode;

/// How a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong: exit 2.
    Usage(String),
    /// The command ran and failed (or found the signature invalid): exit 1.
    Failed(String),
    /// Failed in a way no further request can avoid (server unreachable, token refused): bulk
    /// work stops. Exit 1.
    Stop(String),
}

pub type Outcome = Result<(), Failure>;

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}

fn failed(message: impl Into<String>) -> Failure {
    Failure::Failed(message.into())
}

/// One flag: `--name VALUE` (or a switch when `value` is `None`).
pub struct Flag {
    pub name: &'static str,
    /// The value's placeholder in help, e.g. `URL`; `None` for a switch.
    pub value: Option<&'static str>,
    pub help: &'static str,
}

const fn flag(name: &'static str, value: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        value: Some(value),
        help,
    }
}

const fn switch(name: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        value: None,
        help,
    }
}

/// Help of the endpoint flow-control flags (SPEC "Flow control").
const RATE_LIMIT_HELP: &str = "most deliveries started per second, 1-10000 (none: no limit)";
const ORDERING_HELP: &str =
    "subject: an event waits until the earlier ones about the same object are done";

/// One command: its words (`endpoints add`), what follows them, its flags, help and examples.
pub struct Command {
    pub name: &'static str,
    /// Positional arguments as help shows them, e.g. `URL` or `ID...`.
    pub args: &'static str,
    pub about: &'static str,
    pub flags: &'static [Flag],
    /// Talks to a running server: takes `--server`, `--token` and `--json` too.
    pub remote: bool,
    pub examples: &'static [&'static str],
}

/// The flags of every command that talks to the server.
pub const CLIENT_FLAGS: &[Flag] = &[
    flag(
        "server",
        "URL",
        "the service's API (env CLOCKEYE_SERVER; default http://127.0.0.1:7740)",
    ),
    flag(
        "token",
        "TOKEN",
        "bearer token: the admin token or a workspace token (env CLOCKEYE_TOKEN)",
    ),
    switch("json", "print the API's JSON instead of a table"),
];

pub const COMMANDS: &[Command] = &[
    Command {
        name: "listen",
        args: "",
        about: "a local receiver: prints each webhook (type, id, attempt, whether its signature \
                verified) and answers 200, or forwards it and relays the answer",
        flags: &[
            flag(
                "port",
                "PORT",
                "port on 127.0.0.1 (default 7741; 0 picks a free one)",
            ),
            flag(
                "secret",
                "SECRET",
                "the endpoint's secret, to verify signatures (env CLOCKEYE_SECRET)",
            ),
            flag(
                "forward-to",
                "URL",
                "send each webhook on to this URL as given (same body bytes and headers) and relay its answer",
            ),
            flag(
                "status",
                "CODE",
                "answer this status when not forwarding (default 200), e.g. 500 to watch retries",
            ),
            switch("json", "print one JSON object per webhook"),
        ],
        remote: false,
        examples: &[
            "clockeye-webhooks listen --secret whsec_…",
            "clockeye-webhooks listen --port 0 --secret \"$SECRET\" --forward-to http://localhost:3000/webhooks",
            "clockeye-webhooks endpoints add http://127.0.0.1:7741/ --events '*'   # then send events",
        ],
    },
    Command {
        name: "verify",
        args: "[BODY_FILE|-]",
        about: "check a webhook signature against a body (from the file, or stdin); exit 0 when \
                valid, else 1 and why in plain words",
        flags: &[
            flag(
                "secret",
                "SECRET",
                "the endpoint's secret (env CLOCKEYE_SECRET)",
            ),
            flag(
                "signature",
                "VALUE",
                "an X-ClockEye-Signature (sha256=<hex>) or webhook-signature (v1,<base64> …) value",
            ),
            flag(
                "timestamp",
                "UNIX_SECONDS",
                "webhook-timestamp (needed for a webhook-signature)",
            ),
            flag("id", "ID", "webhook-id (needed for a webhook-signature)"),
            flag(
                "previous-secret",
                "SECRET",
                "the endpoint's previous secret, to tell whether it signed this",
            ),
            flag(
                "tolerance",
                "DURATION",
                "how far webhook-timestamp may be from now (default 5m)",
            ),
        ],
        remote: false,
        examples: &[
            "clockeye-webhooks verify --secret whsec_… --signature sha256=5d1c… body.json",
            "clockeye-webhooks verify --secret whsec_… --signature 'v1,K5oZ…=' --id evt_… --timestamp 1705314600 - < body.json",
        ],
    },
    Command {
        name: "send",
        args: "TYPE",
        about: "send an event of TYPE (the catalog's sample data unless --data is given)",
        flags: &[
            flag(
                "data",
                "JSON|@FILE|@-",
                "the event's data: JSON text, a file, or stdin",
            ),
            flag(
                "workspace",
                "WORKSPACE",
                "the workspace (default: the token's, or default)",
            ),
            flag(
                "id",
                "ID",
                "the event id, for idempotency (default: the server picks one)",
            ),
        ],
        remote: true,
        examples: &[
            "clockeye-webhooks send time_entry.created",
            "clockeye-webhooks send user.invited --data '{\"id\":\"usr_1\",\"email\":\"sam@example.com\",\"role\":\"member\",\"invited_by\":\"usr_2\"}'",
            "clockeye-webhooks send project.created --data @project.json --workspace acme",
        ],
    },
    Command {
        name: "endpoints list",
        args: "",
        about: "list endpoints, newest first",
        flags: &[
            flag("workspace", "WORKSPACE", "only this workspace's"),
            flag("limit", "N", "at most N (default 50)"),
            switch("all", "every one, following pages (progress on stderr)"),
        ],
        remote: true,
        examples: &[
            "clockeye-webhooks endpoints list",
            "clockeye-webhooks endpoints list --all --json | jq -r '.data[].url'",
        ],
    },
    Command {
        name: "endpoints show",
        args: "ID",
        about: "one endpoint",
        flags: &[],
        remote: true,
        examples: &["clockeye-webhooks endpoints show ep_3f…"],
    },
    Command {
        name: "endpoints add",
        args: "URL",
        about: "create an endpoint; prints its id and signing secret",
        flags: &[
            flag(
                "events",
                "TYPES",
                "comma-separated event types, or '*' for all (default '*')",
            ),
            flag("description", "TEXT", "a note for people"),
            flag(
                "workspace",
                "WORKSPACE",
                "the workspace (default: the token's, or default)",
            ),
            flag(
                "header",
                "'NAME: VALUE'",
                "an extra header sent with each webhook; repeatable",
            ),
            flag("rate-limit", "N", RATE_LIMIT_HELP),
            flag("ordering", "none|subject", ORDERING_HELP),
        ],
        remote: true,
        examples: &[
            "clockeye-webhooks endpoints add https://example.com/webhooks --events time_entry.created,user.invited",
            "clockeye-webhooks endpoints add https://example.com/hooks --header 'Authorization: Basic dXNlcjpwdw=='",
        ],
    },
    Command {
        name: "endpoints update",
        args: "ID",
        about: "change an endpoint: only the fields given",
        flags: &[
            flag("url", "URL", "the new URL"),
            flag(
                "events",
                "TYPES",
                "comma-separated event types, or '*' for all",
            ),
            flag("description", "TEXT", "a note for people"),
            flag(
                "header",
                "'NAME: VALUE'",
                "extra headers (replace all of them); repeatable",
            ),
            flag("rate-limit", "N|none", RATE_LIMIT_HELP),
            flag("ordering", "none|subject", ORDERING_HELP),
            switch("enable", "enable it (its waiting deliveries go out)"),
            switch("disable", "disable it (it gets nothing until enabled)"),
        ],
        remote: true,
        examples: &[
            "clockeye-webhooks endpoints update ep_3f… --disable",
            "clockeye-webhooks endpoints update ep_3f… --url https://example.com/v2/webhooks --events '*'",
        ],
    },
    Command {
        name: "endpoints remove",
        args: "ID...",
        about: "delete endpoints and their deliveries (progress on stderr for several)",
        flags: &[],
        remote: true,
        examples: &["clockeye-webhooks endpoints remove ep_3f… ep_9a…"],
    },
    Command {
        name: "endpoints rotate",
        args: "ID",
        about: "give an endpoint a new signing secret; the old one stays valid during the overlap",
        flags: &[flag(
            "overlap",
            "DURATION",
            "how long the old secret stays valid (default 24h; 0s for a leaked secret)",
        )],
        remote: true,
        examples: &[
            "clockeye-webhooks endpoints rotate ep_3f…",
            "clockeye-webhooks endpoints rotate ep_3f… --overlap 0s   # the old secret leaked",
        ],
    },
    Command {
        name: "endpoints secret",
        args: "ID",
        about: "print an endpoint's signing secret (and the previous one's end, during an overlap)",
        flags: &[],
        remote: true,
        examples: &[
            "clockeye-webhooks endpoints secret ep_3f…",
            "clockeye-webhooks listen --secret \"$(clockeye-webhooks endpoints secret ep_3f…)\"",
        ],
    },
    Command {
        name: "endpoints test",
        args: "ID",
        about: "send a sample event to this endpoint only",
        flags: &[
            flag(
                "type",
                "TYPE",
                "the event type (default: the endpoint's first, or time_entry.created)",
            ),
            switch(
                "wait",
                "wait for the first attempt's result (up to 60 s) and print it",
            ),
        ],
        remote: true,
        examples: &[
            "clockeye-webhooks endpoints test ep_3f… --wait",
            "clockeye-webhooks endpoints test ep_3f… --type user.invited",
        ],
    },
    Command {
        name: "deliveries list",
        args: "",
        about: "list deliveries, newest first",
        flags: &[
            flag("endpoint", "ID", "only this endpoint's"),
            flag("event", "ID", "only this event's"),
            flag(
                "status",
                "STATUS",
                "pending, delivering, succeeded or failed",
            ),
            flag("workspace", "WORKSPACE", "only this workspace's"),
            flag(
                "limit",
                "N",
                "at most N (default 50; more than 500 follows pages)",
            ),
            switch("all", "every one, following pages (progress on stderr)"),
            switch(
                "ids",
                "print only the ids, one a line (for deliveries retry -)",
            ),
        ],
        remote: true,
        examples: &[
            "clockeye-webhooks deliveries list --status failed",
            "clockeye-webhooks deliveries list --endpoint ep_3f… --all --ids | clockeye-webhooks deliveries retry -",
        ],
    },
    Command {
        name: "deliveries show",
        args: "ID",
        about: "one delivery with its attempts",
        flags: &[],
        remote: true,
        examples: &["clockeye-webhooks deliveries show dlv_7c…"],
    },
    Command {
        name: "deliveries retry",
        args: "ID...|-",
        about: "send deliveries again now (ids as arguments, or - to read them from stdin); \
                progress on stderr",
        flags: &[],
        remote: true,
        examples: &[
            "clockeye-webhooks deliveries retry dlv_7c… dlv_1d…",
            "clockeye-webhooks deliveries list --status failed --all --ids | clockeye-webhooks deliveries retry -",
        ],
    },
    Command {
        name: "recover",
        args: "ENDPOINT",
        about: "re-send an endpoint's failed deliveries created in a time window",
        flags: &[
            flag(
                "since",
                "TIME",
                "start: RFC 3339 (2024-01-15T10:00:00Z) or a duration ago (2h)",
            ),
            flag(
                "until",
                "TIME",
                "end (default now): RFC 3339 or a duration ago",
            ),
        ],
        remote: true,
        examples: &[
            "clockeye-webhooks recover ep_3f… --since 2h",
            "clockeye-webhooks recover ep_3f… --since 2024-01-15T00:00:00Z --until 2024-01-16T00:00:00Z",
        ],
    },
    Command {
        name: "completions",
        args: "bash|zsh|fish",
        about: "print a shell completion script",
        flags: &[],
        remote: false,
        examples: &[
            "source <(clockeye-webhooks completions bash)",
            "clockeye-webhooks completions zsh > \"${fpath[1]}/_clockeye-webhooks\"",
            "clockeye-webhooks completions fish > ~/.config/fish/completions/clockeye-webhooks.fish",
        ],
    },
];

/// The command groups whose second word names the command.
const GROUPS: &[&str] = &["endpoints", "deliveries"];

/// True when `word` starts one of the commands here (or is `help` followed by one).
pub fn is_command(word: &str) -> bool {
    GROUPS.contains(&word) || COMMANDS.iter().any(|c| c.name == word)
}

/// Runs `args` (the command's words first, without the program name).
pub fn main(args: &[String]) -> ExitCode {
    // Like other command-line tools, end quietly when a reader such as `head` closes the pipe
    // (Rust's runtime ignores SIGPIPE, and a failed print would panic).
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default has no preconditions; done before
    // any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(args) {
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

fn run(args: &[String]) -> Outcome {
    let (help_asked, args) = match args.first().map(String::as_str) {
        Some("help") => (true, &args[1..]),
        _ => (false, args),
    };
    let first = args.first().map(String::as_str).unwrap_or("");
    let (command, rest) = if GROUPS.contains(&first) {
        let second = args.get(1).map(String::as_str).unwrap_or("");
        let name = format!("{first} {second}");
        match COMMANDS.iter().find(|c| c.name == name) {
            Some(command) => (command, &args[2..]),
            None if second.is_empty() || matches!(second, "--help" | "-h" | "help") => {
                print!("{}", group_help(first));
                return Ok(());
            }
            None => {
                return Err(usage(format!(
                    "unknown command \"{first} {second}\" (see clockeye-webhooks {first} --help)"
                )));
            }
        }
    } else {
        match COMMANDS.iter().find(|c| c.name == first) {
            Some(command) => (command, &args[1..]),
            None => {
                return Err(usage(format!(
                    "unknown command \"{first}\" (see clockeye-webhooks --help)"
                )));
            }
        }
    };
    let before_dashes = rest.iter().take_while(|a| *a != "--");
    if help_asked || before_dashes.clone().any(|a| a == "--help" || a == "-h") {
        print!("{}", help(command));
        return Ok(());
    }
    let parsed = parse(command, rest)?;
    match command.name {
        "listen" => listen::main(&parsed),
        "verify" => verify::main(&parsed),
        "completions" => completions::main(&parsed),
        _ => remote::main(command.name, &parsed),
    }
}

/// A command line after parsing: positional arguments and flag values, in order.
#[derive(Debug, Default)]
pub struct Parsed {
    pub positionals: Vec<String>,
    values: Vec<(&'static str, String)>,
}

impl Parsed {
    /// The last value given for a flag.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(flag, _)| *flag == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value given for a repeatable flag.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(flag, _)| *flag == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A flag's value, else an environment variable's.
    pub fn get_or_env(&self, name: &str, env: &str) -> Option<String> {
        self.get(name)
            .map(str::to_string)
            .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
    }

    /// A flag that must be given.
    pub fn required(&self, name: &str, command: &str) -> Result<&str, Failure> {
        self.get(name).ok_or_else(|| {
            usage(format!(
                "{command} needs --{name} (see clockeye-webhooks {command} --help)"
            ))
        })
    }
}

fn flags_of(command: &Command) -> impl Iterator<Item = &'static Flag> + '_ {
    let client: &'static [Flag] = if command.remote { CLIENT_FLAGS } else { &[] };
    command.flags.iter().chain(client.iter())
}

/// Reads `args` (after the command's words) against the command's flags.
fn parse(command: &Command, args: &[String]) -> Result<Parsed, Failure> {
    let mut parsed = Parsed::default();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        if arg == "--" {
            parsed.positionals.extend(args[index + 1..].iter().cloned());
            break;
        }
        let Some(stripped) = arg.strip_prefix("--") else {
            if arg.starts_with('-') && arg != "-" {
                return Err(usage(format!(
                    "unknown flag {arg} (see clockeye-webhooks {} --help)",
                    command.name
                )));
            }
            parsed.positionals.push(arg.clone());
            index += 1;
            continue;
        };
        let (name, inline) = match stripped.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (stripped, None),
        };
        let Some(flag) = flags_of(command).find(|f| f.name == name) else {
            return Err(usage(format!(
                "unknown flag --{name} (see clockeye-webhooks {} --help)",
                command.name
            )));
        };
        let value = match (flag.value, inline) {
            (None, None) => "true".to_string(),
            (None, Some(_)) => return Err(usage(format!("--{name} takes no value"))),
            (Some(_), Some(value)) => value,
            (Some(placeholder), None) => {
                index += 1;
                args.get(index)
                    .cloned()
                    .ok_or_else(|| usage(format!("--{name} needs a value ({placeholder})")))?
            }
        };
        parsed.values.push((flag.name, value));
        index += 1;
    }
    Ok(parsed)
}

/// `clockeye-webhooks CMD --help`: what it does, usage, flags, examples.
pub fn help(command: &Command) -> String {
    let mut text = format!(
        "clockeye-webhooks {}: {}\n\nusage: clockeye-webhooks {}",
        command.name, command.about, command.name
    );
    if !command.args.is_empty() {
        text.push(' ');
        text.push_str(command.args);
    }
    if command.flags.len() + usize::from(command.remote) > 0 {
        text.push_str(" [FLAGS]");
    }
    text.push('\n');
    let flags: Vec<&Flag> = flags_of(command).collect();
    if !flags.is_empty() {
        text.push_str("\nflags:\n");
        let left: Vec<String> = flags
            .iter()
            .map(|f| match f.value {
                Some(value) => format!("--{} {value}", f.name),
                None => format!("--{}", f.name),
            })
            .collect();
        let width = left.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        for (flag, left) in flags.iter().zip(left) {
            let pad = width - left.chars().count();
            text.push_str(&format!("  {left}{}  {}\n", " ".repeat(pad), flag.help));
        }
    }
    if !command.examples.is_empty() {
        text.push_str("\nexamples:\n");
        for example in command.examples {
            text.push_str(&format!("  {example}\n"));
        }
    }
    text.push_str("\nexit status: 0 done");
    text.push_str(if command.name == "verify" {
        " (valid), 1 invalid (the reason is printed), 2 usage error\n"
    } else {
        ", 1 failed (one line on stderr says why), 2 usage error\n"
    });
    text
}

fn group_help(group: &str) -> String {
    let mut text = format!("clockeye-webhooks {group}: commands\n\n");
    for command in COMMANDS.iter().filter(|c| c.name.starts_with(group)) {
        let usage = format!("{} {}", command.name, command.args);
        text.push_str(&format!("  {:<28}  {}\n", usage.trim_end(), command.about));
    }
    text.push_str(&format!(
        "\nsee clockeye-webhooks {group} COMMAND --help for flags and examples\n"
    ));
    text
}

/// Lines for the top-level usage text, one per command.
pub fn summary() -> String {
    let mut text = String::new();
    for command in COMMANDS {
        let usage = format!("{} {}", command.name, command.args);
        text.push_str(&format!(
            "  clockeye-webhooks {:<26}  {}\n",
            usage.trim_end(),
            {
                // The first clause is enough for the overview.
                command.about.split([';', '(']).next().unwrap_or("").trim()
            }
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn command(name: &str) -> &'static Command {
        COMMANDS.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn flags_take_values_both_ways_and_repeat() {
        let parsed = parse(
            command("endpoints add"),
            &args(&[
                "https://example.com",
                "--events=a,b",
                "--header",
                "A: 1",
                "--header",
                "B: 2",
                "--json",
                "--",
                "--not-a-flag",
            ]),
        )
        .unwrap();
        assert_eq!(parsed.positionals, ["https://example.com", "--not-a-flag"]);
        assert_eq!(parsed.get("events"), Some("a,b"));
        assert_eq!(parsed.all("header"), ["A: 1", "B: 2"]);
        assert!(parsed.has("json"));
        assert!(!parsed.has("workspace"));
    }

    #[test]
    fn bad_flags_are_usage_errors_naming_the_flag() {
        let cases = [
            (vec!["--frob"], "unknown flag --frob"),
            (vec!["-x"], "unknown flag -x"),
            (vec!["--secret"], "--secret needs a value"),
            (vec!["--json=yes"], "--json takes no value"),
        ];
        for (words, expected) in cases {
            match parse(command("listen"), &args(&words)) {
                Err(Failure::Usage(message)) => assert!(message.contains(expected), "{message}"),
                other => panic!("{words:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_command_has_help_with_examples_and_unique_flags() {
        for command in COMMANDS {
            let text = help(command);
            assert!(text.contains("examples:"), "{}", command.name);
            let names: Vec<&str> = flags_of(command).map(|f| f.name).collect();
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(names.len(), unique.len(), "{}", command.name);
        }
    }
}
