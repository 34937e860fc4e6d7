//! Where a publish directory is read from: an `https://` or `http://` base URL, a
//! `file://` URL, or a local directory (a mounted USB stick, a network share), and the
//! mirrors to try in turn when one fails. Every mirror holds the same files under the
//! same relative paths ([`RelPath`]), so a file can come from any of them; its size and
//! SHA-256 come from the signed manifest, never from the mirror.

use std::fmt;
use std::path::PathBuf;

use deltaapply_format::manifest::RelPath;

/// One place a publish directory can be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// An `http://` or `https://` URL of the directory holding `manifest.toml`. Its path
    /// always ends in `/`, so relative paths resolve below it.
    #[cfg(feature = "http")]
    Http(url::Url),
    /// A local directory, given as a path or a `file://` URL.
    Dir(PathBuf),
}

/// A publish directory and its mirrors, tried in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    mirrors: Vec<Mirror>,
}

/// Where one file of a publish directory is, on one mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A URL to download.
    #[cfg(feature = "http")]
    Url(url::Url),
    /// A local file to read in place.
    Path(PathBuf),
}

/// Why a source could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    /// No source was given.
    #[error("no source given: pass a publish directory's URL or path")]
    Empty,
    /// The text is not a usable URL or path.
    #[error("source {given:?}: {problem}")]
    Invalid {
        /// What was given.
        given: String,
        /// What is wrong, and what to give instead.
        problem: String,
    },
    /// An `http://` or `https://` source, in a build without HTTP support.
    #[error(
        "source {given:?} is a web address, but this deltaapply was built without HTTP support \
         (the `http` feature); give a local directory or a file:// URL"
    )]
    HttpNotBuilt {
        /// What was given.
        given: String,
    },
}

impl Mirror {
    /// Parses `https://…`, `http://…`, `file://…` or a directory path. A URL may not
    /// carry a query or fragment (relative paths are appended to it); a `file://` URL
    /// must name this machine (no host, or `localhost`). Nothing is checked on disk or
    /// on the network: a USB stick may be mounted only later.
    pub fn parse(given: &str) -> Result<Mirror, SourceError> {
        let invalid = |problem: &str| SourceError::Invalid {
            given: given.to_string(),
            problem: problem.to_string(),
        };
        if given.trim().is_empty() {
            return Err(SourceError::Empty);
        }
        match scheme(given) {
            Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
                parse_http(given)
            }
            Some(s) if s.eq_ignore_ascii_case("file") => file_url_path(given)
                .map(Mirror::Dir)
                .map_err(|p| invalid(&p)),
            Some(s) => Err(invalid(&format!(
                "the {s}:// scheme is not supported; use https://, http://, file:// or a directory path"
            ))),
            None => Ok(Mirror::Dir(PathBuf::from(given))),
        }
    }

    /// Where `rel` is on this mirror.
    pub fn locate(&self, rel: &RelPath) -> Location {
        match self {
            #[cfg(feature = "http")]
            Mirror::Http(base) => {
                let mut url = base.clone();
                // RelPath allows only letters, digits, '.', '_', '-' and '/': nothing
                // that needs escaping or could climb above the base.
                url.set_path(&format!("{}{}", base.path(), rel.as_str()));
                Location::Url(url)
            }
            Mirror::Dir(dir) => Location::Path(rel.under(dir)),
        }
    }
}

impl fmt::Display for Mirror {
    /// The URL (with any password hidden) or the directory path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "http")]
            Mirror::Http(url) => f.write_str(&redacted(url)),
            Mirror::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

impl fmt::Display for Location {
    /// The URL (with any password hidden) or the path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "http")]
            Location::Url(url) => f.write_str(&redacted(url)),
            Location::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Source {
    /// A source with one mirror, parsed as [`Mirror::parse`] does.
    pub fn parse(given: &str) -> Result<Source, SourceError> {
        Ok(Source {
            mirrors: vec![Mirror::parse(given)?],
        })
    }

    /// A source whose mirrors are tried in the order given.
    pub fn parse_all<'a>(given: impl IntoIterator<Item = &'a str>) -> Result<Source, SourceError> {
        Source::new(
            given
                .into_iter()
                .map(Mirror::parse)
                .collect::<Result<_, _>>()?,
        )
    }

    /// A source from mirrors already parsed; at least one.
    pub fn new(mirrors: Vec<Mirror>) -> Result<Source, SourceError> {
        if mirrors.is_empty() {
            return Err(SourceError::Empty);
        }
        Ok(Source { mirrors })
    }

    /// The mirrors, in the order they are tried.
    pub fn mirrors(&self) -> &[Mirror] {
        &self.mirrors
    }
}

impl fmt::Display for Source {
    /// The mirrors, separated by commas.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.mirrors.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

/// The scheme of `s` if it starts like `scheme://` (RFC 3986 scheme characters), so
/// that a Windows path such as `C:\dir` is not mistaken for a URL.
fn scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    (first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))).then_some(scheme)
}

#[cfg(feature = "http")]
fn parse_http(given: &str) -> Result<Mirror, SourceError> {
    let invalid = |problem: String| SourceError::Invalid {
        given: given.to_string(),
        problem,
    };
    let mut url = url::Url::parse(given).map_err(|e| {
        // The applier is built without Unicode tables for international domain names
        // (the `cli` feature pins idna_adapter 1.0; the workspace Cargo.toml says why).
        let hint = if given.is_ascii() {
            ""
        } else {
            " (write a non-ASCII host name in its ASCII form, xn--…)"
        };
        invalid(format!("not a URL: {e}{hint}"))
    })?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "a source URL may not have a query (?…) or fragment (#…): give the directory \
             that holds manifest.toml"
                .into(),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(Mirror::Http(url))
}

