//! Which addresses attempts may reach, and the ureq resolver and connector that enforce it on
//! every connection against the addresses actually dialled (so DNS rebinding cannot slip past
//! a check made earlier). Lookups run on a small pool of `dns-N` threads, bounded by the
//! attempt's timeout; ureq's own resolver starts a thread per request whenever a timeout is set.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{ConnectionDetails, Connector, NextTimeout};

/// How long a host's vetted addresses are reused before the OS resolver is asked again.
pub const DNS_CACHE_TTL: Duration = Duration::from_secs(5);
/// Addresses ureq takes from a resolver (its `ResolvedSocketAddrs` capacity).
const RESOLVED_ADDRS_MAX: usize = 16;
/// Most hosts kept in the DNS cache; past it the cache is cleared.
pub const DNS_CACHE_HOSTS_MAX: usize = 4096;

/// An address range such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_match(
                u32::from(net) as u128,
                u32::from(ip) as u128,
                self.prefix_len,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(u128::from(net), u128::from(ip), self.prefix_len, 128)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: u128, ip: u128, prefix_len: u8, bits: u8) -> bool {
    if prefix_len == 0 {
        return true;
    }
    let shift = bits - prefix_len;
    (net >> shift) == (ip >> shift)
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Cidr, String> {
        let bad = || format!("\"{text}\" is not a CIDR range (examples: 10.0.0.0/8, fd00::/8)");
        let (ip, len) = text.split_once('/').ok_or_else(bad)?;
        let network = canonical(IpAddr::from_str(ip).map_err(|_| bad())?);
        let prefix_len: u8 = len.parse().map_err(|_| bad())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        if prefix_len > bits {
            return Err(bad());
        }
        Ok(Cidr {
            network,
            prefix_len,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// An IPv4 address carried in IPv6 (`::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let segments = v6.segments();
            if segments[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b, c, d] = (u128::from(v6) as u32).to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            if segments[0] == 0x2002 {
                // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
                let [a, b] = segments[1].to_be_bytes();
                let [c, d] = segments[2].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// True for every address that is not on the public internet: loopback, private, link-local
/// (with the cloud metadata address 169.254.169.254), CGNAT, multicast, documentation, reserved.
pub fn is_non_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (18..20).contains(&b)) // benchmarking
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || (first == 0x2001 && v6.segments()[1] == 0) // Teredo tunnels 2001::/32
                || (first == 0x64 && v6.segments()[1] == 0xff9b && v6.segments()[2] == 1) // local NAT64
                || (u128::from(v6) >> 32) == 0 // IPv4-compatible ::a.b.c.d and friends
        }
    }
}

/// Which non-public addresses the operator opened with flags.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    pub allow_private_networks: bool,
    pub allow_networks: Vec<Cidr>,
}

impl AddressPolicy {
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private_networks
            || !is_non_public(ip)
            || self.allow_networks.iter().any(|cidr| cidr.contains(ip))
    }
}

/// The error a blocked address travels in through ureq, recognised again by `is_blocked`.
#[derive(Debug)]
pub struct BlockedAddress(pub IpAddr);

impl fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "address {} is not public (allow it with --allow-network or --allow-private-networks)",
            self.0
        )
    }
}

impl std::error::Error for BlockedAddress {}

fn blocked(ip: IpAddr) -> ureq::Error {
    ureq::Error::Io(io::Error::new(
        io::ErrorKind::PermissionDenied,
        BlockedAddress(ip),
    ))
}

/// The blocked address inside a ureq error, if that is what it is.
pub fn blocked_address(error: &ureq::Error) -> Option<IpAddr> {
    match error {
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<BlockedAddress>().map(|b| b.0),
        _ => None,
    }
}

type CacheEntry = (Instant, ResolvedSocketAddrs);

