//! Downloads against a real HTTP server on 127.0.0.1 that injects faults: every test
//! checks the bytes of the file it ends with, or that no file is left on failure.

#[path = "common/http.rs"]
mod http;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use deltaapply::fetch::{FetchError, Fetcher, Options, Progress, RedirectProblem};
use deltaapply::manifest::RelPath;
use deltaapply::{FileId, Sha256Digest, Source};
use http::{Fault, Logged, Resource, Server};

const PATH: &str = "/full/file.dpatch";

/// Quick retries; a read timeout long enough that a loaded machine never hits it
/// (the stall tests use [`stall_options`]).
fn options() -> Options {
    Options {
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(10),
        retries: 3,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        extra_root_certificates: vec![fs::read(tls_dir().join("ca.der")).unwrap()],
        ..Options::default()
    }
}

/// A short read timeout, for a server that stalls (a timeout on a slow machine only
/// costs a retry, which resumes).
fn stall_options() -> Options {
    Options {
        read_timeout: Duration::from_millis(500),
        ..options()
    }
}

fn tls_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tls")
}

/// 300 KiB of varied bytes (several read chunks).
fn content() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..300 << 10)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn id(bytes: &[u8]) -> FileId {
    FileId {
        size: bytes.len() as u64,
        sha256: Sha256Digest::of(bytes),
    }
}

fn rel() -> RelPath {
    RelPath::new(PATH.trim_start_matches('/')).unwrap()
}

fn source(urls: &[String]) -> Source {
    Source::parse_all(urls.iter().map(String::as_str)).unwrap()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn done_name(bytes: &[u8]) -> String {
    format!("{}.dpatch", Sha256Digest::of(bytes))
}

fn part_name(bytes: &[u8]) -> String {
    format!("{}.part", Sha256Digest::of(bytes))
}

/// Downloads `expected` from `urls` into `dest` with `options`; returns the result and
/// every progress report.
fn fetch(
    urls: &[String],
    expected: &[u8],
    dest: &Path,
    options: Options,
) -> (Result<deltaapply::Fetched, FetchError>, Vec<Progress>) {
    let mut seen = Vec::new();
    let result =
        Fetcher::new(options).fetch_file(&source(urls), &rel(), id(expected), dest, &mut |p| {
            seen.push(p)
        });
    (result, seen)
}

/// Asserts success: the returned file is `<sha>.dpatch` in `dest`, holds exactly
/// `body`, and is all that `dest` holds. Returns the bytes received.
fn assert_fetched(
    result: Result<deltaapply::Fetched, FetchError>,
    body: &[u8],
    dest: &Path,
) -> u64 {
    let fetched = result.unwrap_or_else(|e| panic!("download failed: {e:?}"));
    assert_eq!(fetched.path, dest.join(done_name(body)));
    assert!(fs::read(&fetched.path).unwrap() == body, "wrong bytes");
    assert_eq!(names(dest), [done_name(body)]);
    fetched.transferred
}

fn requests(server: &Server) -> Vec<(Option<String>, u16)> {
    server
        .log()
        .into_iter()
        .map(|l: Logged| (l.range, l.status))
        .collect()
}

fn etag(tag: &str) -> Option<String> {
    Some(format!("\"{tag}\""))
}

#[test]
fn plain_download() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    let dest = tempfile::tempdir().unwrap();
    let (result, seen) = fetch(&[server.url()], &body, dest.path(), options());
    assert_eq!(
        assert_fetched(result, &body, dest.path()),
        body.len() as u64
    );
    assert_eq!(requests(&server), [(None, 200)]);
    let total = body.len() as u64;
    assert_eq!(seen.last(), Some(&Progress { done: total, total }));
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
}

#[test]
fn connection_dropped_mid_body_is_resumed() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::DropAfter(100_000)]);
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    assert_eq!(
        assert_fetched(result, &body, dest.path()),
        body.len() as u64
    );
    let log = server.log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].range.as_deref(), Some("bytes=100000-"));
    assert_eq!(log[1].if_range, etag("v1"));
    assert_eq!(log[1].status, 206);
}

