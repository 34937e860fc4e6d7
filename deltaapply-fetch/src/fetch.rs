//! Fetching the files of a publish directory from a [`Source`]: the small signed files
//! (manifest and signature) into memory with a hard cap, and patches and full images
//! onto disk, checked against the size and SHA-256 the signed manifest declares before
//! anything uses them.
//!
//! Downloads over HTTP go to `<dest_dir>/<sha256>.part` and are resumed, after an
//! interruption or in a later run, with `Range` and `If-Range` (the validator, the
//! server's strong `ETag` or else its `Last-Modified`, is kept beside it in
//! `<sha256>.part.meta`). Never more bytes than the manifest declares are written; the
//! complete file is hashed while it is written and renamed to `<sha256>.dpatch` only if
//! its SHA-256 matches. Connect errors, timeouts, interrupted bodies and 5xx, 408, 429
//! answers are retried with exponential backoff, resuming each time; after its retries
//! a mirror is given up and the next one is tried, continuing the same `.part` file.
//! Redirects are followed a few times, never from `https` to `http`.
//!
//! Files on a local mirror (a directory or `file://` URL) are not copied: their size
//! and SHA-256 are checked in place and their own path is returned.
//!
//! ```no_run
//! use deltaapply_fetch::fetch::{Fetcher, Options};
//! use deltaapply_fetch::Source;
//! use deltaapply_format::manifest::{Manifest, RelPath, MAX_MANIFEST_SIZE};
//! use deltaapply_format::FileId;
//! use std::path::Path;
//!
//! let source = Source::parse_all(["https://updates.example.com/app/stable", "/media/usb/app"])?;
//! let fetcher = Fetcher::new(Options::default());
//! let bytes = fetcher.fetch_small(&source, &RelPath::new("manifest.toml")?, MAX_MANIFEST_SIZE)?;
//! // ... verify the signature over `bytes` before parsing them ...
//! let manifest = Manifest::parse(&bytes)?;
//! let full = &manifest.artifacts[0].full;
//! let expected = FileId { size: full.size, sha256: full.sha256 };
//! let fetched = fetcher.fetch_file(&source, &full.path, expected, Path::new("/var/cache/app"), &mut |_| {})?;
//! println!("{} is verified", fetched.path.display());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::source::{Location, Mirror, Source};
use deltaapply_format::container::FileId;
use deltaapply_format::digest::Sha256Digest;
use deltaapply_format::manifest::RelPath;

#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
mod part;
#[cfg(feature = "http")]
mod proxy;

/// How downloads behave. The defaults suit a device on a slow or flaky network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Longest wait for a TCP (and TLS) connection to be set up (and, apart, for the
    /// host name to be looked up).
    pub connect_timeout: Duration,
    /// Longest wait for a response's headers once the connection is up (also for
    /// sending the request, and for each read during the TLS handshake), or for any
    /// further bytes of its body: a stalled transfer fails after this much silence,
    /// however long it has run.
    pub read_timeout: Duration,
    /// Lowest average speed, in bytes per second, that a body must keep up over each
    /// span of [`Options::min_speed_time`]: a server that trickles (a byte just within
    /// every read timeout) is cut off and retried, as curl's `--speed-limit` does. 0
    /// turns the check off.
    pub min_speed: u64,
    /// The span over which [`Options::min_speed`] is measured.
    pub min_speed_time: Duration,
    /// Attempts on one mirror after the first, for failures that may pass (connect
    /// errors, timeouts, interrupted transfers, HTTP 5xx, 408 and 429).
    pub retries: u32,
    /// Wait before the first retry; it doubles with each retry, up to `max_backoff`,
    /// plus up to a quarter more at random so that many devices do not retry in step.
    pub backoff: Duration,
    /// Longest wait between two retries.
    pub max_backoff: Duration,
    /// Most redirects followed for one request.
    pub max_redirects: usize,
    /// Accept plain `http://` mirrors and redirects to them (never from `https`). The
    /// signed manifest and the hashes protect the content either way; plain HTTP lets
    /// the network see what is downloaded, and lets it withhold updates.
    pub allow_http: bool,
    /// DER-encoded certificates trusted as roots in addition to the system's, for
    /// update servers with a private certificate authority. On a system without CA
    /// certificates (a minimal device image) they are the only ones trusted. The
    /// system's are read where OpenSSL finds them (`SSL_CERT_FILE`, `SSL_CERT_DIR`, the
    /// distribution's bundle), or from the trust store on macOS and Windows.
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            min_speed: 100,
            min_speed_time: Duration::from_secs(60),
            retries: 4,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_redirects: 5,
            allow_http: true,
            extra_root_certificates: Vec::new(),
        }
    }
}

