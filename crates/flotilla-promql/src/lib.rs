//! Confines a PromQL query to one Kubernetes namespace.
//!
//! A ScalingPolicy in host namespace `X` may name a PromQL query that the operator runs against
//! Prometheus with its own identity, which can read every series. Without a guard, a policy
//! author could read (or scale on) another tenant's metrics. [`scope_to_namespace`] closes that
//! hole: it parses the query, pins every series selector to `label="X"`, and prints the query
//! back. A selector that already says something else about that label is rejected rather than
//! rewritten, so the author learns the query does not mean what they wrote.
//!
//! The rewrite works on the syntax tree from the `promql-parser` crate, never on the query text:
//! string editing cannot tell a selector from a string literal or a label inside `by (...)`.
//! As a last line of defence the printed result is parsed again and every selector in it is
//! checked, so a printer bug cannot silently drop the namespace matcher.
//!
//! Pure: no I/O, no clock, no global state.

use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::{self, Expr, VectorSelector};

/// The longest query accepted, in bytes.
///
/// Real autoscaling queries are a few hundred bytes. The cap bounds the parser's work and the
/// depth of the syntax tree (every walk over it, including its drop, is recursive), so that a
/// hostile query such as ten thousand nested parentheses cannot exhaust a reconciler's stack.
pub const MAX_QUERY_LEN: usize = 4 * 1024;

/// The deepest nesting of expressions accepted (each parenthesis, function call, operator,
/// aggregation or subquery is a level; a chain `a + b + c` is two).
///
/// The parser itself copes with deep input, but walking and printing the tree is recursive;
/// real queries nest a dozen levels at most, and this bound keeps far clear of a 2 MiB stack
/// even in debug builds.
pub const MAX_NESTING: usize = 128;

/// How much of the parser's message (in characters) goes into a [`ScopeError::Parse`]: enough
/// to locate the mistake, short enough for a Kubernetes condition message.
const MAX_PARSE_MESSAGE: usize = 300;

/// How much of a selector (in characters) an error quotes.
const MAX_SELECTOR_QUOTE: usize = 200;

/// Functions that read series their arguments do not select, so no matcher on the arguments
/// can confine them. `info()` joins its input with `target_info` series found by label lookup.
const UNSCOPABLE_FUNCTIONS: &[&str] = &["info"];

/// Why a query could not be confined to a namespace. Messages are written for a Kubernetes
/// condition; [`ScopeError::reason`] gives the matching `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// The namespace label name is empty or not a usable Prometheus label name.
    #[error(
        "invalid namespace label name {0:?}: it must match [a-zA-Z_][a-zA-Z0-9_]* and must not start with \"__\""
    )]
    InvalidLabel(String),
    /// The namespace is not a DNS-1123 label, so it cannot be a Kubernetes namespace.
    #[error(
        "invalid namespace {0:?}: it must be a DNS-1123 label (at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit)"
    )]
    InvalidNamespace(String),
    /// The query is longer than [`MAX_QUERY_LEN`].
    #[error("the query is {len} bytes long; at most {max} bytes are allowed")]
    TooLong { len: usize, max: usize },
    /// The query nests deeper than [`MAX_NESTING`].
    #[error("the query nests expressions more than {max} levels deep")]
    TooDeep { max: usize },
    /// The query is not valid PromQL; holds the parser's message, shortened.
    #[error("the query is not valid PromQL: {0}")]
    Parse(String),
    /// A selector already constrains the namespace label in a way other than `label="namespace"`.
    #[error("selector {selector} cannot be confined to this namespace: {why}")]
    ConflictingMatcher { selector: String, why: String },
    /// The query calls a function that reads series outside its selectors.
    #[error(
        "the query calls {0}(), which reads series its selectors do not name, so it cannot be confined to one namespace"
    )]
    UnscopableFunction(String),
    /// The query holds a node this crate does not know how to scope.
    #[error("the query contains {0}, which cannot be confined to one namespace")]
    Unsupported(String),
    /// The rewritten query failed the final check. A bug in this crate or in the parser's printer.
    #[error("the scoped query failed its own namespace check ({0}); the query was not run")]
    Unverified(String),
}

impl ScopeError {
    /// A short CamelCase reason for a Kubernetes condition.
    pub fn reason(&self) -> &'static str {
        match self {
            ScopeError::InvalidLabel(_) => "InvalidNamespaceLabel",
            ScopeError::InvalidNamespace(_) => "InvalidNamespace",
            ScopeError::TooLong { .. } => "QueryTooLong",
            ScopeError::TooDeep { .. } => "QueryTooDeep",
            ScopeError::Parse(_) => "QueryParseError",
            ScopeError::ConflictingMatcher { .. }
            | ScopeError::UnscopableFunction(_)
            | ScopeError::Unsupported(_) => "QueryNotScopable",
            ScopeError::Unverified(_) => "QueryScopeCheckFailed",
        }
    }
}