#[test]
fn interrupted_download_is_continued_by_a_later_call() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::DropAfter(120_000)]);
    let dest = tempfile::tempdir().unwrap();
    let no_retry = Options {
        retries: 0,
        ..options()
    };
    let (result, _) = fetch(&[server.url()], &body, dest.path(), no_retry.clone());
    match result {
        Err(FetchError::Interrupted { received, .. }) => assert_eq!(received, 120_000),
        other => panic!("expected an interrupted transfer, got {other:?}"),
    }
    // What a later run finds: the bytes so far and their validator, no final file.
    let part = dest.path().join(part_name(&body));
    assert!(fs::read(&part).unwrap() == body[..120_000]);
    assert_eq!(
        names(dest.path()),
        [part_name(&body), format!("{}.meta", part_name(&body))]
    );

    let (result, seen) = fetch(&[server.url()], &body, dest.path(), no_retry);
    let received = assert_fetched(result, &body, dest.path());
    assert_eq!(received, body.len() as u64 - 120_000);
    assert_eq!(seen.first().map(|p| p.done), Some(120_000));
    let log = server.log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].range.as_deref(), Some("bytes=120000-"));
    assert_eq!(log[1].if_range, etag("v1"));
}

#[test]
fn resource_changed_since_the_part_restarts_from_zero() {
    let body = content();
    let old: Vec<u8> = body.iter().map(|b| b ^ 0x5a).collect();
    let server = Server::start();
    // An earlier run got the start of another version of the file.
    server.put(PATH, Resource::new(&old, "old"));
    server.faults(PATH, [Fault::DropAfter(90_000)]);
    let dest = tempfile::tempdir().unwrap();
    let no_retry = Options {
        retries: 0,
        ..options()
    };
    let (result, _) = fetch(&[server.url()], &body, dest.path(), no_retry.clone());
    assert!(matches!(result, Err(FetchError::Interrupted { .. })));

    server.put(PATH, Resource::new(&body, "new"));
    let (result, _) = fetch(&[server.url()], &body, dest.path(), no_retry);
    assert_eq!(
        assert_fetched(result, &body, dest.path()),
        body.len() as u64
    );
    let log = server.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1].range.as_deref(), Some("bytes=90000-"));
    assert_eq!(log[1].if_range, etag("old"));
    assert_eq!(log[1].status, 200, "If-Range did not match: the whole file");
}

#[test]
fn last_modified_is_the_validator_without_a_strong_etag() {
    let body = content();
    let server = Server::start();
    let date = "Sat, 21 Nov 2026 10:00:00 GMT";
    server.put(
        PATH,
        Resource {
            body: body.clone(),
            etag: Some("W/\"weak\"".into()),
            last_modified: Some(date.into()),
        },
    );
    server.faults(PATH, [Fault::DropAfter(50_000)]);
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    assert_fetched(result, &body, dest.path());
    let log = server.log();
    assert_eq!(log[1].if_range.as_deref(), Some(date));
    assert_eq!(log[1].status, 206);
}

#[test]
fn server_ignoring_range_restarts_from_zero() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::DropAfter(70_000), Fault::IgnoreRange]);
    let dest = tempfile::tempdir().unwrap();
    let (result, seen) = fetch(&[server.url()], &body, dest.path(), options());
    let received = assert_fetched(result, &body, dest.path());
    assert_eq!(received, 70_000 + body.len() as u64);
    assert_eq!(
        requests(&server),
        [(None, 200), (Some("bytes=70000-".into()), 200)]
    );
    // Progress went back to 0 when the server sent the whole file again.
    assert!(seen.iter().any(|p| p.done == 70_000));
    assert!(
        seen.iter()
            .skip_while(|p| p.done < 70_000)
            .any(|p| p.done == 0)
    );
}

#[test]
fn a_range_answered_in_part_is_continued() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::DropAfter(50_000), Fault::ShortRange(100_000)]);
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    assert_eq!(
        assert_fetched(result, &body, dest.path()),
        body.len() as u64
    );
    assert_eq!(
        requests(&server),
        [
            (None, 200),
            (Some("bytes=50000-".into()), 206),
            (Some("bytes=150000-".into()), 206)
        ]
    );
}

#[test]
fn service_unavailable_is_retried() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::Status(503), Fault::Status(502)]);
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    assert_fetched(result, &body, dest.path());
    assert_eq!(requests(&server), [(None, 503), (None, 502), (None, 200)]);
}

#[test]
fn persistent_503_fails_after_the_retries_and_leaves_nothing() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, vec![Fault::Status(503); 4]);
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    match result {
        Err(FetchError::Status { status: 503, url }) => assert!(url.ends_with(PATH), "{url}"),
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    assert_eq!(server.log().len(), 4, "the first attempt and 3 retries");
    assert!(names(dest.path()).is_empty());
}

