//! The SQL of `migrate` (the command is `cli::migrate`): a SQLite file, read in one snapshot,
//! copied into an empty Postgres database in one transaction with binary `COPY`, then checked.
//! Seqs and ids are kept, so list cursors and API ids stay valid; deliveries that were in
//! flight become pending and due now, as start-up recovery does on SQLite. Nothing here knows a
//! table's columns: both schemas are read, and must name the same columns.
//!
//! Errors are one line for people (`Err(String)`), never with a value from a row: rows hold
//! secrets.

use std::path::Path;

use postgres::Transaction;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::Conn;
use crate::error::Error;
use crate::store::SCHEMA_VERSION;

/// The tables copied, in this order: deliveries refer to events and endpoints, attempts to
/// deliveries. `instances` (Postgres only) is not copied.
pub(crate) const TABLES: &[&str] = &[
    "meta",
    "endpoints",
    "events",
    "deliveries",
    "attempts",
    "tokens",
    "portal_codes",
];

/// How long the copy waits for a lock on the target's tables (another process writing there)
/// before giving up.
const TARGET_LOCK_TIMEOUT: &str = "10s";

/// What was copied into one table, for the line printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Copied {
    pub(crate) table: &'static str,
    pub(crate) rows: u64,
    /// Deliveries that were in flight in the file and are pending, due now, in the copy.
    pub(crate) made_pending: u64,
}

/// The SQLite file to copy, opened without ever creating it, at this build's schema version.
pub(crate) fn open_source(path: &Path) -> Result<Connection, String> {
    let source = crate::store::backup::open_source(path)?;
    let version: i64 = source
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match version {
        0 => Err(format!(
            "{} is not a ClockEye Webhooks database (it has no schema version)",
            path.display()
        )),
        v if v < SCHEMA_VERSION => Err(format!(
            "{} has schema version {v}, this build writes {SCHEMA_VERSION}: start serve once \
             with this build to bring it up to date, stop it, then migrate",
            path.display()
        )),
        v if v > SCHEMA_VERSION => Err(format!(
            "{} has schema version {v}, newer than this build's {SCHEMA_VERSION}: run a newer \
             clockeye-webhooks",
            path.display()
        )),
        _ => Ok(source),
    }
}

/// Copies every table of `source` into the database of `target` (whose schema is applied),
/// which must be empty. One Postgres transaction: on any failure nothing stays. `shown` is the
/// target as people may see it (no password).
pub(crate) fn copy_all(
    source: &Connection,
    target: &mut Conn,
    shown: &str,
    now_ms: i64,
) -> Result<Vec<Copied>, String> {
    let failed = |error: postgres::Error| Error::from(error).to_string();
    let mut tx = target.client().transaction().map_err(failed)?;
    // A service started on the target meanwhile waits for the commit, then finds it filled.
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{TARGET_LOCK_TIMEOUT}';
         LOCK TABLE {} IN EXCLUSIVE MODE",
        TABLES.join(", ")
    ))
    .map_err(|e| match e.code().map(|code| code.code()) {
        Some("55P03") => format!(
            "{shown} is in use (its tables stayed locked for {TARGET_LOCK_TIMEOUT}): stop what \
             uses it and migrate into an empty database"
        ),
        _ => failed(e),
    })?;
    refuse_unless_empty(&mut tx, shown)?;
    // One snapshot of the file: what the first read sees, every later read sees.
    let snapshot = source
        .unchecked_transaction()
        .map_err(|e| format!("cannot read the file: {e}"))?;
    let mut copied = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        copied.push(copy_table(&snapshot, &mut tx, table, now_ms)?);
    }
    tx.commit().map_err(failed)?;
    Ok(copied)
}

