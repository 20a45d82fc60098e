//! The DNS server over real loopback sockets: the zone's records over UDP and TCP, negative answers,
//! truncation, and forwarding to fake upstream resolvers started here.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use gantry_client::k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use gantry_client::k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_dns::{Listeners, ServerConfig, Zone, ZoneConfig, serve};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(5);

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..ObjectMeta::default()
    }
}

fn service(namespace: &str, name: &str, spec: ServiceSpec) -> Service {
    Service {
        metadata: meta(namespace, name),
        spec: Some(spec),
        ..Service::default()
    }
}

fn cluster_ip(ips: &[&str], ports: &[(&str, i32)]) -> ServiceSpec {
    ServiceSpec {
        cluster_ip: Some(ips[0].into()),
        cluster_ips: Some(ips.iter().map(|ip| (*ip).into()).collect()),
        ports: Some(
            ports
                .iter()
                .map(|(name, port)| ServicePort {
                    name: Some((*name).into()),
                    port: *port,
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                })
                .collect(),
        ),
        ..ServiceSpec::default()
    }
}

fn headless_slice(
    namespace: &str,
    service: &str,
    ips: &[String],
    hostnames: bool,
) -> EndpointSlice {
    let mut meta = meta(namespace, &format!("{service}-x"));
    meta.labels = Some(BTreeMap::from([(
        "kubernetes.io/service-name".to_owned(),
        service.to_owned(),
    )]));
    EndpointSlice {
        metadata: meta,
        address_type: "IPv4".into(),
        endpoints: ips
            .iter()
            .enumerate()
            .map(|(i, ip)| Endpoint {
                addresses: vec![ip.clone()],
                hostname: hostnames.then(|| format!("{service}-{i}")),
                ..Endpoint::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("peer".into()),
            port: Some(7000),
            protocol: Some("TCP".into()),
            ..EndpointPort::default()
        }]),
    }
}

/// A zone with a ClusterIP Service, a headless StatefulSet-like Service of 3, a headless one of `many`
/// addresses, and ExternalName Services pointing outside and inside the zone.
fn test_zone(many: usize) -> Zone {
    let mut zone = Zone::new(&ZoneConfig::default()).unwrap();
    zone.apply_service(&service(
        "default",
        "web",
        cluster_ip(&["10.96.0.10", "fd00::10"], &[("http", 80)]),
    ));
    let headless = || ServiceSpec {
        cluster_ip: Some("None".into()),
        ..ServiceSpec::default()
    };
    zone.apply_service(&service("db", "pg", headless()));
    let ips: Vec<String> = (1..=3).map(|i| format!("10.1.0.{i}")).collect();
    zone.apply_endpoint_slice(&headless_slice("db", "pg", &ips, true));
    zone.apply_service(&service("db", "many", headless()));
    let ips: Vec<String> = (1..=many)
        .map(|i| format!("10.2.{}.{}", i / 250, i % 250 + 1))
        .collect();
    zone.apply_endpoint_slice(&headless_slice("db", "many", &ips, false));
    for (name, target) in [
        ("ext", "www.example.com"),
        ("alias", "web.default.svc.cluster.local"),
    ] {
        zone.apply_service(&service(
            "default",
            name,
            ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some(target.into()),
                ..ServiceSpec::default()
            },
        ));
    }
    zone
}

/// Starts a server for `zone` on loopback (UDP and TCP on one port).
async fn start(zone: Zone, upstreams: Vec<SocketAddr>, timeout: Duration) -> SocketAddr {
    let listeners = Listeners::bind(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let address = listeners.udp_addresses()[0];
    assert_eq!(listeners.tcp_addresses(), [address]);
    let config = ServerConfig {
        upstreams,
        timeout,
        ..ServerConfig::default()
    };
    tokio::spawn(serve(Arc::new(RwLock::new(zone)), config, listeners));
    address
}

fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut message = Message::new(rand_id(name), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(size);
        message.set_edns(opt);
    }
    message
}

/// A query ID that differs between names (any value works; the server must echo it).
fn rand_id(name: &str) -> u16 {
    name.bytes()
        .fold(7u16, |h, b| h.wrapping_mul(31).wrapping_add(u16::from(b)))
}

