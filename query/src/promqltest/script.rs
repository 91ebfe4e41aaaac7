//! Parser for Prometheus' PromQL `.test` scripts (see `shared/conformance/FORMAT.md`).
//!
//! A script is a list of commands: `clear`, `load <interval>` (and `load_with_nhcb`) with
//! series lines, and `eval instant|range` with `expect` lines and expected results.

use basin_proto::storage::Label;
use std::fmt;

/// A script that could not be parsed, with its 1-based line.
#[derive(Debug, Clone)]
pub(crate) struct ParseError {
    pub(crate) line: usize,
    pub(crate) msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { line, msg: msg.into() })
}

/// One value position of a series line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Point {
    /// `_`: no sample here.
    Missing,
    /// A float (including the stale marker).
    Float(f64),
    /// A native histogram (`{{...}}`), which this runner does not model.
    Histogram,
}

/// A series line: labels (sorted) and expanded values.
#[derive(Debug, Clone)]
pub(crate) struct SeriesLine {
    pub(crate) labels: Vec<Label>,
    pub(crate) points: Vec<Point>,
}

/// How an `expect fail|warn|info` line constrains the message.
#[derive(Debug, Clone)]
pub(crate) enum MsgMatch {
    Any,
    Exact(String),
    Regex(String),
}

/// What kind of query an eval runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EvalKind {
    Instant { at: i64 },
    Range { start: i64, end: i64, step: i64 },
}

/// An `eval` command.
#[derive(Debug, Clone)]
pub(crate) struct Eval {
    pub(crate) line: usize,
    pub(crate) kind: EvalKind,
    pub(crate) query: String,
    pub(crate) fail: Option<MsgMatch>,
    pub(crate) warn: Vec<MsgMatch>,
    pub(crate) no_warn: bool,
    pub(crate) info: Vec<MsgMatch>,
    pub(crate) no_info: bool,
    pub(crate) ordered: bool,
    /// `expect range vector from a to b step s`.
    pub(crate) range_vector: Option<(i64, i64, i64)>,
    pub(crate) string: Option<String>,
    pub(crate) scalar: Option<f64>,
    pub(crate) results: Vec<SeriesLine>,
}

/// One command of a script.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Clear,
    Load {
        interval: i64,
        nhcb: bool,
        /// Whether the block has `@st` start-timestamp lines.
        start_timestamps: bool,
        series: Vec<SeriesLine>,
    },
    Eval(Box<Eval>),
}

/// Parses a whole script.
pub(crate) fn parse(text: &str) -> Result<Vec<Command>, ParseError> {
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
            if t.starts_with('#') { String::new() } else { t.to_string() }
        })
        .collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let lineno = i + 1;
        let word = l.split_whitespace().next().unwrap_or("").to_lowercase();
        if word == "clear" {
            cmds.push(Command::Clear);
            i += 1;
        } else if word.starts_with("load") {
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].is_empty() {
                body.push((i + 1, lines[i].as_str()));
                i += 1;
            }
            cmds.push(parse_load(lineno, l, &body)?);
        } else if word.starts_with("eval") {
            let mut ev = parse_eval_header(lineno, l)?;
            i += 1;
            while i < lines.len() && !lines[i].is_empty() {
                let done = parse_eval_body(&mut ev, i + 1, &lines[i])?;
                i += 1;
                if done {
                    break;
                }
            }
            cmds.push(Command::Eval(Box::new(ev)));
        } else {
            return err(lineno, format!("unknown command {word:?}"));
        }
    }
    Ok(cmds)
}