/// Any row in any table copied into refuses the copy, naming the counts.
fn refuse_unless_empty(tx: &mut Transaction<'_>, shown: &str) -> Result<(), String> {
    let mut found = Vec::new();
    for table in TABLES {
        let rows: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .map_err(|e| Error::from(e).to_string())?
            .get(0);
        if rows > 0 {
            found.push(format!("{rows} {table}"));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{shown} is not empty ({}): migrate copies into an empty database only; nothing was copied",
        found.join(", ")
    ))
}

/// A column as both databases have it, and its Postgres type.
struct Column {
    name: String,
    kind: Type,
}

/// One value on its way from SQLite to Postgres.
enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Cell {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Int(value) => value,
            Cell::Text(value) => value,
            Cell::Bytes(value) => value,
        }
    }
}

fn copy_table(
    source: &Connection,
    tx: &mut Transaction<'_>,
    table: &'static str,
    now_ms: i64,
) -> Result<Copied, String> {
    let pg_error = |e: postgres::Error| format!("{table}: {}", Error::from(e));
    let sqlite_error = |e: rusqlite::Error| format!("cannot read {table} from the file: {e}");
    let columns = columns(source, tx, table)?;
    let index = |name: &str| columns.iter().position(|column| column.name == name);
    let seq_at = index("seq");
    let names = columns
        .iter()
        .map(|column| column.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");

    // The source's count and seq sum, in the same snapshot as the rows read below.
    let seq_sum = if seq_at.is_some() { "sum(seq)" } else { "0" };
    let (source_rows, source_seq_sum): (i64, i64) = source
        .query_row(
            &format!("SELECT count(*), COALESCE({seq_sum}, 0) FROM {table}"),
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(sqlite_error)?;

    // In flight when the file's service stopped: pending and due now (the claim died with it).
    let delivering = (table == "deliveries")
        .then(|| {
            Some((
                index("status")?,
                index("next_attempt_at_ms")?,
                index("updated_at_ms")?,
                index("lease_expires_at_ms")?,
            ))
        })
        .flatten();
    if table == "deliveries" && delivering.is_none() {
        return Err("deliveries: the schemas lack the status or time columns".into());
    }

    let types: Vec<Type> = columns.iter().map(|column| column.kind.clone()).collect();
    let sink = tx
        .copy_in(&format!(
            "COPY {table} ({names}) FROM STDIN (FORMAT binary)"
        ))
        .map_err(pg_error)?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let order = if seq_at.is_some() {
        " ORDER BY seq"
    } else {
        ""
    };
    let mut statement = source
        .prepare(&format!("SELECT {names} FROM {table}{order}"))
        .map_err(sqlite_error)?;
    let mut rows = statement.query([]).map_err(sqlite_error)?;
    let mut cells: Vec<Cell> = Vec::with_capacity(columns.len());
    let mut made_pending = 0u64;
    let mut read = 0u64;
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        read += 1;
        // Rows are named by seq (never by a value: they hold secrets), else by position.
        let row_name = || match seq_at.map(|at| row.get::<_, i64>(at)) {
            Some(Ok(seq)) => format!("{table} seq {seq}"),
            _ => format!("{table} row {read}"),
        };
        cells.clear();
        for (at, column) in columns.iter().enumerate() {
            let value = row.get_ref(at).map_err(sqlite_error)?;
            cells.push(cell(value, column).map_err(|why| format!("{}: {why}", row_name()))?);
        }
        if let Some((status, due, updated, lease)) = delivering
            && matches!(&cells[status], Cell::Text(Some(text)) if text == "delivering")
        {
            cells[status] = Cell::Text(Some("pending".into()));
            cells[due] = Cell::Int(Some(now_ms));
            cells[updated] = Cell::Int(Some(now_ms));
            cells[lease] = Cell::Int(None);
            made_pending += 1;
        }
        let values: Vec<&(dyn ToSql + Sync)> = cells.iter().map(Cell::as_sql).collect();
        writer.write(&values).map_err(pg_error)?;
    }
    let written = writer.finish().map_err(pg_error)?;

    if seq_at.is_some() {
        // The next seq the database gives out comes after the copied ones.
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'seq'), \
                 COALESCE(max(seq), 0) + 1, false) FROM {table}"
            ),
            &[],
        )
        .map_err(pg_error)?;
    }
    let target_seq_sum = if seq_at.is_some() {
        "sum(seq)::bigint"
    } else {
        "0::bigint"
    };
    let check = tx
        .query_one(
            &format!("SELECT count(*), COALESCE({target_seq_sum}, 0) FROM {table}"),
            &[],
        )
        .map_err(pg_error)?;
    let (target_rows, target_seq_sum): (i64, i64) = (check.get(0), check.get(1));
    if (target_rows, target_seq_sum) != (source_rows, source_seq_sum) || written != read {
        return Err(format!(
            "{table}: the copy does not match the file ({target_rows} rows, seq sum \
             {target_seq_sum}; the file has {source_rows} rows, seq sum {source_seq_sum}); \
             nothing was copied"
        ));
    }
    Ok(Copied {
        table,
        rows: written,
        made_pending,
    })
}

