//! A small HTTP/1.1 file server on 127.0.0.1 (plain or TLS) for the download tests,
//! whose faults are scripted per path: each request to a path takes the next fault
//! queued for it, and is served normally once the queue is empty.
//!
//! It serves GET with `Content-Length`, `ETag`, `Last-Modified`, `Range: bytes=N-` and
//! `bytes=N-M` (206 with `Content-Range`, 416 past the end), honours `If-Range` (a
//! mismatch sends the whole file), and logs every request. Every answer closes its
//! connection. It only ever listens on 127.0.0.1, and stops when dropped: a stalled
//! answer waits at most [`STALL_LIMIT`] or until then.
//!
//! Used by `deltaapply/tests/fetch.rs` and, through `#[path]`, by
//! `deltapack/tests/update.rs`, which serves whole publish directories with
//! [`Server::put_dir`].

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a stalled answer waits before closing, if the server is not dropped first.
pub const STALL_LIMIT: Duration = Duration::from_secs(30);

/// What one request to a path gets instead of the normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This status with a short body.
    Status(u16),
    /// The normal headers (the full Content-Length), then this many body bytes, then
    /// the connection is closed.
    DropAfter(usize),
    /// The normal headers, this many body bytes, then nothing until the server stops.
    StallAfter(usize),
    /// The normal headers, this many body bytes, then one byte per interval (a
    /// trickle that never trips a read timeout) until the body is sent or the server
    /// stops.
    Trickle(usize, Duration),
    /// The body in chunked transfer encoding (no Content-Length): a valid chunk of
    /// this many bytes, then a chunk-size line that is not hexadecimal, then the
    /// connection is closed.
    BadChunked(usize),
    /// The whole file with 200, whatever Range asked for.
    IgnoreRange,
    /// At most this many bytes of a requested range (a 206 that ends early).
    ShortRange(u64),
    /// The normal answer without Content-Length (the body ends when the connection
    /// closes).
    NoLength,
    /// A 302 redirect to this URL.
    Redirect(String),
}

/// A file the server holds.
#[derive(Debug, Clone, Default)]
pub struct Resource {
    /// Its bytes.
    pub body: Vec<u8>,
    /// The ETag header sent with it, quotes included.
    pub etag: Option<String>,
    /// The Last-Modified header sent with it.
    pub last_modified: Option<String>,
}

impl Resource {
    /// A file with a strong ETag.
    pub fn new(body: &[u8], etag: &str) -> Resource {
        Resource {
            body: body.to_vec(),
            etag: Some(format!("\"{etag}\"")),
            last_modified: None,
        }
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The method.
    pub method: String,
    /// The request target, e.g. `/full/ab.dpatch`.
    pub path: String,
    /// The Range header.
    pub range: Option<String>,
    /// The If-Range header.
    pub if_range: Option<String>,
    /// The status answered, or 0 when the request could not be read.
    pub status: u16,
}

#[derive(Default)]
struct Shared {
    files: Mutex<HashMap<String, Resource>>,
    faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    log: Mutex<Vec<Logged>>,
    stopping: AtomicBool,
    stop_lock: Mutex<bool>,
    stop_signal: Condvar,
}

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    scheme: &'static str,
}

impl Server {
    /// A plain HTTP server on 127.0.0.1.
    pub fn start() -> Server {
        Server::spawn(None)
    }

