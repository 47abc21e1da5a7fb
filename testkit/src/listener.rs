//! Listening on loopback for every server in the testkit: a listen backlog
//! large enough for a burst of new connections, an accept loop on its own
//! thread that stops (and can start again on the same port), the registry
//! of open connections that a server closes when it goes down, and free
//! ports for programs that listen themselves.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections the kernel queues before the accept loop takes them. std
/// listens with 128; a burst of a few hundred new connections (Envoy's
/// workers opening upstream connections at once) overflows that, and the
/// kernel then drops SYNs: the client retries after a second or more.
/// Linux caps it at `net.core.somaxconn`.
pub const BACKLOG: i32 = 4096;

/// Binds `addr` (`127.0.0.1:0` for a free port) and listens with [`BACKLOG`].
pub fn bind(addr: impl std::net::ToSocketAddrs) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    use std::os::fd::AsRawFd as _;
    // SAFETY: `listen` on a socket we own; a second call on a listening
    // socket only changes its backlog (Linux).
    let status = unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(listener)
}

/// A loopback port free now, for a program that binds it itself (Envoy,
/// gunicorn, a registry); another process may take it first, rarely.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// An accept loop on its own thread; stops when dropped.
pub struct AcceptLoop {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AcceptLoop {
    /// Calls `on_connection` with each accepted connection, on the loop's
    /// thread (a server that wants a thread per connection spawns it there).
    pub fn spawn<F>(listener: TcpListener, name: &str, mut on_connection: F) -> AcceptLoop
    where
        F: FnMut(TcpStream) + Send + 'static,
    {
        let addr = listener.local_addr().expect("bound address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{}", addr.port()))
            .spawn(move || {
                for stream in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        on_connection(stream);
                    }
                }
            })
            .expect("spawn accept loop");
        AcceptLoop {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AcceptLoop {
    /// Stops accepting: from now on connections to the port are refused.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The connections a server has open, so that it can close them all.
#[derive(Default)]
pub struct OpenConnections {
    streams: Mutex<HashMap<u64, TcpStream>>,
    next: AtomicU64,
    accepted: AtomicUsize,
}

impl OpenConnections {
    /// Counts `stream` as accepted and keeps a handle to it; the id is for
    /// [`OpenConnections::forget`] when the connection ends.
    pub fn add(&self, stream: &TcpStream) -> u64 {
        self.accepted.fetch_add(1, Ordering::SeqCst);
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            self.lock().insert(id, clone);
        }
        id
    }

    pub fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Shuts every open connection down (both directions).
    pub fn close_all(&self) {
        for (_, stream) in self.lock().drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().len()
    }

    /// Connections accepted since the start or the last [`OpenConnections::reset_accepted`].
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn reset_accepted(&self) {
        self.accepted.store(0, Ordering::SeqCst);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_connections_waits_in_the_backlog() {
        let listener = bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Nobody accepts yet: with std's backlog of 128 the kernel drops
        // the SYNs of the rest, and their connects time out.
        let burst: Vec<TcpStream> = (0..600)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("connection {i} of the burst: {e}"))
            })
            .collect();
        let open = Arc::new(OpenConnections::default());
        let registry = Arc::clone(&open);
        let accepting = AcceptLoop::spawn(listener, "burst", move |stream| {
            registry.add(&stream);
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while open.accepted() < burst.len() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(open.accepted(), burst.len());
        drop(accepting);
        assert!(TcpStream::connect(addr).is_err(), "stopped: refused");
        open.close_all();
        assert_eq!(open.open(), 0);
    }
}
