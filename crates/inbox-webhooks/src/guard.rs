//! The SSRF guard: webhook URLs must reach the public internet, not the gateway's own network.
//!
//! A customer chooses the URL the gateway POSTs to, so without a guard any API key could make
//! the gateway call its cloud metadata service (`169.254.169.254`), a database on `10.0.0.5`
//! or an admin port on `localhost`. The guard works at two moments:
//!
//! - [`UrlGuard::check`] when an endpoint is created or changed, so a bad URL is refused with a
//!   clear `400` instead of failing every delivery later;
//! - [`GuardedResolver`] inside the delivery client, which drops blocked addresses from every
//!   DNS answer right before connecting. A host that resolved to a public address at creation
//!   and to `127.0.0.1` now (DNS rebinding) therefore still cannot be reached.
//!
//! Addresses are classified by the IANA special-purpose registries; IPv6 is allowed only inside
//! the global unicast range `2000::/3`, and IPv4-mapped, IPv4-compatible and NAT64 forms are
//! judged by the IPv4 address they carry. `INBOX_WEBHOOK_ALLOW_PRIVATE=true` (the
//! `allow_private` flag) turns the address checks off for deployments whose receivers live on a
//! private network, and for tests.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use inbox_core::Error;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// How long the creation-time check waits for DNS. A customer waits on it, and a name that
/// takes longer than this would also stall deliveries.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The configuration switch named in error messages.
const ALLOW_PRIVATE_HINT: &str = "set INBOX_WEBHOOK_ALLOW_PRIVATE=true to allow private networks";

/// An address a webhook may not be delivered to, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BlockedAddress {
    /// The host name that resolved to it; `None` when the URL named the address literally.
    pub host: Option<String>,
    /// The refused address.
    pub ip: IpAddr,
    /// Its kind, e.g. `loopback` or `private (10.0.0.0/8)`.
    pub class: &'static str,
}

impl fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => write!(
                f,
                "blocked: `{host}` resolves to private address {} ({}); {ALLOW_PRIVATE_HINT}",
                self.ip, self.class
            ),
            None => write!(
                f,
                "blocked: {} is a private address ({}); {ALLOW_PRIVATE_HINT}",
                self.ip, self.class
            ),
        }
    }
}

/// Why `ip` is not globally routable, or `None` when webhooks may be delivered to it.
///
/// ```
/// use std::net::IpAddr;
/// use inbox_webhooks::blocked_address_class;
///
/// let metadata: IpAddr = "169.254.169.254".parse().unwrap();
/// assert!(blocked_address_class(metadata).is_some());
/// let public: IpAddr = "93.184.215.14".parse().unwrap();
/// assert_eq!(blocked_address_class(public), None);
/// ```
pub fn blocked_address_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => ipv4_class(v4),
        IpAddr::V6(v6) => ipv6_class(v6),
    }
}

