//! A recursive-descent parser with precedence climbing for TraceQL.
//!
//! Grammar (informally; `|` inside `[...]` lists alternatives):
//!
//! ```text
//! query      := pipeline [ "|" metrics ] [ "with" "(" hint { "," hint } ")" ]
//! pipeline   := stage { "|" stage }
//! stage      := "by" "(" fields ")" | "select" "(" fields ")" | "coalesce" "(" ")"
//!             | operand                       -- a spanset expression
//!             | scalar cmp scalar             -- a scalar filter, e.g. count() > 2
//! operand    := primary { op operand }        -- spanset operators between spansets,
//!                                             -- arithmetic between scalars
//! primary    := "{" [ field ] "}" | "(" pipeline ")" | aggregate | [ "-" ] number
//! field      := precedence climbing over literals, intrinsics, attributes, "!", "-"
//! metrics    := function "(" args ")" [ "by" "(" fields ")" ] [ "|" ("topk"|"bottomk") "(" int ")" ]
//! ```
//!
//! A parenthesized pipeline is a spanset operand, unless it ends in a bare aggregate
//! (`({ a } | count())`), which makes it a scalar operand; parentheses around a single spanset
//! or scalar expression only group.

use std::fmt;

use super::ast::{
    Aggregate, ArithmeticOp, BinaryOp, ComparisonOp, Field, FieldExpr, Hint, Literal,
    MetricsArithmetic, MetricsFunction, MetricsMath, MetricsQuery, PREC_ADDITIVE,
    PREC_MULTIPLICATIVE, Pipeline, Query, ScalarExpr, ScalarFilter, SecondStage, SpansetExpr,
    SpansetFilter, SpansetOp, Stage, Threshold, UnaryOp,
};
use super::lexer::{Lexer, Punct, Token, TokenKind, describe_text};

/// How deeply parentheses, braces, prefix operators and `^` chains may nest.
pub const MAX_NESTING: usize = 256;

/// How deep the syntax tree may get (long operator chains such as `a || b || c || ...` make
/// it deep without any nesting in the text).
pub const MAX_TREE_DEPTH: usize = 1024;

/// Most metrics queries one arithmetic expression may combine: each is a scan of the window.
pub const MAX_MATH_QUERIES: usize = 16;

/// How deep metrics arithmetic may get (`(q) * 1 * 1 * ...` is deep without nesting); its
/// evaluation recurses once per level.
pub const MAX_MATH_DEPTH: usize = 64;

/// A comparison, a second stage and its comparison, after a metrics function.
type MetricsTail = (Option<Threshold>, Option<SecondStage>, Option<Threshold>);

/// Why a query could not be parsed, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the problem in the query.
    pub position: usize,
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column of the problem, in characters.
    pub column: usize,
    /// What the parser expected there, e.g. "a comparison operator".
    pub expected: String,
    /// What it found: the quoted text, or `end of input`.
    pub found: String,
}

impl ParseError {
    /// An error at byte `position` of `input`, computing its line and column.
    pub(crate) fn new(
        input: &str,
        position: usize,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        let position = position.min(input.len());
        let before = input.get(..position).unwrap_or(input);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = before[line_start..].chars().count() + 1;
        ParseError {
            position,
            line,
            column,
            expected: expected.into(),
            found: found.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "parse error at line {}, column {}: expected {}, found {}",
            self.line, self.column, self.expected, self.found
        )
    }
}

impl std::error::Error for ParseError {}

/// Queries that may nest more than this many levels are parsed on a thread of their own with
/// [`DEEP_STACK_BYTES`] of stack: at [`MAX_NESTING`] levels the recursion needs several
/// megabytes in unoptimized builds, more than a default thread may have left.
const INLINE_NESTING: usize = 24;

/// Stack for parsing deeply nested queries (reserved, only touched pages are committed).
const DEEP_STACK_BYTES: usize = 32 << 20;

/// An upper bound of the nesting a query can reach: every level starts at `(`, `{`, `!`,
/// `-` or `^`.
fn nesting_bound(input: &str) -> usize {
    input
        .bytes()
        .filter(|b| matches!(b, b'(' | b'{' | b'!' | b'-' | b'^'))
        .count()
}

/// Parses a whole query.
pub(crate) fn parse_query(input: &str) -> Result<Query, ParseError> {
    // A query is a pipeline, or else arithmetic of metrics queries; of two failures, the one
    // that got further names the problem.
    let parse = || match Parser::new(input)?.query() {
        Ok(query) => Ok(query),
        Err(error) => match Parser::new(input)?.math_query() {
            Ok(query) => Ok(query),
            Err(math) if math.position > error.position => Err(math),
            Err(_) => Err(error),
        },
    };
    if nesting_bound(input) <= INLINE_NESTING {
        return parse();
    }
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("traceql-parse".to_string())
            .stack_size(DEEP_STACK_BYTES)
            .spawn_scoped(scope, parse);
        match spawned {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(error) => Err(ParseError::new(
                input,
                0,
                "a query the parser can handle (deeply nested queries need a thread with a \
                 large stack, which could not be started)",
                error.to_string(),
            )),
        }
    })
}

const EXPECTED_STAGE: &str =
    "a pipeline stage (`{ ... }`, `(`, an aggregate, `by`, `select` or `coalesce`)";
