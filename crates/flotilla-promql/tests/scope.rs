//! Behaviour of `scope_to_namespace`, checked on the syntax tree of its output: every result is
//! parsed again and walked independently of the crate's own walker.

use flotilla_promql::{MAX_NESTING, MAX_QUERY_LEN, ScopeError, scope_to_namespace};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, VectorSelector};

const LABEL: &str = "namespace";
const NS: &str = "team-a";

/// Every vector selector in `expr` (matrix selectors contribute theirs), in source order.
fn selectors(expr: &Expr) -> Vec<&VectorSelector> {
    let mut found = Vec::new();
    collect(expr, &mut found);
    found
}

fn collect<'e>(expr: &'e Expr, found: &mut Vec<&'e VectorSelector>) {
    match expr {
        Expr::VectorSelector(vs) => found.push(vs),
        Expr::MatrixSelector(ms) => found.push(&ms.vs),
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                collect(p, found);
            }
            collect(&a.expr, found);
        }
        Expr::Unary(u) => collect(&u.expr, found),
        Expr::Binary(b) => {
            collect(&b.lhs, found);
            collect(&b.rhs, found);
        }
        Expr::Paren(p) => collect(&p.expr, found),
        Expr::Subquery(s) => collect(&s.expr, found),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect(a, found)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The matcher lists of a selector: the plain one, or each `or` alternative.
fn conjunctions(vs: &VectorSelector) -> Vec<&Vec<Matcher>> {
    if vs.matchers.or_matchers.is_empty() {
        vec![&vs.matchers.matchers]
    } else {
        vs.matchers.or_matchers.iter().collect()
    }
}

fn parse(q: &str) -> Expr {
    parser::parse(q).unwrap_or_else(|e| panic!("{q:?} does not parse: {e}"))
}

/// Scopes `query`, re-parses the output, and checks that every selector (every `or`
/// alternative) carries exactly one matcher on `label`, and that it is `label="ns"`.
/// Returns the output and the number of selectors seen.
fn scoped(query: &str, label: &str, ns: &str) -> (String, usize) {
    let out = scope_to_namespace(query, label, ns)
        .unwrap_or_else(|e| panic!("{query:?} was rejected: {e}"));
    let expr = parse(&out);
    let found = selectors(&expr);
    for vs in &found {
        for conjunction in conjunctions(vs) {
            let on_label: Vec<_> = conjunction.iter().filter(|m| m.name == label).collect();
            assert_eq!(on_label.len(), 1, "{out:?}: selector {vs} has {on_label:?}");
            assert_eq!(on_label[0].op, MatchOp::Equal, "{out:?}: {vs}");
            assert_eq!(on_label[0].value, ns, "{out:?}: {vs}");
        }
    }
    (out, found.len())
}

/// `query` scoped, with its selector count checked.
fn scoped_with(query: &str, expected_selectors: usize) -> String {
    let (out, n) = scoped(query, LABEL, NS);
    assert_eq!(n, expected_selectors, "{query:?} -> {out:?}");
    out
}

/// The output is the input with the namespace matcher added, as the parser sees it: scoping
/// `query` must give the same tree as parsing `expected` (written with the matcher in place).
fn assert_scopes_to(query: &str, expected: &str) {
    let out = scope_to_namespace(query, LABEL, NS).expect("scopes");
    // Matchers print sorted, so compare printed forms of both trees.
    assert_eq!(
        parse(&out).to_string(),
        parse(expected).to_string(),
        "{query:?}"
    );
}

fn rejected(query: &str) -> ScopeError {
    match scope_to_namespace(query, LABEL, NS) {
        Ok(out) => panic!("{query:?} was accepted as {out:?}"),
        Err(e) => e,
    }
}