#[test]
fn not_found_is_not_retried() {
    let body = content();
    let server = Server::start();
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    let err = result.unwrap_err();
    assert!(
        matches!(err, FetchError::Status { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("manifest.toml"), "a hint: {err}");
    assert_eq!(server.log().len(), 1);
    assert!(names(dest.path()).is_empty());
}

#[test]
fn stalled_response_times_out_and_resumes() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::StallAfter(60_000)]);
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), stall_options());
    assert_fetched(result, &body, dest.path());
    let log = server.log();
    assert_eq!(log[1].range.as_deref(), Some("bytes=60000-"));
    assert_eq!(log.last().map(|l| l.status), Some(206));
}

#[test]
fn a_server_that_always_stalls_is_a_timeout() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::StallAfter(60_000), Fault::StallAfter(0)]);
    let dest = tempfile::tempdir().unwrap();
    let opts = Options {
        retries: 1,
        ..stall_options()
    };
    let (result, _) = fetch(&[server.url()], &body, dest.path(), opts);
    match result {
        Err(FetchError::Timeout { after, .. }) => assert_eq!(after, stall_options().read_timeout),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The bytes that did arrive stay for a later run; there is no final file.
    assert!(fs::read(dest.path().join(part_name(&body))).unwrap() == body[..60_000]);
    assert!(!dest.path().join(done_name(&body)).exists());
}

/// Plan case 41, slow retrieval: a server that sends a byte just often enough never
/// trips the read timeout, but falls below the minimum average speed, so the transfer
/// is cut off (and retried, within the retry budget); what arrived stays for a later run.
#[test]
fn a_trickling_server_is_cut_off_by_the_minimum_speed() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    let trickle = Fault::Trickle(50_000, Duration::from_millis(100));
    server.faults(PATH, [trickle.clone(), trickle]);
    let dest = tempfile::tempdir().unwrap();
    let opts = Options {
        retries: 1,
        min_speed: 1000,
        min_speed_time: Duration::from_secs(1),
        ..stall_options()
    };
    let (result, _) = fetch(&[server.url()], &body, dest.path(), opts);
    match result {
        Err(FetchError::TooSlow {
            received,
            min_speed,
            span,
            ..
        }) => {
            assert_eq!(min_speed, 1000);
            assert!(span >= Duration::from_secs(1), "{span:?}");
            assert!(
                (received as f64) < 1000.0 * span.as_secs_f64(),
                "{received}"
            );
        }
        other => panic!("expected the transfer to be cut off as too slow, got {other:?}"),
    }
    assert_eq!(server.log().len(), 2, "one retry");
    let part = fs::read(dest.path().join(part_name(&body))).unwrap();
    assert!(
        part.len() > 50_000 && part.len() < body.len(),
        "{}",
        part.len()
    );
    assert_eq!(part[..], body[..part.len()]);
    assert!(!dest.path().join(done_name(&body)).exists());
}

/// Plan case 47, a chunked body whose framing breaks: the transfer is an interrupted
/// one, never a complete file, and the retry brings the right bytes.
#[test]
fn a_broken_chunked_body_is_interrupted_and_resumed() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::BadChunked(70_000)]);
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    assert_fetched(result, &body, dest.path());
    let log = server.log();
    assert_eq!(log.len(), 2, "{log:?}");
    // The retry resumes from what was kept (ureq may drop the last bytes it read with
    // the broken size line) or starts over; never past the valid chunk.
    let resumed_at = log[1].range.as_deref().map_or(0, |r| {
        r.strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap()
    });
    assert!(resumed_at <= 70_000, "{log:?}");

    // Always broken: the retries run out and no file is taken as complete.
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::BadChunked(0), Fault::BadChunked(0)]);
    let dest = tempfile::tempdir().unwrap();
    let opts = Options {
        retries: 1,
        ..options()
    };
    let (result, _) = fetch(&[server.url()], &body, dest.path(), opts);
    assert!(
        matches!(result, Err(FetchError::Interrupted { .. })),
        "{result:?}"
    );
    assert!(!dest.path().join(done_name(&body)).exists());
}

#[test]
fn wrong_bytes_are_refused_and_deleted() {
    let body = content();
    let mut wrong = body.clone();
    wrong[200_000] ^= 1;
    let server = Server::start();
    server.put(PATH, Resource::new(&wrong, "v1"));
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    let err = result.unwrap_err();
    match &err {
        FetchError::HashMismatch {
            location,
            expected,
            got,
        } => {
            assert_eq!(*expected, Sha256Digest::of(&body));
            assert_eq!(*got, Sha256Digest::of(&wrong));
            assert!(location.ends_with(PATH));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&Sha256Digest::of(&body).to_string()),
        "{text}"
    );
    assert!(
        text.contains(&Sha256Digest::of(&wrong).to_string()),
        "{text}"
    );
    assert!(names(dest.path()).is_empty());
    assert_eq!(
        server.log().len(),
        1,
        "a clean download that mismatches is final"
    );
}

