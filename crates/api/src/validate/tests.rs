//! End to end: what kubectl sends, defaulted as the API server defaults it, validates clean; common mistakes
//! produce kube-apiserver's causes; and everyday updates (scale, set image, label) pass.

use serde_json::{Value, json};

use super::{validate_create, validate_update};
use crate::defaults;

fn defaulted(group: &str, kind: &str, mut object: Value) -> Value {
    defaults::apply(group, kind, &mut object);
    object
}

fn create(group: &str, kind: &str, object: Value) -> Vec<String> {
    let object = defaulted(group, kind, object);
    validate_create(group, kind, &object)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn update(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<String> {
    let new = defaulted(group, kind, new.clone());
    validate_update(group, kind, &new, old)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Objects as kubectl's generators and typical manifests produce them.
fn kubectl_objects() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "",
            "Pod",
            json!({"kind":"Pod","apiVersion":"v1","metadata":{"name":"nginx","namespace":"default","creationTimestamp":null,"labels":{"run":"nginx"}},"spec":{"containers":[{"name":"nginx","image":"nginx","resources":{}}],"restartPolicy":"Always","dnsPolicy":"ClusterFirst"},"status":{}}),
        ),
        (
            "",
            "Pod",
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"app","namespace":"default"},"spec":{
                "serviceAccountName":"default",
                "initContainers":[{"name":"init","image":"busybox:1.36","command":["sh","-c","echo ready"]}],
                "containers":[{"name":"app","image":"registry.example.com/team/app:1.2.3","imagePullPolicy":"IfNotPresent",
                    "ports":[{"name":"http","containerPort":8080}],
                    "env":[{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},{"name":"LOG_LEVEL","value":"info"}],
                    "envFrom":[{"configMapRef":{"name":"app-config"}}],
                    "resources":{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"cpu":"1","memory":"256Mi"}},
                    "volumeMounts":[{"name":"config","mountPath":"/etc/app","readOnly":true},{"name":"cache","mountPath":"/cache"}],
                    "livenessProbe":{"httpGet":{"path":"/healthz","port":"http"},"initialDelaySeconds":5},
                    "readinessProbe":{"httpGet":{"path":"/ready","port":8080}},
                    "securityContext":{"runAsNonRoot":true,"runAsUser":1000,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}],
                "volumes":[{"name":"config","configMap":{"name":"app-config"}},{"name":"cache","emptyDir":{"sizeLimit":"1Gi"}}],
                "tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],
                "affinity":{"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":100,"podAffinityTerm":{"labelSelector":{"matchLabels":{"app":"app"}},"topologyKey":"kubernetes.io/hostname"}}]}},
                "topologySpreadConstraints":[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway","labelSelector":{"matchLabels":{"app":"app"}}}],
                "securityContext":{"fsGroup":2000,"seccompProfile":{"type":"RuntimeDefault"}}
            }}),
        ),
        (
            "apps",
            "Deployment",
            json!({"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web","namespace":"default","creationTimestamp":null,"labels":{"app":"web"}},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx","ports":[{"containerPort":80}],"resources":{}}]}},"strategy":{}},"status":{}}),
        ),
        (
            "apps",
            "ReplicaSet",
            json!({"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"frontend","namespace":"default"},"spec":{"replicas":3,"selector":{"matchLabels":{"tier":"frontend"}},"template":{"metadata":{"labels":{"tier":"frontend"}},"spec":{"containers":[{"name":"php-redis","image":"gcr.io/google_samples/gb-frontend:v3"}]}}}}),
        ),
        (
            "apps",
            "StatefulSet",
            json!({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"web","namespace":"default"},"spec":{"serviceName":"nginx","replicas":2,"selector":{"matchLabels":{"app":"nginx"}},"template":{"metadata":{"labels":{"app":"nginx"}},"spec":{"terminationGracePeriodSeconds":10,"containers":[{"name":"nginx","image":"registry.k8s.io/nginx-slim:0.24","ports":[{"containerPort":80,"name":"web"}],"volumeMounts":[{"name":"www","mountPath":"/usr/share/nginx/html"}]}]}},"volumeClaimTemplates":[{"metadata":{"name":"www"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}]}}),
        ),
        (
            "apps",
            "DaemonSet",
            json!({"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"fluentd","namespace":"kube-system","labels":{"k8s-app":"fluentd-logging"}},"spec":{"selector":{"matchLabels":{"name":"fluentd"}},"template":{"metadata":{"labels":{"name":"fluentd"}},"spec":{"tolerations":[{"key":"node-role.kubernetes.io/control-plane","operator":"Exists","effect":"NoSchedule"}],"containers":[{"name":"fluentd","image":"quay.io/fluentd_elasticsearch/fluentd:v2.5.2","resources":{"limits":{"memory":"200Mi"},"requests":{"cpu":"100m","memory":"200Mi"}},"volumeMounts":[{"name":"varlog","mountPath":"/var/log"}]}],"terminationGracePeriodSeconds":30,"volumes":[{"name":"varlog","hostPath":{"path":"/var/log"}}]}}}}),
        ),
        (
            "batch",
            "Job",
            json!({"kind":"Job","apiVersion":"batch/v1","metadata":{"name":"pi","namespace":"default","creationTimestamp":null},"spec":{"template":{"metadata":{"creationTimestamp":null},"spec":{"containers":[{"name":"pi","image":"perl","command":["perl","-Mbignum=bpi","-wle","print bpi(2000)"],"resources":{}}],"restartPolicy":"Never"}}},"status":{}}),
        ),
        (
            "batch",
            "Job",
            json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"indexed","namespace":"default"},"spec":{"completions":5,"parallelism":2,"completionMode":"Indexed","backoffLimitPerIndex":1,"maxFailedIndexes":2,"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"worker","image":"busybox","command":["sh","-c","echo $JOB_COMPLETION_INDEX"]}]}}}}),
        ),
        (
            "batch",
            "CronJob",
            json!({"kind":"CronJob","apiVersion":"batch/v1","metadata":{"name":"hello","namespace":"default","creationTimestamp":null},"spec":{"schedule":"*/1 * * * *","jobTemplate":{"metadata":{"name":"hello","creationTimestamp":null},"spec":{"template":{"metadata":{"creationTimestamp":null},"spec":{"containers":[{"name":"hello","image":"busybox","command":["echo","hello"],"resources":{}}],"restartPolicy":"OnFailure"}}}}},"status":{}}),
        ),
        (
            "batch",
            "CronJob",
            json!({"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"nightly","namespace":"default"},"spec":{"schedule":"0 3 * * mon-fri","timeZone":"Europe/Berlin","concurrencyPolicy":"Forbid","successfulJobsHistoryLimit":1,"jobTemplate":{"spec":{"backoffLimit":2,"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"backup","image":"backup:1"}]}}}}}}),
        ),
        (
            "",
            "Service",
            json!({"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"default","creationTimestamp":null,"labels":{"app":"web"}},"spec":{"ports":[{"protocol":"TCP","port":80,"targetPort":80}],"selector":{"app":"web"}},"status":{"loadBalancer":{}}}),
        ),
        (
            "",
            "Service",
            json!({"kind":"Service","apiVersion":"v1","metadata":{"name":"my-ns","namespace":"default","labels":{"app":"my-ns"}},"spec":{"ports":[{"name":"5678-8080","protocol":"TCP","port":5678,"targetPort":8080}],"selector":{"app":"my-ns"},"type":"NodePort"}}),
        ),
        (
            "",
            "Service",
            json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"nginx","namespace":"default"},"spec":{"clusterIP":"None","selector":{"app":"nginx"},"ports":[{"port":80,"name":"web"}]}}),
        ),
        (
            "",
            "Service",
            json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"db","namespace":"default"},"spec":{"type":"ExternalName","externalName":"db.prod.example.com"}}),
        ),
        (
            "",
            "ConfigMap",
            json!({"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"app-config","namespace":"default"},"data":{"app.properties":"a=1\nb=2","LOG_LEVEL":"info"}}),
        ),
        (
            "",
            "Secret",
            json!({"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"default"},"data":{"password":"czNjcjN0","username":"YWRtaW4="}}),
        ),
        (
            "",
            "Secret",
            json!({"kind":"Secret","apiVersion":"v1","metadata":{"name":"tls","namespace":"default"},"type":"kubernetes.io/tls","data":{"tls.crt":"LS0tLS1CRUdJTg==","tls.key":"LS0tLS1CRUdJTg=="}}),
        ),
        (
            "",
            "Secret",
            json!({"kind":"Secret","apiVersion":"v1","metadata":{"name":"regcred","namespace":"default"},"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"eyJhdXRocyI6e319"}}),
        ),
        (
            "",
            "Namespace",
            json!({"kind":"Namespace","apiVersion":"v1","metadata":{"name":"team-a","creationTimestamp":null},"spec":{},"status":{}}),
        ),
        (
            "",
            "ServiceAccount",
            json!({"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"builder","namespace":"default"}}),
        ),
        (
            "",
            "PersistentVolumeClaim",
            json!({"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"data","namespace":"default"},"spec":{"accessModes":["ReadWriteOnce"],"storageClassName":"standard","resources":{"requests":{"storage":"8Gi"}}}}),
        ),
        (
            "",
            "PersistentVolume",
            json!({"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv0001"},"spec":{"capacity":{"storage":"5Gi"},"accessModes":["ReadWriteOnce"],"persistentVolumeReclaimPolicy":"Recycle","nfs":{"path":"/tmp","server":"172.17.0.2"}}}),
        ),
        (
            "",
            "Node",
            json!({"apiVersion":"v1","kind":"Node","metadata":{"name":"worker-1","labels":{"kubernetes.io/hostname":"worker-1"}},"spec":{"podCIDR":"10.244.1.0/24","podCIDRs":["10.244.1.0/24"]},"status":{"capacity":{"cpu":"4","memory":"16393244Ki","pods":"110"}}}),
        ),
        (
            "",
            "Endpoints",
            json!({"apiVersion":"v1","kind":"Endpoints","metadata":{"name":"web","namespace":"default"},"subsets":[{"addresses":[{"ip":"10.244.1.5","nodeName":"worker-1","targetRef":{"kind":"Pod","name":"web-1","namespace":"default"}}],"ports":[{"port":80,"protocol":"TCP"}]}]}),
        ),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"web-abc","namespace":"default","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4","ports":[{"name":"http","protocol":"TCP","port":80}],"endpoints":[{"addresses":["10.244.1.5"],"conditions":{"ready":true},"nodeName":"worker-1"}]}),
        ),
        (
            "coordination.k8s.io",
            "Lease",
            json!({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"worker-1","namespace":"kube-node-lease"},"spec":{"holderIdentity":"worker-1","leaseDurationSeconds":40,"renewTime":"2024-01-01T00:00:00.000000Z"}}),
        ),
        (
            "rbac.authorization.k8s.io",
            "Role",
            json!({"kind":"Role","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"pod-reader","namespace":"default"},"rules":[{"verbs":["get","list","watch"],"apiGroups":[""],"resources":["pods"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            json!({"kind":"ClusterRole","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"system:metrics"},"rules":[{"verbs":["get"],"nonResourceURLs":["/metrics"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"kind":"RoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"read-pods","namespace":"default"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"pod-reader"},"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"alice"}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            json!({"kind":"ClusterRoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"builder-view"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"view"},"subjects":[{"kind":"ServiceAccount","name":"builder","namespace":"default"}]}),
        ),
        (
            "networking.k8s.io",
            "Ingress",
            json!({"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"simple","namespace":"default","creationTimestamp":null},"spec":{"rules":[{"host":"foo.com","http":{"paths":[{"path":"/bar","pathType":"Exact","backend":{"service":{"name":"svc1","port":{"number":8080}}}}]}}]},"status":{"loadBalancer":{}}}),
        ),
        (
            "policy",
            "PodDisruptionBudget",
            json!({"kind":"PodDisruptionBudget","apiVersion":"policy/v1","metadata":{"name":"my-pdb","namespace":"default"},"spec":{"minAvailable":1,"selector":{"matchLabels":{"app":"rails"}}}}),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"kind":"HorizontalPodAutoscaler","apiVersion":"autoscaling/v2","metadata":{"name":"web","namespace":"default"},"spec":{"scaleTargetRef":{"kind":"Deployment","name":"web","apiVersion":"apps/v1"},"minReplicas":2,"maxReplicas":10,"metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":80}}}]}}),
        ),
        (
            "storage.k8s.io",
            "StorageClass",
            json!({"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"standard"},"provisioner":"rancher.io/local-path","volumeBindingMode":"WaitForFirstConsumer"}),
        ),
        (
            "example.com",
            "Widget",
            json!({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1","namespace":"default"},"spec":{"anything":true}}),
        ),
    ]
}

#[test]
fn what_kubectl_creates_is_valid() {
    for (group, kind, object) in kubectl_objects() {
        let name = object["metadata"]["name"].clone();
        assert_eq!(
            create(group, kind, object),
            Vec::<String>::new(),
            "{kind} {name}"
        );
    }
}

#[test]
fn unchanged_objects_update_cleanly() {
    for (group, kind, object) in kubectl_objects() {
        let mut stored = defaulted(group, kind, object);
        if kind == "Job" {
            stored["metadata"]["uid"] = json!("0b7c-uid");
            super::generate_job_selector(&mut stored);
        }
        let name = stored["metadata"]["name"].clone();
        assert_eq!(
            update(group, kind, &stored, &stored),
            Vec::<String>::new(),
            "{kind} {name}"
        );
    }
}

#[test]
fn everyday_updates_pass() {
    let deployment = defaulted("apps", "Deployment", kubectl_objects()[2].2.clone());
    let mut scaled = deployment.clone();
    scaled["spec"]["replicas"] = json!(5);
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    scaled["metadata"]["labels"]["tier"] = json!("frontend");
    assert_eq!(
        update("apps", "Deployment", &scaled, &deployment),
        Vec::<String>::new()
    );

    let pod = defaulted("", "Pod", kubectl_objects()[0].2.clone());
    let mut labelled = pod.clone();
    labelled["metadata"]["labels"]["env"] = json!("prod");
    labelled["metadata"]["annotations"] = json!({"note": "hello"});
    labelled["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    assert_eq!(update("", "Pod", &labelled, &pod), Vec::<String>::new());

    let svc = defaulted("", "Service", kubectl_objects()[10].2.clone());
    let mut edited = svc.clone();
    edited["spec"]["ports"][0]["port"] = json!(8080);
    edited["spec"]["type"] = json!("NodePort");
    assert_eq!(update("", "Service", &edited, &svc), Vec::<String>::new());
}

#[test]
fn the_brief_examples() {
    // A pod without containers.
    assert_eq!(
        create(
            "",
            "Pod",
            json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {}})
        ),
        ["spec.containers: Required value"]
    );
    // A container without an image.
    assert_eq!(
        create(
            "",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})
        ),
        ["spec.containers[0].image: Required value"]
    );
    // A deployment whose template is not selected.
    assert_eq!(
        create(
            "apps",
            "Deployment",
            json!({"metadata": {"name": "d"}, "spec": {
                "selector": {"matchLabels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
            }})
        ),
        [
            "spec.template.metadata.labels: Invalid value: {\"app\":\"b\"}: `selector` does not match template `labels`"
        ]
    );
    // A deployment whose pods would not restart.
    assert_eq!(
        create(
            "apps",
            "Deployment",
            json!({"metadata": {"name": "d"}, "spec": {
                "selector": {"matchLabels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}
            }})
        ),
        [
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
        ]
    );
    // A job whose pods restart forever.
    assert_eq!(
        create(
            "batch",
            "Job",
            json!({"metadata": {"name": "j"}, "spec": {
                "template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}}
            }})
        ),
        [
            "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
        ]
    );
    // A config map with a bad key.
    assert_eq!(
        create(
            "",
            "ConfigMap",
            json!({"metadata": {"name": "c"}, "data": {"a/b": "x"}})
        ),
        [
            "data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        ]
    );
    // An immutable config map.
    let old = defaulted(
        "",
        "ConfigMap",
        json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": true}),
    );
    let mut new = old.clone();
    new["data"]["a"] = json!("2");
    assert_eq!(
        update("", "ConfigMap", &new, &old),
        ["data: Forbidden: field is immutable when `immutable` is set"]
    );
}

#[test]
fn generic_kinds_get_metadata_checks() {
    // Custom resources: apimachinery's checks, names are DNS subdomains, any qualified finalizer goes.
    let widget = json!({"metadata": {"name": "a", "finalizers": ["example.com-cleanup"]}});
    assert!(create("example.com", "Widget", widget.clone()).is_empty());
    assert_eq!(
        create("", "ConfigMap", widget),
        [
            "metadata.finalizers[0]: Invalid value: \"example.com-cleanup\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
    assert_eq!(
        create(
            "example.com",
            "Widget",
            json!({"metadata": {"name": "a/b", "labels": {"x": "y z"}}})
        ),
        [
            "metadata.name: Invalid value: \"a/b\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "metadata.labels: Invalid value: \"y z\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ]
    );
    let old = json!({"metadata": {"name": "a"}});
    let new = json!({"metadata": {"name": "b"}});
    assert_eq!(
        update("example.com", "Widget", &new, &old),
        ["metadata.name: Invalid value: \"b\": field is immutable"]
    );
}

#[test]
fn errors_become_a_422_status() {
    let errs = validate_create(
        "",
        "Pod",
        &defaulted(
            "",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
        ),
    );
    let status = crate::ApiError::invalid(crate::GroupKind::new("", "Pod"), "p", &errs).to_status();
    assert_eq!(status["code"], 422);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "Pod \"p\" is invalid: spec.containers[0].image: Required value"
    );
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldValueRequired"
    );
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "spec.containers[0].image"
    );
}

/// A deterministic fuzz loop: any JSON in any field never panics validation.
#[test]
fn odd_values_never_panic() {
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }
    fn paths(v: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, v)| paths(v, format!("{at}/{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| paths(v, format!("{at}/{i}"), out)),
            _ => {}
        }
    }
    let odd = [
        json!(null),
        json!(""),
        json!(-1),
        json!(0),
        json!(1e30),
        json!(i64::MIN),
        json!("x"),
        json!("-1"),
        json!("..."),
        json!("10%"),
        json!("TZ="),
        json!("1Ki"),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"a": 1}),
        json!(true),
        json!("::"),
        json!("a/b/c"),
        json!("@every"),
        json!("9".repeat(60)),
    ];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for (group, kind, object) in kubectl_objects() {
        let base = defaulted(group, kind, object);
        let mut all = Vec::new();
        paths(&base, String::new(), &mut all);
        for _ in 0..300 {
            let mut mutated = base.clone();
            for _ in 0..1 + rng.below(3) {
                let at = &all[rng.below(all.len())];
                if let Some(slot) = mutated.pointer_mut(at) {
                    *slot = odd[rng.below(odd.len())].clone();
                }
            }
            let _ = validate_create(group, kind, &mutated);
            let _ = validate_update(group, kind, &mutated, &base);
            let _ = validate_update(group, kind, &base, &mutated);
        }
    }
}
