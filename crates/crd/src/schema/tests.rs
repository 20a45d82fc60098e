use serde_json::json;

use super::*;

fn schema(v: Value) -> Schema {
    Schema::from_value(&v).unwrap()
}

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

fn sample() -> Schema {
    schema(json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
                    "replicas": {"type": "integer", "format": "int32"},
                    "size": {"type": "integer", "maximum": 10, "minimum": 1},
                    "ratio": {"type": "number", "maximum": 1, "exclusiveMaximum": true, "multipleOf": 0.25},
                    "big": {"type": "number", "maximum": 1_000_000},
                    "color": {"type": "string", "enum": ["red", "blue"]},
                    "when": {"type": "string", "format": "date-time"},
                    "data": {"type": "string", "format": "byte"},
                    "port": {"x-kubernetes-int-or-string": true},
                    "items": {
                        "type": "array",
                        "maxItems": 3,
                        "minItems": 1,
                        "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
                    },
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 2},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["port"],
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "properties": {"port": {"type": "integer"}, "name": {"type": "string"}}
                        }
                    },
                    "note": {"type": "string", "nullable": true},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true
                    }
                }
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }
    }))
}

fn errors_of(s: &Schema, spec: Value) -> Vec<String> {
    messages(&s.validate(&json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": spec})))
}

#[test]
fn compile_failures() {
    assert!(Schema::from_value(&json!("object")).is_err());
    assert!(Schema::from_value(&json!({"type": "thing"})).is_err());
    let err =
        Schema::from_value(&json!({"properties": {"a": {"type": "string", "pattern": "(a"}}}))
            .unwrap_err();
    assert!(err.contains("error parsing regexp"), "{err}");
    assert!(Schema::from_value(&json!({"properties": {"a": {"minLength": -1}}})).is_err());
    assert!(Schema::from_value(&json!({"items": [{"type": "string"}]})).is_err());
    // Descriptions, examples and CEL rules are accepted (the rules are not enforced).
    let s = schema(json!({
        "type": "object", "description": "d", "example": {"a": 1},
        "x-kubernetes-validations": [{"rule": "false"}]
    }));
    assert!(s.validate(&json!({})).is_empty());
}

#[test]
fn valid_objects_have_no_errors() {
    let s = sample();
    let spec = json!({
        "name": "abc", "replicas": 3, "size": 10, "ratio": 0.75, "color": "blue",
        "when": "2024-05-01T10:00:00Z", "data": "aGVsbG8=", "port": "http",
        "items": [{"name": "a"}], "labels": {"a": "b"}, "tags": ["a", "b"],
        "ports": [{"port": 80}, {"port": 443}], "note": null,
        "free": {"anything": [1, {"x": null}]},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}}
    });
    assert_eq!(errors_of(&s, spec), Vec::<String>::new());
    assert_eq!(
        errors_of(&s, json!({"name": "ab", "port": 8080, "ratio": 0.5})),
        Vec::<String>::new()
    );
}

