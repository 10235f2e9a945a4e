//! The syntax tree of a TraceQL query.
//!
//! The tree keeps what the query says, not how it was spelled: parentheses that only group
//! are dropped, aliases of an intrinsic (`name` and `span:name`) become the same
//! [`Intrinsic`], and `{}` is a [`SpansetFilter`] without an expression. Printing a tree with
//! [`Display`](std::fmt::Display) gives the canonical spelling, which parses back to the same
//! tree.
//!
//! Invariants that the parser guarantees (a hand-built tree that breaks them may not survive a
//! print and re-parse unchanged):
//! - every [`Pipeline`] has at least one stage, and `by(...)`, `select(...)` and metrics
//!   `by (...)` lists are not empty;
//! - a [`SpansetExpr::Pipeline`] never holds a single [`Stage::Spanset`] stage (that is just a
//!   parenthesized spanset expression);
//! - literals inside field expressions are not negative (a minus sign is a
//!   [`UnaryOp::Neg`]), except [`i64::MIN`], spelled `minInt`; literals in scalar
//!   expressions ([`ScalarExpr::Literal`]) are numbers or durations and may be negative;
//! - attribute names are not empty, and `parent` only combines with the unscoped, `span` and
//!   `resource` scopes.

/// A complete TraceQL query: a pipeline, optionally ending in a metrics function, optionally
/// followed by query hints.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The spanset pipeline, e.g. `{ status = error } | by(resource.service.name) | count() > 1`.
    pub pipeline: Pipeline,
    /// A metrics function ending the query, e.g. `| rate() by (resource.service.name)`.
    pub metrics: Option<MetricsQuery>,
    /// Query hints from a trailing `with (name = value, ...)`.
    pub hints: Vec<Hint>,
    /// Arithmetic of metrics queries, e.g. `({ status = error } | rate()) / ({ } | rate())`.
    /// When set, the query is this arithmetic: `pipeline` is `{}` and `metrics` is `None`.
    pub math: Option<Box<MetricsArithmetic>>,
}

/// Metrics queries combined with `+ - * /` and numbers, then optionally filtered and ranked.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsArithmetic {
    /// The expression.
    pub expr: MetricsMath,
    /// A comparison the result's points must pass.
    pub threshold: Option<Threshold>,
    /// A second stage such as `| topk(10)`.
    pub second_stage: Option<SecondStage>,
    /// A comparison the points kept by the second stage must pass.
    pub second_threshold: Option<Threshold>,
}

/// An arithmetic expression over metrics queries. Operations between numbers alone are
/// folded when parsing (integers keep integer arithmetic, so `1 / 2` is `0`), so a
/// [`MetricsMath::Binary`] always has a query on at least one side.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsMath {
    /// A parenthesized metrics query, e.g. `({ } | rate() by (name))`; its `math` is `None`
    /// and its `metrics` is set.
    Query(Box<Query>),
    /// A number: an [`Literal::Int`] or a [`Literal::Float`].
    Number(Literal),
    /// Two expressions joined by `+`, `-`, `*` or `/`.
    Binary {
        /// The operator.
        op: ArithmeticOp,
        /// The left operand.
        lhs: Box<MetricsMath>,
        /// The right operand.
        rhs: Box<MetricsMath>,
    },
}

impl MetricsMath {
    /// Operators on the longest path from the top to a leaf.
    pub fn depth(&self) -> usize {
        match self {
            Self::Query(_) | Self::Number(_) => 0,
            Self::Binary { lhs, rhs, .. } => 1 + lhs.depth().max(rhs.depth()),
        }
    }

    /// The metrics queries among the leaves.
    pub fn queries(&self) -> usize {
        match self {
            Self::Query(_) => 1,
            Self::Number(_) => 0,
            Self::Binary { lhs, rhs, .. } => lhs.queries() + rhs.queries(),
        }
    }
}

/// A query hint: `name = value` inside `with (...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    /// The hint's name, e.g. `most_recent`.
    pub name: String,
    /// The hint's value, e.g. `true`.
    pub value: Literal,
}

