use std::net::SocketAddr;
use std::time::Duration;
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::dtls::*;
use bleedwatch_wire::ProtocolVersion;
use bleedwatch_probe::ProbeMode;

#[tokio::test]
async fn explore() {
    let port: u16 = std::env::var("DTLS_PORT").unwrap().parse().unwrap();
    let addr: SocketAddr = ([127,0,0,1], port).into();
    for v in [ProtocolVersion::DTLS1_2, ProtocolVersion::DTLS1_0] {
        let t = Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(10), heartbeat: Duration::from_secs(10) };
        let start = std::time::Instant::now();
        let o = run_dtls_probe(addr, DtlsProbeConfig::new(v, None, ProbeMode::Safe), &t).await;
        eprintln!("{v}: {:?} after {:?}", o.as_ref().map(|o| (&o.verdict, &o.negotiated, &o.heartbeat_extension, o.chain.len())), start.elapsed());
        if let Ok(o) = o { for l in &o.log { eprintln!("   {l}"); } }
    }
}
