//! The proxies the environment names, chosen per URL by the rules curl follows (and
//! reqwest, which the applier used before): `HTTP_PROXY` for `http://` URLs,
//! `HTTPS_PROXY` for `https://` ones, `ALL_PROXY` for either when its own is not set,
//! each also in lower case; `NO_PROXY` lists the hosts reached directly. None of them is
//! used in a CGI program (`REQUEST_METHOD` set), where `HTTP_PROXY` could come from a
//! request header.

use std::net::IpAddr;

use url::Url;

/// The proxy URLs the environment gives, and the hosts it exempts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct EnvProxies {
    /// The proxy for `http://` URLs.
    pub(super) http: Option<ureq::Proxy>,
    /// The proxy for `https://` URLs.
    pub(super) https: Option<ureq::Proxy>,
    no_proxy: NoProxy,
}

/// Which way a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Direct,
    HttpProxy,
    HttpsProxy,
}

impl EnvProxies {
    /// What the process environment says.
    pub(super) fn from_env() -> EnvProxies {
        EnvProxies::from_vars(|name| std::env::var(name).ok())
    }

    /// What the variables `var` returns say.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> EnvProxies {
        if var("REQUEST_METHOD").is_some() {
            return EnvProxies::default();
        }
        // The first of the names that is set counts, even if it is empty or invalid.
        let first = |names: [&str; 2]| names.iter().find_map(|n| var(n)).and_then(parse);
        let all = first(["ALL_PROXY", "all_proxy"]);
        EnvProxies {
            http: first(["HTTP_PROXY", "http_proxy"]).or_else(|| all.clone()),
            https: first(["HTTPS_PROXY", "https_proxy"]).or(all),
            no_proxy: NoProxy::parse(
                &["NO_PROXY", "no_proxy"]
                    .iter()
                    .find_map(|n| var(n))
                    .unwrap_or_default(),
            ),
        }
    }

    /// The way to `url`.
    pub(super) fn route(&self, url: &Url) -> Route {
        let Some(host) = url.host_str() else {
            return Route::Direct;
        };
        if self.no_proxy.matches(host) {
            return Route::Direct;
        }
        match url.scheme() {
            "http" if self.http.is_some() => Route::HttpProxy,
            "https" if self.https.is_some() => Route::HttpsProxy,
            _ => Route::Direct,
        }
    }
}

/// A proxy URL: `http://`, `https://`, `socks4://`, `socks4a://`, `socks5://`,
/// `socks5h://` or no scheme (http), with a host; anything else is no proxy.
fn parse(value: String) -> Option<ureq::Proxy> {
    let scheme = value.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let known = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"];
    if scheme.is_some_and(|s| !known.contains(&s.as_str())) {
        return None;
    }
    ureq::Proxy::new(&value).ok()
}

/// `NO_PROXY`: comma-separated IP addresses, networks (`10.0.0.0/8`) and domain names
/// (`example.com` and `.example.com` both cover the name and every name below it); `*`
/// covers every domain name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NoProxy {
    /// Networks as (address, prefix length); an address alone has the full length.
    networks: Vec<(IpAddr, u8)>,
    domains: Vec<String>,
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut no = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match network(entry) {
                Some(net) => no.networks.push(net),
                None => no.domains.push(entry.to_string()),
            }
        }
        no
    }

    /// Whether `host` (a name, an IPv4 address or a bracketed IPv6 address) is exempt.
    fn matches(&self, host: &str) -> bool {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => self
                .networks
                .iter()
                .any(|&(net, len)| contains(net, len, ip)),
            Err(_) => self.domains.iter().any(|d| domain_matches(d, host)),
        }
    }
}

/// `ADDRESS` or `ADDRESS/LENGTH`.
fn network(entry: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match entry.split_once('/') {
        Some((addr, len)) => (addr.parse::<IpAddr>().ok()?, Some(len)),
        None => (entry.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(len) if len.bytes().all(|b| b.is_ascii_digit()) => len.parse::<u8>().ok()?,
        Some(_) => return None,
        None => max,
    };
    (len <= max).then_some((addr, len))
}

fn contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    let (net, ip, bits): (u128, u128, u8) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n).into(), u32::from(i).into(), 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
        _ => return false,
    };
    // The top `len` of the `bits` low bits.
    let mask = match len {
        0 => 0,
        len => (u128::MAX << (bits - len)) & (u128::MAX >> (128 - bits)),
    };
    (net ^ ip) & mask == 0
}