#[test]
fn value_errors_read_as_upstream() {
    let s = sample();
    let cases = [
        (
            json!({"name": "abc", "replicas": "3"}),
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
        ),
        (
            json!({"name": "abc", "size": 11}),
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
        ),
        (
            json!({"name": "abc", "size": 0}),
            "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ),
        (
            json!({"name": "abc", "ratio": 1}),
            "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1",
        ),
        (
            json!({"name": "abc", "ratio": 0.3}),
            "spec.ratio: Invalid value: 0.3: spec.ratio in body should be a multiple of 0.25",
        ),
        (
            json!({"name": "abc", "big": 1_000_000.5}),
            "spec.big: Invalid value: 1000000.5: spec.big in body should be less than or equal to 1e+06",
        ),
        (
            json!({"name": "abc", "color": "pink"}),
            r#"spec.color: Unsupported value: "pink": supported values: "red", "blue""#,
        ),
        (json!({}), "spec.name: Required value"),
        (
            json!({"name": "a"}),
            r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#,
        ),
        (
            json!({"name": "abcdef"}),
            "spec.name: Too long: may not be more than 5 bytes",
        ),
        (
            json!({"name": "AB"}),
            r#"spec.name: Invalid value: "AB": spec.name in body should match '^[a-z]+$'"#,
        ),
        (
            json!({"name": null}),
            r#"spec.name: Invalid value: "null": spec.name in body must be of type string: "null""#,
        ),
        (
            json!({"name": "abc", "when": "yesterday"}),
            r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#,
        ),
        (
            json!({"name": "abc", "data": "!!"}),
            r#"spec.data: Invalid value: "!!": spec.data in body must be of type byte: "!!""#,
        ),
        (
            json!({"name": "abc", "replicas": 3_000_000_000_i64}),
            r#"spec.replicas: Invalid value: 3000000000: spec.replicas in body must be of type int32: "3000000000""#,
        ),
        (
            json!({"name": "abc", "port": true}),
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
        ),
        (
            json!({"name": "abc", "items": [{"name": "a"}, {"name": "b"}, {}]}),
            "spec.items[2].name: Required value",
        ),
        (
            json!({"name": "abc", "items": [{"name": 5}]}),
            r#"spec.items[0].name: Invalid value: "integer": spec.items[0].name in body must be of type string: "integer""#,
        ),
        (
            json!({"name": "abc", "items": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]}),
            "spec.items: Too many: 4: must have at most 3 items",
        ),
        (
            json!({"name": "abc", "items": []}),
            "spec.items: Invalid value: 0: spec.items in body should have at least 1 items",
        ),
        (
            json!({"name": "abc", "labels": {"a": 1}}),
            r#"spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer""#,
        ),
        (
            json!({"name": "abc", "labels": {"a": "1", "b": "2", "c": "3"}}),
            "spec.labels: Too many: 3: must have at most 2 items",
        ),
        (
            json!({"name": "abc", "tags": ["a", "b", "a", "a"]}),
            r#"spec.tags[2]: Duplicate value: "a""#,
        ),
        (
            json!({"name": "abc", "ports": [{"port": 80}, {"port": 80, "name": "x"}]}),
            r#"spec.ports[1]: Duplicate value: {"port":80}"#,
        ),
    ];
    for (spec, want) in cases {
        let got = errors_of(&s, spec.clone());
        assert_eq!(got, [want], "for {spec}");
    }
    assert_eq!(
        errors_of(&s, json!({"name": "abc", "ports": [{"port": 80}, 1]})),
        [
            r#"spec.ports[1]: Invalid value: "integer": spec.ports[1] in body must be of type object: "integer""#,
            "spec.ports[1]: Invalid value: 1: must be an object for an array of list-type map",
        ]
    );
    assert_eq!(
        messages(&s.validate(&json!({"spec": "x"}))),
        [r#"spec: Invalid value: "string": spec in body must be of type object: "string""#]
    );
    let errs = s.validate(&json!({"spec": {"name": "abc", "replicas": "x"}}));
    assert_eq!(errs[0].kind, FieldErrorType::TypeInvalid);
    assert_eq!(errs[0].kind.as_str(), "FieldValueTypeInvalid");
}

#[test]
fn embedded_resources_need_type_meta() {
    let s = sample();
    assert_eq!(
        errors_of(
            &s,
            json!({"name": "abc", "template": {"metadata": {"name": "a/b"}}})
        ),
        [
            "spec.template.apiVersion: Required value",
            "spec.template.kind: Required value",
            "spec.template.metadata.name: Invalid value: \"a/b\": may not contain '/'",
        ]
    );
    let got = errors_of(
        &s,
        json!({"name": "abc", "template": {"apiVersion": "a/b/c", "kind": "bad_kind"}}),
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0],
        r#"spec.template.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#
    );
    assert!(
        got[1].starts_with(r#"spec.template.kind: Invalid value: "bad_kind": may have mixed case, but should otherwise match: a DNS-1035 label"#),
        "{}",
        got[1]
    );
}

#[test]
fn root_type_meta_and_metadata_are_the_servers() {
    let s = schema(json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}},
            "spec": {"type": "object"}
        }
    }));
    let ok = json!({"apiVersion": 5, "kind": 7, "metadata": {"name": "abc", "labels": {"a": "b"}}});
    assert!(s.validate(&ok).is_empty());
    assert_eq!(
        messages(&s.validate(&json!({"metadata": {"name": "abcdefg"}}))),
        ["metadata.name: Too long: may not be more than 5 bytes"]
    );
    assert_eq!(
        messages(&s.validate(&json!({"metadata": "x"}))),
        [r#"metadata: Invalid value: "string": metadata in body must be of type object: "string""#]
    );
}

