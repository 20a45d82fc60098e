//! nft transactions: one that makes the table exactly a [`Ruleset`] ([`full`]), and one that takes the table
//! from one ruleset to the next touching only what changed ([`diff`]). Either is one `nft -f -` run, which
//! the kernel applies atomically: packets see the old table or the new one, never a mix.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::model::{Chain, Part, Ruleset, SetDef};

/// How many elements one `add element` / `delete element` statement carries.
const ELEMENTS_PER_STATEMENT: usize = 500;

/// What to do with chains nothing uses any more.
#[derive(Clone, Copy)]
pub enum ChainDeletion<'a> {
    /// Delete them in the same transaction.
    Now,
    /// Leave them (nothing jumps to them any more) and delete them in a later transaction, once the
    /// predicate says so. Kernels before 6.2 notice only a little after a transaction that a deleted map
    /// element no longer points at a chain, so deleting both at once fails there (kube-proxy waits a
    /// second, as does [`crate::Proxier`]); and a chain wanted again meanwhile is already in place.
    Deferred(&'a dyn Fn(&str) -> bool),
}

impl std::fmt::Debug for ChainDeletion<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainDeletion::Now => f.write_str("Now"),
            ChainDeletion::Deferred(_) => f.write_str("Deferred"),
        }
    }
}

/// A transaction and what it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    /// The `nft -f` input. Empty when nothing changes.
    pub text: String,
    /// It replaces the table as a whole.
    pub full: bool,
    /// Chains no longer used but left in the table to delete later, with what they hold now (they go in
    /// [`Ruleset::leftovers`]).
    pub leftovers: BTreeMap<String, Chain>,
    pub chains_added: usize,
    pub chains_changed: usize,
    pub chains_deleted: usize,
    pub elements_added: usize,
    pub elements_deleted: usize,
}

impl Transaction {
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// Why only a full transaction can get from one ruleset to the other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NeedsFull {
    #[error("the table changed from {0:?} to {1:?}")]
    Table(String, String),
    #[error("base chain {0} changed its hook")]
    Hook(String),
    #[error("set {0} changed its definition")]
    Set(String),
}

/// The transaction that makes the table exactly `new`, whatever it held: it creates the table, deletes it
/// and fills it again, in one go. Connections already NATed keep going (conntrack holds their bindings).
pub fn full(new: &Ruleset) -> Transaction {
    let mut tx = Writer::new(&new.table);
    tx.line(format_args!("add table ip {}", new.table));
    tx.line(format_args!("delete table ip {}", new.table));
    let mut transaction = changes(&Ruleset::empty(&new.table), new, ChainDeletion::Now, tx)
        .unwrap_or_else(|_| unreachable!("an empty ruleset changes into any other"));
    transaction.full = true;
    transaction
}

/// The transaction from `old` (what the table holds) to `new`: new chains, sets and elements added,
/// changed chains flushed and filled again, elements no longer wanted deleted, chains and sets no longer
/// used removed. Parts that are the same `Arc`, or equal, are not looked at further.
pub fn diff(
    old: &Ruleset,
    new: &Ruleset,
    deletion: ChainDeletion,
) -> Result<Transaction, NeedsFull> {
    if old.table != new.table {
        return Err(NeedsFull::Table(old.table.clone(), new.table.clone()));
    }
    let transaction = changes(old, new, deletion, Writer::new(&new.table))?;
    Ok(transaction)
}

/// The parts that differ between `old` and `new`, as (old, new).
fn changed_parts<'a>(
    old: &'a Ruleset,
    new: &'a Ruleset,
) -> Vec<(Option<&'a Part>, Option<&'a Part>)> {
    let same = |a: &Arc<Part>, b: &Arc<Part>| Arc::ptr_eq(a, b) || a == b;
    let mut changed = Vec::new();
    if !same(&old.base, &new.base) {
        changed.push((Some(&*old.base), Some(&*new.base)));
    }
    let mut olds = old.services.iter().peekable();
    let mut news = new.services.iter().peekable();
    loop {
        match (olds.peek(), news.peek()) {
            (None, None) => break,
            (Some((ko, po)), Some((kn, pn))) if ko == kn => {
                if !same(po, pn) {
                    changed.push((Some(&***po), Some(&***pn)));
                }
                olds.next();
                news.next();
            }
            (Some((ko, po)), Some((kn, _))) if ko < kn => {
                changed.push((Some(&***po), None));
                olds.next();
            }
            (Some((_, po)), None) => {
                changed.push((Some(&***po), None));
                olds.next();
            }
            (_, Some((_, pn))) => {
                changed.push((None, Some(&***pn)));
                news.next();
            }
        }
    }
    changed
}

