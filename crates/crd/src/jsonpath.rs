//! The JSONPath subset of `additionalPrinterColumns[].jsonPath` and scale subresource paths: kubectl's
//! syntax without recursive descent (`..`), unions and functions. Missing keys select nothing (as the
//! table printer's `AllowMissingKeys(true)`).

use std::cmp::Ordering;

use serde_json::Value;

/// A parsed JSONPath expression such as `.spec.replicas` or `.status.conditions[?(@.type=="Ready")].status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    /// `.*` or `[*]`: every value of an object, every item of an array.
    Wildcard,
    /// `[n]`, negative from the end.
    Index(i64),
    /// `[start:end:step]`.
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Filter(Filter),
}

/// `[?(@.path)]` (the path exists) or `[?(@.path <op> literal)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    left: Vec<Step>,
    compare: Option<(Op, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl JsonPath {
    /// Parses `expr`; `Err` says why it is not valid.
    pub fn parse(expr: &str) -> Result<JsonPath, String> {
        let mut s = expr.trim();
        match (s.starts_with('{'), s.ends_with('}')) {
            (true, true) if s.len() >= 2 => s = s[1..s.len() - 1].trim(),
            (true, _) => return Err(format!("unclosed action in {expr:?}")),
            (false, true) => return Err(format!("unexpected \"}}\" in {expr:?}")),
            (false, false) => {}
        }
        if s.is_empty() {
            return Err("empty JSONPath expression".to_owned());
        }
        if let Some(rest) = s.strip_prefix('$') {
            s = rest;
        }
        if s.is_empty() || s == "." {
            return Ok(JsonPath { steps: Vec::new() });
        }
        let mut parser = Parser { src: s, pos: 0 };
        let steps = parser.steps(false)?;
        if parser.pos < s.len() {
            return Err(parser.unexpected());
        }
        Ok(JsonPath { steps })
    }

    /// The values `self` selects in `object`, in document order.
    pub fn find<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        eval(&self.steps, vec![object])
    }

    /// The field names of a path made of fields only (`.spec.replicas` → `["spec", "replicas"]`), as the
    /// scale subresource needs; `None` for paths with indexes, wildcards or filters.
    pub fn fields(&self) -> Option<Vec<&str>> {
        self.steps
            .iter()
            .map(|step| match step {
                Step::Field(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }
}

struct Parser<'s> {
    src: &'s str,
    pos: usize,
}

/// Characters that end an unquoted field name.
fn ends_field(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '.' | '['
                | ']'
                | '('
                | ')'
                | '{'
                | '}'
                | '$'
                | '@'
                | ','
                | '='
                | '!'
                | '<'
                | '>'
                | '\''
                | '"'
        )
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn unexpected(&self) -> String {
        match self.peek() {
            Some(c) => format!(
                "unexpected {c:?} at position {} in {:?}",
                self.pos, self.src
            ),
            None => format!("unexpected end of {:?}", self.src),
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected {c:?}: {}", self.unexpected()))
        }
    }

    /// Steps until something that is neither `.` nor `[`; inside a filter, that ends the left side.
    fn steps(&mut self, in_filter: bool) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('.') => {
                            return Err(format!(
                                "recursive descent (\"..\") is not supported in {:?}",
                                self.src
                            ));
                        }
                        None => return Err(format!("trailing \".\" in {:?}", self.src)),
                        _ => {}
                    }
                    steps.push(self.field()?);
                }
                Some('[') => {
                    self.pos += 1;
                    steps.push(self.bracket()?);
                }
                None => return Ok(steps),
                Some(_) if in_filter || !steps.is_empty() => return Ok(steps),
                Some(_) => return Err(self.unexpected()),
            }
        }
    }

    fn field(&mut self) -> Result<Step, String> {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' {
                self.pos += 1;
                match self.bump() {
                    Some(escaped) => name.push(escaped),
                    None => return Err(format!("trailing \"\\\" in {:?}", self.src)),
                }
            } else if ends_field(c) {
                break;
            } else {
                name.push(c);
                self.pos += c.len_utf8();
            }
        }
        match name.as_str() {
            "" => Err(format!("expected a field name: {}", self.unexpected())),
            "*" => Ok(Step::Wildcard),
            _ => Ok(Step::Field(name)),
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        let Some(quote) = self.bump() else {
            return Err(self.unexpected());
        };
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(format!("unterminated quoted string in {:?}", self.src)),
                Some('\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => return Err(format!("unterminated quoted string in {:?}", self.src)),
                },
                Some(c) if c == quote => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    /// After `[`: an index, slice, wildcard, quoted key or filter, and the closing `]`.
    fn bracket(&mut self) -> Result<Step, String> {
        self.skip_spaces();
        let step = match self.peek() {
            Some('?') => {
                self.pos += 1;
                self.skip_spaces();
                self.expect('(')?;
                let filter = self.filter()?;
                self.skip_spaces();
                self.expect(')')?;
                Step::Filter(filter)
            }
            Some('\'' | '"') => Step::Field(self.quoted()?),
            Some('*') => {
                self.pos += 1;
                Step::Wildcard
            }
            _ => {
                let end = self.src[self.pos..]
                    .find(']')
                    .ok_or_else(|| format!("unterminated \"[\" in {:?}", self.src))?;
                let inner = self.src[self.pos..self.pos + end].trim();
                let step = index_or_slice(inner)
                    .ok_or_else(|| format!("invalid array index {inner:?} in {:?}", self.src))?;
                self.pos += end;
                step
            }
        };
        self.skip_spaces();
        if !self.eat(']') {
            return Err(format!("expected \"]\": {}", self.unexpected()));
        }
        Ok(step)
    }

    fn filter(&mut self) -> Result<Filter, String> {
        self.skip_spaces();
        self.expect('@')?;
        let left = self.steps(true)?;
        self.skip_spaces();
        if self.peek() == Some(')') {
            return Ok(Filter {
                left,
                compare: None,
            });
        }
        let rest = &self.src[self.pos..];
        let (op, len) = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find(|(token, _)| rest.starts_with(token))
        .map(|(token, op)| (op, token.len()))
        .ok_or_else(|| format!("expected a comparison operator: {}", self.unexpected()))?;
        self.pos += len;
        self.skip_spaces();
        let literal = match self.peek() {
            Some('\'' | '"') => Value::String(self.quoted()?),
            _ => {
                let end = self.src[self.pos..]
                    .find(|c: char| c == ')' || c.is_whitespace())
                    .unwrap_or(self.src.len() - self.pos);
                let word = &self.src[self.pos..self.pos + end];
                let value = match word {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    _ => match serde_json::from_str::<Value>(word) {
                        Ok(n @ Value::Number(_)) => n,
                        _ => {
                            return Err(format!("invalid filter value {word:?} in {:?}", self.src));
                        }
                    },
                };
                self.pos += end;
                value
            }
        };
        Ok(Filter {
            left,
            compare: Some((op, literal)),
        })
    }
}

