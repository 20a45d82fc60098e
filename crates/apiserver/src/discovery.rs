//! Discovery: which groups, versions and resources the server has, in the legacy form (`/api`, `/apis`,
//! `/api/v1`, `/apis/{g}/{v}`) and the aggregated one (`apidiscovery.k8s.io` v2 and v2beta1), chosen by `Accept`.

use gantry_api::registry::{self, RESOURCES, ResourceType};
use http::StatusCode;
use serde_json::{Value, json};

use crate::custom::Snapshot;
use crate::response::{self, Response};

/// Which answer the client's `Accept` asks for first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiscoveryFormat {
    Legacy,
    /// Aggregated discovery, `apidiscovery.k8s.io/<version>`.
    Aggregated(&'static str),
}

/// Reads `Accept` in order: the first aggregated version we serve, or the legacy JSON form.
pub(crate) fn negotiate(accept: Option<&str>) -> DiscoveryFormat {
    for media in accept.unwrap_or("").split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("as=APIGroupDiscoveryList") && has("g=apidiscovery.k8s.io") {
            if has("v=v2") {
                return DiscoveryFormat::Aggregated("v2");
            }
            if has("v=v2beta1") {
                return DiscoveryFormat::Aggregated("v2beta1");
            }
        } else if matches!(params.first(), Some(&("application/json" | "*/*"))) {
            return DiscoveryFormat::Legacy;
        }
    }
    DiscoveryFormat::Legacy
}

/// Every served resource: the built-in ones, then the custom ones (preferred versions first).
fn all_resources(custom: &Snapshot) -> Vec<&'static ResourceType> {
    RESOURCES
        .iter()
        .chain(custom.served().iter().map(|s| s.resource))
        .collect()
}

/// The groups of `resources` with their versions, in the order they first appear (the first version is the
/// preferred one; custom groups order theirs as Kubernetes versions sort).
fn groups(resources: &[&'static ResourceType]) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups = registry::groups_of(resources.iter().copied());
    let builtin = |group: &str| RESOURCES.iter().any(|r| r.group == group);
    for (group, versions) in &mut groups {
        if !builtin(group) {
            versions.sort_by(|a, b| {
                gantry_crd::version_priority(b).cmp(&gantry_crd::version_priority(a))
            });
        }
    }
    groups
}

/// `/api` (core = true) or `/apis`.
pub(crate) fn root(core: bool, format: DiscoveryFormat, custom: &Snapshot) -> Response {
    let resources = all_resources(custom);
    let groups = groups(&resources);
    let groups = groups.iter().filter(|(group, _)| group.is_empty() == core);
    match format {
        DiscoveryFormat::Aggregated(version) => {
            let items: Vec<Value> = groups
                .map(|(group, versions)| {
                    json!({
                        "metadata": {"name": group},
                        "versions": versions.iter().map(|v| json!({
                            "version": v,
                            "freshness": "Current",
                            "resources": resources_of(&resources, group, v).map(aggregated_resource).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let body = json!({
                "kind": "APIGroupDiscoveryList",
                "apiVersion": format!("apidiscovery.k8s.io/{version}"),
                "metadata": {},
                "items": items,
            });
            let content_type = format!(
                "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
            );
            match serde_json::to_vec(&body) {
                Ok(bytes) => response::bytes(StatusCode::OK, &content_type, bytes),
                Err(e) => response::error(&gantry_api::ApiError::internal(e)),
            }
        }
        DiscoveryFormat::Legacy if core => response::json(
            StatusCode::OK,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
            }),
        ),
        DiscoveryFormat::Legacy => response::json(
            StatusCode::OK,
            &json!({
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": groups.map(|(group, versions)| api_group(group, versions)).collect::<Vec<_>>(),
            }),
        ),
    }
}

/// `/apis/{group}`, if served.
pub(crate) fn group(name: &str, custom: &Snapshot) -> Option<Response> {
    let groups = groups(&all_resources(custom));
    let (group, versions) = groups.iter().find(|(g, _)| !g.is_empty() && *g == name)?;
    let mut body = api_group(group, versions);
    body["kind"] = json!("APIGroup");
    body["apiVersion"] = json!("v1");
    Some(response::json(StatusCode::OK, &body))
}

/// `/api/v1` or `/apis/{group}/{version}`, if served.
pub(crate) fn group_version(group: &str, version: &str, custom: &Snapshot) -> Option<Response> {
    let all = all_resources(custom);
    let mut resources = Vec::new();
    for r in resources_of(&all, group, version) {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
            "shortNames": r.short_names,
            "categories": r.categories,
        }));
        for sub in r.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if (sub.group, sub.version) != (r.group, r.version) {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(response::json(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    ))
}

fn resources_of<'a>(
    resources: &'a [&'static ResourceType],
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceType> + 'a {
    resources
        .iter()
        .copied()
        .filter(move |r| r.group == group && r.version == version)
}

fn api_group(group: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(versions[0]),
    })
}

fn aggregated_resource(r: &ResourceType) -> Value {
    let kind = |group: &str, version: &str, kind: &str| json!({"group": group, "version": version, "kind": kind});
    json!({
        "resource": r.plural,
        "responseKind": kind(r.group, r.version, r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular(),
        "verbs": r.verbs,
        "shortNames": r.short_names,
        "categories": r.categories,
        "subresources": r.subresources.iter().map(|s| json!({
            "subresource": s.name,
            "responseKind": kind(s.group, s.version, s.kind),
            "verbs": s.verbs,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_accept_order() {
        let kubectl_1_32 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            negotiate(Some(kubectl_1_32)),
            DiscoveryFormat::Aggregated("v2")
        );
        let kubectl_1_28 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            negotiate(Some(kubectl_1_28)),
            DiscoveryFormat::Aggregated("v2beta1")
        );
        assert_eq!(
            negotiate(Some("application/json, */*")),
            DiscoveryFormat::Legacy
        );
        assert_eq!(negotiate(None), DiscoveryFormat::Legacy);
    }
}