#[test]
fn junctors() {
    let s = schema(json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "anyOf": [{"required": ["a"]}, {"required": ["b"]}]
            },
            "one": {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "oneOf": [{"required": ["a"]}, {"required": ["b"]}]
            },
            "not": {"type": "object", "properties": {"a": {"type": "string"}}, "not": {"required": ["a"]}},
            "all": {
                "type": "integer",
                "allOf": [{"minimum": 2}, {"maximum": 5}]
            }
        }
    }));
    assert_eq!(
        messages(&s.validate(&json!({"spec": {}}))),
        [
            r#"<nil>: Invalid value: "": "spec" must validate at least one schema (anyOf)"#,
            "spec.a: Required value",
        ]
    );
    assert!(s.validate(&json!({"spec": {"b": "x"}})).is_empty());
    assert_eq!(
        messages(&s.validate(&json!({"one": {"a": "x", "b": "y"}}))),
        [
            r#"<nil>: Invalid value: "": "one" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        ]
    );
    assert_eq!(
        messages(&s.validate(&json!({"one": {}}))),
        [
            r#"<nil>: Invalid value: "": "one" must validate one and only one schema (oneOf). Found none valid"#,
            "one.a: Required value",
        ]
    );
    assert_eq!(
        messages(&s.validate(&json!({"not": {"a": "x"}}))),
        [r#"<nil>: Invalid value: "": "not" must not validate the schema (not)"#]
    );
    assert_eq!(
        messages(&s.validate(&json!({"all": 7}))),
        [
            "all: Invalid value: 7: all in body should be less than or equal to 5",
            r#"<nil>: Invalid value: "": "all" must validate all the schemas (allOf)"#,
        ]
    );
}

#[test]
fn pruning() {
    let s = sample();
    let mut object = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "weird": 1},
        "spec": {
            "name": "ab", "bogus": 1,
            "items": [{"name": "a", "extra": true}],
            "labels": {"k": "v"},
            "free": {"anything": {"deep": 1}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1}, "spec": {"whatever": 1}}
        },
        "status": {"ready": true, "other": 1},
        "top": 1
    });
    let want = ["spec.bogus", "spec.items[0].extra", "status.other", "top"];
    assert_eq!(s.unknown_fields(&object), want);
    assert_eq!(s.prune(&mut object), want);
    assert_eq!(
        object,
        json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "weird": 1},
            "spec": {
                "name": "ab",
                "items": [{"name": "a"}],
                "labels": {"k": "v"},
                "free": {"anything": {"deep": 1}},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1}, "spec": {"whatever": 1}}
            },
            "status": {"ready": true}
        })
    );
    assert!(s.unknown_fields(&object).is_empty());

    let maps = schema(json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "m": {"type": "object", "additionalProperties": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "p": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}
            },
            "e": {
                "type": "object",
                "x-kubernetes-embedded-resource": true,
                "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}
            }
        }}}
    }));
    let mut object = json!({"spec": {
        "m": {"k": {"a": "x", "b": 1}},
        "p": {"free": 1, "known": {"a": "x", "b": 2}},
        "e": {"apiVersion": "v1", "kind": "K", "metadata": {"anything": 1}, "spec": {"a": "x", "c": 3}, "d": 4}
    }});
    let want = ["spec.e.d", "spec.e.spec.c", "spec.m.k.b", "spec.p.known.b"];
    assert_eq!(
        s.unknown_fields(&json!({"spec": {"name": "x"}})),
        Vec::<String>::new()
    );
    assert_eq!(maps.unknown_fields(&object), want);
    assert_eq!(maps.prune(&mut object), want);
    assert_eq!(
        object,
        json!({"spec": {
            "m": {"k": {"a": "x"}},
            "p": {"free": 1, "known": {"a": "x"}},
            "e": {"apiVersion": "v1", "kind": "K", "metadata": {"anything": 1}, "spec": {"a": "x"}}
        }})
    );
}