fn index_or_slice(inner: &str) -> Option<Step> {
    let int = |s: &str| -> Option<Option<i64>> {
        let s = s.trim();
        if s.is_empty() {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    let parts: Vec<&str> = inner.split(':').collect();
    match parts.as_slice() {
        [one] => Some(Step::Index(int(one)??)),
        [start, end] => Some(Step::Slice(int(start)?, int(end)?, None)),
        [start, end, step] => {
            let step = int(step)?;
            if step.is_some_and(|s| s <= 0) {
                return None;
            }
            Some(Step::Slice(int(start)?, int(end)?, step))
        }
        _ => None,
    }
}

fn eval<'a>(steps: &[Step], mut current: Vec<&'a Value>) -> Vec<&'a Value> {
    for step in steps {
        let mut next = Vec::new();
        for value in current {
            apply(step, value, &mut next);
        }
        current = next;
    }
    current
}

fn apply<'a>(step: &Step, value: &'a Value, out: &mut Vec<&'a Value>) {
    match (step, value) {
        (Step::Field(name), Value::Object(map)) => out.extend(map.get(name)),
        (Step::Wildcard, Value::Object(map)) => out.extend(map.values()),
        (Step::Wildcard, Value::Array(items)) => out.extend(items),
        (Step::Index(i), Value::Array(items)) => {
            let len = items.len() as i64;
            let i = if *i < 0 { len + i } else { *i };
            if (0..len).contains(&i) {
                out.extend(items.get(i as usize));
            }
        }
        (Step::Slice(start, end, step), Value::Array(items)) => {
            let len = items.len() as i64;
            let clamp = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
            let start = start.map_or(0, clamp);
            let end = end.map_or(len, clamp);
            let step = step.unwrap_or(1).max(1) as usize;
            if start < end {
                out.extend(items[start as usize..end as usize].iter().step_by(step));
            }
        }
        (Step::Filter(filter), Value::Array(items)) => {
            out.extend(items.iter().filter(|item| filter.matches(item)));
        }
        _ => {}
    }
}

