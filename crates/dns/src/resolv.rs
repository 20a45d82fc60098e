//! The node's resolvers, read from its `/etc/resolv.conf`.

use std::net::{IpAddr, SocketAddr};

/// The `nameserver` addresses of a resolv.conf (port 53), in order. Loopback ones (a local stub such as
/// systemd-resolved's 127.0.0.53, or this server itself) are left out when `skip_loopback` is set; link-local
/// IPv6 addresses with a zone (`fe80::1%eth0`) always are.
pub fn upstreams_from_resolv_conf(text: &str, skip_loopback: bool) -> Vec<SocketAddr> {
    let mut upstreams = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if skip_loopback && ip.is_loopback() {
            continue;
        }
        let address = SocketAddr::new(ip, 53);
        if !upstreams.contains(&address) {
            upstreams.push(address);
        }
    }
    upstreams
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameservers_in_order() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver  2001:db8::53 # v6\n\
                    nameserver 127.0.0.53\n;nameserver 10.9.9.9\nnameserver fe80::1%eth0\noptions edns0\n\
                    nameserver 10.0.0.2\nnameserver\n";
        let all: Vec<String> = upstreams_from_resolv_conf(text, false)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(all, ["10.0.0.2:53", "[2001:db8::53]:53", "127.0.0.53:53"]);
        let remote: Vec<String> = upstreams_from_resolv_conf(text, true)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(remote, ["10.0.0.2:53", "[2001:db8::53]:53"]);
        assert!(upstreams_from_resolv_conf("nameserver ::1\n", true).is_empty());
    }
}
