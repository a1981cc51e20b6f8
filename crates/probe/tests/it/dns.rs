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
