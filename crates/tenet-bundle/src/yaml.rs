//! YAML documents into JSON values under a size and a depth bound: bundle
//! data files here, and request bodies in the server (inputs, data writes).
//! Everything a YAML text can make the process spend is bounded before or
//! while it is spent; this module never allocates in proportion to what
//! aliases expand to, and never hands serde_yaml_ng a text it would scan in
//! quadratic time.
//!
//! Two threats, two guards:
//!
//! - **Aliases.** A YAML alias repeats a node wherever it is written, so a
//!   few KiB of YAML can describe gigabytes of data: `a: &a [1, 1, …]`
//!   followed by a list of `*a` is quadratic, and passes serde_yaml_ng's
//!   repetition limit (which caps alias jumps at 100 per event, not the size
//!   they expand to). Building the value here charges every node and every
//!   byte of every string and key against [`YamlLimits::max_size`], and
//!   stops as soon as the document grows past it.
//! - **Nesting.** serde_yaml_ng first collects every event of a document
//!   (its own recursion limit of 128 applies only afterwards, when values
//!   are built), and libyaml's scanner walks its whole stack of possible
//!   simple keys on every token: a flow mapping `{a: {a: …` 40,000 deep took
//!   8.5 s, and 1,000,000 deep (a 2 KB gzipped body) never finished. So the
//!   text is pre-scanned ([`exceeds_depth`], linear, no allocation but the
//!   indentation stack) and refused when it nests past the limit before the
//!   parser sees it; the builder checks the exact depth as it goes.
//!
//! This module must not parse with serde_yaml_ng anywhere but in [`parse`].

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Bounds for one YAML document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Largest document, measured as one per node (scalar, sequence,
    /// mapping) plus the bytes of every string and key, aliases expanded.
    /// A JSON text never measures more than its own length.
    pub max_size: u64,
    /// Deepest nesting of sequences and mappings (`[[1]]` is 2).
    pub max_depth: usize,
}

impl YamlLimits {
    /// The bound used for bundle data files: no alias-free document can
    /// measure past 4 × its text plus 4 KiB, so anything bigger was blown up
    /// by aliases.
    pub fn for_text(len: usize, max_depth: usize) -> Self {
        Self {
            max_size: (len as u64).saturating_mul(4).saturating_add(4096),
            max_depth,
        }
    }
}

/// Why a YAML document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum YamlError {
    /// The document (aliases expanded) measures more than the size bound.
    #[error("the YAML document expands past the limit of {limit} (nodes plus string bytes, aliases expanded)")]
    TooLarge {
        /// The bound, [`YamlLimits::max_size`].
        limit: u64,
    },
    /// The document nests deeper than the depth bound.
    #[error("the YAML document nests deeper than the limit of {limit}")]
    TooDeep {
        /// The bound, [`YamlLimits::max_depth`].
        limit: usize,
    },
    /// The text is not YAML (serde_yaml_ng's message, with its position).
    #[error("{reason}")]
    Syntax {
        /// What the parser said.
        reason: String,
    },
}

/// Parses one YAML document into a JSON value within `limits`.
///
/// ```
/// use tenet_bundle::yaml::{parse, YamlError, YamlLimits};
/// let limits = YamlLimits { max_size: 100, max_depth: 2 };
/// assert_eq!(parse(b"a: [1, 2]", limits).unwrap(), serde_json::json!({"a": [1, 2]}));
/// assert_eq!(parse(b"a: [[1]]", limits), Err(YamlError::TooDeep { limit: 2 }));
/// let bomb = format!("a: &a [{}]\nb: [{}]", "x,".repeat(20), "*a,".repeat(20));
/// let limits = YamlLimits { max_depth: 3, ..limits };
/// assert_eq!(parse(bomb.as_bytes(), limits), Err(YamlError::TooLarge { limit: 100 }));
/// ```
pub fn parse(bytes: &[u8], limits: YamlLimits) -> Result<Value, YamlError> {
    if exceeds_depth(bytes, limits.max_depth) {
        return Err(YamlError::TooDeep {
            limit: limits.max_depth,
        });
    }
    let left = Cell::new(limits.max_size);
    let tripped = Cell::new(None);
    let seed = Bounded {
        left: &left,
        max_size: limits.max_size,
        depth: 0,
        max_depth: limits.max_depth,
        tripped: &tripped,
    };
    seed.deserialize(serde_yaml_ng::Deserializer::from_slice(bytes))
        .map_err(|e| {
            tripped.take().unwrap_or_else(|| YamlError::Syntax {
                reason: e.to_string(),
            })
        })
}