/// How far a [`Fetcher::fetch_file`] has come. `done` can go down: when a server
/// cannot resume, the download starts again from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes on disk (downloaded, or checked in place for a local mirror).
    pub done: u64,
    /// The file's size.
    pub total: u64,
}

/// A file that [`Fetcher::fetch_file`] has verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The verified file: `<dest_dir>/<sha256>.dpatch` for a download, the file itself
    /// on a local mirror.
    pub path: PathBuf,
    /// Where it came from: a URL (password hidden) or a path.
    pub from: String,
    /// Bytes received over the network by this call, from every mirror tried (0 for
    /// a file read from a local mirror alone, or already complete in `dest_dir`); less
    /// than the size when a download resumed, more when one had to start over.
    pub transferred: u64,
}

/// Why one mirror could not deliver a file, as listed in
/// [`FetchError::AllMirrorsFailed`].
#[derive(Debug)]
pub struct MirrorFailure {
    /// The mirror (URL with password hidden, or path).
    pub mirror: String,
    /// What went wrong there, after the retries.
    pub error: FetchError,
}

/// Why a redirect was not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectProblem {
    /// From `https` to plain `http`: the rest of the transfer would be unprotected.
    Downgrade,
    /// To plain `http`, which [`Options::allow_http`] forbids.
    PlainHttp,
    /// To a scheme other than `http` and `https`.
    Scheme,
    /// More than [`Options::max_redirects`] in a row.
    TooMany,
}