/// What the changed parts hold, merged.
#[derive(Default)]
struct Side<'a> {
    chains: BTreeMap<&'a str, &'a Chain>,
    sets: BTreeMap<&'a str, &'a SetDef>,
    /// Per set, its elements from every part (parts never share a key).
    elements: BTreeMap<&'a str, Vec<(&'a str, &'a str)>>,
}

impl<'a> Side<'a> {
    fn add(&mut self, part: &'a Part) {
        self.chains
            .extend(part.chains.iter().map(|(k, v)| (k.as_str(), v)));
        self.sets
            .extend(part.sets.iter().map(|(k, v)| (k.as_str(), v)));
        for (set, elements) in &part.elements {
            self.elements
                .entry(set)
                .or_default()
                .extend(elements.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
    }
}

/// Whether `rule` names the chain or set `name` (`goto name`, `@name`, `… : goto name, …`).
fn mentions(rule: &str, name: &str) -> bool {
    rule.split_whitespace().any(|word| {
        let word = word.trim_end_matches([',', ';']);
        word == name || word.strip_prefix('@') == Some(name)
    })
}

fn changes(
    old: &Ruleset,
    new: &Ruleset,
    deletion: ChainDeletion,
    mut tx: Writer,
) -> Result<Transaction, NeedsFull> {
    let (mut before, mut after) = (Side::default(), Side::default());
    for (o, n) in changed_parts(old, new) {
        if let Some(o) = o {
            before.add(o);
        }
        if let Some(n) = n {
            after.add(n);
        }
    }
    let mut result = Transaction::default();

    // Sets and maps first: what goes decides which chains must be emptied.
    let mut flush: BTreeSet<String> = BTreeSet::new();
    let mut refill: Vec<(&str, &Chain)> = Vec::new();
    let mut create_sets: Vec<(&str, &SetDef)> = Vec::new();
    let mut recreate_sets: Vec<(&str, &SetDef, &SetDef)> = Vec::new();
    let mut delete_sets: Vec<(&str, &SetDef)> = Vec::new();
    for (name, set) in &after.sets {
        match before.sets.get(name) {
            None => create_sets.push((name, set)),
            Some(was) if *was != *set => {
                let has_elements =
                    |side: &Side| side.elements.get(name).is_some_and(|e| !e.is_empty());
                if !(was.dynamic && set.dynamic) || has_elements(&before) || has_elements(&after) {
                    return Err(NeedsFull::Set((*name).to_owned()));
                }
                // A dynamic set whose timeout changed: empty what uses it, replace it, fill again.
                for (chain_name, chain) in &before.chains {
                    if chain.rules.iter().any(|r| mentions(r, name)) {
                        flush.insert((*chain_name).to_owned());
                        if let Some(now) = after.chains.get(chain_name) {
                            refill.push((chain_name, now));
                        }
                    }
                }
                recreate_sets.push((name, was, set));
            }
            Some(_) => {}
        }
    }
    for (name, set) in &before.sets {
        if !after.sets.contains_key(name) {
            delete_sets.push((name, set));
        }
    }
    let going: Vec<&str> = delete_sets
        .iter()
        .map(|(n, _)| *n)
        .chain(recreate_sets.iter().map(|(n, _, _)| *n))
        .collect();
    let uses_going = |chain: &Chain| {
        chain
            .rules
            .iter()
            .any(|r| going.iter().any(|set| mentions(r, set)))
    };

    // Chains.
    let mut create: Vec<(&str, &Chain)> = Vec::new();
    let mut delete_chains: BTreeSet<String> = BTreeSet::new();
    for (name, chain) in &after.chains {
        if refill.iter().any(|(n, _)| n == name) {
            continue;
        }
        let was = before
            .chains
            .get(name)
            .copied()
            .or_else(|| old.leftovers.get(*name));
        match was {
            None => create.push((name, chain)),
            Some(was) if was.hook != chain.hook => return Err(NeedsFull::Hook((*name).to_owned())),
            Some(was) if was.rules != chain.rules => {
                if !was.rules.is_empty() {
                    flush.insert((*name).to_owned());
                }
                refill.push((name, chain));
            }
            Some(_) => {}
        }
    }
    // Chains no longer wanted. Nothing reaches them any more, so a deferred one may keep its rules (and
    // costs nothing if it is wanted again before it goes), unless they use a set that goes now.
    let mut leftovers: BTreeMap<String, Chain> = BTreeMap::new();
    let mut unwanted: Vec<(&str, &Chain, bool)> = before
        .chains
        .iter()
        .filter(|(name, _)| !after.chains.contains_key(*name))
        .map(|(name, chain)| (*name, *chain, true))
        .collect();
    unwanted.extend(
        old.leftovers
            .iter()
            .filter(|(name, _)| !after.chains.contains_key(name.as_str()))
            .map(|(name, chain)| (name.as_str(), chain, false)),
    );
    for (name, chain, new_leftover) in unwanted {
        let keep = match deletion {
            ChainDeletion::Now => false,
            ChainDeletion::Deferred(deletable) => new_leftover || !deletable(name),
        };
        if !keep {
            if !chain.rules.is_empty() {
                flush.insert(name.to_owned());
            }
            delete_chains.insert(name.to_owned());
        } else if uses_going(chain) {
            flush.insert(name.to_owned());
            leftovers.insert(
                name.to_owned(),
                Chain {
                    hook: chain.hook,
                    rules: Vec::new(),
                },
            );
        } else {
            leftovers.insert(name.to_owned(), chain.clone());
        }
    }
    // A kept leftover that jumps to a chain deleted now is emptied too.
    for (name, chain) in &mut leftovers {
        if chain
            .rules
            .iter()
            .any(|r| delete_chains.iter().any(|gone| mentions(r, gone)))
        {
            flush.insert(name.clone());
            chain.rules.clear();
        }
    }

    // Elements.
    let mut delete_elements: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut add_elements: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    let set_names: BTreeSet<&str> = before
        .elements
        .keys()
        .chain(after.elements.keys())
        .copied()
        .collect();
    for set in set_names {
        if before.sets.contains_key(set) && !after.sets.contains_key(set) {
            continue; // the set goes, and its elements with it
        }
        let was = before.elements.get(set).map_or(&[][..], Vec::as_slice);
        let now = after.elements.get(set).map_or(&[][..], Vec::as_slice);
        let created = after.sets.contains_key(set) && !before.sets.contains_key(set);
        let (gone, added): (Vec<&str>, Vec<(&str, &str)>) = if was.is_empty() || created {
            (Vec::new(), now.to_vec())
        } else if now.is_empty() {
            (was.iter().map(|(k, _)| *k).collect(), Vec::new())
        } else {
            let was_map: HashMap<&str, &str> = was.iter().copied().collect();
            let now_map: HashMap<&str, &str> = now.iter().copied().collect();
            (
                was.iter()
                    .filter(|(k, v)| now_map.get(k) != Some(v))
                    .map(|(k, _)| *k)
                    .collect(),
                now.iter()
                    .filter(|(k, v)| was_map.get(k) != Some(v))
                    .copied()
                    .collect(),
            )
        };
        if !gone.is_empty() {
            delete_elements.insert(set, gone);
        }
        if !added.is_empty() {
            add_elements.insert(set, added);
        }
    }

    let nothing = create.is_empty()
        && refill.is_empty()
        && flush.is_empty()
        && delete_chains.is_empty()
        && create_sets.is_empty()
        && recreate_sets.is_empty()
        && delete_sets.is_empty()
        && delete_elements.is_empty()
        && add_elements.is_empty()
        && leftovers == old.leftovers;
    result.leftovers = leftovers;
    if nothing && tx.out.is_empty() {
        return Ok(result);
    }

    let table = new.table.as_str();
    // 1. Declarations, so that rules and elements may name anything new.
    tx.line(format_args!("add table ip {}", table));
    for (name, set) in &create_sets {
        tx.set_declaration(name, set);
    }
    for (name, chain) in &create {
        tx.chain_declaration(name, chain);
    }
    // 2. Empty what changes or goes.
    for name in &flush {
        tx.line(format_args!("flush chain ip {} {name}", table));
    }
    // 3. Sets whose definition changed (nothing uses them now).
    for (name, was, set) in &recreate_sets {
        tx.line(format_args!("delete {} ip {} {name}", was.kind(), table));
        tx.set_declaration(name, set);
    }
    // 4. Rules.
    for (name, chain) in create.iter().chain(refill.iter()) {
        for rule in &chain.rules {
            tx.line(format_args!("add rule ip {} {name} {rule}", table));
        }
    }
    // 5. Elements: deletions first, so that a key whose value changed is added back.
    for (set, keys) in &delete_elements {
        for chunk in keys.chunks(ELEMENTS_PER_STATEMENT) {
            tx.line(format_args!(
                "delete element ip {} {set} {{ {} }}",
                table,
                chunk.join(", ")
            ));
        }
        result.elements_deleted += keys.len();
    }
    for (set, elements) in &add_elements {
        for chunk in elements.chunks(ELEMENTS_PER_STATEMENT) {
            let mut text = String::with_capacity(chunk.len() * 48);
            for (i, (key, value)) in chunk.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(key);
                if !value.is_empty() {
                    text.push_str(" : ");
                    text.push_str(value);
                }
            }
            tx.line(format_args!("add element ip {} {set} {{ {text} }}", table));
        }
        result.elements_added += elements.len();
    }
    // 6. What nothing refers to any more.
    for name in &delete_chains {
        tx.line(format_args!("delete chain ip {} {name}", table));
    }
    for (name, set) in &delete_sets {
        tx.line(format_args!("delete {} ip {} {name}", set.kind(), table));
    }

    result.text = tx.out;
    result.chains_added = create.len();
    result.chains_changed = refill.len();
    result.chains_deleted = delete_chains.len();
    Ok(result)
}

struct Writer {
    table: String,
    out: String,
}

impl Writer {
    fn new(table: &str) -> Writer {
        Writer {
            table: table.to_owned(),
            out: String::new(),
        }
    }