/// Stages separated by `|`; each stage filters or transforms the spansets of the one before.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The stages, in order (never empty).
    pub stages: Vec<Stage>,
}

/// One stage of a [`Pipeline`].
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// A spanset expression: filters combined with spanset operators.
    Spanset(SpansetExpr),
    /// A comparison of aggregates, e.g. `count() > 2` or `avg(duration) > 1s`.
    ScalarFilter(ScalarFilter),
    /// `by(field, ...)`: regroups the spans of each spanset by the given values.
    GroupBy(Vec<FieldExpr>),
    /// `select(field, ...)`: asks for more fields of the matching spans.
    Select(Vec<FieldExpr>),
    /// `coalesce()`: merges all spansets of a trace into one.
    Coalesce,
}

/// A spanset expression: spanset filters joined by logical and structural operators.
#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// A spanset filter `{ ... }`.
    Filter(SpansetFilter),
    /// Two spanset expressions joined by a spanset operator, e.g. `{ a } >> { b }`.
    Binary {
        /// The operator.
        op: SpansetOp,
        /// The left operand.
        lhs: Box<SpansetExpr>,
        /// The right operand.
        rhs: Box<SpansetExpr>,
    },
    /// A parenthesized pipeline used as an operand, e.g. `({ a } | count() > 1) && { b }`.
    Pipeline(Box<Pipeline>),
}

/// A spanset filter `{ expression }` selecting the spans for which the expression holds.
#[derive(Debug, Clone, PartialEq)]
pub struct SpansetFilter {
    /// The condition; `None` for `{}`, which matches every span.
    pub expr: Option<FieldExpr>,
}

/// An operator between two spanset expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpansetOp {
    /// `&&`: both sides match in the trace.
    And,
    /// `||`: either side matches.
    Union,
    /// `>`: spans of the right side that are children of spans of the left side.
    Child,
    /// `<`: spans of the right side that are parents of spans of the left side.
    Parent,
    /// `>>`: spans of the right side that are descendants of spans of the left side.
    Descendant,
    /// `<<`: spans of the right side that are ancestors of spans of the left side.
    Ancestor,
    /// `~`: spans of the right side that are siblings of spans of the left side.
    Sibling,
    /// `!>`: not a child.
    NotChild,
    /// `!<`: not a parent.
    NotParent,
    /// `!>>`: not a descendant.
    NotDescendant,
    /// `!<<`: not an ancestor.
    NotAncestor,
    /// `!~`: not a sibling.
    NotSibling,
    /// `&>`: child, returning the spans of both sides.
    UnionChild,
    /// `&<`: parent, returning the spans of both sides.
    UnionParent,
    /// `&>>`: descendant, returning the spans of both sides.
    UnionDescendant,
    /// `&<<`: ancestor, returning the spans of both sides.
    UnionAncestor,
    /// `&~`: sibling, returning the spans of both sides.
    UnionSibling,
}

impl SpansetOp {
    /// Every spanset operator.
    pub const ALL: [SpansetOp; 17] = [
        SpansetOp::And,
        SpansetOp::Union,
        SpansetOp::Child,
        SpansetOp::Parent,
        SpansetOp::Descendant,
        SpansetOp::Ancestor,
        SpansetOp::Sibling,
        SpansetOp::NotChild,
        SpansetOp::NotParent,
        SpansetOp::NotDescendant,
        SpansetOp::NotAncestor,
        SpansetOp::NotSibling,
        SpansetOp::UnionChild,
        SpansetOp::UnionParent,
        SpansetOp::UnionDescendant,
        SpansetOp::UnionAncestor,
        SpansetOp::UnionSibling,
    ];

