//! `/openapi/v2`: the Swagger 2.0 document, as JSON and as the protobuf that kubectl ≤ 1.28 asks for (gnostic's
//! `openapi.v2.Document`, from github.com/google/gnostic `openapiv2/OpenAPIv2.proto`). Only the messages and
//! fields a definitions-only document needs are declared here; the tags are gnostic's.
//!
//! The document has definitions and no paths. kubectl ≤ 1.28 validates, explains and computes apply patches
//! from the definitions; it would trust the server's field validation only if a PATCH path listed
//! `fieldValidation`, so without paths it validates client-side (with upstream's schemas).

use serde_json::{Map, Value, json};

use crate::convert::{Definitions, Form};

/// The definitions in Swagger 2.0 form, by name.
pub(crate) fn definitions(defs: &Definitions) -> Map<String, Value> {
    defs.schemas
        .keys()
        .filter_map(|name| Some((name.clone(), defs.converted(name, Form::V2)?)))
        .collect()
}

/// The JSON document.
pub(crate) fn json_document(definitions: Map<String, Value>) -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": {},
        "definitions": definitions,
    })
}

/// The protobuf document.
pub(crate) fn protobuf_document(definitions: &Map<String, Value>) -> Vec<u8> {
    let document = Document {
        swagger: "2.0".into(),
        info: Some(Info {
            title: "Kubernetes".into(),
            version: "v1.33.0".into(),
        }),
        paths: Some(Paths {}),
        definitions: Some(NamedSchemas {
            additional_properties: definitions
                .iter()
                .map(|(name, schema)| NamedSchema {
                    name: name.clone(),
                    value: Some(to_schema(schema)),
                })
                .collect(),
        }),
    };
    prost::Message::encode_to_vec(&document)
}

fn to_schema(value: &Value) -> Schema {
    let mut schema = Schema::default();
    let Value::Object(map) = value else {
        return schema;
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    for (key, v) in map {
        match key.as_str() {
            "$ref" => schema.xref = text(v),
            "format" => schema.format = text(v),
            "description" => schema.description = text(v),
            "required" => {
                schema.required = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect();
            }
            "type" => {
                schema.r#type = Some(TypeItem {
                    value: vec![text(v)],
                });
            }
            "items" => {
                schema.items = Some(ItemsItem {
                    schema: vec![to_schema(v)],
                });
            }
            "additionalProperties" => {
                let item = match v {
                    Value::Bool(allowed) => AdditionalProperties::Boolean(*allowed),
                    other => AdditionalProperties::Schema(to_schema(other)),
                };
                schema.additional_properties =
                    Some(Box::new(AdditionalPropertiesItem { oneof: Some(item) }));
            }
            "properties" => {
                schema.properties = Some(NamedSchemas {
                    additional_properties: v
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(name, property)| NamedSchema {
                            name: name.clone(),
                            value: Some(to_schema(property)),
                        })
                        .collect(),
                });
            }
            // Vendor extensions travel as YAML text (JSON is YAML; kubectl parses it with a YAML decoder).
            extension if extension.starts_with("x-") => schema.vendor_extension.push(NamedAny {
                name: extension.to_string(),
                value: Some(Any {
                    yaml: format!("{v}\n"),
                }),
            }),
            _ => {}
        }
    }
    schema
}

/// `openapi.v2.Document`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Document {
    #[prost(string, tag = "1")]
    pub(crate) swagger: String,
    #[prost(message, optional, tag = "2")]
    pub(crate) info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    pub(crate) paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    pub(crate) definitions: Option<NamedSchemas>,
}

/// `openapi.v2.Info`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Info {
    #[prost(string, tag = "1")]
    pub(crate) title: String,
    #[prost(string, tag = "2")]
    pub(crate) version: String,
}

/// `openapi.v2.Paths`, always empty here.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Paths {}