fn parse_load(line: usize, header: &str, body: &[(usize, &str)]) -> Result<Command, ParseError> {
    let mut parts = header.split_whitespace();
    let word = parts.next().unwrap_or("").to_lowercase();
    let nhcb = word == "load_with_nhcb";
    if word != "load" && !nhcb {
        return err(line, format!("unknown load command {word:?}"));
    }
    let Some(interval) = parts.next() else {
        return err(line, "load needs an interval");
    };
    let Some(interval) = parse_duration(interval) else {
        return err(line, format!("bad interval {interval:?}"));
    };
    let mut series: Vec<SeriesLine> = Vec::new();
    let mut start_timestamps = false;
    for &(ln, text) in body {
        let (desc, values) = split_series(text)
            .ok_or(ParseError { line: ln, msg: "cannot split series line".into() })?;
        if desc.ends_with("@st") {
            // Start timestamps of the next line's samples; not modelled.
            start_timestamps = true;
            continue;
        }
        let labels = parse_labels(desc).map_err(|m| ParseError { line: ln, msg: m })?;
        let points = parse_values(values).map_err(|m| ParseError { line: ln, msg: m })?;
        if let Some(prev) = series.iter_mut().find(|s| s.labels == labels) {
            prev.points = points;
        } else {
            series.push(SeriesLine { labels, points });
        }
    }
    Ok(Command::Load { interval, nhcb, start_timestamps, series })
}

fn parse_eval_header(line: usize, text: &str) -> Result<Eval, ParseError> {
    let (word, rest) = split_word(text);
    let word = word.to_lowercase();
    let mut ev = Eval {
        line,
        kind: EvalKind::Instant { at: 0 },
        query: String::new(),
        fail: None,
        warn: Vec::new(),
        no_warn: false,
        info: Vec::new(),
        no_info: false,
        ordered: false,
        range_vector: None,
        string: None,
        scalar: None,
        results: Vec::new(),
    };
    match word.as_str() {
        "eval" => {}
        "eval_fail" => ev.fail = Some(MsgMatch::Any),
        "eval_warn" => ev.warn.push(MsgMatch::Any),
        "eval_info" => ev.info.push(MsgMatch::Any),
        "eval_ordered" => ev.ordered = true,
        other => return err(line, format!("unknown eval command {other:?}")),
    }
    let (kind, rest) = split_word(rest);
    match kind {
        "instant" => {
            let (at_kw, rest) = split_word(rest);
            if at_kw != "at" {
                return err(line, "expected 'at' after 'eval instant'");
            }
            let (t, rest) = split_word(rest);
            let at =
                parse_duration(t).ok_or(ParseError { line, msg: format!("bad time {t:?}") })?;
            ev.kind = EvalKind::Instant { at };
            ev.query = rest.trim().to_string();
        }
        "range" => {
            let mut vals = [0i64; 3];
            let mut rest = rest;
            for (i, kw) in ["from", "to", "step"].iter().enumerate() {
                let (k, r) = split_word(rest);
                if k != *kw {
                    return err(line, format!("expected {kw:?} in eval range"));
                }
                let (v, r) = split_word(r);
                vals[i] =
                    parse_duration(v).ok_or(ParseError { line, msg: format!("bad time {v:?}") })?;
                rest = r;
            }
            if vals[1] < vals[0] {
                return err(line, "range end before start");
            }
            ev.kind = EvalKind::Range { start: vals[0], end: vals[1], step: vals[2] };
            ev.query = rest.trim().to_string();
        }
        other => {
            return err(line, format!("expected 'instant' or 'range', got {other:?}"));
        }
    }
    if ev.query.is_empty() {
        return err(line, "eval without a query");
    }
    Ok(ev)
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn parse_msg(line: usize, rest: &str) -> Result<MsgMatch, ParseError> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(MsgMatch::Any);
    }
    if let Some(m) = rest.strip_prefix("msg:") {
        return Ok(MsgMatch::Exact(m.trim().to_string()));
    }
    if let Some(r) = rest.strip_prefix("regex:") {
        return Ok(MsgMatch::Regex(r.trim().to_string()));
    }
    err(line, format!("bad expectation {rest:?}"))
}

