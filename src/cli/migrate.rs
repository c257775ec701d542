//! `clockeye-webhooks migrate --from FILE --to postgres://…`: moves a stopped service's SQLite
//! database into an empty Postgres database (README "Moving to Postgres: migrate"). The file's
//! owner lock is held throughout, so no `serve` runs on it meanwhile; the copy is one Postgres
//! transaction, checked per table (row count and seq sum) before it commits. The SQL is in
//! `store::pg::migrate`. The URL is shown only without its password.

use std::path::PathBuf;

use crate::store::{self, DbTarget, pg};

/// `migrate`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(
    after_help = "Stop the service first; the file is not changed. The target must be empty (serve has not run on it);
its tables are made if absent. Everything is copied in one transaction, with ids and seqs kept;
deliveries that were in flight are pending again, due now. Then start serve with --db URL.

example:
  clockeye-webhooks migrate --from /var/lib/clockeye/webhooks.db --to postgres://hooks@db.internal/hooks

exit status: 0 done, 1 refused or failed (one line on stderr says why; nothing was copied), 2 usage error"
)]
pub(crate) struct Options {
    #[arg(
        long,
        value_name = "FILE",
        value_parser = sqlite_file,
        help = "the SQLite database to copy (its service stopped)"
    )]
    pub(crate) from: PathBuf,
    #[arg(
        long,
        value_name = "URL",
        value_parser = postgres_url,
        help = "the empty Postgres database to copy into: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (or the password in PGPASSWORD)"
    )]
    pub(crate) to: Url,
}

/// A Postgres URL; its `Debug` leaves the password out (the parsed command line may be logged).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Url(pub(crate) String);

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&pg::redacted(&self.0))
    }
}

fn sqlite_file(value: &str) -> Result<PathBuf, String> {
    if matches!(DbTarget::parse(value), DbTarget::Postgres(_)) {
        return Err("takes the SQLite file to copy; the Postgres URL goes to --to".into());
    }
    Ok(PathBuf::from(value))
}

fn postgres_url(value: &str) -> Result<Url, String> {
    let shown = || {
        if value.contains("://") {
            pg::redacted(value)
        } else {
            value.to_string()
        }
    };
    if !matches!(DbTarget::parse(value), DbTarget::Postgres(_)) {
        return Err(format!(
            "{} is not a Postgres URL (postgres://USER@HOST:PORT/DATABASE)",
            shown()
        ));
    }
    // postgres' own parser says what is wrong; its message never repeats the password.
    value
        .parse::<postgres::Config>()
        .map_err(|error| format!("{} is not a Postgres URL: {error}", shown()))?;
    Ok(Url(value.to_string()))
}

/// Copies the file into the database; the lines to print (one per table). `Err` is one line.
pub(crate) fn run(options: &Options) -> Result<Vec<String>, String> {
    let Options { from, to } = options;
    let shown = pg::redacted(&to.0);
    if !from.is_file() {
        return Err(format!("no database at {}", from.display()));
    }
    let _owner = store::owner::acquire(from).map_err(|error| match error {
        crate::error::Error::Owned { db, holder } => format!(
            "{} is in use by a running clockeye-webhooks serve ({holder}): stop the service \
             first, then migrate",
            db.display()
        ),
        other => other.to_string(),
    })?;
    let source = pg::migrate::open_source(from)?;
    let mut target = pg::open::open(&to.0, pg::Role::Tool, true).map_err(|error| match error {
        // Already names the database without its password.
        crate::error::Error::Unavailable(line) => line,
        // Said of serve's flag (e.g. `--db URL: sslmode=require is not supported …`).
        crate::error::Error::Config(line) => match line.strip_prefix("--db ") {
            Some(rest) => format!("--to {rest}"),
            None => line,
        },
        other => format!("{shown}: {other}"),
    })?;
    let copied = pg::migrate::copy_all(&source, &mut target, &shown, crate::time::now_ms())?;
    Ok(copied
        .iter()
        .map(|copied| match copied.made_pending {
            0 => format!("{}: {} copied", copied.table, copied.rows),
            n => format!(
                "{}: {} copied ({n} in flight made pending)",
                copied.table, copied.rows
            ),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Migrate {
        #[command(flatten)]
        options: Options,
    }

    fn parse(args: &[&str]) -> Result<Options, String> {
        Migrate::try_parse_from(std::iter::once("migrate").chain(args.iter().copied()))
            .map(|migrate| migrate.options)
            // What the binary prints (`parse::error_line`): the parser's message, not clap's
            // rendering, which repeats the value given.
            .map_err(|error| match std::error::Error::source(&error) {
                Some(source) => source.to_string(),
                None => error.kind().to_string(),
            })
    }

    #[test]
    fn options_take_a_file_and_a_postgres_url_and_never_show_its_password() {
        let options = parse(&["--from", "a.db", "--to", "postgres://u:pw@h:5432/d"]).unwrap();
        assert_eq!(options.from, PathBuf::from("a.db"));
        assert_eq!(options.to.0, "postgres://u:pw@h:5432/d");
        assert!(!format!("{options:?}").contains("pw"), "{options:?}");
        assert!(parse(&["--from", "a.db"]).is_err());
        assert!(parse(&["--to", "postgres://h/d"]).is_err());
        let file_as_target = parse(&["--from", "a.db", "--to", "b.db"]).unwrap_err();
        assert!(
            file_as_target.contains("not a Postgres URL"),
            "{file_as_target}"
        );
        let bad_port = parse(&["--from", "a.db", "--to", "postgres://u:pw@h:x/d"]).unwrap_err();
        assert!(bad_port.contains("not a Postgres URL"), "{bad_port}");
        assert!(!bad_port.contains("pw"), "{bad_port}");
        let url_as_source =
            parse(&["--from", "postgres://u:pw@h/d", "--to", "postgres://h/d"]).unwrap_err();
        assert!(url_as_source.contains("--to"), "{url_as_source}");
        assert!(!url_as_source.contains("pw"), "{url_as_source}");
    }
}
