//! Sets of field paths as upstream's `fieldpath.Set`: a tree where each node lists its member elements
//! (paths that end there) and its children (elements with members below). A node can be both, which
//! FieldsV1 spells with `"."`.

use std::cmp::Ordering;

use super::element::{PathElement, path_string};

/// A set of field paths. Members and children are kept sorted; children are never empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: Vec<PathElement>,
    children: Vec<(PathElement, FieldSet)>,
}

impl FieldSet {
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// A set holding each of `paths`.
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a [PathElement]>) -> FieldSet {
        let mut set = FieldSet::new();
        for path in paths {
            set.insert(path);
        }
        set
    }

    /// A set of field-name paths: `FieldSet::from_fields(&[&["metadata", "name"], &["status"]])`.
    pub fn from_fields(paths: &[&[&str]]) -> FieldSet {
        let mut set = FieldSet::new();
        for path in paths {
            let path: Vec<PathElement> = path.iter().map(|name| PathElement::field(name)).collect();
            set.insert(&path);
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// The number of paths in the set.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.iter().map(|(_, c)| c.len()).sum::<usize>()
    }

    /// Elements that are members here (paths ending at this node).
    pub fn members(&self) -> &[PathElement] {
        &self.members
    }

    /// Children with members below them.
    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter().map(|(pe, set)| (pe, set))
    }

    /// The subset below `pe`, if any.
    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children
            .binary_search_by(|(c, _)| c.cmp(pe))
            .ok()
            .map(|i| &self.children[i].1)
    }

    /// Whether `pe` is a member here.
    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.binary_search(pe).is_ok()
    }

    /// Whether the field `name` is a member here (without building an element).
    pub fn has_field(&self, name: &str) -> bool {
        self.members
            .binary_search_by(|pe| cmp_field(pe, name))
            .is_ok()
    }

    /// The subset below the field `name`, if any (without building an element).
    pub fn field_child(&self, name: &str) -> Option<&FieldSet> {
        self.children
            .binary_search_by(|(pe, _)| cmp_field(pe, name))
            .ok()
            .map(|i| &self.children[i].1)
    }

    /// Adds `path`. The empty path (the whole object) is never owned and is ignored, as upstream.
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for pe in parents {
            node = node.descend(pe);
        }
        node.insert_member(last);
    }

    pub(crate) fn insert_member(&mut self, pe: &PathElement) {
        if let Err(i) = self.members.binary_search(pe) {
            self.members.insert(i, pe.clone());
        }
    }

    fn descend(&mut self, pe: &PathElement) -> &mut FieldSet {
        let i = match self.children.binary_search_by(|(c, _)| c.cmp(pe)) {
            Ok(i) => i,
            Err(i) => {
                self.children.insert(i, (pe.clone(), FieldSet::new()));
                i
            }
        };
        &mut self.children[i].1
    }

    /// Adds `child` below `pe` (for builders that produce subsets bottom-up).
    pub(crate) fn insert_child(&mut self, pe: PathElement, child: FieldSet) {
        if child.is_empty() {
            return;
        }
        match self.children.binary_search_by(|(c, _)| c.cmp(&pe)) {
            Ok(i) => {
                let merged = self.children[i].1.union(&child);
                self.children[i].1 = merged;
            }
            Err(i) => self.children.insert(i, (pe, child)),
        }
    }

    /// Whether `path` is a member.
    pub fn has(&self, path: &[PathElement]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for pe in parents {
            match node.child(pe) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.has_member(last)
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: merge_sorted(&self.members, &other.members),
            children: zip_children(&self.children, &other.children, |side| match side {
                Side::Left(set) | Side::Right(set) => Some(set.clone()),
                Side::Both(a, b) => Some(a.union(b)),
            }),
        }
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self
                .members
                .iter()
                .filter(|pe| other.has_member(pe))
                .cloned()
                .collect(),
            children: zip_children(&self.children, &other.children, |side| match side {
                Side::Both(a, b) => Some(a.intersection(b)),
                _ => None,
            }),
        }
    }

    /// Paths in `self` that are not in `other`. A parent in `other` does not remove its children.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self
                .members
                .iter()
                .filter(|pe| !other.has_member(pe))
                .cloned()
                .collect(),
            children: zip_children(&self.children, &other.children, |side| match side {
                Side::Left(set) => Some(set.clone()),
                Side::Both(a, b) => Some(a.difference(b)),
                Side::Right(_) => None,
            }),
        }
    }

    /// Paths in `self` that are not in `other` and have no prefix in `other`: a member of `other` removes
    /// everything below it too.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self
                .members
                .iter()
                .filter(|pe| !other.has_member(pe))
                .cloned()
                .collect(),
            children: self
                .children
                .iter()
                .filter(|(pe, _)| !other.has_member(pe))
                .filter_map(|(pe, set)| {
                    let rest = match other.child(pe) {
                        Some(o) => set.recursive_difference(o),
                        None => set.clone(),
                    };
                    (!rest.is_empty()).then(|| (pe.clone(), rest))
                })
                .collect(),
        }
    }

    /// Calls `f` with each path, members of a node before its children's paths (upstream's order).
    pub fn for_each_path(&self, mut f: impl FnMut(&[PathElement])) {
        let mut prefix = Vec::new();
        self.walk_paths(&mut prefix, &mut f);
    }

    fn walk_paths(&self, prefix: &mut Vec<PathElement>, f: &mut impl FnMut(&[PathElement])) {
        for pe in &self.members {
            prefix.push(pe.clone());
            f(prefix);
            prefix.pop();
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.walk_paths(prefix, f);
            prefix.pop();
        }
    }

    /// Every path, in upstream's order.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.for_each_path(|p| out.push(p.to_vec()));
        out
    }

    /// Every path spelled as in messages (`.spec.replicas`), in upstream's order.
    pub fn path_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_path(|p| out.push(path_string(p)));
        out
    }

    pub(crate) fn children_mut(&mut self) -> &mut Vec<(PathElement, FieldSet)> {
        &mut self.children
    }

    pub(crate) fn members_mut(&mut self) -> &mut Vec<PathElement> {
        &mut self.members
    }

    /// Rebuilds the sort order and drops empty children (after bulk pushes).
    pub(crate) fn normalize(&mut self) {
        self.members.sort();
        self.members.dedup();
        self.children.retain(|(_, c)| !c.is_empty());
        self.children.sort_by(|a, b| a.0.cmp(&b.0));
        // Merge children that share an element.
        let mut merged: Vec<(PathElement, FieldSet)> = Vec::with_capacity(self.children.len());
        for (pe, set) in self.children.drain(..) {
            match merged.last_mut() {
                Some((last, existing)) if *last == pe => *existing = existing.union(&set),
                _ => merged.push((pe, set)),
            }
        }
        self.children = merged;
    }
}