/// What the HTTP client said about a failure (boxed, so that [`FetchError`] has the same
/// variants with or without the `http` feature).
pub type HttpError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong fetching a file. Each variant names the URL or path.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP client could not be set up (a certificate in
    /// [`Options::extra_root_certificates`] was refused, or TLS could not be set up).
    #[error("cannot set up the HTTP client")]
    Client {
        /// What the client library said.
        #[source]
        source: HttpError,
    },
    /// No connection could be made (name lookup, refused, TLS handshake).
    #[error("cannot connect to {url}; check the network and the source address")]
    Connect {
        /// The URL.
        url: String,
        /// What failed.
        #[source]
        source: HttpError,
    },
    /// The TLS handshake failed: the server's certificate is not trusted, has expired,
    /// or is for another name. Not retried.
    #[error(
        "TLS with {url} failed: is the server's certificate valid, for this host name, and \
         issued by a trusted CA?{}",
        if *no_system_roots {
            " (no CA certificates were found on this system: install them, the \
             ca-certificates package, or point SSL_CERT_FILE at a bundle)"
        } else {
            ""
        }
    )]
    Tls {
        /// The URL.
        url: String,
        /// The system has no CA certificates, so only
        /// [`Options::extra_root_certificates`] were trusted.
        no_system_roots: bool,
        /// What failed.
        #[source]
        source: HttpError,
    },
    /// The request failed before an answer arrived (for example the connection was
    /// closed, or the answer was not HTTP).
    #[error("request for {url} failed")]
    Request {
        /// The URL.
        url: String,
        /// What failed.
        #[source]
        source: HttpError,
    },
    /// Nothing arrived for [`Options::read_timeout`].
    #[error(
        "{url}: nothing arrived for {after:?}, the server or the network stalled; \
         run again to resume the download"
    )]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The body arrived slower than [`Options::min_speed`] over a whole
    /// [`Options::min_speed_time`].
    #[error(
        "{url}: {received} bytes arrived in {span:?}, below the minimum of {min_speed} bytes \
         per second: the server or the network is too slow, or trickling on purpose; run \
         again to resume the download"
    )]
    TooSlow {
        /// The URL.
        url: String,
        /// Bytes that arrived during the span.
        received: u64,
        /// The span measured.
        span: Duration,
        /// The minimum speed, bytes per second.
        min_speed: u64,
    },
    /// The connection broke off in the middle of the body.
    #[error("{url}: the transfer broke off after {received} bytes; run again to resume it")]
    Interrupted {
        /// The URL.
        url: String,
        /// Bytes of the file on disk when it broke off.
        received: u64,
        /// How it broke off.
        #[source]
        source: io::Error,
    },
    /// The server answered with an HTTP status that is not a success.
    #[error("{url}: the server answered HTTP {status}{}", status_hint(*status))]
    Status {
        /// The URL (after redirects).
        url: String,
        /// The status code.
        status: u16,
    },
    /// A redirect was refused.
    #[error("{from} redirects to {to}: refused, {}", redirect_text(*problem))]
    RedirectRefused {
        /// The URL that redirected.
        from: String,
        /// Where it redirected to.
        to: String,
        /// Why it was refused.
        problem: RedirectProblem,
    },
    /// A plain `http://` mirror while [`Options::allow_http`] is off.
    #[error("{url}: plain http:// is not allowed here; use an https:// mirror")]
    HttpRefused {
        /// The URL.
        url: String,
    },
    /// A `206 Partial Content` answer that does not continue the file where asked.
    #[error(
        "{url}: asked for the bytes from {offset} on, the server sent Content-Range {content_range:?}; \
         the partial download was discarded, run again to start over"
    )]
    BadRange {
        /// The URL.
        url: String,
        /// Where the download stood.
        offset: u64,
        /// The server's `Content-Range` header (empty when missing).
        content_range: String,
    },
    /// The file is larger than allowed: than the manifest declares for a patch or
    /// image, or than the cap for a manifest or signature file. Nothing beyond the
    /// limit was written.
    #[error(
        "{location} is larger than the {limit} bytes expected{}; the mirror holds a different file",
        declared.map(|d| format!(" ({d} bytes)")).unwrap_or_default()
    )]
    TooLarge {
        /// The URL or path.
        location: String,
        /// The limit.
        limit: u64,
        /// The size the server or file system declared, when known.
        declared: Option<u64>,
    },
    /// The file is complete but smaller than the manifest declares.
    #[error("{location} has {got} bytes, expected {expected}; the mirror holds a different file")]
    SizeMismatch {
        /// The URL or path.
        location: String,
        /// The declared size.
        expected: u64,
        /// The size found.
        got: u64,
    },
    /// The file's SHA-256 is not the one the manifest declares. A download is deleted.
    #[error(
        "{location}: sha256 is {got}, expected {expected}; the mirror holds a corrupt or \
         different file"
    )]
    HashMismatch {
        /// The URL or path.
        location: String,
        /// The declared SHA-256.
        expected: Sha256Digest,
        /// The SHA-256 of what was received.
        got: Sha256Digest,
    },
    /// A file on a local mirror cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The download cannot be written (the destination directory is missing, not
    /// writable, or full).
    #[error("cannot write {}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The caller cancelled the download ([`deltaapply_apply::cancel`]); what was
    /// received is kept for the next attempt to resume.
    #[error("download cancelled by the caller")]
    Cancelled,
    /// Another process is downloading the same file into the same directory.
    #[error("{} is being downloaded by another process; wait for it to finish", path.display())]
    Busy {
        /// The `.part` file it holds locked.
        path: PathBuf,
    },
    /// Every mirror failed; each one's reason is listed.
    #[error("no mirror could deliver {rel}: {}", list_failures(failures))]
    AllMirrorsFailed {
        /// The file asked for.
        rel: RelPath,
        /// Each mirror's failure, in the order they were tried.
        failures: Vec<MirrorFailure>,
    },
}