async fn udp_exchange(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0; 65535];
    let (len, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf.truncate(len);
    buf
}

async fn tcp_exchange(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(server).await.unwrap();
    tcp_exchange_on(&mut stream, bytes).await
}

async fn tcp_exchange_on(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).unwrap();
    stream.write_all(&len.to_be_bytes()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let len = tokio::time::timeout(WAIT, stream.read_u16())
        .await
        .unwrap()
        .unwrap();
    let mut reply = vec![0; usize::from(len)];
    stream.read_exact(&mut reply).await.unwrap();
    reply
}

/// Asks over UDP and checks what every answer must have: the ID, the question echoed, QR and RA.
async fn ask(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    ask_with(server, query(name, qtype, None), false).await
}

async fn ask_with(server: SocketAddr, request: Message, tcp: bool) -> Message {
    let bytes = request.to_vec().unwrap();
    let reply = if tcp {
        tcp_exchange(server, &bytes).await
    } else {
        udp_exchange(server, &bytes).await
    };
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.id, request.metadata.id);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    assert_eq!(
        reply.queries, request.queries,
        "the question is echoed as asked"
    );
    assert!(reply.metadata.recursion_available);
    reply
}

fn texts(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

#[tokio::test]
async fn zone_records_over_udp() {
    let server = start(test_zone(3), vec![], WAIT).await;

    let a = ask(server, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert!(a.metadata.authoritative);
    assert_eq!(
        texts(&a.answers),
        ["web.default.svc.cluster.local. 5 A 10.96.0.10"]
    );
    assert!(a.authorities.is_empty());

    // Names are case-insensitive; the question comes back as asked.
    let aaaa = ask(server, "WEB.Default.SVC.cluster.LOCAL.", RecordType::AAAA).await;
    assert_eq!(
        texts(&aaaa.answers),
        ["web.default.svc.cluster.local. 5 AAAA fd00::10"]
    );

    let srv = ask(
        server,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        texts(&srv.answers),
        ["_http._tcp.web.default.svc.cluster.local. 5 SRV 0 100 80 web.default.svc.cluster.local."]
    );
    assert_eq!(
        sorted(texts(&srv.additionals)),
        [
            "web.default.svc.cluster.local. 5 A 10.96.0.10",
            "web.default.svc.cluster.local. 5 AAAA fd00::10"
        ]
    );

    let headless = ask(server, "pg.db.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        sorted(texts(&headless.answers)),
        [
            "pg.db.svc.cluster.local. 5 A 10.1.0.1",
            "pg.db.svc.cluster.local. 5 A 10.1.0.2",
            "pg.db.svc.cluster.local. 5 A 10.1.0.3"
        ]
    );
    let pet = ask(server, "pg-1.pg.db.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        texts(&pet.answers),
        ["pg-1.pg.db.svc.cluster.local. 5 A 10.1.0.2"]
    );
    let peers = ask(
        server,
        "_peer._tcp.pg.db.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(peers.answers.len(), 3);
    assert_eq!(peers.additionals.len(), 3);
    let dashed = ask(server, "10-2-0-2.many.db.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        texts(&dashed.answers),
        ["10-2-0-2.many.db.svc.cluster.local. 5 A 10.2.0.2"]
    );

    let ptr = ask(server, "10.0.96.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(
        texts(&ptr.answers),
        ["10.0.96.10.in-addr.arpa. 5 PTR web.default.svc.cluster.local."]
    );
    let ptr = ask(server, "3.0.1.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(
        texts(&ptr.answers),
        ["3.0.1.10.in-addr.arpa. 5 PTR pg-2.pg.db.svc.cluster.local."]
    );

    // An ExternalName inside the zone is followed there.
    let alias = ask(server, "alias.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        texts(&alias.answers),
        [
            "alias.default.svc.cluster.local. 5 CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. 5 A 10.96.0.10"
        ]
    );
    let cname = ask(server, "ext.default.svc.cluster.local.", RecordType::CNAME).await;
    assert_eq!(
        texts(&cname.answers),
        ["ext.default.svc.cluster.local. 5 CNAME www.example.com."]
    );

    let pod = ask(
        server,
        "10-244-0-5.default.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        texts(&pod.answers),
        ["10-244-0-5.default.pod.cluster.local. 5 A 10.244.0.5"]
    );

    let txt = ask(server, "dns-version.cluster.local.", RecordType::TXT).await;
    assert_eq!(
        texts(&txt.answers),
        ["dns-version.cluster.local. 5 TXT 1.0.1"]
    );
    let soa = ask(server, "cluster.local.", RecordType::SOA).await;
    assert_eq!(soa.answers.len(), 1);
    assert_eq!(soa.answers[0].record_type(), RecordType::SOA);
}

#[tokio::test]
async fn negative_answers_carry_the_soa() {
    let server = start(test_zone(3), vec![], WAIT).await;
    for (name, qtype, code) in [
        (
            "nope.default.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "x.web.default.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "web.default.svc.cluster.local.",
            RecordType::MX,
            ResponseCode::NoError,
        ),
        (
            "default.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
        ),
        (
            "10-244-0-5.default.pod.cluster.local.",
            RecordType::AAAA,
            ResponseCode::NoError,
        ),
    ] {
        let reply = ask(server, name, qtype).await;
        assert_eq!(reply.metadata.response_code, code, "{name} {qtype}");
        assert!(reply.metadata.authoritative, "{name}");
        assert!(reply.answers.is_empty(), "{name}");
        assert_eq!(reply.authorities.len(), 1, "{name}");
        let soa = &reply.authorities[0];
        assert_eq!(soa.name.to_string(), "cluster.local.");
        let RData::SOA(data) = &soa.data else {
            panic!("{name}: not a SOA: {soa}");
        };
        assert_eq!((soa.ttl, data.minimum), (5, 5));
    }
}

/// A resolver that answers A and AAAA with fixed addresses (TTL 1234), NXDOMAIN for `missing.*`, and for
/// `big.*` 40 addresses over TCP but a truncated empty answer over UDP. It notes what it was asked.
#[derive(Clone, Default)]
struct FakeUpstream {
    asked: Arc<Mutex<Vec<String>>>,
}

impl FakeUpstream {
    fn reply(request: &Message, udp: bool) -> Vec<u8> {
        let question = &request.queries[0];
        let mut reply = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        reply.metadata.recursion_desired = request.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.add_query(question.clone());
        let name = question.name.to_ascii();
        let address = |i: u8| -> Record {
            match question.query_type {
                RecordType::AAAA => Record::from_rdata(
                    question.name.clone(),
                    1234,
                    RData::AAAA(AAAA("2001:db8::53".parse().unwrap())),
                ),
                _ => {
                    Record::from_rdata(question.name.clone(), 1234, RData::A(A::new(192, 0, 2, i)))
                }
            }
        };
        if name.starts_with("missing.") {
            reply.metadata.response_code = ResponseCode::NXDomain;
        } else if name.starts_with("big.") && udp {
            reply.metadata.truncation = true;
        } else if name.starts_with("big.") {
            reply.add_answers((1..=40).map(address));
        } else {
            reply.add_answer(address(53));
        }
        reply.to_vec().unwrap()
    }

    fn note(&self, transport: &str, request: &Message) {
        let question = &request.queries[0];
        self.asked.lock().unwrap().push(format!(
            "{transport} {} {}",
            question.name, question.query_type
        ));
    }

    /// Serves UDP and TCP on one loopback port.
    async fn start(&self) -> SocketAddr {
        // A free UDP port whose TCP twin is free too (other tests hold TCP ports on loopback meanwhile).
        let (udp, tcp, address) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let address = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(address).await {
                break (udp, tcp, address);
            }
        };
        let this = self.clone();
        tokio::spawn(async move {
            let mut buf = vec![0; 65535];
            loop {
                let (len, peer) = udp.recv_from(&mut buf).await.unwrap();
                let request = Message::from_vec(&buf[..len]).unwrap();
                this.note("udp", &request);
                udp.send_to(&Self::reply(&request, true), peer)
                    .await
                    .unwrap();
            }
        });
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = tcp.accept().await.unwrap();
                let this = this.clone();
                tokio::spawn(async move {
                    let len = stream.read_u16().await.unwrap();
                    let mut query = vec![0; usize::from(len)];
                    stream.read_exact(&mut query).await.unwrap();
                    let request = Message::from_vec(&query).unwrap();
                    this.note("tcp", &request);
                    let reply = Self::reply(&request, false);
                    stream
                        .write_all(&u16::try_from(reply.len()).unwrap().to_be_bytes())
                        .await
                        .unwrap();
                    stream.write_all(&reply).await.unwrap();
                });
            }
        });
        address
    }

    fn asked(&self) -> Vec<String> {
        std::mem::take(&mut *self.asked.lock().unwrap())
    }
}