/// Parses one body line; returns true when it ends the body (a bare number).
fn parse_eval_body(ev: &mut Eval, line: usize, text: &str) -> Result<bool, ParseError> {
    if let Some(rest) = text.strip_prefix("expect ") {
        let (kw, rest) = split_word(rest);
        match kw {
            "fail" => ev.fail = Some(parse_msg(line, rest)?),
            "warn" => ev.warn.push(parse_msg(line, rest)?),
            "info" => ev.info.push(parse_msg(line, rest)?),
            "no_warn" => ev.no_warn = true,
            "no_info" => ev.no_info = true,
            "ordered" => ev.ordered = true,
            "string" => {
                let s = rest.trim();
                ev.string = Some(unquote(s).map_err(|m| ParseError { line, msg: m })?);
            }
            "range" => {
                let toks: Vec<&str> = rest.split_whitespace().collect();
                if toks.len() != 7 || toks[0] != "vector" || toks[1] != "from" {
                    return err(line, "bad 'expect range vector' line");
                }
                let p = |s: &str| {
                    parse_duration(s).ok_or(ParseError { line, msg: format!("bad time {s:?}") })
                };
                ev.range_vector = Some((p(toks[2])?, p(toks[4])?, p(toks[6])?));
            }
            other => return err(line, format!("unknown expectation {other:?}")),
        }
        return Ok(false);
    }
    if let Some(v) = parse_bare_number(text) {
        ev.scalar = Some(v);
        return Ok(true);
    }
    let (desc, values) =
        split_series(text).ok_or(ParseError { line, msg: "cannot split result line".into() })?;
    let labels = parse_labels(desc).map_err(|m| ParseError { line, msg: m })?;
    let points = parse_values(values).map_err(|m| ParseError { line, msg: m })?;
    ev.results.push(SeriesLine { labels, points });
    Ok(false)
}

fn parse_bare_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.contains(char::is_whitespace) {
        return None;
    }
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else {
        None
    };
    if let Some(i) = int {
        let v = i as f64;
        return Some(if neg { -v } else { v });
    }
    parse_float(s)
}

/// A float as Go's `ParseFloat` reads the files' numbers (`Inf`, `NaN` in any case).
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => return Some(f64::NAN),
        _ => {}
    }
    if !lower.chars().all(|c| c.is_ascii_digit() || "+-.e".contains(c)) {
        return None;
    }
    lower.parse::<f64>().ok()
}

/// Parses a Prometheus duration (`1m30s`, `0`, `10s53ms`) into milliseconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    if b.is_empty() {
        return None;
    }
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: i64 = s[start..i].parse().ok()?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &s[ustart..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    Some(if neg { -total } else { total })
}

/// Splits `series values...` at the first whitespace outside braces and quotes.
fn split_series(text: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '{' => depth += 1,
            '}' => depth -= 1,
            c if c.is_whitespace() && depth == 0 => return Some((&text[..i], text[i..].trim())),
            _ => {}
        }
    }
    if depth == 0 && quote.is_none() { Some((text, "")) } else { None }
}

/// Unquotes a PromQL string literal (double/single quotes with Go escapes, or backticks).
pub(crate) fn unquote(s: &str) -> Result<String, String> {
    crate::promql::unquote_go(s)
}

/// Parses `name{a="b",...}`, `{__name__="x"}` or `{"quoted.name", a="b"}` into sorted labels.
pub(crate) fn parse_labels(desc: &str) -> Result<Vec<Label>, String> {
    let desc = desc.trim();
    let (name, rest) = match desc.find('{') {
        Some(i) => (&desc[..i], &desc[i..]),
        None => (desc, ""),
    };
    let mut labels: Vec<Label> = Vec::new();
    if !name.is_empty() {
        labels.push(Label { name: "__name__".into(), value: name.to_string() });
    }
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| format!("bad label set {rest}"))?;
        let mut s = inner.trim();
        while !s.is_empty() {
            // A label name (identifier or quoted), then `=` and a quoted value; a quoted string
            // alone is the metric name.
            let (lname, r) = take_name(s)?;
            let r = r.trim_start();
            if let Some(r) = r.strip_prefix('=') {
                let r = r.trim_start();
                let (val, r) = take_quoted(r)?;
                labels.push(Label { name: lname, value: val });
                s = r.trim_start();
            } else {
                labels.push(Label { name: "__name__".into(), value: lname });
                s = r;
            }
            s = s.strip_prefix(',').unwrap_or(s).trim_start();
        }
    }
    labels.retain(|l| !l.value.is_empty());
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(labels)
}