const EXPECTED_SPANSET: &str = "a spanset filter `{ ... }` or a parenthesized pipeline";
const EXPECTED_SCALAR: &str = "a number, duration, aggregate or parenthesized scalar pipeline";
const EXPECTED_FIELD: &str = "an attribute, intrinsic or literal";
const EXPECTED_FIELD_NAME: &str = "an attribute or intrinsic";
const EXPECTED_COMPARISON: &str = "a comparison operator";

/// The names of the aggregate functions.
const AGGREGATES: [&str; 5] = ["count", "avg", "min", "max", "sum"];

/// The names of the metrics functions.
const METRICS_FUNCTIONS: [&str; 9] = [
    "compare",
    "rate",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "sum_over_time",
    "quantile_over_time",
    "histogram_over_time",
];

/// A parsed operand of a stage: spansets and scalars share the operator syntax.
enum Operand {
    Spanset(SpansetExpr),
    Scalar(ScalarExpr),
}

/// A binary operator between operands, chosen by the type of the left operand.
enum OperandOp {
    Spanset(SpansetOp),
    Arithmetic(ArithmeticOp),
}

/// What one stage parsed to.
enum StageItem {
    Stage(Stage),
    /// A scalar expression not followed by a comparison, such as the final `count()` of
    /// `({ a } | count())`; only valid at the end of a parenthesized pipeline.
    Bare(ScalarExpr),
}

/// A parsed pipeline, with what may follow its stages.
struct ParsedPipeline {
    stages: Vec<Stage>,
    depth: usize,
    /// A final bare scalar expression and its depth.
    trailing: Option<(ScalarExpr, usize)>,
    /// The metrics part (top level only).
    metrics: Option<MetricsQuery>,
}

