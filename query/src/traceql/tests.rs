//! Tests of the TraceQL parser and printer.

use super::*;

/// Queries from Tempo's TraceQL documentation and the examples of the language description;
/// all must parse and survive a print / re-parse round trip.
const VALID_QUERIES: &[&str] = &[
    // Tempo docs: construct a query.
    "{ }",
    "{}",
    "{ span.http.status_code >= 200 && span.http.status_code < 300 } | count() > 2",
    r#"{resource.service.name = "frontend" && name = "POST /api/orders"}"#,
    "{\n  resource.service.namespace = \"ecommerce\" &&\n  resource.service.name = \"frontend\" &&\n  resource.deployment.environment = \"production\" &&\n  name = \"POST /api/orders\"\n}",
    "{\n  resource.service.name=\"frontend\" &&\n  name = \"POST /api/orders\" &&\n  status = error\n}",
    r#"{span.service.name="frontend" && name = "GET /api/products/{id}"} && {span.db.system="postgresql"}"#,
    r#"{ resource.deployment.environment = "production" } && { resource.deployment.environment = "staging" }"#,
    r#"{ span.foo = "bar" }"#,
    r#"{ span.foo != "bar" }"#,
    r#"{ span.http.request.header.Accept =~ "application.*" }"#,
    r#"{ span.http.request.header.Accept !~ "application.*" }"#,
    r#"{ resource.service.name="frontend" } >> { status = error }"#,
    r#"{ } !< { resource.service.name = "productcatalogservice" }"#,
    r#"{ resource.service.name = "productcatalogservice" } ~ { resource.service.name="frontend" }"#,
    "{ span:childCount = 0 }",
    r#"{ resource.service.name = "frontend" && span:childCount = 0 }"#,
    "{ span.http.status_code = 200 } | select(resource.service.name)",
    r#"{ span.http.method = "GET" && status = ok } && { span.http.method = "DELETE" && status != ok }"#,
    r#"{ resource.deployment.environment =~ "prod-.*" && span.http.status_code = 200 }"#,
    "{ trace:duration > 5s }",
    "{ span:duration < 5ms } | count_over_time() by(resource.service.name) | topk(10)",
    r#"{ resource.deployment.environment = "production" && trace:duration > 2s } | count() > 30"#,
    r#"{ span:name = "foo" }"#,
    r#"{ event:name = "foo" }"#,
    r#"{ trace:id = "1234" }"#,
    r#"{ link:traceID = "1234" }"#,
    r#"{ link.foo = "bar" }"#,
    r#"{ event.foo = "bar" }"#,
    "{ span:status = ok }",
    r#"{ span:statusMessage = "Forbidden" }"#,
    "{ span:kind = server }",
    r#"{ span:id = "0000000000000001" }"#,
    r#"{ span:parentID = "000000000000001" }"#,
    r#"{ trace:rootName = "HTTP GET" }"#,
    r#"{ trace:rootService = "gateway" }"#,
    "{ event:timeSinceStart > 2ms}",
    r#"{ link:spanID = "0000000000000001" }"#,
    r#"{ instrumentation:name = "grpc" }"#,
    r#"{ instrumentation:version = "1.0.0" }"#,
    r#"{ resource.k8s.cluster.name="service-name" && trace:rootName !~ ".*perf.*"}"#,
    r#"{ span.db.system =~ "postgresql|mysql" }"#,
    r#"{ event.exception.message =~ ".*something went wrong.*" }"#,
    r#"{ link.opentracing.ref_type = "child_of" }"#,
    r#"{ instrumentation.language = "java" }"#,
    r#"{ resource.service.name = "foo" } | rate() by (instrumentation:name)"#,
    r#"{ span."attribute name with space" = "value" }"#,
    r#"{ span.attribute."attribute name with space" = "value" }"#,
    "{ span.retry_count > -1 }",
    "{ span.value != minInt && span.value != maxInt }",
    "{ event:timeSinceStart > -5s }",
    "{ span.value > 1.5 }",
    "{ span.optional_field = nil }",
    "{ span.cache.hit = true }",
    r#"{ span.http.status_code >= "400" }"#,
    "{ span.cache.hit || span.http.status_code = 500 }",
    r#"{ resource.cloud.region = "us-east-1" } || { resource.cloud.region = "us-west-1" }"#,
    r#"{ span.http.url = "/path/of/api" } >> { span.db.name = "db-shard-001" }"#,
    r#"{ span.http.url = "/path/of/api" && status = error } &>> { status = error }"#,
    "{ status = error } !< { status = error }",
    "count() > 10",
    "avg(duration) > 20ms",
    "{ } | sum(span.bytesProcessed) > 1000000000",
    "{ status = error } | by(resource.service.name) | count() > 1",
    "{ span.http.request_content_length > 10 * 1024 * 1024 }",
    "{ status = error } | select(span.http.status_code, span.http.url)",
    "{} with (most_recent=true)",
    r#"{ span.foo = "bar" } >> { status = error } with (most_recent=true)"#,
    r#"{ .http.method = "POST" } | by(.http.target) | count() > 2"#,
    // Tempo docs: metrics queries.
    "{ status = error } | rate() by (resource.service.name)",
    "{ } | quantile_over_time(duration, .99, .9, .5)",
    "{ } | histogram_over_time(duration) by (span.http.route)",
    "{ } | min_over_time(duration) by (resource.service.name)",
    "{ } | max_over_time(span.http.response.size)",
    "{ } | avg_over_time(duration) by (span.http.target)",
    "{ } | sum_over_time(span.http.response.size)",
    "{ span:name = \"GET /:endpoint\" } | quantile_over_time(duration, .99) by (span.endpoint)",
    r#"{ resource.service.name = "foo" && status = error } | count_over_time() by (span.http.route) | bottomk(3)"#,
    // The language description of this task.
    "{ name = \"checkout\" && status = error && kind = server }",
    "{ statusMessage = \"boom\" && rootName = \"GET /\" && rootServiceName = \"gw\" && traceDuration > 2s }",
    "{ kind = unspecified || kind = internal || kind = client || kind = producer || kind = consumer }",
    "{ status = unset }",
    "{ span.http.request.method = `GET` && resource.k8s.pod-name = \"api-7\" }",
    "{ .x = \"a\\tb\\\"c\\\\\" && .\"x\" = 1 }",
    "{ parent.x = 1 && parent.span.y = 2 && parent.resource.z = 3 }",
    "{ span.http/route = \"/a\" && .a.b-c/d = 1 }",
    "{ duration > 150ms && duration < 2s && duration != 1.5s }",
    "{ duration > 10us && duration > 1m && duration > 1h && duration > 100ns && duration > 10µs }",
    "{ .a = 1 && .b = 2.5 && .c = true && .d = false && .e = nil }",
    "{ !(.a = 1) && -.b < 3 && .c + 2 * 3 ^ 2 % 4 - 1 / 2 > 0 }",
    "{ (.a = 1 || .b = 2) && .c = 3 }",
    "{ .a } > { .b } < { .c } >> { .d } << { .e } ~ { .f }",
    "{ .a } !>> { .b } !> { .c } !<< { .d } !< { .e } !~ { .f }",
    "{ .a } &>> { .b } &> { .c } &<< { .d } &< { .e } &~ { .f }",
    "({ .a } && { .b }) >> ({ .c } || { .d })",
    "{ .a } | count() > 2",
    "{ .a } | avg(duration) > 1s",
    "{ .a } | min(duration) < 10ms | max(duration) >= 1s | sum(span.bytes) <= 100",
    "{ .a } | by(.a, resource.b) | coalesce()",
    "({ .a } | count() > 1) && { .b }",
    "({ .a } | count()) > ({ .b } | count())",
    "({ status = error } | count()) / ({ } | count()) > 0.05",
    "{ .a } | count() + 1 > 2 * avg(.b)",
    "{ } | rate()",
    "{ } | count_over_time()",
    "{ } | quantile_over_time(duration, .99, .5)",
    "{ } | min_over_time(duration)",
    "{ } | max_over_time(duration)",
    "{ } | avg_over_time(duration)",
    "{ } | sum_over_time(duration)",
    "{ } | histogram_over_time(duration)",
    "{ } | rate() by (resource.service.name, span.http.method)",
    "{ .a } // a comment\n | count() > 1 /* another */",
];

