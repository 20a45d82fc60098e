//! Label selectors (apimachinery's `pkg/labels`): the `?labelSelector=` syntax, `metav1.LabelSelector` objects,
//! matching and the canonical string form.
//!
//! ```text
//! <selector>    ::= <requirement> | <requirement> "," <selector>
//! <requirement> ::= [!] KEY [ ("in" | "notin") "(" VALUE ["," VALUE]* ")" | ("=" | "==" | "!=" | ">" | "<") VALUE ]
//! ```
//! The lexer and parser are ported token for token so that odd inputs are accepted or refused as Kubernetes does,
//! with the same messages.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::field::{FieldError, aggregate_message};
use crate::validation::{is_qualified_name, is_valid_label_value};

/// Why a selector was refused; the message is Kubernetes' (what a 400 BadRequest carries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError(pub String);

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SelectorError {}

/// `selection.Operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl Operator {
    /// Kubernetes' name of the operator (`in`, `notin`, `=`, `==`, `!=`, `exists`, `!`, `gt`, `lt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::NotIn => "notin",
            Self::Equals => "=",
            Self::DoubleEquals => "==",
            Self::NotEquals => "!=",
            Self::Exists => "exists",
            Self::DoesNotExist => "!",
            Self::GreaterThan => "gt",
            Self::LessThan => "lt",
        }
    }
}

/// Label sets a selector can match.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// `metadata.labels` as JSON; a value that is not a string counts as absent.
impl Labels for Map<String, Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// One condition on one label key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// A checked requirement (Kubernetes' `NewRequirement`): the key a qualified name, every value a label value,
    /// `in`/`notin` with values, `=`/`==`/`!=` with one, `exists`/`!` with none, `gt`/`lt` with one integer.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        let key = key.into();
        let mut errs = Vec::new();
        if let Some(e) = validate_key(&key, "key") {
            errs.push(e);
        }
        let count_error = match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                Some("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Operator::GreaterThan | Operator::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(msg) = count_error {
            errs.push(FieldError::invalid("values", values.clone(), msg));
        }
        if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(FieldError::invalid(
                        format!("values[{i}]"),
                        v.as_str(),
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let msgs = is_valid_label_value(v);
            if !msgs.is_empty() {
                errs.push(FieldError::invalid(
                    format!("values[{i}][{key}]"),
                    v.as_str(),
                    msgs.join("; "),
                ));
            }
        }
        if errs.is_empty() {
            Ok(Self {
                key,
                operator,
                values,
            })
        } else {
            Err(SelectorError(aggregate_message(&errs)))
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    pub fn matches(&self, labels: &(impl Labels + ?Sized)) -> bool {
        let value = labels.label(&self.key);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(has),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(Ok(have)), [want]) =
                    (value.map(str::parse::<i64>), self.values.as_slice())
                else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
        };
        f.write_str(op)?;
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        let values = values.join(",");
        if parens {
            write!(f, "({values})")
        } else {
            f.write_str(&values)
        }
    }
}

fn validate_key(key: &str, path: &str) -> Option<FieldError> {
    let msgs = is_qualified_name(key);
    (!msgs.is_empty()).then(|| FieldError::invalid(path, key, msgs.join("; ")))
}

