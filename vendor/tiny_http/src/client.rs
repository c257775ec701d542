use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::request::PrebufferError;

use crate::common::{HTTPVersion, Method};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // ClockEye patch: limits on each request head
    limits: crate::Limits,

    // ClockEye patch: what decides from a head whether its request is served at all
    head_check: Option<crate::HeadCheck>,

    // ClockEye patch: bytes of bodies read ahead by all connections together
    body_budget: Arc<AtomicUsize>,

    // ClockEye patch: set by a request that ends this connection (body left unread, or an
    // answer that closes)
    closing: Arc<AtomicBool>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the request head broke a limit: too long, too many headers, too slow (ClockEye patch)
    HeadTooLarge,
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
    /// the connection was answered and is to be closed (ClockEye patch)
    Closed,
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        limits: crate::Limits,
        head_check: Option<crate::HeadCheck>,
        body_budget: Arc<AtomicUsize>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            limits,
            head_check,
            body_budget,
            closing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    fn read_next_line(&mut self, budget: &mut HeadBudget) -> Result<AsciiString, ReadError> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            budget.take_byte()?;
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(b) => b.map_err(ReadError::ReadIoError)?,
                None => {
                    return Err(ReadError::ReadIoError(IoError::new(
                        ErrorKind::ConnectionAborted,
                        "Unexpected EOF",
                    )))
                }
            };

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf).map_err(|_| {
                    ReadError::ReadIoError(IoError::new(
                        ErrorKind::InvalidInput,
                        "Header is not in ASCII",
                    ))
                });
            }

            prev_byte_was_cr = byte == b'\r';

            buf.push(byte);
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        // ClockEye patch: once the request before has ended, a connection it marked for closing
        // reads no further head; what the client still sends is read briefly and thrown away.
        self.next_header_source.wait_turn();
        if self.closing.load(Ordering::SeqCst) {
            crate::request::linger(
                &mut self.next_header_source,
                crate::request::LINGER_BYTES_MAX,
                Instant::now() + crate::request::LINGER_TIMEOUT,
            );
            return Err(ReadError::Closed);
        }
        let mut budget = HeadBudget::new(self.limits);
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self.read_next_line(&mut budget)?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line(&mut budget)?;

                    if line.is_empty() {
                        break;
                    };
                    if headers.len() >= self.limits.headers_max {
                        return Err(ReadError::HeadTooLarge);
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
            0, // ClockEye patch: bodies are read ahead below, after the head check
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
            }
        })?;
        let mut request = request.with_closing(self.closing.clone());

        // ClockEye patch: a request refused from its head (e.g. no valid token) is answered
        // before a byte of its body is read, and its connection closes.
        if let Some(check) = &self.head_check {
            if let Some(response) = check(&request) {
                request.respond_and_close(
                    response,
                    crate::request::LINGER_BYTES_MAX,
                    Instant::now() + crate::request::LINGER_TIMEOUT,
                );
                return Err(ReadError::Closed);
            }
        }

        // ClockEye patch: a body up to `body_prebuffer_bytes_max` is read here, by the
        // connection's own thread, before any handler thread sees the request: under a
        // deadline that grows with its size, and within a budget shared by all connections.
        let length = request
            .body_length()
            .unwrap_or(self.limits.body_prebuffer_bytes_max);
        let allowance = self.limits.body_timeout
            + Duration::from_millis(
                (length as u64).saturating_mul(1000) / self.limits.body_bytes_per_sec_min.max(1) as u64,
            );
        let refusal = match request.prebuffer_body(
            self.limits.body_prebuffer_bytes_max,
            Instant::now() + allowance,
            &self.body_budget,
            self.limits.body_buffered_bytes_max,
        ) {
            Ok(()) => return Ok(request),
            Err(PrebufferError::Busy) => error_response(
                503,
                "server_busy",
                "too many request bodies are being received; try again shortly",
            ),
            Err(PrebufferError::TooSlow) => error_response(
                408,
                "request_timeout",
                "the request body did not arrive in time",
            ),
            Err(PrebufferError::TooLarge) => error_response(
                413,
                "payload_too_large",
                &format!(
                    "a chunked request body may be at most {} bytes; send larger ones with a Content-Length",
                    self.limits.body_prebuffer_bytes_max
                ),
            ),
            Err(PrebufferError::Io) => error_response(
                400,
                "unreadable_body",
                "the connection ended before the request body did",
            ),
        };
        request.respond_and_close(
            refusal,
            crate::request::LINGER_BYTES_MAX,
            Instant::now() + crate::request::LINGER_TIMEOUT,
        );
        Err(ReadError::Closed)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Response, StatusCode};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        loop {
            let rq = match self.read() {
                Err(ReadError::WrongRequestLine) => {
                    let writer = self.sink.next().unwrap();
                    let response = error_response(400, "bad_request", "the request line or a header is malformed");
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::WrongHeader(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = error_response(400, "bad_request", "the request line or a header is malformed");
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::HeadTooLarge) => {
                    let writer = self.sink.next().unwrap();
                    let response = error_response(431, "request_head_too_large", "the request head is too large or has too many headers");
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // the rest of the head is unread: close
                }

                Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                    // request timeout
                    let writer = self.sink.next().unwrap();
                    let response = error_response(408, "request_timeout", "the request head did not arrive in time");
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // closing the connection
                }

                Err(ReadError::ExpectationFailed(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = error_response(417, "expectation_failed", "the Expect header is not supported");
                    response.raw_print(writer, ver, &[], true, None).ok();
                    return None; // TODO: should be recoverable, but needs handling in case of body
                }

                Err(ReadError::ReadIoError(_)) | Err(ReadError::Closed) => return None,

                Ok(rq) => rq,
            };

            // checking HTTP version
            if *rq.http_version() > (1, 1) {
                let writer = self.sink.next().unwrap();
                let response = Response::from_string(
                    "This server only supports HTTP versions 1.0 and 1.1".to_owned(),
                )
                .with_status_code(StatusCode(505));
                response
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
                continue;
            }

            // updating the status of the connection
            let connection_header = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Connection"))
                .map(|h| h.value.as_str());

            let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

            match lowercase {
                Some(ref val) if val.contains("close") => self.no_more_requests = true,
                Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                Some(ref val)
                    if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
                {
                    self.no_more_requests = true
                }
                None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                _ => (),
            };

            // returning the request
            return Some(rq);
        }
    }
}