    /// An HTTPS server on 127.0.0.1 with the test certificate in `testdata/tls`.
    pub fn start_tls() -> Server {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tls");
        let cert = std::fs::read(dir.join("server.der")).unwrap();
        let key = std::fs::read(dir.join("server.key.der")).unwrap();
        // Its own full ring provider: the process default that the client installs
        // loads no private keys.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.into()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
            )
            .unwrap();
        Server::spawn(Some(Arc::new(config)))
    }

    fn spawn(tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if shared.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = shared.clone();
                    let tls = tls.clone();
                    std::thread::spawn(move || serve(conn, tls, &shared));
                }
            })
        };
        Server {
            addr,
            shared,
            accept: Some(accept),
            scheme,
        }
    }

    /// The server's base URL, ending in `/`.
    pub fn url(&self) -> String {
        format!("{}://{}/", self.scheme, self.addr)
    }

    /// Serves `resource` at `path` (which starts with `/`), replacing what was there.
    pub fn put(&self, path: &str, resource: Resource) {
        self.shared
            .files
            .lock()
            .unwrap()
            .insert(path.to_string(), resource);
    }

    /// Serves every file below `dir` at `prefix` (which starts and ends with `/`)
    /// followed by its path relative to `dir`, each with a strong ETag derived from its
    /// bytes, after removing everything served below `prefix` before: loading another
    /// directory replaces the whole tree, as a publish directory swapped on a server.
    pub fn put_dir(&self, prefix: &str, dir: &std::path::Path) {
        assert!(
            prefix.starts_with('/') && prefix.ends_with('/'),
            "{prefix:?}"
        );
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(dir).unwrap();
                    let rel: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_str().unwrap().to_string())
                        .collect();
                    found.push((
                        format!("{prefix}{}", rel.join("/")),
                        std::fs::read(&path).unwrap(),
                    ));
                }
            }
        }
        let mut files = self.shared.files.lock().unwrap();
        files.retain(|path, _| !path.starts_with(prefix));
        for (path, body) in found {
            let etag = content_tag(&body);
            files.insert(path, Resource::new(&body, &etag));
        }
    }

    /// Stops serving `path`: requests for it get 404.
    pub fn remove(&self, path: &str) {
        self.shared.files.lock().unwrap().remove(path);
    }

    /// The bytes served at `path`, if any.
    pub fn body(&self, path: &str) -> Option<Vec<u8>> {
        self.shared
            .files
            .lock()
            .unwrap()
            .get(path)
            .map(|r| r.body.clone())
    }

    /// Queues faults for the next requests to `path`, one per request.
    pub fn faults(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .extend(faults);
    }

    /// Drops every fault still queued, for every path.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    /// Every request so far, in order of arrival.
    pub fn log(&self) -> Vec<Logged> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        *self.shared.stop_lock.lock().unwrap() = true;
        self.shared.stop_signal.notify_all();
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// A connection, plain or TLS.
trait Conn: Read + Write {
    fn close(&mut self);
}

impl Conn for TcpStream {
    fn close(&mut self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.conn.complete_io(&mut self.sock);
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

fn serve(tcp: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, shared: &Shared) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(10)));
    let mut conn: Box<dyn Conn> = match tls {
        Some(config) => {
            let Ok(session) = rustls::ServerConnection::new(config) else {
                return;
            };
            Box::new(rustls::StreamOwned::new(session, tcp))
        }
        None => Box::new(tcp),
    };
    let Some(request) = read_request(&mut *conn) else {
        return;
    };
    let fault = shared
        .faults
        .lock()
        .unwrap()
        .get_mut(&request.path)
        .and_then(VecDeque::pop_front);
    let resource = shared.files.lock().unwrap().get(&request.path).cloned();
    let answer = answer(&request, resource.as_ref(), fault.as_ref());
    shared.log.lock().unwrap().push(Logged {
        status: answer.status,
        ..request
    });
    let _ = send(&mut *conn, &answer, fault.as_ref(), shared);
    conn.close();
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    length: bool,
}

