//! The TokenRequest API and the authentication of its tokens through [`Api::handle`], in process over a
//! memory store: what `kubectl create token` does, then the token used as a bearer token.

use std::sync::Arc;

use bytes::Bytes;
use gantry_pki::{Identity, Tokens};
use gantry_store::MemoryStore;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::{Api, ApiConfig, PodAdmission, ServiceRanges};

const SA: &str = "/api/v1/namespaces/default/serviceaccounts";
const WHOAMI: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

struct Server {
    api: Api,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    async fn start() -> Server {
        let dir =
            std::env::temp_dir().join(format!("gantry-tokenrequest-{}", crate::objects::new_uid()));
        let config = ApiConfig {
            services: ServiceRanges::default(),
            advertise: "127.0.0.1:6443".parse().unwrap(),
            nodes: None,
            pod_admission: PodAdmission::default(),
        };
        let tokens = Tokens::load_or_create(&dir).unwrap();
        let api = Api::start(Arc::new(MemoryStore::new()), tokens, config)
            .await
            .unwrap();
        Server { api, dir }
    }

    /// A request as the administrator (`bearer` None) or with a bearer token; the status and JSON body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Value,
        bearer: Option<&str>,
    ) -> (u16, Value) {
        let body = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        self.send(method, path, ("application/json", body), bearer)
            .await
    }

    /// [`Self::call`] with a body of any media type.
    async fn send(
        &self,
        method: &str,
        path: &str,
        (media, body): (&str, Bytes),
        bearer: Option<&str>,
    ) -> (u16, Value) {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", media);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(body)).unwrap();
        let admin = Identity {
            user: "gantry-admin".into(),
            groups: vec!["system:masters".into()],
        };
        let identity = bearer.is_none().then_some(admin);
        let response = self.api.handle(request, identity).await;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn token(&self, account: &str, spec: Value) -> (u16, Value) {
        let body = json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null}, "spec": spec,
            "status": {"token": "", "expirationTimestamp": null}});
        self.call("POST", &format!("{SA}/{account}/token"), body, None)
            .await
    }

    /// The status of whoami with `token` once it is `code`, or after two seconds (the watch cache learns of
    /// a deletion a moment after it is answered).
    async fn whoami_until(&self, token: &str, code: u16) -> u16 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let (got, _) = self.whoami(token).await;
            if got == code || std::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    async fn whoami(&self, token: &str) -> (u16, Value) {
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
        self.call("POST", WHOAMI, body, Some(token)).await
    }
}

#[tokio::test]
async fn kubectl_create_token_then_the_token_logs_in_until_its_account_is_replaced() {
    let server = Server::start().await;
    let (code, _) = server
        .call("POST", SA, json!({"metadata": {"name": "robot"}}), None)
        .await;
    assert_eq!(code, 201);

    let (code, answer) = server
        .token(
            "robot",
            json!({"audiences": null, "expirationSeconds": null, "boundObjectRef": null}),
        )
        .await;
    assert_eq!(code, 201, "{answer}");
    assert_eq!(answer["kind"], "TokenRequest");
    assert_eq!(answer["spec"]["expirationSeconds"], 3600);
    assert!(
        answer["status"]["expirationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let token = answer["status"]["token"].as_str().unwrap().to_owned();

    let (code, review) = server.whoami(&token).await;
    assert_eq!(code, 201, "{review}");
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:serviceaccount:default:robot"
    );
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );

    // A token for another audience does not log in to the API server.
    let (_, answer) = server.token("robot", json!({"audiences": ["vault"]})).await;
    let (code, _) = server
        .whoami(answer["status"]["token"].as_str().unwrap())
        .await;
    assert_eq!(code, 401);

    let (code, answer) = server.token("nobody", json!({})).await;
    assert_eq!(
        (code, answer["message"].as_str()),
        (404, Some("serviceaccounts \"nobody\" not found"))
    );
    let (code, answer) = server
        .token("robot", json!({"expirationSeconds": 599}))
        .await;
    assert_eq!((code, answer["reason"].as_str()), (422, Some("Invalid")));

    // Deleted and made again: another uid, so the old token no longer logs in.
    let (code, _) = server
        .call("DELETE", &format!("{SA}/robot"), Value::Null, None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(server.whoami_until(&token, 401).await, 401);
    server
        .call("POST", SA, json!({"metadata": {"name": "robot"}}), None)
        .await;
    let (code, _) = server.whoami(&token).await;
    assert_eq!(code, 401);
    assert_eq!(server.whoami("garbage.token.here").await.0, 401);
}

#[tokio::test]
async fn a_token_bound_to_a_pod_dies_with_the_pod() {
    let server = Server::start().await;
    server
        .call("POST", SA, json!({"metadata": {"name": "robot"}}), None)
        .await;
    let pod = json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "robot",
        "containers": [{"name": "c", "image": "busybox"}]}});
    let (code, pod) = server
        .call("POST", "/api/v1/namespaces/default/pods", pod, None)
        .await;
    assert_eq!(code, 201, "{pod}");
    let uid = pod["metadata"]["uid"].as_str().unwrap();

    let bound = |uid: &str| json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": uid}});
    let (code, answer) = server.token("robot", bound("not-the-uid")).await;
    assert_eq!(code, 409, "{answer}");
    server
        .call("POST", SA, json!({"metadata": {"name": "other"}}), None)
        .await;
    let (code, answer) = server.token("other", bound(uid)).await;
    assert_eq!(code, 400, "{answer}");
    let (code, answer) = server
        .token(
            "robot",
            json!({"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "x"}}),
        )
        .await;
    assert_eq!(
        (code, answer["message"].as_str()),
        (
            400,
            Some("cannot bind token to object of type /v1, Kind=ConfigMap")
        )
    );

    let (code, answer) = server.token("robot", bound(uid)).await;
    assert_eq!(code, 201, "{answer}");
    let token = answer["status"]["token"].as_str().unwrap().to_owned();
    assert_eq!(server.whoami(&token).await.0, 201);
    let (code, _) = server
        .call(
            "DELETE",
            "/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0",
            Value::Null,
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(server.whoami_until(&token, 401).await, 401);
}

#[tokio::test]
async fn kubectl_1_33s_protobuf_token_request_is_answered() {
    let server = Server::start().await;
    server
        .call("POST", SA, json!({"metadata": {"name": "sa"}}), None)
        .await;
    // What `kubectl create token sa --duration=1h` sends (captured, see the protobuf crate's tests).
    let body = include_bytes!("../../../protobuf/tests/kubectl-1.33/token.bin");
    let media = (
        "application/vnd.kubernetes.protobuf",
        Bytes::from_static(body),
    );
    let (code, answer) = server
        .send("POST", &format!("{SA}/sa/token"), media, None)
        .await;
    assert_eq!(code, 201, "{answer}");
    assert_eq!(answer["spec"]["expirationSeconds"], 3600);
    let token = answer["status"]["token"].as_str().unwrap();
    let (code, review) = server.whoami(token).await;
    assert_eq!(code, 201);
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:serviceaccount:default:sa"
    );
}
