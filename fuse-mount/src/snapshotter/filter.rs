//! containerd's filter expressions, as a List (Walk) request carries them.
//!
//! ```text
//! filters     := one string per filter; a snapshot matches if any filter matches
//! filter      := alternative ("||" alternative)*      `||`: an lcfs extension, OR
//! alternative := selector ("," selector)*               every selector must match
//! selector    := fieldpath [operator value]             no operator: the field is present
//! fieldpath   := field ("." field)*
//! field       := quoted | [A-Za-z0-9_-]+
//! operator    := "==" | "!=" | "~="                      equal, not equal, regex match
//! value       := quoted | run of characters up to whitespace, "," or "||"
//! quoted      := "…" (Go escapes) | /…/ | |…|
//! ```
//!
//! Fields of a snapshot (as containerd's snapshot adaptor names them): `kind` (`active`,
//! `view`, `committed`), `name`, `parent` (empty for none, but present), and
//! `labels.<key>` (the rest of the path joined by `.`, so `labels."a/b.c"` and
//! `labels.a.b` both work). Any other field is absent. As in containerd, `!=` and `~=`
//! compare an absent field as the empty string.
//!
//! Invariants: parsing is total (an error, never a panic, on any input); an empty filter
//! string and an empty list match everything.

use std::collections::HashMap;

use regex::Regex;

/// A parsed list of filters.
#[derive(Debug)]
pub struct Filters {
    /// Any of these alternatives; each is a conjunction of selectors.
    alternatives: Vec<Vec<Selector>>,
    /// An empty list, or an empty string among them: everything matches.
    always: bool,
}

#[derive(Debug)]
struct Selector {
    path: Vec<String>,
    op: Op,
}

#[derive(Debug)]
enum Op {
    Present,
    Equal(String),
    NotEqual(String),
    Matches(Regex),
}

/// What a filter sees of a snapshot.
pub struct Fields<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub parent: &'a str,
    pub labels: &'a HashMap<String, String>,
}

impl Fields<'_> {
    fn get(&self, path: &[String]) -> Option<&str> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest.is_empty()) {
            ("kind", true) => Some(self.kind),
            ("name", true) => Some(self.name),
            ("parent", true) => Some(self.parent),
            ("labels", false) => self.labels.get(&rest.join(".")).map(String::as_str),
            _ => None,
        }
    }
}

impl Filters {
    /// Parses every filter; the error names the filter and where it went wrong.
    pub fn parse(filters: &[String]) -> Result<Filters, String> {
        let mut parsed = Filters {
            alternatives: Vec::new(),
            always: filters.is_empty(),
        };
        for filter in filters {
            if filter.trim().is_empty() {
                parsed.always = true;
                continue;
            }
            let alternatives = Parser::new(filter)
                .filter()
                .map_err(|(at, why)| format!("filter {filter:?}, at byte {at}: {why}"))?;
            parsed.alternatives.extend(alternatives);
        }
        Ok(parsed)
    }

    pub fn matches(&self, fields: &Fields<'_>) -> bool {
        self.always
            || self
                .alternatives
                .iter()
                .any(|all| all.iter().all(|s| s.matches(fields)))
    }
}

impl Selector {
    fn matches(&self, fields: &Fields<'_>) -> bool {
        let value = fields.get(&self.path);
        match &self.op {
            Op::Present => value.is_some(),
            Op::Equal(v) => value == Some(v.as_str()),
            Op::NotEqual(v) => value.unwrap_or_default() != v,
            Op::Matches(re) => re.is_match(value.unwrap_or_default()),
        }
    }
}

/// A parse error: the byte offset and what was expected.
type ParseError = (usize, String);