fn must_parse(query: &str) -> Query {
    match parse(query) {
        Ok(parsed) => parsed,
        Err(error) => panic!("{query:?} failed to parse: {error}"),
    }
}

fn attribute(scope: AttributeScope, name: &str) -> FieldExpr {
    FieldExpr::Field(Field::Attribute(Attribute {
        scope,
        parent: false,
        name: name.to_string(),
    }))
}

fn int(value: i64) -> FieldExpr {
    FieldExpr::Literal(Literal::Int(value))
}

fn binary(op: BinaryOp, lhs: FieldExpr, rhs: FieldExpr) -> FieldExpr {
    FieldExpr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    }
}

/// The field expression of a query that is a single non-empty spanset filter.
fn filter_expr(query: &str) -> FieldExpr {
    let parsed = must_parse(query);
    match parsed.pipeline.stages.as_slice() {
        [Stage::Spanset(SpansetExpr::Filter(SpansetFilter { expr: Some(expr) }))] => expr.clone(),
        other => panic!("{query:?} is not a single filter: {other:?}"),
    }
}

#[test]
fn documented_queries_parse() {
    assert!(VALID_QUERIES.len() >= 40);
    for query in VALID_QUERIES {
        must_parse(query);
    }
}

#[test]
fn documented_queries_round_trip() {
    for query in VALID_QUERIES {
        let parsed = must_parse(query);
        let printed = parsed.to_string();
        let reparsed = match parse(&printed) {
            Ok(reparsed) => reparsed,
            Err(error) => panic!("{query:?} printed as {printed:?}, which fails: {error}"),
        };
        assert_eq!(reparsed, parsed, "{query:?} printed as {printed:?}");
        // The canonical form is a fixed point of printing.
        assert_eq!(reparsed.to_string(), printed);
    }
}

#[test]
fn canonical_printing() {
    let cases = [
        ("{ }", "{}"),
        (
            "{span.http.method=\"GET\"&&duration>1.5s}|count()>2",
            "{ span.http.method = \"GET\" && duration > 1500ms } | count() > 2",
        ),
        ("{ span:name = `a\"b` }", "{ name = \"a\\\"b\" }"),
        (
            "{ trace:rootService = \"x\" }",
            "{ rootServiceName = \"x\" }",
        ),
        ("{ (((.a))) = ((1)) }", "{ .a = 1 }"),
        ("{ .\"x y\" = 1h30m }", "{ .\"x y\" = 90m }"),
        ("{ .\"5xx\" = 1 }", "{ .\"5xx\" = 1 }"),
        ("{ parent.\"span.x\" = 1 }", "{ parent.\"span.x\" = 1 }"),
        ("{ .a = (1 + 2) * 3 }", "{ .a = (1 + 2) * 3 }"),
        ("{ .a = 1 - (2 - 3) }", "{ .a = 1 - (2 - 3) }"),
        ("{ .a = (2 ^ 3) ^ 4 }", "{ .a = (2 ^ 3) ^ 4 }"),
        ("{ .a = 2 ^ (3 ^ 4) }", "{ .a = 2 ^ 3 ^ 4 }"),
        ("{ .a = 1.0 }", "{ .a = 1.0 }"),
        ("{ .a = .5 }", "{ .a = 0.5 }"),
        ("({ .a })", "{ .a }"),
        ("({ .a } | count() > 1)", "({ .a } | count() > 1)"),
        (
            "{ .a } | quantile_over_time(duration, 1, .5)",
            "{ .a } | quantile_over_time(duration, 1.0, 0.5)",
        ),
        ("{ .a } | count() > -1", "{ .a } | count() > -1"),
        ("{ .a = maxInt }", "{ .a = 9223372036854775807 }"),
        ("{ .a = 1d }", "{ .a = 24h }"),
        ("{ .a = 0s }", "{ .a = 0s }"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            must_parse(input).to_string(),
            expected,
            "printing {input:?}"
        );
    }
}

