//! One HTTP request at a time, with ureq's blocking client: the client's set-up (rustls
//! with the ring provider, the system's CA certificates and the embedder's, timeouts,
//! proxies from the environment), redirects followed under our policy, a capped GET of a
//! small file, and one attempt at continuing a `.part` file.

use std::io::{self, Read};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use ureq::http::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, LOCATION, RANGE};
use url::Url;

use super::part::{self, Part};
use super::proxy::{EnvProxies, Route};
use super::{FetchError, Options, Progress, RedirectProblem, parse_content_range};
use crate::source::redacted;
use deltaapply_format::digest::IO_CHUNK;

/// An answer whose body has not been read yet.
type Response = ureq::http::Response<ureq::Body>;

/// The HTTP client, and whether it had to do without the system's CA certificates.
#[derive(Debug)]
pub(super) struct Client {
    /// For URLs reached directly.
    direct: ureq::Agent,
    /// For URLs reached through the environment's proxy for `http://`, and `https://`.
    via_http_proxy: Option<ureq::Agent>,
    via_https_proxy: Option<ureq::Agent>,
    proxies: EnvProxies,
    max_redirects: usize,
    allow_http: bool,
    /// No CA certificates were found on the system, and none were given: nothing is
    /// trusted (plain http still works).
    no_system_roots: bool,
}

impl Client {
    /// The client for `options`. Installs the ring crypto provider, less its
    /// private-key loading ([`NoPrivateKeys`]), as the process default first (once; an
    /// embedder's own earlier choice stays), and reads the system's CA certificates.
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
        // The embedder's roots must all be usable; the system's are taken as far as they
        // are (a minimal device image may have none: plain http mirrors must still work,
        // and https ones with the embedder's roots).
        let mut store = rustls::RootCertStore::empty();
        let mut roots = Vec::new();
        for der in &options.extra_root_certificates {
            store
                .add(rustls::pki_types::CertificateDer::from(der.as_slice()))
                .map_err(|source| FetchError::Client {
                    source: source.into(),
                })?;
            roots.push(ureq::tls::Certificate::from_der(der).to_owned());
        }
        let system = rustls_native_certs::load_native_certs().certs;
        store.add_parsable_certificates(system.iter().cloned());
        roots.extend(
            system
                .iter()
                .map(|der| ureq::tls::Certificate::from_der(der).to_owned()),
        );
        let roots = Arc::new(roots);
        let proxies = EnvProxies::from_env();
        let via = |proxy: &Option<ureq::Proxy>| {
            proxy
                .as_ref()
                .map(|p| agent(options, &roots, Some(p.clone())))
        };
        Ok(Client {
            direct: agent(options, &roots, None),
            via_http_proxy: via(&proxies.http),
            via_https_proxy: via(&proxies.https),
            proxies,
            max_redirects: options.max_redirects,
            allow_http: options.allow_http,
            no_system_roots: store.is_empty(),
        })
    }

    /// The agent that reaches `url` the way the environment says.
    fn agent(&self, url: &Url) -> &ureq::Agent {
        let via = match self.proxies.route(url) {
            Route::Direct => None,
            Route::HttpProxy => self.via_http_proxy.as_ref(),
            Route::HttpsProxy => self.via_https_proxy.as_ref(),
        };
        via.unwrap_or(&self.direct)
    }
}

/// An agent trusting `roots`, with the timeouts of `options`. It follows no redirects
/// ([`send`] does, under its own policy) and returns every status as an answer.
///
/// `connect_timeout` bounds the name lookup and, separately, the TCP connection with
/// its TLS handshake; `read_timeout` bounds sending the request, the wait for the
/// answer's headers, and each read of its body (an inactivity timeout, not a limit on
/// the whole transfer).
fn agent(
    options: &Options,
    roots: &Arc<Vec<ureq::tls::Certificate<'static>>>,
    proxy: Option<ureq::Proxy>,
) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(roots.clone()))
        .build();
    ureq::config::Config::builder()
        .user_agent(concat!("deltaapply/", env!("CARGO_PKG_VERSION")))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(proxy)
        .tls_config(tls)
        .timeout_resolve(Some(options.connect_timeout))
        .timeout_connect(Some(options.connect_timeout))
        .timeout_send_request(Some(options.read_timeout))
        .timeout_recv_response(Some(options.read_timeout))
        .timeout_per_read(Some(options.read_timeout))
        .build()
        .new_agent()
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