impl FetchError {
    /// Whether trying the same mirror again may succeed: connect errors, timeouts,
    /// interrupted transfers and HTTP 5xx, 408 (request timeout) and 429 (too many
    /// requests). Other 4xx answers and wrong content are final for that mirror.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Connect { .. } | FetchError::Request { .. } => true,
            FetchError::Timeout { .. }
            | FetchError::TooSlow { .. }
            | FetchError::Interrupted { .. } => true,
            FetchError::Status { status, .. } => {
                (500..600).contains(status) || *status == 408 || *status == 429
            }
            _ => false,
        }
    }

    /// Whether the download cannot be written on this machine, so that another mirror
    /// would fail the same way.
    pub fn is_local(&self) -> bool {
        matches!(self, FetchError::Write { .. } | FetchError::Busy { .. })
    }

    /// Whether the caller cancelled the download: no other mirror is tried.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, FetchError::Cancelled)
    }

    /// Whether the mirror does not have the file: a missing local file, or HTTP 404
    /// or 410. Optional files (the next version of a key chain) are probed this way.
    pub fn is_not_found(&self) -> bool {
        match self {
            FetchError::Read { source, .. } => source.kind() == io::ErrorKind::NotFound,
            FetchError::Status { status, .. } => matches!(status, 404 | 410),
            _ => false,
        }
    }
}

/// Parses a `Content-Range` value of a 206 answer, `bytes START-END/TOTAL` (TOTAL may
/// be `*`), into START, END and TOTAL, with START ≤ END < TOTAL; `None` for anything
/// else. No I/O: the HTTP download checks the answer's range with it, and the
/// `content_range` fuzz target aims at it.
pub fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let range = value.strip_prefix("bytes ")?;
    let (span, total) = range.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (start, end) = (number(start)?, number(end)?);
    let total = match total {
        "*" => None,
        t => Some(number(t)?),
    };
    (start <= end && total.is_none_or(|t| end < t)).then_some((start, end, total))
}

fn status_hint(status: u16) -> &'static str {
    match status {
        404 | 410 => {
            " (not found): the mirror does not hold this file; check that the source is the \
             publish directory that holds manifest.toml"
        }
        401 | 403 => " (access denied)",
        500..=599 => " (a server error)",
        _ => "",
    }
}

fn redirect_text(problem: RedirectProblem) -> &'static str {
    match problem {
        RedirectProblem::Downgrade => "a redirect from https to plain http is never followed",
        RedirectProblem::PlainHttp => "plain http is not allowed here",
        RedirectProblem::Scheme => "only http and https are followed",
        RedirectProblem::TooMany => "too many redirects in a row",
    }
}

