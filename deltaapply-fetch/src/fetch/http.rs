//! One HTTP request at a time, with reqwest's blocking client: the client's set-up
//! (rustls with the ring provider, timeouts, the redirect policy), a capped GET of a
//! small file, and one attempt at continuing a `.part` file.

use std::io::{self, Read};
use std::sync::Once;

use reqwest::blocking::Response;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use reqwest::{Url, redirect};

use super::part::{self, Part};
use super::{FetchError, Options, Progress, RedirectProblem, parse_content_range};
use crate::source::redacted;
use deltaapply_format::digest::IO_CHUNK;

/// The HTTP client, and whether it had to do without the system's CA certificates.
#[derive(Debug)]
pub(super) struct Client {
    inner: reqwest::blocking::Client,
    /// No CA certificates were found on the system: only
    /// [`Options::extra_root_certificates`] are trusted (plain http still works).
    no_system_roots: bool,
}

impl Client {
    /// The client for `options`. Installs the ring crypto provider, less its
    /// private-key loading ([`NoPrivateKeys`]), as the process default first (once; an
    /// embedder's own earlier choice stays).
    pub(super) fn new(options: &Options) -> Result<Client, FetchError> {
        static PROVIDER: Once = Once::new();
        PROVIDER.call_once(|| {
            let provider = rustls::crypto::CryptoProvider {
                key_provider: &NoPrivateKeys,
                ..rustls::crypto::ring::default_provider()
            };
            // Fails only when a provider is installed already, which is as good.
            let _ = provider.install_default();
        });
        let mut roots = Vec::new();
        for der in &options.extra_root_certificates {
            roots.push(reqwest::Certificate::from_der(der).map_err(|source| {
                FetchError::Client {
                    source: source.into(),
                }
            })?);
        }
        match build(options, roots.clone(), true) {
            Ok(inner) => Ok(Client {
                inner,
                no_system_roots: false,
            }),
            // The system has no CA certificates (a minimal device image): plain http
            // mirrors must still work, and https ones with the embedder's roots.
            Err(source) => match build(options, roots, false) {
                Ok(inner) => Ok(Client {
                    inner,
                    no_system_roots: true,
                }),
                Err(_) => Err(FetchError::Client {
                    source: source.into(),
                }),
            },
        }
    }
}

/// The key provider of the crypto provider that [`Client::new`] installs: the applier
/// never presents a client certificate, and ring's key loading (RSA, ECDSA and Ed25519
/// signing) is 47 KB of the size-optimised applier binary. An embedder that needs
/// client certificates or a TLS server in the same process installs its own provider
/// before the first download.
#[derive(Debug)]
struct NoPrivateKeys;

impl rustls::crypto::KeyProvider for NoPrivateKeys {
    fn load_private_key(
        &self,
        _key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<std::sync::Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "deltaapply's crypto provider loads no private keys: install your own \
             rustls provider before the first download"
                .into(),
        ))
    }
}

fn build(
    options: &Options,
    roots: Vec<reqwest::Certificate>,
    with_system_roots: bool,
) -> reqwest::Result<reqwest::blocking::Client> {
    let allow_http = options.allow_http;
    let max_redirects = options.max_redirects;
    let builder = reqwest::blocking::Client::builder()
        .user_agent(concat!("deltaapply/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout)
        // The blocking client applies this to the wait for the headers and to every
        // read of the body: an inactivity timeout, not a limit on the whole transfer.
        .timeout(options.read_timeout)
        .redirect(redirect::Policy::custom(move |attempt| {
            let to = attempt.url();
            let from = attempt.previous().last();
            let problem = if attempt.previous().len() > max_redirects {
                Some(RedirectProblem::TooMany)
            } else if !matches!(to.scheme(), "http" | "https") {
                Some(RedirectProblem::Scheme)
            } else if to.scheme() == "http" && from.is_some_and(|f| f.scheme() == "https") {
                Some(RedirectProblem::Downgrade)
            } else if to.scheme() == "http" && !allow_http {
                Some(RedirectProblem::PlainHttp)
            } else {
                None
            };
            match problem {
                Some(problem) => {
                    let refusal = Refusal {
                        from: from.map(redacted).unwrap_or_default(),
                        to: redacted(to),
                        problem,
                    };
                    attempt.error(refusal)
                }
                None => attempt.follow(),
            }
        }));
    if with_system_roots {
        builder.tls_certs_merge(roots)
    } else {
        builder.tls_certs_only(roots)
    }
    .build()
}

/// GETs a file of at most `cap` bytes, reading at most `cap + 1`.
pub(super) fn get_small(
    client: &Client,
    url: &Url,
    cap: u64,
    options: &Options,
) -> Result<Vec<u8>, FetchError> {
    let resp = send(client, client.inner.get(url.clone()), url, options)?;
    let at = redacted(resp.url());
    if resp.status().as_u16() != 200 {
        return Err(FetchError::Status {
            url: at,
            status: resp.status().as_u16(),
        });
    }
    if let Some(len) = resp.content_length().filter(|&len| len > cap) {
        return Err(FetchError::TooLarge {
            location: at,
            limit: cap,
            declared: Some(len),
        });
    }
    let declared = resp.content_length();
    let mut bytes = Vec::new();
    resp.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| body_error(&at, e, bytes.len() as u64, options))?;
    if bytes.len() as u64 > cap {
        return Err(FetchError::TooLarge {
            location: at,
            limit: cap,
            declared: None,
        });
    }
    if declared.is_some_and(|d| d != bytes.len() as u64) {
        return Err(FetchError::Interrupted {
            url: at,
            received: bytes.len() as u64,
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "body shorter than announced"),
        });
    }
    Ok(bytes)
}