#[test]
fn field_precedence_follows_tempo() {
    use AttributeScope::None as Unscoped;
    let a = || attribute(Unscoped, "a");
    let b = || attribute(Unscoped, "b");
    // `&&` and `||` share one level and group left to right.
    assert_eq!(
        filter_expr("{ .a || .b && .a }"),
        binary(BinaryOp::And, binary(BinaryOp::Or, a(), b()), a())
    );
    // Comparison binds tighter than `&&`.
    assert_eq!(
        filter_expr("{ .a = 1 && .b = 2 }"),
        binary(
            BinaryOp::And,
            binary(BinaryOp::Eq, a(), int(1)),
            binary(BinaryOp::Eq, b(), int(2))
        )
    );
    // Arithmetic binds tighter than comparison; `*` tighter than `+`.
    assert_eq!(
        filter_expr("{ .a > 1 + 2 * 3 }"),
        binary(
            BinaryOp::Gt,
            a(),
            binary(BinaryOp::Add, int(1), binary(BinaryOp::Mul, int(2), int(3)))
        )
    );
    // `^` is right-associative.
    assert_eq!(
        filter_expr("{ .a = 2 ^ 3 ^ 4 }"),
        binary(
            BinaryOp::Eq,
            a(),
            binary(BinaryOp::Pow, int(2), binary(BinaryOp::Pow, int(3), int(4)))
        )
    );
    // `!` takes a multiplicative operand but not a comparison.
    assert_eq!(
        filter_expr("{ !.a = .b }"),
        binary(
            BinaryOp::Eq,
            FieldExpr::Unary {
                op: UnaryOp::Not,
                operand: Box::new(a())
            },
            b()
        )
    );
    assert_eq!(
        filter_expr("{ -.a * .b }"),
        FieldExpr::Unary {
            op: UnaryOp::Neg,
            operand: Box::new(binary(BinaryOp::Mul, a(), b()))
        }
    );
    // Attribute names run until an operator character or whitespace.
    assert_eq!(
        filter_expr("{ resource.k8s.pod-name=1 }"),
        binary(
            BinaryOp::Eq,
            attribute(AttributeScope::Resource, "k8s.pod-name"),
            int(1)
        )
    );
}

#[test]
fn spanset_precedence_follows_tempo() {
    let parsed = must_parse("{ .a } && { .b } >> { .c } || { .d }");
    let [Stage::Spanset(expr)] = parsed.pipeline.stages.as_slice() else {
        panic!("unexpected stages: {parsed:?}");
    };
    // ((a && (b >> c)) || d)
    let SpansetExpr::Binary { op, lhs, .. } = expr else {
        panic!("not binary: {expr:?}");
    };
    assert_eq!(*op, SpansetOp::Union);
    let SpansetExpr::Binary { op, rhs, .. } = lhs.as_ref() else {
        panic!("not binary: {lhs:?}");
    };
    assert_eq!(*op, SpansetOp::And);
    assert!(matches!(
        rhs.as_ref(),
        SpansetExpr::Binary {
            op: SpansetOp::Descendant,
            ..
        }
    ));
}