/// GETs a file of at most `cap` bytes, reading at most `cap + 1`.
pub(super) fn get_small(
    client: &Client,
    url: &Url,
    cap: u64,
    options: &Options,
) -> Result<Vec<u8>, FetchError> {
    let (resp, at) = send(client, url, &[], options)?;
    if resp.status().as_u16() != 200 {
        return Err(FetchError::Status {
            url: at,
            status: resp.status().as_u16(),
        });
    }
    let declared = resp.body().content_length();
    if let Some(len) = declared.filter(|&len| len > cap) {
        return Err(FetchError::TooLarge {
            location: at,
            limit: cap,
            declared: Some(len),
        });
    }
    let mut bytes = Vec::new();
    resp.into_body()
        .into_reader()
        .take(cap.saturating_add(1))
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
        let range = format!("bytes={offset}-");
        let mut headers = Vec::new();
        if offset > 0 {
            headers.push((RANGE, range.as_str()));
            if let Some(v) = part.validator() {
                headers.push((IF_RANGE, v));
            }
        }
        let (resp, at) = send(client, url, &headers, options)?;
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
        let declared = resp.body().content_length();
        if let Some(len) = declared.filter(|&len| len > remaining) {
            part.restart(None)?;
            return Err(FetchError::TooLarge {
                location: at,
                limit: size,
                declared: Some(start.saturating_add(len)),
            });
        }
        let mut body = resp
            .into_body()
            .into_reader()
            .take(remaining.saturating_add(1));
        let mut buf = vec![0u8; IO_CHUNK];
        let mut speed = Speed::new(options);
        loop {
            if deltaapply_apply::cancel::requested() {
                return Err(FetchError::Cancelled);
            }
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
            speed.arrived(n as u64, &at)?;
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
            .body()
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

/// GETs `url` with `headers`, following redirects (301, 302, 303, 307 and 308, at most
/// [`Options::max_redirects`] in a row, never from https to http, nor to http when
/// [`Options::allow_http`] is off), and turns ureq's failures into ours. Returns the
/// answer and the URL it came from, for messages.
///
/// A user name and password in `url` are sent as Basic authorisation (percent-escapes
/// decoded), never in the URL, and not after a redirect to another host, port or scheme;
/// each redirected request names the URL that redirected as its `Referer`.
fn send(
    client: &Client,
    url: &Url,
    headers: &[(ureq::http::HeaderName, &str)],
    options: &Options,
) -> Result<(Response, String), FetchError> {
    let (mut current, mut authorization) = split_credentials(url);
    let mut referer: Option<String> = None;
    let mut redirects = 0;
    loop {
        let mut request = client.agent(&current).get(current.as_str());
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        if let Some(value) = &referer {
            request = request.header("referer", value);
        }
        let resp = request
            .call()
            .map_err(|e| request_error(client, url, e, options))?;
        let to = match resp.status().as_u16() {
            301 | 302 | 303 | 307 | 308 => resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|location| current.join(location).ok()),
            _ => None,
        };
        // Not a redirect, or one without a usable Location: the answer as it is.
        let Some(to) = to else {
            return Ok((resp, redacted(&current)));
        };
        redirects += 1;
        let problem = if redirects > client.max_redirects {
            Some(RedirectProblem::TooMany)
        } else if !matches!(to.scheme(), "http" | "https") {
            Some(RedirectProblem::Scheme)
        } else if to.scheme() == "http" && current.scheme() == "https" {
            Some(RedirectProblem::Downgrade)
        } else if to.scheme() == "http" && !client.allow_http {
            Some(RedirectProblem::PlainHttp)
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(FetchError::RedirectRefused {
                from: redacted(&current),
                to: redacted(&to),
                problem,
            });
        }
        let same_origin = to.host_str() == current.host_str()
            && to.port_or_known_default() == current.port_or_known_default()
            && to.scheme() == current.scheme();
        if !same_origin {
            authorization = None;
        }
        let mut from = current;
        let _ = from.set_username("");
        let _ = from.set_password(None);
        from.set_fragment(None);
        referer = Some(from.into());
        current = to;
    }
}

/// `url` without its user name and password, and those as an `Authorization` value
/// (none when either is not UTF-8 once decoded).
fn split_credentials(url: &Url) -> (Url, Option<String>) {
    use base64::Engine;
    if url.username().is_empty() && url.password().is_none() {
        return (url.clone(), None);
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|s| s.into_owned())
    };
    let user = decode(url.username());
    let password = url.password().map(decode);
    let mut bare = url.clone();
    // Cannot fail: the URL has a host, since it has a user name or password.
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    let value = match (user, password) {
        (Some(user), None) => Some(format!("{user}:")),
        (Some(user), Some(Some(password))) => Some(format!("{user}:{password}")),
        _ => None,
    }
    .map(|credentials| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        format!("Basic {encoded}")
    });
    (bare, value)
}

