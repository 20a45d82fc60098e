//! What a request asks for, read from its method, path and query, before anything is looked up: the
//! Kubernetes "request info" (group, version, namespace, resource, name, subresource, verb).

use std::collections::HashMap;

/// A request for a resource (`/api/v1/...` or `/apis/{group}/{version}/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceRequest {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) namespace: Option<String>,
    pub(crate) resource: String,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
    pub(crate) verb: Verb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/api`: the core group's versions (or aggregated discovery).
    CoreGroup,
    /// `/apis`: the groups (or aggregated discovery).
    Groups,
    /// `/api/v1` or `/apis/{group}/{version}`: the resource list.
    GroupVersion {
        group: String,
        version: String,
    },
    /// `/apis/{group}`: one group.
    Group {
        group: String,
    },
    Resource(ResourceRequest),
    /// Anything else under `/api` or `/apis` that cannot name a resource.
    NotFound,
}

/// Parses a path under `/api` or `/apis` (without the query), for the given HTTP method and query.
pub(crate) fn route(method: &http::Method, path: &str, query: &HashMap<String, String>) -> Route {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] => return Route::CoreGroup,
        ["apis"] => return Route::Groups,
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group] => {
            return Route::Group {
                group: group.to_string(),
            };
        }
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Route::NotFound,
    };
    // `namespaces/{ns}/{resource}...` scopes a namespaced resource; `namespaces` and `namespaces/{name}[/sub]`
    // name the namespaces themselves.
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, rest @ ..] if !matches!(*resource, "status" | "finalize") => {
            (Some(ns.to_string()), [&[*resource][..], rest].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let (resource, name, subresource) = match rest.as_slice() {
        [] => {
            return Route::GroupVersion {
                group: group.to_string(),
                version: version.to_string(),
            };
        }
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(name.to_string()), None),
        [resource, name, subresource] => (
            *resource,
            Some(name.to_string()),
            Some(subresource.to_string()),
        ),
        _ => return Route::NotFound,
    };
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (method.as_str(), name.is_some()) {
        ("GET", _) if watching => Verb::Watch,
        ("GET", true) => Verb::Get,
        ("GET", false) => Verb::List,
        ("POST", _) => Verb::Create,
        ("PUT", _) => Verb::Update,
        ("PATCH", _) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        _ => return Route::NotFound,
    };
    Route::Resource(ResourceRequest {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource: resource.to_string(),
        name,
        subresource,
        verb,
    })
}

/// The query string's parameters (percent-decoded; the last of repeated ones wins).
pub(crate) fn query_params(query: Option<&str>) -> HashMap<String, String> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &str, path_and_query: &str) -> Route {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        route(&method.parse().unwrap(), path, &query_params(Some(query)))
    }

    fn resource(
        group: &str,
        namespace: Option<&str>,
        resource: &str,
        name: Option<&str>,
        subresource: Option<&str>,
        verb: Verb,
    ) -> Route {
        Route::Resource(ResourceRequest {
            group: group.into(),
            version: "v1".into(),
            namespace: namespace.map(Into::into),
            resource: resource.into(),
            name: name.map(Into::into),
            subresource: subresource.map(Into::into),
            verb,
        })
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(parse("GET", "/api"), Route::CoreGroup);
        assert_eq!(parse("GET", "/apis/"), Route::Groups);
        assert_eq!(
            parse("GET", "/api/v1"),
            Route::GroupVersion {
                group: "".into(),
                version: "v1".into()
            }
        );
        assert_eq!(
            parse("GET", "/apis/apps/v1"),
            Route::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert_eq!(
            parse("GET", "/apis/apps"),
            Route::Group {
                group: "apps".into()
            }
        );
        assert_eq!(parse("GET", "/apiz"), Route::NotFound);
    }

    #[test]
    fn resource_paths_and_verbs() {
        use Verb::*;
        assert_eq!(
            parse("GET", "/api/v1/pods"),
            resource("", None, "pods", None, None, List)
        );
        assert_eq!(
            parse("GET", "/api/v1/namespaces/default/pods?limit=500"),
            resource("", Some("default"), "pods", None, None, List)
        );
        assert_eq!(
            parse(
                "GET",
                "/api/v1/namespaces/default/pods?watch=true&resourceVersion=5"
            ),
            resource("", Some("default"), "pods", None, None, Watch)
        );
        assert_eq!(
            parse("GET", "/api/v1/namespaces/default/pods/web-1/log"),
            resource("", Some("default"), "pods", Some("web-1"), Some("log"), Get)
        );
        assert_eq!(
            parse("PUT", "/apis/apps/v1/namespaces/x/deployments/web/scale"),
            resource(
                "apps",
                Some("x"),
                "deployments",
                Some("web"),
                Some("scale"),
                Update
            )
        );
        assert_eq!(
            parse("POST", "/api/v1/namespaces"),
            resource("", None, "namespaces", None, None, Create)
        );
        assert_eq!(
            parse("GET", "/api/v1/namespaces/kube-system"),
            resource("", None, "namespaces", Some("kube-system"), None, Get)
        );
        assert_eq!(
            parse("PUT", "/api/v1/namespaces/x/finalize"),
            resource("", None, "namespaces", Some("x"), Some("finalize"), Update)
        );
        assert_eq!(
            parse("DELETE", "/api/v1/namespaces/x/configmaps"),
            resource("", Some("x"), "configmaps", None, None, DeleteCollection)
        );
        assert_eq!(
            parse("PATCH", "/api/v1/nodes/n1/status"),
            resource("", None, "nodes", Some("n1"), Some("status"), Patch)
        );
        assert_eq!(
            parse("GET", "/api/v1/namespaces/x/pods/a/b/c"),
            Route::NotFound
        );
        assert_eq!(parse("OPTIONS", "/api/v1/pods"), Route::NotFound);
    }
}
