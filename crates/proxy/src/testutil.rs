//! Builders of Services and EndpointSlices for the unit tests.

use std::collections::BTreeMap;

use gantry_client::k8s_openapi::api::core::v1::{
    ClientIPConfig, LoadBalancerIngress, LoadBalancerStatus, Service, ServicePort, ServiceSpec,
    ServiceStatus, SessionAffinityConfig,
};
use gantry_client::k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::ProxyConfig;

pub(crate) fn config() -> ProxyConfig {
    let mut config = ProxyConfig::new(
        "node-a",
        vec!["10.150.100.1".parse().unwrap()],
        "10.150.0.0/20".parse().unwrap(),
        "10.151.0.0/16".parse().unwrap(),
    );
    config.table = "gtpx".into();
    config
}

/// A ClusterIP Service with `(name, protocol, port, nodePort)` ports (a nodePort makes it a NodePort
/// Service).
pub(crate) fn service(
    namespace: &str,
    name: &str,
    cluster_ip: &str,
    ports: &[(&str, &str, i32, i32)],
) -> Service {
    let node_ports = ports.iter().any(|p| p.3 != 0);
    Service {
        metadata: ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(if node_ports { "NodePort" } else { "ClusterIP" }.into()),
            cluster_ip: Some(cluster_ip.into()),
            cluster_ips: Some(vec![cluster_ip.into()]),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, protocol, port, node_port)| ServicePort {
                        name: (!name.is_empty()).then(|| (*name).into()),
                        protocol: Some((*protocol).into()),
                        port: *port,
                        node_port: (*node_port != 0).then_some(*node_port),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

pub(crate) fn spec(service: &mut Service) -> &mut ServiceSpec {
    service.spec.as_mut().unwrap()
}

pub(crate) fn with_affinity(mut service: Service, timeout: Option<i32>) -> Service {
    let spec = spec(&mut service);
    spec.session_affinity = Some("ClientIP".into());
    spec.session_affinity_config = timeout.map(|t| SessionAffinityConfig {
        client_ip: Some(ClientIPConfig {
            timeout_seconds: Some(t),
        }),
    });
    service
}

pub(crate) fn with_load_balancer(mut service: Service, ips: &[&str]) -> Service {
    spec(&mut service).type_ = Some("LoadBalancer".into());
    service.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(
                ips.iter()
                    .map(|ip| LoadBalancerIngress {
                        ip: Some((*ip).into()),
                        ..LoadBalancerIngress::default()
                    })
                    .collect(),
            ),
        }),
        ..ServiceStatus::default()
    });
    service
}

/// An endpoint: address, node, and (ready, serving, terminating).
pub(crate) struct Ep<'a>(pub &'a str, pub &'a str, pub (bool, bool, bool));

pub(crate) fn ready<'a>(ip: &'a str, node: &'a str) -> Ep<'a> {
    Ep(ip, node, (true, true, false))
}

/// A slice of Service `namespace/service` with `(name, protocol, port)` ports.
pub(crate) fn slice(
    namespace: &str,
    service: &str,
    name: &str,
    ports: &[(&str, &str, i32)],
    endpoints: &[Ep],
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            resource_version: Some("1".into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_owned(),
                service.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: endpoints
            .iter()
            .map(|Ep(ip, node, (ready, serving, terminating))| Endpoint {
                addresses: vec![(*ip).into()],
                node_name: Some((*node).into()),
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    serving: Some(*serving),
                    terminating: Some(*terminating),
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: Some(
            ports
                .iter()
                .map(|(name, protocol, port)| EndpointPort {
                    name: (!name.is_empty()).then(|| (*name).into()),
                    protocol: Some((*protocol).into()),
                    port: Some(*port),
                    ..EndpointPort::default()
                })
                .collect(),
        ),
    }
}

/// An applier that records transactions (and fails while `fail` is set).
#[derive(Debug, Clone, Default)]
pub(crate) struct Recorder {
    pub(crate) applied: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub(crate) fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub(crate) flows: std::sync::Arc<std::sync::Mutex<Vec<crate::nft::UdpFlows>>>,
}

impl Recorder {
    pub(crate) fn transactions(&self) -> Vec<String> {
        self.applied.lock().unwrap().clone()
    }

    pub(crate) fn take_flows(&self) -> Vec<crate::nft::UdpFlows> {
        std::mem::take(&mut *self.flows.lock().unwrap())
    }

    pub(crate) fn proxier(&self) -> crate::Proxier {
        crate::Proxier::new(config(), Box::new(self.clone()), Box::new(self.clone()))
    }
}

impl crate::nft::NftApplier for Recorder {
    fn apply(&self, transaction: &str) -> Result<(), crate::nft::CommandError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::nft::CommandError::Failed {
                program: "nft",
                output: "Error: Could not process rule: Device or resource busy".into(),
            });
        }
        self.applied.lock().unwrap().push(transaction.to_owned());
        Ok(())
    }

    fn list(&self, _table: &str) -> Result<Option<String>, crate::nft::CommandError> {
        Ok(None)
    }

    fn supports_sctp(&self) -> bool {
        true
    }
}

impl crate::nft::Conntrack for Recorder {
    fn delete_udp(&self, flows: &crate::nft::UdpFlows) -> Result<(), crate::nft::CommandError> {
        self.flows.lock().unwrap().push(*flows);
        Ok(())
    }
}