#[test]
fn defaulting() {
    let s = schema(json!({
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "default": {},
                "properties": {
                    "replicas": {"type": "integer", "default": 1},
                    "strategy": {
                        "type": "object",
                        "default": {"type": "Rolling"},
                        "properties": {"type": {"type": "string"}, "maxSurge": {"type": "integer", "default": 25}}
                    },
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"weight": {"type": "integer", "default": 5}}}
                    },
                    "labels": {
                        "type": "object",
                        "additionalProperties": {"type": "object", "properties": {"on": {"type": "boolean", "default": true}}}
                    },
                    "gone": {"type": "string"},
                    "keep": {"type": "string", "nullable": true},
                    "fill": {"type": "string", "default": "x"}
                }
            }
        }
    }));
    let mut object = json!({
        "metadata": {"name": "a"},
        "spec": {"items": [{}, {"weight": 2}], "labels": {"a": {}}, "gone": null, "keep": null, "fill": null}
    });
    s.apply_defaults(&mut object);
    assert_eq!(
        object,
        json!({
            "metadata": {"name": "a"},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Rolling", "maxSurge": 25},
                "items": [{"weight": 5}, {"weight": 2}],
                "labels": {"a": {"on": true}},
                "keep": null,
                "fill": "x"
            }
        })
    );
    let mut empty = json!({"apiVersion": "v1", "kind": "K"});
    s.apply_defaults(&mut empty);
    assert_eq!(
        empty,
        json!({
            "apiVersion": "v1", "kind": "K",
            "spec": {"replicas": 1, "strategy": {"type": "Rolling", "maxSurge": 25}, "fill": "x"}
        })
    );
    assert!(s.validate(&empty).is_empty());
}

const P: &str = "spec.versions[0].schema.openAPIV3Schema";

fn structural(v: Value) -> Vec<String> {
    messages(&Schema::structural_errors(&v, P))
}

#[test]
fn structural_schemas_pass() {
    let raw = json!({
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}}},
            "spec": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
                    "replicas": {"type": "integer", "format": "int32", "default": 1, "minimum": 0},
                    "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "q": {"x-kubernetes-int-or-string": true, "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"pattern": "^[0-9]+$"}]},
                    "free": {"x-kubernetes-preserve-unknown-fields": true},
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["port", "protocol"],
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "properties": {"port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}
                        }
                    },
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}, "x-kubernetes-map-type": "atomic"},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
                    "strategy": {"type": "object", "default": {"type": "Rolling"}, "properties": {"type": {"type": "string"}}}
                },
                "oneOf": [{"required": ["name"]}, {"properties": {"name": {"maxLength": 2}}}],
                "x-kubernetes-validations": [{"rule": "self.name != 'x'", "message": "no x"}]
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        },
        "anyOf": [{"required": ["spec"]}, {"properties": {"spec": {"properties": {"name": {"maxLength": 4}}}}}]
    });
    assert_eq!(structural(raw.clone()), Vec::<String>::new());
    let s = Schema::from_value(&raw).unwrap();
    let object = json!({"spec": {"name": "abc", "port": 1, "q": "12", "ports": [{"port": 1}]}});
    assert_eq!(messages(&s.validate(&object)), Vec::<String>::new());
}