#[tokio::test]
async fn other_names_are_forwarded_unchanged() {
    let upstream = FakeUpstream::default();
    let upstream_address = upstream.start().await;
    // A first upstream that never answers: the server moves on to the next after its timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = start(
        test_zone(3),
        vec![silent.local_addr().unwrap(), upstream_address],
        Duration::from_millis(300),
    )
    .await;

    for (name, qtype) in [
        ("www.example.com.", RecordType::A),
        ("Www.Example.COM.", RecordType::AAAA),
        ("missing.example.com.", RecordType::A),
        // Reverse names the zone has no PTR for, and names of other domains.
        ("9.9.9.10.in-addr.arpa.", RecordType::PTR),
        ("cluster.local.example.", RecordType::A),
    ] {
        let request = query(name, qtype, Some(1232));
        let bytes = request.to_vec().unwrap();
        let reply = udp_exchange(server, &bytes).await;
        assert_eq!(
            reply,
            FakeUpstream::reply(&request, true),
            "{name}: relayed byte for byte"
        );
    }
    assert_eq!(
        upstream.asked(),
        [
            "udp www.example.com. A",
            "udp Www.Example.COM. AAAA",
            "udp missing.example.com. A",
            "udp 9.9.9.10.in-addr.arpa. PTR",
            "udp cluster.local.example. A"
        ]
    );
    // The zone's own names never go upstream.
    ask(server, "web.default.svc.cluster.local.", RecordType::A).await;
    ask(server, "nope.default.svc.cluster.local.", RecordType::A).await;
    assert!(upstream.asked().is_empty());

    // Over TCP, forwarded over TCP.
    let request = query("www.example.com.", RecordType::A, None);
    let reply = tcp_exchange(server, &request.to_vec().unwrap()).await;
    assert_eq!(reply, FakeUpstream::reply(&request, false));
    assert_eq!(upstream.asked(), ["tcp www.example.com. A"]);
    drop(silent);
}