/// Whether NO_PROXY's domain entry `entry` covers `host` (ASCII case ignored).
fn domain_matches(entry: &str, host: &str) -> bool {
    if entry == "*" {
        return true;
    }
    let name = entry.strip_prefix('.').unwrap_or(entry);
    if name.eq_ignore_ascii_case(host) {
        return true;
    }
    // A name below the entry's: `host` ends with `.name`.
    host.len() > name.len()
        && host
            .get(host.len() - name.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(name))
        && host.as_bytes()[host.len() - name.len() - 1] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> EnvProxies {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvProxies::from_vars(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    fn route(proxies: &EnvProxies, url: &str) -> Route {
        proxies.route(&Url::parse(url).unwrap())
    }

    #[test]
    fn each_scheme_has_its_variable() {
        let p = env(&[("HTTP_PROXY", "http://proxy:3128")]);
        assert_eq!(route(&p, "http://a.example/"), Route::HttpProxy);
        assert_eq!(route(&p, "https://a.example/"), Route::Direct);
        let p = env(&[("https_proxy", "proxy:3128")]);
        assert_eq!(route(&p, "http://a.example/"), Route::Direct);
        assert_eq!(route(&p, "https://a.example/"), Route::HttpsProxy);
        let p = env(&[("ALL_PROXY", "http://all:1"), ("HTTPS_PROXY", "http://s:2")]);
        assert_eq!(route(&p, "http://a.example/"), Route::HttpProxy);
        assert_eq!(
            p.http.as_ref().map(|p| p.host().to_string()),
            Some("all".into())
        );
        assert_eq!(
            p.https.as_ref().map(|p| p.host().to_string()),
            Some("s".into())
        );
        // The upper-case name wins even when empty; an unusable value is no proxy.
        let p = env(&[("HTTP_PROXY", ""), ("http_proxy", "http://p:1")]);
        assert_eq!(route(&p, "http://a.example/"), Route::Direct);
        let p = env(&[("HTTP_PROXY", "ftp://p:1")]);
        assert_eq!(route(&p, "http://a.example/"), Route::Direct);
        // Not in a CGI program.
        let p = env(&[("HTTP_PROXY", "http://p:1"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(p, EnvProxies::default());
        assert_eq!(env(&[]), EnvProxies::default());
    }

    #[test]
    fn no_proxy_entries() {
        let p = env(&[
            ("ALL_PROXY", "http://p:1"),
            (
                "NO_PROXY",
                " example.com, .internal ,10.0.0.0/8,::1, 192.168.1.7, Bad/33",
            ),
        ]);
        for direct in [
            "http://example.com/",
            "http://www.EXAMPLE.com/",
            "https://internal/",
            "https://a.b.internal/",
            "http://10.200.3.4/",
            "http://[::1]:8080/",
            "http://192.168.1.7/",
        ] {
            assert_eq!(route(&p, direct), Route::Direct, "{direct}");
        }
        for proxied in [
            "http://notexample.com/",
            "http://example.com.evil/",
            "http://11.0.0.1/",
            "http://192.168.1.8/",
            "http://[::2]/",
        ] {
            assert_eq!(route(&p, proxied), Route::HttpProxy, "{proxied}");
        }
        let p = env(&[("ALL_PROXY", "http://p:1"), ("no_proxy", "*")]);
        assert_eq!(route(&p, "https://any.example/"), Route::Direct);
        // `*` covers names only, as in curl's reading that reqwest followed.
        assert_eq!(route(&p, "https://127.0.0.1/"), Route::HttpsProxy);
    }

    #[test]
    fn networks() {
        assert_eq!(
            network("10.0.0.0/8"),
            Some(("10.0.0.0".parse().unwrap(), 8))
        );
        assert_eq!(network("::1"), Some(("::1".parse().unwrap(), 128)));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "example.com",
            "::1/129",
        ] {
            assert_eq!(network(bad), None, "{bad}");
        }
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(contains(ip("0.0.0.0"), 0, ip("255.1.2.3")));
        assert!(contains(ip("::"), 0, ip("ff::1")));
        assert!(contains(ip("fd00::"), 8, ip("fdff::1")));
        assert!(!contains(ip("fd00::"), 8, ip("fe00::1")));
        assert!(contains(ip("1.2.3.4"), 32, ip("1.2.3.4")));
        assert!(!contains(ip("1.2.3.4"), 32, ip("1.2.3.5")));
        assert!(!contains(ip("0.0.0.0"), 0, ip("::1")));
    }
}