impl Filter {
    fn matches(&self, item: &Value) -> bool {
        let found = eval(&self.left, vec![item]);
        let Some(left) = found.first() else {
            return false;
        };
        let Some((op, right)) = &self.compare else {
            return true;
        };
        let ordering = match (left, right) {
            (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => None,
            },
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (a, b) if *a == b => Some(Ordering::Equal),
            _ => None,
        };
        match op {
            Op::Eq => ordering == Some(Ordering::Equal),
            Op::Ne => ordering != Some(Ordering::Equal),
            Op::Lt => ordering == Some(Ordering::Less),
            Op::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
            Op::Gt => ordering == Some(Ordering::Greater),
            Op::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(path: &str, object: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap()
            .find(object)
            .into_iter()
            .cloned()
            .collect()
    }

    fn object() -> Value {
        json!({
            "metadata": {"name": "w", "labels": {"app.kubernetes.io/name": "web", "tier": "front"}},
            "spec": {"replicas": 3, "items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}, {"name": "c", "n": 3}]},
            "status": {"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Progressing", "status": "False"}
            ]}
        })
    }

    #[test]
    fn fields_and_indexes() {
        let o = object();
        assert_eq!(find(".spec.replicas", &o), [json!(3)]);
        assert_eq!(find("{.spec.replicas}", &o), [json!(3)]);
        assert_eq!(find("{ .spec.replicas }", &o), [json!(3)]);
        assert_eq!(find("$.spec.replicas", &o), [json!(3)]);
        assert_eq!(find(".spec.items[0].name", &o), [json!("a")]);
        assert_eq!(find(".spec.items[-1].name", &o), [json!("c")]);
        assert_eq!(find(".spec.items[5].name", &o), Vec::<Value>::new());
        assert_eq!(
            find(".spec.items[*].name", &o),
            [json!("a"), json!("b"), json!("c")]
        );
        assert_eq!(find(".spec.items[1:].n", &o), [json!(2), json!(3)]);
        assert_eq!(find(".spec.items[0:3:2].n", &o), [json!(1), json!(3)]);
        assert_eq!(find(".spec.missing.deeper", &o), Vec::<Value>::new());
        assert_eq!(
            find(".metadata.labels.*", &o),
            [json!("web"), json!("front")]
        );
        assert_eq!(find(".", &o), std::slice::from_ref(&o));
    }

    #[test]
    fn quoted_and_escaped_keys() {
        let o = object();
        for path in [
            r".metadata.labels.app\.kubernetes\.io/name",
            r".metadata.labels['app\.kubernetes\.io/name']",
            ".metadata.labels['app.kubernetes.io/name']",
            r#".metadata.labels["app.kubernetes.io/name"]"#,
            "{.metadata.labels['app.kubernetes.io/name']}",
        ] {
            assert_eq!(find(path, &o), [json!("web")], "{path}");
        }
    }

    #[test]
    fn filters() {
        let o = object();
        assert_eq!(
            find(r#".status.conditions[?(@.type=="Ready")].status"#, &o),
            [json!("True")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type != 'Ready')].type", &o),
            [json!("Progressing")]
        );
        assert_eq!(find(".spec.items[?(@.n==2)].name", &o), [json!("b")]);
        assert_eq!(
            find(".spec.items[?(@.n > 1)].name", &o),
            [json!("b"), json!("c")]
        );
        assert_eq!(find(".spec.items[?(@.n <= 1)].name", &o), [json!("a")]);
        assert_eq!(
            find(".spec.items[?(@.name)].n", &o),
            [json!(1), json!(2), json!(3)]
        );
        assert_eq!(find(".spec.items[?(@.zzz)].n", &o), Vec::<Value>::new());
        assert_eq!(
            find(".spec.items[?(@.n == '2')].n", &o),
            Vec::<Value>::new()
        );
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            "",
            "   ",
            "{}",
            "spec..x",
            ".spec..x",
            "spec.x",
            ".spec.",
            ".spec[0",
            ".spec[abc]",
            ".spec]",
            "{.spec.x",
            ".spec.x}",
            ".a[?(@.b==)]",
            ".a[?(@.b=='x']",
            ".a[?(.b=='x')]",
            ".a[1:2:0]",
            ".a['x",
            ".a b",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn field_chains() {
        assert_eq!(
            JsonPath::parse(".spec.replicas").unwrap().fields(),
            Some(vec!["spec", "replicas"])
        );
        assert_eq!(JsonPath::parse(".spec.items[0]").unwrap().fields(), None);
        assert_eq!(JsonPath::parse(".spec.*").unwrap().fields(), None);
    }
}