#[cfg(not(feature = "http"))]
fn parse_http(given: &str) -> Result<Mirror, SourceError> {
    Err(SourceError::HttpNotBuilt {
        given: given.to_string(),
    })
}

/// `url` as text with its password, if any, replaced by `***`, for messages and logs.
#[cfg(feature = "http")]
pub(crate) fn redacted(url: &url::Url) -> String {
    if url.password().is_some() {
        let mut shown = url.clone();
        // Cannot fail: the URL has a host, since it has a password.
        let _ = shown.set_password(Some("***"));
        shown.to_string()
    } else {
        url.to_string()
    }
}

/// The local path a `file://` URL names (RFC 8089): `file:///abs/path` or
/// `file://localhost/abs/path`, percent-escapes decoded.
fn file_url_path(given: &str) -> Result<PathBuf, String> {
    let rest = &given["file://".len()..];
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => return Err("a file:// URL needs an absolute path, e.g. file:///media/usb".into()),
    };
    if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
        return Err(format!(
            "file:// URLs on another host ({host}) are not supported; mount the share and give its path"
        ));
    }
    if path.contains(['?', '#']) {
        return Err("a file:// URL may not have a query (?…) or fragment (#…)".into());
    }
    let bytes = percent_decode(path).ok_or("a '%' is not followed by two hex digits")?;
    if bytes.contains(&0) {
        return Err("the path contains a NUL byte".into());
    }
    local_path(bytes)
}

#[cfg(unix)]
fn local_path(bytes: Vec<u8>) -> Result<PathBuf, String> {
    use std::os::unix::ffi::OsStringExt;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn local_path(bytes: Vec<u8>) -> Result<PathBuf, String> {
    let text = String::from_utf8(bytes).map_err(|_| "the path is not UTF-8".to_string())?;
    // `file:///C:/dir` names `C:/dir`.
    let b = text.as_bytes();
    let drive = b.len() >= 3 && b[0] == b'/' && b[1].is_ascii_alphabetic() && b[2] == b':';
    Ok(PathBuf::from(if drive { &text[1..] } else { &text[..] }))
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

pub use deltaapply_apply::read::read_capped;

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn directories_and_file_urls() {
        assert_eq!(
            Mirror::parse("/media/usb/publish").unwrap(),
            Mirror::Dir("/media/usb/publish".into())
        );
        assert_eq!(
            Mirror::parse("relative/dir").unwrap(),
            Mirror::Dir("relative/dir".into())
        );
        #[cfg(unix)]
        {
            assert_eq!(
                Mirror::parse("file:///media/usb%20stick/pub").unwrap(),
                Mirror::Dir("/media/usb stick/pub".into())
            );
            assert_eq!(
                Mirror::parse("FILE://localhost/srv").unwrap(),
                Mirror::Dir("/srv".into())
            );
        }
        let m = Mirror::parse("/srv/pub").unwrap();
        assert_eq!(
            m.locate(&rel("patches/ab.dpatch")),
            Location::Path(PathBuf::from("/srv/pub").join("patches").join("ab.dpatch"))
        );
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "  ",
            "ftp://example.com/pub",
            "file://server/share",
            "file://",
            "file:///a%2",
            "file:///a%zz",
            "file:///a%00b",
            "file:///a?x=1",
        ] {
            assert!(Mirror::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(Source::new(vec![]), Err(SourceError::Empty));
    }

    /// The pin of idna_adapter to 1.0 (no Unicode tables, 123 KB of the applier): a
    /// Unicode host name is refused with a hint, its ASCII form works. If this fails,
    /// the pin was lost and the applier grew.
    #[cfg(feature = "http")]
    #[test]
    fn international_host_names() {
        let err = Mirror::parse("https://bücher.example/pub").unwrap_err();
        assert!(err.to_string().contains("xn--"), "{err}");
        let m = Mirror::parse("https://xn--bcher-kva.example/pub").unwrap();
        assert_eq!(m.to_string(), "https://xn--bcher-kva.example/pub/");
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_urls() {
        let m = Mirror::parse("https://updates.example.com/app/stable").unwrap();
        assert_eq!(m.to_string(), "https://updates.example.com/app/stable/");
        assert_eq!(
            m.locate(&rel("full/x.dpatch")).to_string(),
            "https://updates.example.com/app/stable/full/x.dpatch"
        );
        let m = Mirror::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            m.locate(&rel("manifest.toml")).to_string(),
            "http://127.0.0.1:8080/manifest.toml"
        );
        let m = Mirror::parse("https://user:secret@example.com/pub/").unwrap();
        assert_eq!(m.to_string(), "https://user:***@example.com/pub/");
        assert!(!m.locate(&rel("a")).to_string().contains("secret"));
        for bad in [
            "https://example.com/pub?x=1",
            "https://example.com/pub#top",
            "https://",
            "http://exa mple.com/",
        ] {
            assert!(Mirror::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let s = Source::parse_all(["http://127.0.0.1:1/", "/srv/pub"]).unwrap();
        assert_eq!(s.mirrors().len(), 2);
        assert_eq!(s.to_string(), "http://127.0.0.1:1/, /srv/pub");
    }

    #[cfg(not(feature = "http"))]
    #[test]
    fn http_urls_need_the_feature() {
        assert!(matches!(
            Mirror::parse("https://example.com/pub"),
            Err(SourceError::HttpNotBuilt { .. })
        ));
    }
}