/// One attempt at bringing `part` to `size` bytes from `url`: asks for the rest with
/// `Range` (and `If-Range`, when the bytes so far have a validator), starts again from
/// 0 when the server sends the whole file instead, and appends what arrives, never
/// beyond `size`. Returns when `part` holds `size` bytes (not yet hashed).
pub(super) fn transfer(
    client: &Client,
    url: &Url,
    part: &mut Part,
    size: u64,
    options: &Options,
    progress: &mut dyn FnMut(Progress),
    transferred: &mut u64,
) -> Result<(), FetchError> {
    let mut restarted = false;
    loop {
        let offset = part.len();
        let mut request = client.inner.get(url.clone());
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
            if let Some(v) = part.validator() {
                request = request.header(IF_RANGE, v);
            }
        }
        let resp = send(client, request, url, options)?;
        let at = redacted(resp.url());
        // Where the answer starts, and where its range ends for a 206.
        let (start, range_end) = match resp.status().as_u16() {
            // The whole file: the server ignored Range, or the file changed since the
            // bytes so far (If-Range did not match).
            200 => {
                part.restart(validator(&resp))?;
                (0, None)
            }
            206 => {
                let (start, end) = check_content_range(&resp, &at, offset, size, part)?;
                part.mark_resumed();
                (start, Some(end))
            }
            // Nothing left at that offset: the file is shorter than the bytes so far,
            // so they belong to another version. Start again, once.
            416 if offset > 0 && !restarted => {
                restarted = true;
                part.restart(None)?;
                continue;
            }
            status => return Err(FetchError::Status { url: at, status }),
        };
        progress(Progress {
            done: start,
            total: size,
        });
        let remaining = size - start;
        let declared = resp.content_length();
        if let Some(len) = declared.filter(|&len| len > remaining) {
            part.restart(None)?;
            return Err(FetchError::TooLarge {
                location: at,
                limit: size,
                declared: Some(start.saturating_add(len)),
            });
        }
        let mut body = resp.take(remaining.saturating_add(1));
        let mut buf = vec![0u8; IO_CHUNK];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(body_error(&at, e, part.len(), options)),
            };
            if part.len() + n as u64 > size {
                part.restart(None)?;
                return Err(FetchError::TooLarge {
                    location: at,
                    limit: size,
                    declared: None,
                });
            }
            part.append(&buf[..n])?;
            *transferred += n as u64;
            progress(Progress {
                done: part.len(),
                total: size,
            });
        }
        let got = part.len();
        if got == size {
            return Ok(());
        }
        // A server may answer an open range with less than the rest: ask for more.
        if range_end.is_some_and(|end| got == end + 1) {
            continue;
        }
        return Err(match (range_end, declared) {
            // A whole-file answer that sent all it announced: the file is shorter.
            (None, Some(len)) => {
                part.restart(None)?;
                FetchError::SizeMismatch {
                    location: at,
                    expected: size,
                    got: len,
                }
            }
            // Without a length, a closed connection is all the end there is.
            _ => FetchError::Interrupted {
                url: at,
                received: got,
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed before the end of the file",
                ),
            },
        });
    }
}