struct Parser<'a> {
    input: &'a str,
    lexer: Lexer<'a>,
    /// The current, not yet consumed token.
    token: Token,
    /// Current nesting of parentheses, braces, prefix operators and `^` chains.
    nesting: usize,
    /// Whether metrics queries end at `)` (inside metrics arithmetic).
    in_math: bool,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Result<Self, ParseError> {
        let mut lexer = Lexer::new(input);
        let token = lexer.next_token()?;
        Ok(Parser {
            input,
            lexer,
            token,
            nesting: 0,
            in_math: false,
        })
    }

    // ---------------------------------------------------------------------------------------
    // Token helpers
    // ---------------------------------------------------------------------------------------

    /// Consumes the current token and returns it.
    fn advance(&mut self) -> Result<Token, ParseError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.token, next))
    }

    fn error_at(&self, token: &Token, expected: &str) -> ParseError {
        ParseError::new(
            self.input,
            token.start,
            expected,
            describe_text(&self.input[token.start..token.end]),
        )
    }

    /// An error at the current token.
    fn error(&self, expected: &str) -> ParseError {
        self.error_at(&self.token, expected)
    }

    fn punct(&self) -> Option<Punct> {
        match self.token.kind {
            TokenKind::Punct(punct) => Some(punct),
            _ => None,
        }
    }

    fn is_punct(&self, punct: Punct) -> bool {
        self.punct() == Some(punct)
    }

    fn is_eof(&self) -> bool {
        self.token.kind == TokenKind::Eof
    }

    /// The current token's word, if it is one.
    fn word(&self) -> Option<&str> {
        match &self.token.kind {
            TokenKind::Ident(word) => Some(word),
            _ => None,
        }
    }

    fn is_word(&self, word: &str) -> bool {
        self.word() == Some(word)
    }

    fn expect_punct(&mut self, punct: Punct, expected: &str) -> Result<Token, ParseError> {
        if self.is_punct(punct) {
            self.advance()
        } else {
            Err(self.error(expected))
        }
    }

    /// Enters one level of nesting, failing beyond [`MAX_NESTING`].
    fn enter(&mut self, at: &Token) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.error_at(
                at,
                &format!(
                    "at most {MAX_NESTING} levels of nested parentheses, braces and operators"
                ),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    /// Fails when a syntax tree of `depth` levels would be built at `at`.
    fn check_depth(&self, depth: usize, at: &Token) -> Result<(), ParseError> {
        if depth > MAX_TREE_DEPTH {
            return Err(self.error_at(
                at,
                &format!("an expression at most {MAX_TREE_DEPTH} operators deep"),
            ));
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Query and pipelines
    // ---------------------------------------------------------------------------------------

    fn query(mut self) -> Result<Query, ParseError> {
        let parsed = self.pipeline(true)?;
        let mut hints = Vec::new();
        if self.is_word("with") {
            hints = self.hints()?;
        }
        if !self.is_eof() {
            return Err(self.error("end of query"));
        }
        Ok(Query {
            pipeline: Pipeline {
                stages: parsed.stages,
            },
            metrics: parsed.metrics,
            hints,
            math: None,
        })
    }

    /// Arithmetic of parenthesized metrics queries and numbers, e.g.
    /// `({ status = error } | rate()) / ({ } | rate()) * 100 > 5 | topk(3)`.
    fn math_query(mut self) -> Result<Query, ParseError> {
        self.in_math = true;
        let start = self.token.clone();
        let expr = self.math_sum()?;
        if matches!(expr, MetricsMath::Number(_)) {
            return Err(self.error_at(
                &start,
                "a parenthesized metrics query such as ({ } | rate())",
            ));
        }
        let (threshold, second_stage, second_threshold) = self.metrics_tail()?;
        let mut hints = Vec::new();
        if self.is_word("with") {
            hints = self.hints()?;
        }
        if !self.is_eof() {
            return Err(self.error(if second_stage.is_some() {
                "a comparison or end of query"
            } else {
                "an operator (`+ - * /`), a comparison, `|` or end of query"
            }));
        }
        Ok(Query {
            pipeline: Pipeline {
                stages: vec![Stage::Spanset(SpansetExpr::Filter(SpansetFilter {
                    expr: None,
                }))],
            },
            metrics: None,
            hints,
            math: Some(Box::new(MetricsArithmetic {
                expr,
                threshold,
                second_stage,
                second_threshold,
            })),
        })
    }

    /// What may follow a metrics function or metrics arithmetic: a comparison, then `|` with
    /// a second stage and its comparison.
    fn metrics_tail(&mut self) -> Result<MetricsTail, ParseError> {
        let threshold = self.threshold()?;
        if !self.is_punct(Punct::Pipe) {
            return Ok((threshold, None, None));
        }
        self.advance()?;
        let second_stage = self.second_stage()?;
        Ok((threshold, Some(second_stage), self.threshold()?))
    }

    /// `a + b - c` of metrics arithmetic.
    fn math_sum(&mut self) -> Result<MetricsMath, ParseError> {
        self.math_chain(
            &[
                (Punct::Plus, ArithmeticOp::Add),
                (Punct::Minus, ArithmeticOp::Sub),
            ],
            Self::math_product,
        )
    }

    /// `a * b / c` of metrics arithmetic.
    fn math_product(&mut self) -> Result<MetricsMath, ParseError> {
        self.math_chain(
            &[
                (Punct::Star, ArithmeticOp::Mul),
                (Punct::Slash, ArithmeticOp::Div),
            ],
            Self::math_unary,
        )
    }

    /// `operand op operand op ...`, left to right, for the operators `ops` of one precedence.
    fn math_chain(
        &mut self,
        ops: &[(Punct, ArithmeticOp)],
        operand: fn(&mut Self) -> Result<MetricsMath, ParseError>,
    ) -> Result<MetricsMath, ParseError> {
        let mut lhs = operand(self)?;
        loop {
            let Some(op) = self
                .punct()
                .and_then(|p| ops.iter().find(|(q, _)| *q == p).map(|&(_, op)| op))
            else {
                return Ok(lhs);
            };
            let at = self.advance()?;
            let rhs = operand(self)?;
            lhs = self.math_binary(op, lhs, rhs, &at)?;
        }
    }

    /// A number, `-operand` or `( ... )` of metrics arithmetic.
    fn math_unary(&mut self) -> Result<MetricsMath, ParseError> {
        const EXPECTED: &str = "a number or a parenthesized metrics query such as ({ } | rate())";
        let token = self.token.clone();
        match &token.kind {
            TokenKind::Punct(Punct::Minus) => {
                self.advance()?;
                self.enter(&token)?;
                let operand = self.math_unary()?;
                self.leave();
                self.math_binary(
                    ArithmeticOp::Mul,
                    MetricsMath::Number(Literal::Int(-1)),
                    operand,
                    &token,
                )
            }
            TokenKind::Integer(value) => {
                let value = *value;
                self.advance()?;
                Ok(MetricsMath::Number(Literal::Int(value)))
            }
            TokenKind::Float(value) => {
                let value = *value;
                self.advance()?;
                Ok(MetricsMath::Number(Literal::Float(value)))
            }
            TokenKind::Duration(_) => Err(self.error("a number (durations cannot scale metrics)")),
            TokenKind::Punct(Punct::LParen) => {
                self.advance()?;
                self.enter(&token)?;
                // A metrics query starts like a pipeline; anything else is arithmetic.
                let starts_pipeline = self.is_punct(Punct::LBrace)
                    || self.word().is_some_and(|w| {
                        matches!(w, "by" | "select" | "coalesce") || AGGREGATES.contains(&w)
                    });
                let inner = if starts_pipeline {
                    let parsed = self.pipeline(true)?;
                    let Some(metrics) = parsed.metrics else {
                        return Err(self.error("a metrics function such as `| rate()`"));
                    };
                    MetricsMath::Query(Box::new(Query {
                        pipeline: Pipeline {
                            stages: parsed.stages,
                        },
                        metrics: Some(metrics),
                        hints: Vec::new(),
                        math: None,
                    }))
                } else {
                    self.math_sum()?
                };
                self.expect_punct(Punct::RParen, "`)`")?;
                self.leave();
                Ok(inner)
            }
            _ => Err(self.error(EXPECTED)),
        }
    }

    /// `lhs op rhs`, folded when both are numbers (integers keep integer arithmetic).
    fn math_binary(
        &self,
        op: ArithmeticOp,
        lhs: MetricsMath,
        rhs: MetricsMath,
        at: &Token,
    ) -> Result<MetricsMath, ParseError> {
        let (MetricsMath::Number(a), MetricsMath::Number(b)) = (&lhs, &rhs) else {
            if 1 + lhs.depth().max(rhs.depth()) > MAX_MATH_DEPTH {
                return Err(self.error_at(
                    at,
                    &format!("metrics arithmetic at most {MAX_MATH_DEPTH} operators deep"),
                ));
            }
            if lhs.queries() + rhs.queries() > MAX_MATH_QUERIES {
                return Err(self.error_at(
                    at,
                    &format!("metrics arithmetic of at most {MAX_MATH_QUERIES} metrics queries"),
                ));
            }
            return Ok(MetricsMath::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            });
        };
        let float = |l: &Literal| match l {
            Literal::Int(i) => *i as f64,
            Literal::Float(f) => *f,
            _ => f64::NAN,
        };
        let folded = match (a, b) {
            (Literal::Int(x), Literal::Int(y)) => {
                let value = match op {
                    ArithmeticOp::Add => x.checked_add(*y),
                    ArithmeticOp::Sub => x.checked_sub(*y),
                    ArithmeticOp::Mul => x.checked_mul(*y),
                    _ => x.checked_div(*y),
                };
                match value {
                    Some(v) => Literal::Int(v),
                    None => {
                        return Err(self.error_at(
                            at,
                            "an operation on integers with a result (this one overflows or \
                             divides by zero)",
                        ));
                    }
                }
            }
            _ => {
                let (x, y) = (float(a), float(b));
                Literal::Float(match op {
                    ArithmeticOp::Add => x + y,
                    ArithmeticOp::Sub => x - y,
                    ArithmeticOp::Mul => x * y,
                    _ => x / y,
                })
            }
        };
        Ok(MetricsMath::Number(folded))
    }

    /// `topk(n)` or `bottomk(n)`.
    fn second_stage(&mut self) -> Result<SecondStage, ParseError> {
        let kind = match self.word() {
            Some("topk") => SecondStage::TopK,
            Some("bottomk") => SecondStage::BottomK,
            _ => return Err(self.error("`topk` or `bottomk`")),
        };
        let name_token = self.advance()?;
        let name = &self.input[name_token.start..name_token.end];
        self.expect_punct(Punct::LParen, &format!("`(` after `{name}`"))?;
        let limit = match self.token.kind {
            TokenKind::Integer(value) if value > 0 => value.unsigned_abs(),
            _ => return Err(self.error("a positive integer")),
        };
        self.advance()?;
        self.expect_punct(Punct::RParen, "`)`")?;
        Ok(kind(limit))
    }

    /// `with (name = value, ...)`.
    fn hints(&mut self) -> Result<Vec<Hint>, ParseError> {
        self.advance()?;
        self.expect_punct(Punct::LParen, "`(` after `with`")?;
        let mut hints = Vec::new();
        loop {
            let name = match self.word() {
                Some(word) => word.to_string(),
                None => return Err(self.error("a hint name")),
            };
            self.advance()?;
            self.expect_punct(Punct::Eq, "`=` after the hint name")?;
            let value_token = self.token.clone();
            let value = match self.field_primary()?.0 {
                FieldExpr::Literal(literal) => literal,
                _ => return Err(self.error_at(&value_token, "a literal hint value")),
            };
            hints.push(Hint { name, value });
            if self.is_punct(Punct::Comma) {
                self.advance()?;
                continue;
            }
            self.expect_punct(Punct::RParen, "`,` or `)`")?;
            return Ok(hints);
        }
    }

    /// Stages separated by `|`. At the top level it ends at the end of the input, `with` or
    /// after a metrics function; otherwise at `)`, which it leaves unconsumed.
    fn pipeline(&mut self, top_level: bool) -> Result<ParsedPipeline, ParseError> {
        let mut stages = Vec::new();
        let mut depth = 0;
        loop {
            if let Some(word) = self.word()
                && METRICS_FUNCTIONS.contains(&word)
            {
                if top_level && !stages.is_empty() {
                    let metrics = self.metrics()?;
                    return Ok(ParsedPipeline {
                        stages,
                        depth: depth + 1,
                        trailing: None,
                        metrics: Some(metrics),
                    });
                }
                return Err(self.error(if stages.is_empty() {
                    "a spanset filter before the metrics function"
                } else {
                    "a pipeline stage (metrics functions may only end the query)"
                }));
            }
            let is_spanset_stage;
            match self.stage()? {
                (StageItem::Stage(stage), stage_depth) => {
                    is_spanset_stage = matches!(stage, Stage::Spanset(_));
                    stages.push(stage);
                    depth = depth.max(stage_depth);
                }
                (StageItem::Bare(expr), expr_depth) => {
                    if !top_level && self.is_punct(Punct::RParen) {
                        return Ok(ParsedPipeline {
                            stages,
                            depth: depth + 1,
                            trailing: Some((expr, expr_depth)),
                            metrics: None,
                        });
                    }
                    return Err(self.error(if top_level {
                        EXPECTED_COMPARISON
                    } else {
                        "a comparison operator or `)`"
                    }));
                }
            }
            if self.is_punct(Punct::Pipe) {
                self.advance()?;
                continue;
            }
            let at_end = if top_level {
                self.is_eof()
                    || self.is_word("with")
                    || (self.in_math && self.is_punct(Punct::RParen))
            } else {
                self.is_punct(Punct::RParen)
            };
            if at_end {
                return Ok(ParsedPipeline {
                    stages,
                    depth: depth + 1,
                    trailing: None,
                    metrics: None,
                });
            }
            return Err(self.error(match (is_spanset_stage, top_level) {
                (true, true) => "a spanset operator, `|` or end of query",
                (true, false) => "a spanset operator, `|` or `)`",
                (false, true) => "`|` or end of query",
                (false, false) => "`|` or `)`",
            }));
        }
    }

    /// One pipeline stage, with its tree depth.
    fn stage(&mut self) -> Result<(StageItem, usize), ParseError> {
        if let Some(word) = self.word() {
            match word {
                "by" | "select" => {
                    let is_by = word == "by";
                    self.advance()?;
                    let (fields, depth) = self.field_list(if is_by {
                        "`(` after `by`"
                    } else {
                        "`(` after `select`"
                    })?;
                    let stage = if is_by {
                        Stage::GroupBy(fields)
                    } else {
                        Stage::Select(fields)
                    };
                    return Ok((StageItem::Stage(stage), depth + 1));
                }
                "coalesce" => {
                    self.advance()?;
                    self.expect_punct(Punct::LParen, "`(` after `coalesce`")?;
                    self.expect_punct(Punct::RParen, "`)` (coalesce takes no arguments)")?;
                    return Ok((StageItem::Stage(Stage::Coalesce), 1));
                }
                _ => {}
            }
        }
        let (operand, depth) = self.operand(1, EXPECTED_STAGE)?;
        match operand {
            Operand::Spanset(expr) => Ok((StageItem::Stage(Stage::Spanset(expr)), depth)),
            Operand::Scalar(lhs) => {
                let Some(op) = self.comparison_op() else {
                    return Ok((StageItem::Bare(lhs), depth));
                };
                self.advance()?;
                let rhs_token = self.token.clone();
                let (rhs, rhs_depth) = self.operand(PREC_ADDITIVE, EXPECTED_SCALAR)?;
                let Operand::Scalar(rhs) = rhs else {
                    return Err(self.error_at(&rhs_token, EXPECTED_SCALAR));
                };
                let filter = ScalarFilter { op, lhs, rhs };
                Ok((
                    StageItem::Stage(Stage::ScalarFilter(filter)),
                    depth.max(rhs_depth) + 1,
                ))
            }
        }
    }

    /// `( field, ... )` with at least one field.
    fn field_list(&mut self, expected_open: &str) -> Result<(Vec<FieldExpr>, usize), ParseError> {
        self.expect_punct(Punct::LParen, expected_open)?;
        let mut fields = Vec::new();
        let mut depth = 0;
        loop {
            let (field, field_depth) = self.field_expr(1)?;
            fields.push(field);
            depth = depth.max(field_depth);
            if self.is_punct(Punct::Comma) {
                self.advance()?;
                continue;
            }
            self.expect_punct(Punct::RParen, "an operator, `,` or `)`")?;
            return Ok((fields, depth));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Operands: spanset expressions and scalar expressions
    // ---------------------------------------------------------------------------------------

    /// Precedence climbing over operands; only operators binding at least `min_prec` are
    /// taken. `expected` describes what may start the operand.
    fn operand(&mut self, min_prec: u8, expected: &str) -> Result<(Operand, usize), ParseError> {
        let (mut lhs, mut depth) = self.operand_primary(expected)?;
        loop {
            let op = match (&lhs, self.punct()) {
                (Operand::Spanset(_), Some(punct)) => match spanset_op(punct) {
                    Some(op) => OperandOp::Spanset(op),
                    None => break,
                },
                (Operand::Scalar(_), Some(punct)) => match arithmetic_op(punct) {
                    Some(op) => OperandOp::Arithmetic(op),
                    None => break,
                },
                _ => break,
            };
            let prec = match &op {
                OperandOp::Spanset(op) => op.precedence(),
                OperandOp::Arithmetic(op) => op.precedence(),
            };
            if prec < min_prec {
                break;
            }
            let op_token = self.advance()?;
            let rhs_token = self.token.clone();
            let right_associative = matches!(op, OperandOp::Arithmetic(ArithmeticOp::Pow));
            let (rhs, rhs_depth) = if right_associative {
                self.enter(&op_token)?;
                let rhs = self.operand(prec, EXPECTED_SCALAR)?;
                self.leave();
                rhs
            } else {
                let expected = match op {
                    OperandOp::Spanset(_) => EXPECTED_SPANSET,
                    OperandOp::Arithmetic(_) => EXPECTED_SCALAR,
                };
                self.operand(prec + 1, expected)?
            };
            depth = depth.max(rhs_depth) + 1;
            self.check_depth(depth, &op_token)?;
            lhs = match (op, lhs, rhs) {
                (OperandOp::Spanset(op), Operand::Spanset(lhs), Operand::Spanset(rhs)) => {
                    Operand::Spanset(SpansetExpr::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    })
                }
                (OperandOp::Arithmetic(op), Operand::Scalar(lhs), Operand::Scalar(rhs)) => {
                    Operand::Scalar(ScalarExpr::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    })
                }
                (OperandOp::Spanset(_), _, _) => {
                    return Err(self.error_at(&rhs_token, EXPECTED_SPANSET));
                }
                (OperandOp::Arithmetic(_), _, _) => {
                    return Err(self.error_at(&rhs_token, EXPECTED_SCALAR));
                }
            };
        }
        Ok((lhs, depth))
    }

    fn operand_primary(&mut self, expected: &str) -> Result<(Operand, usize), ParseError> {
        match &self.token.kind {
            TokenKind::Punct(Punct::LBrace) => {
                let (filter, depth) = self.spanset_filter()?;
                Ok((Operand::Spanset(SpansetExpr::Filter(filter)), depth))
            }
            TokenKind::Punct(Punct::LParen) => self.parenthesized_operand(),
            TokenKind::Punct(Punct::Minus) => {
                self.advance()?;
                let literal = match self.token.kind {
                    TokenKind::Integer(value) => Literal::Int(-value),
                    TokenKind::Float(value) => Literal::Float(-value),
                    TokenKind::Duration(nanos) => Literal::Duration { nanos: -nanos },
                    _ => return Err(self.error("a number or duration after `-`")),
                };
                self.advance()?;
                Ok((Operand::Scalar(ScalarExpr::Literal(literal)), 1))
            }
            TokenKind::Integer(value) => {
                let literal = Literal::Int(*value);
                self.advance()?;
                Ok((Operand::Scalar(ScalarExpr::Literal(literal)), 1))
            }
            TokenKind::Float(value) => {
                let literal = Literal::Float(*value);
                self.advance()?;
                Ok((Operand::Scalar(ScalarExpr::Literal(literal)), 1))
            }
            TokenKind::Duration(nanos) => {
                let literal = Literal::Duration { nanos: *nanos };
                self.advance()?;
                Ok((Operand::Scalar(ScalarExpr::Literal(literal)), 1))
            }
            TokenKind::Ident(word) if AGGREGATES.contains(&word.as_str()) => {
                let (aggregate, depth) = self.aggregate()?;
                Ok((Operand::Scalar(ScalarExpr::Aggregate(aggregate)), depth))
            }
            _ => Err(self.error(expected)),
        }
    }

    /// `( pipeline )` as an operand.
    fn parenthesized_operand(&mut self) -> Result<(Operand, usize), ParseError> {
        let open = self.advance()?;
        self.enter(&open)?;
        let parsed = self.pipeline(false)?;
        let close = self.expect_punct(Punct::RParen, "`)`")?;
        self.leave();
        let ParsedPipeline {
            mut stages,
            depth,
            trailing,
            ..
        } = parsed;
        match trailing {
            Some((expr, expr_depth)) if stages.is_empty() => {
                Ok((Operand::Scalar(expr), expr_depth))
            }
            Some((ScalarExpr::Aggregate(aggregate), _)) => Ok((
                Operand::Scalar(ScalarExpr::Pipeline {
                    pipeline: Box::new(Pipeline { stages }),
                    aggregate: Box::new(aggregate),
                }),
                depth + 1,
            )),
            Some(_) => Err(self.error_at(&close, EXPECTED_COMPARISON)),
            None => {
                // Parentheses around a single spanset expression only group.
                if let [Stage::Spanset(_)] = stages.as_slice()
                    && let Some(Stage::Spanset(expr)) = stages.pop()
                {
                    return Ok((Operand::Spanset(expr), depth.saturating_sub(1)));
                }
                Ok((
                    Operand::Spanset(SpansetExpr::Pipeline(Box::new(Pipeline { stages }))),
                    depth + 1,
                ))
            }
        }
    }

    /// `{}` or `{ field expression }`.
    fn spanset_filter(&mut self) -> Result<(SpansetFilter, usize), ParseError> {
        let open = self.advance()?;
        if self.is_punct(Punct::RBrace) {
            self.advance()?;
            return Ok((SpansetFilter { expr: None }, 1));
        }
        self.enter(&open)?;
        let (expr, depth) = self.field_expr(1)?;
        self.leave();
        self.expect_punct(Punct::RBrace, "an operator or `}`")?;
        Ok((SpansetFilter { expr: Some(expr) }, depth + 1))
    }

    /// `count()`, `avg(field)`, `min(field)`, `max(field)` or `sum(field)`.
    fn aggregate(&mut self) -> Result<(Aggregate, usize), ParseError> {
        let name_token = self.advance()?;
        let name = &self.input[name_token.start..name_token.end];
        self.expect_punct(Punct::LParen, &format!("`(` after `{name}`"))?;
        if name == "count" {
            self.expect_punct(Punct::RParen, "`)` (count takes no arguments)")?;
            return Ok((Aggregate::Count, 1));
        }
        let (field, depth) = self.field_expr(1)?;
        self.expect_punct(Punct::RParen, "an operator or `)`")?;
        let aggregate = match name {
            "avg" => Aggregate::Avg(field),
            "min" => Aggregate::Min(field),
            "max" => Aggregate::Max(field),
            _ => Aggregate::Sum(field),
        };
        Ok((aggregate, depth + 1))
    }

    // ---------------------------------------------------------------------------------------
    // Metrics
    // ---------------------------------------------------------------------------------------

    /// The arguments of `compare(`: `{ selection }`, then optionally the top N and optionally
    /// a start and an end (UNIX nanoseconds), and `)`.
    fn compare(&mut self) -> Result<MetricsFunction, ParseError> {
        if !self.is_punct(Punct::LBrace) {
            return Err(self.error("a spanset filter such as `{ status = error }`"));
        }
        let (selection, _) = self.spanset_filter()?;
        let mut numbers = Vec::new();
        while self.is_punct(Punct::Comma) {
            self.advance()?;
            let TokenKind::Integer(n) = self.token.kind else {
                return Err(self.error(if numbers.is_empty() {
                    "the number of values per attribute (1 to 1000)"
                } else {
                    "a time in UNIX nanoseconds"
                }));
            };
            let at = self.advance()?;
            numbers.push((n, at));
        }
        self.expect_punct(Punct::RParen, "`,` or `)`")?;
        let top_n = match numbers.first() {
            None => 10,
            Some(&(n, _)) if (1..=1000).contains(&n) => n as u64,
            Some((_, at)) => {
                return Err(self.error_at(at, "a number of values per attribute from 1 to 1000"));
            }
        };
        let range = match numbers.as_slice() {
            [] | [_] => None,
            [_, (start, _), (end, at)] => {
                if start >= end {
                    return Err(self.error_at(at, "an end after the start"));
                }
                Some((*start, *end))
            }
            [_, (_, at)] => return Err(self.error_at(at, "both a start and an end, or neither")),
            [_, _, _, (_, at), ..] => return Err(self.error_at(at, "`)`")),
        };
        Ok(MetricsFunction::Compare {
            selection,
            top_n,
            range,
        })
    }

    fn metrics(&mut self) -> Result<MetricsQuery, ParseError> {
        let name_token = self.advance()?;
        let name = &self.input[name_token.start..name_token.end];
        self.expect_punct(Punct::LParen, &format!("`(` after `{name}`"))?;
        let function = match name {
            "rate" | "count_over_time" => {
                self.expect_punct(Punct::RParen, &format!("`)` ({name} takes no arguments)"))?;
                if name == "rate" {
                    MetricsFunction::Rate
                } else {
                    MetricsFunction::CountOverTime
                }
            }
            "compare" => self.compare()?,
            "quantile_over_time" => {
                let field = self.field_ref()?;
                let mut quantiles = Vec::new();
                loop {
                    if quantiles.is_empty() {
                        self.expect_punct(Punct::Comma, "`,` and the quantiles")?;
                    } else if self.is_punct(Punct::Comma) {
                        self.advance()?;
                    } else {
                        self.expect_punct(Punct::RParen, "`,` or `)`")?;
                        break;
                    }
                    let quantile = match self.token.kind {
                        TokenKind::Integer(value) => value as f64,
                        TokenKind::Float(value) => value,
                        _ => return Err(self.error("a quantile such as `0.99`")),
                    };
                    self.advance()?;
                    quantiles.push(quantile);
                }
                MetricsFunction::QuantileOverTime { field, quantiles }
            }
            _ => {
                let field = self.field_ref()?;
                self.expect_punct(Punct::RParen, "`)`")?;
                match name {
                    "min_over_time" => MetricsFunction::MinOverTime(field),
                    "max_over_time" => MetricsFunction::MaxOverTime(field),
                    "avg_over_time" => MetricsFunction::AvgOverTime(field),
                    "sum_over_time" => MetricsFunction::SumOverTime(field),
                    _ => MetricsFunction::HistogramOverTime(field),
                }
            }
        };
        let mut by = Vec::new();
        if self.is_word("by") {
            self.advance()?;
            self.expect_punct(Punct::LParen, "`(` after `by`")?;
            loop {
                by.push(self.field_ref()?);
                if self.is_punct(Punct::Comma) {
                    self.advance()?;
                    continue;
                }
                self.expect_punct(Punct::RParen, "`,` or `)`")?;
                break;
            }
        }
        let (threshold, second_stage, second_threshold) = self.metrics_tail()?;
        let closed = self.in_math && self.is_punct(Punct::RParen);
        if !self.is_eof() && !self.is_word("with") && !closed {
            return Err(self.error(match (by.is_empty(), second_stage.is_none()) {
                (true, true) => "`by`, a comparison, `|` or end of query",
                (false, true) => "a comparison, `|` or end of query",
                _ => "a comparison or end of query",
            }));
        }
        Ok(MetricsQuery {
            function,
            by,
            threshold,
            second_stage,
            second_threshold,
        })
    }

    /// The comparison operator at the current token, if it is one (not consumed).
    fn comparison_op(&self) -> Option<ComparisonOp> {
        Some(match self.punct()? {
            Punct::Eq => ComparisonOp::Eq,
            Punct::Neq => ComparisonOp::Neq,
            Punct::Lt => ComparisonOp::Lt,
            Punct::Lte => ComparisonOp::Lte,
            Punct::Gt => ComparisonOp::Gt,
            Punct::Gte => ComparisonOp::Gte,
            _ => return None,
        })
    }

    /// An optional comparison of a metrics series' points with a number: `> 10`, `<= -0.5`.
    fn threshold(&mut self) -> Result<Option<Threshold>, ParseError> {
        let Some(op) = self.comparison_op() else {
            return Ok(None);
        };
        self.advance()?;
        let negative = self.is_punct(Punct::Minus);
        if negative {
            self.advance()?;
        }
        let value = match self.token.kind {
            TokenKind::Integer(value) => value as f64,
            TokenKind::Float(value) => value,
            _ => return Err(self.error("a number to compare the series' points with")),
        };
        self.advance()?;
        Ok(Some(Threshold {
            op,
            value: if negative { -value } else { value },
        }))
    }

    /// An attribute or intrinsic (the arguments of metrics functions).
    fn field_ref(&mut self) -> Result<Field, ParseError> {
        let field = match &self.token.kind {
            TokenKind::Attribute(attribute) => Field::Attribute(attribute.clone()),
            TokenKind::Intrinsic(intrinsic) => Field::Intrinsic(*intrinsic),
            TokenKind::Ident(word) => match super::ast::Intrinsic::from_unscoped(word) {
                Some(intrinsic) => Field::Intrinsic(intrinsic),
                None => return Err(self.error(EXPECTED_FIELD_NAME)),
            },
            _ => return Err(self.error(EXPECTED_FIELD_NAME)),
        };
        self.advance()?;
        Ok(field)
    }

    // ---------------------------------------------------------------------------------------
    // Field expressions
    // ---------------------------------------------------------------------------------------

    /// Precedence climbing over field expressions.
    fn field_expr(&mut self, min_prec: u8) -> Result<(FieldExpr, usize), ParseError> {
        let (mut lhs, mut depth) = self.field_prefix()?;
        while let Some(op) = self.punct().and_then(binary_op) {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_token = self.advance()?;
            let (rhs, rhs_depth) = if op.is_right_associative() {
                self.enter(&op_token)?;
                let rhs = self.field_expr(prec)?;
                self.leave();
                rhs
            } else {
                self.field_expr(prec + 1)?
            };
            depth = depth.max(rhs_depth) + 1;
            self.check_depth(depth, &op_token)?;
            lhs = FieldExpr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok((lhs, depth))
    }

    /// A prefix operator application, a parenthesized expression or a primary.
    fn field_prefix(&mut self) -> Result<(FieldExpr, usize), ParseError> {
        let op = match self.punct() {
            Some(Punct::Not) => UnaryOp::Not,
            Some(Punct::Minus) => UnaryOp::Neg,
            Some(Punct::LParen) => {
                let open = self.advance()?;
                self.enter(&open)?;
                let inner = self.field_expr(1)?;
                self.leave();
                self.expect_punct(Punct::RParen, "an operator or `)`")?;
                return Ok(inner);
            }
            _ => return self.field_primary(),
        };
        let op_token = self.advance()?;
        self.enter(&op_token)?;
        let (operand, depth) = self.field_expr(PREC_MULTIPLICATIVE)?;
        self.leave();
        self.check_depth(depth + 1, &op_token)?;
        Ok((
            FieldExpr::Unary {
                op,
                operand: Box::new(operand),
            },
            depth + 1,
        ))
    }

    /// A literal, keyword, intrinsic or attribute.
    fn field_primary(&mut self) -> Result<(FieldExpr, usize), ParseError> {
        let expr = match &self.token.kind {
            TokenKind::String(value) => FieldExpr::Literal(Literal::String(value.clone())),
            TokenKind::Integer(value) => FieldExpr::Literal(Literal::Int(*value)),
            TokenKind::Float(value) => FieldExpr::Literal(Literal::Float(*value)),
            TokenKind::Duration(nanos) => FieldExpr::Literal(Literal::Duration { nanos: *nanos }),
            TokenKind::Attribute(attribute) => {
                FieldExpr::Field(Field::Attribute(attribute.clone()))
            }
            TokenKind::Intrinsic(intrinsic) => FieldExpr::Field(Field::Intrinsic(*intrinsic)),
            TokenKind::Ident(word) => {
                if let Some(literal) = Literal::from_keyword(word) {
                    FieldExpr::Literal(literal)
                } else if let Some(intrinsic) = super::ast::Intrinsic::from_unscoped(word) {
                    FieldExpr::Field(Field::Intrinsic(intrinsic))
                } else {
                    return Err(self.error(EXPECTED_FIELD));
                }
            }
            _ => return Err(self.error(EXPECTED_FIELD)),
        };
        self.advance()?;
        Ok((expr, 1))
    }
}

/// The spanset operator a punctuation token stands for.
fn spanset_op(punct: Punct) -> Option<SpansetOp> {
    Some(match punct {
        Punct::And => SpansetOp::And,
        Punct::Or => SpansetOp::Union,
        Punct::Gt => SpansetOp::Child,
        Punct::Lt => SpansetOp::Parent,
        Punct::Desc => SpansetOp::Descendant,
        Punct::Ance => SpansetOp::Ancestor,
        Punct::Tilde => SpansetOp::Sibling,
        Punct::NotChild => SpansetOp::NotChild,
        Punct::NotParent => SpansetOp::NotParent,
        Punct::NotDesc => SpansetOp::NotDescendant,
        Punct::NotAnce => SpansetOp::NotAncestor,
        Punct::NotRe => SpansetOp::NotSibling,
        Punct::UnionChild => SpansetOp::UnionChild,
        Punct::UnionParent => SpansetOp::UnionParent,
        Punct::UnionDesc => SpansetOp::UnionDescendant,
        Punct::UnionAnce => SpansetOp::UnionAncestor,
        Punct::UnionSibl => SpansetOp::UnionSibling,
        _ => return None,
    })
}

/// The arithmetic operator a punctuation token stands for.
fn arithmetic_op(punct: Punct) -> Option<ArithmeticOp> {
    Some(match punct {
        Punct::Plus => ArithmeticOp::Add,
        Punct::Minus => ArithmeticOp::Sub,
        Punct::Star => ArithmeticOp::Mul,
        Punct::Slash => ArithmeticOp::Div,
        Punct::Percent => ArithmeticOp::Mod,
        Punct::Caret => ArithmeticOp::Pow,
        _ => return None,
    })
}

/// The field-expression operator a punctuation token stands for.
fn binary_op(punct: Punct) -> Option<BinaryOp> {
    Some(match punct {
        Punct::Plus => BinaryOp::Add,
        Punct::Minus => BinaryOp::Sub,
        Punct::Star => BinaryOp::Mul,
        Punct::Slash => BinaryOp::Div,
        Punct::Percent => BinaryOp::Mod,
        Punct::Caret => BinaryOp::Pow,
        Punct::Eq => BinaryOp::Eq,
        Punct::Neq => BinaryOp::Neq,
        Punct::Lt => BinaryOp::Lt,
        Punct::Lte => BinaryOp::Lte,
        Punct::Gt => BinaryOp::Gt,
        Punct::Gte => BinaryOp::Gte,
        Punct::Re => BinaryOp::Regex,
        Punct::NotRe => BinaryOp::NotRegex,
        Punct::And => BinaryOp::And,
        Punct::Or => BinaryOp::Or,
        _ => return None,
    })
}