#[test]
fn wrong_bytes_after_a_resume_get_one_clean_download() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    let dest = tempfile::tempdir().unwrap();
    // An earlier run left bytes that do not belong to this file (another mirror's
    // broken copy, say) with no validator.
    let mut junk = body[..40_000].to_vec();
    junk[10] ^= 0xff;
    fs::write(dest.path().join(part_name(&body)), &junk).unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    assert_fetched(result, &body, dest.path());
    assert_eq!(
        requests(&server),
        [(Some("bytes=40000-".into()), 206), (None, 200)]
    );
}

#[test]
fn longer_body_than_declared_is_refused_unwritten() {
    let body = content();
    let mut longer = body.clone();
    longer.extend_from_slice(b"extra bytes");
    let server = Server::start();
    server.put(PATH, Resource::new(&longer, "v1"));
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    match result {
        Err(FetchError::TooLarge {
            limit, declared, ..
        }) => {
            assert_eq!(limit, body.len() as u64);
            assert_eq!(declared, Some(longer.len() as u64));
        }
        other => panic!("expected too large, got {other:?}"),
    }
    assert!(names(dest.path()).is_empty());

    // Without a Content-Length the body is read up to one byte past the limit.
    server.faults(PATH, [Fault::NoLength]);
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    match result {
        Err(FetchError::TooLarge { declared, .. }) => assert_eq!(declared, None),
        other => panic!("expected too large, got {other:?}"),
    }
    assert!(names(dest.path()).is_empty());
}

#[test]
fn shorter_file_than_declared_is_refused() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body[..1000], "v1"));
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    match result {
        Err(FetchError::SizeMismatch { expected, got, .. }) => {
            assert_eq!((expected, got), (body.len() as u64, 1000));
        }
        other => panic!("expected a size mismatch, got {other:?}"),
    }
    assert!(names(dest.path()).is_empty());
}

#[test]
fn body_without_length_is_read_to_its_end() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::NoLength]);
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    assert_fetched(result, &body, dest.path());
}

#[test]
fn https_with_a_private_ca() {
    let body = content();
    let server = Server::start_tls();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::DropAfter(80_000)]);
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    assert_fetched(result, &body, dest.path());
    assert_eq!(
        requests(&server),
        [(None, 200), (Some("bytes=80000-".into()), 206)]
    );

    // Without the CA the server is not trusted, and nothing is written.
    let dest = tempfile::tempdir().unwrap();
    let untrusting = Options {
        extra_root_certificates: vec![],
        retries: 0,
        ..options()
    };
    let (result, _) = fetch(&[server.url()], &body, dest.path(), untrusting);
    assert!(matches!(result, Err(FetchError::Tls { .. })), "{result:?}");
    assert!(names(dest.path()).is_empty());
}

#[test]
fn redirect_from_https_to_http_is_refused() {
    let body = content();
    let plain = Server::start();
    plain.put(PATH, Resource::new(&body, "v1"));
    let tls = Server::start_tls();
    let to = format!("{}{}", plain.url(), PATH.trim_start_matches('/'));
    tls.faults(PATH, [Fault::Redirect(to.clone())]);
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[tls.url()], &body, dest.path(), options());
    match result {
        Err(FetchError::RedirectRefused {
            from,
            to: refused,
            problem,
        }) => {
            assert_eq!(problem, RedirectProblem::Downgrade);
            assert!(from.starts_with("https://127.0.0.1:"), "{from}");
            assert_eq!(refused, to);
        }
        other => panic!("expected a refused redirect, got {other:?}"),
    }
    assert!(plain.log().is_empty(), "the http server was never asked");
    assert_eq!(tls.log().len(), 1, "a refused redirect is not retried");
    assert!(names(dest.path()).is_empty());
}

