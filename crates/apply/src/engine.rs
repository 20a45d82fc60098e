//! The core of apply and update over a list of managed-fields entries: upstream's structured-merge-diff
//! `Updater` (merge, prune, compare, conflicts) with the apiserver's inner field-manager layers (strip
//! metadata, timestamps, merge into the manager's entry, cap of ten update managers).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::Context;
use crate::conflict::{Conflict, Conflicts};
use crate::fieldpath::FieldSet;
use crate::managed::{ManagedFieldsEntry, Operation, seconds, strip_set};
use crate::typed::{
    Comparison, compare, ensure_named_fields_are_members, field_set, merge_into, remove_items,
    strict_field_set, strip_config_nulls,
};
use crate::value::equal;

/// Update entries kept apart before the oldest are merged into `ancient-changes`.
const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";

/// Why an apply did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Fields owned by other managers would change (409).
    Conflicts(Conflicts),
    /// The request is malformed (400): wrong `apiVersion`, `metadata.managedFields` set.
    BadRequest(String),
    /// The configuration does not fit the kind's schema: upstream's `failed to create typed patch object
    /// (…): <these errors>` (a 500 upstream).
    Invalid(String),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Conflicts(c) => write!(f, "{c}"),
            ApplyError::BadRequest(m) | ApplyError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ApplyError {}

/// A non-apply write by `cx.manager`: what changed from `old` (`None`: a create) to `new` moves to the
/// manager's `Update` entry and out of every other entry.
pub(crate) fn update_entries(
    old: Option<&Value>,
    new: &Value,
    mut entries: Vec<ManagedFieldsEntry>,
    manager: &str,
    cx: &Context<'_>,
) -> Vec<ManagedFieldsEntry> {
    let cmp = compare(cx.schema, old, new).exclude(cx.reset);
    let changed = cmp.modified.union(&cmp.added);
    for entry in &mut entries {
        entry.fields = entry.fields.difference(&changed).difference(&cmp.removed);
    }
    entries.retain(|e| !e.fields.is_empty());
    let taken = changed.difference(&cmp.removed).difference(strip_set());
    if !taken.is_empty() {
        let existing = entries
            .iter_mut()
            .find(|e| e.is(manager, Operation::Update, cx.api_version, cx.subresource));
        match existing {
            Some(entry) => {
                entry.fields = taken.union(&entry.fields);
                entry.time = Some(cx.now.to_owned());
            }
            None => entries.push(ManagedFieldsEntry {
                manager: manager.to_owned(),
                operation: Operation::Update,
                api_version: cx.api_version.to_owned(),
                time: Some(cx.now.to_owned()),
                subresource: cx.subresource.to_owned(),
                fields: taken,
            }),
        }
    }
    cap_update_managers(&mut entries);
    entries
}

/// Applies `config` to `live` (without its managedFields) for `cx.manager`.
pub(crate) fn apply_entries(
    live: &Value,
    config: &Value,
    mut entries: Vec<ManagedFieldsEntry>,
    force: bool,
    cx: &Context<'_>,
) -> Result<(Value, Vec<ManagedFieldsEntry>), ApplyError> {
    let schema = cx.schema;
    let config_set = strict_field_set(schema, config).map_err(|errors| {
        ApplyError::Invalid(match errors.as_slice() {
            [one] => one.clone(),
            many => format!("errors:\n  {}", many.join("\n  ")),
        })
    })?;
    let mut merged = live.clone();
    merge_into(schema, Some(schema.root()), &mut merged, config);

    let applier = |e: &ManagedFieldsEntry| e.is(cx.manager, Operation::Apply, "", cx.subresource);
    let last = entries
        .iter()
        .find(|e| applier(e))
        .map(|e| e.fields.clone());
    let new_set = match cx.reset {
        Some(reset) => config_set.recursive_difference(reset),
        None => config_set,
    };
    let previous_time = entries
        .iter()
        .find(|e| applier(e))
        .and_then(|e| e.time.clone());
    entries.retain(|e| !applier(e));
    entries.push(ManagedFieldsEntry {
        manager: cx.manager.to_owned(),
        operation: Operation::Apply,
        api_version: cx.api_version.to_owned(),
        time: previous_time.clone(),
        subresource: cx.subresource.to_owned(),
        fields: new_set,
    });
    let me = entries.len() - 1;

    // Nothing to prune when the applier still applies every path it applied before.
    if let Some(last) = last.filter(|l| !l.difference(&entries[me].fields).is_empty()) {
        prune(cx, &mut merged, &entries, &last);
    }

    let cmp = compare(schema, Some(live), &merged).exclude(cx.reset);
    take_from_others(&mut entries, me, &cmp, force)?;

    strip_config_nulls(schema, Some(schema.root()), &mut merged, config);
    let changed = !equal(live, &merged);
    let me = entries.len() - 1;
    let entry = &mut entries[me];
    entry.time = if changed || previous_time.is_none() {
        Some(cx.now.to_owned())
    } else {
        previous_time
    };
    entry.fields = entry.fields.difference(strip_set());
    if entry.fields.is_empty() {
        entries.pop();
    }
    Ok((merged, entries))
}