struct Parser<'a> {
    input: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser { input, at: 0 }
    }

    fn rest(&self) -> &'a str {
        self.input.get(self.at..).unwrap_or_default()
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.rest().chars().next()
    }

    fn error<T>(&self, why: impl Into<String>) -> Result<T, ParseError> {
        Err((self.at, why.into()))
    }

    fn filter(&mut self) -> Result<Vec<Vec<Selector>>, ParseError> {
        let mut alternatives = vec![self.alternative()?];
        loop {
            self.skip_space();
            if self.rest().is_empty() {
                return Ok(alternatives);
            }
            if !self.rest().starts_with("||") {
                return self.error("expected `,`, `||` or the end");
            }
            self.at += 2;
            alternatives.push(self.alternative()?);
        }
    }

    fn alternative(&mut self) -> Result<Vec<Selector>, ParseError> {
        let mut selectors = vec![self.selector()?];
        while self.peek() == Some(',') {
            self.at += 1;
            selectors.push(self.selector()?);
        }
        Ok(selectors)
    }

    fn selector(&mut self) -> Result<Selector, ParseError> {
        let path = self.fieldpath()?;
        self.skip_space();
        let rest = self.rest();
        let op = if rest.is_empty() || rest.starts_with(',') || rest.starts_with("||") {
            return Ok(Selector {
                path,
                op: Op::Present,
            });
        } else if let Some(op) = ["==", "!=", "~="]
            .into_iter()
            .find(|op| rest.starts_with(op))
        {
            op
        } else {
            return self.error("expected an operator (`==`, `!=` or `~=`), `,` or the end");
        };
        self.at += 2;
        let value = self.value()?;
        let op = match op {
            "==" => Op::Equal(value),
            "!=" => Op::NotEqual(value),
            _ => Op::Matches(
                Regex::new(&value)
                    .map_err(|e| (self.at, format!("bad regular expression: {e}")))?,
            ),
        };
        Ok(Selector { path, op })
    }

    fn fieldpath(&mut self) -> Result<Vec<String>, ParseError> {
        let mut path = vec![self.field()?];
        while self.peek() == Some('.') {
            self.at += 1;
            path.push(self.field()?);
        }
        Ok(path)
    }

    fn field(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(quote @ ('"' | '/' | '|')) => self.quoted(quote),
            Some(c) if is_field_char(c) => {
                let rest = self.rest();
                let len = rest.find(|c| !is_field_char(c)).unwrap_or(rest.len());
                self.at += len;
                Ok(rest.get(..len).unwrap_or_default().to_string())
            }
            _ => self.error("expected a field name or a quoted string"),
        }
    }

    fn value(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(quote @ ('"' | '/' | '|')) => self.quoted(quote),
            Some(c) if c != ',' => {
                let rest = self.rest();
                let mut len = rest
                    .find(|c: char| c == ',' || c.is_whitespace())
                    .unwrap_or(rest.len());
                if let Some(or) = rest.get(..len).and_then(|v| v.find("||")) {
                    len = or;
                }
                self.at += len;
                Ok(rest.get(..len).unwrap_or_default().to_string())
            }
            _ => self.error("expected a value"),
        }
    }

    /// A string between two `quote`s; `"…"` takes Go's escapes, `/…/` and `|…|` only an
    /// escaped delimiter (they hold regular expressions).
    fn quoted(&mut self, quote: char) -> Result<String, ParseError> {
        let start = self.at;
        let mut chars = self.rest().char_indices().skip(1);
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.at += i + c.len_utf8();
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, escaped)) = chars.next() else {
                break;
            };
            if escaped == quote {
                out.push(quote);
            } else if quote != '"' {
                out.push('\\');
                out.push(escaped);
            } else {
                out.push(go_escape(escaped, &mut chars).ok_or((start, "bad escape".to_string()))?);
            }
        }
        Err((start, format!("the string quoted by {quote} is not closed")))
    }
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The character of escape `\c…` in a Go string literal (`chars` holds what follows `c`).
fn go_escape(c: char, chars: &mut impl Iterator<Item = (usize, char)>) -> Option<char> {
    let digits = |chars: &mut dyn Iterator<Item = (usize, char)>, n: usize, radix: u32| {
        let text: String = chars.take(n).map(|(_, c)| c).collect();
        (text.len() == n)
            .then(|| u32::from_str_radix(&text, radix).ok())
            .flatten()
            .and_then(char::from_u32)
    };
    Some(match c {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        '\\' => '\\',
        'x' => digits(chars, 2, 16)?,
        'u' => digits(chars, 4, 16)?,
        'U' => digits(chars, 8, 16)?,
        '0'..='7' => {
            let rest: String = chars.take(2).map(|(_, c)| c).collect();
            char::from_u32(u32::from_str_radix(&format!("{c}{rest}"), 8).ok()?)?
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(
        kind: &'a str,
        name: &'a str,
        parent: &'a str,
        labels: &'a HashMap<String, String>,
    ) -> Fields<'a> {
        Fields {
            kind,
            name,
            parent,
            labels,
        }
    }

    fn matches(filters: &[&str], f: &Fields<'_>) -> bool {
        let filters: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        Filters::parse(&filters).expect("parses").matches(f)
    }

    #[test]
    fn selectors_match_as_containerd_defines_them() {
        let labels: HashMap<String, String> = [
            ("containerd.io/gc.root", "x"),
            ("a.b", "dotted"),
            ("empty", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let f = fields("committed", "default/1/sha256:ab", "", &labels);
        assert!(matches(&[], &f));
        assert!(matches(&[""], &f));
        assert!(matches(&["kind==committed"], &f));
        assert!(!matches(&["kind==active"], &f));
        assert!(matches(&["kind!=active"], &f));
        assert!(matches(&["name==default/1/sha256:ab"], &f));
        assert!(matches(&[r#"name=="default/1/sha256:ab""#], &f));
        assert!(matches(&["parent==\"\""], &f));
        assert!(matches(&["parent"], &f));
        assert!(matches(&[r#"labels."containerd.io/gc.root""#], &f));
        assert!(matches(&[r#"labels."containerd.io/gc.root"==x"#], &f));
        assert!(matches(&["labels.a.b==dotted"], &f));
        assert!(matches(&["labels.empty"], &f));
        assert!(!matches(&["labels.missing"], &f));
        assert!(matches(&["labels.missing!=x"], &f));
        assert!(!matches(&["nosuchfield"], &f));
        assert!(matches(&["name~=^default/"], &f));
        assert!(matches(&["name~=/sha256:[a-f]+$/"], &f));
        assert!(!matches(&["name~=|^moby|"], &f));
        // `,` is AND; separate filters and `||` are OR.
        assert!(!matches(&["kind==committed,name==other"], &f));
        assert!(matches(&["kind==committed , labels.a.b==dotted"], &f));
        assert!(matches(&["kind==active", "kind==committed"], &f));
        assert!(matches(&["kind==active||kind==committed"], &f));
        assert!(matches(&["kind==active || name==x || labels.a.b"], &f));
        assert!(!matches(&["kind==active || name==x"], &f));
    }

    #[test]
    fn quoted_strings_take_go_escapes() {
        let labels: HashMap<String, String> = [("k\"q", "a\tb\u{e9}")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let f = fields("active", "n", "p", &labels);
        assert!(matches(&[r#"labels."k\"q"=="a\tb\u00e9""#], &f));
        assert!(matches(&[r#"labels."k\x22q"=="a\011b\xe9""#], &f));
    }

    #[test]
    fn malformed_filters_are_errors_not_panics() {
        for bad in [
            "kind==",
            "kind=active",
            "==x",
            "kind==a b",
            "labels.\"open",
            "labels.",
            "kind==active,",
            "kind==active||",
            "name~=(",
            r#"labels."\q""#,
            r#"labels."\x4""#,
            "ü",
            ",",
        ] {
            let e = Filters::parse(&[bad.to_string()]).expect_err(bad);
            assert!(e.contains("at byte"), "{bad}: {e}");
        }
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics() {
        let alphabet = [
            "k", "=", "!", "~", ",", "|", ".", "\"", "\\", "/", " ", "x", "é", "u",
        ];
        let mut state = 0x1234_5678_u64;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(state % 12) {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                s.push_str(alphabet[(state >> 33) as usize % alphabet.len()]);
            }
            let _ = Filters::parse(&[s]);
        }
    }
}