/// An error answer in the service's JSON shape (ClockEye patch; upstream sent empty bodies).
fn error_response(
    status: u16,
    code: &str,
    message: &str,
) -> crate::Response<std::io::Cursor<Vec<u8>>> {
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    crate::Response::from_data(body.into_bytes())
        .with_status_code(crate::StatusCode(status))
        .with_header(
            "Content-Type: application/json"
                .parse::<crate::Header>()
                .expect("a valid header"),
        )
}

/// What is left of a request head's byte and time allowance (ClockEye patch).
struct HeadBudget {
    bytes_left: usize,
    deadline: std::time::Instant,
}

impl HeadBudget {
    fn new(limits: crate::Limits) -> HeadBudget {
        HeadBudget {
            bytes_left: limits.head_bytes_max,
            deadline: std::time::Instant::now() + limits.head_timeout,
        }
    }

    fn take_byte(&mut self) -> Result<(), ReadError> {
        if self.bytes_left == 0 {
            return Err(ReadError::HeadTooLarge);
        }
        self.bytes_left -= 1;
        // Checked every 8 bytes (cheap, yet a head trickled byte by byte still hits it soon).
        if self.bytes_left % 8 == 0 && std::time::Instant::now() > self.deadline {
            return Err(ReadError::ReadIoError(IoError::new(
                ErrorKind::TimedOut,
                "request head took too long",
            )));
        }
        Ok(())
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