#[tokio::test]
async fn servfail_when_no_upstream_answers() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = start(
        test_zone(3),
        vec![silent.local_addr().unwrap()],
        Duration::from_millis(200),
    )
    .await;
    let started = std::time::Instant::now();
    let reply = ask(server, "www.example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() >= Duration::from_millis(200));
    // An ExternalName pointing outside cannot be followed either.
    let reply = ask(server, "ext.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);

    let lonely = start(test_zone(3), vec![], WAIT).await;
    let reply = ask(lonely, "www.example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    drop(silent);
}

#[tokio::test]
async fn external_names_are_followed_upstream() {
    let upstream = FakeUpstream::default();
    let upstream_address = upstream.start().await;
    let server = start(test_zone(3), vec![upstream_address], WAIT).await;
    let reply = ask(server, "ext.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        texts(&reply.answers),
        [
            "ext.default.svc.cluster.local. 5 CNAME www.example.com.",
            "www.example.com. 1234 A 192.0.2.53"
        ]
    );
    assert_eq!(upstream.asked(), ["udp www.example.com. A"]);
}

#[tokio::test]
async fn big_answers_are_truncated_over_udp_and_whole_over_tcp() {
    let upstream = FakeUpstream::default();
    let upstream_address = upstream.start().await;
    let server = start(test_zone(100), vec![upstream_address], WAIT).await;
    let name = "many.db.svc.cluster.local.";

    // 100 addresses do not fit in 512 bytes, nor in 1232 with EDNS: truncated, no records.
    for edns in [None, Some(4096)] {
        let reply = ask_with(server, query(name, RecordType::A, edns), false).await;
        assert!(reply.metadata.truncation, "EDNS {edns:?}");
        assert!(reply.answers.is_empty());
        assert_eq!(
            reply.edns.is_some(),
            edns.is_some(),
            "EDNS answered with EDNS"
        );
        if let Some(opt) = &reply.edns {
            assert_eq!(opt.max_payload(), 1232);
        }
    }
    // TCP has room for all of them.
    let reply = ask_with(server, query(name, RecordType::A, None), true).await;
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 100);

    // 40 addresses: too many for 512 bytes, fine with EDNS.
    let server = start(test_zone(40), vec![upstream_address], WAIT).await;
    let reply = ask_with(server, query(name, RecordType::A, None), false).await;
    assert!(reply.metadata.truncation);
    let reply = ask_with(server, query(name, RecordType::A, Some(1232)), false).await;
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 40);
    // SRV answers drop the additional section before truncating.
    let server = start(test_zone(20), vec![upstream_address], WAIT).await;
    let reply = ask_with(
        server,
        query(
            "_peer._tcp.many.db.svc.cluster.local.",
            RecordType::SRV,
            Some(1232),
        ),
        false,
    )
    .await;
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 20);
    assert!(reply.additionals.is_empty());

    // An upstream's truncated answer is relayed as it is; the client's retry over TCP gets everything.
    let request = query("big.example.com.", RecordType::A, None);
    let reply = udp_exchange(server, &request.to_vec().unwrap()).await;
    assert_eq!(reply, FakeUpstream::reply(&request, true));
    assert!(Message::from_vec(&reply).unwrap().metadata.truncation);
    let reply = tcp_exchange(server, &request.to_vec().unwrap()).await;
    assert_eq!(Message::from_vec(&reply).unwrap().answers.len(), 40);
    assert_eq!(
        upstream.asked(),
        ["udp big.example.com. A", "tcp big.example.com. A"]
    );
}

