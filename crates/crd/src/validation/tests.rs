use serde_json::json;

use super::*;
use crate::Definition;

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {
                "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList",
                "shortNames": ["wd"], "categories": ["all"]
            },
            "conversion": {"strategy": "None"},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "properties": {
                            "replicas": {"type": "integer", "default": 1},
                            "selector": {"type": "string"}
                        }},
                        "status": {"type": "object", "properties": {
                            "replicas": {"type": "integer"},
                            "conditions": {"type": "array", "items": {"type": "object", "properties": {
                                "type": {"type": "string"}, "status": {"type": "string"}
                            }}}
                        }}
                    }
                }},
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".spec.selector"
                    }
                },
                "additionalPrinterColumns": [
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                    {"name": "Age", "type": "date", "format": "date-time", "jsonPath": ".metadata.creationTimestamp"}
                ]
            }]
        }
    })
}

/// Sets `value` at a `/`-separated path, creating objects on the way.
fn set(target: &mut Value, path: &str, value: Value) {
    let mut at = target;
    let keys: Vec<&str> = path.split('/').collect();
    for key in &keys[..keys.len() - 1] {
        at = match key.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[*key],
        };
    }
    let last = keys[keys.len() - 1];
    match last.parse::<usize>() {
        Ok(i) => at[i] = value,
        Err(_) => at[last] = value,
    }
}

fn with(path: &str, value: Value) -> Value {
    let mut c = crd();
    set(&mut c, path, value);
    c
}

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

/// `field: detail` of each error, for errors whose value is too long to spell out.
fn details(errs: &[FieldError]) -> Vec<String> {
    errs.iter()
        .map(|e| format!("{}: {}", e.field, e.detail))
        .collect()
}

#[test]
fn a_good_crd_passes() {
    assert_eq!(messages(&validate_create(&crd())), Vec::<String>::new());
    let d = Definition::from_object(&crd()).unwrap();
    assert_eq!(d.versions[0].columns.len(), 3);
    assert_eq!(validate_update(&crd(), &crd()), Vec::new());
}

#[test]
fn garbage_does_not_panic() {
    for crd in [
        json!({}),
        json!({"spec": "x"}),
        json!({"spec": {"versions": "x", "names": 5}}),
    ] {
        let errs = messages(&validate_create(&crd));
        assert!(
            errs.contains(&"spec.group: Required value".to_owned()),
            "{errs:?}"
        );
        let mut defaulted = crd.clone();
        apply_defaults(&mut defaulted);
    }
    let mut c = crd();
    set(&mut c, "spec/versions/0/subresources", json!({}));
    set(
        &mut c,
        "spec/versions/0/schema/openAPIV3Schema",
        json!({"type": "object", "properties": {"a": {"type": "string", "minLength": "x"}}}),
    );
    assert_eq!(
        messages(&validate_create(&c)),
        [
            r#"spec.versions[0].schema.openAPIV3Schema: Invalid value: "": error building validator: properties[a]: minLength must be a non-negative integer"#
        ]
    );
}

#[test]
fn defaults() {
    let mut c = crd();
    set(
        &mut c,
        "spec/names",
        json!({"plural": "widgets", "kind": "Widget"}),
    );
    c["spec"].as_object_mut().unwrap().remove("conversion");
    assert!(
        messages(&validate_create(&c)).contains(&"spec.names.singular: Required value".to_owned())
    );
    apply_defaults(&mut c);
    assert_eq!(c["spec"]["names"]["singular"], "widget");
    assert_eq!(c["spec"]["names"]["listKind"], "WidgetList");
    assert_eq!(c["spec"]["conversion"], json!({"strategy": "None"}));
    assert!(c.get("status").is_none());
    assert_eq!(messages(&validate_create(&c)), Vec::<String>::new());

    let mut webhook = with(
        "spec/conversion",
        json!({"strategy": "Webhook", "webhook": {
            "clientConfig": {"service": {"namespace": "ns", "name": "conv"}},
            "conversionReviewVersions": ["v1"]
        }}),
    );
    apply_defaults(&mut webhook);
    assert_eq!(
        webhook["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"],
        443
    );
    assert_eq!(webhook["spec"]["names"]["singular"], "widget");
    assert_eq!(messages(&validate_create(&webhook)), Vec::<String>::new());
}