#[test]
fn plain_metric_gets_the_matcher() {
    let out = scoped_with("up", 1);
    assert_eq!(out, r#"up{namespace="team-a"}"#);
}

#[test]
fn metric_with_other_matchers_keeps_them() {
    assert_scopes_to(
        r#"http_requests_total{job="api", code=~"5.."}"#,
        r#"http_requests_total{job="api", code=~"5..", namespace="team-a"}"#,
    );
}

#[test]
fn aggregations_and_range_functions() {
    assert_scopes_to(
        "sum by (pod) (rate(http_requests_total[5m]))",
        r#"sum by (pod) (rate(http_requests_total{namespace="team-a"}[5m]))"#,
    );
    scoped_with("irate(x[1m])", 1);
    scoped_with("sum(rate(x[5m])) without (instance)", 1);
    scoped_with("topk(3, sum by (pod) (x))", 1);
    scoped_with(r#"count_values("v", x)"#, 1);
    scoped_with("avg_over_time(x[10m])", 1);
}

#[test]
fn binary_operations_scope_both_sides() {
    assert_scopes_to(
        "rate(errors_total[5m]) / rate(requests_total[5m])",
        r#"rate(errors_total{namespace="team-a"}[5m]) / rate(requests_total{namespace="team-a"}[5m])"#,
    );
    scoped_with("a > bool 10", 1);
    scoped_with("a and b unless c or d", 4);
    scoped_with("2 * a + b", 2);
}

#[test]
fn vector_matching_keeps_modifiers() {
    assert_scopes_to(
        "sum by (pod) (a) / on (pod) group_left (node) b",
        r#"sum by (pod) (a{namespace="team-a"}) / on (pod) group_left (node) b{namespace="team-a"}"#,
    );
    assert_scopes_to(
        "a / ignoring (code) b",
        r#"a{namespace="team-a"} / ignoring (code) b{namespace="team-a"}"#,
    );
    // A label inside `on (...)` or `by (...)` is not a selector and is left alone.
    let out = scoped_with("sum by (namespace) (a) * on (namespace) b", 2);
    assert!(
        out.contains("by (namespace)") && out.contains("on (namespace)"),
        "{out}"
    );
}

#[test]
fn subqueries() {
    assert_scopes_to(
        "max_over_time(rate(x[5m])[30m:1m])",
        r#"max_over_time(rate(x{namespace="team-a"}[5m])[30m:1m])"#,
    );
    scoped_with("rate(x[5m])[30m:1m]", 1);
    scoped_with("rate(x[5m])[30m:]", 1);
}

#[test]
fn offset_and_at_modifiers() {
    assert_scopes_to(
        "rate(x[5m] offset 1h)",
        r#"rate(x{namespace="team-a"}[5m] offset 1h)"#,
    );
    assert_scopes_to("x @ 1609746000", r#"x{namespace="team-a"} @ 1609746000"#);
    assert_scopes_to(
        "x @ start() offset -5m",
        r#"x{namespace="team-a"} @ start() offset -5m"#,
    );
    scoped_with("rate(x[5m])[30m:1m] offset 1d @ end()", 1);
}

#[test]
fn nested_functions_parentheses_and_unary() {
    assert_scopes_to(
        "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
        r#"histogram_quantile(0.9, sum by (le) (rate(h_bucket{namespace="team-a"}[5m])))"#,
    );
    scoped_with("-(((x)))", 1);
    scoped_with("abs(-x) + clamp_min(y, 0)", 2);
    scoped_with(r#"label_replace(x, "namespace", "$1", "pod", "(.*)")"#, 1);
    scoped_with("absent(x)", 1);
    scoped_with("scalar(sum(x)) * vector(1)", 1);
}

#[test]
fn selector_by_name_matcher_only() {
    assert_scopes_to(r#"{__name__="x"}"#, r#"{__name__="x", namespace="team-a"}"#);
    scoped_with(r#"{__name__=~"x|y"}"#, 1);
    scoped_with(r#"{"my.metric"}"#, 1);
}

#[test]
fn or_matchers_scope_every_alternative() {
    let (out, _) = scoped(r#"x{a="1" or b="2", c="3"}"#, LABEL, NS);
    let expr = parse(&out);
    assert_eq!(conjunctions(selectors(&expr)[0]).len(), 2, "{out}");
    let e = rejected(r#"x{a="1" or namespace="team-b"}"#);
    assert_eq!(e.reason(), "QueryNotScopable");
}

#[test]
fn existing_equal_matcher_is_kept_not_duplicated() {
    let out = scoped_with(r#"x{namespace="team-a", job="j"}"#, 1);
    assert_eq!(out.matches("namespace=").count(), 1, "{out}");
    // One selector already scoped, one not: only the second is changed.
    let out = scoped_with(r#"x{namespace="team-a"} + y"#, 2);
    assert_eq!(out.matches("namespace=").count(), 2, "{out}");
}

#[test]
fn conflicting_value_is_rejected() {
    let e = rejected(r#"sum(rate(x{namespace="team-b"}[5m]))"#);
    assert!(matches!(e, ScopeError::ConflictingMatcher { .. }), "{e:?}");
    assert_eq!(e.reason(), "QueryNotScopable");
    let msg = e.to_string();
    assert!(
        msg.contains("team-b") && msg.contains(r#"namespace="team-a""#),
        "{msg}"
    );
    assert!(msg.contains("`x{"), "names the selector: {msg}");
}

#[test]
fn conflict_anywhere_rejects_the_whole_query() {
    rejected(r#"a + b{namespace="kube-system"}"#);
    rejected(r#"a{namespace="team-a"} / on () b{namespace="team-b"}"#);
    rejected(r#"x{namespace="team-a", namespace="team-b"}"#);
    // A quoted label name is the same label.
    rejected(r#"x{"namespace"="team-b"}"#);
}

#[test]
fn regex_on_the_label_is_rejected_even_if_it_matches() {
    for q in [
        r#"x{namespace=~"team-a"}"#,
        r#"x{namespace=~".*"}"#,
        r#"x{namespace=~"team-.*"}"#,
        r#"x{namespace!~"team-b"}"#,
    ] {
        let e = rejected(q);
        assert!(
            matches!(e, ScopeError::ConflictingMatcher { .. }),
            "{q}: {e:?}"
        );
    }
}

#[test]
fn not_equal_on_the_label_is_rejected() {
    let e = rejected(r#"x{namespace!="team-b"}"#);
    assert!(e.to_string().contains("!="), "{e}");
    rejected(r#"x{namespace!="team-a"}"#);
}

#[test]
fn unparsable_queries_are_rejected_with_the_parser_message() {
    for q in ["", "(((", "sum(", "x{a=", "rate(x)[5m", "{}", "x y", "1 +"] {
        let e = rejected(q);
        assert!(matches!(e, ScopeError::Parse(_)), "{q:?}: {e:?}");
        assert_eq!(e.reason(), "QueryParseError");
    }
    let ScopeError::Parse(msg) = rejected("(((") else {
        unreachable!()
    };
    assert!(msg.contains("parenthes"), "{msg}");
}

#[test]
fn parse_message_is_capped() {
    let long_label = "a".repeat(1000);
    let q = format!(r#"x{{{long_label}=}}"#);
    let e = rejected(&q);
    let ScopeError::Parse(msg) = &e else {
        panic!("{e:?}")
    };
    assert!(msg.chars().count() <= 301, "{} chars", msg.chars().count());
}

#[test]
fn queries_without_selectors_are_unchanged() {
    // `scalar(1)` is not among them: PromQL rejects it (scalar() wants a vector).
    for q in [
        "1",
        "vector(1)",
        "scalar(vector(1))",
        "1 + 2 * 3",
        "(1 + 2) * 3",
        "-Inf",
        "NaN",
        "time()",
    ] {
        let out = scoped_with(q, 0);
        assert_eq!(out, parse(q).to_string(), "{q}");
        assert_eq!(parse(&out).to_string(), out);
    }
}

#[test]
fn label_name_is_configurable() {
    let (out, n) = scoped(
        r#"rate(x{namespace="other"}[5m]) + y"#,
        "kubernetes_namespace",
        "team-a",
    );
    assert_eq!(n, 2);
    // The unrelated `namespace` label is an ordinary matcher now, and kept.
    assert!(out.contains(r#"namespace="other""#), "{out}");
    assert_eq!(
        out.matches(r#"kubernetes_namespace="team-a""#).count(),
        2,
        "{out}"
    );
    let e = scope_to_namespace(
        r#"y{kubernetes_namespace="b"}"#,
        "kubernetes_namespace",
        "a",
    )
    .expect_err("conflict");
    assert_eq!(e.reason(), "QueryNotScopable");
}

#[test]
fn invalid_label_or_namespace_is_rejected() {
    for label in ["", "1ns", "name-space", "__name__"] {
        let e = scope_to_namespace("x", label, NS).expect_err(label);
        assert!(matches!(e, ScopeError::InvalidLabel(_)), "{label:?}: {e:?}");
        assert_eq!(e.reason(), "InvalidNamespaceLabel");
    }
    for ns in [
        "",
        "Team",
        "team_a",
        "-a",
        "a-",
        "a\"}",
        "a.b",
        &"a".repeat(64),
    ] {
        let e = scope_to_namespace("x", LABEL, ns).expect_err(ns);
        assert!(
            matches!(e, ScopeError::InvalidNamespace(_)),
            "{ns:?}: {e:?}"
        );
        assert_eq!(e.reason(), "InvalidNamespace");
    }
}

#[test]
fn info_function_is_rejected() {
    let e = rejected(r#"info(rate(x[5m]), {k8s_cluster_name=~".+"})"#);
    assert!(
        matches!(e, ScopeError::UnscopableFunction(ref f) if f == "info"),
        "{e:?}"
    );
    assert_eq!(e.reason(), "QueryNotScopable");
}

#[test]
fn too_long_queries_are_rejected() {
    let q = format!("x + {}", "1 + ".repeat(MAX_QUERY_LEN));
    let e = rejected(&q);
    assert!(matches!(e, ScopeError::TooLong { .. }), "{e:?}");
    assert_eq!(e.reason(), "QueryTooLong");
}

#[test]
fn nesting_beyond_the_cap_is_rejected() {
    let nested = |n: usize| format!("{}x{}", "(".repeat(n), ")".repeat(n));
    scoped_with(&nested(MAX_NESTING), 1);
    let e = rejected(&nested(MAX_NESTING + 1));
    assert_eq!(e, ScopeError::TooDeep { max: MAX_NESTING });
    assert_eq!(e.reason(), "QueryTooDeep");
    // A realistic query is nowhere near the cap.
    scoped_with(
        "histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))[1h:5m]",
        1,
    );
}

#[test]
fn scoping_is_idempotent() {
    for q in [
        "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
        "a / on (pod) group_left b",
        r#"x{a="1" or b="2"}"#,
    ] {
        let once = scope_to_namespace(q, LABEL, NS).expect("once");
        let twice = scope_to_namespace(&once, LABEL, NS).expect("twice");
        assert_eq!(once, twice);
    }
}

#[test]
fn string_literals_are_not_selectors() {
    // A string argument that looks like a selector stays a string.
    let out = scoped_with(
        r#"label_replace(x, "dst", "up{namespace=\"b\"}", "src", ".*")"#,
        1,
    );
    assert!(out.contains(r#""up{namespace=\"b\"}""#), "{out}");
}

/// Odd and hostile inputs: each must come back as Ok or Err, never a panic or stack overflow.
#[test]
fn odd_inputs_do_not_panic() {
    let half = MAX_QUERY_LEN / 2 - 1;
    let deep_parens = format!("{}x{}", "(".repeat(half), ")".repeat(half));
    let deep_unary = format!("{}x", "-".repeat(MAX_QUERY_LEN - 1));
    let deep_calls = format!("{}x{}", "abs(".repeat(half / 4), ")".repeat(half / 4));
    let long_chain = format!("x{}", " + x".repeat((MAX_QUERY_LEN - 1) / 4));
    let unclosed = "(".repeat(MAX_QUERY_LEN);
    let inputs = [
        "",
        " ",
        "(((",
        ")))",
        "{}",
        "{,}",
        "x{a=",
        "x{a=\"",
        "x{",
        "x}",
        "x[",
        "x[5m",
        "x[5m:",
        "x @",
        "x offset",
        "@",
        "\"",
        "'",
        "`",
        "\\",
        "\u{0}",
        "\u{feff}x",
        "é",
        "x{é=\"1\"}",
        "x{\"é\"=\"1\"}",
        "sum by",
        "sum by (",
        "on()",
        "a + on(",
        "1/0",
        "0x",
        "1e999",
        "x[0s]",
        "x[-5m]",
        "rate(x[5m:0s])",
        "--x",
        "+-+-x",
        "#comment\nx",
        "x # trailing",
        "x{namespace=\"team-a\"",
        "{namespace=\"team-a\"}",
        "{namespace=~\"\"}",
        "{a=~\"(\"}",
        "x{a=~\"[\"}",
        "count_values(1, x)",
        "topk(x, y)",
        "info(x)",
        "info(",
        "unknown_fn(x)",
        &deep_parens,
        &deep_unary,
        &deep_calls,
        &long_chain,
        &unclosed,
    ];
    for q in inputs {
        if let Ok(out) = scope_to_namespace(q, LABEL, NS) {
            parse(&out);
        }
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Bits of PromQL that recombine into many almost-valid queries.
    const PIECES: &[&str] = &[
        "x",
        "up",
        "{",
        "}",
        "(",
        ")",
        "[5m]",
        "[30m:1m]",
        "=",
        "!=",
        "=~",
        "!~",
        "\"a\"",
        "\"team-a\"",
        "namespace",
        ",",
        " or ",
        " and ",
        " + ",
        " / ",
        " on (a) ",
        "group_left",
        " by (le) ",
        "sum",
        "rate",
        "offset 5m",
        " @ 10",
        "1",
        "-",
        "__name__",
        "histogram_quantile",
    ];

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(q in ".{0,200}") {
            let _ = scope_to_namespace(&q, LABEL, NS);
        }

        #[test]
        fn recombined_promql_never_panics_and_is_scoped_when_accepted(
            picks in proptest::collection::vec(0..PIECES.len(), 0..24)
        ) {
            let q: String = picks.iter().map(|&i| PIECES[i]).collect();
            if scope_to_namespace(&q, LABEL, NS).is_ok() {
                scoped(&q, LABEL, NS);
            }
        }
    }
}