fn answer(request: &Logged, resource: Option<&Resource>, fault: Option<&Fault>) -> Answer {
    let plain = |status: u16, text: &str| Answer {
        status,
        headers: vec![],
        body: text.as_bytes().to_vec(),
        length: true,
    };
    match fault {
        Some(Fault::Status(status)) => return plain(*status, "fault\n"),
        Some(Fault::Redirect(to)) => {
            let mut a = plain(302, "");
            a.headers.push(("Location".into(), to.clone()));
            return a;
        }
        _ => {}
    }
    if request.method != "GET" {
        return plain(405, "only GET\n");
    }
    let Some(resource) = resource else {
        return plain(404, "not found\n");
    };
    let len = resource.body.len() as u64;
    let mut headers = vec![("Accept-Ranges".to_string(), "bytes".to_string())];
    if let Some(etag) = &resource.etag {
        headers.push(("ETag".into(), etag.clone()));
    }
    if let Some(date) = &resource.last_modified {
        headers.push(("Last-Modified".into(), date.clone()));
    }
    let validator_matches = request.if_range.as_ref().is_none_or(|v| {
        Some(v) == resource.etag.as_ref() || Some(v) == resource.last_modified.as_ref()
    });
    let range = request
        .range
        .as_deref()
        .filter(|_| fault != Some(&Fault::IgnoreRange) && validator_matches)
        .and_then(parse_range);
    let length = fault != Some(&Fault::NoLength);
    match range {
        Some((start, _)) if start >= len => {
            headers.push(("Content-Range".into(), format!("bytes */{len}")));
            Answer {
                status: 416,
                headers,
                body: vec![],
                length: true,
            }
        }
        Some((start, end)) => {
            let mut end = end.unwrap_or(len - 1).min(len - 1);
            if let Some(Fault::ShortRange(n)) = fault {
                end = end.min(start + n - 1);
            }
            headers.push(("Content-Range".into(), format!("bytes {start}-{end}/{len}")));
            Answer {
                status: 206,
                headers,
                body: resource.body[start as usize..=end as usize].to_vec(),
                length,
            }
        }
        None => Answer {
            status: 200,
            headers,
            body: resource.body.clone(),
            length,
        },
    }
}

/// An ETag value for `body`: its length and a 64-bit hash of its bytes (FNV-1a), so
/// that different contents get different tags, as a real server's would.
pub fn content_tag(body: &[u8]) -> String {
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{:x}-{hash:016x}", body.len())
}

/// `bytes=N-` or `bytes=N-M`.
fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (start, end) = value.strip_prefix("bytes=")?.split_once('-')?;
    let start = start.parse().ok()?;
    let end = match end {
        "" => None,
        e => Some(e.parse().ok()?),
    };
    Some((start, end))
}

fn send(conn: &mut dyn Conn, a: &Answer, fault: Option<&Fault>, shared: &Shared) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} Fault\r\nConnection: close\r\n", a.status);
    for (name, value) in &a.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(Fault::BadChunked(n)) = fault {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        conn.write_all(head.as_bytes())?;
        let n = (*n).min(a.body.len());
        conn.write_all(format!("{n:x}\r\n").as_bytes())?;
        conn.write_all(&a.body[..n])?;
        conn.write_all(b"\r\nzz\r\nnot a chunk\r\n")?;
        return conn.flush();
    }
    if a.length {
        head.push_str(&format!("Content-Length: {}\r\n", a.body.len()));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    match fault {
        Some(Fault::DropAfter(n)) => {
            conn.write_all(&a.body[..(*n).min(a.body.len())])?;
            conn.flush()
        }
        Some(Fault::Trickle(n, every)) => {
            let head = (*n).min(a.body.len());
            conn.write_all(&a.body[..head])?;
            conn.flush()?;
            for byte in &a.body[head..] {
                let stopped = shared.stop_lock.lock().unwrap();
                let (stopped, _) = shared.stop_signal.wait_timeout(stopped, *every).unwrap();
                if *stopped {
                    break;
                }
                drop(stopped);
                conn.write_all(std::slice::from_ref(byte))?;
                conn.flush()?;
            }
            Ok(())
        }
        Some(Fault::StallAfter(n)) => {
            conn.write_all(&a.body[..(*n).min(a.body.len())])?;
            conn.flush()?;
            let deadline = Instant::now() + STALL_LIMIT;
            let mut stopped = shared.stop_lock.lock().unwrap();
            while !*stopped && Instant::now() < deadline {
                stopped = shared
                    .stop_signal
                    .wait_timeout(stopped, deadline - Instant::now())
                    .unwrap()
                    .0;
            }
            Ok(())
        }
        _ => {
            conn.write_all(&a.body)?;
            conn.flush()
        }
    }
}

/// Reads a request's head (at most 16 KiB) and the headers the tests look at.
fn read_request(conn: &mut dyn Conn) -> Option<Logged> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= 16 << 10 || conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let mut header = HashMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        header.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Some(Logged {
        method,
        path,
        range: header.remove("range"),
        if_range: header.remove("if-range"),
        status: 0,
    })
}