/// Removes what the applier owned last time, no longer applies, and nobody else owns (upstream's
/// `prune` with `addBackOwnedItems` and `addBackDanglingItems`, which amount to removing
/// `named(merged) ∩ named(last) − named(everyone's sets)`).
fn prune(cx: &Context<'_>, merged: &mut Value, entries: &[ManagedFieldsEntry], last: &FieldSet) {
    let schema = cx.schema;
    let root = Some(schema.root());
    let named = |set: &FieldSet| ensure_named_fields_are_members(schema, root, set);
    let mut owned = strip_set().clone();
    for entry in entries {
        owned = owned.union(&entry.fields);
    }
    let present = named(&field_set(schema, merged));
    let remove = present
        .intersection(&named(last))
        .difference(&named(&owned));
    remove_items(schema, root, merged, &remove);
}

/// Upstream's `Updater.update` for the applier at `me`: other managers lose the fields the write changes;
/// without `force`, fields they own that change are conflicts.
fn take_from_others(
    entries: &mut Vec<ManagedFieldsEntry>,
    me: usize,
    cmp: &Comparison,
    force: bool,
) -> Result<(), ApplyError> {
    let changed = cmp.modified.union(&cmp.added);
    if !force {
        let mut conflicts = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            if i == me {
                continue;
            }
            entry.fields.intersection(&changed).for_each_path(|path| {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    operation: entry.operation,
                    api_version: entry.api_version.clone(),
                    subresource: entry.subresource.clone(),
                    path: path.to_vec(),
                });
            });
        }
        if !conflicts.is_empty() {
            return Err(ApplyError::Conflicts(Conflicts(conflicts)));
        }
    }
    for (i, entry) in entries.iter_mut().enumerate() {
        if i != me {
            entry.fields = entry.fields.difference(&changed).difference(&cmp.removed);
        }
    }
    // Keep the applier last while dropping emptied entries.
    let mine = entries.remove(me);
    entries.retain(|e| !e.fields.is_empty());
    entries.push(mine);
    Ok(())
}

/// Upstream's `capManagersManager`: beyond ten update entries, the oldest are merged into one
/// `ancient-changes` entry per API version.
fn cap_update_managers(entries: &mut Vec<ManagedFieldsEntry>) {
    let mut updaters: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].operation == Operation::Update)
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|&a, &b| {
        let (p, q) = (&entries[a], &entries[b]);
        seconds(p.time.as_deref())
            .cmp(&seconds(q.time.as_deref()))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    let mut first_by_version: HashMap<String, usize> = HashMap::new();
    let mut merged_away = vec![false; entries.len()];
    let mut count = updaters.len();
    for &i in &updaters {
        if count <= MAX_UPDATE_MANAGERS {
            break;
        }
        let version = entries[i].api_version.clone();
        let Some(&first) = first_by_version.get(&version) else {
            first_by_version.insert(version, i);
            continue;
        };
        let existing = (0..entries.len()).find(|&b| {
            !merged_away[b] && entries[b].is(ANCIENT_CHANGES, Operation::Update, &version, "")
        });
        let bucket = match existing {
            Some(b) => b,
            None => {
                // The first entry of this version becomes the bucket.
                entries[first].manager = ANCIENT_CHANGES.to_owned();
                entries[first].subresource = String::new();
                first
            }
        };
        if bucket == i {
            continue;
        }
        let fields = std::mem::take(&mut entries[i].fields);
        let time = entries[i].time.clone();
        entries[bucket].fields = fields.union(&entries[bucket].fields);
        // The merged update is the more recent one.
        entries[bucket].time = time;
        merged_away[i] = true;
        count -= 1;
    }
    let mut i = 0;
    entries.retain(|_| {
        let keep = !merged_away[i];
        i += 1;
        keep
    });
}

/// An empty object, for creates.
pub(crate) fn empty_object() -> Value {
    Value::Object(Map::new())
}
