#!/usr/bin/env python3
"""Writes the seed inputs in corpus/<target>/ (run from anywhere: python3 fuzz/seeds.py).

Input layouts are described at the top of each fuzz_targets/<target>.rs; api_request inputs start with
five selector bytes indexing the tables in fuzz_targets/api_request.rs, so keep the indices below in step
with those tables (append to a table rather than insert, or the seeds change meaning).
"""
import json, os, shutil
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "corpus")
pb = os.path.join(here, "..", "crates", "protobuf", "tests", "kubectl-1.33")
def w(target, name, data):
    d = os.path.join(root, target); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, name), "wb").write(data)
def j(v): return json.dumps(v, separators=(",", ":"))

deployment = {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default","labels":{"app":"web"},"annotations":{"deployment.kubernetes.io/revision":"1"}},
  "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"}},
    "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.27","ports":[{"containerPort":80,"protocol":"TCP"}],
      "env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"volumeMounts":[{"name":"data","mountPath":"/data"}]}],"volumes":[{"name":"data","emptyDir":{}}]}}},
  "status":{"conditions":[{"type":"Available","status":"True"}]}}
last_applied = j({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"name":"web","namespace":"default"},"spec":{"replicas":3}}) + "\n"
smp_apply = {"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":last_applied}},
  "spec":{"replicas":3,"template":{"spec":{"$setElementOrder/containers":[{"name":"nginx"}],
    "containers":[{"$setElementOrder/env":[{"name":"A"}],"env":[{"$patch":"delete","name":"B"}],"image":"nginx:1.28","name":"nginx"}]}}}}
smp_restart = {"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-01-01T00:00:00Z"}}}}}
smp_directives = {"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate","rollingUpdate":None},
  "template":{"spec":{"volumes":[{"name":"data","$patch":"delete"}],"containers":[{"name":"nginx","$deleteFromPrimitiveList/args":["x"],"args":["y"],"ports":[{"containerPort":8080}]}]}}},
  "status":{"conditions":[{"type":"Progressing","status":"True"}]}}
smp_replace = {"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"},{"$patch":"replace"}]}}},"metadata":{"labels":{"$patch":"replace","app":"web2"}}}
undo = [{"op":"replace","path":"/spec/template","value":deployment["spec"]["template"]},
        {"op":"replace","path":"/metadata/annotations","value":{"deployment.kubernetes.io/revision":"2"}}]
jp_ops = [{"op":"test","path":"/spec/replicas","value":2},{"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"C","value":"3"}},
          {"op":"copy","from":"/metadata/labels","path":"/spec/selector/matchLabels"},{"op":"move","from":"/spec/template/spec/containers/0/env/0","path":"/spec/template/spec/containers/0/env/-1"},
          {"op":"remove","path":"/status"},{"op":"replace","path":"/metadata/labels/app","value":"x~1y"},{"op":"add","path":"/metadata/annotations/a~1b~0c","value":"v"}]
pod = {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","labels":{"app":"web"},"finalizers":["example.com/f"],"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-1","uid":"u1","controller":True}]},
  "spec":{"containers":[{"name":"nginx","image":"nginx:1.27","args":["a","b"],"ports":[{"containerPort":80}]}],"tolerations":[{"key":"k","operator":"Exists"}],"imagePullSecrets":[{"name":"reg"}]},
  "status":{"phase":"Pending","conditions":[{"type":"Ready","status":"False"}]}}
pod_smp = {"metadata":{"finalizers":None,"$deleteFromPrimitiveList/finalizers":["example.com/f"]},"spec":{"$setElementOrder/containers":[{"name":"nginx"}],"containers":[{"name":"nginx","image":"nginx:1.28"}]},
  "status":{"$setElementOrder/conditions":[{"type":"Ready"},{"type":"Initialized"}],"conditions":[{"type":"Ready","status":"True"},{"type":"Initialized","status":"True"}]}}
service = {"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},"spec":{"type":"NodePort","selector":{"app":"web"},
  "ports":[{"name":"http","port":80,"targetPort":8080,"nodePort":30080},{"name":"https","port":443,"protocol":"TCP"}]}}