    /// How the operator is written.
    pub fn symbol(self) -> &'static str {
        match self {
            SpansetOp::And => "&&",
            SpansetOp::Union => "||",
            SpansetOp::Child => ">",
            SpansetOp::Parent => "<",
            SpansetOp::Descendant => ">>",
            SpansetOp::Ancestor => "<<",
            SpansetOp::Sibling => "~",
            SpansetOp::NotChild => "!>",
            SpansetOp::NotParent => "!<",
            SpansetOp::NotDescendant => "!>>",
            SpansetOp::NotAncestor => "!<<",
            SpansetOp::NotSibling => "!~",
            SpansetOp::UnionChild => "&>",
            SpansetOp::UnionParent => "&<",
            SpansetOp::UnionDescendant => "&>>",
            SpansetOp::UnionAncestor => "&<<",
            SpansetOp::UnionSibling => "&~",
        }
    }

    /// Binding strength: `&&` and `||` share the lowest level (as in Tempo, so
    /// `{a} || {b} && {c}` is `({a} || {b}) && {c}`); structural operators bind tighter. All
    /// are left-associative.
    pub fn precedence(self) -> u8 {
        match self {
            SpansetOp::And | SpansetOp::Union => PREC_LOGICAL,
            _ => PREC_COMPARISON,
        }
    }
}

/// A comparison of two scalar expressions: a pipeline stage such as `count() > 2`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarFilter {
    /// The comparison.
    pub op: ComparisonOp,
    /// The left side.
    pub lhs: ScalarExpr,
    /// The right side.
    pub rhs: ScalarExpr,
}

/// A comparison operator of a [`ScalarFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonOp {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

impl ComparisonOp {
    /// Every comparison operator.
    pub const ALL: [ComparisonOp; 6] = [
        ComparisonOp::Eq,
        ComparisonOp::Neq,
        ComparisonOp::Lt,
        ComparisonOp::Lte,
        ComparisonOp::Gt,
        ComparisonOp::Gte,
    ];

    /// How the operator is written.
    pub fn symbol(self) -> &'static str {
        match self {
            ComparisonOp::Eq => "=",
            ComparisonOp::Neq => "!=",
            ComparisonOp::Lt => "<",
            ComparisonOp::Lte => "<=",
            ComparisonOp::Gt => ">",
            ComparisonOp::Gte => ">=",
        }
    }
}

/// An arithmetic expression over aggregates and numbers, one side of a [`ScalarFilter`].
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarExpr {
    /// A number or duration; may be negative (`-5`, `-1.5s`).
    Literal(Literal),
    /// An aggregate over the spanset, e.g. `avg(duration)`.
    Aggregate(Aggregate),
    /// Two scalar expressions joined by an arithmetic operator.
    Binary {
        /// The operator.
        op: ArithmeticOp,
        /// The left operand.
        lhs: Box<ScalarExpr>,
        /// The right operand.
        rhs: Box<ScalarExpr>,
    },
    /// A parenthesized pipeline ending in an aggregate, e.g. `({ status = error } | count())`.
    Pipeline {
        /// The stages before the aggregate (never empty).
        pipeline: Box<Pipeline>,
        /// The final aggregate.
        aggregate: Box<Aggregate>,
    },
}

/// An arithmetic operator between scalar expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithmeticOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^` (right-associative)
    Pow,
}

impl ArithmeticOp {
    /// Every arithmetic operator.
    pub const ALL: [ArithmeticOp; 6] = [
        ArithmeticOp::Add,
        ArithmeticOp::Sub,
        ArithmeticOp::Mul,
        ArithmeticOp::Div,
        ArithmeticOp::Mod,
        ArithmeticOp::Pow,
    ];

    /// How the operator is written.
    pub fn symbol(self) -> &'static str {
        self.as_binary().symbol()
    }

    /// Binding strength, the same as the corresponding [`BinaryOp`].
    pub fn precedence(self) -> u8 {
        self.as_binary().precedence()
    }

    /// The field-expression operator with the same spelling.
    pub fn as_binary(self) -> BinaryOp {
        match self {
            ArithmeticOp::Add => BinaryOp::Add,
            ArithmeticOp::Sub => BinaryOp::Sub,
            ArithmeticOp::Mul => BinaryOp::Mul,
            ArithmeticOp::Div => BinaryOp::Div,
            ArithmeticOp::Mod => BinaryOp::Mod,
            ArithmeticOp::Pow => BinaryOp::Pow,
        }
    }
}

