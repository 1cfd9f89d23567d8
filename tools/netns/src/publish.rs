//! `-p/--publish [HOSTIP:]HOSTPORT:PORT[/tcp|/udp]`: parsing and checks (pure).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Publish {
    /// The host address it is published on (None: every address of the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub port: u16,
    pub proto: Proto,
}

impl Publish {
    /// Whether two publications claim the same host port (same protocol, overlapping address).
    pub fn clashes_with(&self, other: &Publish) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port,
            self.port,
            self.proto.as_str()
        )
    }
}

fn parse_port(text: &str, what: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{text}' is not a {what} number"));
    }
    match text.parse::<u32>() {
        Ok(0) => Err(format!("{what} 0 is not a valid port (1 to 65535)")),
        Ok(n) if n <= 65535 => Ok(n as u16),
        _ => Err(format!("{what} {text} is out of range (1 to 65535)")),
    }
}

impl FromStr for Publish {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let usage = "expected [HOSTIP:]HOSTPORT:PORT[/tcp|/udp]";
        let (ports, proto) = match spec.rsplit_once('/') {
            Some((ports, "tcp")) => (ports, Proto::Tcp),
            Some((ports, "udp")) => (ports, Proto::Udp),
            Some((_, other)) => {
                return Err(format!(
                    "'{other}' in '{spec}' is not a protocol: use tcp or udp"
                ))
            }
            None => (spec, Proto::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host_port, port) = match parts.as_slice() {
            [host_port, port] => (None, *host_port, *port),
            [ip, host_port, port] => {
                let ip = ip
                    .parse::<Ipv4Addr>()
                    .map_err(|_| format!("'{ip}' in '{spec}' is not an IPv4 address"))?;
                (Some(ip), *host_port, *port)
            }
            _ => return Err(format!("'{spec}': {usage}")),
        };
        let host_ip = host_ip.filter(|ip| !ip.is_unspecified());
        Ok(Publish {
            host_ip,
            host_port: parse_port(host_port, "host port")?,
            port: parse_port(port, "container port")?,
            proto,
        })
    }
}

/// The first pair of publications (in one request) that claim the same host port.
pub fn first_clash(publish: &[Publish]) -> Option<(&Publish, &Publish)> {
    publish.iter().enumerate().find_map(|(i, a)| {
        publish[i + 1..]
            .iter()
            .find(|b| a.clashes_with(b))
            .map(|b| (a, b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(spec: &str) -> Result<Publish, String> {
        spec.parse()
    }

    #[test]
    fn specs_parse() {
        assert_eq!(
            p("80:8080"),
            Ok(Publish {
                host_ip: None,
                host_port: 80,
                port: 8080,
                proto: Proto::Tcp
            })
        );
        assert_eq!(
            p("127.0.0.1:8080:80/udp"),
            Ok(Publish {
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: 8080,
                port: 80,
                proto: Proto::Udp
            })
        );
        assert_eq!(p("0.0.0.0:81:80/tcp").map(|x| x.host_ip), Ok(None));
        assert_eq!(p("65535:1").map(|x| x.host_port), Ok(65535));
        assert_eq!(
            p("1.2.3.4:5:6").map(|x| x.to_string()),
            Ok("1.2.3.4:5:6/tcp".into())
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in [
            "",
            "80",
            "0:80",
            "80:0",
            "65536:80",
            "80:65536",
            "99999999999:80",
            "a:80",
            "80:b",
            "80:80/sctp",
            "80:80/",
            "1.2.3:80:80",
            "::1:80:80",
            "1:2:3:4",
            "-1:80",
            "+80:80",
            " 80:80",
            "80:80/TCP",
        ] {
            assert!(p(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(p("0:80").unwrap_err().contains("0 is not a valid port"));
        assert!(p("70000:80").unwrap_err().contains("out of range"));
    }

    #[test]
    fn clashes_need_same_proto_port_and_address() {
        let a = p("80:80").unwrap();
        assert!(a.clashes_with(&p("80:81").unwrap()));
        assert!(!a.clashes_with(&p("80:80/udp").unwrap()));
        assert!(!a.clashes_with(&p("81:80").unwrap()));
        assert!(a.clashes_with(&p("127.0.0.1:80:80").unwrap()));
        let l = p("127.0.0.1:80:80").unwrap();
        assert!(!l.clashes_with(&p("10.0.0.1:80:80").unwrap()));
        let all = [
            p("80:80").unwrap(),
            p("81:80").unwrap(),
            p("80:90").unwrap(),
        ];
        assert!(first_clash(&all).is_some());
        assert!(first_clash(&all[..2]).is_none());
    }
}
