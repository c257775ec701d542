//! Which addresses attempts may reach, and the ureq resolver and connector that enforce it on
//! every connection against the addresses actually dialled (so DNS rebinding cannot slip past
//! a check made earlier). Name lookups (`lookup`) have a deadline, a cache, and a per-workspace
//! share of the threads that run getaddrinfo, so one tenant's hanging names cannot delay
//! another's; ureq's own resolver would start a thread per request whenever a timeout is set.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{ConnectionDetails, Connector, NextTimeout};

/// Addresses ureq takes from a resolver (its `ResolvedSocketAddrs` capacity).
const RESOLVED_ADDRS_MAX: usize = 16;
/// Most hosts kept in the DNS cache; past it the cache is cleared.
pub(crate) const DNS_CACHE_HOSTS_MAX: usize = 4096;

/// An address range such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
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
pub(crate) fn is_non_public(ip: IpAddr) -> bool {
    if let IpAddr::V6(v6) = ip {
        let segments = v6.segments();
        // IPv4-mapped ::ffff:0:0/96 and IPv4-translated ::ffff:0:0:0/96 (SIIT) are never
        // globally reachable IPv6 addresses; a host that answers them is refused whatever the
        // IPv4 address inside (an allowed range still opens them through `AddressPolicy`).
        if segments[0..5] == [0, 0, 0, 0, 0] && segments[5] == 0xffff
            || segments[0..4] == [0, 0, 0, 0] && segments[4] == 0xffff && segments[5] == 0
        {
            return true;
        }
    }
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
pub(crate) struct AddressPolicy {
    pub(crate) allow_private_networks: bool,
    pub(crate) allow_networks: Vec<Cidr>,
}

impl AddressPolicy {
    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private_networks
            || !is_non_public(ip)
            || self.allow_networks.iter().any(|cidr| cidr.contains(ip))
    }
}

/// The error a blocked address travels in through ureq, recognised again by `blocked_address`.
/// Its message never names the address: it may be what an internal name resolved to.
#[derive(Debug)]
pub(crate) struct BlockedAddress(pub IpAddr);

/// The end of every "not public" message.
const ALLOW_HINT: &str = "(allow it with --allow-network or --allow-private-networks)";

impl fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the address dialled is not public {ALLOW_HINT}")
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
pub(crate) fn blocked_address(error: &ureq::Error) -> Option<IpAddr> {
    match error {
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<BlockedAddress>().map(|b| b.0),
        _ => None,
    }
}

/// How long a name's answer is reused. getaddrinfo reports no TTL, so this is our bound: under
/// the 60–300 s most names publish, and safe against rebinding since every dialled address is
/// vetted again by `VettingConnector`.
pub(crate) const DNS_CACHE_TTL: Duration = Duration::from_secs(30);
/// How long a failed lookup (no such name, or no answer within the deadline) is remembered, so
/// a dead name costs one lookup per this period instead of one per attempt.
pub(crate) const DNS_NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Longest any lookup is waited for: an attempt's (within its own timeout) and an endpoint's
/// at creation or PATCH.
pub(crate) const DNS_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Lookups running at once, all workspaces together. getaddrinfo cannot be cancelled, so each
/// runs on a `dns-lookup` thread of its own that ends when the OS resolver gives up.
pub(crate) const DNS_LOOKUPS_MAX: usize = 64;
/// Lookups one workspace may have running at once: its hanging names hold at most this many
/// threads, and the rest stay for the other workspaces.
pub(crate) const DNS_WORKSPACE_LOOKUPS_MAX: usize = 4;
const _: () = assert!(DNS_WORKSPACE_LOOKUPS_MAX * 8 <= DNS_LOOKUPS_MAX);

/// What a lookup found, as cached.
#[derive(Debug, Clone)]
enum Answer {
    Found(Vec<SocketAddr>),
    NotFound,
    TimedOut,
}

/// Why a name gave no address to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LookupError {
    /// The name does not exist (or has no address).
    NotFound,
    /// No answer within the deadline (or a recent lookup of this name had none).
    TimedOut(Duration),
    /// The workspace (or the service) has its most lookups running already.
    Busy,
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NotFound => write!(f, "the name does not resolve"),
            LookupError::TimedOut(wait) => {
                write!(
                    f,
                    "could not resolve the name within {}ms",
                    wait.as_millis()
                )
            }
            LookupError::Busy => write!(
                f,
                "too many name lookups running for this workspace (at most {DNS_WORKSPACE_LOOKUPS_MAX}); try again shortly"
            ),
        }
    }
}

impl std::error::Error for LookupError {}

/// The lookup failure inside a ureq error, if that is what it is.
pub(crate) fn lookup_error(error: &ureq::Error) -> Option<&LookupError> {
    match error {
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<LookupError>(),
        _ => None,
    }
}