    fn line(&mut self, args: std::fmt::Arguments) {
        let _ = self.out.write_fmt(args);
        self.out.push('\n');
    }

    fn chain_declaration(&mut self, name: &str, chain: &Chain) {
        let table = &self.table;
        let _ = match &chain.hook {
            Some(hook) => writeln!(self.out, "add chain ip {table} {name} {{ {hook} }}"),
            None => writeln!(self.out, "add chain ip {table} {name}"),
        };
    }

    fn set_declaration(&mut self, name: &str, set: &SetDef) {
        let _ = writeln!(
            self.out,
            "add {} ip {} {name} {{ {} }}",
            set.kind(),
            self.table,
            set.spec
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::desired;
    use crate::testutil::*;

    fn lines(tx: &Transaction) -> Vec<&str> {
        tx.text.lines().collect()
    }

    fn web(endpoints: &[Ep]) -> Ruleset {
        let svc = service("default", "web", "10.151.0.10", &[("http", "TCP", 80, 0)]);
        let slice = slice(
            "default",
            "web",
            "web-1",
            &[("http", "TCP", 8080)],
            endpoints,
        );
        desired([&svc], [&slice], &config())
    }

    #[test]
    fn nothing_changed_is_an_empty_transaction() {
        let a = web(&[ready("10.150.1.2", "node-a")]);
        let b = web(&[ready("10.150.1.2", "node-a")]);
        let tx = diff(&a, &b, ChainDeletion::Now).unwrap();
        assert!(tx.is_empty(), "{}", tx.text);
    }

    #[test]
    fn an_endpoint_more_changes_elements_and_adds_a_shared_chain() {
        let a = web(&[ready("10.150.2.2", "node-b")]);
        let b = web(&[ready("10.150.2.2", "node-b"), ready("10.150.2.3", "node-b")]);
        let tx = diff(&a, &b, ChainDeletion::Now).unwrap();
        assert_eq!(
            lines(&tx),
            [
                "add table ip gtpx",
                "add chain ip gtpx pick-tcp-2",
                "flush chain ip gtpx pick-tcp-1",
                "add rule ip gtpx pick-tcp-2 meta l4proto tcp dnat ip to ip daddr . tcp dport . numgen random mod 2 map @endpoints-tcp",
                "delete element ip gtpx service-ips { 10.151.0.10 . tcp . 80 }",
                "add element ip gtpx endpoints-tcp { 10.151.0.10 . 80 . 1 : 10.150.2.3 . 8080 }",
                "add element ip gtpx service-ips { 10.151.0.10 . tcp . 80 : goto pick-tcp-2 }",
                "delete chain ip gtpx pick-tcp-1",
            ]
        );
        assert_eq!((tx.chains_added, tx.chains_deleted), (1, 1));
        assert_eq!((tx.elements_added, tx.elements_deleted), (2, 1));
    }

    #[test]
    fn a_replaced_endpoint_changes_one_element() {
        let a = web(&[ready("10.150.2.2", "node-b"), ready("10.150.2.4", "node-b")]);
        let b = web(&[ready("10.150.2.3", "node-b"), ready("10.150.2.4", "node-b")]);
        let tx = diff(&a, &b, ChainDeletion::Now).unwrap();
        assert_eq!(
            lines(&tx),
            [
                "add table ip gtpx",
                "delete element ip gtpx endpoints-tcp { 10.151.0.10 . 80 . 0 }",
                "add element ip gtpx endpoints-tcp { 10.151.0.10 . 80 . 0 : 10.150.2.3 . 8080 }",
            ]
        );
    }

    #[test]
    fn unused_chains_stay_a_while_and_are_deleted_later() {
        let a = web(&[ready("10.150.2.2", "node-b")]);
        let b = web(&[]);
        let never = |_: &str| false;
        let tx = diff(&a, &b, ChainDeletion::Deferred(&never)).unwrap();
        assert_eq!(
            lines(&tx),
            [
                "add table ip gtpx",
                "delete element ip gtpx endpoints-tcp { 10.151.0.10 . 80 . 0 }",
                "delete element ip gtpx service-ips { 10.151.0.10 . tcp . 80 }",
                "add element ip gtpx no-endpoint-services { 10.151.0.10 . tcp . 80 : goto reject-chain }",
            ]
        );
        assert_eq!(
            tx.leftovers.keys().collect::<Vec<_>>(),
            ["pick-tcp-1"],
            "left in place, rules and all"
        );
        assert_eq!(tx.leftovers["pick-tcp-1"], *a.chain("pick-tcp-1").unwrap());
        let mut applied = b.clone();
        applied.leftovers = tx.leftovers.clone();
        // Not yet deletable: nothing to do; deletable: emptied and deleted.
        let tx = diff(&applied, &b, ChainDeletion::Deferred(&never)).unwrap();
        assert!(tx.is_empty());
        assert_eq!(tx.leftovers.len(), 1);
        let now = |_: &str| true;
        let tx = diff(&applied, &b, ChainDeletion::Deferred(&now)).unwrap();
        assert_eq!(
            lines(&tx),
            [
                "add table ip gtpx",
                "flush chain ip gtpx pick-tcp-1",
                "delete chain ip gtpx pick-tcp-1"
            ]
        );
        assert!(tx.leftovers.is_empty());
        // A leftover wanted again as it is costs nothing but the elements.
        let c = web(&[ready("10.150.2.2", "node-b")]);
        let tx = diff(&applied, &c, ChainDeletion::Deferred(&never)).unwrap();
        assert!(!tx.text.contains("pick-tcp-1\n"), "{}", tx.text);
        assert!(tx.text.contains("goto pick-tcp-1 }"));
        assert!(tx.leftovers.is_empty());
    }

    #[test]
    fn leftovers_that_use_what_goes_are_emptied() {
        let svc = with_affinity(
            service("default", "web", "10.151.0.10", &[("http", "TCP", 80, 0)]),
            None,
        );
        let s1 = slice(
            "default",
            "web",
            "web-1",
            &[("http", "TCP", 8080)],
            &[ready("10.150.2.2", "node-b"), ready("10.150.2.3", "node-b")],
        );
        let s2 = slice(
            "default",
            "web",
            "web-1",
            &[("http", "TCP", 8080)],
            &[ready("10.150.2.3", "node-b")],
        );
        let a = desired([&svc], [&s1], &config());
        let b = desired([&svc], [&s2], &config());
        let never = |_: &str| false;
        let tx = diff(&a, &b, ChainDeletion::Deferred(&never)).unwrap();
        let gone = "default/web/tcp/http__10.150.2.2/8080";
        // The endpoint chain updates the affinity set that goes: it is emptied before the set is deleted.
        let text = lines(&tx);
        let flush = text
            .iter()
            .position(|l| *l == format!("flush chain ip gtpx endpoint-{gone}"))
            .unwrap();
        let delete = text
            .iter()
            .position(|l| *l == format!("delete set ip gtpx affinity-{gone}"))
            .unwrap();
        assert!(flush < delete);
        assert!(tx.leftovers[&format!("endpoint-{gone}")].rules.is_empty());
        // A leftover that jumps to a chain deleted now is emptied as well.
        let mut applied = b.clone();
        applied.leftovers = BTreeMap::from([
            ("x".to_owned(), Chain::regular(vec!["goto y".into()])),
            ("y".to_owned(), Chain::regular(vec!["counter".into()])),
        ]);
        let only_y = |name: &str| name == "y";
        let tx = diff(&applied, &b, ChainDeletion::Deferred(&only_y)).unwrap();
        assert_eq!(
            lines(&tx),
            [
                "add table ip gtpx",
                "flush chain ip gtpx x",
                "flush chain ip gtpx y",
                "delete chain ip gtpx y"
            ]
        );
        assert_eq!(tx.leftovers["x"].rules.len(), 0);
    }

    #[test]
    fn a_removed_service_takes_its_elements_along() {
        let svc = service("default", "web", "10.151.0.10", &[("http", "TCP", 80, 0)]);
        let other = service("default", "db", "10.151.0.11", &[("", "TCP", 5432, 0)]);
        let s1 = slice(
            "default",
            "web",
            "web-1",
            &[("http", "TCP", 8080)],
            &[ready("10.150.2.2", "node-b")],
        );
        let s2 = slice(
            "default",
            "db",
            "db-1",
            &[("", "TCP", 5432)],
            &[ready("10.150.2.5", "node-b")],
        );
        let a = desired([&svc, &other], [&s1, &s2], &config());
        let b = desired([&other], [&s2], &config());
        let tx = diff(&a, &b, ChainDeletion::Now).unwrap();
        assert_eq!(
            lines(&tx),
            [
                "add table ip gtpx",
                "delete element ip gtpx cluster-ips { 10.151.0.10 }",
                "delete element ip gtpx endpoints-tcp { 10.151.0.10 . 80 . 0 }",
                "delete element ip gtpx service-ips { 10.151.0.10 . tcp . 80 }",
            ]
        );
    }

    #[test]
    fn affinity_endpoint_chains_come_and_go() {
        let svc = with_affinity(
            service("default", "web", "10.151.0.10", &[("http", "TCP", 80, 0)]),
            None,
        );
        let s1 = slice(
            "default",
            "web",
            "web-1",
            &[("http", "TCP", 8080)],
            &[ready("10.150.2.2", "node-b"), ready("10.150.2.3", "node-b")],
        );
        let s2 = slice(
            "default",
            "web",
            "web-1",
            &[("http", "TCP", 8080)],
            &[ready("10.150.2.3", "node-b")],
        );
        let a = desired([&svc], [&s1], &config());
        let b = desired([&svc], [&s2], &config());
        let tx = diff(&a, &b, ChainDeletion::Now).unwrap();
        let gone = "default/web/tcp/http__10.150.2.2/8080";
        let kept = "default/web/tcp/http__10.150.2.3/8080";
        assert_eq!(
            lines(&tx),
            [
                "add table ip gtpx".to_owned(),
                format!("flush chain ip gtpx endpoint-{gone}"),
                "flush chain ip gtpx service-default/web/tcp/http".to_owned(),
                format!(
                    "add rule ip gtpx service-default/web/tcp/http ip saddr @affinity-{kept} goto endpoint-{kept}"
                ),
                format!("add rule ip gtpx service-default/web/tcp/http goto endpoint-{kept}"),
                format!("delete chain ip gtpx endpoint-{gone}"),
                format!("delete set ip gtpx affinity-{gone}"),
            ]
        );
        let back = diff(&b, &a, ChainDeletion::Now).unwrap();
        assert!(back.text.contains(&format!("add set ip gtpx affinity-{gone} {{ type ipv4_addr; flags dynamic,timeout; timeout 10800s; }}\n")));
        assert!(
            back.text
                .contains(&format!("add chain ip gtpx endpoint-{gone}\n"))
        );
        assert!(back.text.contains("numgen random mod 2 vmap"));
    }

    #[test]
    fn a_new_affinity_timeout_replaces_the_sets() {
        let svc = |t| {
            with_affinity(
                service("default", "web", "10.151.0.10", &[("http", "TCP", 80, 0)]),
                Some(t),
            )
        };
        let s = slice(
            "default",
            "web",
            "web-1",
            &[("http", "TCP", 8080)],
            &[ready("10.150.2.2", "node-b")],
        );
        let a = desired([&svc(60)], [&s], &config());
        let b = desired([&svc(120)], [&s], &config());
        let tx = diff(&a, &b, ChainDeletion::Now).unwrap();
        let ep = "default/web/tcp/http__10.150.2.2/8080";
        let text = lines(&tx);
        let flush_endpoint = text
            .iter()
            .position(|l| *l == format!("flush chain ip gtpx endpoint-{ep}"))
            .unwrap();
        let flush_service = text
            .iter()
            .position(|l| *l == "flush chain ip gtpx service-default/web/tcp/http")
            .unwrap();
        let delete = text
            .iter()
            .position(|l| *l == format!("delete set ip gtpx affinity-{ep}"))
            .unwrap();
        let add = text
            .iter()
            .position(|l| {
                l.starts_with(&format!("add set ip gtpx affinity-{ep} "))
                    && l.contains("timeout 120s")
            })
            .unwrap();
        let refill = text
            .iter()
            .position(|l| l.starts_with(&format!("add rule ip gtpx endpoint-{ep} update")))
            .unwrap();
        assert!(
            flush_endpoint < delete && flush_service < delete && delete < add && add < refill,
            "{}",
            tx.text
        );
    }

    #[test]
    fn other_tables_or_hooks_need_a_full_transaction() {
        let a = web(&[]);
        let mut b = web(&[]);
        b.table = "other".into();
        assert!(matches!(
            diff(&a, &b, ChainDeletion::Now),
            Err(NeedsFull::Table(..))
        ));
        let mut c = web(&[]);
        let mut base = (*c.base).clone();
        base.chains
            .get_mut("nat-output")
            .unwrap()
            .hook
            .as_mut()
            .unwrap()
            .priority = -150;
        c.base = Arc::new(base);
        assert_eq!(
            diff(&a, &c, ChainDeletion::Now),
            Err(NeedsFull::Hook("nat-output".into()))
        );
    }

    #[test]
    fn elements_are_written_in_statements_of_bounded_size() {
        let svc = service("default", "web", "10.151.0.10", &[("http", "TCP", 80, 0)]);
        let endpoints: Vec<String> = (0..1200)
            .map(|i| format!("10.150.{}.{}", i / 200, i % 200 + 1))
            .collect();
        let eps: Vec<Ep> = endpoints.iter().map(|ip| ready(ip, "node-b")).collect();
        let s = slice("default", "web", "web-1", &[("http", "TCP", 8080)], &eps);
        let rs = desired([&svc], [&s], &config());
        let tx = full(&rs);
        assert!(tx.full);
        let statements = tx
            .text
            .lines()
            .filter(|l| l.starts_with("add element ip gtpx endpoints-tcp "))
            .count();
        assert_eq!(statements, 3);
        assert_eq!(tx.elements_added, 1200 + 2);
    }
}