#[test]
fn names_and_group() {
    let cases = [
        (
            with("metadata/name", json!("foo.example.com")),
            r#"metadata.name: Invalid value: "foo.example.com": must be spec.names.plural+"."+spec.group"#,
        ),
        (
            with("spec/scope", json!("Global")),
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
        ),
        (with("spec/scope", json!("")), "spec.scope: Required value"),
        (
            with("spec/names/listKind", json!("Widget")),
            r#"spec.names.listKind: Invalid value: "Widget": kind and listKind may not be the same"#,
        ),
        (
            with("spec/names/kind", json!("Wid_get")),
            r#"spec.names.kind: Invalid value: "Wid_get": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
        ),
        (
            with("spec/names/shortNames", json!(["wd", "w_d"])),
            r#"spec.names.shortNames[1]: Invalid value: "w_d": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
        ),
        (
            with("spec/names/categories", json!(["All"])),
            r#"spec.names.categories[0]: Invalid value: "All": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
        ),
        (
            with("spec/names/singular", json!("")),
            "spec.names.singular: Required value",
        ),
        (
            with("status/acceptedNames", json!({"plural": "Widgets"})),
            r#"status.acceptedNames.plural: Invalid value: "Widgets": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
        ),
    ];
    for (c, want) in cases {
        assert_eq!(messages(&validate_create(&c)), [want]);
    }
    assert_eq!(
        messages(&validate_create(&with(
            "spec/preserveUnknownFields",
            json!(true)
        ))),
        [
            "spec.preserveUnknownFields: Invalid value: true: must be false in order to use defaults in the schema",
            "spec.preserveUnknownFields: Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ]
    );

    let mut c = with("spec/group", json!("example"));
    set(&mut c, "metadata/name", json!("widgets.example"));
    assert_eq!(
        messages(&validate_create(&c)),
        [r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#]
    );
    let mut c = with("spec/group", json!("Example.com"));
    set(&mut c, "metadata/name", json!("widgets.Example.com"));
    let got = messages(&validate_create(&c));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with(
        r#"spec.group: Invalid value: "Example.com": a lowercase RFC 1123 subdomain"#
    ));
    let mut c = with("spec/group", json!(""));
    set(&mut c, "metadata/name", json!("widgets."));
    assert_eq!(
        messages(&validate_create(&c)),
        ["spec.group: Required value"]
    );
}

#[test]
fn versions() {
    let v1 = crd()["spec"]["versions"][0].clone();
    let mut v2 = v1.clone();
    v2["name"] = json!("v2");
    assert_eq!(
        details(&validate_create(&with(
            "spec/versions",
            json!([v1.clone(), v2.clone()])
        ))),
        ["spec.versions: must have exactly one version marked as storage version"]
    );
    assert_eq!(
        details(&validate_create(&with(
            "spec/versions",
            json!([v1.clone(), v1.clone()])
        ))),
        [
            "spec.versions: must contain unique version names",
            "spec.versions: must have exactly one version marked as storage version",
        ]
    );
    v2["storage"] = json!(false);
    assert_eq!(
        messages(&validate_create(&with(
            "spec/versions",
            json!([v1.clone(), v2.clone()])
        ))),
        Vec::<String>::new()
    );
    assert_eq!(
        details(&validate_create(&with("spec/versions", json!([])))),
        ["spec.versions: must have exactly one version marked as storage version"]
    );
    assert_eq!(
        details(&validate_create(&with(
            "spec/versions/0/served",
            json!(false)
        ))),
        ["spec.versions: must have at least one served version"]
    );
    let got = messages(&validate_create(&with("spec/versions/0/name", json!("V1"))));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with(r#"spec.versions[0].name: Invalid value: "V1": a DNS-1035 label"#));

    let mut no_schema = crd();
    no_schema["spec"]["versions"][0]
        .as_object_mut()
        .unwrap()
        .remove("schema");
    assert_eq!(
        messages(&validate_create(&no_schema)),
        ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]
    );
    // Not tightened on update of what was stored without one.
    assert_eq!(validate_update(&no_schema, &no_schema), Vec::new());
    assert_eq!(
        messages(&validate_update(&no_schema, &crd())),
        ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]
    );

    assert_eq!(
        messages(&validate_create(&with(
            "spec/versions/0/deprecationWarning",
            json!("old")
        ))),
        [
            r#"spec.versions[0].deprecationWarning: Invalid value: "old": can only be set for deprecated versions"#
        ]
    );
    let mut deprecated = with("spec/versions/0/deprecationWarning", json!("old"));
    set(&mut deprecated, "spec/versions/0/deprecated", json!(true));
    assert_eq!(validate_create(&deprecated), Vec::new());
}

