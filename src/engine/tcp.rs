//! The TCP transport of attempts: ureq's plain TCP connector, with one difference that measured
//! 43 ms per attempt. A keep-alive receiver that writes its answer's head and body apart
//! (Python's `http.server` with HTTP/1.1, many small frameworks) has Nagle on: its body waits
//! until the head is acknowledged, and Linux delays our ACK of the head by up to 40 ms. So
//! before each read this transport asks for quick ACKs (`TCP_QUICKACK`, Linux only: the flag
//! does not stick, the kernel goes back to delayed ACKs by itself, hence every read). Requests
//! leave at once (`TCP_NODELAY`). Address vetting stays in `net.rs`, earlier in the chain.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, ShutdownHandle,
    Transport,
};

/// Connects attempts over TCP with `TCP_NODELAY`, and quick ACKs on every read.
#[derive(Debug, Default)]
pub(crate) struct QuickAckConnector;

impl<In: Transport> Connector<In> for QuickAckConnector {
    type Out = Either<In, QuickAckTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(chained) = chained {
            return Ok(Some(Either::A(chained)));
        }
        let stream = Arc::new(connect_any(&details.addrs, details.timeout)?);
        // Lets `Agent::shutdown` interrupt blocked I/O, as ureq's own connector does; the
        // agent keeps a weak reference, the transport the strong one.
        let shutter: Arc<dyn ShutdownHandle> = Arc::new(Shutter(stream.clone()));
        (details.register_shutdown)(Arc::downgrade(&shutter))?;
        let config = details.config;
        Ok(Some(Either::B(QuickAckTransport {
            stream,
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
            _shutter: shutter,
        })))
    }
}

/// Tries each resolved address in turn; each gets an equal share of what is left of the connect
/// timeout, so one address that swallows packets does not use up the whole attempt.
fn connect_any(addrs: &[SocketAddr], timeout: NextTimeout) -> Result<TcpStream, ureq::Error> {
    let started = std::time::Instant::now();
    let total = timeout.not_zero().map(|after| *after);
    let mut last_error = None;
    for (index, addr) in addrs.iter().enumerate() {
        let connected = match total {
            Some(total) => {
                let left = total.saturating_sub(started.elapsed());
                if left.is_zero() {
                    break;
                }
                let share = left / (addrs.len() - index) as u32;
                TcpStream::connect_timeout(addr, share.max(Duration::from_millis(10)))
            }
            None => TcpStream::connect(addr),
        };
        match connected {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last_error = Some(error),
        }
    }
    match last_error {
        Some(error)
            if !matches!(
                error.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Err(error.into())
        }
        Some(_) => Err(ureq::Error::Timeout(ureq::Timeout::Connect)),
        None if addrs.is_empty() => {
            Err(io::Error::new(io::ErrorKind::ConnectionRefused, "no address to connect to").into())
        }
        None => Err(ureq::Error::Timeout(ureq::Timeout::Connect)),
    }
}

struct Shutter(Arc<TcpStream>);

impl ShutdownHandle for Shutter {
    fn shutdown(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

pub(crate) struct QuickAckTransport {
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
    _shutter: Arc<dyn ShutdownHandle>,
}

impl std::fmt::Debug for QuickAckTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickAckTransport")
            .field("peer", &self.stream.peer_addr().ok())
            .finish()
    }
}

/// The time left of a timeout for one blocking call, never zero (zero means "no timeout").
fn io_timeout(timeout: NextTimeout) -> Result<Option<Duration>, ureq::Error> {
    if timeout.after.is_zero() {
        return Err(ureq::Error::Timeout(timeout.reason));
    }
    Ok(timeout.not_zero().map(|after| *after))
}

fn io_error(error: io::Error, timeout: NextTimeout) -> ureq::Error {
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ureq::Error::Timeout(timeout.reason),
        _ => error.into(),
    }
}

impl Transport for QuickAckTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.stream.set_write_timeout(io_timeout(timeout)?)?;
        let output = &self.buffers.output()[..amount];
        (&*self.stream)
            .write_all(output)
            .map_err(|error| io_error(error, timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream.set_read_timeout(io_timeout(timeout)?)?;
        quick_ack(&self.stream);
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match (&*self.stream).read(input) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map_err(|error| io_error(error, timeout))?,
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // A pooled connection is reusable when reading would block: nothing unasked-for
        // arrived and the peer has not closed it.
        let probe = || -> io::Result<bool> {
            self.stream.set_nonblocking(true)?;
            let open = match (&*self.stream).read(&mut [0u8]) {
                Err(error) => error.kind() == io::ErrorKind::WouldBlock,
                Ok(_) => false,
            };
            self.stream.set_nonblocking(false)?;
            Ok(open)
        };
        probe().unwrap_or(false)
    }
}

/// Asks Linux to acknowledge what arrives next at once instead of delaying the ACK.
#[cfg(target_os = "linux")]
fn quick_ack(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, a pointer to a c_int and its size, as setsockopt(2)
    // asks; a failure only leaves delayed ACKs on.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn quick_ack(_stream: &TcpStream) {}