#[test]
fn structural_errors_read_as_upstream() {
    let cases = [
        (
            json!({}),
            format!("{P}.type: Required value: must not be empty at the root"),
        ),
        (
            json!({"type": "string"}),
            format!(r#"{P}.type: Invalid value: "string": must be object at the root"#),
        ),
        (
            json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
            format!(
                "{P}.properties[spec].type: Required value: must not be empty for specified object fields"
            ),
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array", "items": {"properties": {}}}}}),
            format!(
                "{P}.properties[l].items.type: Required value: must not be empty for specified array items"
            ),
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array"}}}),
            format!("{P}.properties[l].items: Required value: must be specified"),
        ),
        (
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
            format!("{P}.additionalProperties: Forbidden: must not be used at the root"),
        ),
        (
            json!({"type": "object", "properties": {"x": {"type": "string", "allOf": [{"type": "string"}]}}}),
            format!("{P}.properties[x].allOf[0].type: Forbidden: must be empty to be structural"),
        ),
        (
            json!({"type": "object", "properties": {"x": {"type": "string", "anyOf": [{"nullable": true}]}}}),
            format!(
                "{P}.properties[x].anyOf[0].nullable: Forbidden: must be false to be structural"
            ),
        ),
        (
            json!({"type": "object", "properties": {"x": {"type": "object", "allOf": [{"properties": {"metadata": {}}}]}}}),
            format!(
                "{P}.properties[x].allOf[0].properties[metadata]: Forbidden: must not be specified in a nested context"
            ),
        ),
        (
            json!({
                "type": "object",
                "properties": {"spec": {"type": "object"}},
                "anyOf": [{"properties": {"spec": {"properties": {"foo": {"minLength": 1}}}}}]
            }),
            format!(
                "{P}.properties[spec].properties[foo]: Required value: because it is defined in {P}.anyOf[0].properties[spec].properties[foo]"
            ),
        ),
        (
            json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}}),
            format!(
                "{P}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            ),
        ),
        (
            json!({"type": "object", "properties": {"metadata": {"type": "string"}}}),
            format!(r#"{P}.properties[metadata].type: Invalid value: "string": must be object"#),
        ),
        (
            json!({"type": "object", "properties": {"kind": {"type": "integer"}}}),
            format!(r#"{P}.properties[kind].type: Invalid value: "integer": must be string"#),
        ),
        (
            json!({"type": "object", "properties": {"t": {"x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}}),
            format!(
                "{P}.properties[t].type: Required value: must be object if x-kubernetes-embedded-resource is true"
            ),
        ),
        (
            json!({"type": "object", "properties": {"t": {"type": "object", "x-kubernetes-embedded-resource": true}}}),
            format!(
                "{P}.properties[t].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
            ),
        ),
        (
            json!({"type": "object", "properties": {"p": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true}}}),
            format!(
                "{P}.properties[p].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
            ),
        ),
        (
            json!({"type": "object", "properties": {"replicas": {"type": "integer", "default": "x"}}}),
            format!(
                r#"{P}.properties[replicas].default: Invalid value: "string":  in body must be of type integer: "string""#
            ),
        ),
        (
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "integer", "maximum": 3, "default": 5}}}}}),
            format!(
                "{P}.properties[spec].properties[a].default: Invalid value: 5:  in body should be less than or equal to 3"
            ),
        ),
        (
            json!({"type": "object", "properties": {"spec": {"type": "object", "default": {"a": 1, "b": 2}, "properties": {"a": {"type": "integer"}}}}}),
            format!(
                r#"{P}.properties[spec].default: Invalid value: {{"a":1,"b":2}}: must not have unknown fields"#
            ),
        ),
        (
            json!({"type": "object", "properties": {"spec": {"type": "object", "default": {}, "required": ["a"], "properties": {"a": {"type": "integer"}}}}}),
            format!("{P}.properties[spec].default.a: Required value"),
        ),
        (
            json!({"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}}),
            format!(
                "{P}.properties[metadata].default: Forbidden: must not be set in top-level metadata"
            ),
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}}),
            format!(
                "{P}.properties[l].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
            ),
        ),
        (
            json!({"type": "object", "properties": {"s": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}}}),
            format!(
                "{P}.properties[s].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
            ),
        ),
        (
            json!({"type": "object", "properties": {"r": {"type": "object", "$ref": "#/definitions/x"}}}),
            format!("{P}.properties[r].$ref: Forbidden: $ref is not supported"),
        ),
        (
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": false}),
            format!(
                "{P}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
            ),
        ),
        (
            json!({"type": "object", "properties": {"m": {"type": "string", "x-kubernetes-map-type": "atomic"}}}),
            format!(
                r#"{P}.properties[m].type: Invalid value: "string": must be object if x-kubernetes-map-type is specified"#
            ),
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "bag"}}}),
            format!(
                r#"{P}.properties[l].x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", "map""#
            ),
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "map"}}}),
            format!(
                "{P}.properties[l].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
            ),
        ),
        (
            json!({"type": "object", "properties": {"l": {
                "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}
            }}}),
            format!(
                "{P}.properties[l].items.properties[name].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
            ),
        ),
        (
            json!({"type": "object", "properties": {"l": {
                "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["nope"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}
            }}}),
            format!(
                r#"{P}.properties[l].x-kubernetes-list-map-keys: Invalid value: []string{{"nope"}}: entries must all be names of item properties"#
            ),
        ),
        (
            json!({"type": "object", "properties": {"l": {
                "type": "array", "x-kubernetes-list-type": "set",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}
            }}}),
            format!(
                "{P}.properties[l].items.x-kubernetes-map-type: Invalid value: null: must be atomic as item of a list with x-kubernetes-list-type=set"
            ),
        ),
        (
            json!({"type": "object", "x-kubernetes-validations": [{"rule": " "}]}),
            format!("{P}.x-kubernetes-validations[0].rule: Required value: rule is not specified"),
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(structural(raw.clone()), [want], "for {raw}");
    }

    let got = structural(
        json!({"type": "object", "properties": {"n": {"type": "string", "pattern": "(a"}}}),
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(&format!(
            r#"{P}.properties[n].pattern: Invalid value: "(a": must be a valid regular expression, but isn't: error parsing regexp: "#
        )),
        "{}",
        got[0]
    );
    assert_eq!(
        structural(json!({"type": "object", "properties": {"n": {"type": "null"}}})),
        [
            format!(
                r#"{P}.properties[n].type: Unsupported value: "null": supported values: "array", "boolean", "integer", "number", "object", "string""#
            ),
            format!(
                "{P}.properties[n].type: Forbidden: type cannot be set to null, use nullable as an alternative"
            ),
        ]
    );
    assert_eq!(
        structural(json!("object")),
        [format!(
            r#"{P}: Invalid value: "": error building validator: a schema must be a JSON object"#
        )]
    );
}