#[tokio::test]
async fn tcp_connections_carry_many_queries() {
    let server = start(test_zone(3), vec![], WAIT).await;
    let mut stream = TcpStream::connect(server).await.unwrap();
    for (name, qtype, count) in [
        ("web.default.svc.cluster.local.", RecordType::A, 1),
        ("pg.db.svc.cluster.local.", RecordType::A, 3),
        (
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            1,
        ),
        ("10.0.96.10.in-addr.arpa.", RecordType::PTR, 1),
        ("nope.default.svc.cluster.local.", RecordType::A, 0),
    ] {
        let request = query(name, qtype, None);
        let reply = tcp_exchange_on(&mut stream, &request.to_vec().unwrap()).await;
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.id, request.metadata.id);
        assert_eq!(reply.answers.len(), count, "{name}");
    }
}

#[tokio::test]
async fn malformed_queries_and_an_incomplete_zone() {
    let mut zone = test_zone(3);
    zone.set_complete(false);
    let server = start(zone, vec![], WAIT).await;
    // A header and garbage: FORMERR with the ID.
    let mut garbage = vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xff; 5]);
    let reply = udp_exchange(server, &garbage).await;
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.id, 0xabcd);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    // Two questions: FORMERR.
    let mut two = query("a.cluster.local.", RecordType::A, None);
    two.add_query(Query::query(
        Name::from_str("b.cluster.local.").unwrap(),
        RecordType::A,
    ));
    let reply = Message::from_vec(&udp_exchange(server, &two.to_vec().unwrap()).await).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    // The zone is not complete: SERVFAIL rather than a negative answer.
    let reply = ask(server, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(reply.answers.is_empty());
}

#[tokio::test]
async fn rotates_the_addresses_of_headless_services() {
    let server = start(test_zone(3), vec![], WAIT).await;
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let reply = ask(server, "pg.db.svc.cluster.local.", RecordType::A).await;
        let RData::A(a) = &reply.answers[0].data else {
            panic!("not an address");
        };
        firsts.insert(IpAddr::V4(a.0));
    }
    assert_eq!(firsts.len(), 3, "{firsts:?}");
}
