//! A real S3-compatible server for tests: `s3s-fs` (crates.io), which `scripts/test.sh`
//! installs into `target/tools/` with `cargo install`. Each [`S3Server`] runs its own
//! process on 127.0.0.1 at a free port, with a temporary root directory (one
//! subdirectory per bucket) and its own credentials, and is killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pinned s3s-fs version `scripts/test.sh` installs.
pub const S3S_FS_VERSION: &str = "0.14.1";

/// The access key every test server accepts.
pub const ACCESS_KEY: &str = "deltapack-test";

/// Its secret key.
pub const SECRET_KEY: &str = "deltapack-test-secret-0123456789";

/// The `s3s-fs` binary: `S3S_FS`, else `target/tools/bin/s3s-fs` of the workspace
/// (where `scripts/test.sh` installs it), else one on `PATH`.
pub fn s3s_fs_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("S3S_FS") {
        return PathBuf::from(path);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin/s3s-fs");
    if local.exists() {
        return local;
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("s3s-fs"))
            .find(|p| p.exists())
    }) {
        return found;
    }
    panic!(
        "s3s-fs is missing: run `bash scripts/test.sh`, which installs s3s-fs \
         {S3S_FS_VERSION} into target/tools with cargo install"
    )
}

/// One running s3s-fs process.
pub struct S3Server {
    child: Child,
    port: u16,
    root: PathBuf,
    /// The temporary root this server owns (none for a [`S3Server::public_reader`]).
    _owned_root: Option<tempfile::TempDir>,
    /// Whether requests must be signed with [`ACCESS_KEY`] and [`SECRET_KEY`].
    pub authenticated: bool,
}

impl S3Server {
    /// A server that requires requests signed with [`ACCESS_KEY`] / [`SECRET_KEY`].
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().expect("temp dir");
        let mut server = Self::spawn_at(root.path(), true);
        server._owned_root = Some(root);
        server
    }

    /// A second server on the same root directory that answers anonymous requests: the
    /// buckets' public HTTP endpoint (as a bucket with public read, or a CDN in front
    /// of it), for devices.
    pub fn public_reader(&self) -> S3Server {
        Self::spawn_at(&self.root, false)
    }

    fn spawn_at(root: &Path, authenticated: bool) -> S3Server {
        let bin = s3s_fs_bin();
        let mut last = String::new();
        // A free port is found by binding port 0; another process may take it before
        // s3s-fs binds it, so a server that exits at once is started again elsewhere.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut cmd = Command::new(&bin);
            cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
            if authenticated {
                cmd.args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY]);
            }
            cmd.arg(root)
                .env("RUST_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut server = S3Server {
                child,
                port,
                root: root.to_path_buf(),
                _owned_root: None,
                authenticated,
            };
            match server.wait_ready(Duration::from_secs(20)) {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("s3s-fs did not start: {last}")
    }

    /// Waits until the server accepts connections and answers an HTTP request.
    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        use std::io::{Read, Write};
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("s3s-fs exited with {status}: {err}"));
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
                let mut answer = [0u8; 12];
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                    && answer.starts_with(b"HTTP/1.1 ")
                {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("no answer on port {} within {limit:?}", self.port))
    }

    /// The endpoint URL (`AWS_ENDPOINT_URL`), without a trailing slash.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The root directory: each bucket is a subdirectory, each object a file.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates a bucket (s3s-fs keeps one directory per bucket).
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root().join(name)).expect("create bucket directory");
    }

    /// The environment a client needs to reach this server: endpoint, region and the
    /// server's credentials, with every other AWS setting of the test's environment
    /// cleared (profiles and files pointed at nothing).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every AWS variable a test clears before setting its own, so that the machine's own
/// configuration never leaks into a test.
pub const AWS_VARS: &[&str] = &[
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
];

/// Clears the AWS variables of `cmd` and points HOME at `home` (no ~/.aws of the
/// machine's user is read), then sets `vars`.
pub fn aws_env(cmd: &mut std::process::Command, home: &Path, vars: &[(&str, String)]) {
    for v in AWS_VARS {
        cmd.env_remove(v);
    }
    cmd.env("HOME", home);
    for (k, v) in vars {
        cmd.env(k, v);
    }
}

/// A TCP proxy on 127.0.0.1 in front of a server that answers its first `fail_first`
/// connections with `503 SlowDown` (as S3 does under load) and forwards every later
/// one: for the retry tests. Stops with the test process.
pub struct FlakyProxy {
    port: u16,
    /// Connections refused so far.
    pub refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FlakyProxy {
    /// A proxy to `127.0.0.1:upstream` failing its first `fail_first` connections.
    pub fn start(upstream: u16, fail_first: usize) -> FlakyProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = refused.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { continue };
                if count.load(Ordering::SeqCst) < fail_first {
                    count.fetch_add(1, Ordering::SeqCst);
                    // Read the request head, answer 503 and close.
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>\
                                <Message>Please reduce your request rate.</Message></Error>";
                    let _ = write!(
                        client,
                        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let mut server = server;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut server);
                    let _ = server.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        FlakyProxy { port, refused }
    }

    /// The endpoint URL through the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl S3Server {
    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}
