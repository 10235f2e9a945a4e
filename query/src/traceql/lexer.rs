//! Splits TraceQL text into tokens.
//!
//! Attributes are lexed whole, as Tempo does: after `.`, `span.`, `resource.`, `event.`,
//! `link.`, `instrumentation.` or `parent.` everything up to whitespace or one of
//! `{ } ( ) = ~ ! < > & | ^ ,` belongs to the name (so `span.http.request.method` and
//! `resource.k8s.pod-name` are single attributes), and `"..."` parts are quoted name pieces.
//! Scoped intrinsics (`span:name`, `trace:id`, ...) are single tokens too.

use super::ast::{Attribute, AttributeScope, Intrinsic};
use super::parser::ParseError;

/// Punctuation and operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Punct {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Eq,
    Neq,
    Re,
    NotRe,
    Gt,
    Gte,
    Lt,
    Lte,
    Desc,
    Ance,
    Tilde,
    NotChild,
    NotParent,
    NotDesc,
    NotAnce,
    UnionChild,
    UnionParent,
    UnionDesc,
    UnionAnce,
    UnionSibl,
    And,
    Or,
    Not,
    Pipe,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
}

/// Operators by spelling, longer spellings first so that the longest match wins.
const PUNCTUATION: &[(&str, Punct)] = &[
    ("!>>", Punct::NotDesc),
    ("!<<", Punct::NotAnce),
    ("&>>", Punct::UnionDesc),
    ("&<<", Punct::UnionAnce),
    ("!=", Punct::Neq),
    ("!~", Punct::NotRe),
    ("!>", Punct::NotChild),
    ("!<", Punct::NotParent),
    ("=~", Punct::Re),
    (">>", Punct::Desc),
    (">=", Punct::Gte),
    ("<<", Punct::Ance),
    ("<=", Punct::Lte),
    ("&&", Punct::And),
    ("&>", Punct::UnionChild),
    ("&<", Punct::UnionParent),
    ("&~", Punct::UnionSibl),
    ("||", Punct::Or),
    ("{", Punct::LBrace),
    ("}", Punct::RBrace),
    ("(", Punct::LParen),
    (")", Punct::RParen),
    (",", Punct::Comma),
    ("=", Punct::Eq),
    (">", Punct::Gt),
    ("<", Punct::Lt),
    ("~", Punct::Tilde),
    ("!", Punct::Not),
    ("|", Punct::Pipe),
    ("+", Punct::Plus),
    ("-", Punct::Minus),
    ("*", Punct::Star),
    ("/", Punct::Slash),
    ("%", Punct::Percent),
    ("^", Punct::Caret),
];

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// A word: keyword, function name or unscoped intrinsic.
    Ident(String),
    /// A scoped or unscoped attribute.
    Attribute(Attribute),
    /// A scoped intrinsic such as `span:name`.
    Intrinsic(Intrinsic),
    /// A string literal (unescaped).
    String(String),
    /// A non-negative integer literal.
    Integer(i64),
    /// A non-negative float literal.
    Float(f64),
    /// A non-negative duration literal, in nanoseconds.
    Duration(i64),
    /// Punctuation or an operator.
    Punct(Punct),
    /// The end of the input.
    Eof,
}

/// A token and where it is in the input (byte offsets).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

/// The duration units with their length in nanoseconds; `ms` before `m` so it wins.
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
    ("w", 7 * 86_400_000_000_000),
    ("y", 365 * 86_400_000_000_000),
];

const EXPECTED_DURATION_UNIT: &str = "a duration unit (ns, us, µs, ms, s, m, h, d, w or y)";

/// Whether `c` can appear unquoted in an attribute name.
pub(crate) fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ',' | '"'
        )
}

/// Whether `c` can start a word.
fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// Whether `c` can continue a word.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Describes the text at `position` for an error's `found`.
pub(crate) fn describe_text(text: &str) -> String {
    if text.is_empty() {
        return "end of input".to_string();
    }
    const MAX_CHARS: usize = 40;
    if text.chars().count() > MAX_CHARS {
        let shortened: String = text.chars().take(MAX_CHARS).collect();
        format!("{:?}", format!("{shortened}…"))
    } else {
        format!("{text:?}")
    }
}

