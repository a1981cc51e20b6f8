//! MX resolution against a DNS server on loopback that this test runs itself.

use std::net::SocketAddr;

use bleedwatch_probe::dns::{resolve_mx, MailExchanger};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::MX;
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Answers MX queries for `mail.test.` (two exchangers) and says NXDOMAIN for everything else.
async fn dns_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        // Bounded: a test needs a handful of queries.
        for _ in 0..32 {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else { return };
            let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
            let mut resp = Message::new();
            resp.set_id(query.id()).set_message_type(MessageType::Response).set_op_code(OpCode::Query).set_recursion_available(true);
            resp.set_recursion_desired(query.recursion_desired());
            for q in query.queries() {
                resp.add_query(q.clone());
                if q.name().to_ascii() == "mail.test." && q.query_type() == RecordType::MX {
                    for (pref, host) in [(10, "mx1.mail.test."), (5, "mx2.mail.test.")] {
                        let mx = MX::new(pref, Name::from_ascii(host).unwrap());
                        resp.add_answer(Record::from_rdata(q.name().clone(), 60, RData::MX(mx)));
                    }
                } else if q.name().to_ascii() == "multi.test." && q.query_type() == RecordType::A {
                    resp.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A("127.0.0.1".parse::<std::net::Ipv4Addr>().unwrap().into())));
                } else if q.name().to_ascii() == "multi.test." && q.query_type() == RecordType::AAAA {
                    resp.add_answer(Record::from_rdata(q.name().clone(), 60, RData::AAAA("::1".parse::<std::net::Ipv6Addr>().unwrap().into())));
                } else if q.name().to_ascii() == "nomx.test." {
                    // The name exists but has no MX: NOERROR, no answers.
                } else {
                    resp.set_response_code(ResponseCode::NXDomain);
                }
            }
            let _ = socket.send_to(&resp.to_vec().unwrap(), peer).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn mail_exchangers_in_preference_order() {
    let (server, task) = dns_server().await;
    let mx = resolve_mx("mail.test", Some(server)).await.unwrap();
    assert_eq!(
        mx,
        vec![MailExchanger { preference: 5, host: "mx2.mail.test".into() }, MailExchanger { preference: 10, host: "mx1.mail.test".into() }]
    );
    // No MX records: the domain itself is the mail exchanger (RFC 5321 implicit MX).
    let implicit = resolve_mx("nomx.test", Some(server)).await.unwrap();
    assert_eq!(implicit, vec![MailExchanger { preference: 0, host: "nomx.test".into() }]);
    // A name that does not exist is an error naming the domain.
    let err = resolve_mx("missing.test", Some(server)).await.unwrap_err();
    assert!(err.to_string().contains("missing.test"), "{err}");
    task.abort();
}

/// A name with an IPv4 and an IPv6 address: each is tested and reported on its own, with the name
/// sent as SNI to both.
#[tokio::test]
async fn every_address_of_a_name_is_tested() {
    use std::sync::Arc;
    use bleedwatch_lab::{Behaviour, LabConfig, LabIdentity, LabServer};
    use bleedwatch_probe::scan::{run_scan, ScanEvent, ScanItem, SchedulerOptions, TargetHost};

    let (server, task) = dns_server().await;
    let identity = Arc::new(LabIdentity::rsa_lab(&["multi.test"]).unwrap());
    let v4 = LabServer::bind("127.0.0.1:0".parse().unwrap(), LabConfig::new(Behaviour::Vulnerable, identity.clone())).await.unwrap();
    let port = v4.local_addr().port();
    let v6 = match LabServer::bind(format!("[::1]:{port}").parse().unwrap(), LabConfig::new(Behaviour::Fixed, identity)).await {
        Ok(s) => s,
        Err(e) => panic!("this test needs IPv6 on loopback (::1): {e}"),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let items = vec![ScanItem { host: TargetHost::Name("multi.test".into()), port, udp: false, key: format!("multi.test:{port}") }].into_iter();
    let sched = SchedulerOptions { dns_server: Some(server), ..SchedulerOptions::default() };
    run_scan(items, |_| false, bleedwatch_probe::EndpointOptions::default(), sched, tx).await;
    let mut results = Vec::new();
    while let Some(ScanEvent::Result(r)) = rx.recv().await {
        results.push(r);
    }
    results.sort_by(|a, b| a.address.cmp(&b.address));
    assert_eq!(results.len(), 2, "{results:#?}");
    // Behind one name, one address is vulnerable and the other fixed: both are seen.
    assert_eq!((results[0].address.as_str(), results[0].heartbleed.as_str()), ("127.0.0.1", "vulnerable"));
    assert_eq!((results[1].address.as_str(), results[1].heartbleed.as_str()), ("::1", "not-vulnerable"));
    for r in &results {
        assert_eq!(r.host.as_deref(), Some("multi.test"));
        assert_eq!(r.sni.as_deref(), Some("multi.test"));
    }
    drop((v4, v6));
    task.abort();
}
