//! Name resolution for scrapes: an address that is already an IP literal needs none.
//!
//! ureq resolves the target before every request, pooled connection or not, and with a
//! timeout set its [`DefaultResolver`] runs each lookup on a new thread so it can give up
//! on time. For `http://10.0.0.7:9400` that is a thread spawned and joined per scrape
//! for nothing: 667 a second at 10,000 nodes every 15 s, ~6 % of the control plane's CPU
//! at 200 targets every second in `perf` (step 7, 2026-11-30). [`LiteralFirst`] answers IP
//! literals (v4 and bracketed v6, with the scheme's default port when none is given)
//! without a lookup and hands every other host to ureq's resolver as before.
//!
//! ureq marks its resolver interface "unversioned" (outside semver); `Cargo.lock` pins the
//! version, and the tests below catch a change of behaviour.

use std::net::{IpAddr, SocketAddr};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// IP literals directly, host names through ureq's [`DefaultResolver`].
#[derive(Debug, Default)]
pub struct LiteralFirst(DefaultResolver);

impl LiteralFirst {
    /// The socket address when `uri`'s host is an IP literal; `None` for a host name (or a
    /// URI without a host or with an unknown scheme and no port).
    fn literal(uri: &Uri) -> Option<SocketAddr> {
        let host = uri.host()?;
        // `Uri::host` keeps an IPv6 literal's brackets.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip: IpAddr = host.parse().ok()?;
        let port = match uri.port_u16() {
            Some(p) => p,
            None => match uri.scheme_str()? {
                "http" => 80,
                "https" => 443,
                _ => return None,
            },
        };
        Some(SocketAddr::new(ip, port))
    }
}

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match Self::literal(uri) {
            Some(addr) => {
                let mut out = self.empty();
                out.push(addr);
                Ok(out)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Option<SocketAddr> {
        LiteralFirst::literal(&s.parse::<Uri>().unwrap())
    }

    #[test]
    fn ip_literals_resolve_without_a_lookup_and_names_do_not() {
        assert_eq!(
            lit("http://10.0.0.7:9400/metrics"),
            Some("10.0.0.7:9400".parse().unwrap())
        );
        assert_eq!(
            lit("http://10.0.0.7/metrics"),
            Some("10.0.0.7:80".parse().unwrap())
        );
        assert_eq!(
            lit("https://10.0.0.7/metrics"),
            Some("10.0.0.7:443".parse().unwrap())
        );
        assert_eq!(
            lit("http://[::1]:9400/metrics"),
            Some("[::1]:9400".parse().unwrap())
        );
        assert_eq!(lit("http://node-7.cluster:9400/metrics"), None);
        assert_eq!(
            lit("http://localhost:9400/metrics"),
            None,
            "a name, even this one"
        );
        assert_eq!(
            lit("http://10.0.0.256:9400/metrics"),
            None,
            "not an address"
        );
    }

    #[test]
    fn the_resolver_answers_a_literal_and_still_resolves_names() {
        let agent_config = ureq::Agent::config_builder().build();
        let r = LiteralFirst::default();
        let t = NextTimeout {
            after: std::time::Duration::from_secs(5).into(),
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        let got = r
            .resolve(&"http://127.0.0.1:1/".parse().unwrap(), &agent_config, t)
            .unwrap();
        assert_eq!(&got[..], &["127.0.0.1:1".parse::<SocketAddr>().unwrap()]);
        let got = r
            .resolve(&"http://localhost:1/".parse().unwrap(), &agent_config, t)
            .unwrap();
        assert!(
            got.iter().all(|a| a.ip().is_loopback() && a.port() == 1),
            "{got:?}"
        );
        assert!(r
            .resolve(
                &"http://no-such-host.invalid:1/".parse().unwrap(),
                &agent_config,
                t
            )
            .is_err());
    }
}
