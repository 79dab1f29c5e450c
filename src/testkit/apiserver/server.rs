//! The network side: the listener and its accept thread, one thread per connection (TLS
//! handshake, authentication once per connection, then keep-alive requests), and the
//! registry of open sockets so that `set_down` and `Drop` can cut them all, as a dying
//! apiserver process would.

use super::http::{self, ReadError};
use super::router;
use super::status::Status;
use super::store::State;
use super::tls::{self, Tls};
use rustls::{ServerConnection, StreamOwned};
use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// What every thread of one server shares.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Signalled on every change of `state`: watches, hung requests and waiting tests wake.
    pub wake: Condvar,
    pub tls: Tls,
    pub addr: SocketAddr,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
    accept: Mutex<Option<JoinHandle<()>>>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the server for the others.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(tls: Tls, addr: SocketAddr, ca_cert_pem: String, ca_key_pem: String) -> Shared {
        Shared {
            state: Mutex::new(State::new()),
            wake: Condvar::new(),
            tls,
            addr,
            ca_cert_pem,
            ca_key_pem,
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            accept: Mutex::new(None),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        relock(&self.state)
    }

    /// Wait for a change, at most `d`.
    pub fn wait<'a>(&self, g: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
        match self.wake.wait_timeout(g, d) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        }
    }

    /// Change the state and wake everyone waiting on it.
    pub fn mutate<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.wake.notify_all();
        out
    }

    fn register(&self, s: &TcpStream) -> Option<u64> {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let clone = s.try_clone().ok()?;
        relock(&self.conns).insert(id, clone);
        Some(id)
    }

    fn unregister(&self, id: Option<u64>) {
        if let Some(id) = id {
            relock(&self.conns).remove(&id);
        }
    }

    /// Cut every open connection (watches and hung requests included).
    pub fn drop_connections(&self) {
        for (_, s) in relock(&self.conns).drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.wake.notify_all();
    }
}

/// Bind the server's address and start accepting. SO_REUSEADDR (set by std on Unix) lets a
/// server that was set down bind its port again.
pub(crate) fn listen(shared: &Arc<Shared>, listener: TcpListener) {
    let s = shared.clone();
    let h = std::thread::Builder::new()
        .name("apiserver-accept".into())
        .spawn(move || accept_loop(&s, &listener));
    if let Ok(h) = h {
        *relock(&shared.accept) = Some(h);
    }
}

pub(crate) fn bind_again(shared: &Arc<Shared>) -> io::Result<()> {
    let mut last = None;
    // The port was ours a moment ago; give the kernel a little time if it is still busy.
    for _ in 0..50 {
        match TcpListener::bind(shared.addr) {
            Ok(l) => {
                listen(shared, l);
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last.unwrap_or_else(|| io::Error::other("bind failed")))
}

/// Stop accepting (the caller has set `down` or `stopping`): wake the blocked accept with a
/// connection of our own, then wait for the thread, which closes the listener.
pub(crate) fn stop_listening(shared: &Arc<Shared>) {
    let h = relock(&shared.accept).take();
    if let Some(h) = h {
        let _ = TcpStream::connect_timeout(&shared.addr, Duration::from_secs(1));
        let _ = h.join();
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    for s in listener.incoming() {
        let st = shared.lock();
        if st.stopping || st.down {
            return;
        }
        drop(st);
        let Ok(s) = s else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let sh = shared.clone();
        let _ = std::thread::Builder::new()
            .name("apiserver-conn".into())
            .spawn(move || {
                let id = sh.register(&s);
                let _ = serve(&sh, s);
                sh.unregister(id);
            });
    }
}

/// One client connection.
pub(crate) struct Conn {
    pub io: BufReader<StreamOwned<ServerConnection, TcpStream>>,
}

impl Conn {
    pub fn out(&mut self) -> &mut StreamOwned<ServerConnection, TcpStream> {
        self.io.get_mut()
    }

    /// Whether the client has gone, checked without waiting: a closed socket, or a TLS
    /// close_notify (which a peek would only show as pending data).
    pub fn peer_gone(&mut self) -> bool {
        let tcp = &self.io.get_ref().sock;
        let mut b = [0u8; 1];
        // Only this thread uses the socket, so flipping O_NONBLOCK for the peek is safe.
        let peeked = tcp.set_nonblocking(true).and_then(|()| tcp.peek(&mut b));
        let _ = tcp.set_nonblocking(false);
        match peeked {
            Ok(0) => return true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
            Ok(_) => {}
        }
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = [0u8; 512];
        let r = self.io.get_mut().read(&mut buf);
        let _ = self.io.get_ref().sock.set_read_timeout(None);
        match r {
            Ok(0) => true,
            // Bytes nobody asked for during a stream: HTTP clients do not pipeline; ignore.
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ),
        }
    }
}

fn serve(shared: &Arc<Shared>, tcp: TcpStream) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    // A client that connects and never finishes the handshake does not hold a thread long.
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = ServerConnection::new(shared.tls.config.clone()).map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    let user = tls::authenticate(&*shared.tls.verifier, s.conn.peer_certificates());
    // Idle keep-alive connections wait for the client; set_down and Drop cut them.
    s.sock.set_read_timeout(None)?;
    let mut c = Conn {
        io: BufReader::new(s),
    };
    loop {
        let req = match http::read_request(&mut c.io) {
            Ok(r) => r,
            Err(ReadError::Closed | ReadError::Io) => return Ok(()),
            Err(ReadError::Bad(code, msg)) => {
                router::write_status(&mut c, &Status::new(code, msg), false)?;
                return Ok(());
            }
        };
        if !router::handle(shared, &mut c, &user, req)? {
            let _ = c.out().flush();
            c.out().conn.send_close_notify();
            let _ = c.out().flush();
            return Ok(());
        }
    }
}