fn list_failures(failures: &[MirrorFailure]) -> String {
    failures
        .iter()
        .enumerate()
        .map(|(i, f)| {
            format!(
                "[{}] {}: {}",
                i + 1,
                f.mirror,
                deltaapply_apply::error_chain(&f.error)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Fetches files from sources with one set of [`Options`], reusing its connections.
/// The HTTP client is set up on first use, so a fetcher that only ever reads local
/// mirrors never touches TLS.
///
/// It must not be used from inside an async runtime (the HTTP client is blocking).
#[derive(Debug)]
pub struct Fetcher {
    options: Options,
    received: std::sync::atomic::AtomicU64,
    #[cfg(feature = "http")]
    client: std::sync::OnceLock<http::Client>,
}

impl Fetcher {
    /// A fetcher with these options.
    pub fn new(options: Options) -> Fetcher {
        Fetcher {
            options,
            received: std::sync::atomic::AtomicU64::new(0),
            #[cfg(feature = "http")]
            client: std::sync::OnceLock::new(),
        }
    }

    /// Its options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Body bytes [`Fetcher::fetch_file`] has received over the network so far, from
    /// downloads that succeeded and from those that failed.
    pub fn received(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads a small file (a manifest or signature file) into memory, from the first
    /// mirror that has it. Never reads more than `cap + 1` bytes: a larger file is
    /// [`FetchError::TooLarge`], whatever size a server announces.
    pub fn fetch_small(
        &self,
        source: &Source,
        rel: &RelPath,
        cap: u64,
    ) -> Result<Vec<u8>, FetchError> {
        self.each_mirror(source, rel, |mirror| match mirror.locate(rel) {
            Location::Path(path) => read_small(&path, cap),
            #[cfg(feature = "http")]
            Location::Url(url) => {
                self.check_scheme(&url)?;
                let client = self.client()?;
                self.retrying(|| http::get_small(client, &url, cap, &self.options))
            }
        })
    }

    /// Gets a patch or full image whose size and SHA-256 the manifest declares, from the
    /// first mirror that delivers it intact, and returns its verified path.
    ///
    /// A download goes to `<dest_dir>/<sha256>.part` (the directory is created if
    /// missing) and becomes `<dest_dir>/<sha256>.dpatch` once its size and hash match;
    /// an earlier run's `.part` is resumed, and an earlier run's complete, matching
    /// `.dpatch` is returned without downloading (one that does not match is deleted).
    /// A file on a local mirror is checked in place and its own path returned. On an
    /// error nothing is left but, after an interruption, the `.part` file to resume.
    ///
    /// Whoever opens the returned file later still checks what it reads (the applier
    /// checks the payload's hash again), since the file can change after this check.
    pub fn fetch_file(
        &self,
        source: &Source,
        rel: &RelPath,
        expected: FileId,
        dest_dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Fetched, FetchError> {
        let done = dest_dir.join(format!("{}.dpatch", expected.sha256));
        if let Some(fetched) = reuse_complete(&done, expected, progress)? {
            return Ok(fetched);
        }
        #[cfg(feature = "http")]
        let mut part: Option<part::Part> = None;
        #[cfg_attr(not(feature = "http"), allow(unused_mut))]
        let mut transferred = 0;
        #[cfg(feature = "http")]
        let mut downloaded = false;
        let result = self.each_mirror(source, rel, |mirror| match mirror.locate(rel) {
            Location::Path(path) => {
                check_local(&path, expected, progress)?;
                Ok(Fetched {
                    from: path.display().to_string(),
                    path,
                    transferred,
                })
            }
            #[cfg(feature = "http")]
            Location::Url(url) => {
                self.check_scheme(&url)?;
                let client = self.client()?;
                let part = match &mut part {
                    Some(p) => p,
                    None => part.insert(part::Part::open(dest_dir, expected)?),
                };
                self.download(client, &url, part, expected, progress, &mut transferred)?;
                downloaded = true;
                Ok(Fetched {
                    path: done.clone(),
                    from: crate::source::redacted(&url),
                    transferred,
                })
            }
        });
        self.received
            .fetch_add(transferred, std::sync::atomic::Ordering::Relaxed);
        #[cfg(feature = "http")]
        if let Some(part) = part {
            if downloaded {
                part.finish(&done)?;
            } else {
                // Tidying up is best effort: the file a local mirror delivered, or the
                // error that ended the download, matters more than a leftover file.
                let _ = match &result {
                    // A local mirror delivered the file: the partial download is of no use.
                    Ok(_) => part.discard(),
                    Err(_) => part.close(),
                };
            }
        }
        result
    }

    /// Runs `fetch` on each mirror in turn until one succeeds. A failure on this
    /// machine ([`FetchError::is_local`]) ends the search at once.
    fn each_mirror<T>(
        &self,
        source: &Source,
        rel: &RelPath,
        mut fetch: impl FnMut(&Mirror) -> Result<T, FetchError>,
    ) -> Result<T, FetchError> {
        let mut failures = Vec::new();
        for mirror in source.mirrors() {
            match fetch(mirror) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_local() || e.is_cancelled() => return Err(e),
                Err(error) => failures.push(MirrorFailure {
                    mirror: mirror.to_string(),
                    error,
                }),
            }
        }
        match failures.len() {
            1 => Err(failures.remove(0).error),
            _ => Err(FetchError::AllMirrorsFailed {
                rel: rel.clone(),
                failures,
            }),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent,
    /// waiting between attempts.
    #[cfg(feature = "http")]
    fn retrying<T>(
        &self,
        mut attempt: impl FnMut() -> Result<T, FetchError>,
    ) -> Result<T, FetchError> {
        let mut retry = 0;
        loop {
            match attempt() {
                Err(e) if e.is_retryable() && retry < self.options.retries => {
                    std::thread::sleep(backoff(&self.options, retry));
                    retry += 1;
                }
                result => return result,
            }
        }
    }

    /// Downloads into `part` until it holds the expected bytes, with retries, adding
    /// the bytes received to `transferred`. A hash mismatch empties `part`.
    #[cfg(feature = "http")]
    fn download(
        &self,
        client: &http::Client,
        url: &url::Url,
        part: &mut part::Part,
        expected: FileId,
        progress: &mut dyn FnMut(Progress),
        transferred: &mut u64,
    ) -> Result<(), FetchError> {
        let mut fresh_start = false;
        loop {
            self.retrying(|| {
                if part.len() == expected.size {
                    return Ok(());
                }
                http::transfer(
                    client,
                    url,
                    part,
                    expected.size,
                    &self.options,
                    progress,
                    transferred,
                )
            })?;
            let got = part.digest();
            if got == expected.sha256 {
                return Ok(());
            }
            // Bytes joined from several answers (or an earlier run, maybe from another
            // mirror) can mix two versions of a file; one clean download settles it.
            let pieced = part.is_pieced();
            part.restart(None)?;
            progress(Progress {
                done: 0,
                total: expected.size,
            });
            if pieced && !fresh_start {
                fresh_start = true;
                continue;
            }
            return Err(FetchError::HashMismatch {
                location: crate::source::redacted(url),
                expected: expected.sha256,
                got,
            });
        }
    }

    #[cfg(feature = "http")]
    fn check_scheme(&self, url: &url::Url) -> Result<(), FetchError> {
        if url.scheme() == "http" && !self.options.allow_http {
            return Err(FetchError::HttpRefused {
                url: crate::source::redacted(url),
            });
        }
        Ok(())
    }

    #[cfg(feature = "http")]
    fn client(&self) -> Result<&http::Client, FetchError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = http::Client::new(&self.options)?;
        Ok(self.client.get_or_init(|| client))
    }
}

/// The wait before retry number `retry` (0-based): `backoff · 2^retry`, at most
/// `max_backoff`, plus up to a quarter more.
#[cfg(feature = "http")]
fn backoff(options: &Options, retry: u32) -> Duration {
    let base = options
        .backoff
        .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
        .min(options.max_backoff);
    // Spreads retries of many devices apart; it need not be unpredictable.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = (base / 4)
        .checked_mul(nanos % 1000)
        .map_or(Duration::ZERO, |d| d / 1000);
    base.saturating_add(jitter)
}

/// Reads at most `cap` bytes of a local file; one more is an error.
fn read_small(path: &Path, cap: u64) -> Result<Vec<u8>, FetchError> {
    let read_err = |source| FetchError::Read {
        path: path.to_path_buf(),
        source,
    };
    crate::source::read_capped(path, cap)
        .map_err(read_err)?
        .ok_or_else(|| FetchError::TooLarge {
            location: path.display().to_string(),
            limit: cap,
            declared: fs::metadata(path).ok().map(|m| m.len()),
        })
}

/// Checks a local file's size and SHA-256 against `expected`, reading it once.
fn check_local(
    path: &Path,
    expected: FileId,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), FetchError> {
    let read_err = |source| FetchError::Read {
        path: path.to_path_buf(),
        source,
    };
    let location = || path.display().to_string();
    let file = File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    if size > expected.size {
        return Err(FetchError::TooLarge {
            location: location(),
            limit: expected.size,
            declared: Some(size),
        });
    }
    if size < expected.size {
        return Err(FetchError::SizeMismatch {
            location: location(),
            expected: expected.size,
            got: size,
        });
    }
    let mut done = 0;
    let reader = deltaapply_apply::cancel::Reader(file.take(expected.size.saturating_add(1)));
    let (len, got) = deltaapply_format::hash_reader(reader, &mut |chunk| {
        done += chunk.len() as u64;
        progress(Progress {
            done: done.min(expected.size),
            total: expected.size,
        });
    })
    .map_err(|e| {
        if deltaapply_apply::cancel::is_cancelled(&e) {
            FetchError::Cancelled
        } else {
            read_err(e)
        }
    })?;
    // The file may have changed since its size was read.
    if len != expected.size {
        return Err(FetchError::SizeMismatch {
            location: location(),
            expected: expected.size,
            got: len,
        });
    }
    if got != expected.sha256 {
        return Err(FetchError::HashMismatch {
            location: location(),
            expected: expected.sha256,
            got,
        });
    }
    Ok(())
}

/// A complete download from an earlier run, if `done` exists and matches; one that
/// does not match is deleted.
fn reuse_complete(
    done: &Path,
    expected: FileId,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<Fetched>, FetchError> {
    match fs::symlink_metadata(done) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FetchError::Write {
                path: done.to_path_buf(),
                source,
            });
        }
        Ok(_) => {}
    }
    match check_local(done, expected, progress) {
        Ok(()) => Ok(Some(Fetched {
            path: done.to_path_buf(),
            from: done.display().to_string(),
            transferred: 0,
        })),
        Err(_) => {
            fs::remove_file(done).map_err(|source| FetchError::Write {
                path: done.to_path_buf(),
                source,
            })?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_errors() {
        let status = |status| FetchError::Status {
            url: "u".into(),
            status,
        };
        assert!(status(503).is_retryable());
        assert!(status(500).is_retryable());
        assert!(status(429).is_retryable());
        assert!(status(408).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!status(403).is_retryable());
        let mismatch = FetchError::HashMismatch {
            location: "u".into(),
            expected: Sha256Digest([0; 32]),
            got: Sha256Digest([1; 32]),
        };
        assert!(!mismatch.is_retryable());
        assert!(!mismatch.is_local());
        let write = FetchError::Write {
            path: "d".into(),
            source: io::Error::other("disk full"),
        };
        assert!(write.is_local());
    }

    #[cfg(feature = "http")]
    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let options = Options {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
            ..Options::default()
        };
        for (retry, base) in [(0, 100), (1, 200), (2, 400), (3, 700), (40, 700)] {
            let wait = backoff(&options, retry);
            let base = Duration::from_millis(base);
            assert!(wait >= base && wait <= base + base / 4, "{retry}: {wait:?}");
        }
        let unbounded = Options {
            backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            ..Options::default()
        };
        assert!(backoff(&unbounded, u32::MAX) >= Duration::MAX / 2);
    }

    #[test]
    fn local_files_are_checked_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"hello").unwrap();
        let id = |bytes: &[u8]| FileId {
            size: bytes.len() as u64,
            sha256: Sha256Digest::of(bytes),
        };
        let mut seen = Vec::new();
        check_local(&path, id(b"hello"), &mut |p| seen.push(p)).unwrap();
        assert_eq!(seen.last(), Some(&Progress { done: 5, total: 5 }));
        assert!(matches!(
            check_local(&path, id(b"hellO"), &mut |_| {}),
            Err(FetchError::HashMismatch { .. })
        ));
        assert!(matches!(
            check_local(&path, id(b"hell"), &mut |_| {}),
            Err(FetchError::TooLarge {
                declared: Some(5),
                ..
            })
        ));
        assert!(matches!(
            check_local(&path, id(b"hello!"), &mut |_| {}),
            Err(FetchError::SizeMismatch { got: 5, .. })
        ));
        assert_eq!(read_small(&path, 5).unwrap(), b"hello");
        assert!(matches!(
            read_small(&path, 4),
            Err(FetchError::TooLarge { limit: 4, .. })
        ));
        assert!(matches!(
            read_small(&dir.path().join("missing"), 4),
            Err(FetchError::Read { .. })
        ));
    }
}