/// A label selector: the AND of its requirements, kept sorted by key. The empty selector matches everything;
/// [`Selector::nothing`] (a null `LabelSelector`) matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// Matches every label set.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Matches no label set.
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the string form (`?labelSelector=`).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut requirements = Parser::new(s).parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// A selector requiring each `key=value` of the set (Kubernetes' `SelectorFromSet`, unvalidated).
    pub fn from_set<K: Into<String>, V: Into<String>>(
        set: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let requirements = set
            .into_iter()
            .map(|(k, v)| Requirement {
                key: k.into(),
                operator: Operator::Equals,
                values: vec![v.into()],
            })
            .collect();
        Self::everything().add_requirements(requirements)
    }

    /// From a `metav1.LabelSelector` (`matchLabels`, `matchExpressions`): null matches nothing, `{}` everything.
    pub fn from_label_selector(selector: &Value) -> Result<Self, SelectorError> {
        let obj = match selector {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(obj) => obj,
            other => {
                return Err(SelectorError(format!(
                    "a label selector must be an object, not {other}"
                )));
            }
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let v = v.as_str().ok_or_else(|| {
                        SelectorError(format!("matchLabels[{k}] must be a string"))
                    })?;
                    requirements.push(Requirement::new(
                        k.as_str(),
                        Operator::Equals,
                        vec![v.to_owned()],
                    )?);
                }
            }
            Some(_) => return Err(SelectorError("matchLabels must be an object".to_owned())),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for expr in exprs {
                    requirements.push(expression(expr)?);
                }
            }
            Some(_) => return Err(SelectorError("matchExpressions must be a list".to_owned())),
        }
        Ok(Self::everything().add_requirements(requirements))
    }

    /// Adds requirements, keeping the order by key (stable for equal keys).
    pub fn add_requirements(mut self, requirements: Vec<Requirement>) -> Self {
        self.requirements.extend(requirements);
        self.requirements.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }

    /// True when the selector does not restrict (matches everything).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn matches(&self, labels: &(impl Labels + ?Sized)) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches an object's `metadata.labels` (absent labels are an empty set).
    pub fn matches_object(&self, object: &Value) -> bool {
        let empty = Map::new();
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.matches(labels)
    }

    /// The single value the selector requires for `key` (via `=`, `==` or a one-value `in`), if any: lets a
    /// caller narrow a lookup.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

fn expression(expr: &Value) -> Result<Requirement, SelectorError> {
    let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
    let op = expr
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let operator = match op {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(SelectorError(format!(
                "{} is not a valid label selector operator",
                crate::field::go_quote(other)
            )));
        }
    };
    let values = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| SelectorError("values must be strings".to_owned()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(SelectorError("values must be a list".to_owned())),
    };
    let nil = values.is_empty();
    // Kubernetes passes a nil slice here, which its messages print as `[]string(nil)`.
    Requirement::new(key, operator, values).map_err(|e| {
        if nil {
            SelectorError(e.0.replace("[]string{}", "[]string(nil)"))
        } else {
            e
        }
    })
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Kubernetes' byte lexer. As there, a NUL byte reads like the end of input (it ends the token it is in).
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn lex(&mut self) -> (Token, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Token::End, String::new());
        }
        self.pos -= 1;
        if is_special(ch) {
            self.scan_special()
        } else {
            self.scan_identifier()
        }
    }

    fn scan_identifier(&mut self) -> (Token, String) {
        let start = self.pos;
        let mut end = start;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special(ch) || is_whitespace(ch) {
                self.pos -= 1;
                break;
            }
            end = self.pos;
        }
        let word = &self.s[start..end];
        let lit = String::from_utf8_lossy(word).into_owned();
        (keyword(word).unwrap_or(Token::Identifier), lit)
    }

    /// The longest run of special bytes that is an operator (`!=` rather than `!`).
    fn scan_special(&mut self) -> (Token, String) {
        let start = self.pos;
        let mut last: Option<(Token, usize)> = None;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if !is_special(ch) {
                self.pos -= 1;
                break;
            }
            if let Some(tok) = keyword(&self.s[start..self.pos]) {
                last = Some((tok, self.pos));
            } else if last.is_some() {
                self.pos -= 1;
                break;
            }
        }
        match last {
            Some((tok, end)) => (
                tok,
                String::from_utf8_lossy(&self.s[start..end]).into_owned(),
            ),
            None => {
                let found = String::from_utf8_lossy(&self.s[start..self.pos]);
                (
                    Token::Error,
                    format!("error expected: keyword found '{found}'"),
                )
            }
        }
    }
}

/// In a value position `in` and `notin` are plain identifiers (`x in (in)`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

fn err<T>(msg: String) -> Result<T, SelectorError> {
    Err(SelectorError(msg))
}

impl Parser {
    fn new(s: &str) -> Self {
        let mut lexer = Lexer {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Token::End;
            items.push(item);
            if end {
                break;
            }
        }
        Self { items, pos: 0 }
    }