/// The lexer: hands out one token at a time.
pub(crate) struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `input`.
    pub fn new(input: &'a str) -> Self {
        Lexer { input, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn char_at(&self, offset: usize) -> Option<char> {
        self.input.get(offset..).and_then(|s| s.chars().next())
    }

    /// An error at byte `position`, describing the single character found there.
    fn error_at_char(&self, position: usize, expected: &str) -> ParseError {
        let found = match self.char_at(position) {
            Some(c) => describe_text(&c.to_string()),
            None => describe_text(""),
        };
        ParseError::new(self.input, position, expected, found)
    }

    /// An error at byte `position`, describing `text`.
    fn error_with_text(&self, position: usize, expected: &str, text: &str) -> ParseError {
        ParseError::new(self.input, position, expected, describe_text(text))
    }

    /// Skips whitespace and `//` or `/* */` comments.
    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = self.rest();
            if let Some(c) = rest.chars().next()
                && c.is_whitespace()
            {
                self.pos += c.len_utf8();
            } else if rest.starts_with("//") {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(comment) = rest.strip_prefix("/*") {
                match comment.find("*/") {
                    Some(end) => self.pos += end + 4,
                    None => {
                        return Err(ParseError::new(
                            self.input,
                            self.input.len(),
                            "`*/` to close the comment",
                            describe_text(""),
                        ));
                    }
                }
            } else {
                return Ok(());
            }
        }
    }

    /// The next token (an [`TokenKind::Eof`] token at the end, repeatedly).
    pub fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok(Token {
                kind: TokenKind::Eof,
                start,
                end: start,
            });
        };
        let kind = match c {
            '"' => TokenKind::String(self.lex_string()?),
            '`' => TokenKind::String(self.lex_raw_string()?),
            '0'..='9' => self.lex_number()?,
            '.' if matches!(self.char_at(start + 1), Some('0'..='9')) => self.lex_number()?,
            '.' => {
                self.pos += 1;
                TokenKind::Attribute(Attribute {
                    scope: AttributeScope::None,
                    parent: false,
                    name: self.lex_attribute_name()?,
                })
            }
            c if is_word_start(c) => self.lex_word()?,
            _ => {
                let rest = self.rest();
                let Some((spelling, punct)) = PUNCTUATION
                    .iter()
                    .find(|(spelling, _)| rest.starts_with(spelling))
                else {
                    let expected = if c == '&' {
                        "`&&` or a union structural operator (`&>>`, `&>`, `&<<`, `&<`, `&~`)"
                    } else {
                        "a TraceQL token"
                    };
                    return Err(self.error_at_char(start, expected));
                };
                self.pos += spelling.len();
                TokenKind::Punct(*punct)
            }
        };
        Ok(Token {
            kind,
            start,
            end: self.pos,
        })
    }

    /// A word, a scoped attribute (`span.x`) or a scoped intrinsic (`span:name`).
    fn lex_word(&mut self) -> Result<TokenKind, ParseError> {
        let start = self.pos;
        let rest = self.rest();
        let len = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
        let word = &rest[..len];
        let after = start + len;
        match self.char_at(after) {
            Some('.') if word == "parent" => {
                self.pos = after + 1;
                let mut scope = AttributeScope::None;
                for candidate in [AttributeScope::Span, AttributeScope::Resource] {
                    if self.rest().starts_with(candidate.prefix()) {
                        self.pos += candidate.prefix().len();
                        scope = candidate;
                        break;
                    }
                }
                let name = self.lex_attribute_name()?;
                Ok(TokenKind::Attribute(Attribute {
                    scope,
                    parent: true,
                    name,
                }))
            }
            Some('.') if AttributeScope::from_word(word).is_some() => {
                let scope = AttributeScope::from_word(word).unwrap_or(AttributeScope::None);
                self.pos = after + 1;
                let name = self.lex_attribute_name()?;
                Ok(TokenKind::Attribute(Attribute {
                    scope,
                    parent: false,
                    name,
                }))
            }
            Some(':') if Intrinsic::scoped_names(word).is_some() => {
                let name_start = after + 1;
                let name_rest = &self.input[name_start..];
                let name_len = name_rest
                    .find(|c: char| !is_word_char(c))
                    .unwrap_or(name_rest.len());
                let name = &name_rest[..name_len];
                match Intrinsic::from_scoped(word, name) {
                    Some(intrinsic) => {
                        self.pos = name_start + name_len;
                        Ok(TokenKind::Intrinsic(intrinsic))
                    }
                    None => {
                        let names = Intrinsic::scoped_names(word).unwrap_or_default();
                        Err(self.error_with_text(
                            start,
                            &format!("an intrinsic of the `{word}:` scope ({names})"),
                            &self.input[start..name_start + name_len],
                        ))
                    }
                }
            }
            _ => {
                self.pos = after;
                Ok(TokenKind::Ident(word.to_string()))
            }
        }
    }

    /// An attribute name after its scope: unquoted characters and quoted parts.
    fn lex_attribute_name(&mut self) -> Result<String, ParseError> {
        let name_start = self.pos;
        let mut name = String::new();
        loop {
            match self.peek_char() {
                Some('"') => {
                    let quote_start = self.pos;
                    self.pos += 1;
                    loop {
                        match self.peek_char() {
                            None => {
                                return Err(ParseError::new(
                                    self.input,
                                    self.input.len(),
                                    format!(
                                        "`\"` to close the attribute name started at byte {quote_start}"
                                    ),
                                    describe_text(""),
                                ));
                            }
                            Some('"') => {
                                self.pos += 1;
                                break;
                            }
                            Some('\\') => match self.char_at(self.pos + 1) {
                                Some(escaped @ ('"' | '\\')) => {
                                    name.push(escaped);
                                    self.pos += 2;
                                }
                                _ => {
                                    let end = self.pos
                                        + 1
                                        + self.char_at(self.pos + 1).map_or(0, char::len_utf8);
                                    return Err(self.error_with_text(
                                        self.pos,
                                        "`\\\"` or `\\\\` (the escapes allowed in attribute names)",
                                        &self.input[self.pos..end],
                                    ));
                                }
                            },
                            Some(c) => {
                                name.push(c);
                                self.pos += c.len_utf8();
                            }
                        }
                    }
                }
                Some(c) if is_attribute_char(c) => {
                    name.push(c);
                    self.pos += c.len_utf8();
                }
                _ => break,
            }
        }
        if name.is_empty() {
            return Err(self.error_at_char(name_start, "an attribute name"));
        }
        Ok(name)
    }

    /// A double-quoted string with Go-style escapes.
    fn lex_string(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek_char() else {
                return Err(ParseError::new(
                    self.input,
                    self.input.len(),
                    format!("`\"` to close the string started at byte {open}"),
                    describe_text(""),
                ));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(value);
                }
                '\n' => {
                    return Err(self.error_at_char(
                        self.pos,
                        "`\"` to close the string before the end of the line",
                    ));
                }
                '\\' => value.push(self.lex_escape()?),
                c => {
                    value.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    /// One escape sequence in a double-quoted string, starting at the backslash.
    fn lex_escape(&mut self) -> Result<char, ParseError> {
        let start = self.pos;
        let Some(kind) = self.char_at(start + 1) else {
            return Err(self.error_at_char(start + 1, "an escape sequence after `\\`"));
        };
        let (digits, radix) = match kind {
            'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' | '"' => {
                self.pos += 2;
                return Ok(match kind {
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\u{b}',
                    other => other,
                });
            }
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (3, 8),
            _ => {
                let end = start + 1 + kind.len_utf8();
                return Err(self.error_with_text(
                    start,
                    "a valid escape sequence (\\n, \\t, \\\", \\\\, \\xHH, \\uHHHH, ...)",
                    &self.input[start..end],
                ));
            }
        };
        let digits_start = if radix == 8 { start + 1 } else { start + 2 };
        let text = self.input.get(digits_start..digits_start + digits);
        let value = text
            .filter(|t| t.chars().all(|c| c.is_digit(radix)))
            .and_then(|t| u32::from_str_radix(t, radix).ok());
        let limited = matches!(kind, 'x' | '0'..='7');
        let ch = value
            .filter(|v| !limited || *v < 0x80)
            .and_then(char::from_u32);
        match ch {
            Some(ch) => {
                self.pos = digits_start + digits;
                Ok(ch)
            }
            None => {
                let end = self.input[start..]
                    .char_indices()
                    .nth(digits + if radix == 8 { 1 } else { 2 })
                    .map_or(self.input.len(), |(offset, _)| start + offset);
                let expected = if limited {
                    "an escape for an ASCII character (`\\x00` to `\\x7f`, `\\000` to `\\177`)"
                } else {
                    "a Unicode escape naming a valid character (`\\uHHHH`, `\\UHHHHHHHH`)"
                };
                Err(self.error_with_text(start, expected, &self.input[start..end]))
            }
        }
    }

    /// A backtick string: no escapes, may span lines.
    fn lex_raw_string(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        let body = &self.input[open + 1..];
        match body.find('`') {
            Some(len) => {
                self.pos = open + 1 + len + 1;
                Ok(body[..len].to_string())
            }
            None => Err(ParseError::new(
                self.input,
                self.input.len(),
                format!("'`' to close the string started at byte {open}"),
                describe_text(""),
            )),
        }
    }

    /// An integer, float or duration literal.
    fn lex_number(&mut self) -> Result<TokenKind, ParseError> {
        let start = self.pos;
        let bytes = self.input.as_bytes();
        let digits_from = |mut i: usize| {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            i
        };
        let mut end = digits_from(start);
        let mut is_float = false;
        if end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit() {
            is_float = true;
            end = digits_from(end + 1);
        }
        if end < bytes.len() && (bytes[end] == b'e' || bytes[end] == b'E') {
            let mut exponent = end + 1;
            if exponent < bytes.len() && (bytes[exponent] == b'+' || bytes[exponent] == b'-') {
                exponent += 1;
            }
            if exponent < bytes.len() && bytes[exponent].is_ascii_digit() {
                is_float = true;
                end = digits_from(exponent);
            }
        }
        if let Some(c) = self.char_at(end)
            && c.is_alphabetic()
        {
            // A unit follows: the whole run of letters, digits and dots is a duration.
            let run = &self.input[end..];
            let run_len = run
                .find(|c: char| !(c.is_alphanumeric() || c == '.'))
                .unwrap_or(run.len());
            let text = &self.input[start..end + run_len];
            return match parse_duration(text) {
                Ok(nanos) => {
                    self.pos = end + run_len;
                    Ok(TokenKind::Duration(nanos))
                }
                Err(expected) => Err(self.error_with_text(start, expected, text)),
            };
        }
        let text = &self.input[start..end];
        self.pos = end;
        if is_float {
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => Ok(TokenKind::Float(value)),
                _ => Err(self.error_with_text(start, "a finite floating-point number", text)),
            }
        } else {
            text.parse::<i64>().map(TokenKind::Integer).map_err(|_| {
                self.error_with_text(start, "an integer no larger than 9223372036854775807", text)
            })
        }
    }
}