#[test]
fn schemas() {
    let p = "spec.versions[0].schema.openAPIV3Schema";
    assert_eq!(
        messages(&validate_create(&with(
            "spec/versions/0/schema/openAPIV3Schema/properties/spec",
            json!({"properties": {"replicas": {"type": "integer"}}})
        ))),
        [format!(
            "{p}.properties[spec].type: Required value: must not be empty for specified object fields"
        )]
    );
    assert_eq!(
        messages(&validate_create(&with(
            "spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/replicas/default",
            json!("one")
        ))),
        [format!(
            r#"{p}.properties[spec].properties[replicas].default: Invalid value: "string":  in body must be of type integer: "string""#
        )]
    );
    // With the status subresource, the root may hold only what survives extracting `status`.
    assert_eq!(
        details(&validate_create(&with(
            "spec/versions/0/schema/openAPIV3Schema/minProperties",
            json!(1)
        ))),
        [format!(
            "{p}: only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations] fields are allowed at the root of the schema if the status subresource is enabled"
        )]
    );
    let mut no_status = with(
        "spec/versions/0/schema/openAPIV3Schema/minProperties",
        json!(1),
    );
    set(&mut no_status, "spec/versions/0/subresources", json!({}));
    assert_eq!(validate_create(&no_status), Vec::new());
    assert_eq!(
        details(&validate_create(&with(
            "spec/versions/0/schema/openAPIV3Schema/nullable",
            json!(true)
        ))),
        [
            format!(
                "{p}: only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations] fields are allowed at the root of the schema if the status subresource is enabled"
            ),
            format!("{p}.nullable: nullable cannot be true at the root"),
        ]
    );
}

#[test]
fn scale_and_columns() {
    let s = "spec.versions[0].subresources.scale";
    let c = "spec.versions[0].additionalPrinterColumns";
    let cases = [
        (
            "spec/versions/0/subresources/scale/specReplicasPath",
            json!("spec.replicas"),
            format!(
                r#"{s}.specReplicasPath: Invalid value: "spec.replicas": must be a simple json path starting with ."#
            ),
        ),
        (
            "spec/versions/0/subresources/scale/specReplicasPath",
            json!(".status.replicas"),
            format!(
                r#"{s}.specReplicasPath: Invalid value: ".status.replicas": should be a json path under .spec"#
            ),
        ),
        (
            "spec/versions/0/subresources/scale/specReplicasPath",
            json!(".spec.items[0]"),
            format!(
                r#"{s}.specReplicasPath: Invalid value: ".spec.items[0]": must be a json path in the dot notation"#
            ),
        ),
        (
            "spec/versions/0/subresources/scale/statusReplicasPath",
            json!(""),
            format!("{s}.statusReplicasPath: Required value"),
        ),
        (
            "spec/versions/0/subresources/scale/labelSelectorPath",
            json!(".metadata.labels"),
            format!(
                r#"{s}.labelSelectorPath: Invalid value: ".metadata.labels": should be a json path under either .spec or .status"#
            ),
        ),
        (
            "spec/versions/0/additionalPrinterColumns/0/name",
            json!(""),
            format!("{c}[0].name: Required value"),
        ),
        (
            "spec/versions/0/additionalPrinterColumns/0/type",
            json!("float"),
            format!(
                r#"{c}[0].type: Invalid value: "float": must be one of boolean,date,integer,number,string"#
            ),
        ),
        (
            "spec/versions/0/additionalPrinterColumns/0/type",
            json!(""),
            format!(
                "{c}[0].type: Required value: must be one of boolean,date,integer,number,string"
            ),
        ),
        (
            "spec/versions/0/additionalPrinterColumns/0/format",
            json!("percent"),
            format!(
                r#"{c}[0].format: Invalid value: "percent": must be one of byte,date,date-time,double,float,int32,int64,password"#
            ),
        ),
        (
            "spec/versions/0/additionalPrinterColumns/0/jsonPath",
            json!(""),
            format!("{c}[0].JSONPath: Required value"),
        ),
        (
            "spec/versions/0/additionalPrinterColumns/0/jsonPath",
            json!("spec.replicas"),
            format!(
                r#"{c}[0].JSONPath: Invalid value: "spec.replicas": must be a simple json path starting with ."#
            ),
        ),
    ];
    for (path, value, want) in cases {
        assert_eq!(
            messages(&validate_create(&with(path, value))),
            [want],
            "{path}"
        );
    }
    let got = messages(&validate_create(&with(
        "spec/versions/0/additionalPrinterColumns/1/jsonPath",
        json!(".status.conditions[?(@.type=="),
    )));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(&format!(
            r#"{c}[1].JSONPath: Invalid value: ".status.conditions[?(@.type==": must be a valid JSONPath expression: "#
        )),
        "{}",
        got[0]
    );
}

