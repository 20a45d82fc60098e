//! Walks over JSON values guided by a [`Schema`]: the field set a value owns, the comparison of two values,
//! merging a configuration into an object, and removing a set of fields. Nodes are `Option<Node>`, `None`
//! meaning "no schema here" (deduced: maps granular, lists atomic).

mod compare;
mod fieldset;
mod merge;
mod named;
mod remove;

use serde_json::Value;

use crate::fieldpath::PathElement;
use crate::schema::{ListKind, Node, Schema, Shape, Struct};

pub(crate) use compare::{Comparison, compare};
pub(crate) use fieldset::{field_set, strict_field_set};
pub(crate) use merge::merge_into;
pub(crate) use named::ensure_named_fields_are_members;
pub(crate) use remove::{remove_items, strip_config_nulls};

/// How a value is walked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum View<'s> {
    /// One leaf: scalars, atomic maps and lists, untyped values, and values of the wrong type.
    Leaf,
    /// A granular object.
    Object(Fields<'s>),
    /// A granular list.
    List { items: Node, keying: Keying<'s> },
}

/// Where a granular object's values get their schema.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fields<'s> {
    Struct(Struct<'s>),
    Map(Node),
    Deduced,
}

/// The schema of one entry of a granular object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'s> {
    pub(crate) node: Option<Node>,
    /// A field the struct declares (as opposed to a map key or an unknown field).
    pub(crate) declared: bool,
    /// The struct does not know the field and takes no others.
    pub(crate) unknown: bool,
    /// Go's value for the field when unset, where it never omits it.
    pub(crate) zero: Option<&'s Value>,
}

impl<'s> Fields<'s> {
    pub(crate) fn entry(&self, key: &str) -> Entry<'s> {
        let plain = |node| Entry {
            node,
            declared: false,
            unknown: false,
            zero: None,
        };
        match self {
            Fields::Struct(s) => match s.field(key) {
                Some(f) => Entry {
                    node: Some(f.node),
                    declared: true,
                    unknown: false,
                    zero: f.zero.as_ref(),
                },
                None => match s.rest {
                    Some(rest) => plain(Some(rest)),
                    None => Entry {
                        unknown: true,
                        ..plain(None)
                    },
                },
            },
            Fields::Map(values) => plain(Some(*values)),
            Fields::Deduced => plain(None),
        }
    }
}

/// How a granular list names its items.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keying<'s> {
    Set,
    Map {
        keys: &'s [Box<str>],
        item: Option<Struct<'s>>,
    },
}

/// The shape at `node` (deduced for `None`).
pub(crate) fn shape(schema: &dyn Schema, node: Option<Node>) -> Shape<'_> {
    match node {
        Some(node) => schema.shape(node),
        None => Shape::Deduced,
    }
}

/// How `value` (absent: `None`) is walked at `node`, as upstream's `deduceAtom` + `handleAtom` decide.
pub(crate) fn view<'s>(
    schema: &'s dyn Schema,
    node: Option<Node>,
    value: Option<&Value>,
) -> View<'s> {
    let objectish = matches!(value, None | Some(Value::Null | Value::Object(_)));
    let listish = matches!(value, None | Some(Value::Null | Value::Array(_)));
    match shape(schema, node) {
        Shape::Scalar(_) | Shape::Untyped => View::Leaf,
        Shape::Deduced if objectish => View::Object(Fields::Deduced),
        Shape::Deduced => View::Leaf,
        Shape::Struct(s) if !s.atomic && objectish => View::Object(Fields::Struct(s)),
        Shape::Map {
            values,
            atomic: false,
        } if objectish => View::Object(Fields::Map(values)),
        Shape::List { items, kind } if listish => match kind {
            ListKind::Atomic => View::Leaf,
            ListKind::Set => View::List {
                items,
                keying: Keying::Set,
            },
            ListKind::Map(keys) => View::List {
                items,
                keying: Keying::Map {
                    keys,
                    item: match schema.shape(items) {
                        Shape::Struct(s) => Some(s),
                        _ => None,
                    },
                },
            },
        },
        _ => View::Leaf,
    }
}

/// The view two sides share: the side present, or a leaf where they disagree.
pub(crate) fn pair_view<'s>(
    schema: &'s dyn Schema,
    node: Option<Node>,
    l: Option<&Value>,
    r: Option<&Value>,
) -> View<'s> {
    let vl = view(schema, node, l);
    if l.is_some() && r.is_none() {
        return vl;
    }
    let vr = view(schema, node, r);
    match (l, vl, vr) {
        (None, _, v) => v,
        (_, View::Object(_), View::Object(_)) | (_, View::List { .. }, View::List { .. }) => vr,
        _ => View::Leaf,
    }
}

/// The element naming a list item, or why it cannot be named.
pub(crate) fn item_element(keying: &Keying<'_>, item: &Value) -> Result<PathElement, String> {
    match keying {
        Keying::Set => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".to_owned())
            }
            Value::Array(_) => {
                Err("not supported: associative list with lists as elements".to_owned())
            }
            Value::Null => Err(
                "associative list without keys has an element that's an explicit null".to_owned(),
            ),
            scalar => Ok(PathElement::Value(scalar.clone())),
        },
        Keying::Map { keys, item: fields } => {
            let map = match item {
                Value::Object(map) => map,
                Value::Null => {
                    return Err("associative list with keys may not have a null element".to_owned());
                }
                _ => {
                    return Err(
                        "associative list with keys may not have non-map elements".to_owned()
                    );
                }
            };
            let mut key = Vec::with_capacity(keys.len());
            for name in keys.iter() {
                let value = match map.get(name.as_ref()) {
                    Some(v) => v.clone(),
                    None => match fields
                        .and_then(|s| s.field(name))
                        .and_then(|f| f.default.clone())
                    {
                        Some(default) => default,
                        None => {
                            return Err(format!(
                                "associative list with keys has an element that omits key field {} (and doesn't have default value)",
                                crate::value::go_quote(name)
                            ));
                        }
                    },
                };
                key.push((name.clone(), value));
            }
            key.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(PathElement::Key(key.into_boxed_slice()))
        }
    }
}

/// The items of a list with their elements, first occurrence of each element only, sorted by element for
/// lookups. Items that cannot be named are left out.
pub(crate) struct ItemIndex<'v> {
    sorted: Vec<(PathElement, &'v Value, usize)>,
}

impl<'v> ItemIndex<'v> {
    pub(crate) fn new(keying: &Keying<'_>, items: &'v [Value]) -> ItemIndex<'v> {
        let mut sorted: Vec<(PathElement, &'v Value, usize)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| item_element(keying, item).ok().map(|pe| (pe, item, i)))
            .collect();
        // Stable: among duplicates the first occurrence stays first.
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted.dedup_by(|later, earlier| later.0 == earlier.0);
        ItemIndex { sorted }
    }

    pub(crate) fn get(&self, pe: &PathElement) -> Option<&'v Value> {
        self.sorted
            .binary_search_by(|(p, _, _)| p.cmp(pe))
            .ok()
            .map(|i| self.sorted[i].1)
    }

    pub(crate) fn contains(&self, pe: &PathElement) -> bool {
        self.get(pe).is_some()
    }

    /// (element, item) in list order.
    pub(crate) fn in_order(&self) -> Vec<(&PathElement, &'v Value)> {
        let mut items: Vec<&(PathElement, &'v Value, usize)> = self.sorted.iter().collect();
        items.sort_by_key(|(_, _, i)| *i);
        items.into_iter().map(|(pe, v, _)| (pe, *v)).collect()
    }
}