/// A request's failure, before an answer arrived, as ours.
fn request_error(client: &Client, url: &Url, e: ureq::Error, options: &Options) -> FetchError {
    use ureq::Error as E;
    let url = redacted(url);
    if is_tls_failure(&e) {
        return FetchError::Tls {
            url,
            no_system_roots: client.no_system_roots,
            source: e.into(),
        };
    }
    let connect = match &e {
        E::HostNotFound | E::ConnectionFailed | E::ConnectProxyFailed(_) => true,
        E::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => true,
        E::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::NetworkDown
                | io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::AddrInUse
                | io::ErrorKind::PermissionDenied
        ),
        _ => false,
    };
    if connect {
        FetchError::Connect {
            url,
            source: e.into(),
        }
    } else if matches!(e, E::Timeout(_)) {
        FetchError::Timeout {
            url,
            after: options.read_timeout,
        }
    } else {
        FetchError::Request {
            url,
            source: e.into(),
        }
    }
}

/// Whether rustls refused the connection (an untrusted or invalid certificate, a
/// failed handshake). ureq passes rustls's errors on as its own, or inside an
/// `io::Error`, which does not list its inner error as a source: each one is opened.
fn is_tls_failure(err: &ureq::Error) -> bool {
    let mut io = match err {
        ureq::Error::Rustls(_) | ureq::Error::Tls(_) => return true,
        ureq::Error::Io(io) => io.get_ref(),
        _ => None,
    };
    while let Some(inner) = io {
        if inner.is::<rustls::Error>() {
            return true;
        }
        io = match inner.downcast_ref::<ureq::Error>() {
            Some(ureq::Error::Rustls(_)) => return true,
            Some(ureq::Error::Io(e)) => e.get_ref(),
            _ => inner
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref),
        };
    }
    false
}

/// The minimum-speed check of one body ([`Options::min_speed`]): the bytes that
/// arrived since the current span began.
struct Speed {
    min_speed: u64,
    span: Duration,
    started: Instant,
    received: u64,
}

impl Speed {
    fn new(options: &Options) -> Speed {
        Speed {
            min_speed: options.min_speed,
            span: options.min_speed_time,
            started: Instant::now(),
            received: 0,
        }
    }

    /// Counts `n` more bytes; at the end of each span, refuses one that was too slow.
    fn arrived(&mut self, n: u64, url: &str) -> Result<(), FetchError> {
        self.received += n;
        let elapsed = self.started.elapsed();
        if self.min_speed == 0 || elapsed < self.span {
            return Ok(());
        }
        if (self.received as f64) < self.min_speed as f64 * elapsed.as_secs_f64() {
            return Err(FetchError::TooSlow {
                url: url.to_string(),
                received: self.received,
                span: elapsed,
                min_speed: self.min_speed,
            });
        }
        self.started = Instant::now();
        self.received = 0;
        Ok(())
    }
}

/// A failed read of a body: a timeout, or the transfer broke off.
fn body_error(at: &str, e: io::Error, received: u64, options: &Options) -> FetchError {
    let timed_out = e.kind() == io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|e| matches!(e, ureq::Error::Timeout(_)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        let split = |s: &str| split_credentials(&Url::parse(s).unwrap());
        let (url, auth) = split("https://us%20er:p%40ss@example.com/pub/");
        assert_eq!(url.as_str(), "https://example.com/pub/");
        // base64("us er:p@ss")
        assert_eq!(auth.as_deref(), Some("Basic dXMgZXI6cEBzcw=="));
        let (url, auth) = split("https://user@example.com/");
        assert_eq!(url.as_str(), "https://example.com/");
        assert_eq!(auth.as_deref(), Some("Basic dXNlcjo="));
        let (url, auth) = split("https://u:%ff@example.com/");
        assert_eq!((url.as_str(), auth), ("https://example.com/", None));
        let (url, auth) = split("https://example.com/");
        assert_eq!((url.as_str(), auth), ("https://example.com/", None));
    }

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
