//! End to end: cluster IPs and node ports handed out at Service create, kept on update, freed on delete; the
//! `kubernetes` Service and its endpoints. Real `gantry server`, real kubectl 1.33.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::HashSet;

use serde_json::Value;
use support::{Server, kubectl, ok};

fn service(server: &Server, name: &str) -> Value {
    serde_json::from_str(&ok("1.33", server, &["get", "service", name, "-o", "json"])).unwrap()
}

fn refused(server: &Server, args: &[&str]) -> String {
    let out = kubectl("1.33", server, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn services_get_distinct_addresses_and_node_ports_from_the_configured_ranges() {
    let server = Server::start_with(&[
        "--service-cidr",
        "10.99.0.0/24",
        "--service-node-port-range",
        "30100-30102",
    ]);
    // The API server's own Service: the range's first address, pointing at this server.
    let api = service(&server, "kubernetes");
    assert_eq!(api["spec"]["clusterIP"], "10.99.0.1");
    assert_eq!(api["spec"]["ports"][0]["port"], 443);
    let endpoints: Value = serde_json::from_str(&ok(
        "1.33",
        &server,
        &["get", "endpoints", "kubernetes", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(endpoints["subsets"][0]["addresses"][0]["ip"], "127.0.0.1");
    assert_eq!(endpoints["subsets"][0]["ports"][0]["port"], server.port);

    let mut addresses = HashSet::from(["10.99.0.1".to_string()]);
    let mut ports = HashSet::new();
    for name in ["a", "b", "c"] {
        ok(
            "1.33",
            &server,
            &["create", "service", "nodeport", name, "--tcp=80:8080"],
        );
        let spec = &service(&server, name)["spec"];
        let ip = spec["clusterIP"].as_str().unwrap().to_string();
        assert!(ip.starts_with("10.99.0."), "{ip}");
        assert_eq!(spec["clusterIPs"][0], ip.as_str());
        assert!(addresses.insert(ip), "addresses are not shared");
        let port = spec["ports"][0]["nodePort"].as_u64().unwrap();
        assert!((30100..=30102).contains(&port), "{port}");
        assert!(ports.insert(port), "node ports are not shared");
    }
    // The three node ports are taken: a fourth NodePort Service has none to get, and nothing is stored.
    let full = refused(
        &server,
        &["create", "service", "nodeport", "d", "--tcp=80:8080"],
    );
    assert!(full.contains("range 30100-30102 is full"), "{full}");
    assert!(
        !kubectl("1.33", &server, &["get", "service", "d"])
            .status
            .success()
    );

    // Asking for a taken or out-of-range address or port is a 422 naming the field.
    let taken = refused(
        &server,
        &[
            "create",
            "service",
            "clusterip",
            "x",
            "--tcp=1:1",
            "--clusterip=10.99.0.1",
        ],
    );
    assert!(
        taken.contains(
            r#"spec.clusterIPs[0]: Invalid value: "10.99.0.1": provided IP is already allocated"#
        ),
        "{taken}"
    );
    let outside = refused(
        &server,
        &[
            "create",
            "service",
            "clusterip",
            "x",
            "--tcp=1:1",
            "--clusterip=10.1.2.3",
        ],
    );
    assert!(
        outside.contains("The range of valid IPs is 10.99.0.0/24"),
        "{outside}"
    );

    // An update keeps what the Service holds; a delete frees it for the next one.
    let a = service(&server, "a");
    let a_port = a["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    ok("1.33", &server, &["label", "service", "a", "tier=front"]);
    let relabelled = service(&server, "a");
    assert_eq!(relabelled["spec"]["clusterIP"], a["spec"]["clusterIP"]);
    assert_eq!(relabelled["spec"]["ports"][0]["nodePort"], a_port);
    ok("1.33", &server, &["delete", "service", "a"]);
    let port = a_port.to_string();
    let ip = a["spec"]["clusterIP"].as_str().unwrap();
    ok(
        "1.33",
        &server,
        &[
            "create",
            "service",
            "nodeport",
            "e",
            "--tcp=80:8080",
            "--node-port",
            &port,
        ],
    );
    ok(
        "1.33",
        &server,
        &[
            "create",
            "service",
            "clusterip",
            "f",
            "--tcp=1:1",
            "--clusterip",
            ip,
        ],
    );
    assert_eq!(service(&server, "f")["spec"]["clusterIP"], ip);

    // NodePort to ClusterIP (a patch of the type alone) gives the node port back.
    ok(
        "1.33",
        &server,
        &[
            "patch",
            "service",
            "e",
            "-p",
            r#"{"spec":{"type":"ClusterIP"}}"#,
        ],
    );
    let e = service(&server, "e");
    assert!(e["spec"]["ports"][0].get("nodePort").is_none(), "{e}");
    assert!(e["spec"].get("externalTrafficPolicy").is_none(), "{e}");
    ok(
        "1.33",
        &server,
        &[
            "create",
            "service",
            "nodeport",
            "g",
            "--tcp=80:8080",
            "--node-port",
            &port,
        ],
    );

    // Headless and ExternalName Services get no address.
    ok(
        "1.33",
        &server,
        &["create", "service", "clusterip", "h", "--clusterip=None"],
    );
    assert_eq!(service(&server, "h")["spec"]["clusterIP"], "None");
    ok(
        "1.33",
        &server,
        &[
            "create",
            "service",
            "externalname",
            "n",
            "--external-name=db.example.com",
        ],
    );
    assert!(service(&server, "n")["spec"].get("clusterIP").is_none());
}