fn take_name(s: &str) -> Result<(String, &str), String> {
    if s.starts_with(['"', '\'', '`']) {
        return take_quoted(s);
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '.'))
        .unwrap_or(s.len());
    if end == 0 {
        return Err(format!("expected a label name at {s:?}"));
    }
    Ok((s[..end].to_string(), &s[end..]))
}

fn take_quoted(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().ok_or("expected a string")?;
    if !matches!(q, '"' | '\'' | '`') {
        return Err(format!("expected a quoted string at {s:?}"));
    }
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' && q != '`' {
            escaped = true;
        } else if c == q {
            return Ok((unquote(&s[..=i])?, &s[i + 1..]));
        }
    }
    Err(format!("unterminated string {s:?}"))
}

/// Expands a values list (`1 2 _ stale 0+10x5 _x3 {{...}}x2`).
pub(crate) fn parse_values(text: &str) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let item;
        if rest.starts_with("{{") {
            let end = find_histogram_item_end(rest)?;
            item = &rest[..end];
            rest = rest[end..].trim_start();
            let n = match item.rfind("}}x") {
                Some(i) => item[i + 3..].parse::<usize>().map_err(|e| e.to_string())? + 1,
                None => 1,
            };
            out.extend(std::iter::repeat_n(Point::Histogram, n));
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        item = &rest[..end];
        rest = rest[end..].trim_start();
        expand_item(item, &mut out)?;
    }
    Ok(out)
}

fn find_histogram_item_end(s: &str) -> Result<usize, String> {
    // Histogram items may contain spaces inside `{{ }}`; an item ends at whitespace outside.
    let mut depth = 0i32;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            c if c.is_ascii_whitespace() && depth == 0 => return Ok(i),
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return Err("unterminated histogram".to_string());
    }
    Ok(s.len())
}

fn expand_item(item: &str, out: &mut Vec<Point>) -> Result<(), String> {
    if item == "_" {
        out.push(Point::Missing);
        return Ok(());
    }
    if item.eq_ignore_ascii_case("stale") {
        out.push(Point::Float(f64::from_bits(basin_proto::STALE_NAN_BITS)));
        return Ok(());
    }
    if let Some(k) = item.strip_prefix("_x") {
        let k: usize = k.parse().map_err(|_| format!("bad item {item:?}"))?;
        out.extend(std::iter::repeat_n(Point::Missing, k));
        return Ok(());
    }
    if let Some(xi) = item.rfind('x') {
        let (head, k) = (&item[..xi], &item[xi + 1..]);
        if let Ok(k) = k.parse::<usize>() {
            // `A+BxK`, `A-BxK` or `NxK`; the sign of A may itself be + or -.
            let split = head
                .char_indices()
                .skip(1)
                .find(|&(i, c)| {
                    (c == '+' || c == '-') && !head[..i].to_ascii_lowercase().ends_with('e')
                })
                .map(|(i, _)| i);
            let (a, b) = match split {
                Some(i) => {
                    let a = parse_float(&head[..i]).ok_or(format!("bad item {item:?}"))?;
                    let step = parse_float(&head[i + 1..]).ok_or(format!("bad item {item:?}"))?;
                    (a, if &head[i..=i] == "-" { -step } else { step })
                }
                None => (parse_float(head).ok_or(format!("bad item {item:?}"))?, 0.0),
            };
            // Prometheus adds the step repeatedly (not `a + j*b`); float results differ.
            let mut cur = a;
            for _ in 0..=k {
                out.push(Point::Float(cur));
                cur += b;
            }
            return Ok(());
        }
    }
    let v = parse_float(item).ok_or(format!("bad value {item:?}"))?;
    out.push(Point::Float(v));
    Ok(())
}