svc_smp = {"spec":{"$setElementOrder/ports":[{"port":443},{"port":8443}],"ports":[{"port":80,"$patch":"delete"},{"port":8443,"name":"alt","targetPort":"https"}],"type":"ClusterIP"}}
cm = {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web","namespace":"default"},"data":{"a":"b","c":"d"}}

# json_patch: <doc> NUL <patch>
w("json_patch", "rollout-undo", j(deployment) + "\0" + j(undo))
w("json_patch", "ops", j(deployment) + "\0" + j(jp_ops))
w("json_patch", "arrays", j({"a":[1,2,3],"b":{"c":[{"d":None}]}}) + "\0" + j([{"op":"add","path":"/a/-1","value":0},{"op":"remove","path":"/a/0"},{"op":"copy","from":"/a","path":"/a/-"},{"op":"move","from":"/b/c/0","path":"/e"},{"op":"test","path":"/e","value":{"d":None}},{"op":"replace","path":"","value":[]}]))
w("json_patch", "scale-undo", j({"spec":{"replicas":1}}) + "\0" + j([{"op":"replace","path":"/spec/replicas","value":3}]))
# merge_patch
w("merge_patch", "scale", j({"apiVersion":"autoscaling/v1","kind":"Scale","spec":{"replicas":2}}) + "\0" + j({"spec":{"replicas":4}}))
w("merge_patch", "nulls", j(deployment) + "\0" + j({"metadata":{"labels":None,"annotations":{"x":"y","deployment.kubernetes.io/revision":None}},"spec":{"template":{"spec":{"containers":[{"name":"n","env":[{"name":"A","value":None}]}]}}},"status":None}))
w("merge_patch", "array", j(cm) + "\0" + j([{"a":None},1]))
w("merge_patch", "crd", j({"apiVersion":"example.com/v1","kind":"Thing","metadata":{"name":"t"},"spec":{"a":{"b":{"c":1}},"list":[1,2]}}) + "\0" + j({"spec":{"a":{"b":{"c":None,"d":{"e":None}}},"list":[3]}}))
# strategic_merge_patch: <kind byte> <doc> NUL <patch>  (0 Pod, 1 Deployment, 2 Service, 3 ConfigMap, 9 Job, 10 CronJob, 11 Node)
w("strategic_merge_patch", "deployment-apply", b"\x01" + (j(deployment) + "\0" + j(smp_apply)).encode())
w("strategic_merge_patch", "deployment-restart", b"\x01" + (j(deployment) + "\0" + j(smp_restart)).encode())
w("strategic_merge_patch", "deployment-directives", b"\x01" + (j(deployment) + "\0" + j(smp_directives)).encode())
w("strategic_merge_patch", "deployment-replace", b"\x01" + (j(deployment) + "\0" + j(smp_replace)).encode())
w("strategic_merge_patch", "pod", b"\x00" + (j(pod) + "\0" + j(pod_smp)).encode())
w("strategic_merge_patch", "service", b"\x02" + (j(service) + "\0" + j(svc_smp)).encode())
w("strategic_merge_patch", "configmap", b"\x03" + (j(cm) + "\0" + j({"data":{"a":None,"e":"f"},"$patch":"merge"})).encode())
w("strategic_merge_patch", "node", b"\x0b" + (j({"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"}],"conditions":[{"type":"Ready","status":"False"}]},"spec":{"taints":[{"key":"a","effect":"NoSchedule"}]}}) + "\0" + j({"status":{"conditions":[{"type":"Ready","status":"True"}],"addresses":[{"type":"Hostname","address":"n1"}]},"spec":{"taints":[{"key":"a","effect":"NoSchedule","$patch":"delete"}]}})).encode())
# label_selector
for i, s in enumerate(["app=web,pod-template-hash notin (abc)", "app==web,tier!=db,!legacy,env in (prod,staging),version", "example.com/a-b_c.d in (x,,y),gt>3,lt<-1",
                       "metadata.name=web,status.phase!=Running", "spec.nodeName==,metadata.namespace=a\\,b\\=c\\\\d",
                       j({"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["a","b"]},{"key":"x","operator":"DoesNotExist"}]})]):
    w("label_selector", f"seed{i}", s)
# protobuf_decode: kubectl 1.33 bodies
os.makedirs(os.path.join(root, "protobuf_decode"), exist_ok=True)
for f in sorted(os.listdir(pb)):
    if f.endswith(".bin"):
        shutil.copy(os.path.join(pb, f), os.path.join(root, "protobuf_decode", f))

# api_request: [method path content-type query accept] body
GET, POST, PUT, PATCH, DELETE = range(5)
def req(name, m, p, c, q, a, body):
    if not isinstance(body, (bytes, str)): body = j(body)
    if isinstance(body, str): body = body.encode()
    w("api_request", name, bytes([m, p, c, q, a]) + body)
deploy2 = dict(deployment); deploy2 = json.loads(j(deployment)); deploy2["metadata"]["name"] = "web2"; del deploy2["status"]
deploy2["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = last_applied
req("create-deployment", POST, 3, 1, 1, 0, deploy2)
for f, p in [("deployment", 3), ("configmap", 11), ("secret", 13), ("job", 15), ("service", 7), ("namespace", 20), ("quota", 20)]:
    req(f"create-protobuf-{f}", POST, p, 5, 1, 0, open(os.path.join(pb, f + ".bin"), "rb").read())
req("apply-smp", PATCH, 4, 3, 1, 0, smp_apply)
req("apply-smp-dry-run", PATCH, 4, 3, 2, 0, smp_directives)
req("rollout-restart", PATCH, 4, 3, 0, 0, smp_restart)
req("rollout-undo", PATCH, 4, 4, 0, 0, undo)
req("scale-patch", PATCH, 6, 2, 0, 0, {"spec":{"replicas":4}})
req("scale-put", PUT, 6, 0, 0, 0, {"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"web","namespace":"default","resourceVersion":"10"},"spec":{"replicas":5}})
req("delete-background", DELETE, 4, 1, 0, 0, {"propagationPolicy":"Background"})
req("delete-pod", DELETE, 1, 1, 0, 0, {"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":30,"preconditions":{"uid":"x"}})
req("delete-pod-now", DELETE, 1, 1, 7, 0, "0\0" + j({"propagationPolicy":"Foreground"}))
req("list-label-selector", GET, 0, 0, 3, 0, "app=web,pod-template-hash notin (abc)")
req("list-field-selector", GET, 0, 0, 4, 2, "metadata.name=web,status.phase!=Running")
req("list-limit", GET, 3, 0, 5, 1, "1")
req("list-continue", GET, 11, 0, 6, 0, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NSwic3RhcnQiOiJ3ZWJcdTAwMDAifQ")
req("table", GET, 3, 0, 9, 2, "Object")
req("service-nodeport", PATCH, 8, 2, 0, 0, {"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30001}]}})
req("service-smp", PATCH, 10, 3, 0, 0, svc_smp)
req("service-create", POST, 7, 1, 0, 0, {"apiVersion":"v1","kind":"Service","metadata":{"name":"lb"},"spec":{"type":"LoadBalancer","clusterIP":"10.43.0.50","ports":[{"port":80,"nodePort":30002}],"externalTrafficPolicy":"Local"}})
req("configmap-put", PUT, 12, 1, 0, 0, {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web","namespace":"default"},"data":{"x":"y"},"binaryData":{"b":"AAE="}})
req("pod-status", PATCH, 2, 2, 0, 0, {"status":{"phase":"Running","podIP":"10.42.0.5","conditions":[{"type":"Ready","status":"True"}]}})
req("pod-put", PUT, 1, 1, 0, 0, pod)
req("deployment-status", PATCH, 5, 3, 0, 0, {"status":{"observedGeneration":1,"replicas":2,"conditions":[{"type":"Available","status":"True"}]}})
req("job-status", PATCH, 17, 2, 0, 0, {"status":{"succeeded":1,"conditions":[{"type":"Complete","status":"True"}]}})
req("namespace-finalize", PUT, 23, 1, 0, 0, {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default"},"spec":{"finalizers":[]}})
req("namespace-delete", DELETE, 21, 0, 0, 0, "")
req("deletecollection", DELETE, 11, 1, 11, 0, {})
req("secret-patch", PATCH, 14, 4, 0, 0, [{"op":"add","path":"/stringData","value":{"k":"v"}},{"op":"replace","path":"/type","value":"kubernetes.io/tls"}])
req("delete-scheduled-pod", DELETE, 26, 1, 0, 0, {"gracePeriodSeconds":30})
req("delete-scheduled-pod-twice", DELETE, 26, 1, 0, 0, j({"gracePeriodSeconds":30}) + "\n--next--\n" + bytes([DELETE, 26, 1, 0, 0]).decode() + j({"gracePeriodSeconds":5}))
req("finish-then-delete", PATCH, 26, 2, 0, 0, j({"metadata":{"labels":{"x":"y"}}}) + "\n--next--\n" + bytes([PATCH, 2, 2, 0, 0]).decode() + j({"status":{"phase":"Succeeded"}}) + "\n--next--\n" + bytes([DELETE, 26, 0, 7, 0]).decode() + "10")
req("create-then-patch", POST, 11, 1, 0, 0, j({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web2"},"data":{"k":"v"}}) + "\n--next--\n" + bytes([PATCH, 12, 4, 0, 0]).decode() + j([{"op":"add","path":"/data/k2","value":"v2"}]) + "\n--next--\n" + bytes([GET, 11, 0, 3, 2]).decode() + "app")
req("smp-missing-merge-key-500", PATCH, 4, 3, 0, 0, {"spec":{"template":{"spec":{"containers":[{"image":"nginx:1.28"}]}}}})

# server_side_apply: <selector byte> <live JSON> NUL <config JSON>; selector = schema + 5*force + 10*manager
# (schema 0 Deployment, 1 ConfigMap, 2 Service, 3 Pod, 4 deduced example.com/v1; manager 0 a, 1 b, 2 kubectl).
def ssa(name, schema, force, manager, live, config):
    w("server_side_apply", name, bytes([schema + 5 * force + 10 * manager]) + (j(live) + "\0" + j(config)).encode())
def mf(manager, operation, api_version, fields, time="2025-01-01T00:00:00Z", subresource=None):
    e = {"manager":manager,"operation":operation,"apiVersion":api_version,"time":time,"fieldsType":"FieldsV1","fieldsV1":fields}
    if subresource: e["subresource"] = subresource
    return e
ssa_deploy = json.loads(j(deployment)); del ssa_deploy["status"]; del ssa_deploy["metadata"]["annotations"]
deploy_fields = {"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:strategy":{"f:rollingUpdate":{"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},
  "f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:env":{"k:{\"name\":\"A\"}":{".":{},"f:name":{},"f:value":{}},"k:{\"name\":\"B\"}":{".":{},"f:name":{},"f:value":{}}},
    "f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}},"f:volumeMounts":{"k:{\"mountPath\":\"/data\"}":{".":{},"f:mountPath":{},"f:name":{}}}}},
    "f:volumes":{"k:{\"name\":\"data\"}":{".":{},"f:emptyDir":{},"f:name":{}}}}}}}
live_deploy = json.loads(j(ssa_deploy)); live_deploy["metadata"]["uid"] = "6f2a1c1e-0000-4000-8000-000000000001"; live_deploy["metadata"]["resourceVersion"] = "7"
live_deploy["metadata"]["managedFields"] = [mf("a","Apply","apps/v1",deploy_fields),
  mf("kube-controller-manager","Update","apps/v1",{"f:metadata":{"f:annotations":{".":{},"f:deployment.kubernetes.io/revision":{}}},"f:status":{"f:conditions":{".":{},"k:{\"type\":\"Available\"}":{".":{},"f:status":{},"f:type":{}}}}},subresource="status")]
live_deploy["metadata"]["annotations"] = {"deployment.kubernetes.io/revision":"1"}; live_deploy["status"] = deployment["status"]
deploy_v2 = json.loads(j(ssa_deploy)); deploy_v2["spec"]["replicas"] = 3; c = deploy_v2["spec"]["template"]["spec"]["containers"][0]
c["image"] = "nginx:1.28"; c["env"] = [{"name":"A","value":"1"},{"name":"C","value":"3"}]
ssa("deployment-create", 0, 0, 0, None, ssa_deploy)
ssa("deployment-reapply", 0, 0, 0, live_deploy, deploy_v2)
ssa("deployment-replicas-conflict", 0, 0, 1, live_deploy, {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":5}})
ssa("deployment-replicas-force", 0, 1, 1, live_deploy, {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":5,"paused":None}})
untracked = json.loads(j(ssa_deploy)); untracked["metadata"]["uid"] = "u"
ssa("deployment-untracked", 0, 0, 0, untracked, {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":3}})
csa_live = json.loads(j(untracked)); csa_live["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": j(ssa_deploy) + "\n"}
csa_live["metadata"]["managedFields"] = [mf("kubectl-client-side-apply","Update","apps/v1",{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}}},"f:spec":{"f:replicas":{},"f:selector":{}}})]
ssa("deployment-client-side-to-server-side", 0, 0, 2, csa_live, deploy_v2)
cm_live = {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"test-cm","namespace":"default","uid":"u","labels":{"test-label":"test"},
  "managedFields":[mf("b","Apply","v1",{"f:metadata":{"f:labels":{"f:test-label":{}}}}),mf("kube-controller-manager","Update","v1",{"f:data":{"f:key":{}}},"2025-01-01T00:00:30Z")]},
  "data":{"key":"new value","other":"x"}}
cm_config = {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"test-cm","namespace":"default","labels":{"test-label":"test"}},"data":{"key":"some value"}}
ssa("configmap-create", 1, 0, 1, None, cm_config)
ssa("configmap-conflict", 1, 0, 0, cm_live, cm_config)
ssa("configmap-force", 1, 1, 0, cm_live, cm_config)
ssa("configmap-drop-label", 1, 0, 1, cm_live, {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"test-cm","finalizers":["a.io/one"]},"data":{"other":"x","n":None},"binaryData":{"b":"AAE="}})
svc_live = json.loads(j(service)); svc_live["metadata"]["managedFields"] = [mf("b","Apply","v1",{"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:name":{},"f:nodePort":{},"f:port":{},"f:targetPort":{}}},"f:selector":{},"f:type":{}}})]
ssa("service-ports", 2, 0, 0, svc_live, {"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":443,"protocol":"TCP","name":"https"},{"port":53,"protocol":"UDP","name":"dns"}],"selector":{"app":"web"}}})
pod_cfg = json.loads(j(pod)); del pod_cfg["status"]; pod_cfg["metadata"]["managedFields"] = None
ssa("pod-create", 3, 0, 0, None, pod_cfg)
ssa("pod-status", 3, 1, 1, pod, {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"status":{"conditions":[{"type":"Ready","status":"True"}],"phase":"Running"}})
widget = {"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","managedFields":[mf("a","Apply","example.com/v1",{"f:spec":{".":{},"f:nested":{".":{},"f:x":{}},"f:size":{},"f:tags":{}}})]},
  "spec":{"size":3,"tags":["a"],"nested":{"x":1},"other":1.5}}
ssa("widget-deduced", 4, 0, 0, widget, {"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":None,"tags":["b"],"nested":{"x":1.0,"y":[{"z":True}]}}})
ssa("widget-other-manager", 4, 0, 1, widget, {"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":4}})

# crd_schema: <schema JSON> NUL <object JSON>
crd_schema = {"type":"object","properties":{
  "spec":{"type":"object","required":["endpoints"],"properties":{
    "replicas":{"type":"integer","minimum":0,"maximum":10,"default":1},
    "mode":{"type":"string","enum":["Fast","Safe"],"default":"Safe"},
    "port":{"x-kubernetes-int-or-string":True,"anyOf":[{"type":"integer"},{"type":"string"}],"default":"http"},
    "endpoints":{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name","protocol"],"maxItems":8,
      "items":{"type":"object","required":["name"],"properties":{"name":{"type":"string","pattern":"^[a-z][a-z0-9-]*$","maxLength":63},
        "protocol":{"type":"string","default":"TCP","enum":["TCP","UDP"]},"weight":{"type":"number","multipleOf":0.5,"nullable":True}}}},
    "tags":{"type":"array","x-kubernetes-list-type":"set","items":{"type":"string"}},
    "labels":{"type":"object","additionalProperties":{"type":"string","default":""},"x-kubernetes-map-type":"granular"},
    "config":{"type":"object","x-kubernetes-preserve-unknown-fields":True,"properties":{"known":{"type":"object","properties":{"a":{"type":"string","default":"x"}}}}},
    "template":{"type":"object","x-kubernetes-embedded-resource":True,"x-kubernetes-preserve-unknown-fields":True,"properties":{"spec":{"type":"object","properties":{"image":{"type":"string"}}}}},
    "schedule":{"type":"string","format":"date-time"},
    "selector":{"type":"object","x-kubernetes-map-type":"atomic","properties":{"matchLabels":{"type":"object","additionalProperties":{"type":"string"}}}}}},
  "status":{"type":"object","properties":{"phase":{"type":"string"},"conditions":{"type":"array","items":{"type":"object","properties":{"type":{"type":"string"},"status":{"type":"string"}}}}}}}}
crd_object = {"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"default","labels":{"a":"b"}},
  "spec":{"replicas":None,"mode":"Fast","unknown":1,"endpoints":[{"name":"a","port":1},{"name":"b","protocol":"UDP","weight":None},None],
    "tags":["x","y","x"],"labels":{"k":None,"v":"1"},"config":{"anything":{"goes":[1,2]},"known":{"b":2}},
    "template":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"image":"nginx","extra":True},"other":{}},
    "schedule":"2025-01-01T00:00:00Z","selector":{"matchLabels":{"app":"w"}}},
  "status":{"phase":"Ready","conditions":[{"type":"Ready","status":"True","reason":"x"}],"observed":3}}
w("crd_schema", "widget", j(crd_schema) + "\0" + j(crd_object))
w("crd_schema", "widget-empty", j(crd_schema) + "\0" + j({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"endpoints":[]}}))
w("crd_schema", "preserve-root", j({"type":"object","x-kubernetes-preserve-unknown-fields":True,"properties":{"spec":{"type":"object","properties":{"items":{"type":"array","items":{"type":"object","properties":{"a":{"type":"integer","default":0}}}}}}}})
  + "\0" + j({"apiVersion":"example.com/v1","kind":"Any","metadata":{},"spec":{"items":[{"b":1},{"a":None}],"x":None},"top":[{"deep":{"z":1}}]}))
w("crd_schema", "junctors", j({"type":"object","properties":{"spec":{"type":"object","minProperties":1,"maxProperties":3,
    "properties":{"a":{"type":"string","minLength":2},"b":{"type":"integer","exclusiveMinimum":True,"minimum":0},"c":{"type":"boolean","nullable":True,"default":False}},
    "allOf":[{"required":["a"]}],"oneOf":[{"required":["b"]},{"required":["c"]}],"not":{"required":["d"]}}}})
  + "\0" + j({"apiVersion":"example.com/v1","kind":"J","metadata":{"name":"j"},"spec":{"a":"x","b":0,"c":None,"d":1}}))
w("crd_schema", "additional-items", j({"type":"object","properties":{"spec":{"type":"object","additionalProperties":{"type":"array","items":{"type":"object",
    "x-kubernetes-embedded-resource":True,"properties":{"spec":{"type":"object","default":{"n":None,"m":"d"},"properties":{"n":{"type":"string"},"m":{"type":"string"}}}}},"uniqueItems":True}}}})
  + "\0" + j({"spec":{"x":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"junk":1},{"spec":None},{}],"y":None}}))
