//! Upstream's `EnsureNamedFieldsAreMembers`: a set that also owns every struct field with owned fields
//! below it (`spec.template` when `spec.template.spec.x` is owned), which is how pruning decides whether a
//! struct is still wanted by anyone. Map keys and list items are not named fields.

use super::shape;
use crate::fieldpath::{FieldSet, PathElement};
use crate::schema::{Node, Schema, Shape};

pub(crate) fn ensure_named_fields_are_members(
    schema: &dyn Schema,
    node: Option<Node>,
    set: &FieldSet,
) -> FieldSet {
    let shape = shape(schema, node);
    let mut out = FieldSet::new();
    out.members_mut().extend(set.members().iter().cloned());
    for (pe, child) in set.children() {
        let child_node = match (pe, shape) {
            (PathElement::Field(name), Shape::Struct(s)) => match s.field(name) {
                Some(field) => {
                    out.members_mut().push(pe.clone());
                    Some(field.node)
                }
                None => s.rest,
            },
            (PathElement::Field(_), Shape::Map { values, .. }) => Some(values),
            (PathElement::Field(_), Shape::Deduced) => None,
            (_, Shape::List { items, .. }) => Some(items),
            _ => None,
        };
        let below = ensure_named_fields_are_members(schema, child_node, child);
        out.children_mut().push((pe.clone(), below));
    }
    out.normalize();
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::schema_for;

    #[test]
    fn struct_fields_become_members_map_keys_and_items_do_not() {
        let schema = schema_for("apps", "v1", "Deployment").expect("vendored");
        let mut set = FieldSet::from_fields(&[&["metadata", "labels", "app"]]);
        set.insert(&[
            PathElement::field("spec"),
            PathElement::field("template"),
            PathElement::field("spec"),
            PathElement::field("containers"),
            PathElement::key([("name", json!("web"))]),
            PathElement::field("image"),
        ]);
        let named = ensure_named_fields_are_members(&schema, Some(schema.root()), &set);
        assert_eq!(
            named.to_fields_v1_string(),
            r#"{"f:metadata":{".":{},"f:labels":{".":{},"f:app":{}}},"f:spec":{".":{},"f:template":{".":{},"f:spec":{".":{},"f:containers":{".":{},"k:{\"name\":\"web\"}":{"f:image":{}}}}}}}"#
        );
    }
}