/// Rewrites `query` so that every vector and matrix selector in it, wherever it sits, carries
/// the matcher `label="namespace"`, and returns the re-printed query.
///
/// - A selector with no matcher on `label` gets one.
/// - A selector that already has exactly `label="namespace"` keeps it (no duplicate).
/// - A selector with any other matcher on `label` (another value, `!=`, `=~`, `!~`) is rejected:
///   regexes are not reasoned about, even one that would match `namespace`.
/// - With `or` matchers (`{a="1" or b="2"}`), each alternative is treated as its own selector.
///
/// A query without selectors (`vector(1)`, `1 + 2`) comes back unchanged in meaning. The output
/// is normalised by the printer (e.g. `sum(x) by (a)` becomes `sum by (a) (x)`, `90s` becomes
/// `1m30s`), so compare meaning, not text.
pub fn scope_to_namespace(query: &str, label: &str, namespace: &str) -> Result<String, ScopeError> {
    let scope = Scope::new(label, namespace)?;
    let mut expr = parse_query(query)?;
    visit_selectors(&mut expr, 0, &mut |selector| scope.apply(selector))?;
    let scoped = expr.to_string();
    scope.verify(&scoped)?;
    Ok(scoped)
}

/// The validated label/namespace pair a query is confined to.
struct Scope<'a> {
    label: &'a str,
    namespace: &'a str,
}

/// What one conjunction of matchers (a selector, or one `or` alternative) says about the label.
enum Constraint<'m> {
    /// Nothing: the matcher must be added.
    Missing,
    /// Exactly `label="namespace"` (possibly repeated): already confined.
    Scoped,
    /// Anything else on the label: the first offending matcher.
    Conflicting(&'m Matcher),
}

impl<'a> Scope<'a> {
    fn new(label: &'a str, namespace: &'a str) -> Result<Self, ScopeError> {
        if !is_label_name(label) {
            return Err(ScopeError::InvalidLabel(label.to_owned()));
        }
        if !is_dns1123_label(namespace) {
            return Err(ScopeError::InvalidNamespace(namespace.to_owned()));
        }
        Ok(Scope { label, namespace })
    }

    fn matcher(&self) -> Matcher {
        Matcher::new(MatchOp::Equal, self.label, self.namespace)
    }

    fn is_own_matcher(&self, matcher: &Matcher) -> bool {
        matcher.op == MatchOp::Equal && matcher.value == self.namespace
    }

    fn constraint<'m>(&self, conjunction: &'m [Matcher]) -> Constraint<'m> {
        let mut on_label = conjunction
            .iter()
            .filter(|m| m.name == self.label)
            .peekable();
        if on_label.peek().is_none() {
            return Constraint::Missing;
        }
        match on_label.find(|m| !self.is_own_matcher(m)) {
            Some(other) => Constraint::Conflicting(other),
            None => Constraint::Scoped,
        }
    }

    /// Pins one selector to the namespace, or explains why it cannot be.
    fn apply(&self, selector: &mut VectorSelector) -> Result<(), ScopeError> {
        // Checked before any change, so the error quotes the selector as the author wrote it.
        for conjunction in conjunctions(&selector.matchers) {
            if let Constraint::Conflicting(other) = self.constraint(conjunction) {
                return Err(ScopeError::ConflictingMatcher {
                    selector: quote(&selector.to_string(), MAX_SELECTOR_QUOTE),
                    why: format!(
                        "it already has the matcher {other}, and the only matcher allowed on label {:?} is {}",
                        self.label,
                        self.matcher()
                    ),
                });
            }
        }
        for conjunction in conjunctions_mut(&mut selector.matchers) {
            if let Constraint::Missing = self.constraint(conjunction) {
                conjunction.push(self.matcher());
            }
        }
        Ok(())
    }

    /// Re-parses the printed query and checks every selector in it. The text is what gets run,
    /// so this is the check that matters, whatever the printer does with the tree.
    fn verify(&self, scoped: &str) -> Result<(), ScopeError> {
        let mut expr = parser::parse(scoped).map_err(|e| {
            ScopeError::Unverified(format!(
                "it does not parse again: {}",
                shorten(&e, MAX_PARSE_MESSAGE)
            ))
        })?;
        visit_selectors(&mut expr, 0, &mut |selector| {
            let all_scoped = conjunctions(&selector.matchers)
                .all(|conjunction| matches!(self.constraint(conjunction), Constraint::Scoped));
            if all_scoped {
                Ok(())
            } else {
                Err(ScopeError::Unverified(format!(
                    "selector {} lacks {}",
                    quote(&selector.to_string(), MAX_SELECTOR_QUOTE),
                    self.matcher()
                )))
            }
        })
    }
}