/// An aggregate over the spans of a spanset.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// `count()`
    Count,
    /// `avg(field)`
    Avg(FieldExpr),
    /// `min(field)`
    Min(FieldExpr),
    /// `max(field)`
    Max(FieldExpr),
    /// `sum(field)`
    Sum(FieldExpr),
}

/// An expression evaluated on one span, inside `{ ... }` or as an argument.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldExpr {
    /// A literal value.
    Literal(Literal),
    /// An intrinsic or attribute of the span.
    Field(Field),
    /// `!operand` or `-operand`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        operand: Box<FieldExpr>,
    },
    /// Two expressions joined by a binary operator.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// The left operand.
        lhs: Box<FieldExpr>,
        /// The right operand.
        rhs: Box<FieldExpr>,
    },
}

/// A prefix operator of field expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!`: logical not.
    Not,
    /// `-`: arithmetic negation.
    Neg,
}

impl UnaryOp {
    /// How the operator is written.
    pub fn symbol(self) -> &'static str {
        match self {
            UnaryOp::Not => "!",
            UnaryOp::Neg => "-",
        }
    }
}

/// A binary operator of field expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^` (right-associative)
    Pow,
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `=~`: matches the regular expression.
    Regex,
    /// `!~`: does not match the regular expression.
    NotRegex,
    /// `&&`
    And,
    /// `||`
    Or,
}

/// Precedence of `&&` and `||` (field and spanset expressions).
pub(crate) const PREC_LOGICAL: u8 = 1;
/// Precedence of comparisons, regex matches and structural spanset operators.
pub(crate) const PREC_COMPARISON: u8 = 2;
/// Precedence of `+` and `-`.
pub(crate) const PREC_ADDITIVE: u8 = 3;
/// Precedence of a prefix `!` or `-` expression, as an operand of a binary operator.
pub(crate) const PREC_UNARY: u8 = 4;
/// Precedence of `*`, `/` and `%`; also the lowest operator a prefix operator's operand takes.
pub(crate) const PREC_MULTIPLICATIVE: u8 = 5;
/// Precedence of `^`.
pub(crate) const PREC_POWER: u8 = 6;
/// Precedence of something that never needs parentheses.
pub(crate) const PREC_ATOM: u8 = 100;

impl BinaryOp {
    /// Every binary operator.
    pub const ALL: [BinaryOp; 16] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Mod,
        BinaryOp::Pow,
        BinaryOp::Eq,
        BinaryOp::Neq,
        BinaryOp::Lt,
        BinaryOp::Lte,
        BinaryOp::Gt,
        BinaryOp::Gte,
        BinaryOp::Regex,
        BinaryOp::NotRegex,
        BinaryOp::And,
        BinaryOp::Or,
    ];

    /// How the operator is written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Eq => "=",
            BinaryOp::Neq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Lte => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Gte => ">=",
            BinaryOp::Regex => "=~",
            BinaryOp::NotRegex => "!~",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
        }
    }

    /// Binding strength, following Tempo: `&&` and `||` share the lowest level, then
    /// comparisons, then `+ -`, then `* / %`, then `^`. A prefix `!` or `-` applies to an
    /// operand including its `* / % ^` operations (`-a * b` is `-(a * b)`, `!a = b` is
    /// `(!a) = b`).
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::And | BinaryOp::Or => PREC_LOGICAL,
            BinaryOp::Eq
            | BinaryOp::Neq
            | BinaryOp::Lt
            | BinaryOp::Lte
            | BinaryOp::Gt
            | BinaryOp::Gte
            | BinaryOp::Regex
            | BinaryOp::NotRegex => PREC_COMPARISON,
            BinaryOp::Add | BinaryOp::Sub => PREC_ADDITIVE,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => PREC_MULTIPLICATIVE,
            BinaryOp::Pow => PREC_POWER,
        }
    }

    /// Whether `a op b op c` groups as `a op (b op c)` (only `^`).
    pub fn is_right_associative(self) -> bool {
        self == BinaryOp::Pow
    }
}

/// A value a field expression can refer to.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A built-in property such as `duration` or `trace:id`.
    Intrinsic(Intrinsic),
    /// A custom attribute such as `span.http.method`.
    Attribute(Attribute),
}

