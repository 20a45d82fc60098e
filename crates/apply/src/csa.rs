//! Moving from kubectl's client-side apply to server-side apply, as the apiserver does it:
//!
//! - an object without managed fields (created before tracking, or reset) is first given to a
//!   `before-first-apply` updater owning everything it holds, so the first apply conflicts like later ones;
//! - for the manager `kubectl` (what `kubectl apply --server-side` sends), conflicts on fields whose live
//!   values still equal the `kubectl.kubernetes.io/last-applied-configuration` annotation are forced: the
//!   user applies what client-side apply applied before;
//! - after such an apply the annotation, where the object has one, is rewritten to the new configuration,
//!   so a later client-side apply sees what was applied.

use serde_json::Value;

use crate::Context;
use crate::conflict::Conflicts;
use crate::fieldpath::FieldSet;
use crate::managed::LAST_APPLIED_ANNOTATION;
use crate::typed::{compare, strict_field_set};
use crate::value::write_go_json;

/// The manager the migration applies to.
pub(crate) const KUBECTL: &str = "kubectl";
/// The updater that owns what an object held before its first apply.
pub(crate) const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// Upstream's limit on all annotations together (`TotalAnnotationSizeLimitB`).
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

fn last_applied(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED_ANNOTATION)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// The conflicts of `conflicts` that the last-applied annotation of `live` does not excuse, or `None`
/// when it excuses none (no annotation, another API version, or an annotation that does not parse).
pub(crate) fn unexcused(
    live: &Value,
    conflicts: &Conflicts,
    cx: &Context<'_>,
) -> Option<Conflicts> {
    let allowed = allowed_by_last_applied(live, cx)?;
    Some(Conflicts(
        conflicts
            .0
            .iter()
            .filter(|c| !allowed.has(&c.path))
            .cloned()
            .collect(),
    ))
}

/// The fields of the last-applied configuration whose values the live object still holds.
fn allowed_by_last_applied(live: &Value, cx: &Context<'_>) -> Option<FieldSet> {
    let last: Value = serde_json::from_str(last_applied(live)?).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(cx.api_version) {
        return None;
    }
    let set = strict_field_set(cx.schema, &last).ok()?;
    let cmp = compare(cx.schema, Some(&last), live);
    Some(
        set.difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

/// Rewrites the last-applied annotation of `object`, if it has one, to `config` (as kubectl would have
/// written it: without the annotation itself, keys sorted, a trailing newline). An annotation that would
/// not fit the annotations' size limit is dropped instead.
pub(crate) fn update_last_applied(object: &mut Value, config: &Value) {
    if last_applied(object).is_none() {
        return;
    }
    let mut config = config.clone();
    if let Some(Value::Object(annotations)) = config.pointer_mut("/metadata/annotations") {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    let mut text = String::new();
    write_go_json(&mut text, &config);
    text.push('\n');
    let Some(Value::Object(annotations)) = object.pointer_mut("/metadata/annotations") else {
        return;
    };
    annotations.insert(LAST_APPLIED_ANNOTATION.to_owned(), Value::String(text));
    let size: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > ANNOTATIONS_LIMIT {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}
