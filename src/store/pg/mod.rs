//! The Postgres backend: the twin of each SQLite store function, in the same rooms (`open`,
//! `outbox`, `writes`, `read`), reached through `sqlite_or!`. One `Conn` per thread, as with
//! SQLite; statements are prepared once per connection. Row types, ids and decisions are shared
//! with the SQLite side; only SQL text and types differ (see schema-postgres.sql's header).

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};

use crate::error::{Error, Result};

pub(crate) mod instances;
pub(crate) mod migrate;
pub(crate) mod open;
pub(crate) mod outbox;
pub(crate) mod read;
pub(crate) mod writes;

/// One Postgres connection and its prepared statements.
pub(crate) struct Conn {
    client: Client,
    url: String,
    role: &'static str,
    statements: HashMap<&'static str, Statement>,
    /// The scheduler's connection: the endpoints that order by subject among those its round
    /// found pending (`outbox::pending_endpoints`), so that only their claims take a turn
    /// (`outbox::claim_turn`, one round trip each).
    pub(crate) ordered_endpoints: std::collections::HashSet<i64>,
    /// Between BEGIN and COMMIT/ROLLBACK: a lost connection is then an error for the whole
    /// transaction, never a new connection that would run the rest outside it.
    in_transaction: bool,
}

/// Who uses a connection: it is `application_name` (`clockeye-<role>`), which shows in
/// `pg_stat_activity`, and decides its session's timeouts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Role {
    Scheduler,
    Api,
    Listen,
    Tool,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Scheduler => "scheduler",
            Role::Api => "api",
            Role::Listen => "listen",
            Role::Tool => "tool",
        }
    }

    /// Session settings: an instance that freezes inside a transaction cannot hold row locks
    /// for long, and an API call never waits long for a lock.
    fn options(self) -> &'static str {
        match self {
            Role::Scheduler => {
                "SET lock_timeout = '2s'; SET idle_in_transaction_session_timeout = '30s'"
            }
            Role::Api => {
                "SET lock_timeout = '5s'; SET statement_timeout = '30s'; \
                 SET idle_in_transaction_session_timeout = '30s'"
            }
            Role::Listen | Role::Tool => "SET idle_in_transaction_session_timeout = '30s'",
        }
    }
}

impl Conn {
    /// Connects without TLS (README: Postgres on the same host or a private network; a URL
    /// asking for TLS is refused by the check in `connect_config`).
    pub(crate) fn connect(url: &str, role: Role) -> Result<Conn> {
        let client = connect_client(url, role)?;
        Ok(Conn {
            client,
            url: url.to_string(),
            role: role.name(),
            statements: HashMap::new(),
            ordered_endpoints: std::collections::HashSet::new(),
            in_transaction: false,
        })
    }

    /// The statement for `sql`, prepared on first use on this connection. A connection that
    /// was lost is made again first (its statements went with it).
    pub(crate) fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        self.reconnect_if_closed()?;
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn reconnect_if_closed(&mut self) -> Result<()> {
        if self.client.is_closed() {
            if self.in_transaction {
                return Err(Error::Unavailable(
                    "the connection to Postgres was lost during a transaction".into(),
                ));
            }
            self.reconnect()?;
        }
        Ok(())
    }

    /// A new connection in place of this one (whose statements go with it).
    fn reconnect(&mut self) -> Result<()> {
        let role = match self.role {
            "scheduler" => Role::Scheduler,
            "api" => Role::Api,
            "listen" => Role::Listen,
            _ => Role::Tool,
        };
        self.client = connect_client(&self.url, role)?;
        self.statements.clear();
        log::info!("postgres: connection ({}) made again", self.role);
        Ok(())
    }

