//! A publish location in an S3-compatible bucket (`s3://bucket/prefix`): AWS, MinIO,
//! R2, Ceph RGW, s3s. Requests are signed with SigV4 by rusty-s3 (sans-IO: it builds
//! presigned URLs, nothing more) and sent with ureq, the HTTP client the applier
//! already links. Objects are written whole with one `PutObject` each, or, past
//! [`PART_SIZE`], as a multipart upload (one `PutObject` takes at most 5 GiB); either
//! way S3 makes the object visible atomically, when the request or the upload's
//! completion succeeds: a reader sees the old object or the new one, never part.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deltaapply::{Hasher, Sha256Digest};
use rusty_s3::{Bucket, S3Action, UrlStyle};

use super::StoreError;
use super::aws::AwsConfig;

/// How long a signed request stays valid: each is signed just before it is sent.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// How many times a request is sent before its failure is reported.
const ATTEMPTS: u32 = 5;

/// The pause before the first retry; each next one is twice as long (0.25 + 0.5 + 1 + 2 s).
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Objects larger than this are uploaded in parts of this size (the last one smaller):
/// S3 takes at most 5 GiB in one `PutObject`, and a failed part is sent again alone.
pub const PART_SIZE: usize = 64 << 20;

/// The smallest part S3 accepts (all but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// The most parts one upload may have.
const MAX_PARTS: usize = 10_000;

/// The most of an error answer's body read for its message.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// The most of a listing page read (1,000 keys of at most 1 KiB each, and XML).
const MAX_LISTING: u64 = 4 << 20;

/// `s3://bucket/prefix` split up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket.
    pub bucket: String,
    /// The key prefix: empty, or ending in `/`.
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3://bucket` or `s3://bucket/some/prefix` (trailing `/` optional). The
    /// prefix's segments must be plain names (no empty, `.` or `..` segment).
    pub fn parse(s: &str) -> Result<S3Url, String> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s:?} is not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !valid_bucket {
            return Err(format!(
                "{s:?}: {bucket:?} is not a bucket name (3 to 63 of a-z, 0-9, '-', '.', '_')"
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == ".." || seg.contains('\\'))
        {
            return Err(format!(
                "{s:?}: the prefix {prefix:?} must be names separated by single '/'"
            ));
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "s3://{}/{}",
            self.bucket,
            self.prefix.trim_end_matches('/')
        )
    }
}

/// A bucket and prefix with a client for them.
pub struct S3Store {
    url: S3Url,
    bucket: Bucket,
    credentials: Option<rusty_s3::Credentials>,
    endpoint: String,
    credentials_from: String,
    agent: ureq::Agent,
    downloaded: AtomicU64,
    uploaded: AtomicU64,
    /// Objects larger than this go up in parts of this size.
    part_size: usize,
    /// Parts uploaded by multipart uploads so far.
    parts: AtomicU64,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Store({} at {})", self.url, self.endpoint)
    }
}

/// An answer whose body has not been read yet.
type Response = ureq::http::Response<ureq::Body>;

impl S3Store {
    /// A client for `url` with `config`'s endpoint, region and credentials.
    pub fn new(url: S3Url, config: &AwsConfig) -> Result<S3Store, StoreError> {
        let bad = |msg: String| StoreError {
            what: "cannot use",
            path: PathBuf::from(url.to_string()),
            source: std::io::Error::other(msg),
        };
        let (endpoint, style) = match &config.endpoint {
            // S3-compatible servers on their own host name or address: path style
            // works with every one of them.
            Some(e) => (e.trim_end_matches('/').to_string(), UrlStyle::Path),
            None if url.bucket.contains('.') => (
                format!("https://s3.{}.amazonaws.com", config.region),
                UrlStyle::Path,
            ),
            None => (
                format!("https://s3.{}.amazonaws.com", config.region),
                UrlStyle::VirtualHost,
            ),
        };
        let parsed = url::Url::parse(&endpoint)
            .map_err(|e| bad(format!("endpoint {endpoint:?} is not a URL: {e}")))?;
        let bucket = Bucket::new(parsed, style, url.bucket.clone(), config.region.clone())
            .map_err(|e| bad(format!("endpoint {endpoint:?}: {e}")))?;
        let credentials = config.credentials.as_ref().map(|c| match &c.session_token {
            Some(token) => rusty_s3::Credentials::new_with_token(
                c.access_key_id.clone(),
                c.secret_access_key.to_string(),
                token.to_string(),
            ),
            None => {
                rusty_s3::Credentials::new(c.access_key_id.clone(), c.secret_access_key.to_string())
            }
        });
        Ok(S3Store {
            url,
            bucket,
            credentials,
            endpoint,
            credentials_from: config.credentials_from.clone(),
            agent: agent(),
            downloaded: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            part_size: PART_SIZE,
            parts: AtomicU64::new(0),
        })
    }