/// A lookup running on its thread; waiters for the same name share it.
#[derive(Default)]
struct Pending {
    answer: Mutex<Option<Answer>>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct DnsState {
    cache: HashMap<(String, u16), (Instant, Answer)>,
    running: HashMap<(String, u16), Arc<Pending>>,
    running_by_workspace: HashMap<String, usize>,
}

/// The process's name lookups: cache, running lookups, and each workspace's share.
static DNS: std::sync::LazyLock<Mutex<DnsState>> = std::sync::LazyLock::new(Mutex::default);

thread_local! {
    /// The workspace whose attempt this thread is making (see `in_workspace`).
    static WORKSPACE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Runs `f` with lookups counted against `workspace_id` (the resolver runs on the calling thread).
pub(crate) fn in_workspace<T>(workspace_id: &str, f: impl FnOnce() -> T) -> T {
    WORKSPACE.with(|current| current.replace(workspace_id.to_string()));
    let result = f();
    WORKSPACE.with(|current| current.borrow_mut().clear());
    result
}

fn remember(state: &mut DnsState, key: (String, u16), answer: Answer) {
    let ttl = match answer {
        Answer::Found(_) => DNS_CACHE_TTL,
        Answer::NotFound | Answer::TimedOut => DNS_NEGATIVE_TTL,
    };
    if state.cache.len() >= DNS_CACHE_HOSTS_MAX {
        let now = Instant::now();
        state.cache.retain(|_, (expires_at, _)| *expires_at > now);
        if state.cache.len() >= DNS_CACHE_HOSTS_MAX {
            state.cache.clear();
        }
    }
    state.cache.insert(key, (Instant::now() + ttl, answer));
}

/// The addresses of `host`, from the cache or the OS resolver, waiting at most `wait`. A lookup
/// counts against `workspace_id`'s share while its thread runs, even after this call gave up.
pub(crate) fn lookup(
    host: &str,
    port: u16,
    workspace_id: &str,
    wait: Duration,
) -> Result<Vec<SocketAddr>, LookupError> {
    let key = (host.to_string(), port);
    let pending = {
        let mut state = DNS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((expires_at, answer)) = state.cache.get(&key)
            && *expires_at > Instant::now()
        {
            return match answer {
                Answer::Found(found) => Ok(found.clone()),
                Answer::NotFound => Err(LookupError::NotFound),
                Answer::TimedOut => Err(LookupError::TimedOut(DNS_LOOKUP_TIMEOUT)),
            };
        }
        match state.running.get(&key) {
            Some(pending) => pending.clone(),
            None => {
                let total: usize = state.running.len();
                let mine = state
                    .running_by_workspace
                    .get(workspace_id)
                    .copied()
                    .unwrap_or(0);
                if total >= DNS_LOOKUPS_MAX || mine >= DNS_WORKSPACE_LOOKUPS_MAX {
                    return Err(LookupError::Busy);
                }
                let pending = Arc::new(Pending::default());
                let thread_pending = pending.clone();
                let thread_key = key.clone();
                let thread_workspace = workspace_id.to_string();
                let spawned = std::thread::Builder::new()
                    .name("dns-lookup".into())
                    .stack_size(512 * 1024)
                    .spawn(move || run_lookup(thread_key, thread_workspace, thread_pending));
                if spawned.is_err() {
                    return Err(LookupError::Busy);
                }
                state.running.insert(key.clone(), pending.clone());
                *state
                    .running_by_workspace
                    .entry(workspace_id.to_string())
                    .or_default() += 1;
                pending
            }
        }
    };
    let deadline = Instant::now() + wait;
    let mut answer = pending
        .answer
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    while answer.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        answer = pending
            .done
            .wait_timeout(answer, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    match answer.clone() {
        Some(Answer::Found(found)) => Ok(found),
        Some(Answer::NotFound) => Err(LookupError::NotFound),
        Some(Answer::TimedOut) | None => {
            drop(answer);
            let mut state = DNS.lock().unwrap_or_else(PoisonError::into_inner);
            // Attempts in the next moments fail at once instead of each waiting out the
            // deadline; the lookup, when it ends, replaces this with what it found.
            if state.running.contains_key(&key) {
                remember(&mut state, key, Answer::TimedOut);
            }
            Err(LookupError::TimedOut(wait))
        }
    }
}

/// The body of a `dns-lookup` thread: one getaddrinfo, then the answer for every waiter.
fn run_lookup(key: (String, u16), workspace_id: String, pending: Arc<Pending>) {
    let answer = match (key.0.as_str(), key.1).to_socket_addrs() {
        Ok(found) => {
            let found: Vec<SocketAddr> = found.collect();
            if found.is_empty() {
                Answer::NotFound
            } else {
                Answer::Found(found)
            }
        }
        Err(_) => Answer::NotFound,
    };
    {
        let mut state = DNS.lock().unwrap_or_else(PoisonError::into_inner);
        state.running.remove(&key);
        if let Some(count) = state.running_by_workspace.get_mut(&workspace_id) {
            *count -= 1;
            if *count == 0 {
                state.running_by_workspace.remove(&workspace_id);
            }
        }
        remember(&mut state, key, answer.clone());
    }
    *pending
        .answer
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(answer);
    pending.done.notify_all();
}

/// Keeps only allowed addresses. Lookups go through `lookup`, so they have a deadline (the
/// attempt's timeout, at most `DNS_LOOKUP_TIMEOUT`), a per-workspace share of the lookup
/// threads and a cache; no thread is started per request as ureq's own resolver does.
#[derive(Debug, Clone)]
pub(crate) struct VettingResolver {
    policy: Arc<AddressPolicy>,
}

impl VettingResolver {
    pub(crate) fn new(policy: Arc<AddressPolicy>) -> VettingResolver {
        VettingResolver { policy }
    }

    fn lookup(
        &self,
        host: &str,
        port: u16,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let wait = (*timeout.after).min(DNS_LOOKUP_TIMEOUT);
        let workspace_id = WORKSPACE.with(|current| current.borrow().clone());
        let found = lookup(host, port, &workspace_id, wait)
            .map_err(|error| ureq::Error::Io(io::Error::new(io::ErrorKind::NotFound, error)))?;
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
pub(crate) struct VettingConnector {
    pub(crate) policy: Arc<AddressPolicy>,
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

/// Checks an endpoint URL as given to the API: scheme, host, no credentials, and the addresses
/// of the host (a name is looked up within `DNS_LOOKUP_TIMEOUT`, on `workspace_id`'s share).
/// The error is a sentence for the API's `url` field; it never says what a name resolved to.
pub(crate) fn check_endpoint_url(
    url: &str,
    allow_http: bool,
    policy: &AddressPolicy,
    workspace_id: &str,
) -> Result<(), String> {
    if url.len() > 2048 {
        return Err("url is longer than 2048 characters".into());
    }
    if url.trim().is_empty() {
        return Err(
            "url is required: an https:// address such as https://example.com/webhooks".into(),
        );
    }
    // `example.com/hooks`: a host and path without a scheme.
    if !url.contains("://") && !url.contains(char::is_whitespace) {
        return Err(format!(
            "\"{url}\" has no scheme: add https:// in front (https://{url})"
        ));
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("\"{url}\" is not a valid URL"))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_http => {}
        Some("http") => return Err("url must use https:// (http:// needs --allow-http)".into()),
        _ if allow_http => return Err("url must start with https:// or http://".into()),
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
    if let Ok(ip) = IpAddr::from_str(literal) {
        if !policy.allows(ip) {
            return Err(format!(
                "address {ip} is not public {ALLOW_HINT}; the url is refused"
            ));
        }
        return Ok(());
    }
    // A name is resolved now too; one that does not resolve yet is accepted (attempts fail
    // with `dns` until it does). Every connection is checked again anyway.
    let addresses: Vec<IpAddr> = match lookup(host, port, workspace_id, DNS_LOOKUP_TIMEOUT) {
        Ok(found) => found.iter().map(SocketAddr::ip).collect(),
        Err(LookupError::NotFound) => return Ok(()),
        Err(LookupError::TimedOut(wait)) => {
            return Err(format!(
                "could not resolve {host} within {}ms; check the name, or try again",
                wait.as_millis()
            ));
        }
        Err(error @ LookupError::Busy) => return Err(format!("{host}: {error}")),
    };
    // Refused when no address of the host may be dialled (attempts use only allowed ones).
    if !addresses.iter().any(|ip| policy.allows(*ip)) {
        return Err(format!(
            "{host} resolves to an address that is not public {ALLOW_HINT}; the url is refused"
        ));
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
            "::ffff:8.8.8.8",
            "::ffff:0:0",
            "::ffff:0:7f00:1",
            "::ffff:0:808:808",
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
        assert!(check_endpoint_url("https://93.184.216.34/hook", false, &strict, "ws").is_ok());
        let refused = [
            ("http://example.com/hook", "--allow-http"),
            ("ftp://example.com/", "https://"),
            ("https://user:pw@example.com/", "user or password"),
            ("https://127.0.0.1/", "not public"),
            ("https://[::ffff:127.0.0.1]/", "not public"),
            ("https://[::1]:8443/", "not public"),
            ("https://169.254.169.254/latest/meta-data", "not public"),
            (
                "https://localhost:8443/",
                "localhost resolves to an address that is not public",
            ),
            ("https://[::ffff:0:7f00:1]/", "not public"),
            ("https://100.64.0.1/", "not public"),
            ("not a url", "not a valid URL"),
            (
                "example.com/hooks",
                "add https:// in front (https://example.com/hooks)",
            ),
            ("", "url is required"),
        ];
        for (url, expected) in refused {
            let error = check_endpoint_url(url, false, &strict, "ws").unwrap_err();
            assert!(error.contains(expected), "{url}: {error}");
            if url.contains("localhost") {
                assert!(
                    !error.contains("127.0.0.1") && !error.contains("::1"),
                    "{error}"
                );
            }
        }
        assert!(check_endpoint_url("http://93.184.216.34/", true, &strict, "ws").is_ok());
    }
}