    /// Runs a prepared statement. Outside a transaction, a statement that met a connection the
    /// server had already ended (a restart, a failover: `57P01`/`57P02`, or closed before it
    /// was sent) did not run, so it is sent once more on a new connection: after the database
    /// comes back, each thread's first call succeeds instead of answering 503 once per thread.
    fn run<T>(
        &mut self,
        sql: &'static str,
        call: impl Fn(&mut Client, &Statement) -> Result<T, postgres::Error>,
    ) -> Result<T> {
        let attempt = |conn: &mut Conn| -> Result<T> {
            let statement = conn.statement(sql)?;
            Ok(call(&mut conn.client, &statement)?)
        };
        match attempt(self) {
            Err(Error::Postgres(error)) if !self.in_transaction && ended_before_running(&error) => {
                self.reconnect()?;
                attempt(self)
            }
            other => other,
        }
    }

    pub(crate) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        self.run(sql, |client, statement| client.query(statement, params))
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        self.run(sql, |client, statement| client.query_opt(statement, params))
    }

    pub(crate) fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        self.run(sql, |client, statement| client.execute(statement, params))
    }

    /// SQL built at run time (filters): prepared each call, not kept.
    pub(crate) fn query_dynamic(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        self.reconnect_if_closed()?;
        match self.client.query(sql, params) {
            Err(error) if !self.in_transaction && ended_before_running(&error) => {
                self.reconnect()?;
                Ok(self.client.query(sql, params)?)
            }
            other => Ok(other?),
        }
    }

    /// Statements without parameters (BEGIN, COMMIT, SAVEPOINT …), in the simple protocol.
    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        // Reconnecting is only safe outside a transaction: BEGIN is the one place it happens.
        if sql == "BEGIN" {
            self.reconnect_if_closed()?;
        }
        let mut done = self.client.batch_execute(sql);
        // An idle connection learns that the server ended it (a restart) only now: nothing
        // has run in it, so BEGIN is sent once more on a new one.
        if sql == "BEGIN"
            && let Err(error) = &done
            && ended_before_running(error)
        {
            self.reconnect()?;
            done = self.client.batch_execute(sql);
        }
        match sql {
            "BEGIN" => self.in_transaction = done.is_ok(),
            "COMMIT" | "ROLLBACK" => self.in_transaction = false,
            _ => {}
        }
        Ok(done?)
    }

    /// The client itself, for `COPY` and notifications.
    pub(crate) fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// Whether a statement failed because the server had ended the connection before running it.
fn ended_before_running(error: &postgres::Error) -> bool {
    match error.code() {
        Some(code) => matches!(code.code(), "57P01" | "57P02"),
        None => error.is_closed(),
    }
}

fn connect_client(url: &str, role: Role) -> Result<Client> {
    let mut config: postgres::Config = url.parse().map_err(|error: postgres::Error| {
        Error::Config(format!(
            "--db {}: not a Postgres URL: {error}",
            redacted(url)
        ))
    })?;
    if matches!(config.get_ssl_mode(), postgres::config::SslMode::Require) {
        return Err(Error::Config(format!(
            "--db {}: sslmode=require is not supported by this build (README, Known limits)",
            redacted(url)
        )));
    }
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
    {
        config.password(password);
    }
    config.application_name(&format!("clockeye-{}", role.name()));
    config.connect_timeout(std::time::Duration::from_secs(10));
    config.keepalives(true);
    config.keepalives_idle(std::time::Duration::from_secs(30));
    let mut client = config.connect(NoTls).map_err(|error| {
        Error::Unavailable(format!("cannot connect to {}: {error}", redacted(url)))
    })?;
    client.batch_execute(role.options())?;
    Ok(client)
}

/// The URL without its password, for logs and errors.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "postgres://…".into();
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let path = path.split('?').next().unwrap_or("");
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_and_query_strings_are_left_out() {
        assert_eq!(
            redacted("postgres://hooks:s3cret@db.internal:5432/hooks?sslmode=disable"),
            "postgres://hooks:***@db.internal:5432/hooks"
        );
        assert_eq!(
            redacted("postgresql://hooks@127.0.0.1/hooks"),
            "postgresql://hooks@127.0.0.1/hooks"
        );
        assert_eq!(redacted("postgres://h"), "postgres://h");
        assert!(!redacted("postgres://a:b:c@h/d").contains("b:c"));
    }
}