    /// This store with objects larger than `size` bytes uploaded in parts of `size`
    /// (at least [`MIN_PART_SIZE`]; [`PART_SIZE`] unless set).
    pub fn with_part_size(mut self, size: usize) -> S3Store {
        self.part_size = size.max(MIN_PART_SIZE);
        self
    }

    /// Parts sent by multipart uploads so far (each counted once, however often sent).
    pub fn parts_uploaded(&self) -> u64 {
        self.parts.load(Ordering::Relaxed)
    }

    /// The location, as `s3://bucket/prefix`.
    pub fn url(&self) -> &S3Url {
        &self.url
    }

    /// Bytes of object bodies downloaded so far.
    pub fn downloaded(&self) -> u64 {
        self.downloaded.load(Ordering::Relaxed)
    }

    /// Bytes of object bodies uploaded so far.
    pub fn uploaded(&self) -> u64 {
        self.uploaded.load(Ordering::Relaxed)
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.url.prefix)
    }

    /// The object key of `rel`, refusing a name a URL cannot carry as it is: an empty,
    /// `.` or `..` segment would be resolved away (`a/../b` is `b`; an empty key is the
    /// bucket itself), so such a name, e.g. from a hostile listing, is never sent.
    fn object_key(&self, rel: &str) -> Result<String, StoreError> {
        if rel.is_empty()
            || rel
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(StoreError {
                what: "refusing the object name",
                path: self.shown(rel),
                source: std::io::Error::other("empty, '.' or '..' path segments"),
            });
        }
        Ok(self.key(rel))
    }

    fn shown(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("s3://{}/{}", self.url.bucket, self.key(rel)))
    }

    /// Checks that the bucket exists and the credentials are accepted: a listing of
    /// at most one key under the prefix.
    pub fn check(&self) -> Result<(), StoreError> {
        let resp = self.request("cannot list", "", &|| {
            let mut list = self.bucket.list_objects_v2(self.credentials.as_ref());
            list.with_prefix(self.url.prefix.as_str());
            list.with_max_keys(1);
            self.agent.get(list.sign(SIGNED_FOR).as_str()).call()
        })?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self.failure("cannot list", "", resp))
    }

    /// Reads the object `rel` into memory, at most `cap` bytes: `Ok(None)` when there
    /// is no such object.
    pub fn get(&self, rel: &str, cap: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let mut bytes = Vec::new();
        match self.get_into(rel, cap, &mut bytes)? {
            Some(_) => Ok(Some(bytes)),
            None => Ok(None),
        }
    }

    /// Streams the object `rel` into `out`, at most `cap` bytes, and returns its size
    /// and SHA-256; `Ok(None)` when there is no such object.
    pub fn get_into(
        &self,
        rel: &str,
        cap: u64,
        out: &mut dyn Write,
    ) -> Result<Option<(u64, Sha256Digest)>, StoreError> {
        let key = self.object_key(rel)?;
        let mut resp = self.request("cannot read", rel, &|| {
            let url = self
                .bucket
                .get_object(self.credentials.as_ref(), &key)
                .sign(SIGNED_FOR);
            self.agent.get(url.as_str()).call()
        })?;
        if resp.status() == 404 {
            let err = self.failure("cannot read", rel, resp);
            return match err
                .source
                .get_ref()
                .and_then(|e| e.downcast_ref::<S3Problem>())
            {
                Some(p) if p.code == "NoSuchKey" || p.code.is_empty() => Ok(None),
                _ => Err(err),
            };
        }
        if !resp.status().is_success() {
            return Err(self.failure("cannot read", rel, resp));
        }
        let io = |source| StoreError {
            what: "cannot read",
            path: self.shown(rel),
            source,
        };
        let mut reader = resp
            .body_mut()
            .with_config()
            .limit(cap.saturating_add(1))
            .reader();
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            hasher.update(&buf[..n]);
            self.downloaded.fetch_add(n as u64, Ordering::Relaxed);
            if hasher.len() > cap {
                return Err(StoreError {
                    what: "too large:",
                    path: self.shown(rel),
                    source: std::io::Error::other(format!("larger than the {cap}-byte limit")),
                });
            }
            out.write_all(&buf[..n]).map_err(io)?;
        }
        let len = hasher.len();
        Ok(Some((len, hasher.finish())))
    }

    /// The size of the object `rel`, or `None` if there is none.
    pub fn size(&self, rel: &str) -> Result<Option<u64>, StoreError> {
        let key = self.object_key(rel)?;
        let resp = self.request("cannot look up", rel, &|| {
            let url = self
                .bucket
                .head_object(self.credentials.as_ref(), &key)
                .sign(SIGNED_FOR);
            self.agent.head(url.as_str()).call()
        })?;
        if resp.status() == 404 {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.failure("cannot look up", rel, resp));
        }
        Ok(resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()))
    }

    /// Writes the object `rel` with `bytes`: in one request, or in parts past the
    /// part size.
    pub fn put(&self, rel: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let key = self.object_key(rel)?;
        if bytes.len() > self.part_size {
            return self.put_in_parts(rel, &key, bytes);
        }
        let resp = self.request("cannot write", rel, &|| {
            let url = self
                .bucket
                .put_object(self.credentials.as_ref(), &key)
                .sign(SIGNED_FOR);
            self.agent.put(url.as_str()).send(bytes)
        })?;
        if !resp.status().is_success() {
            return Err(self.failure("cannot write", rel, resp));
        }
        self.uploaded
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the object `rel` (key `key`) by a multipart upload: create, the parts in
    /// order (each retried alone), complete. On any failure the upload is aborted (so
    /// the bucket keeps no parts) and the object is as it was.
    fn put_in_parts(&self, rel: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let size = self.part_size.max(bytes.len().div_ceil(MAX_PARTS));
        let mut resp = self.request("cannot start the upload of", rel, &|| {
            let url = self
                .bucket
                .create_multipart_upload(self.credentials.as_ref(), key)
                .sign(SIGNED_FOR);
            self.agent.post(url.as_str()).send_empty()
        })?;
        if !resp.status().is_success() {
            return Err(self.failure("cannot start the upload of", rel, resp));
        }
        let body = self.read_answer("cannot start the upload of", rel, &mut resp)?;
        let created = rusty_s3::actions::CreateMultipartUpload::parse_response(&body)
            .map_err(|e| self.bad_answer("cannot start the upload of", rel, e))?;
        let upload_id = created.upload_id().to_string();
        let result = self.send_parts(rel, key, &upload_id, bytes, size);
        if result.is_err() {
            // Best effort: a bucket's lifecycle rule removes what this leaves.
            let url = self
                .bucket
                .abort_multipart_upload(self.credentials.as_ref(), key, &upload_id)
                .sign(SIGNED_FOR);
            let _ = self.agent.delete(url.as_str()).call();
        }
        result
    }

    /// The parts of upload `upload_id`, then its completion.
    fn send_parts(
        &self,
        rel: &str,
        key: &str,
        upload_id: &str,
        bytes: &[u8],
        size: usize,
    ) -> Result<(), StoreError> {
        let mut etags = Vec::new();
        for (i, part) in bytes.chunks(size).enumerate() {
            let number = u16::try_from(i + 1).expect("at most MAX_PARTS parts");
            let resp = self.request("cannot write a part of", rel, &|| {
                let url = self
                    .bucket
                    .upload_part(self.credentials.as_ref(), key, number, upload_id)
                    .sign(SIGNED_FOR);
                self.agent.put(url.as_str()).send(part)
            })?;
            if !resp.status().is_success() {
                return Err(self.failure("cannot write a part of", rel, resp));
            }
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| {
                    self.bad_answer("cannot write a part of", rel, "no ETag in the answer")
                })?;
            etags.push(etag);
            self.uploaded
                .fetch_add(part.len() as u64, Ordering::Relaxed);
            self.parts.fetch_add(1, Ordering::Relaxed);
        }
        let complete = || {
            self.bucket.complete_multipart_upload(
                self.credentials.as_ref(),
                key,
                upload_id,
                etags.iter().map(String::as_str),
            )
        };
        let body = complete().body();
        let mut resp = self.request("cannot complete the upload of", rel, &|| {
            let url = complete().sign(SIGNED_FOR);
            self.agent.post(url.as_str()).send(body.as_bytes())
        })?;
        if !resp.status().is_success() {
            return Err(self.failure("cannot complete the upload of", rel, resp));
        }
        // S3 may answer 200 and an error body: only a result says it completed.
        let answer = self.read_answer("cannot complete the upload of", rel, &mut resp)?;
        if rusty_s3::actions::CompleteMultipartUploadResponse::parse(&answer).is_err() {
            let code = xml_field(&answer, "Code").unwrap_or_else(|| "no result".into());
            let message = xml_field(&answer, "Message").unwrap_or_default();
            return Err(self.bad_answer(
                "cannot complete the upload of",
                rel,
                format!("{code} {message}").trim(),
            ));
        }
        Ok(())
    }

    /// An answer's body as text, at most [`MAX_ERROR_BODY`] bytes.
    fn read_answer(
        &self,
        what: &'static str,
        rel: &str,
        resp: &mut Response,
    ) -> Result<String, StoreError> {
        resp.body_mut()
            .with_config()
            .limit(MAX_ERROR_BODY)
            .read_to_string()
            .map_err(|e| self.bad_answer(what, rel, e))
    }

    /// The error for an answer that is not what S3 sends.
    fn bad_answer(&self, what: &'static str, rel: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            what,
            path: self.shown(rel),
            source: std::io::Error::other(format!(
                "unexpected answer from the S3 endpoint {} for bucket {}: {e}",
                self.endpoint, self.url.bucket
            )),
        }
    }

    /// Deletes the object `rel` (S3 answers success for a key already gone).
    pub fn delete(&self, rel: &str) -> Result<(), StoreError> {
        let key = self.object_key(rel)?;
        let resp = self.request("cannot remove", rel, &|| {
            let url = self
                .bucket
                .delete_object(self.credentials.as_ref(), &key)
                .sign(SIGNED_FOR);
            self.agent.delete(url.as_str()).call()
        })?;
        if !resp.status().is_success() && resp.status() != 404 {
            return Err(self.failure("cannot remove", rel, resp));
        }
        Ok(())
    }

    /// Every key under `rel_dir/` (relative to the prefix; `""`: every key under the
    /// prefix), with its size.
    pub fn list(&self, rel_dir: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let dir_prefix = match rel_dir.trim_end_matches('/') {
            "" => self.url.prefix.clone(),
            dir => self.key(&format!("{dir}/")),
        };
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut resp = self.request("cannot list", rel_dir, &|| {
                let mut list = self.bucket.list_objects_v2(self.credentials.as_ref());
                list.with_prefix(dir_prefix.as_str());
                if let Some(t) = &token {
                    list.with_continuation_token(t.as_str());
                }
                self.agent.get(list.sign(SIGNED_FOR).as_str()).call()
            })?;
            if !resp.status().is_success() {
                return Err(self.failure("cannot list", rel_dir, resp));
            }
            let text = resp
                .body_mut()
                .with_config()
                .limit(MAX_LISTING)
                .read_to_string()
                .map_err(|e| StoreError {
                    what: "cannot list",
                    path: self.shown(rel_dir),
                    source: std::io::Error::other(e.to_string()),
                })?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text).map_err(|e| {
                StoreError {
                    what: "cannot list",
                    path: self.shown(rel_dir),
                    source: std::io::Error::other(format!("unreadable listing: {e}")),
                }
            })?;
            for object in page.contents {
                if let Some(rel) = object.key.strip_prefix(&self.url.prefix) {
                    found.push((rel.to_string(), object.size.unwrap_or(0)));
                }
            }
            match page.next_continuation_token {
                Some(t) if token.as_ref() != Some(&t) => token = Some(t),
                _ => break,
            }
        }
        Ok(found)
    }

    /// Sends the request `attempt` makes (signed anew each time), again after a pause
    /// when there is no answer or the answer is one S3 asks to retry (429, 500, 502,
    /// 503 `SlowDown`, 504), at most [`ATTEMPTS`] times. Every request deltapack makes
    /// is idempotent (whole-object reads and writes, parts, listings, deletes) but
    /// a multipart upload's start (a retried one leaves an unused upload, which
    /// costs nothing once the bucket's lifecycle rule for incomplete uploads runs)
    /// and its completion (a retry of one that succeeded is answered `NoSuchUpload`,
    /// reported: a rerun of the build finds the object there). A body that
    /// breaks off once it has begun is not retried here: the caller's error says so,
    /// and a rerun of the build starts over.
    fn request(
        &self,
        what: &'static str,
        rel: &str,
        attempt: &dyn Fn() -> Result<Response, ureq::Error>,
    ) -> Result<Response, StoreError> {
        let mut pause = RETRY_PAUSE;
        for _ in 1..ATTEMPTS {
            let result = attempt();
            let again = match &result {
                Err(_) => true,
                Ok(resp) => matches!(resp.status().as_u16(), 429 | 500 | 502 | 503 | 504),
            };
            if !again {
                return self.send(what, rel, result);
            }
            std::thread::sleep(pause);
            pause *= 2;
        }
        self.send(what, rel, attempt())
    }

    /// The answer, or an error naming the bucket and endpoint when there is none.
    fn send(
        &self,
        what: &'static str,
        rel: &str,
        result: Result<Response, ureq::Error>,
    ) -> Result<Response, StoreError> {
        result.map_err(|e| StoreError {
            what,
            path: self.shown(rel),
            source: std::io::Error::other(format!(
                "cannot reach the S3 endpoint {} for bucket {}: {e}",
                self.endpoint, self.url.bucket
            )),
        })
    }

    /// The error an unsuccessful answer stands for, in words: the bucket, the
    /// endpoint, and for refused credentials where they came from.
    fn failure(&self, what: &'static str, rel: &str, mut resp: Response) -> StoreError {
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ERROR_BODY)
            .read_to_string()
            .unwrap_or_default();
        let code = xml_field(&body, "Code").unwrap_or_default();
        let message = xml_field(&body, "Message").unwrap_or_default();
        let bucket = &self.url.bucket;
        let endpoint = &self.endpoint;
        let text = match code.as_str() {
            "NoSuchBucket" => format!("bucket {bucket:?} does not exist at {endpoint}"),
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AccessDenied"
            | "InvalidToken"
            | "ExpiredToken"
            | "InvalidSecurity" => format!(
                "{endpoint} refused access to bucket {bucket:?} ({code}{}) with the \
                 credentials from {}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / \
                 AWS_SESSION_TOKEN or AWS_PROFILE",
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                },
                self.credentials_from
            ),
            _ if status == 403 || status == 401 => format!(
                "{endpoint} refused access to bucket {bucket:?} (HTTP {status}) with the \
                 credentials from {}",
                self.credentials_from
            ),
            _ => format!(
                "{endpoint} answered HTTP {status} for bucket {bucket:?}{}",
                if code.is_empty() {
                    String::new()
                } else {
                    format!(" ({code}: {message})")
                }
            ),
        };
        StoreError {
            what,
            path: self.shown(rel),
            source: std::io::Error::other(S3Problem { code, text }),
        }
    }
}