#[test]
fn redirects_within_http_and_to_https_are_followed() {
    let body = content();
    let tls = Server::start_tls();
    tls.put("/elsewhere.dpatch", Resource::new(&body, "v1"));
    let plain = Server::start();
    plain.faults(
        PATH,
        [Fault::Redirect(format!("{}elsewhere.dpatch", tls.url()))],
    );
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[plain.url()], &body, dest.path(), options());
    assert_fetched(result, &body, dest.path());
    assert_eq!(requests(&plain), [(None, 302)]);
    assert_eq!(requests(&tls), [(None, 200)]);

    // A loop of redirects ends after max_redirects.
    let dest = tempfile::tempdir().unwrap();
    plain.faults(
        PATH,
        vec![Fault::Redirect(format!("{}{}", plain.url(), &PATH[1..])); 10],
    );
    let opts = Options {
        max_redirects: 3,
        ..options()
    };
    let (result, _) = fetch(&[plain.url()], &body, dest.path(), opts);
    assert!(
        matches!(
            result,
            Err(FetchError::RedirectRefused {
                problem: RedirectProblem::TooMany,
                ..
            })
        ),
        "{result:?}"
    );
    assert!(names(dest.path()).is_empty());
}

#[test]
fn plain_http_can_be_forbidden() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    let dest = tempfile::tempdir().unwrap();
    let opts = Options {
        allow_http: false,
        ..options()
    };
    let (result, _) = fetch(&[server.url()], &body, dest.path(), opts);
    assert!(
        matches!(result, Err(FetchError::HttpRefused { .. })),
        "{result:?}"
    );
    assert!(server.log().is_empty());
    assert!(names(dest.path()).is_empty());
}

/// A URL on 127.0.0.1 where nothing listens, for as long as the value lives: the port
/// is the local end of a connection this holds open, so no server of a test running
/// in parallel can be given it.
struct Dead {
    url: String,
    _listener: TcpListener,
    _client: std::net::TcpStream,
}

fn dead() -> Dead {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    Dead {
        url: format!("http://{}/", client.local_addr().unwrap()),
        _listener: listener,
        _client: client,
    }
}

#[test]
fn a_dead_mirror_then_a_good_one() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    let dead = dead();
    let dest = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    let fetched = Fetcher::new(options())
        .fetch_file(
            &source(&[dead.url.clone(), server.url()]),
            &rel(),
            id(&body),
            dest.path(),
            &mut |p| seen.push(p),
        )
        .unwrap();
    assert_eq!(fetched.from, format!("{}{}", server.url(), &PATH[1..]));
    assert_fetched(Ok(fetched), &body, dest.path());
    assert_eq!(requests(&server), [(None, 200)]);
}

#[test]
fn every_mirror_failing_lists_each_reason() {
    let body = content();
    let server = Server::start();
    let dead_port = dead();
    let dead = &dead_port.url;
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[dead.clone(), server.url()], &body, dest.path(), options());
    let err = result.unwrap_err();
    match &err {
        FetchError::AllMirrorsFailed { rel: r, failures } => {
            assert_eq!(*r, rel());
            assert_eq!(failures.len(), 2);
            assert_eq!(failures[0].mirror, *dead);
            assert!(matches!(failures[0].error, FetchError::Connect { .. }));
            assert!(matches!(
                failures[1].error,
                FetchError::Status { status: 404, .. }
            ));
        }
        other => panic!("expected every mirror to fail, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(dead.as_str()) && text.contains("HTTP 404"),
        "{text}"
    );
    assert!(names(dest.path()).is_empty());
}

#[test]
fn next_mirror_resumes_the_same_part() {
    let body = content();
    let first = Server::start();
    let second = Server::start();
    // Two servers of one CDN: same file, same ETag.
    first.put(PATH, Resource::new(&body, "same"));
    second.put(PATH, Resource::new(&body, "same"));
    first.faults(PATH, [Fault::DropAfter(100_000), Fault::Status(500)]);
    let dest = tempfile::tempdir().unwrap();
    let opts = Options {
        retries: 1,
        ..options()
    };
    let (result, _) = fetch(&[first.url(), second.url()], &body, dest.path(), opts);
    let received = assert_fetched(result, &body, dest.path());
    assert_eq!(received, body.len() as u64);
    assert_eq!(
        requests(&first),
        [(None, 200), (Some("bytes=100000-".into()), 500)]
    );
    assert_eq!(requests(&second), [(Some("bytes=100000-".into()), 206)]);
}

#[test]
fn a_complete_earlier_download_is_reused() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    let dest = tempfile::tempdir().unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    assert_fetched(result, &body, dest.path());
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    assert_eq!(assert_fetched(result, &body, dest.path()), 0);
    assert_eq!(server.log().len(), 1);

    // A corrupt one is replaced.
    let done = dest.path().join(done_name(&body));
    let mut bad = body.clone();
    bad[0] ^= 1;
    fs::write(&done, &bad).unwrap();
    let (result, _) = fetch(&[server.url()], &body, dest.path(), options());
    assert_eq!(
        assert_fetched(result, &body, dest.path()),
        body.len() as u64
    );
}