/// Parses a duration such as `1.5s`, `150ms` or `1h30m` into nanoseconds. On failure, says
/// what was expected.
pub(crate) fn parse_duration(text: &str) -> Result<i64, &'static str> {
    const TOO_LONG: &str = "a duration no longer than 9223372036854775807ns (about 292 years)";
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut fraction = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            fraction = &after_dot[..len];
            rest = &after_dot[len..];
        }
        if int_part.is_empty() && fraction.is_empty() {
            return Err(EXPECTED_DURATION_UNIT);
        }
        let Some((unit, unit_nanos)) = DURATION_UNITS
            .iter()
            .find(|(unit, _)| rest.starts_with(unit))
        else {
            return Err(EXPECTED_DURATION_UNIT);
        };
        rest = &rest[unit.len()..];
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| TOO_LONG)?
        };
        total = whole
            .checked_mul(*unit_nanos)
            .and_then(|v| total.checked_add(v))
            .ok_or(TOO_LONG)?;
        // Fractions are exact to the nanosecond: digits beyond the 18th cannot matter.
        let fraction = &fraction[..fraction.len().min(18)];
        if !fraction.is_empty() {
            let numerator: u128 = fraction.parse().map_err(|_| TOO_LONG)?;
            let scale = 10u128.pow(fraction.len() as u32);
            total = total
                .checked_add(numerator * unit_nanos / scale)
                .ok_or(TOO_LONG)?;
        }
    }
    i64::try_from(total).map_err(|_| TOO_LONG)
}