/// Threads that call the OS resolver, and lookups that may wait for one.
pub const DNS_THREADS: usize = 4;
pub const DNS_QUEUE_MAX: usize = 256;
/// Longest a lookup waits when the attempt itself has no deadline.
pub const DNS_LOOKUP_WAIT_MAX: Duration = Duration::from_secs(30);

type Lookup = (
    String,
    u16,
    crossbeam_channel::Sender<std::io::Result<Vec<SocketAddr>>>,
);

/// Keeps only allowed addresses and caches them briefly. The OS resolver runs on a few `dns-N`
/// threads, so a lookup is bounded by the attempt's timeout (getaddrinfo has none of its own)
/// and no thread is started per request (as ureq's own resolver does when a timeout is set).
#[derive(Debug, Clone)]
pub struct VettingResolver {
    policy: Arc<AddressPolicy>,
    cache: Arc<Mutex<HashMap<(String, u16), CacheEntry>>>,
    lookups: crossbeam_channel::Sender<Lookup>,
}

impl VettingResolver {
    pub fn new(policy: Arc<AddressPolicy>) -> VettingResolver {
        let (lookups, queue) = crossbeam_channel::bounded::<Lookup>(DNS_QUEUE_MAX);
        for index in 0..DNS_THREADS {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("dns-{index}"))
                .spawn(move || {
                    for (host, port, reply) in queue.iter() {
                        let _ = reply.send(
                            (host.as_str(), port)
                                .to_socket_addrs()
                                .map(Iterator::collect),
                        );
                    }
                })
                .expect("the OS can start a thread");
        }
        VettingResolver {
            policy,
            cache: Arc::default(),
            lookups,
        }
    }

    fn lookup(
        &self,
        host: &str,
        port: u16,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = (host.to_string(), port);
        if let Some((at, addrs)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && at.elapsed() < DNS_CACHE_TTL
        {
            return Ok(addrs.clone());
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        if self
            .lookups
            .try_send((host.to_string(), port, reply))
            .is_err()
        {
            return Err(ureq::Error::Io(std::io::Error::other(
                "too many DNS lookups waiting",
            )));
        }
        // Our agent always sets a global timeout; the cap guards the "no timeout" case.
        let wait = (*timeout.after).min(DNS_LOOKUP_WAIT_MAX);
        let found: Vec<SocketAddr> = match answer.recv_timeout(wait) {
            Ok(Ok(found)) => found,
            Ok(Err(_)) => return Err(ureq::Error::HostNotFound),
            Err(_) => return Err(ureq::Error::Timeout(timeout.reason)),
        };
        let mut addrs = self.empty();
        let mut first_blocked = None;
        for addr in found {
            if self.policy.allows(addr.ip()) {
                if addrs.len() < RESOLVED_ADDRS_MAX {
                    addrs.push(addr);
                }
            } else {
                first_blocked.get_or_insert(addr.ip());
            }
        }
        if addrs.is_empty() {
            return Err(match first_blocked {
                Some(ip) => blocked(ip),
                None => ureq::Error::HostNotFound,
            });
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= DNS_CACHE_HOSTS_MAX {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

impl Resolver for VettingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let authority = uri
            .authority()
            .ok_or_else(|| ureq::Error::BadUri("no host".into()))?;
        let port = authority
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let host = authority.host();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = IpAddr::from_str(literal) {
            if !self.policy.allows(ip) {
                return Err(blocked(ip));
            }
            let mut addrs = self.empty();
            addrs.push(SocketAddr::new(ip, port));
            return Ok(addrs);
        }
        self.lookup(host, port, timeout)
    }
}

/// First link of the connector chain: checks again the addresses about to be dialled.
#[derive(Debug)]
pub struct VettingConnector {
    pub policy: Arc<AddressPolicy>,
}

impl Connector<()> for VettingConnector {
    type Out = ();
    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<()>, ureq::Error> {
        if let Some(addr) = details
            .addrs
            .iter()
            .find(|addr| !self.policy.allows(addr.ip()))
        {
            return Err(blocked(addr.ip()));
        }
        Ok(chained)
    }
}

/// Checks an endpoint URL as given to the API: scheme, host, no credentials, literal addresses.
/// The error is a sentence for the API's `url` field.
pub fn check_endpoint_url(
    url: &str,
    allow_http: bool,
    policy: &AddressPolicy,
) -> Result<(), String> {
    if url.len() > 2048 {
        return Err("url is longer than 2048 characters".into());
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("\"{url}\" is not a valid URL"))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_http => {}
        Some("http") => return Err("url must use https:// (http:// needs --allow-http)".into()),
        _ => return Err("url must start with https://".into()),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("\"{url}\" has no host"))?;
    if authority.as_str().contains('@') {
        return Err("url must not carry a user or password; put credentials in headers".into());
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let port = authority
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let literal_ip = IpAddr::from_str(literal).ok();
    let addresses: Vec<IpAddr> = match literal_ip {
        Some(ip) => vec![ip],
        // A name is resolved now too; one that does not resolve yet is accepted (attempts
        // fail with `dns` until it does). Every connection is checked again anyway.
        None => (host, port)
            .to_socket_addrs()
            .map(|found| found.map(|a| a.ip()).collect())
            .unwrap_or_default(),
    };
    // Refused when no address of the host may be dialled (attempts use only allowed ones).
    if !addresses.iter().any(|ip| policy.allows(*ip))
        && let Some(ip) = addresses.first().copied()
    {
        let via = if literal_ip.is_some() {
            String::new()
        } else {
            format!("{host} resolves to ")
        };
        return Err(format!("{via}{}; the url is refused", BlockedAddress(ip)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_recognised() {
        let blocked = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "::127.0.0.1",
            "2001:db8::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
            "64:ff9b:1::a00:1",
        ];
        for ip in blocked {
            assert!(
                is_non_public(ip.parse().unwrap()),
                "{ip} should be non-public"
            );
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
        ] {
            assert!(!is_non_public(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[test]
    fn allow_network_opens_only_its_range() {
        let policy = AddressPolicy {
            allow_private_networks: false,
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(policy.allows("127.0.0.1".parse().unwrap()));
        assert!(policy.allows("::ffff:127.0.0.2".parse().unwrap()));
        assert!(!policy.allows("10.0.0.1".parse().unwrap()));
        assert!(!policy.allows("::1".parse().unwrap()));
        let all = AddressPolicy {
            allow_private_networks: true,
            allow_networks: vec![],
        };
        assert!(all.allows("169.254.169.254".parse().unwrap()));
    }

    #[test]
    fn cidr_parsing_checks_the_prefix() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("fd00::/129".parse::<Cidr>().is_err());
        assert!(
            "fd00::/7"
                .parse::<Cidr>()
                .unwrap()
                .contains("fdff::1".parse().unwrap())
        );
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
    }

    #[test]
    fn endpoint_urls_are_checked() {
        let strict = AddressPolicy::default();
        assert!(check_endpoint_url("https://example.com/hook", false, &strict).is_ok());
        let refused = [
            ("http://example.com/hook", "--allow-http"),
            ("ftp://example.com/", "https://"),
            ("https://user:pw@example.com/", "user or password"),
            ("https://127.0.0.1/", "not public"),
            ("https://[::ffff:127.0.0.1]/", "not public"),
            ("https://[::1]:8443/", "not public"),
            ("https://169.254.169.254/latest/meta-data", "not public"),
            ("https://localhost:8443/", "localhost resolves to"),
            ("https://100.64.0.1/", "not public"),
            ("not a url", "not a valid URL"),
        ];
        for (url, expected) in refused {
            let error = check_endpoint_url(url, false, &strict).unwrap_err();
            assert!(error.contains(expected), "{url}: {error}");
        }
        assert!(check_endpoint_url("http://example.com/", true, &strict).is_ok());
    }
}