/// A custom attribute, e.g. `span.http.method`, `resource."k8s pod"` or `.foo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Where the attribute is looked up.
    pub scope: AttributeScope,
    /// Whether the attribute is read from the span's parent (`parent.` prefix).
    pub parent: bool,
    /// The attribute's name, without scope and quotes (never empty).
    pub name: String,
}

/// The scope of an [`Attribute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeScope {
    /// `.name`: span or resource attribute.
    None,
    /// `span.name`
    Span,
    /// `resource.name`
    Resource,
    /// `event.name`
    Event,
    /// `link.name`
    Link,
    /// `instrumentation.name`
    Instrumentation,
}

impl AttributeScope {
    /// Every attribute scope.
    pub const ALL: [AttributeScope; 6] = [
        AttributeScope::None,
        AttributeScope::Span,
        AttributeScope::Resource,
        AttributeScope::Event,
        AttributeScope::Link,
        AttributeScope::Instrumentation,
    ];

    /// The prefix written before the attribute name (`"."`, `"span."`, ...).
    pub fn prefix(self) -> &'static str {
        match self {
            AttributeScope::None => ".",
            AttributeScope::Span => "span.",
            AttributeScope::Resource => "resource.",
            AttributeScope::Event => "event.",
            AttributeScope::Link => "link.",
            AttributeScope::Instrumentation => "instrumentation.",
        }
    }

    /// The scope named by a word that precedes a `.` (`span`, `resource`, ...).
    pub fn from_word(word: &str) -> Option<AttributeScope> {
        Some(match word {
            "span" => AttributeScope::Span,
            "resource" => AttributeScope::Resource,
            "event" => AttributeScope::Event,
            "link" => AttributeScope::Link,
            "instrumentation" => AttributeScope::Instrumentation,
            _ => return None,
        })
    }
}

/// A built-in property of spans, traces, events, links or instrumentation scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intrinsic {
    /// `duration` (also `span:duration`).
    Duration,
    /// `name` (also `span:name`).
    Name,
    /// `status` (also `span:status`).
    Status,
    /// `statusMessage` (also `span:statusMessage`).
    StatusMessage,
    /// `kind` (also `span:kind`).
    Kind,
    /// `childCount` (also `span:childCount`).
    ChildCount,
    /// `span:id`
    SpanId,
    /// `span:parentID`
    SpanParentId,
    /// `trace:id`
    TraceId,
    /// `rootName` (also `trace:rootName`).
    TraceRootName,
    /// `rootServiceName` (also `trace:rootService`).
    TraceRootService,
    /// `traceDuration` (also `trace:duration`).
    TraceDuration,
    /// `event:name`
    EventName,
    /// `event:timeSinceStart`
    EventTimeSinceStart,
    /// `link:spanID`
    LinkSpanId,
    /// `link:traceID`
    LinkTraceId,
    /// `instrumentation:name`
    InstrumentationName,
    /// `instrumentation:version`
    InstrumentationVersion,
}

impl Intrinsic {
    /// Every intrinsic.
    pub const ALL: [Intrinsic; 18] = [
        Intrinsic::Duration,
        Intrinsic::Name,
        Intrinsic::Status,
        Intrinsic::StatusMessage,
        Intrinsic::Kind,
        Intrinsic::ChildCount,
        Intrinsic::SpanId,
        Intrinsic::SpanParentId,
        Intrinsic::TraceId,
        Intrinsic::TraceRootName,
        Intrinsic::TraceRootService,
        Intrinsic::TraceDuration,
        Intrinsic::EventName,
        Intrinsic::EventTimeSinceStart,
        Intrinsic::LinkSpanId,
        Intrinsic::LinkTraceId,
        Intrinsic::InstrumentationName,
        Intrinsic::InstrumentationVersion,
    ];

