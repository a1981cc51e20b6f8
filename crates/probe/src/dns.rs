//! Name resolution the system resolver cannot do: mail exchangers (MX) for `--mx`, optionally through
//! a given DNS server (split-horizon DNS, or a test server on loopback).

use std::net::SocketAddr;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::TokioAsyncResolver;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot read the system DNS configuration: {0}")]
    SystemConfig(String),
    #[error("DNS lookup for {domain} failed: {detail}")]
    Lookup { domain: String, detail: String },
}

/// One mail exchanger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailExchanger {
    pub preference: u16,
    pub host: String,
}

fn resolver(server: Option<SocketAddr>) -> Result<TokioAsyncResolver, DnsError> {
    let mut opts = ResolverOpts::default();
    opts.timeout = std::time::Duration::from_secs(3);
    opts.attempts = 2;
    // Both address families, each address tested on its own.
    opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
    match server {
        Some(addr) => {
            let group = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
            Ok(TokioAsyncResolver::tokio(ResolverConfig::from_parts(None, vec![], group), opts))
        }
        None => {
            let (config, mut sys_opts) = hickory_resolver::system_conf::read_system_conf().map_err(|e| DnsError::SystemConfig(e.to_string()))?;
            sys_opts.timeout = opts.timeout;
            Ok(TokioAsyncResolver::tokio(config, sys_opts))
        }
    }
}

/// The mail exchangers of `domain`, most preferred first. A domain without MX records falls back to
/// the domain itself (RFC 5321 §5.1 "implicit MX").
pub async fn resolve_mx(domain: &str, server: Option<SocketAddr>) -> Result<Vec<MailExchanger>, DnsError> {
    let resolver = resolver(server)?;
    let fqdn = if domain.ends_with('.') { domain.to_string() } else { format!("{domain}.") };
    match resolver.mx_lookup(fqdn.as_str()).await {
        Ok(lookup) => {
            let mut mx: Vec<MailExchanger> = lookup
                .iter()
                .map(|r| MailExchanger { preference: r.preference(), host: r.exchange().to_utf8().trim_end_matches('.').to_string() })
                .filter(|m| !m.host.is_empty())
                .collect();
            mx.sort_by(|a, b| a.preference.cmp(&b.preference).then_with(|| a.host.cmp(&b.host)));
            mx.dedup();
            Ok(mx)
        }
        // NOERROR without MX records: the name exists. NXDOMAIN stays an error.
        Err(e)
            if matches!(
                e.kind(),
                hickory_resolver::error::ResolveErrorKind::NoRecordsFound { response_code: hickory_resolver::proto::op::ResponseCode::NoError, .. }
            ) =>
        {
            Ok(vec![MailExchanger { preference: 0, host: domain.trim_end_matches('.').to_string() }])
        }
        Err(e) => Err(DnsError::Lookup { domain: domain.to_string(), detail: e.to_string() }),
    }
}

/// Every A and AAAA address of `name` through `server` (each is tested on its own: results differ
/// behind load balancers).
pub async fn resolve_addrs(name: &str, server: SocketAddr) -> Result<Vec<std::net::IpAddr>, DnsError> {
    let resolver = resolver(Some(server))?;
    let fqdn = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
    let lookup = resolver.lookup_ip(fqdn.as_str()).await.map_err(|e| DnsError::Lookup { domain: name.to_string(), detail: e.to_string() })?;
    let mut addrs: Vec<_> = lookup.iter().collect();
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}