/// IPv4 special-purpose blocks that are not globally reachable
/// (<https://www.iana.org/assignments/iana-ipv4-special-registry/>), most specific first.
const IPV4_BLOCKED: &[([u8; 4], u32, &str)] = &[
    ([255, 255, 255, 255], 32, "broadcast"),
    ([0, 0, 0, 0], 8, "\"this network\" (0.0.0.0/8)"),
    ([10, 0, 0, 0], 8, "private (10.0.0.0/8)"),
    ([100, 64, 0, 0], 10, "carrier-grade NAT (100.64.0.0/10)"),
    ([127, 0, 0, 0], 8, "loopback"),
    (
        [169, 254, 0, 0],
        16,
        "link-local (169.254.0.0/16, includes cloud metadata 169.254.169.254)",
    ),
    ([172, 16, 0, 0], 12, "private (172.16.0.0/12)"),
    (
        [192, 0, 0, 0],
        24,
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    ([192, 0, 2, 0], 24, "documentation (192.0.2.0/24)"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast (192.88.99.0/24)"),
    ([192, 168, 0, 0], 16, "private (192.168.0.0/16)"),
    ([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
    ([198, 51, 100, 0], 24, "documentation (198.51.100.0/24)"),
    ([203, 0, 113, 0], 24, "documentation (203.0.113.0/24)"),
    ([224, 0, 0, 0], 4, "multicast (224.0.0.0/4)"),
    ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
];

fn ipv4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let addr = u32::from(ip);
    IPV4_BLOCKED.iter().find_map(|&(net, bits, class)| {
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        (addr & mask == u32::from_be_bytes(net) & mask).then_some(class)
    })
}

/// IPv6 blocks inside `2000::/3` that are not globally reachable
/// (<https://www.iana.org/assignments/iana-ipv6-special-registry/>); everything outside
/// `2000::/3` (ULA, link-local, multicast, …) is refused by [`ipv6_class`] itself.
const IPV6_BLOCKED: &[(u128, u32, &str)] = &[
    (0x2001_0db8 << 96, 32, "documentation (2001:db8::/32)"),
    (
        0x2001 << 112,
        23,
        "IETF protocol assignments (2001::/23, includes Teredo)",
    ),
    (0x2002 << 112, 16, "6to4 (2002::/16)"),
    (0x3fff << 112, 20, "documentation (3fff::/20)"),
];

fn in_v6_net(addr: u128, net: u128, bits: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
    addr & mask == net & mask
}

fn ipv6_class(ip: Ipv6Addr) -> Option<&'static str> {
    let addr = u128::from(ip);
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return ipv4_class(v4);
    }
    // Low 32 bits as IPv4, for the forms that embed an IPv4 address.
    let embedded = Ipv4Addr::from((addr & 0xffff_ffff) as u32);
    if addr >> 32 == 0 {
        // `::a.b.c.d`, the deprecated IPv4-compatible form: never routable today.
        return ipv4_class(embedded).or(Some("IPv4-compatible (::/96, deprecated)"));
    }
    if in_v6_net(addr, 0x0064_ff9b << 96, 96) {
        // The well-known NAT64 prefix reaches whatever IPv4 address it carries.
        return ipv4_class(embedded);
    }
    if in_v6_net(addr, 0x0064_ff9b_0001 << 80, 48) {
        return Some("local-use NAT64 (64:ff9b:1::/48)");
    }
    if !in_v6_net(addr, 0x2000 << 112, 3) {
        return Some(match addr >> 112 {
            0xfc00..=0xfdff => "unique local (fc00::/7)",
            0xfe80..=0xfebf => "link-local (fe80::/10)",
            0xfec0..=0xfeff => "site-local (fec0::/10, deprecated)",
            0xff00..=0xffff => "multicast (ff00::/8)",
            _ => "reserved (outside global unicast 2000::/3)",
        });
    }
    IPV6_BLOCKED
        .iter()
        .find_map(|&(net, bits, class)| in_v6_net(addr, net, bits).then_some(class))
}

/// The address check for one IP, naming `host` when it came from DNS.
pub(crate) fn check_ip(host: Option<&str>, ip: IpAddr) -> Result<(), BlockedAddress> {
    match blocked_address_class(ip) {
        Some(class) => Err(BlockedAddress {
            host: host.map(str::to_owned),
            ip,
            class,
        }),
        None => Ok(()),
    }
}

/// Parses a webhook URL and checks its form: absolute, `http` or `https`, with a host.
pub(crate) fn parse_webhook_url(url: &str) -> Result<Url, Error> {
    let parsed = Url::parse(url.trim()).map_err(|err| {
        Error::invalid(
            "url",
            format!("the webhook URL is not a valid absolute URL: {err}"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::invalid(
            "url",
            format!(
                "the webhook URL must use http or https, not `{}`",
                parsed.scheme()
            ),
        ));
    }
    match parsed.host() {
        None => Err(Error::invalid("url", "the webhook URL has no host")),
        Some(Host::Domain("")) => Err(Error::invalid("url", "the webhook URL has no host")),
        Some(_) => Ok(parsed),
    }
}

/// Checks webhook URLs when endpoints are created or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlGuard {
    allow_private: bool,
}

impl UrlGuard {
    /// A guard; `allow_private` is `INBOX_WEBHOOK_ALLOW_PRIVATE` and turns the address checks
    /// off (the URL form and DNS resolution are still checked).
    pub fn new(allow_private: bool) -> Self {
        UrlGuard { allow_private }
    }

    /// Whether private addresses are allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Checks a webhook URL and returns it parsed.
    ///
    /// The URL must be absolute `http` or `https` with a host, the host must resolve, and —
    /// unless private addresses are allowed — **every** address it resolves to must be
    /// globally routable: one private answer among public ones is enough to refuse, since the
    /// client may pick any of them.
    ///
    /// # Errors
    /// `Error::InvalidInput` with param `url` and a message saying what is wrong; for a refused
    /// address it names the address and `INBOX_WEBHOOK_ALLOW_PRIVATE=true`.
    pub async fn check(&self, url: &str) -> Result<Url, Error> {
        let parsed = parse_webhook_url(url)?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        match parsed.host() {
            Some(Host::Ipv4(ip)) => self.check_literal(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_literal(IpAddr::V6(ip))?,
            Some(Host::Domain(domain)) => {
                let addrs = resolve(domain, port).await.map_err(|reason| {
                    Error::invalid(
                        "url",
                        format!(
                            "the webhook URL's host `{domain}` could not be resolved: {reason}"
                        ),
                    )
                })?;
                if !self.allow_private {
                    for addr in addrs {
                        check_ip(Some(domain), addr.ip()).map_err(|blocked| {
                            Error::invalid("url", format!("the webhook URL is refused: {blocked}"))
                        })?;
                    }
                }
            }
            None => return Err(Error::invalid("url", "the webhook URL has no host")),
        }
        Ok(parsed)
    }

    fn check_literal(&self, ip: IpAddr) -> Result<(), Error> {
        if self.allow_private {
            return Ok(());
        }
        check_ip(None, ip).map_err(|blocked| {
            Error::invalid("url", format!("the webhook URL is refused: {blocked}"))
        })
    }
}

/// Resolves `host` with the system resolver, bounded by [`RESOLVE_TIMEOUT`].
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let lookup = tokio::net::lookup_host((host, port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Err(_) => return Err(format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs())),
        Ok(Err(err)) => return Err(err.to_string()),
        Ok(Ok(addrs)) => addrs.collect(),
    };
    if addrs.is_empty() {
        return Err("it has no addresses".into());
    }
    Ok(addrs)
}

/// The delivery client's DNS resolver: the system resolver, minus blocked addresses.
///
/// Filtering here, at connection time, is what makes the guard hold against DNS rebinding: the
/// connector only ever dials addresses this resolver returned. When every address is blocked
/// the lookup fails with [`BlockedAddress`], which the sender reports as such.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver {
    pub(crate) allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port in afterwards.
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if allow_private {
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            let mut first_blocked = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|addr| match check_ip(Some(&host), addr.ip()) {
                    Ok(()) => true,
                    Err(blocked) => {
                        first_blocked.get_or_insert(blocked);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), first_blocked) {
                (true, Some(blocked)) => Err(blocked.into()),
                (false, Some(blocked)) => {
                    tracing::warn!(%blocked, "webhook host resolved to public and blocked addresses; dialling only the public ones");
                    Ok(Box::new(allowed.into_iter()) as Addrs)
                }
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> Option<&'static str> {
        blocked_address_class(ip.parse().unwrap())
    }

    #[test]
    fn every_blocked_ipv4_class_is_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(class(ip).is_some(), "{ip} must be blocked");
        }
        assert_eq!(class("255.255.255.255"), Some("broadcast"));
        assert_eq!(class("127.0.0.1"), Some("loopback"));
    }

    #[test]
    fn public_ipv4_neighbours_of_blocked_ranges_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(class(ip), None, "{ip} must be allowed");
        }
    }

    #[test]
    fn every_blocked_ipv6_class_is_refused() {
        for ip in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "3fff::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "4000::1",
        ] {
            assert!(class(ip).is_some(), "{ip} must be blocked");
        }
    }

    #[test]
    fn global_ipv6_and_mapped_public_ipv4_are_allowed() {
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(class(ip), None, "{ip} must be allowed");
        }
    }

    #[test]
    fn blocked_messages_name_the_address_and_the_switch() {
        let literal = check_ip(None, "10.0.0.1".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            literal.contains("10.0.0.1") && literal.contains("INBOX_WEBHOOK_ALLOW_PRIVATE=true")
        );
        let named = check_ip(Some("internal.example"), "127.0.0.1".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            named.starts_with("blocked: `internal.example` resolves to private address 127.0.0.1")
        );
    }
}