/// Checks a 206 answer's `Content-Range` (`bytes START-END/TOTAL`): it must start at
/// `offset`, and neither END nor TOTAL may go past `size`. Returns START and END.
fn check_content_range(
    resp: &Response,
    at: &str,
    offset: u64,
    size: u64,
    part: &mut Part,
) -> Result<(u64, u64), FetchError> {
    let header = resp
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The bytes so far cannot be continued from such a server; a later run starts over.
    let mut bad = || {
        part.restart(None)?;
        Err(FetchError::BadRange {
            url: at.to_string(),
            offset,
            content_range: header.to_string(),
        })
    };
    let Some((start, end, total)) = parse_content_range(header) else {
        return bad();
    };
    if total.is_some_and(|t| t > size) || end >= size {
        part.restart(None)?;
        return Err(FetchError::TooLarge {
            location: at.to_string(),
            limit: size,
            declared: total,
        });
    }
    if let Some(total) = total.filter(|&t| t < size) {
        part.restart(None)?;
        return Err(FetchError::SizeMismatch {
            location: at.to_string(),
            expected: size,
            got: total,
        });
    }
    if start != offset
        || resp
            .content_length()
            .is_some_and(|len| len != end - start + 1)
    {
        return bad();
    }
    Ok((start, end))
}

/// The answer's validator for a later `If-Range`: its ETag if strong (weak ones may
/// not be used there), else its Last-Modified date.
fn validator(resp: &Response) -> Option<String> {
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| part::is_header_value(v))
            .map(str::to_string)
    };
    header(ETAG)
        .filter(|etag| etag.starts_with('"'))
        .or_else(|| header(LAST_MODIFIED))
}

/// Sends a request and turns reqwest's failures into ours.
fn send(
    client: &Client,
    request: reqwest::blocking::RequestBuilder,
    url: &Url,
    options: &Options,
) -> Result<Response, FetchError> {
    request.send().map_err(|source| {
        let url = redacted(url);
        if let Some(refusal) = find_refusal(&source) {
            return FetchError::RedirectRefused {
                from: refusal.from.clone(),
                to: refusal.to.clone(),
                problem: refusal.problem,
            };
        }
        if source.is_connect() && is_tls_failure(&source) {
            FetchError::Tls {
                url,
                no_system_roots: client.no_system_roots,
                source: source.into(),
            }
        } else if source.is_connect() {
            FetchError::Connect {
                url,
                source: source.into(),
            }
        } else if source.is_timeout() {
            FetchError::Timeout {
                url,
                after: options.read_timeout,
            }
        } else {
            FetchError::Request {
                url,
                source: source.into(),
            }
        }
    })
}

/// Whether rustls refused the connection (an untrusted or invalid certificate, a
/// failed handshake). `io::Error` does not list its inner error as a source, so each
/// one is opened.
fn is_tls_failure(err: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let mut wrapped = e;
        loop {
            if wrapped.is::<rustls::Error>() {
                return true;
            }
            match wrapped
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
            {
                Some(inner) => wrapped = inner,
                None => break,
            }
        }
        next = e.source();
    }
    false
}

/// A failed read of a body: a timeout, or the transfer broke off.
fn body_error(at: &str, e: io::Error, received: u64, options: &Options) -> FetchError {
    let timed_out = e.kind() == io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout);
    if timed_out {
        FetchError::Timeout {
            url: at.to_string(),
            after: options.read_timeout,
        }
    } else {
        FetchError::Interrupted {
            url: at.to_string(),
            received,
            source: e,
        }
    }
}

/// The redirect policy's refusal, carried through reqwest's error.
#[derive(Debug)]
struct Refusal {
    from: String,
    to: String,
    problem: RedirectProblem,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redirect from {} to {} refused", self.from, self.to)
    }
}

impl std::error::Error for Refusal {}

fn find_refusal(err: &reqwest::Error) -> Option<&Refusal> {
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        if let Some(refusal) = s.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("bytes 5-9/10"), Some((5, 9, Some(10))));
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, 0, None)));
        for bad in [
            "",
            "bytes 5-9",
            "bytes 9-5/10",
            "bytes 5-10/10",
            "bytes -9/10",
            "bytes 5-/10",
            "bytes +5-9/10",
            "items 5-9/10",
            "bytes 5-9/x",
            "bytes 99999999999999999999-1/2",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }
}