/// The table's columns in Postgres' order, after checking that the file's table has the same
/// ones (schema.sql and schema-postgres.sql must agree; a column only one side has would be
/// lost or left empty).
fn columns(
    source: &Connection,
    tx: &mut Transaction<'_>,
    table: &str,
) -> Result<Vec<Column>, String> {
    let mut columns = Vec::new();
    for row in tx
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1
             ORDER BY ordinal_position",
            &[&table],
        )
        .map_err(|e| format!("{table}: {}", Error::from(e)))?
    {
        let name: String = row.get(0);
        let data_type: String = row.get(1);
        let kind = match data_type.as_str() {
            "bigint" => Type::INT8,
            "text" => Type::TEXT,
            "bytea" => Type::BYTEA,
            other => {
                return Err(format!(
                    "{table}.{name}: Postgres type {other} is not one migrate copies"
                ));
            }
        };
        columns.push(Column { name, kind });
    }
    let mut file_columns: Vec<String> = source
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .and_then(|mut statement| {
            statement
                .query_map([table], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| format!("cannot read {table}'s columns from the file: {e}"))?;
    let mut target_columns: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    file_columns.sort();
    target_columns.sort();
    if columns.is_empty() || file_columns != target_columns {
        return Err(format!(
            "{table}: the file's columns ({}) are not Postgres' ({}); this build's two schemas \
             disagree",
            file_columns.join(", "),
            target_columns.join(", ")
        ));
    }
    Ok(columns)
}

/// One SQLite value as the Postgres column's type. Postgres text cannot hold NUL, and is UTF-8.
fn cell(value: ValueRef<'_>, column: &Column) -> Result<Cell, String> {
    let name = &column.name;
    Ok(match (&column.kind, value) {
        (kind, ValueRef::Null) if *kind == Type::INT8 => Cell::Int(None),
        (kind, ValueRef::Null) if *kind == Type::TEXT => Cell::Text(None),
        (_, ValueRef::Null) => Cell::Bytes(None),
        (kind, ValueRef::Integer(value)) if *kind == Type::INT8 => Cell::Int(Some(value)),
        (kind, ValueRef::Text(bytes)) if *kind == Type::TEXT => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| format!("{name} is not UTF-8, which Postgres text requires"))?;
            if text.contains('\0') {
                return Err(format!(
                    "{name} holds a NUL byte, which Postgres text cannot store; \
                     remove it from the file first; nothing was copied"
                ));
            }
            Cell::Text(Some(text.to_string()))
        }
        (kind, ValueRef::Blob(bytes)) if *kind == Type::BYTEA => Cell::Bytes(Some(bytes.to_vec())),
        (kind, value) => {
            return Err(format!(
                "{name} holds a {:?} value where Postgres has {kind}",
                value.data_type()
            ));
        }
    })
}