/// Parses a query, bounding its size first and shortening the parser's message after.
fn parse_query(query: &str) -> Result<Expr, ScopeError> {
    if query.len() > MAX_QUERY_LEN {
        return Err(ScopeError::TooLong {
            len: query.len(),
            max: MAX_QUERY_LEN,
        });
    }
    parser::parse(query).map_err(|e| ScopeError::Parse(shorten(&e, MAX_PARSE_MESSAGE)))
}

/// Calls `visit` on every vector selector in `expr`, including the one inside each matrix
/// selector, and rejects nodes that cannot be confined by selectors alone. `depth` is how deep
/// `expr` sits in the whole query.
///
/// The match is exhaustive on purpose: a new kind of node in a future `promql-parser` must be
/// handled here before this crate compiles again, instead of slipping past unscoped.
fn visit_selectors<F>(expr: &mut Expr, depth: usize, visit: &mut F) -> Result<(), ScopeError>
where
    F: FnMut(&mut VectorSelector) -> Result<(), ScopeError>,
{
    if depth > MAX_NESTING {
        return Err(ScopeError::TooDeep { max: MAX_NESTING });
    }
    let inner = depth + 1;
    match expr {
        Expr::VectorSelector(selector) => visit(selector),
        Expr::MatrixSelector(matrix) => visit(&mut matrix.vs),
        Expr::Aggregate(aggregate) => {
            if let Some(param) = aggregate.param.as_deref_mut() {
                visit_selectors(param, inner, visit)?;
            }
            visit_selectors(&mut aggregate.expr, inner, visit)
        }
        Expr::Unary(unary) => visit_selectors(&mut unary.expr, inner, visit),
        Expr::Binary(binary) => {
            visit_selectors(&mut binary.lhs, inner, visit)?;
            visit_selectors(&mut binary.rhs, inner, visit)
        }
        Expr::Paren(paren) => visit_selectors(&mut paren.expr, inner, visit),
        Expr::Subquery(subquery) => visit_selectors(&mut subquery.expr, inner, visit),
        Expr::Call(call) => {
            if UNSCOPABLE_FUNCTIONS.contains(&call.func.name) {
                return Err(ScopeError::UnscopableFunction(call.func.name.to_owned()));
            }
            call.args
                .args
                .iter_mut()
                .try_for_each(|arg| visit_selectors(arg, inner, visit))
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Extension(_) => Err(ScopeError::Unsupported(
            "a parser extension node".to_owned(),
        )),
    }
}

/// The conjunctions a selector's matchers form: the plain list, or each `or` alternative.
///
/// The parser puts matchers either in `matchers` or, once an `or` appears, all of them in
/// `or_matchers`. Both are returned when non-empty (and `matchers` when both are empty), so
/// no list that the printer might show is left out.
fn conjunctions(matchers: &Matchers) -> impl Iterator<Item = &Vec<Matcher>> {
    let plain = (!matchers.matchers.is_empty() || matchers.or_matchers.is_empty())
        .then_some(&matchers.matchers);
    plain.into_iter().chain(matchers.or_matchers.iter())
}

/// [`conjunctions`], mutably.
fn conjunctions_mut(matchers: &mut Matchers) -> impl Iterator<Item = &mut Vec<Matcher>> {
    let plain = (!matchers.matchers.is_empty() || matchers.or_matchers.is_empty())
        .then_some(&mut matchers.matchers);
    plain.into_iter().chain(matchers.or_matchers.iter_mut())
}

/// A Prometheus label name in the classic charset, not one of the reserved `__` names: the
/// namespace label is always an ordinary label such as `namespace` or `kubernetes_namespace`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.starts_with("__")
}

/// A DNS-1123 label, the form of every Kubernetes namespace name. Checking it keeps anything
/// that could need escaping out of the injected matcher.
fn is_dns1123_label(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&name.len())
        && name.chars().all(|c| alnum(c) || c == '-')
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

/// Cuts `text` to at most `max` characters, marking the cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A selector as an error message quotes it.
fn quote(selector: &str, max: usize) -> String {
    format!("`{}`", shorten(selector, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names() {
        for ok in ["namespace", "kubernetes_namespace", "_ns", "a1"] {
            assert!(is_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "name-space", "__name__", "__ns", "näme", "a b"] {
            assert!(!is_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn dns1123_labels() {
        for ok in ["a", "team-a", "0", "a0-b1", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "Team", "a.b", "a_b", "a\"", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn shorten_cuts_on_char_boundaries() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "abc…");
        assert_eq!(shorten("ééé", 2), "éé…");
    }
}
