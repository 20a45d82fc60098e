use std::collections::BTreeMap;
use std::str::FromStr;

use gantry_client::k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
use gantry_client::k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..ObjectMeta::default()
    }
}

fn port(name: &str, protocol: &str, number: i32) -> ServicePort {
    ServicePort {
        name: (!name.is_empty()).then(|| name.into()),
        protocol: Some(protocol.into()),
        port: number,
        ..ServicePort::default()
    }
}

fn service(namespace: &str, name: &str, cluster_ips: &[&str], ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: meta(namespace, name),
        spec: Some(ServiceSpec {
            cluster_ip: cluster_ips.first().map(|ip| (*ip).into()),
            cluster_ips: Some(cluster_ips.iter().map(|ip| (*ip).into()).collect()),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn external(namespace: &str, name: &str, target: &str) -> Service {
    Service {
        metadata: meta(namespace, name),
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(target.into()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// An endpoint: address, hostname, ready.
type Ep<'a> = (&'a str, Option<&'a str>, Option<bool>);

fn slice(
    namespace: &str,
    name: &str,
    service: &str,
    endpoints: &[Ep<'_>],
    ports: &[(&str, i32)],
) -> EndpointSlice {
    let mut meta = meta(namespace, name);
    meta.labels = Some(BTreeMap::from([(
        SERVICE_NAME_LABEL.to_owned(),
        service.to_owned(),
    )]));
    EndpointSlice {
        metadata: meta,
        address_type: if endpoints.first().is_some_and(|e| e.0.contains(':')) {
            "IPv6".into()
        } else {
            "IPv4".into()
        },
        endpoints: endpoints
            .iter()
            .map(|(ip, hostname, ready)| Endpoint {
                addresses: vec![(*ip).into()],
                hostname: hostname.map(Into::into),
                conditions: Some(EndpointConditions {
                    ready: *ready,
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: Some(
            ports
                .iter()
                .map(|(name, number)| EndpointPort {
                    name: Some((*name).into()),
                    port: Some(*number),
                    protocol: Some("TCP".into()),
                    ..EndpointPort::default()
                })
                .collect(),
        ),
    }
}

fn zone() -> Zone {
    Zone::new(&ZoneConfig::default()).unwrap()
}

fn name(text: &str) -> Name {
    Name::from_str(text).unwrap()
}

/// The answer's code and records as text (`name ttl type data`), in zone order.
fn ask(zone: &Zone, query: &str, qtype: RecordType) -> (ResponseCode, Vec<String>, bool) {
    match zone.lookup(&name(query), qtype) {
        Lookup::Answer(answer) => (
            answer.code,
            answer
                .answers(0)
                .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
                .collect(),
            answer.soa.is_some(),
        ),
        Lookup::Forward => (ResponseCode::Refused, vec!["forward".into()], false),
        Lookup::NotReady => (ResponseCode::ServFail, vec![], false),
    }
}

fn records(zone: &Zone, query: &str, qtype: RecordType) -> Vec<String> {
    let (code, records, soa) = ask(zone, query, qtype);
    assert_eq!(code, ResponseCode::NoError, "{query} {qtype}");
    assert!(!soa, "{query} {qtype}: a positive answer has no SOA");
    records
}

fn nodata(zone: &Zone, query: &str, qtype: RecordType) {
    assert_eq!(
        ask(zone, query, qtype),
        (ResponseCode::NoError, vec![], true),
        "{query} {qtype}: NODATA"
    );
}

fn nxdomain(zone: &Zone, query: &str, qtype: RecordType) {
    assert_eq!(
        ask(zone, query, qtype),
        (ResponseCode::NXDomain, vec![], true),
        "{query} {qtype}: NXDOMAIN"
    );
}

#[test]
fn cluster_ip_service_a_aaaa_srv_ptr() {
    let mut zone = zone();
    zone.apply_service(&service(
        "default",
        "web",
        &["10.96.0.10", "fd00::a"],
        vec![
            port("http", "TCP", 80),
            port("dns", "UDP", 53),
            port("", "TCP", 8080),
        ],
    ));
    assert_eq!(
        records(&zone, "web.default.svc.cluster.local.", RecordType::A),
        ["web.default.svc.cluster.local. 5 A 10.96.0.10"]
    );
    assert_eq!(
        records(&zone, "Web.DEFAULT.svc.Cluster.Local.", RecordType::AAAA),
        ["web.default.svc.cluster.local. 5 AAAA fd00::a"]
    );
    assert_eq!(
        records(
            &zone,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV
        ),
        ["_http._tcp.web.default.svc.cluster.local. 5 SRV 0 100 80 web.default.svc.cluster.local."]
    );
    assert_eq!(
        records(
            &zone,
            "_dns._udp.web.default.svc.cluster.local.",
            RecordType::SRV
        ),
        ["_dns._udp.web.default.svc.cluster.local. 5 SRV 0 100 53 web.default.svc.cluster.local."]
    );
    // The SRV answer carries the target's addresses in the additional section.
    let Lookup::Answer(answer) = zone.lookup(
        &name("_http._tcp.web.default.svc.cluster.local."),
        RecordType::SRV,
    ) else {
        panic!("no answer");
    };
    assert_eq!(answer.additionals.len(), 2);
    // Wrong protocol, unnamed port: nothing below; `_tcp` only has descendants.
    nxdomain(
        &zone,
        "_http._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    nodata(
        &zone,
        "_tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    nodata(&zone, "web.default.svc.cluster.local.", RecordType::TXT);
    nodata(&zone, "default.svc.cluster.local.", RecordType::A);
    nodata(&zone, "svc.cluster.local.", RecordType::A);
    nxdomain(&zone, "other.default.svc.cluster.local.", RecordType::A);
    nxdomain(&zone, "web.other.svc.cluster.local.", RecordType::A);
    nxdomain(&zone, "x.web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        records(&zone, "10.0.96.10.in-addr.arpa.", RecordType::PTR),
        ["10.0.96.10.in-addr.arpa. 5 PTR web.default.svc.cluster.local."]
    );
    let v6 = Name::from(IpAddr::from_str("fd00::a").unwrap()).to_ascii();
    assert_eq!(
        records(&zone, &v6, RecordType::PTR),
        [format!("{v6} 5 PTR web.default.svc.cluster.local.")]
    );
    // Reverse names the zone does not have, and other types there, go upstream.
    assert_eq!(
        ask(&zone, "11.0.96.10.in-addr.arpa.", RecordType::PTR).1,
        ["forward"]
    );
    assert_eq!(
        ask(&zone, "10.0.96.10.in-addr.arpa.", RecordType::A).1,
        ["forward"]
    );
    assert_eq!(ask(&zone, "example.com.", RecordType::A).1, ["forward"]);
    assert_eq!(ask(&zone, "local.", RecordType::SOA).1, ["forward"]);
}

#[test]
fn headless_service_ready_endpoints_hostnames_srv_ptr() {
    let mut zone = zone();
    zone.apply_service(&service(
        "db",
        "pg",
        &["None"],
        vec![port("pg", "TCP", 5432)],
    ));
    // No ready endpoint yet: the name does not exist.
    nxdomain(&zone, "pg.db.svc.cluster.local.", RecordType::A);
    zone.apply_endpoint_slice(&slice(
        "db",
        "pg-abc",
        "pg",
        &[
            ("10.1.0.1", Some("pg-0"), Some(true)),
            ("10.1.0.2", None, None),
            ("10.1.0.3", Some("pg-2"), Some(false)),
        ],
        &[("pg", 15432)],
    ));
    assert_eq!(
        records(&zone, "pg.db.svc.cluster.local.", RecordType::A),
        [
            "pg.db.svc.cluster.local. 5 A 10.1.0.1",
            "pg.db.svc.cluster.local. 5 A 10.1.0.2"
        ]
    );
    assert_eq!(
        records(&zone, "pg-0.pg.db.svc.cluster.local.", RecordType::A),
        ["pg-0.pg.db.svc.cluster.local. 5 A 10.1.0.1"]
    );
    assert_eq!(
        records(&zone, "10-1-0-2.pg.db.svc.cluster.local.", RecordType::A),
        ["10-1-0-2.pg.db.svc.cluster.local. 5 A 10.1.0.2"]
    );
    // Not ready: nothing.
    nxdomain(&zone, "pg-2.pg.db.svc.cluster.local.", RecordType::A);
    assert_eq!(
        records(&zone, "_pg._tcp.pg.db.svc.cluster.local.", RecordType::SRV),
        [
            "_pg._tcp.pg.db.svc.cluster.local. 5 SRV 0 100 15432 10-1-0-2.pg.db.svc.cluster.local.",
            "_pg._tcp.pg.db.svc.cluster.local. 5 SRV 0 100 15432 pg-0.pg.db.svc.cluster.local.",
        ]
    );
    assert_eq!(
        records(&zone, "1.0.1.10.in-addr.arpa.", RecordType::PTR),
        ["1.0.1.10.in-addr.arpa. 5 PTR pg-0.pg.db.svc.cluster.local."]
    );
    assert_eq!(
        ask(&zone, "3.0.1.10.in-addr.arpa.", RecordType::PTR).1,
        ["forward"]
    );
    nodata(&zone, "pg.db.svc.cluster.local.", RecordType::AAAA);

    // Rotation spreads the first address.
    let Lookup::Answer(answer) = zone.lookup(&name("pg.db.svc.cluster.local."), RecordType::A)
    else {
        panic!("no answer");
    };
    let first = |turn| answer.answers(turn).next().unwrap().data.to_string();
    assert_ne!(first(1), first(2));
    assert_eq!(answer.answers(1).count(), 2);

    // publishNotReadyAddresses makes every endpoint count.
    let mut publish = service("db", "pg", &["None"], vec![port("pg", "TCP", 5432)]);
    publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    zone.apply_service(&publish);
    assert_eq!(
        records(&zone, "pg-2.pg.db.svc.cluster.local.", RecordType::A),
        ["pg-2.pg.db.svc.cluster.local. 5 A 10.1.0.3"]
    );
    assert_eq!(
        records(&zone, "pg.db.svc.cluster.local.", RecordType::A).len(),
        3
    );
}

#[test]
fn headless_endpoints_across_slices_and_families() {
    let mut zone = zone();
    zone.apply_service(&service("ns", "h", &["None"], vec![]));
    zone.apply_endpoint_slice(&slice("ns", "h-1", "h", &[("10.0.0.1", None, None)], &[]));
    zone.apply_endpoint_slice(&slice(
        "ns",
        "h-2",
        "h",
        &[("10.0.0.2", None, None), ("10.0.0.1", None, None)],
        &[],
    ));
    zone.apply_endpoint_slice(&slice(
        "ns",
        "h-6",
        "h",
        &[("fd00::1", Some("six"), None)],
        &[],
    ));
    assert_eq!(
        records(&zone, "h.ns.svc.cluster.local.", RecordType::A).len(),
        2
    );
    assert_eq!(
        records(&zone, "h.ns.svc.cluster.local.", RecordType::AAAA),
        ["h.ns.svc.cluster.local. 5 AAAA fd00::1"]
    );
    assert_eq!(
        records(&zone, "six.h.ns.svc.cluster.local.", RecordType::AAAA),
        ["six.h.ns.svc.cluster.local. 5 AAAA fd00::1"]
    );
    // Slices that arrive before their Service wait for it, and stay when it goes.
    zone.apply_endpoint_slice(&slice(
        "ns",
        "late-1",
        "late",
        &[("10.0.0.9", None, None)],
        &[],
    ));
    nxdomain(&zone, "late.ns.svc.cluster.local.", RecordType::A);
    zone.apply_service(&service("ns", "late", &["None"], vec![]));
    assert_eq!(
        records(&zone, "late.ns.svc.cluster.local.", RecordType::A).len(),
        1
    );
    zone.delete_service("ns", "late");
    nxdomain(&zone, "late.ns.svc.cluster.local.", RecordType::A);
    zone.apply_service(&service("ns", "late", &["None"], vec![]));
    assert_eq!(
        records(&zone, "late.ns.svc.cluster.local.", RecordType::A).len(),
        1
    );
}

#[test]
fn external_name_is_a_cname() {
    let mut zone = zone();
    zone.apply_service(&external("default", "ext", "www.Example.com."));
    assert_eq!(
        records(&zone, "ext.default.svc.cluster.local.", RecordType::A),
        ["ext.default.svc.cluster.local. 5 CNAME www.example.com."]
    );
    let Lookup::Answer(answer) =
        zone.lookup(&name("ext.default.svc.cluster.local."), RecordType::AAAA)
    else {
        panic!("no answer");
    };
    assert_eq!(
        answer.cname_target.map(ToString::to_string).as_deref(),
        Some("www.example.com.")
    );
    let Lookup::Answer(answer) =
        zone.lookup(&name("ext.default.svc.cluster.local."), RecordType::CNAME)
    else {
        panic!("no answer");
    };
    assert!(answer.cname_target.is_none());
    assert_eq!(answer.answers(0).count(), 1);
    // An IP is no external name.
    zone.apply_service(&external("default", "ext", "192.0.2.1"));
    nxdomain(&zone, "ext.default.svc.cluster.local.", RecordType::A);
}

#[test]
fn pod_names_are_answered_from_the_name() {
    let zone = zone();
    assert_eq!(
        records(
            &zone,
            "10-244-1-7.anything.pod.cluster.local.",
            RecordType::A
        ),
        ["10-244-1-7.anything.pod.cluster.local. 5 A 10.244.1.7"]
    );
    assert_eq!(
        records(&zone, "fd00--7.ns.pod.cluster.local.", RecordType::AAAA),
        ["fd00--7.ns.pod.cluster.local. 5 AAAA fd00::7"]
    );
    nodata(&zone, "10-244-1-7.ns.pod.cluster.local.", RecordType::AAAA);
    nodata(&zone, "ns.pod.cluster.local.", RecordType::A);
    nodata(&zone, "pod.cluster.local.", RecordType::A);
    nxdomain(&zone, "10-244-1-300.ns.pod.cluster.local.", RecordType::A);
    nxdomain(&zone, "web.ns.pod.cluster.local.", RecordType::A);
    nxdomain(&zone, "x.10-244-1-7.ns.pod.cluster.local.", RecordType::A);
}

#[test]
fn apex_soa_version_and_negative_answers() {
    let zone = zone();
    let soa = records(&zone, "cluster.local.", RecordType::SOA);
    assert_eq!(soa.len(), 1);
    assert!(
        soa[0].starts_with("cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local."),
        "{soa:?}"
    );
    assert_eq!(
        records(&zone, "dns-version.cluster.local.", RecordType::TXT),
        ["dns-version.cluster.local. 5 TXT 1.0.1"]
    );
    nodata(&zone, "cluster.local.", RecordType::A);
    nxdomain(&zone, "nothing.cluster.local.", RecordType::A);
    // Nothing until the zone is complete.
    let mut zone = zone;
    zone.set_complete(false);
    assert!(matches!(
        zone.lookup(&name("cluster.local."), RecordType::SOA),
        Lookup::NotReady
    ));
    assert!(matches!(
        zone.lookup(&name("example.com."), RecordType::A),
        Lookup::Forward
    ));
}

#[test]
fn other_domains_and_ttls() {
    let zone = Zone::new(&ZoneConfig {
        domain: "Corp.Example.".into(),
        ttl: 30,
    })
    .unwrap();
    assert_eq!(
        records(&zone, "dns-version.corp.example.", RecordType::TXT),
        ["dns-version.corp.example. 30 TXT 1.0.1"]
    );
    assert_eq!(
        ask(&zone, "dns-version.cluster.local.", RecordType::TXT).1,
        ["forward"]
    );
    assert!(
        Zone::new(&ZoneConfig {
            domain: ".".into(),
            ttl: 5
        })
        .is_err()
    );
}

#[test]
fn updates_and_deletes_touch_one_service() {
    let mut zone = zone();
    zone.apply_service(&service(
        "a",
        "one",
        &["10.96.0.1"],
        vec![port("http", "TCP", 80)],
    ));
    zone.apply_service(&service("a", "two", &["10.96.0.2"], vec![]));
    let names_before = zone.names.len();
    // A new address and port replace the old ones.
    zone.apply_service(&service(
        "a",
        "one",
        &["10.96.0.9"],
        vec![port("web", "TCP", 8080)],
    ));
    assert_eq!(
        records(&zone, "one.a.svc.cluster.local.", RecordType::A),
        ["one.a.svc.cluster.local. 5 A 10.96.0.9"]
    );
    nxdomain(
        &zone,
        "_http._tcp.one.a.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        records(&zone, "_web._tcp.one.a.svc.cluster.local.", RecordType::SRV).len(),
        1
    );
    assert_eq!(
        ask(&zone, "1.0.96.10.in-addr.arpa.", RecordType::PTR).1,
        ["forward"]
    );
    assert_eq!(
        records(&zone, "9.0.96.10.in-addr.arpa.", RecordType::PTR).len(),
        1
    );
    assert_eq!(zone.names.len(), names_before);
    // Deleting one leaves the other and the namespace.
    zone.delete_service("a", "one");
    nxdomain(&zone, "one.a.svc.cluster.local.", RecordType::A);
    nxdomain(&zone, "_web._tcp.one.a.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        ask(&zone, "9.0.96.10.in-addr.arpa.", RecordType::PTR).1,
        ["forward"]
    );
    assert_eq!(
        records(&zone, "two.a.svc.cluster.local.", RecordType::A).len(),
        1
    );
    nodata(&zone, "a.svc.cluster.local.", RecordType::A);
    // The last one takes the namespace name with it.
    zone.delete_service("a", "two");
    nxdomain(&zone, "a.svc.cluster.local.", RecordType::A);
    nxdomain(&zone, "svc.cluster.local.", RecordType::A);
    assert_eq!(zone.service_count(), 0);
    assert!(zone.services.is_empty());
    assert!(zone.reverse.is_empty());
    // The apex, dns-version and pod.<domain> are all that is left.
    assert_eq!(
        zone.names.len(),
        3,
        "{:?}",
        zone.names.keys().collect::<Vec<_>>()
    );
}

#[test]
fn endpoint_slice_updates_moves_and_deletes() {
    let mut zone = zone();
    zone.apply_service(&service("ns", "h", &["None"], vec![]));
    zone.apply_service(&service("ns", "g", &["None"], vec![]));
    zone.apply_endpoint_slice(&slice(
        "ns",
        "s1",
        "h",
        &[("10.0.0.1", Some("x"), None)],
        &[],
    ));
    assert_eq!(
        records(&zone, "x.h.ns.svc.cluster.local.", RecordType::A).len(),
        1
    );
    // The endpoint turns not ready: gone, and with it the Service name.
    zone.apply_endpoint_slice(&slice(
        "ns",
        "s1",
        "h",
        &[("10.0.0.1", Some("x"), Some(false))],
        &[],
    ));
    nxdomain(&zone, "x.h.ns.svc.cluster.local.", RecordType::A);
    nxdomain(&zone, "h.ns.svc.cluster.local.", RecordType::A);
    // A slice relabelled to another Service moves.
    zone.apply_endpoint_slice(&slice(
        "ns",
        "s1",
        "g",
        &[("10.0.0.1", Some("x"), None)],
        &[],
    ));
    assert_eq!(
        records(&zone, "x.g.ns.svc.cluster.local.", RecordType::A).len(),
        1
    );
    nxdomain(&zone, "x.h.ns.svc.cluster.local.", RecordType::A);
    // The same address under two Services: two PTRs; deleting one slice leaves the other's.
    zone.apply_endpoint_slice(&slice(
        "ns",
        "s2",
        "h",
        &[("10.0.0.1", Some("y"), None)],
        &[],
    ));
    assert_eq!(
        records(&zone, "1.0.0.10.in-addr.arpa.", RecordType::PTR).len(),
        2
    );
    zone.delete_endpoint_slice("ns", "s1");
    nxdomain(&zone, "g.ns.svc.cluster.local.", RecordType::A);
    assert_eq!(
        records(&zone, "1.0.0.10.in-addr.arpa.", RecordType::PTR),
        ["1.0.0.10.in-addr.arpa. 5 PTR y.h.ns.svc.cluster.local."]
    );
    assert_eq!(zone.endpoint_slice_keys(), ["ns/s2"]);
    // A slice losing its label counts as deleted.
    let mut unlabelled = slice("ns", "s2", "h", &[("10.0.0.1", Some("y"), None)], &[]);
    unlabelled.metadata.labels = None;
    zone.apply_endpoint_slice(&unlabelled);
    nxdomain(&zone, "h.ns.svc.cluster.local.", RecordType::A);
    assert!(zone.reverse.is_empty());
    assert!(zone.endpoint_slice_keys().is_empty());
}

#[test]
fn a_service_without_an_address_has_no_records() {
    let mut zone = zone();
    zone.apply_service(&service(
        "ns",
        "pending",
        &[],
        vec![port("http", "TCP", 80)],
    ));
    nxdomain(&zone, "pending.ns.svc.cluster.local.", RecordType::A);
    nxdomain(
        &zone,
        "_http._tcp.pending.ns.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(zone.service_keys(), ["ns/pending"]);
}

#[test]
fn any_returns_every_record_of_the_name() {
    let mut zone = zone();
    zone.apply_service(&service("ns", "d", &["10.96.0.3", "fd00::3"], vec![]));
    assert_eq!(
        records(&zone, "d.ns.svc.cluster.local.", RecordType::ANY).len(),
        2
    );
}