#[test]
fn conversion() {
    let webhook = |w: Value| {
        with(
            "spec/conversion",
            json!({"strategy": "Webhook", "webhook": w}),
        )
    };
    let cases = [
        (
            with("spec/conversion", json!({"strategy": "Magic"})),
            vec![
                r#"spec.conversion.strategy: Unsupported value: "Magic": supported values: "None", "Webhook""#,
            ],
        ),
        (
            with("spec/conversion", json!({"strategy": "Webhook"})),
            vec![
                "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
                "spec.conversion.conversionReviewVersions: Required value",
            ],
        ),
        (
            webhook(
                json!({"clientConfig": {"url": "http://conv.example.com/x?a=b#f"}, "conversionReviewVersions": ["v1"]}),
            ),
            vec![
                r#"spec.conversion.webhookClientConfig.url: Invalid value: "http": 'https' is the only allowed URL scheme; desired format: https://host[/path]"#,
                r#"spec.conversion.webhookClientConfig.url: Invalid value: "f": fragments are not permitted in the URL"#,
                r#"spec.conversion.webhookClientConfig.url: Invalid value: "a=b": query parameters are not permitted in the URL"#,
            ],
        ),
        (
            webhook(
                json!({"clientConfig": {"url": "https://conv.example.com/x", "service": {"name": "a", "namespace": "b"}}, "conversionReviewVersions": ["v1"]}),
            ),
            vec![
                "spec.conversion.webhookClientConfig: Required value: exactly one of url or service is required",
            ],
        ),
        (
            webhook(
                json!({"clientConfig": {"service": {"name": "", "namespace": "b", "port": 0, "path": "convert"}}, "conversionReviewVersions": ["v1"]}),
            ),
            vec![
                "spec.conversion.webhookClientConfig.service.name: Required value: service name is required",
                "spec.conversion.webhookClientConfig.service.port: Invalid value: 0: port is not valid: must be between 1 and 65535, inclusive",
                r#"spec.conversion.webhookClientConfig.service.path: Invalid value: "convert": must start with a '/'"#,
            ],
        ),
        (
            webhook(
                json!({"clientConfig": {"url": "https://conv.example.com/x"}, "conversionReviewVersions": ["v2", "v2"]}),
            ),
            vec![
                r#"spec.conversion.conversionReviewVersions[1]: Invalid value: "v2": duplicate version"#,
                r#"spec.conversion.conversionReviewVersions: Invalid value: []string{"v2", "v2"}: must include at least one of v1, v1beta1"#,
            ],
        ),
        (
            with(
                "spec/conversion",
                json!({"strategy": "None", "webhook": {"clientConfig": {"url": "https://x"}, "conversionReviewVersions": ["v1"]}}),
            ),
            vec![
                "spec.conversion.webhookClientConfig: Forbidden: should not be set when strategy is not set to Webhook",
                "spec.conversion.conversionReviewVersions: Forbidden: should not be set when strategy is not set to Webhook",
            ],
        ),
    ];
    for (c, want) in cases {
        assert_eq!(messages(&validate_create(&c)), want);
    }
    let good = webhook(json!({
        "clientConfig": {"service": {"name": "conv", "namespace": "ns", "path": "/convert/v1", "port": 8443}},
        "conversionReviewVersions": ["v1", "v1beta1"]
    }));
    assert_eq!(validate_create(&good), Vec::new());
}

#[test]
fn updates() {
    let old = crd();
    assert_eq!(
        messages(&validate_update(
            &with("spec/scope", json!("Cluster")),
            &old
        )),
        [r#"spec.scope: Invalid value: "Cluster": field is immutable"#]
    );
    assert_eq!(
        messages(&validate_update(
            &with("spec/group", json!("other.com")),
            &old
        )),
        [r#"spec.group: Invalid value: "other.com": field is immutable"#]
    );
    assert_eq!(
        messages(&validate_update(
            &with("spec/names/plural", json!("gadgets")),
            &old
        )),
        [r#"spec.names.plural: Invalid value: "gadgets": field is immutable"#]
    );
    let mut kind = with("spec/names/kind", json!("Gadget"));
    set(&mut kind, "spec/names/listKind", json!("GadgetList"));
    assert_eq!(validate_update(&kind, &old), Vec::new());
    let established = with(
        "status",
        json!({"conditions": [{"type": "Established", "status": "True"}]}),
    );
    assert_eq!(
        messages(&validate_update(&kind, &established)),
        [r#"spec.names.kind: Invalid value: "Gadget": field is immutable"#]
    );
    // Other rules apply as on create.
    assert_eq!(
        messages(&validate_update(
            &with("spec/names/listKind", json!("Widget")),
            &old
        )),
        [r#"spec.names.listKind: Invalid value: "Widget": kind and listKind may not be the same"#]
    );
    // A CRD stored with preserveUnknownFields may keep it (but not with defaults).
    let preserving = with("spec/preserveUnknownFields", json!(true));
    assert_eq!(
        details(&validate_update(&preserving, &preserving)),
        ["spec.preserveUnknownFields: must be false in order to use defaults in the schema"]
    );
}