    /// The canonical spelling: the unscoped name where Tempo has one, else `scope:name`.
    pub fn canonical_name(self) -> &'static str {
        match self {
            Intrinsic::Duration => "duration",
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Kind => "kind",
            Intrinsic::ChildCount => "childCount",
            Intrinsic::SpanId => "span:id",
            Intrinsic::SpanParentId => "span:parentID",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::TraceRootName => "rootName",
            Intrinsic::TraceRootService => "rootServiceName",
            Intrinsic::TraceDuration => "traceDuration",
            Intrinsic::EventName => "event:name",
            Intrinsic::EventTimeSinceStart => "event:timeSinceStart",
            Intrinsic::LinkSpanId => "link:spanID",
            Intrinsic::LinkTraceId => "link:traceID",
            Intrinsic::InstrumentationName => "instrumentation:name",
            Intrinsic::InstrumentationVersion => "instrumentation:version",
        }
    }

    /// The intrinsic spelled without a scope, e.g. `duration` or `rootServiceName`.
    pub fn from_unscoped(word: &str) -> Option<Intrinsic> {
        Some(match word {
            "duration" => Intrinsic::Duration,
            "name" => Intrinsic::Name,
            "status" => Intrinsic::Status,
            "statusMessage" => Intrinsic::StatusMessage,
            "kind" => Intrinsic::Kind,
            "childCount" => Intrinsic::ChildCount,
            "rootName" => Intrinsic::TraceRootName,
            "rootServiceName" => Intrinsic::TraceRootService,
            "traceDuration" => Intrinsic::TraceDuration,
            _ => return None,
        })
    }

    /// The intrinsic spelled `scope:name`, e.g. `span:duration` or `link:traceID`.
    pub fn from_scoped(scope: &str, name: &str) -> Option<Intrinsic> {
        Some(match (scope, name) {
            ("span", "duration") => Intrinsic::Duration,
            ("span", "name") => Intrinsic::Name,
            ("span", "status") => Intrinsic::Status,
            ("span", "statusMessage") => Intrinsic::StatusMessage,
            ("span", "kind") => Intrinsic::Kind,
            ("span", "childCount") => Intrinsic::ChildCount,
            ("span", "id") => Intrinsic::SpanId,
            ("span", "parentID") => Intrinsic::SpanParentId,
            ("trace", "id") => Intrinsic::TraceId,
            ("trace", "rootName") => Intrinsic::TraceRootName,
            ("trace", "rootService") => Intrinsic::TraceRootService,
            ("trace", "duration") => Intrinsic::TraceDuration,
            ("event", "name") => Intrinsic::EventName,
            ("event", "timeSinceStart") => Intrinsic::EventTimeSinceStart,
            ("link", "spanID") => Intrinsic::LinkSpanId,
            ("link", "traceID") => Intrinsic::LinkTraceId,
            ("instrumentation", "name") => Intrinsic::InstrumentationName,
            ("instrumentation", "version") => Intrinsic::InstrumentationVersion,
            _ => return None,
        })
    }

    /// The names that follow `scope:` for a scope word, for error messages.
    pub(crate) fn scoped_names(scope: &str) -> Option<&'static str> {
        Some(match scope {
            "span" => "duration, name, status, statusMessage, kind, childCount, id, parentID",
            "trace" => "id, rootName, rootService, duration",
            "event" => "name, timeSinceStart",
            "link" => "spanID, traceID",
            "instrumentation" => "name, version",
            _ => return None,
        })
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string, `"..."` or `` `...` ``.
    String(String),
    /// A 64-bit integer (`maxInt` and `minInt` name the extremes).
    Int(i64),
    /// A 64-bit float, e.g. `1.5` or `.99`.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `nil`: the value is missing.
    Nil,
    /// A duration such as `150ms` or `1.5s`.
    Duration {
        /// The length in nanoseconds.
        nanos: i64,
    },
    /// A span status: `error`, `ok` or `unset`.
    Status(Status),
    /// A span kind: `server`, `client`, ...
    Kind(SpanKind),
}

/// A span status value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `error`
    Error,
    /// `ok`
    Ok,
    /// `unset`
    Unset,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 3] = [Status::Error, Status::Ok, Status::Unset];

    /// The keyword for the status.
    pub fn keyword(self) -> &'static str {
        match self {
            Status::Error => "error",
            Status::Ok => "ok",
            Status::Unset => "unset",
        }
    }
}