/// An S3 error answer: its code and what it means here.
#[derive(Debug)]
struct S3Problem {
    code: String,
    text: String,
}

impl std::fmt::Display for S3Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for S3Problem {}

/// The text of the first `<name>...</name>` element of an S3 error body.
fn xml_field(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].trim().to_string())
}

/// The HTTP client: rustls with the ring provider (installed as the process default
/// once, unless one is already) and the system's CA certificates; no redirects (S3
/// does not redirect signed requests usefully), every status returned as an answer.
fn agent() -> ureq::Agent {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let roots: Vec<_> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
        .build();
    ureq::config::Config::builder()
        .user_agent(concat!("deltapack/", env!("CARGO_PKG_VERSION")))
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .build()
        .new_agent()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_parse_and_bad_ones_are_refused() {
        let u = S3Url::parse("s3://releases/app/stable/").unwrap();
        assert_eq!(u.bucket, "releases");
        assert_eq!(u.prefix, "app/stable/");
        assert_eq!(u.to_string(), "s3://releases/app/stable");
        let u = S3Url::parse("s3://releases").unwrap();
        assert_eq!(u.prefix, "");
        for bad in [
            "s3://",
            "s3://UPPER/x",
            "s3://ab/x",
            "s3://bucket/a//b",
            "s3://bucket/../x",
            "s3://bucket/./x",
            "http://bucket/x",
        ] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_a_url_would_resolve_away_are_never_sent() {
        let config = AwsConfig {
            // Nothing listens there: a request sent would fail with another error.
            endpoint: Some("http://127.0.0.1:9".into()),
            region: "us-east-1".into(),
            credentials: None,
            credentials_from: "nowhere".into(),
        };
        let store = S3Store::new(S3Url::parse("s3://bucket/p").unwrap(), &config).unwrap();
        for rel in ["", "patches/..", "patches/../manifest.toml", "./x", "a//b"] {
            let e = store.get(rel, 10).unwrap_err();
            assert_eq!(e.what, "refusing the object name", "{rel}: {e}");
            assert!(store.delete(rel).is_err(), "{rel}");
            assert!(store.put(rel, b"x").is_err(), "{rel}");
        }
    }

    #[test]
    fn error_bodies_give_their_code() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
                    <Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(xml_field(body, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(xml_field("<Error></Error>", "Code"), None);
    }
}