#[test]
fn structural_for_apply() {
    let s = schema(json!({
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
            "spec": {"type": "object", "properties": {
                "port": {"x-kubernetes-int-or-string": true},
                "ports": {
                    "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                    "items": {"type": "object", "properties": {"port": {"type": "integer"}}}
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}, "x-kubernetes-map-type": "atomic"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
            }}
        }
    }));
    let root = s.structural();
    assert_eq!(root.types, ["object"]);
    assert_eq!(
        root.properties["metadata"].reference.as_deref(),
        Some(OBJECT_META)
    );
    assert_eq!(root.properties["kind"].types, ["string"]);
    assert_eq!(root.properties["apiVersion"].types, ["string"]);
    let spec = &root.properties["spec"];
    assert!(spec.properties["port"].one_of);
    assert_eq!(spec.properties["port"].types, ["integer", "string"]);
    let ports = &spec.properties["ports"];
    assert_eq!(ports.list_type.as_deref(), Some("map"));
    assert_eq!(ports.list_map_keys, ["port"]);
    assert_eq!(
        ports.items.as_ref().unwrap().properties["port"].types,
        ["integer"]
    );
    let labels = &spec.properties["labels"];
    assert_eq!(labels.map_type.as_deref(), Some("atomic"));
    assert_eq!(
        labels.additional_properties.as_ref().unwrap().types,
        ["string"]
    );
    assert!(spec.properties["free"].preserve_unknown_fields);
    let template = &spec.properties["template"];
    assert_eq!(
        template.properties["metadata"].reference.as_deref(),
        Some(OBJECT_META)
    );
    assert!(template.preserve_unknown_fields);
}

#[test]
fn floats_print_as_go_does() {
    for (f, want) in [
        (10.0, "10"),
        (0.5, "0.5"),
        (-2.25, "-2.25"),
        (100_000.0, "100000"),
        (1_000_000.0, "1e+06"),
        (1_234_567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (123_456.7, "123456.7"),
        (0.0, "0"),
    ] {
        assert_eq!(go_float(f), want, "{f}");
    }
}

#[test]
fn defaults_and_nulls_in_enums() {
    let everything = Schema::default();
    let mut object = json!({"spec": {"a": [1, {"b": null}]}, "x": 1});
    assert!(everything.validate(&object).is_empty());
    assert!(everything.prune(&mut object).is_empty());
    let s = schema(json!({"type": "object", "properties": {
        "a": {"type": "string", "nullable": true, "enum": ["x", null]},
        "b": {"type": "string", "nullable": true, "enum": ["x"]}
    }}));
    assert!(s.validate(&json!({"a": null})).is_empty());
    assert_eq!(
        messages(&s.validate(&json!({"b": null}))),
        [r#"b: Unsupported value: null: supported values: "x""#]
    );
}

#[test]
fn patterns_are_go_regexps() {
    // RE2 syntax upstream accepts: case-insensitivity and Unicode classes.
    let s = schema(json!({"type": "object", "properties": {
        "a": {"type": "string", "pattern": "(?i)^abc$"},
        "b": {"type": "string", "pattern": "^\\p{L}+$"}
    }}));
    assert!(s.validate(&json!({"a": "ABC", "b": "héllo"})).is_empty());
    assert_eq!(
        messages(&s.validate(&json!({"a": "abd", "b": "h1"}))),
        [
            r#"a: Invalid value: "abd": a in body should match '(?i)^abc$'"#,
            r#"b: Invalid value: "h1": b in body should match '^\p{L}+$'"#,
        ]
    );
    // Lookaround is not RE2.
    assert!(Schema::from_value(&json!({"type": "string", "pattern": "^(?!x)"})).is_err());
}
