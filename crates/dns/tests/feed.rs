//! `gantry_dns::run` against Gantry's real API server (in process, over a memory store, reached through a
//! kube client without TLS): readiness after the first listing, Services and EndpointSlices made before and
//! after the start, a new Service resolvable within a second, deletions.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: failed unwraps fail the test

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_apiserver::{Api as ApiServer, ApiConfig, PodAdmission, ServiceRanges};
use gantry_client::k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use gantry_client::k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_client::kube::api::{DeleteParams, PostParams};
use gantry_client::{Api, Client};
use gantry_dns::{DnsConfig, Listeners, Readiness, run};
use gantry_pki::{Identity, Tokens};
use gantry_store::MemoryStore;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

/// A kube client whose requests go straight to an in-process API server, as its administrator.
async fn api_client(dir: &std::path::Path) -> Client {
    let config = ApiConfig {
        services: ServiceRanges::default(),
        advertise: "127.0.0.1:6443".parse().unwrap(),
        nodes: None,
        pod_admission: PodAdmission::default(),
    };
    let tokens = Tokens::load_or_create(dir).unwrap();
    let api = Arc::new(
        ApiServer::start(Arc::new(MemoryStore::new()), tokens, config)
            .await
            .unwrap(),
    );
    let admin = Identity {
        user: "gantry-admin".into(),
        groups: vec!["system:masters".into()],
    };
    gantry_client::in_process(move |request| {
        let (api, admin) = (api.clone(), admin.clone());
        async move { api.handle(request, Some(admin)).await }
    })
}

fn service(name: &str, cluster_ip: Option<&str>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: cluster_ip.map(Into::into),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

async fn ask(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut request = Message::new(4242, MessageType::Query, OpCode::Query);
    request.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&request.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0; 65535];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    Message::from_vec(&buf[..len]).unwrap()
}

fn addresses(reply: &Message) -> Vec<String> {
    let mut out: Vec<String> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// Asks until `done` holds for the answer (at most 10 s); how long that took.
async fn until(server: SocketAddr, name: &str, done: impl Fn(&Message) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let reply = ask(server, name, RecordType::A).await;
        if done(&reply) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: still {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_endpoint_slices_feed_the_zone() {
    let dir = tempfile::tempdir().unwrap();
    let client = api_client(dir.path()).await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let before = services
        .create(&PostParams::default(), &service("before", None))
        .await
        .unwrap();
    let before_ip = before.spec.unwrap().cluster_ip.unwrap();

    let listeners = Listeners::bind(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let server = listeners.udp_addresses()[0];
    let ready = Readiness::default();
    let config = DnsConfig {
        ready: ready.clone(),
        ..DnsConfig::default()
    };
    let dns = tokio::spawn(run(client.clone(), config, listeners));
    tokio::time::timeout(Duration::from_secs(10), ready.wait())
        .await
        .unwrap();
    assert!(ready.is_ready());

    let reply = ask(server, "before.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(addresses(&reply), [before_ip]);
    // The `kubernetes` Service the API server makes at its start is there too.
    let reply = ask(
        server,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1);

    // A new Service: resolvable within a second of its creation (the figure).
    let created = Instant::now();
    let after = services
        .create(&PostParams::default(), &service("after", None))
        .await
        .unwrap();
    let after_ip = after.spec.unwrap().cluster_ip.unwrap();
    until(server, "after.default.svc.cluster.local.", |r| {
        addresses(r) == [after_ip.clone()]
    })
    .await;
    let took = created.elapsed();
    eprintln!("a new Service was resolvable {took:?} after its create was sent");
    assert!(took < Duration::from_secs(1), "resolvable after {took:?}");

    // A headless Service gets its addresses from its EndpointSlices.
    services
        .create(&PostParams::default(), &service("db", Some("None")))
        .await
        .unwrap();
    let reply = ask(server, "db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some("db-1".into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_owned(),
                "db".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: ["10.244.0.7", "10.244.0.8"]
            .iter()
            .enumerate()
            .map(|(i, ip)| Endpoint {
                addresses: vec![(*ip).into()],
                hostname: Some(format!("db-{i}")),
                ..Endpoint::default()
            })
            .collect(),
        ports: None,
    };
    slices.create(&PostParams::default(), &slice).await.unwrap();
    until(server, "db.default.svc.cluster.local.", |r| {
        addresses(r) == ["10.244.0.7", "10.244.0.8"]
    })
    .await;
    let reply = ask(server, "db-1.db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(addresses(&reply), ["10.244.0.8"]);

    // Deletions.
    slices
        .delete("db-1", &DeleteParams::default())
        .await
        .unwrap();
    until(server, "db.default.svc.cluster.local.", |r| {
        r.metadata.response_code == ResponseCode::NXDomain
    })
    .await;
    services
        .delete("before", &DeleteParams::default())
        .await
        .unwrap();
    until(server, "before.default.svc.cluster.local.", |r| {
        r.metadata.response_code == ResponseCode::NXDomain
    })
    .await;
    assert!(!dns.is_finished());
    dns.abort();
}