#[test]
fn small_files_are_capped() {
    let server = Server::start();
    server.put("/manifest.toml", Resource::new(&[b'x'; 100], "m"));
    let fetcher = Fetcher::new(options());
    let src = source(&[server.url()]);
    let manifest = RelPath::new("manifest.toml").unwrap();
    assert_eq!(
        fetcher.fetch_small(&src, &manifest, 100).unwrap(),
        [b'x'; 100]
    );
    match fetcher.fetch_small(&src, &manifest, 99) {
        Err(FetchError::TooLarge {
            limit: 99,
            declared: Some(100),
            ..
        }) => {}
        other => panic!("expected too large, got {other:?}"),
    }
    server.faults("/manifest.toml", [Fault::NoLength]);
    match fetcher.fetch_small(&src, &manifest, 99) {
        Err(FetchError::TooLarge {
            limit: 99,
            declared: None,
            ..
        }) => {}
        other => panic!("expected too large, got {other:?}"),
    }
    server.faults("/manifest.toml", [Fault::Status(503)]);
    assert_eq!(
        fetcher.fetch_small(&src, &manifest, 100).unwrap().len(),
        100
    );
}

/// A publish directory with a manifest and one full image.
fn publish_dir(body: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("full")).unwrap();
    fs::write(dir.path().join("full/file.dpatch"), body).unwrap();
    fs::write(dir.path().join("manifest.toml"), b"format = 1\n").unwrap();
    dir
}

#[test]
fn directory_and_file_url_sources_are_read_in_place() {
    let body = content();
    let publish = publish_dir(&body);
    let url = format!("file://{}", publish.path().display()).replace(' ', "%20");
    for given in [publish.path().display().to_string(), url] {
        let src = Source::parse(&given).unwrap();
        let fetcher = Fetcher::new(options());
        let manifest = RelPath::new("manifest.toml").unwrap();
        assert_eq!(
            fetcher.fetch_small(&src, &manifest, 1 << 20).unwrap(),
            b"format = 1\n"
        );
        assert!(matches!(
            fetcher.fetch_small(&src, &manifest, 5),
            Err(FetchError::TooLarge { .. })
        ));
        let dest = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        let fetched = fetcher
            .fetch_file(&src, &rel(), id(&body), dest.path(), &mut |p| seen.push(p))
            .unwrap();
        assert_eq!(fetched.path, publish.path().join("full/file.dpatch"));
        assert!(fs::read(&fetched.path).unwrap() == body);
        assert_eq!(fetched.transferred, 0);
        let total = body.len() as u64;
        assert_eq!(seen.last(), Some(&Progress { done: total, total }));
        assert!(names(dest.path()).is_empty(), "nothing is copied");

        let mut other = body.clone();
        other[5] ^= 1;
        let err = fetcher
            .fetch_file(&src, &rel(), id(&other), dest.path(), &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, FetchError::HashMismatch { .. }), "{err:?}");
        assert!(names(dest.path()).is_empty());
        assert!(fs::read(publish.path().join("full/file.dpatch")).unwrap() == body);
    }
}

#[test]
fn a_missing_local_mirror_then_http() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    let empty = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let urls = [empty.path().display().to_string(), server.url()];
    let (result, _) = fetch(&urls, &body, dest.path(), options());
    assert_fetched(result, &body, dest.path());
}

#[test]
fn a_local_mirror_after_a_broken_download_leaves_no_part() {
    let body = content();
    let server = Server::start();
    server.put(PATH, Resource::new(&body, "v1"));
    server.faults(PATH, [Fault::DropAfter(50_000)]);
    let publish = publish_dir(&body);
    let dest = tempfile::tempdir().unwrap();
    let urls = [server.url(), publish.path().display().to_string()];
    let opts = Options {
        retries: 0,
        ..options()
    };
    let (result, _) = fetch(&urls, &body, dest.path(), opts);
    let fetched = result.unwrap();
    assert_eq!(fetched.path, publish.path().join("full/file.dpatch"));
    assert_eq!(fetched.transferred, 50_000);
    assert!(fs::read(&fetched.path).unwrap() == body);
    assert!(names(dest.path()).is_empty(), "{:?}", names(dest.path()));
}