#[test]
fn literals_and_intrinsics() {
    let cases: &[(&str, FieldExpr)] = &[
        (
            "{ 150ms }",
            FieldExpr::Literal(Literal::Duration { nanos: 150_000_000 }),
        ),
        (
            "{ 1.5s }",
            FieldExpr::Literal(Literal::Duration {
                nanos: 1_500_000_000,
            }),
        ),
        (
            "{ 10µs }",
            FieldExpr::Literal(Literal::Duration { nanos: 10_000 }),
        ),
        (
            "{ 10us }",
            FieldExpr::Literal(Literal::Duration { nanos: 10_000 }),
        ),
        (
            "{ 100ns }",
            FieldExpr::Literal(Literal::Duration { nanos: 100 }),
        ),
        (
            "{ 1m }",
            FieldExpr::Literal(Literal::Duration {
                nanos: 60_000_000_000,
            }),
        ),
        (
            "{ 1h }",
            FieldExpr::Literal(Literal::Duration {
                nanos: 3_600_000_000_000,
            }),
        ),
        ("{ 2.5 }", FieldExpr::Literal(Literal::Float(2.5))),
        ("{ 1e3 }", FieldExpr::Literal(Literal::Float(1000.0))),
        (
            "{ \"a\\u00e9\\x41\\101\" }",
            FieldExpr::Literal(Literal::String("aéAA".into())),
        ),
        (
            "{ `a\\d` }",
            FieldExpr::Literal(Literal::String("a\\d".into())),
        ),
        (
            "{ error }",
            FieldExpr::Literal(Literal::Status(Status::Error)),
        ),
        (
            "{ producer }",
            FieldExpr::Literal(Literal::Kind(SpanKind::Producer)),
        ),
        ("{ minInt }", FieldExpr::Literal(Literal::Int(i64::MIN))),
        (
            "{ span:duration }",
            FieldExpr::Field(Field::Intrinsic(Intrinsic::Duration)),
        ),
        (
            "{ trace:duration }",
            FieldExpr::Field(Field::Intrinsic(Intrinsic::TraceDuration)),
        ),
        (
            "{ traceDuration }",
            FieldExpr::Field(Field::Intrinsic(Intrinsic::TraceDuration)),
        ),
        (
            "{ link:spanID }",
            FieldExpr::Field(Field::Intrinsic(Intrinsic::LinkSpanId)),
        ),
        (
            "{ span.\"a \\\"b\\\\\" }",
            attribute(AttributeScope::Span, "a \"b\\"),
        ),
        ("{ .\"x\" }", attribute(AttributeScope::None, "x")),
        (
            "{ instrumentation.x }",
            attribute(AttributeScope::Instrumentation, "x"),
        ),
        (
            "{ parent.resource.x }",
            FieldExpr::Field(Field::Attribute(Attribute {
                scope: AttributeScope::Resource,
                parent: true,
                name: "x".into(),
            })),
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(&filter_expr(query), expected, "{query:?}");
    }
    // Every intrinsic's canonical name reads back as itself.
    for intrinsic in Intrinsic::ALL {
        let query = format!("{{ {intrinsic} }}");
        assert_eq!(
            filter_expr(&query),
            FieldExpr::Field(Field::Intrinsic(intrinsic)),
            "{query}"
        );
    }
}

#[test]
fn pipelines_and_metrics_structure() {
    let parsed = must_parse("({ .a } | count() > 1) && { .b } | by(.c) | select(.d, .e)");
    assert_eq!(parsed.pipeline.stages.len(), 3);
    let Stage::Spanset(SpansetExpr::Binary { lhs, .. }) = &parsed.pipeline.stages[0] else {
        panic!("unexpected: {parsed:?}");
    };
    assert!(matches!(lhs.as_ref(), SpansetExpr::Pipeline(p) if p.stages.len() == 2));
    assert!(matches!(&parsed.pipeline.stages[2], Stage::Select(fields) if fields.len() == 2));

    let parsed = must_parse("({ .a } | count()) > 2");
    let [Stage::ScalarFilter(filter)] = parsed.pipeline.stages.as_slice() else {
        panic!("unexpected: {parsed:?}");
    };
    assert!(matches!(filter.lhs, ScalarExpr::Pipeline { .. }));

    let parsed = must_parse("{ } | quantile_over_time(duration, .99, .5) by (span.a) | topk(5)");
    assert_eq!(
        parsed.metrics,
        Some(MetricsQuery {
            function: MetricsFunction::QuantileOverTime {
                field: Field::Intrinsic(Intrinsic::Duration),
                quantiles: vec![0.99, 0.5],
            },
            by: vec![Field::Attribute(Attribute {
                scope: AttributeScope::Span,
                parent: false,
                name: "a".into(),
            })],
            threshold: None,
            second_stage: Some(SecondStage::TopK(5)),
            second_threshold: None,
        })
    );
    let filtered = must_parse("{ } | rate() by (name) >= 5.5 | topk(5) < -1");
    let metrics = filtered.metrics.clone().expect("a metrics query");
    assert_eq!(
        (metrics.threshold, metrics.second_threshold),
        (
            Some(Threshold {
                op: ComparisonOp::Gte,
                value: 5.5
            }),
            Some(Threshold {
                op: ComparisonOp::Lt,
                value: -1.0
            })
        )
    );
    assert_eq!(
        filtered.to_string(),
        "{} | rate() by (name) >= 5.5 | topk(5) < -1.0"
    );
}

/// Malformed queries with the exact error expected: (query, position, line, column,
/// expected, found).
const MALFORMED: &[(&str, usize, usize, usize, &str, &str)] = &[
    ("", 0, 1, 1, EXPECTED_STAGE, "end of input"),
    (
        "{ .a = }",
        7,
        1,
        8,
        "an attribute, intrinsic or literal",
        "\"}\"",
    ),
    ("{ .a = 1", 8, 1, 9, "an operator or `}`", "end of input"),
    (
        "{ .a } | count() }",
        17,
        1,
        18,
        "a comparison operator",
        "\"}\"",
    ),
    (
        "{ .a } | count()",
        16,
        1,
        17,
        "a comparison operator",
        "end of input",
    ),
    (
        "{ .a } && count() > 1",
        10,
        1,
        11,
        EXPECTED_SPANSET,
        "\"count\"",
    ),
    (
        "{ .a } | count() > { .b }",
        19,
        1,
        20,
        EXPECTED_SCALAR,
        "\"{\"",
    ),
    ("{ span. = 1 }", 7, 1, 8, "an attribute name", "\" \""),
    (
        "{ span:foo = 1 }",
        2,
        1,
        3,
        "an intrinsic of the `span:` scope (duration, name, status, statusMessage, kind, childCount, id, parentID)",
        "\"span:foo\"",
    ),
    (
        "{ .a = \"abc }",
        13,
        1,
        14,
        "`\"` to close the string started at byte 7",
        "end of input",
    ),
    (
        "{ .a = 5xs }",
        7,
        1,
        8,
        "a duration unit (ns, us, µs, ms, s, m, h, d, w or y)",
        "\"5xs\"",
    ),
    (
        "{ .a = \"\\q\" }",
        8,
        1,
        9,
        "a valid escape sequence (\\n, \\t, \\\", \\\\, \\xHH, \\uHHHH, ...)",
        "\"\\\\q\"",
    ),
    (
        "{ .a & .b }",
        5,
        1,
        6,
        "`&&` or a union structural operator (`&>>`, `&>`, `&<<`, `&<`, `&~`)",
        "\"&\"",
    ),
    (
        "{ .a }\n| by(.b\n",
        15,
        3,
        1,
        "an operator, `,` or `)`",
        "end of input",
    ),
    (
        "{ .a } | rate() by (.b) | count()",
        26,
        1,
        27,
        "`topk` or `bottomk`",
        "\"count\"",
    ),
    (
        "{ .a } | by()",
        12,
        1,
        13,
        "an attribute, intrinsic or literal",
        "\")\"",
    ),
    (
        "{ .a } | coalesce(.b)",
        18,
        1,
        19,
        "`)` (coalesce takes no arguments)",
        "\".b\"",
    ),
    (
        "{ .a } { .b }",
        7,
        1,
        8,
        "a spanset operator, `|` or end of query",
        "\"{\"",
    ),
    (
        "({ .a } | count() + 1)",
        21,
        1,
        22,
        "a comparison operator",
        "\")\"",
    ),
    (
        "({ .a }",
        7,
        1,
        8,
        "a spanset operator, `|` or `)`",
        "end of input",
    ),
    (
        "{ .a = 99999999999999999999 }",
        7,
        1,
        8,
        "an integer no larger than 9223372036854775807",
        "\"99999999999999999999\"",
    ),
    (
        "rate()",
        0,
        1,
        1,
        "a spanset filter before the metrics function",
        "\"rate\"",
    ),
    (
        "{ .a } | quantile_over_time(duration) ",
        36,
        1,
        37,
        "`,` and the quantiles",
        "\")\"",
    ),
    (
        "{ .a } | avg(duration) > 1s && { .b }",
        28,
        1,
        29,
        "`|` or end of query",
        "\"&&\"",
    ),
    (
        "{ .a } | min_over_time(1)",
        23,
        1,
        24,
        "an attribute or intrinsic",
        "\"1\"",
    ),
    (
        "{ é.x = 1 }",
        2,
        1,
        3,
        "an attribute, intrinsic or literal",
        "\"é\"",
    ),
    ("{ .a = 1 }\n  $", 13, 2, 3, "a TraceQL token", "\"$\""),
];

#[test]
fn malformed_queries_report_position_and_expectation() {
    assert!(MALFORMED.len() >= 15);
    for &(query, position, line, column, expected, found) in MALFORMED {
        let error = match parse(query) {
            Ok(parsed) => panic!("{query:?} parsed as {parsed:?}"),
            Err(error) => error,
        };
        assert_eq!(
            error,
            ParseError {
                position,
                line,
                column,
                expected: expected.to_string(),
                found: found.to_string(),
            },
            "{query:?}: {error}"
        );
    }
}

#[test]
fn error_display() {
    let error = parse("{ .a } | count() }").err();
    assert_eq!(
        error.map(|e| e.to_string()).as_deref(),
        Some("parse error at line 1, column 18: expected a comparison operator, found \"}\"")
    );
}

#[test]
fn nesting_is_limited() {
    // Exactly the limit is accepted, in field expressions, pipelines and scalar pipelines;
    // the braces of a non-empty filter count as a level.
    let deepest = [
        format!(
            "{{ {}.a{} }}",
            "(".repeat(MAX_NESTING - 1),
            ")".repeat(MAX_NESTING - 1)
        ),
        format!(
            "{}{{ .a }}{}",
            "(".repeat(MAX_NESTING - 1),
            ")".repeat(MAX_NESTING - 1)
        ),
        format!(
            "{}{{}}{}",
            "{} && (".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        ),
        format!("{{ .a = {}1 }}", "2 ^ ".repeat(MAX_NESTING - 1)),
        format!(
            "{{}} | {}1{} > 1",
            "count() + (".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        ),
    ];
    for query in &deepest {
        let parsed = must_parse(query);
        // Printing and comparing the deepest trees works on a test thread's stack.
        assert_eq!(must_parse(&parsed.to_string()), parsed);
    }
    // Beyond it is an error, not a stack overflow.
    for query in [
        format!(
            "{{ {}.a{} }}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        ),
        format!("{{ {}.a{} }}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("{}{{ .a }}{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("{{ {}.a }}", "!".repeat(100_000)),
        format!("{{ {}.a }}", "-".repeat(100_000)),
        format!("{{ .a = {}1 }}", "2 ^ ".repeat(100_000)),
        format!("{}{{}}", "{} && (".repeat(100_000)),
        format!("{{}} | {}1", "count() + (".repeat(100_000)),
    ] {
        let error = parse(&query).err();
        assert!(
            error
                .as_ref()
                .is_some_and(|e| e.expected.starts_with("at most 256 levels")),
            "{error:?}"
        );
    }
    // Long flat chains are limited by the tree depth.
    let long = format!("{{ .a = 1{} }}", " || .a = 1".repeat(MAX_TREE_DEPTH));
    let error = parse(&long).err();
    assert!(
        error
            .as_ref()
            .is_some_and(|e| e.expected.contains("operators deep")),
        "{error:?}"
    );
    let fine = format!(
        "{{ .a = 1{} }}",
        " || .a = 1".repeat(MAX_TREE_DEPTH / 2 - 1)
    );
    let parsed = must_parse(&fine);
    assert_eq!(must_parse(&parsed.to_string()), parsed);
}

/// Metrics arithmetic is bounded in depth and in the scans it starts, so a long request can
/// neither exhaust the stack nor start thousands of scans.
#[test]
fn metrics_arithmetic_is_bounded() {
    let deep = format!("({{ }} | rate()){}", " * 2".repeat(30_000));
    let error = parse(&deep).err();
    assert!(
        error
            .as_ref()
            .is_some_and(|e| e.expected.contains("operators deep")),
        "{error:?}"
    );
    let fine = format!("({{ }} | rate()){}", " * 2".repeat(MAX_MATH_DEPTH));
    let parsed = must_parse(&fine);
    assert_eq!(must_parse(&parsed.to_string()), parsed);

    let wide = vec!["({ } | rate())"; MAX_MATH_QUERIES + 1].join(" + ");
    let error = parse(&wide).err();
    assert!(
        error.as_ref().is_some_and(|e| e
            .expected
            .contains(&format!("{MAX_MATH_QUERIES} metrics queries"))),
        "{error:?}"
    );
    must_parse(&vec!["({ } | rate())"; MAX_MATH_QUERIES].join(" + "));
}

// -------------------------------------------------------------------------------------------
// Randomized round trip
// -------------------------------------------------------------------------------------------

/// A small linear congruential generator, so the test needs no dependencies.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

const NAMES: &[&str] = &[
    "a",
    "http.method",
    "k8s.pod-name",
    "with space",
    "quote\"d",
    "back\\slash",
    "5xx",
    "span.x",
    "resource.y",
    "a/b:c",
    "ünï",
    "x=y",
    "(paren)",
    "tab\there",
];

const STRINGS: &[&str] = &[
    "",
    "GET",
    "a\"b",
    "c\\d",
    "line\nbreak",
    "\u{1}\u{7f}\u{85}",
    "µ",
    "`tick`",
];

fn random_attribute(rng: &mut Lcg) -> Attribute {
    let parent = rng.chance(15);
    let scope = if parent {
        rng.pick(&[
            AttributeScope::None,
            AttributeScope::Span,
            AttributeScope::Resource,
        ])
    } else {
        rng.pick(&AttributeScope::ALL)
    };
    Attribute {
        scope,
        parent,
        name: rng.pick(NAMES).to_string(),
    }
}

fn random_field(rng: &mut Lcg) -> Field {
    if rng.chance(40) {
        Field::Intrinsic(rng.pick(&Intrinsic::ALL))
    } else {
        Field::Attribute(random_attribute(rng))
    }
}

fn random_float(rng: &mut Lcg) -> f64 {
    match rng.below(4) {
        0 => rng.pick(&[0.0, 0.5, 0.99, 1.0, 1e-7, 123456.789, 1e21]),
        1 => rng.next() as f64 / 1024.0,
        _ => (rng.next() % 10_000) as f64 / 100.0,
    }
}

/// A literal as it can appear in a field expression (never negative, except `minInt`).
fn random_field_literal(rng: &mut Lcg) -> Literal {
    match rng.below(10) {
        0 => Literal::String(rng.pick(STRINGS).to_string()),
        1 => {
            let random = (rng.next() % 100_000) as i64;
            Literal::Int(rng.pick(&[0, 1, 42, i64::MAX, i64::MIN, random]))
        }
        2 => Literal::Float(random_float(rng)),
        3 => Literal::Bool(rng.chance(50)),
        4 => Literal::Nil,
        5 => {
            let random = (rng.next() as i64) << 20;
            Literal::Duration {
                nanos: rng.pick(&[
                    0,
                    1,
                    1_000,
                    1_500_000_000,
                    3_600_000_000_000,
                    i64::MAX,
                    random,
                ]),
            }
        }
        6 => Literal::Status(rng.pick(&Status::ALL)),
        7 => Literal::Kind(rng.pick(&SpanKind::ALL)),
        _ => Literal::Int((rng.next() % 1000) as i64),
    }
}

fn random_field_expr(rng: &mut Lcg, depth: usize) -> FieldExpr {
    let choice = if depth == 0 {
        rng.below(2)
    } else {
        rng.below(6)
    };
    match choice {
        0 => FieldExpr::Literal(random_field_literal(rng)),
        1 => FieldExpr::Field(random_field(rng)),
        2 => FieldExpr::Unary {
            op: rng.pick(&[UnaryOp::Not, UnaryOp::Neg]),
            operand: Box::new(random_field_expr(rng, depth - 1)),
        },
        _ => FieldExpr::Binary {
            op: rng.pick(&BinaryOp::ALL),
            lhs: Box::new(random_field_expr(rng, depth - 1)),
            rhs: Box::new(random_field_expr(rng, depth - 1)),
        },
    }
}

fn random_aggregate(rng: &mut Lcg) -> Aggregate {
    let field = random_field_expr(rng, 1);
    match rng.below(5) {
        0 => Aggregate::Count,
        1 => Aggregate::Avg(field),
        2 => Aggregate::Min(field),
        3 => Aggregate::Max(field),
        _ => Aggregate::Sum(field),
    }
}

/// A literal as it can appear in a scalar expression: a number or duration of either sign.
fn random_scalar_literal(rng: &mut Lcg) -> Literal {
    let negative = rng.chance(30);
    match rng.below(3) {
        0 => {
            let random = (rng.next() % 1000) as i64;
            let value = rng.pick(&[0, 7, i64::MAX, random]);
            Literal::Int(if negative { -value } else { value })
        }
        1 => {
            let value = random_float(rng);
            Literal::Float(if negative { -value } else { value })
        }
        _ => {
            let random = (rng.next() as i64) << 10;
            let nanos = rng.pick(&[0, 250_000, 60_000_000_000, random]);
            Literal::Duration {
                nanos: if negative { -nanos } else { nanos },
            }
        }
    }
}

fn random_scalar(rng: &mut Lcg, depth: usize) -> ScalarExpr {
    let choice = if depth == 0 {
        rng.below(2)
    } else {
        rng.below(5)
    };
    match choice {
        0 => ScalarExpr::Literal(random_scalar_literal(rng)),
        1 => ScalarExpr::Aggregate(random_aggregate(rng)),
        2 => ScalarExpr::Pipeline {
            pipeline: Box::new(random_pipeline(rng, depth - 1)),
            aggregate: Box::new(random_aggregate(rng)),
        },
        _ => ScalarExpr::Binary {
            op: rng.pick(&ArithmeticOp::ALL),
            lhs: Box::new(random_scalar(rng, depth - 1)),
            rhs: Box::new(random_scalar(rng, depth - 1)),
        },
    }
}

fn random_spanset(rng: &mut Lcg, depth: usize) -> SpansetExpr {
    let choice = if depth == 0 { 0 } else { rng.below(5) };
    match choice {
        0 | 1 => SpansetExpr::Filter(SpansetFilter {
            expr: if rng.chance(15) {
                None
            } else {
                Some(random_field_expr(rng, depth.min(3)))
            },
        }),
        2 => {
            // A parenthesized pipeline is never a lone spanset stage (that is just grouping).
            let mut pipeline = random_pipeline(rng, depth - 1);
            if let [Stage::Spanset(_)] = pipeline.stages.as_slice() {
                pipeline.stages.push(Stage::Coalesce);
            }
            SpansetExpr::Pipeline(Box::new(pipeline))
        }
        _ => SpansetExpr::Binary {
            op: rng.pick(&SpansetOp::ALL),
            lhs: Box::new(random_spanset(rng, depth - 1)),
            rhs: Box::new(random_spanset(rng, depth - 1)),
        },
    }
}

fn random_fields(rng: &mut Lcg) -> Vec<FieldExpr> {
    (0..1 + rng.below(3))
        .map(|_| random_field_expr(rng, 1))
        .collect()
}

fn random_stage(rng: &mut Lcg, depth: usize) -> Stage {
    match rng.below(8) {
        0 => Stage::GroupBy(random_fields(rng)),
        1 => Stage::Select(random_fields(rng)),
        2 => Stage::Coalesce,
        3 | 4 => Stage::ScalarFilter(ScalarFilter {
            op: rng.pick(&ComparisonOp::ALL),
            lhs: random_scalar(rng, depth),
            rhs: random_scalar(rng, depth),
        }),
        _ => Stage::Spanset(random_spanset(rng, depth)),
    }
}

fn random_pipeline(rng: &mut Lcg, depth: usize) -> Pipeline {
    Pipeline {
        stages: (0..1 + rng.below(3))
            .map(|_| random_stage(rng, depth))
            .collect(),
    }
}

fn random_metrics(rng: &mut Lcg) -> MetricsQuery {
    let field = random_field(rng);
    let function = match rng.below(8) {
        0 => MetricsFunction::Rate,
        1 => MetricsFunction::CountOverTime,
        2 => MetricsFunction::MinOverTime(field),
        3 => MetricsFunction::MaxOverTime(field),
        4 => MetricsFunction::AvgOverTime(field),
        5 => MetricsFunction::SumOverTime(field),
        6 => MetricsFunction::QuantileOverTime {
            field,
            quantiles: (0..1 + rng.below(3)).map(|_| random_float(rng)).collect(),
        },
        _ => MetricsFunction::HistogramOverTime(field),
    };
    MetricsQuery {
        function,
        by: (0..rng.below(3)).map(|_| random_field(rng)).collect(),
        threshold: rng.chance(30).then(|| Threshold {
            op: rng.pick(&ComparisonOp::ALL),
            value: random_float(rng),
        }),
        second_stage: match rng.below(3) {
            0 => Some(SecondStage::TopK(1 + rng.next() % 100)),
            1 => Some(SecondStage::BottomK(1 + rng.next() % 100)),
            _ => None,
        },
        second_threshold: None,
    }
}

fn random_query(rng: &mut Lcg) -> Query {
    let depth = rng.below(4);
    Query {
        pipeline: random_pipeline(rng, depth),
        metrics: if rng.chance(20) {
            Some(random_metrics(rng))
        } else {
            None
        },
        hints: if rng.chance(10) {
            vec![Hint {
                name: "most_recent".into(),
                value: random_field_literal(rng),
            }]
        } else {
            Vec::new()
        },
        math: None,
    }
}

#[test]
fn random_trees_round_trip() {
    let mut rng = Lcg(0x5eed_1234_abcd_0001);
    for case in 0..2000 {
        let query = random_query(&mut rng);
        let printed = query.to_string();
        match parse(&printed) {
            Ok(reparsed) => assert_eq!(
                reparsed, query,
                "case {case}: {printed:?} parsed to a different tree"
            ),
            Err(error) => panic!("case {case}: {printed:?} does not parse: {error}\n{query:?}"),
        }
    }
}

const EXPECTED_STAGE: &str =
    "a pipeline stage (`{ ... }`, `(`, an aggregate, `by`, `select` or `coalesce`)";
const EXPECTED_SPANSET: &str = "a spanset filter `{ ... }` or a parenthesized pipeline";
const EXPECTED_SCALAR: &str = "a number, duration, aggregate or parenthesized scalar pipeline";

fn window() -> crate::traces::Window {
    crate::traces::Window {
        start_ns: 0,
        end_ns: 1_000_000_000,
    }
}

/// Queries Tempo refuses, with what the 400 must say.
const REFUSED: &[(&str, &str)] = &[
    ("{ } | sum(3) = 2", "sum(3) does not refer to the span"),
    (
        "{ } | sum(3) = min(14)",
        "sum(3) does not refer to the span",
    ),
    ("sum(3) = 2", "sum(3) does not refer to the span"),
    (
        "min(2h) < max(duration)",
        "min(2h) does not refer to the span",
    ),
    (
        "{ } | max(1h + 2h) > 1",
        "max(1h + 2h) does not refer to the span",
    ),
    ("3 = 2", "3 = 2 compares no aggregate"),
    (r#"{ .foo = "a" } | 3 > 2"#, "3 > 2 compares no aggregate"),
    ("coalesce() | { true }", "cannot start with coalesce()"),
    (
        "({ } | coalesce() | count() > 1) && (coalesce())",
        "cannot start with coalesce()",
    ),
    (
        "{ resource.service.name = nil }",
        "resource.service.name is never nil",
    ),
    (
        "{ nil = resource.service.name }",
        "resource.service.name is never nil",
    ),
    ("{ span:status = nil }", "intrinsics are never nil"),
    ("{ nil = name }", "intrinsics are never nil"),
    ("{ true } | by(1)", "by(1) does not refer to the span"),
    (
        r#"{ true } | by("foo")"#,
        r#"by("foo") does not refer to the span"#,
    ),
];

#[test]
fn queries_tempo_refuses_are_bad_requests_that_say_why() {
    for (query, why) in REFUSED {
        let parsed = must_parse(query);
        match compile(&parsed, window()) {
            Err(crate::Error::BadRequest(message)) => {
                assert!(message.contains(why), "{query}: {message}");
            }
            other => panic!("{query}: expected a bad request, got {other:?}"),
        }
    }
}

/// Metrics arithmetic from Tempo's documentation: parses and prints back to the same tree.
#[test]
fn metrics_arithmetic_parses_and_round_trips() {
    for query in [
        "({} | rate()) * 100",
        "({} | rate()) + ({} | count_over_time())",
        "({status=error} | rate()) / ({} | rate())",
        "100 * ({status=error} | count_over_time()) / ({} | count_over_time())",
        "({} | rate()) * (-100)",
        "100 + ({} | rate())",
        "({} | rate()) + 1 + 2",
        "3 * 2 - ({} | rate())",
        "({} | rate() > 6) * 100 > 5",
        "({} | rate()) * 10 + 5 > 50 | topk(1)",
        "({} | rate()) + ({} | rate()) | topk(5) > 10",
        "({} | count_over_time() by(.service.name)) * 100",
        "({ } | rate() by (resource.service.name)) / ({ } | rate())",
        "({} | avg_over_time(span.http.response.body.size)) / (1024 * 1024)",
    ] {
        let parsed = must_parse(query);
        assert!(parsed.math.is_some(), "{query}");
        let printed = parsed.to_string();
        assert_eq!(must_parse(&printed), parsed, "{query} printed as {printed}");
    }
    // Numbers alone fold, integers as integers.
    let folded = must_parse("({} | rate()) * (1 / 2 + 0.5)");
    assert_eq!(folded.to_string(), "({} | rate()) * 0.5");
    let refused = [
        "2 * 3",
        "({} | rate()) % 10",
        "({} | rate()) * 10s",
        "{} | rate() + 5",
        "({} | rate()) + ({ } | count() > 1)",
        "({} | rate()) / (1 / 0)",
    ];
    for query in refused {
        assert!(parse(query).is_err(), "{query} parsed");
    }
    let search = must_parse("({} | rate()) * 100");
    assert!(matches!(
        compile(&search, window()),
        Err(crate::Error::BadRequest(_))
    ));
}

#[test]
fn queries_tempo_accepts_compile() {
    for query in [
        "{ nil = nil }",
        "{ nil != nil }",
        "{ name != nil }",
        "{ resource.service.name != nil }",
        "{ span.foo = nil }",
        "count() = 1 | { true }",
        "by(.a) | { true }",
        "select(.a)",
        "{ true } | by(1 + .a) | coalesce()",
        "{ true } | max((1 + .a) * 2) = 1",
        "{ } | count() % 0 = 1",
        "{ duration % 0 = 1 }",
    ] {
        let parsed = must_parse(query);
        if let Err(e) = compile(&parsed, window()) {
            panic!("{query}: {e}");
        }
    }
}

/// Structural queries of the size people write compile within the SQL limit, the chunks of
/// trace ids they run with counted.
#[test]
fn practical_structural_queries_compile() {
    let window = crate::traces::Window {
        start_ns: 0,
        end_ns: 1_000_000_000,
    };
    for q in [
        r#"{ resource.service.name = "a" } >> { resource.service.name = "b" } >> { status = error } >> { kind = client } >> { name = "x" }"#,
        r#"({ .a = 1 } >> { .b = 2 }) && ({ .c = 3 } << { .d = 4 }) && ({ .e = 5 } ~ { .f = 6 })"#,
        r#"{ rootName = "x" } >> ({ .a = 1 } | count() > 2) >> { childCount > 1 } !> { event:name = "e" }"#,
    ] {
        let query = must_parse(q);
        let compiled = compile(&query, window);
        assert!(compiled.is_ok(), "{q}: {:?}", compiled.err());
    }
    // Where the limit falls for a chain of `>>` (docs/traceql.md says so).
    let chain = |n: usize| vec!["{ .a = 1 }"; n + 1].join(" >> ");
    assert!(compile(&must_parse(&chain(9)), window).is_ok());
    assert!(compile(&must_parse(&chain(10)), window).is_err());
}

/// `compare()` parses with its optional top N and time range, prints back the same, and its
/// arguments are checked.
#[test]
fn compare_parses_and_checks_its_arguments() {
    let parsed = must_parse("{ } | compare({ status = error })");
    assert_eq!(parsed.to_string(), "{} | compare({ status = error }, 10)");
    assert_eq!(must_parse(&parsed.to_string()), parsed);
    let ranged = must_parse("{ } | compare({ duration > 1s }, 5, 1000, 2000)");
    assert_eq!(
        ranged.to_string(),
        "{} | compare({ duration > 1s }, 5, 1000, 2000)"
    );
    for bad in [
        "{ } | compare(1)",
        "{ } | compare({ }, 0)",
        "{ } | compare({ }, 1001)",
        "{ } | compare({ }, 10, 5)",
        "{ } | compare({ }, 10, 5, 3)",
        "{ } | compare({ }, 10, 1, 2, 3)",
    ] {
        assert!(parse(bad).is_err(), "{bad} parses");
    }
}