    fn lookahead(&self, ctx: Context) -> (Token, &str) {
        let (tok, lit) = self
            .items
            .get(self.pos)
            .map_or((Token::End, ""), |(t, l)| (*t, l.as_str()));
        match tok {
            Token::In | Token::NotIn if ctx == Context::Values => (Token::Identifier, lit),
            _ => (tok, lit),
        }
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        let (tok, lit) = self.lookahead(ctx);
        let lit = lit.to_owned();
        self.pos += 1;
        (tok, lit)
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| SelectorError(format!("unable to parse requirement: {e}")))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Token::End => return Ok(requirements),
                _ => {
                    return err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::new(key, op, Vec::new());
        }
        let operator = self.parse_operator()?;
        let mut values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        // Kubernetes collects values in a set: sorted, without duplicates.
        values.sort();
        values.dedup();
        Requirement::new(key, operator, values)
    }

    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(String, Option<Operator>), SelectorError> {
        let mut operator = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return err(format!("found '{lit}', expected: identifier"));
        }
        if let Some(e) = validate_key(&lit, "<nil>") {
            return err(e.to_string());
        }
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::End | Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((lit, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, SelectorError> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return err(format!("found '{lit}', expected: {BINARY_OPERATORS}")),
        })
    }

    fn parse_values(&mut self) -> Result<Vec<String>, SelectorError> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        let lit = lit.to_owned();
        match tok {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                if self.consume(Context::Values).0 != Token::ClosedPar {
                    // Kubernetes names the token that opened the list here.
                    return err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    /// A possibly empty list of possibly empty values: `(a,,b)`, `(,a)`, `(a,)`.
    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, SelectorError> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    values.push(lit);
                    match self.lookahead(Context::Values) {
                        (Token::Comma, _) => {}
                        (Token::ClosedPar, _) => return Ok(values),
                        (_, lit2) => return err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.lookahead(Context::Values).0 {
                        Token::ClosedPar => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.consume(Context::Values);
                            values.push(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, SelectorError> {
        if matches!(self.lookahead(Context::Values).0, Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.consume(Context::Values) {
            (Token::Identifier, lit) => Ok(vec![lit]),
            (_, lit) => err(format!("found '{lit}', expected: identifier")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn req(key: &str, op: Operator, values: &[&str]) -> Requirement {
        Requirement::new(key, op, values.iter().map(|v| (*v).to_owned()).collect()).unwrap()
    }

    fn tokens(s: &str) -> Vec<Token> {
        Parser::new(s).items.into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn parse_round_trips() {
        // Upstream's TestSelectorParse.
        for good in [
            "x=a,y=b,z=c",
            "",
            "x!=a,y=b",
            "x=",
            "x= ",
            "x=,z= ",
            "x= ,z= ",
            "!x",
            "x>1",
            "x>1,z<5",
        ] {
            let sel = Selector::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(sel.to_string(), good.replace(' ', ""), "{good}");
        }
        for bad in ["x=a||y=b", "x==a==b", "!x=a", "x<a"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Selector::parse("x=a,a=x").unwrap().to_string(),
            Selector::parse("a=x,x=a").unwrap().to_string()
        );
    }

    #[test]
    fn matches_table() {
        // Upstream's TestSelectorMatches.
        let yes: &[(&str, &[(&str, &str)])] = &[
            ("", &[("x", "y")]),
            ("x=y", &[("x", "y")]),
            ("x=y,z=w", &[("x", "y"), ("z", "w")]),
            ("x!=y,z!=w", &[("x", "z"), ("z", "a")]),
            ("notin=in", &[("notin", "in")]),
            ("x", &[("x", "z")]),
            ("!x", &[("y", "z")]),
            ("x>1", &[("x", "2")]),
            ("x<1", &[("x", "0")]),
            ("foo=bar,baz=blah", &[("foo", "bar"), ("baz", "blah")]),
            ("x in (a,b)", &[("x", "b")]),
            ("x notin (a,b)", &[("x", "c")]),
            ("x notin (a,b)", &[]),
        ];
        let no: &[(&str, &[(&str, &str)])] = &[
            ("x=z", &[]),
            ("x=y", &[("x", "z")]),
            ("x=y,z=w", &[("x", "w"), ("z", "w")]),
            ("x!=y,z!=w", &[("x", "z"), ("z", "w")]),
            ("x", &[("y", "z")]),
            ("!x", &[("x", "z")]),
            ("x>1", &[("x", "0")]),
            ("x<1", &[("x", "2")]),
            ("x>1", &[("x", "v2")]),
            ("x>1", &[]),
            (
                "foo=bar,foobar=bar,baz=blah",
                &[("foo", "bar"), ("baz", "blah")],
            ),
            ("x in (a,b)", &[("x", "c")]),
            ("x in ()", &[("y", "baz")]),
        ];
        for (sel, labels) in yes {
            assert!(
                Selector::parse(sel).unwrap().matches(&set(labels)),
                "{sel} should match {labels:?}"
            );
        }
        for (sel, labels) in no {
            assert!(
                !Selector::parse(sel).unwrap().matches(&set(labels)),
                "{sel} should not match {labels:?}"
            );
        }
    }

    #[test]
    fn set_selector_parser_table() {
        // Upstream's TestSetSelectorParser: input, expected requirements (None: must fail).
        use Operator::*;
        let cases: Vec<(&str, Option<Vec<Requirement>>)> = vec![
            ("", Some(vec![])),
            ("\rx", Some(vec![req("x", Exists, &[])])),
            (
                "this-is-a-dns.domain.com/key-with-dash",
                Some(vec![req(
                    "this-is-a-dns.domain.com/key-with-dash",
                    Exists,
                    &[],
                )]),
            ),
            (
                "this-is-another-dns.domain.com/key-with-dash in (so,what)",
                Some(vec![req(
                    "this-is-another-dns.domain.com/key-with-dash",
                    In,
                    &["so", "what"],
                )]),
            ),
            (
                "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
                Some(vec![req(
                    "0.1.2.domain/99",
                    NotIn,
                    &["10.10.100.1", "tick.tack.clock"],
                )]),
            ),
            ("foo  in\t (abc)", Some(vec![req("foo", In, &["abc"])])),
            ("x notin\n (abc)", Some(vec![req("x", NotIn, &["abc"])])),
            (
                "x  notin\t\t\t(abc,def)",
                Some(vec![req("x", NotIn, &["abc", "def"])]),
            ),
            ("x in (abc,def)", Some(vec![req("x", In, &["abc", "def"])])),
            ("x in (abc,)", Some(vec![req("x", In, &["", "abc"])])),
            ("x in ()", Some(vec![req("x", In, &[""])])),
            (
                "x notin (abc,,def),bar,z in (),w",
                Some(vec![
                    req("bar", Exists, &[]),
                    req("w", Exists, &[]),
                    req("x", NotIn, &["", "abc", "def"]),
                    req("z", In, &[""]),
                ]),
            ),
            (
                "x,y in (a)",
                Some(vec![req("x", Exists, &[]), req("y", In, &["a"])]),
            ),
            ("x=a", Some(vec![req("x", Equals, &["a"])])),
            ("x>1", Some(vec![req("x", GreaterThan, &["1"])])),
            ("x<7", Some(vec![req("x", LessThan, &["7"])])),
            (
                "x=a,y!=b",
                Some(vec![req("x", Equals, &["a"]), req("y", NotEquals, &["b"])]),
            ),
            (
                "x=a,y!=b,z in (h,i,j)",
                Some(vec![
                    req("x", Equals, &["a"]),
                    req("y", NotEquals, &["b"]),
                    req("z", In, &["h", "i", "j"]),
                ]),
            ),
            ("x=a||y=b", None),
            ("x,,y", None),
            (",x,y", None),
            ("x nott in (y)", None),
            ("x notin ( )", Some(vec![req("x", NotIn, &[""])])),
            ("x notin (, a)", Some(vec![req("x", NotIn, &["", "a"])])),
            ("a in (xyz),", None),
            ("a in (xyz)b notin ()", None),
            ("a ", Some(vec![req("a", Exists, &[])])),
            (
                "a in (x,y,notin, z,in)",
                Some(vec![req("a", In, &["in", "notin", "x", "y", "z"])]),
            ),
            ("a in (xyz abc)", None),
            ("a notin(", None),
            ("a (", None),
            ("(", None),
            ("x==a", Some(vec![req("x", DoubleEquals, &["a"])])),
            ("x in (b,a,b)", Some(vec![req("x", In, &["a", "b"])])),
        ];
        for (input, want) in cases {
            match (Selector::parse(input), want) {
                (Ok(sel), Some(want)) => {
                    assert_eq!(sel.requirements(), want.as_slice(), "{input:?}")
                }
                (Err(_), None) => {}
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn parse_error_messages() {
        let cases = [
            (
                "x=a||y=b",
                "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ),
            (
                "x<a",
                "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            ("!x=a", "found '=', expected: ',' or 'end of string'"),
            ("x==a==b", "found '==', expected: ',' or 'end of string'"),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("a in (xyz),", "found '', expected: identifier after ','"),
            (
                "(",
                "found '(', expected: !, identifier, or 'end of string'",
            ),
            (
                "a notin(",
                "unable to parse requirement: found '', expected: ',', ')' or identifier",
            ),
            (
                "a in x",
                "unable to parse requirement: found 'x' expected: '('",
            ),
            (
                "a in (xyz abc)",
                "unable to parse requirement: found 'abc', expected: ',' or ')'",
            ),
            (
                "a in (x,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier",
            ),
            (
                "a=(",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "-a",
                "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Selector::parse(input).unwrap_err().0, want, "{input:?}");
        }
    }

    #[test]
    fn lexer_sequences() {
        use Token::*;
        let cases: &[(&str, &[Token])] = &[
            ("", &[End]),
            (",", &[Comma, End]),
            ("notin", &[NotIn, End]),
            ("in", &[In, End]),
            ("=", &[Equals, End]),
            ("==", &[DoubleEquals, End]),
            (">", &[GreaterThan, End]),
            ("<", &[LessThan, End]),
            ("!", &[DoesNotExist, End]),
            ("!=", &[NotEquals, End]),
            ("(", &[OpenPar, End]),
            (")", &[ClosedPar, End]),
            ("~", &[Identifier, End]),
            ("||", &[Identifier, End]),
            (
                "key in ( value )",
                &[Identifier, In, OpenPar, Identifier, ClosedPar, End],
            ),
            (
                "key in ( value1, value2 )",
                &[
                    Identifier, In, OpenPar, Identifier, Comma, Identifier, ClosedPar, End,
                ],
            ),
            ("!key", &[DoesNotExist, Identifier, End]),
            (
                "x in (),y",
                &[Identifier, In, OpenPar, ClosedPar, Comma, Identifier, End],
            ),
            (
                "== != (), = notin",
                &[
                    DoubleEquals,
                    NotEquals,
                    OpenPar,
                    ClosedPar,
                    Comma,
                    Equals,
                    NotIn,
                    End,
                ],
            ),
            ("key>2", &[Identifier, GreaterThan, Identifier, End]),
            ("key<1", &[Identifier, LessThan, Identifier, End]),
            ("a\0b", &[Identifier, Identifier, End]),
        ];
        for (s, want) in cases {
            assert_eq!(tokens(s), *want, "{s:?}");
        }
        assert_eq!(Parser::new("a!=b").items[1].1, "!=");
        // As in Kubernetes, a NUL ends the token it is in, and where a token would start it ends the input.
        assert_eq!(Selector::parse("a\0,b=c").unwrap().to_string(), "a,b=c");
        assert_eq!(Selector::parse("a,\0b").unwrap().to_string(), "a,b");
        assert_eq!(
            Selector::parse("a, \0b").unwrap_err().0,
            "found '', expected: identifier after ','"
        );
    }

    #[test]
    fn requirement_constructor() {
        use Operator::*;
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let cases = [
            ("x", In, s(&[]), false),
            ("x", NotIn, s(&[]), false),
            ("x", In, s(&["foo"]), true),
            ("x", NotIn, s(&["foo"]), true),
            ("x", Exists, s(&[]), true),
            ("x", DoesNotExist, s(&[]), true),
            ("1foo", In, s(&["bar"]), true),
            ("1234", In, s(&["bar"]), true),
            ("y", GreaterThan, s(&["1"]), true),
            ("z", LessThan, s(&["6"]), true),
            ("foo", GreaterThan, s(&["bar"]), false),
            ("barz", LessThan, s(&["blah"]), false),
            ("x", Equals, s(&["a", "b"]), false),
            ("x", Exists, s(&["a"]), false),
            ("x", GreaterThan, s(&["1", "2"]), false),
        ];
        for (key, op, values, ok) in cases {
            assert_eq!(
                Requirement::new(key, op, values.clone()).is_ok(),
                ok,
                "{key} {op:?} {values:?}"
            );
        }
        assert!(Requirement::new("a".repeat(254), Exists, vec![]).is_err());
        assert_eq!(
            Requirement::new("x", In, vec![]).unwrap_err().0,
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            Requirement::new("x", Exists, s(&["a"])).unwrap_err().0,
            "values: Invalid value: []string{\"a\"}: values set must be empty for exists and does not exist"
        );
        let both = Requirement::new("-x", Equals, s(&["a", "b"]))
            .unwrap_err()
            .0;
        assert!(
            both.starts_with("[key: Invalid value: \"-x\": name part must"),
            "{both}"
        );
        assert!(both.ends_with(", values: Invalid value: []string{\"a\", \"b\"}: exact-match compatibility requires one single value]"), "{both}");
    }

    #[test]
    fn to_string_table() {
        // Upstream's TestToString.
        use Operator::*;
        let cases = [
            (
                vec![
                    req("x", In, &["abc", "def"]),
                    req("y", NotIn, &["jkl"]),
                    req("z", Exists, &[]),
                ],
                "x in (abc,def),y notin (jkl),z",
            ),
            (
                vec![
                    req("x", NotIn, &["abc", "def"]),
                    req("y", NotEquals, &["jkl"]),
                    req("z", DoesNotExist, &[]),
                ],
                "x notin (abc,def),y!=jkl,!z",
            ),
            (
                vec![
                    req("x", NotIn, &["abc"]),
                    req("y", In, &["jkl", "mno"]),
                    req("z", NotIn, &[""]),
                ],
                "x notin (abc),y in (jkl,mno),z notin ()",
            ),
            (
                vec![
                    req("x", Equals, &["abc"]),
                    req("y", DoubleEquals, &["jkl"]),
                    req("z", NotEquals, &["a"]),
                    req("z", Exists, &[]),
                ],
                "x=abc,y==jkl,z!=a,z",
            ),
            (
                vec![
                    req("x", GreaterThan, &["2"]),
                    req("y", LessThan, &["8"]),
                    req("z", Exists, &[]),
                ],
                "x>2,y<8,z",
            ),
            (vec![req("x", In, &["def", "abc"])], "x in (abc,def)"),
        ];
        for (reqs, want) in cases {
            assert_eq!(
                Selector::everything().add_requirements(reqs).to_string(),
                want
            );
        }
    }

    #[test]
    fn requirement_matching_table() {
        // Upstream's TestRequirementSelectorMatching.
        use Operator::*;
        let cases = [
            (
                set(&[("x", "foo"), ("y", "baz")]),
                vec![req("x", In, &["foo"]), req("y", NotIn, &["alpha"])],
                true,
            ),
            (
                set(&[("x", "foo"), ("y", "baz")]),
                vec![req("x", In, &["foo"]), req("y", In, &["alpha"])],
                false,
            ),
            (
                set(&[("y", "")]),
                vec![req("x", NotIn, &[""]), req("y", Exists, &[])],
                true,
            ),
            (
                set(&[("y", "")]),
                vec![req("x", DoesNotExist, &[]), req("y", Exists, &[])],
                true,
            ),
            (
                set(&[("y", "")]),
                vec![req("x", NotIn, &[""]), req("y", DoesNotExist, &[])],
                false,
            ),
            (set(&[("y", "baz")]), vec![req("x", In, &[""])], false),
            (
                set(&[("z", "2")]),
                vec![req("z", GreaterThan, &["1"])],
                true,
            ),
            (
                set(&[("z", "v2")]),
                vec![req("z", GreaterThan, &["1"])],
                false,
            ),
        ];
        for (labels, reqs, want) in cases {
            assert_eq!(
                Selector::everything()
                    .add_requirements(reqs.clone())
                    .matches(&labels),
                want,
                "{reqs:?} on {labels:?}"
            );
        }
    }

    #[test]
    fn everything_nothing_and_sets() {
        assert!(Selector::everything().is_empty());
        assert!(Selector::everything().matches(&set(&[("x", "y")])));
        assert!(!Selector::nothing().is_empty());
        assert!(!Selector::nothing().matches(&set(&[])));
        assert_eq!(Selector::nothing().to_string(), "");
        let sel = Selector::from_set([("foo", "bar"), ("baz", "blah")]);
        assert_eq!(sel.to_string(), "baz=blah,foo=bar");
        assert!(sel.matches(&set(&[("foo", "bar"), ("baz", "blah"), ("x", "y")])));
        assert!(!sel.matches(&set(&[("foo", "bar")])));
        assert!(Selector::from_set(Vec::<(String, String)>::new()).is_empty());
        let hm: HashMap<String, String> = HashMap::from([("a".to_owned(), "1".to_owned())]);
        assert!(Selector::parse("a=1").unwrap().matches(&hm));
        assert_eq!(
            "a in (x)"
                .parse::<Selector>()
                .unwrap()
                .requires_exact_match("a"),
            Some("x")
        );
        assert_eq!(
            Selector::parse("a in (x,y)")
                .unwrap()
                .requires_exact_match("a"),
            None
        );
        assert_eq!(
            Selector::parse("b,a==z").unwrap().requires_exact_match("a"),
            Some("z")
        );
        assert_eq!(
            Selector::parse("a!=z").unwrap().requires_exact_match("a"),
            None
        );
        assert_eq!(
            Selector::parse("a=z").unwrap().requires_exact_match("b"),
            None
        );
    }

    #[test]
    fn json_labels_and_objects() {
        let obj =
            json!({"metadata": {"name": "p", "labels": {"app": "web", "tier": "front", "n": 5}}});
        assert!(
            Selector::parse("app=web,tier in (front,back)")
                .unwrap()
                .matches_object(&obj)
        );
        assert!(!Selector::parse("app=db").unwrap().matches_object(&obj));
        assert!(
            Selector::parse("!n").unwrap().matches_object(&obj),
            "non-string label values count as absent"
        );
        let bare = json!({"metadata": {"name": "p"}});
        assert!(Selector::parse("!app").unwrap().matches_object(&bare));
        assert!(!Selector::parse("app").unwrap().matches_object(&bare));
    }

    #[test]
    fn from_label_selector_json() {
        assert_eq!(
            Selector::from_label_selector(&Value::Null).unwrap(),
            Selector::nothing()
        );
        assert!(
            Selector::from_label_selector(&json!({}))
                .unwrap()
                .is_empty()
        );
        let sel = Selector::from_label_selector(&json!({
            "matchLabels": {"app": "web", "env": "prod"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back", "back"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "gpu", "operator": "Exists", "values": null}
            ]
        }))
        .unwrap();
        assert_eq!(
            sel.to_string(),
            "app=web,!canary,env=prod,gpu,tier in (back,back,front),zone notin (b)"
        );
        assert!(sel.matches(&set(&[
            ("app", "web"),
            ("env", "prod"),
            ("tier", "back"),
            ("gpu", "")
        ])));
        assert!(!sel.matches(&set(&[
            ("app", "web"),
            ("env", "prod"),
            ("tier", "back"),
            ("gpu", ""),
            ("canary", "1")
        ])));

        let bad_op = Selector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
        );
        assert_eq!(
            bad_op.unwrap_err().0,
            "\"Gt\" is not a valid label selector operator"
        );
        let empty_in = Selector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
        );
        assert_eq!(
            empty_in.unwrap_err().0,
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        let bad_value = Selector::from_label_selector(&json!({"matchLabels": {"a": "-x"}}))
            .unwrap_err()
            .0;
        assert!(
            bad_value.starts_with("values[0][a]: Invalid value: \"-x\": a valid label must"),
            "{bad_value}"
        );
        assert!(Selector::from_label_selector(&json!({"matchLabels": {"a": 1}})).is_err());
        assert!(Selector::from_label_selector(&json!({"matchLabels": []})).is_err());
        assert!(Selector::from_label_selector(&json!({"matchExpressions": {}})).is_err());
        assert!(
            Selector::from_label_selector(
                &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]})
            )
            .is_err()
        );
        assert!(Selector::from_label_selector(&json!("a=b")).is_err());
    }

    #[test]
    fn operator_names() {
        let all = [
            (Operator::In, "in"),
            (Operator::NotIn, "notin"),
            (Operator::Equals, "="),
            (Operator::DoubleEquals, "=="),
            (Operator::NotEquals, "!="),
            (Operator::Exists, "exists"),
            (Operator::DoesNotExist, "!"),
            (Operator::GreaterThan, "gt"),
            (Operator::LessThan, "lt"),
        ];
        for (op, name) in all {
            assert_eq!(op.as_str(), name);
        }
        let r = req("a", Operator::In, &["x"]);
        assert_eq!(
            (r.key(), r.operator(), r.values()),
            ("a", Operator::In, &["x".to_owned()][..])
        );
    }
}
