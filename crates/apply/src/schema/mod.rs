//! What the engine needs to know about an object's shape: for each node, whether it is a struct with known
//! fields, a map with arbitrary keys, a list (atomic, set, or map keyed by some fields), a scalar, or
//! unknown. [`OpenApiSchema`] answers from the vendored OpenAPI definitions, [`DeducedSchema`] from the
//! values themselves (maps granular, lists atomic), as upstream does for objects without a schema.

mod openapi;

use std::fmt;

use serde_json::Value;

pub use openapi::{CompiledSchema, OpenApiSchema, schema_for};

/// A node of a schema (an index the schema hands out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Node(pub u32);

/// The shape of an object's values, node by node.
pub trait Schema: fmt::Debug + Send + Sync {
    /// The node of the whole object.
    fn root(&self) -> Node;
    /// What `node` is.
    fn shape(&self, node: Node) -> Shape<'_>;
}

/// What a node is.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    /// A scalar leaf.
    Scalar(ScalarKind),
    /// Anything, owned and replaced as a whole (`RawExtension`, `FieldsV1`).
    Untyped,
    /// No schema: maps are granular (their values deduced the same way), lists atomic, scalars leaves.
    Deduced,
    /// An object with known fields.
    Struct(Struct<'a>),
    /// An object with arbitrary keys (`additionalProperties`).
    Map { values: Node, atomic: bool },
    /// A list.
    List { items: Node, kind: &'a ListKind },
}

/// Scalar types, as upstream validates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    String,
    Numeric,
    Boolean,
    /// Any scalar (`IntOrString`, `Quantity`).
    Any,
}

/// An object with known fields.
#[derive(Debug, Clone, Copy)]
pub struct Struct<'a> {
    /// Sorted by name.
    pub fields: &'a [Field],
    /// The node of fields not listed (`x-kubernetes-preserve-unknown-fields`); `None`: unknown fields are
    /// not allowed.
    pub rest: Option<Node>,
    /// `x-kubernetes-map-type: atomic`: owned and replaced as a whole.
    pub atomic: bool,
}

impl<'a> Struct<'a> {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&'a Field> {
        self.fields
            .binary_search_by(|f| f.name.as_ref().cmp(name))
            .ok()
            .map(|i| &self.fields[i])
    }
}

/// A field of a struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: Box<str>,
    pub node: Node,
    /// The default value, where the field is a list-map key that may be omitted (`protocol`: `"TCP"`).
    pub default: Option<Value>,
    /// What Go's types hold when the field is unset, where they never omit it: `{}` for a struct held by
    /// value (`spec`, `metadata`), `null` for a list without `omitempty` (`containers`). Where the parent
    /// exists, a missing value compares as this.
    pub zero: Option<Value>,
}

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    /// Replaced as a whole.
    Atomic,
    /// Scalars merged by value.
    Set,
    /// Objects merged by these key fields.
    Map(Box<[Box<str>]>),
}

/// The schema of objects without one: every node is [`Shape::Deduced`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DeducedSchema;

impl Schema for DeducedSchema {
    fn root(&self) -> Node {
        Node(0)
    }

    fn shape(&self, _node: Node) -> Shape<'_> {
        Shape::Deduced
    }
}
