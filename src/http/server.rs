//! The API's socket: tiny_http's limits for the edge (head, body, connections), and the server
//! built from a bound listener. `serve` calls `bind`; the `api-N` threads share the result.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use tiny_http::Server;

use crate::error::Error;

/// Threads taking API requests; each waits for its events' commit, so this bounds how many
/// ingest requests share one group commit.
pub(crate) const API_THREADS: usize = 24;
/// A client that sends nothing for this long is disconnected (slow or idle clients cannot hold
/// the API); also the longest a response write may block. Set on each accepted socket.
const API_SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a request head (request line and headers) may take to arrive.
const API_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes in a request head, and most header lines; past either the client gets 431.
const API_HEAD_BYTES_MAX: usize = 16 * 1024;
const API_HEADERS_MAX: usize = 100;
/// Request bodies up to this size are read whole by the connection's thread before an API
/// thread sees the request (and only once its head passed the token check, see `edge.rs`), so
/// a slow sender holds no API thread. Covers the default `--max-event-bytes`; larger batches
/// are read by the API thread under `BODY_READ_TIMEOUT`.
const API_BODY_PREBUFFER_BYTES_MAX: usize = 1024 * 1024;
/// Most bytes of request bodies held read-ahead by all connections together; past it a request
/// is answered 503 `server_busy` and its connection closed.
const API_BODY_BUFFERED_BYTES_MAX: usize = 64 * 1024 * 1024;
/// A body read ahead must arrive within this time plus one second per
/// `API_BODY_BYTES_PER_SEC_MIN` bytes (1 MiB: 26 s); else 408 and the connection closes.
const API_BODY_TIMEOUT: Duration = Duration::from_secs(10);
const API_BODY_BYTES_PER_SEC_MIN: usize = 64 * 1024;
/// Most API connections open at once (each has a thread); more are closed at once.
const API_CONNECTIONS_MAX: usize = 1024;
/// Most API connections open at once from one client address; more are closed at once.
const API_CONNECTIONS_PER_ADDRESS_MAX: usize = 128;
const _: () = assert!(API_CONNECTIONS_PER_ADDRESS_MAX < API_CONNECTIONS_MAX);
const _: () = assert!(API_BODY_PREBUFFER_BYTES_MAX <= API_BODY_BUFFERED_BYTES_MAX);

/// Binds the API's address: the server and the address it got (port 0 picks one).
pub(crate) fn listen(
    addr: SocketAddr,
    head_check: tiny_http::HeadCheck,
) -> Result<(Arc<Server>, SocketAddr), Error> {
    let listen_error = |source| Error::Listen {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    Ok((bind(listener, bound, head_check)?, bound))
}

/// The API server on `listener`, with the edge's limits and `head_check` (see `edge.rs`).
fn bind(
    listener: TcpListener,
    addr: SocketAddr,
    head_check: tiny_http::HeadCheck,
) -> Result<Arc<Server>, Error> {
    let limits = tiny_http::Limits {
        io_timeout: Some(API_SOCKET_TIMEOUT),
        head_timeout: API_HEAD_TIMEOUT,
        head_bytes_max: API_HEAD_BYTES_MAX,
        headers_max: API_HEADERS_MAX,
        body_prebuffer_bytes_max: API_BODY_PREBUFFER_BYTES_MAX,
        body_buffered_bytes_max: API_BODY_BUFFERED_BYTES_MAX,
        body_timeout: API_BODY_TIMEOUT,
        body_bytes_per_sec_min: API_BODY_BYTES_PER_SEC_MIN,
        connections_max: API_CONNECTIONS_MAX,
        connections_per_address_max: API_CONNECTIONS_PER_ADDRESS_MAX,
    };
    Ok(Arc::new(
        tiny_http::Server::from_listener_with_head_check(listener, None, limits, Some(head_check))
            .map_err(|e| Error::Listen {
                addr: addr.to_string(),
                source: std::io::Error::other(e.to_string()),
            })?,
    ))
}
