//! How flags, alerts and attacks name an endpoint. A leaf: stored labels are built here only.

/// `192.0.2.1:443/tcp`, `[2001:db8::1]:443/tcp (name)`: how flags and alerts name endpoints.
pub fn endpoint_label(address: &str, port: u16, transport: &str, sni: &str) -> String {
    let address = if address.contains(':') { format!("[{address}]") } else { address.to_owned() };
    let name = if sni.is_empty() { String::new() } else { format!(" ({sni})") };
    format!("{address}:{port}/{transport}{name}")
}