/// `pe` against the element `Field(name)`, in element order.
fn cmp_field(pe: &PathElement, name: &str) -> Ordering {
    match pe {
        PathElement::Field(n) => n.as_ref().cmp(name),
        _ => Ordering::Greater,
    }
}

fn merge_sorted(a: &[PathElement], b: &[PathElement]) -> Vec<PathElement> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            Ordering::Less => {
                out.push(a[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                out.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

enum Side<'a> {
    Left(&'a FieldSet),
    Right(&'a FieldSet),
    Both(&'a FieldSet, &'a FieldSet),
}

/// Walks two sorted child lists together; `f` decides each element's subset (empty ones are dropped).
fn zip_children(
    a: &[(PathElement, FieldSet)],
    b: &[(PathElement, FieldSet)],
    mut f: impl FnMut(Side<'_>) -> Option<FieldSet>,
) -> Vec<(PathElement, FieldSet)> {
    let mut out = Vec::new();
    let mut push = |pe: &PathElement, set: Option<FieldSet>| {
        if let Some(set) = set.filter(|s| !s.is_empty()) {
            out.push((pe.clone(), set));
        }
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            Ordering::Less => {
                push(&a[i].0, f(Side::Left(&a[i].1)));
                i += 1;
            }
            Ordering::Greater => {
                push(&b[j].0, f(Side::Right(&b[j].1)));
                j += 1;
            }
            Ordering::Equal => {
                push(&a[i].0, f(Side::Both(&a[i].1, &b[j].1)));
                i += 1;
                j += 1;
            }
        }
    }
    for (pe, set) in &a[i..] {
        push(pe, f(Side::Left(set)));
    }
    for (pe, set) in &b[j..] {
        push(pe, f(Side::Right(set)));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(parts: &[&str]) -> Vec<PathElement> {
        parts.iter().map(|s| PathElement::field(s)).collect()
    }

    #[test]
    fn insert_has_and_order() {
        let mut set = FieldSet::new();
        set.insert(&p(&["spec", "replicas"]));
        set.insert(&p(&["metadata", "labels", "app"]));
        set.insert(&p(&["spec"]));
        set.insert(&[]);
        assert!(set.has(&p(&["spec"])));
        assert!(set.has(&p(&["spec", "replicas"])));
        assert!(!set.has(&p(&["metadata"])));
        assert_eq!(set.len(), 3);
        assert_eq!(
            set.path_strings(),
            [".spec", ".metadata.labels.app", ".spec.replicas"]
        );
    }

    #[test]
    fn set_algebra() {
        let a = FieldSet::from_fields(&[&["a", "b"], &["a", "c"], &["d"]]);
        let b = FieldSet::from_fields(&[&["a", "c"], &["a"], &["e"]]);
        assert_eq!(
            a.union(&b).path_strings(),
            [".a", ".d", ".e", ".a.b", ".a.c"]
        );
        assert_eq!(a.intersection(&b).path_strings(), [".a.c"]);
        // A parent in `b` does not remove `a`'s children; recursively it does.
        assert_eq!(a.difference(&b).path_strings(), [".d", ".a.b"]);
        assert_eq!(a.recursive_difference(&b).path_strings(), [".d"]);
        assert!(a.difference(&a).is_empty());
        let keyed = FieldSet::from_paths([&[
            PathElement::field("ports"),
            PathElement::key([("port", json!(80)), ("protocol", json!("TCP"))]),
        ][..]]);
        assert_eq!(keyed.path_strings(), [r#".ports[port=80,protocol="TCP"]"#]);
    }
}