/// A span kind value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// `unspecified`
    Unspecified,
    /// `internal`
    Internal,
    /// `server`
    Server,
    /// `client`
    Client,
    /// `producer`
    Producer,
    /// `consumer`
    Consumer,
}

impl SpanKind {
    /// Every span kind.
    pub const ALL: [SpanKind; 6] = [
        SpanKind::Unspecified,
        SpanKind::Internal,
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Producer,
        SpanKind::Consumer,
    ];

    /// The keyword for the kind.
    pub fn keyword(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

impl Literal {
    /// The literal a keyword stands for (`true`, `nil`, `error`, `server`, `maxInt`, ...).
    pub fn from_keyword(word: &str) -> Option<Literal> {
        if let Some(status) = Status::ALL.into_iter().find(|s| s.keyword() == word) {
            return Some(Literal::Status(status));
        }
        if let Some(kind) = SpanKind::ALL.into_iter().find(|k| k.keyword() == word) {
            return Some(Literal::Kind(kind));
        }
        Some(match word {
            "true" => Literal::Bool(true),
            "false" => Literal::Bool(false),
            "nil" => Literal::Nil,
            "minInt" => Literal::Int(i64::MIN),
            "maxInt" => Literal::Int(i64::MAX),
            _ => return None,
        })
    }
}

/// The metrics part of a query: a function turning spans into time series, its grouping, and
/// an optional second stage.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsQuery {
    /// The metrics function.
    pub function: MetricsFunction,
    /// The fields of `by (...)` (empty without `by`).
    pub by: Vec<Field>,
    /// A comparison the series' points must pass, e.g. `> 10` in `rate() > 10`.
    pub threshold: Option<Threshold>,
    /// A second stage such as `| topk(10)`.
    pub second_stage: Option<SecondStage>,
    /// A comparison the points kept by the second stage must pass (`| topk(5) > 10`).
    pub second_threshold: Option<Threshold>,
}

/// A comparison of every point of a metrics series with a number: the points that fail it
/// are dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// The comparison.
    pub op: ComparisonOp,
    /// The number points are compared with.
    pub value: f64,
}

impl Threshold {
    /// Whether `point` passes.
    pub fn passes(self, point: f64) -> bool {
        match self.op {
            ComparisonOp::Eq => point == self.value,
            ComparisonOp::Neq => point != self.value,
            ComparisonOp::Lt => point < self.value,
            ComparisonOp::Lte => point <= self.value,
            ComparisonOp::Gt => point > self.value,
            ComparisonOp::Gte => point >= self.value,
        }
    }
}

/// A metrics function.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsFunction {
    /// `rate()`
    Rate,
    /// `count_over_time()`
    CountOverTime,
    /// `min_over_time(field)`
    MinOverTime(Field),
    /// `max_over_time(field)`
    MaxOverTime(Field),
    /// `avg_over_time(field)`
    AvgOverTime(Field),
    /// `sum_over_time(field)`
    SumOverTime(Field),
    /// `quantile_over_time(field, q, ...)`
    QuantileOverTime {
        /// The field whose quantiles are computed.
        field: Field,
        /// The quantiles, e.g. `0.99` (at least one).
        quantiles: Vec<f64>,
    },
    /// `histogram_over_time(field)`
    HistogramOverTime(Field),
    /// `compare({ selection }, top_n, start, end)`: the spans the selection filter keeps
    /// against the others (the baseline), counted per value of every attribute.
    Compare {
        /// The filter that picks the selection.
        selection: SpansetFilter,
        /// Values kept per attribute and group, most frequent first (1 to 1000, default 10).
        top_n: u64,
        /// A time range (UNIX nanoseconds) the selection must also start in.
        range: Option<(i64, i64)>,
    },
}

/// A second stage applied to the series of a metrics query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondStage {
    /// `topk(n)`: the `n` largest series.
    TopK(u64),
    /// `bottomk(n)`: the `n` smallest series.
    BottomK(u64),
}