/// `openapi.v2.Definitions` and `openapi.v2.Properties`: both are `repeated NamedSchema additional_properties = 1`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NamedSchemas {
    #[prost(message, repeated, tag = "1")]
    pub(crate) additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.NamedSchema`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NamedSchema {
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    #[prost(message, optional, tag = "2")]
    pub(crate) value: Option<Schema>,
}

/// `openapi.v2.Schema` (the fields Kubernetes definitions use).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Schema {
    #[prost(string, tag = "1")]
    pub(crate) xref: String,
    #[prost(string, tag = "2")]
    pub(crate) format: String,
    #[prost(string, tag = "4")]
    pub(crate) description: String,
    #[prost(string, repeated, tag = "19")]
    pub(crate) required: Vec<String>,
    #[prost(message, optional, boxed, tag = "21")]
    pub(crate) additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    pub(crate) r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub(crate) items: Option<ItemsItem>,
    #[prost(message, optional, tag = "25")]
    pub(crate) properties: Option<NamedSchemas>,
    #[prost(message, repeated, tag = "31")]
    pub(crate) vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.AdditionalPropertiesItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalProperties", tags = "1, 2")]
    pub(crate) oneof: Option<AdditionalProperties>,
}

/// The `oneof` of `openapi.v2.AdditionalPropertiesItem`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum AdditionalProperties {
    #[prost(message, tag = "1")]
    Schema(Schema),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

/// `openapi.v2.TypeItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub(crate) value: Vec<String>,
}

/// `openapi.v2.ItemsItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub(crate) schema: Vec<Schema>,
}

/// `openapi.v2.NamedAny`: a vendor extension.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NamedAny {
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    #[prost(message, optional, tag = "2")]
    pub(crate) value: Option<Any>,
}

/// `openapi.v2.Any`: only its `yaml` text (field 2) is used.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Any {
    #[prost(string, tag = "2")]
    pub(crate) yaml: String,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn protobuf_round_trips_with_extensions_as_yaml() {
        let defs = Definitions::load();
        let definitions = definitions(&defs);
        let bytes = protobuf_document(&definitions);
        let document = Document::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(document.swagger, "2.0");
        let all = document
            .definitions
            .expect("definitions")
            .additional_properties;
        assert_eq!(all.len(), defs.schemas.len());
        let deployment = all
            .iter()
            .find(|d| d.name == "io.k8s.api.apps.v1.Deployment")
            .and_then(|d| d.value.as_ref())
            .expect("Deployment");
        assert_eq!(deployment.r#type.as_ref().expect("type").value, ["object"]);
        let gvk = &deployment.vendor_extension[0];
        assert_eq!(gvk.name, "x-kubernetes-group-version-kind");
        assert_eq!(
            gvk.value.as_ref().expect("value").yaml,
            "[{\"group\":\"apps\",\"kind\":\"Deployment\",\"version\":\"v1\"}]\n"
        );
        let spec = deployment
            .properties
            .as_ref()
            .expect("properties")
            .additional_properties
            .iter()
            .find(|p| p.name == "spec")
            .and_then(|p| p.value.as_ref())
            .expect("spec");
        assert_eq!(spec.xref, "#/definitions/io.k8s.api.apps.v1.DeploymentSpec");
        assert!(spec.r#type.is_none(), "a reference has no type");
        let labels = all
            .iter()
            .find(|d| d.name == "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .and_then(|d| d.value.as_ref())
            .and_then(|d| d.properties.as_ref())
            .and_then(|p| p.additional_properties.iter().find(|p| p.name == "labels"))
            .and_then(|p| p.value.as_ref())
            .expect("labels");
        match labels
            .additional_properties
            .as_ref()
            .and_then(|a| a.oneof.as_ref())
        {
            Some(AdditionalProperties::Schema(s)) => {
                assert_eq!(s.r#type.as_ref().expect("type").value, ["string"]);
            }
            other => panic!("labels are a map of strings, not {other:?}"),
        }
    }

    #[test]
    fn every_schema_has_at_most_one_type() {
        // kube-openapi refuses a document with a multi-type schema.
        let defs = Definitions::load();
        let text = Value::Object(definitions(&defs)).to_string();
        assert!(!text.contains("\"null\""));
        assert!(!text.contains("\"type\":["));
        // No schema says `oneOf` (JSONSchemaProps has a property of that name, which is fine).
        fn no_one_of(schema: &Value) {
            let Some(fields) = schema.as_object() else {
                return;
            };
            assert!(!fields.contains_key("oneOf"), "{schema}");
            for (key, value) in fields {
                match (key.as_str(), value) {
                    ("properties", Value::Object(properties)) => {
                        properties.values().for_each(no_one_of)
                    }
                    (_, Value::Array(items)) => items.iter().for_each(no_one_of),
                    _ => no_one_of(value),
                }
            }
        }
        definitions(&defs).values().for_each(no_one_of);
    }
}