/// A bundle data file: aliases bounded by [`YamlLimits::for_text`], nesting
/// by the bundle's `max_json_depth`.
pub(crate) fn from_slice(bytes: &[u8], max_depth: usize) -> Result<Value, YamlError> {
    parse(bytes, YamlLimits::for_text(bytes.len(), max_depth))
}

#[derive(Clone, Copy)]
struct Bounded<'a> {
    left: &'a Cell<u64>,
    max_size: u64,
    depth: usize,
    max_depth: usize,
    /// Which bound stopped the build: serde's errors are strings, so the
    /// typed error is kept aside and returned instead of the message.
    tripped: &'a Cell<Option<YamlError>>,
}

impl Bounded<'_> {
    fn charge<E: serde::de::Error>(self, cost: usize) -> Result<(), E> {
        match self.left.get().checked_sub(cost as u64) {
            Some(rest) => {
                self.left.set(rest);
                Ok(())
            }
            None => Err(self.trip(YamlError::TooLarge {
                limit: self.max_size,
            })),
        }
    }

    fn trip<E: serde::de::Error>(self, error: YamlError) -> E {
        let message = error.to_string();
        self.tripped.set(Some(error));
        E::custom(message)
    }

    /// The seed for the children of a collection, refused past the depth.
    fn nested<E: serde::de::Error>(self) -> Result<Self, E> {
        if self.depth >= self.max_depth {
            return Err(self.trip(YamlError::TooDeep {
                limit: self.max_depth,
            }));
        }
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.charge(1 + v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.charge(1 + v.len())?;
        Ok(Value::String(v))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(1)?;
        let child = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(child)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(1)?;
        let child = self.nested()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.charge(key.len())?;
            let value = map.next_value_seed(child)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// True when the YAML text nests sequences and mappings deeper than
/// `limit`, judged in one pass over the bytes before any parser runs.
///
/// Why a scanner of our own: libyaml's cost is quadratic in the nesting of
/// flow collections, and serde_yaml_ng reads every event of a document
/// before its recursion limit applies, so by the time anything else could
/// see the depth the time is already spent. Counting brackets alone is not
/// enough either way: brackets inside quoted or block scalars, comments and
/// tags are not structure (a bundle with regexes in strings must not be
/// refused), and an attacker who can make a counter skip real brackets (a
/// quote the counter thinks opens a string) gets the quadratic parse back.
/// So this follows libyaml's scanner (unsafe-libyaml 0.2.11,
/// `scanner.rs`) token by token wherever a token can change what comes
/// next: comments, the three kinds of scalars with libyaml's own rules for
/// where each ends (plain scalars continue across lines while indented past
/// the enclosing block; block scalars detect their indentation exactly as
/// `yaml_parser_scan_block_scalar_breaks` does), anchors, tags, directives,
/// document markers, the indentation stack (`roll_indent`/`unroll_indent`)
/// and the simple key whose column a block mapping opens at. Where libyaml
/// would stop with an error, what this scanner does afterwards does not
/// matter: the parser stops there too.
///
/// The depth counted is open flow collections plus the block indentation
/// stack, which is exactly how deep libyaml's collections nest except that
/// a sequence written at its parent mapping's indentation (`a:\n- 1`) does
/// not push an indentation: the count may be lower than the document's
/// depth, never higher, so no document within the limit is refused, and the
/// builder's exact check catches the rest after a parse that is at most
/// linear in the text times the limit.
pub fn exceeds_depth(text: &[u8], limit: usize) -> bool {
    Scanner {
        t: text,
        i: 0,
        col: 0,
        line: 0,
        chars: 0,
    }
    .exceeds(limit)
}

struct Scanner<'a> {
    t: &'a [u8],
    i: usize,
    /// Column and line of `i`, in characters as libyaml counts them.
    col: usize,
    line: usize,
    /// Characters read so far (libyaml's `mark.index`).
    chars: usize,
}

/// A possible simple key at flow level 0: where a block mapping would open.
#[derive(Clone, Copy)]
struct Key {
    line: usize,
    col: usize,
    chars: usize,
}

impl Scanner<'_> {
    /// The byte `k` ahead; 0 past the end (libyaml's `IS_Z`, which a NUL in
    /// the text also is: libyaml's reader stops there).
    fn at(&self, k: usize) -> u8 {
        self.t.get(self.i + k).copied().unwrap_or(0)
    }

    fn eof(&self) -> bool {
        self.at(0) == 0
    }

    /// Length of the line break `k` bytes ahead (0 when there is none):
    /// CR, LF, CR LF, and the Unicode breaks libyaml also honours.
    fn brk(&self, k: usize) -> usize {
        match (self.at(k), self.at(k + 1), self.at(k + 2)) {
            (b'\r', b'\n', _) => 2,
            (b'\r' | b'\n', _, _) => 1,
            (0xC2, 0x85, _) => 2,
            (0xE2, 0x80, 0xA8 | 0xA9) => 3,
            _ => 0,
        }
    }

    fn blank(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }

    fn blankz(&self, k: usize) -> bool {
        self.at(k) == 0 || self.blank(k) || self.brk(k) > 0
    }

    /// Skips one character (all its UTF-8 bytes).
    fn skip(&mut self) {
        if self.eof() {
            return;
        }
        self.i += 1;
        while self.t.get(self.i).is_some_and(|b| b & 0xC0 == 0x80) {
            self.i += 1;
        }
        self.col += 1;
        self.chars += 1;
    }

    /// Skips a line break, if there is one.
    fn skip_break(&mut self) -> bool {
        let n = self.brk(0);
        if n > 0 {
            self.i += n;
            self.col = 0;
            self.line += 1;
            self.chars += 1;
        }
        n > 0
    }

    fn skip_to_break(&mut self) {
        while !self.eof() && self.brk(0) == 0 {
            self.skip();
        }
    }

    fn document_marker(&self) -> bool {
        self.col == 0
            && ((self.at(0) == b'-' && self.at(1) == b'-' && self.at(2) == b'-')
                || (self.at(0) == b'.' && self.at(1) == b'.' && self.at(2) == b'.'))
            && self.blankz(3)
    }

    fn exceeds(mut self, limit: usize) -> bool {
        let mut flow = 0usize;
        // Columns of the open block collections (libyaml's `indents` plus
        // its current `indent`).
        let mut indents: Vec<usize> = Vec::new();
        let mut key_allowed = true;
        let mut key: Option<Key> = None;
        loop {
            // yaml_parser_scan_to_next_token
            loop {
                if self.col == 0 && self.t[self.i..].starts_with(b"\xEF\xBB\xBF") {
                    self.i += 3;
                }
                while self.blank(0) {
                    self.skip();
                }
                if self.at(0) == b'#' {
                    self.skip_to_break();
                }
                if !self.skip_break() {
                    break;
                }
                if flow == 0 {
                    key_allowed = true;
                }
            }
            if self.eof() {
                return false;
            }
            let col = self.col;
            if flow == 0 {
                while indents.last().is_some_and(|&c| c > col) {
                    indents.pop();
                }
            }
            // A simple key stops being possible on the next line or 1024
            // characters on (yaml_parser_stale_simple_keys).
            if key.is_some_and(|k| k.line != self.line || k.chars + 1024 < self.chars) {
                key = None;
            }
            let here = Key {
                line: self.line,
                col,
                chars: self.chars,
            };
            // The simple key a scalar, flow collection, anchor or tag may
            // start (yaml_parser_save_simple_key), at flow level 0 only:
            // deeper keys open no block mapping.
            let save_key = move |key: &mut Option<Key>, allowed: bool| {
                if flow == 0 && allowed {
                    *key = Some(here);
                }
            };
            let current = indents.last().map_or(-1, |&c| c as isize);
            // Opens a block collection at `col` (yaml_parser_roll_indent).
            let roll = move |indents: &mut Vec<usize>, at: usize| {
                if current < at as isize {
                    indents.push(at);
                }
            };
            let c = self.at(0);
            if col == 0 && c == b'%' {
                self.skip_to_break();
                continue;
            }
            if self.document_marker() {
                indents.clear();
                key = None;
                key_allowed = false;
                for _ in 0..3 {
                    self.skip();
                }
                continue;
            }
            match c {
                b'[' | b'{' => {
                    save_key(&mut key, key_allowed);
                    flow += 1;
                    key_allowed = true;
                    self.skip();
                }
                b']' | b'}' => {
                    flow = flow.saturating_sub(1);
                    key_allowed = false;
                    self.skip();
                }
                b',' => {
                    key_allowed = true;
                    self.skip();
                }
                // In a flow collection these remove the key of that level,
                // not the one a block mapping would open at.
                b'-' if self.blankz(1) => {
                    if flow == 0 {
                        roll(&mut indents, col);
                        key = None;
                    }
                    key_allowed = true;
                    self.skip();
                }
                b'?' if flow > 0 || self.blankz(1) => {
                    if flow == 0 {
                        roll(&mut indents, col);
                        key = None;
                    }
                    key_allowed = flow == 0;
                    self.skip();
                }
                b':' if flow > 0 || self.blankz(1) => {
                    if flow == 0 {
                        match key.take() {
                            Some(k) => {
                                roll(&mut indents, k.col);
                                key_allowed = false;
                            }
                            None => {
                                roll(&mut indents, col);
                                key_allowed = true;
                            }
                        }
                    } else {
                        key_allowed = false;
                    }
                    self.skip();
                }
                b'*' | b'&' => {
                    save_key(&mut key, key_allowed);
                    self.skip();
                    while self.at(0).is_ascii_alphanumeric() || matches!(self.at(0), b'_' | b'-') {
                        self.skip();
                    }
                    key_allowed = false;
                }
                b'!' => {
                    // A tag runs to a blank (its URI characters include
                    // brackets); in a flow collection a `,` may end it. If
                    // libyaml ends it earlier, it then requires a blank
                    // and stops with an error.
                    save_key(&mut key, key_allowed);
                    while !(self.blankz(0) || (flow > 0 && self.at(0) == b',')) {
                        self.skip();
                    }
                    key_allowed = false;
                }
                b'|' | b'>' if flow == 0 => {
                    key = None;
                    self.block_scalar(current);
                    key_allowed = true;
                }
                b'\'' | b'"' => {
                    save_key(&mut key, key_allowed);
                    self.quoted(c);
                    key_allowed = false;
                }
                _ => {
                    let plain = !matches!(
                        c,
                        b'-' | b'?'
                            | b':'
                            | b','
                            | b'['
                            | b']'
                            | b'{'
                            | b'}'
                            | b'#'
                            | b'&'
                            | b'*'
                            | b'!'
                            | b'|'
                            | b'>'
                            | b'\''
                            | b'"'
                            | b'%'
                            | b'@'
                            | b'`'
                    ) || (c == b'-' && !self.blank(1))
                        || (flow == 0 && matches!(c, b'?' | b':') && !self.blankz(1));
                    if !plain {
                        // libyaml stops here ("cannot start any token").
                        return false;
                    }
                    save_key(&mut key, key_allowed);
                    key_allowed = self.plain(flow, current);
                }
            }
            if flow + indents.len() > limit {
                return true;
            }
        }
    }

    /// A single- or double-quoted scalar (yaml_parser_scan_flow_scalar).
    fn quoted(&mut self, quote: u8) {
        self.skip();
        loop {
            if self.eof() || self.document_marker() {
                // libyaml: "found unexpected end of stream / document
                // indicator"; it stops.
                return;
            }
            match self.at(0) {
                b'\'' if quote == b'\'' && self.at(1) == b'\'' => {
                    self.skip();
                    self.skip();
                }
                b'\\' if quote == b'"' => {
                    self.skip();
                    if !self.skip_break() {
                        self.skip();
                    }
                }
                c if c == quote => {
                    self.skip();
                    return;
                }
                _ => {
                    if !self.skip_break() {
                        self.skip();
                    }
                }
            }
        }
    }

    /// A plain scalar (yaml_parser_scan_plain_scalar); true when it ended
    /// after a line break (a simple key may follow).
    fn plain(&mut self, flow: usize, current: isize) -> bool {
        let indent = current + 1;
        let mut leading_blanks = false;
        loop {
            if self.document_marker() || self.at(0) == b'#' {
                break;
            }
            while !self.blankz(0) {
                let c = self.at(0);
                if c == b':'
                    && (self.blankz(1)
                        || (flow > 0
                            && matches!(self.at(1), b',' | b'?' | b'[' | b']' | b'{' | b'}')))
                {
                    break;
                }
                if flow > 0 && matches!(c, b',' | b'[' | b']' | b'{' | b'}') {
                    break;
                }
                self.skip();
            }
            if !(self.blank(0) || self.brk(0) > 0) {
                break;
            }
            while self.blank(0) || self.brk(0) > 0 {
                if self.blank(0) {
                    self.skip();
                } else {
                    self.skip_break();
                    leading_blanks = true;
                }
            }
            if flow == 0 && (self.col as isize) < indent {
                break;
            }
        }
        leading_blanks
    }

    /// A literal or folded block scalar (yaml_parser_scan_block_scalar):
    /// its header, then every line indented to its content indentation.
    fn block_scalar(&mut self, current: isize) {
        self.skip();
        let mut increment = 0isize;
        for _ in 0..2 {
            match self.at(0) {
                b'+' | b'-' => self.skip(),
                d @ b'1'..=b'9' => {
                    increment = isize::from(d - b'0');
                    self.skip();
                }
                _ => {}
            }
        }
        while self.blank(0) {
            self.skip();
        }
        if self.at(0) == b'#' {
            self.skip_to_break();
        }
        if !self.skip_break() {
            // Anything else on the header line is an error for libyaml.
            return;
        }
        let mut indent = match increment {
            0 => 0,
            n if current >= 0 => current + n,
            n => n,
        };
        self.block_breaks(&mut indent, current);
        while self.col as isize == indent && !self.eof() {
            self.skip_to_break();
            if !self.skip_break() {
                return;
            }
            self.block_breaks(&mut indent, current);
        }
    }

    /// yaml_parser_scan_block_scalar_breaks: skips empty lines and the
    /// indentation of the next one, and fixes the content indentation
    /// (0 = not yet known) from the most indented of them.
    fn block_breaks(&mut self, indent: &mut isize, current: isize) {
        let mut max_indent = 0isize;
        loop {
            while (*indent == 0 || (self.col as isize) < *indent) && self.at(0) == b' ' {
                self.skip();
            }
            max_indent = max_indent.max(self.col as isize);
            if !self.skip_break() {
                break;
            }
        }
        if *indent == 0 {
            *indent = max_indent.max(current + 1).max(1);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
