//! Alert templates: Go `text/template` (via `gotmpl`) with Prometheus' data and functions.
//!
//! Every label and annotation of an alerting rule is a template. As in Prometheus, the text is
//! prefixed with `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}`
//! `{{$externalURL := .ExternalURL}}{{$value := .Value}}`, and the functions are Prometheus'
//! (`humanize*`, `query`, `first`, `label`, `value`, `printf` from Go, …). Validation
//! ([`check_template`]) does what Go's parser does and `gotmpl`'s does not: it rejects calls to
//! undefined functions and uses of undefined variables, so `--check` agrees with promtool.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use gotmpl::parse::{BranchNode, Expr, ListNode, Node, Parser, PipeNode};
use gotmpl::{MissingKey, Template, TemplateError, Value};

use crate::labels::Labels;

const DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}\
{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// Go's text/template builtins.
const GO_FUNCS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

/// Prometheus' template functions (2.x, plus `toDuration` and `now` from 3.x).
const PROMETHEUS_FUNCS: &[&str] = &[
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "stripPort",
    "stripDomain",
    "toDuration",
    "now",
];

/// One element of a `query` result, as templates see it (`.Labels`, `.Value`).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSample {
    /// The series' labels (including `__name__` when present).
    pub labels: Labels,
    /// The sample value.
    pub value: f64,
}

/// The blocking query function templates call through `query`; it runs on a blocking thread.
pub type TemplateQuery = Arc<dyn Fn(&str) -> Result<Vec<TemplateSample>, String> + Send + Sync>;

/// What a template sees.
#[derive(Debug, Clone, Default)]
pub struct TemplateData {
    /// The alert's labels (`$labels`).
    pub labels: Labels,
    /// `--external-label`s (`$externalLabels`).
    pub external_labels: Labels,
    /// `--external-url` (`$externalURL`).
    pub external_url: String,
    /// The sample value (`$value`).
    pub value: f64,
}

/// Checks that `text` parses as an alert template: syntax, defined functions, defined variables.
pub fn check_template(text: &str) -> Result<(), String> {
    let source = format!("{DEFS}{text}");
    let (tree, defines) =
        Parser::new(&source, "{{", "}}").and_then(|p| p.parse()).map_err(|e| e.to_string())?;
    check_nesting(text)?;
    let funcs: HashSet<&str> = GO_FUNCS.iter().chain(PROMETHEUS_FUNCS).copied().collect();
    let mut checker = Checker { funcs: &funcs, scopes: vec![vec!["$".to_string()]], ranges: 0 };
    checker.list(&tree)?;
    for define in &defines {
        let mut checker = Checker { funcs: &funcs, scopes: vec![vec!["$".to_string()]], ranges: 0 };
        checker.list(&define.body)?;
    }
    Ok(())
}

/// gotmpl stops at a top-level `{{end}}` or `{{else}}` and ignores the rest, where Go reports
/// `unexpected {{end}}`; this scan of the control keywords restores Go's error.
fn check_nesting(text: &str) -> Result<(), String> {
    static KEYWORDS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\{\{-?\s*(if|range|with|define|block|end|else)\b")
            .unwrap_or_else(|e| unreachable!("static regex: {e}"))
    });
    let mut depth = 0usize;
    for m in KEYWORDS.captures_iter(text) {
        match m.get(1).map_or("", |k| k.as_str()) {
            "end" if depth == 0 => return Err("unexpected {{end}}".to_string()),
            "else" if depth == 0 => return Err("unexpected {{else}}".to_string()),
            "end" => depth -= 1,
            "else" => {}
            _ => depth += 1,
        }
    }
    if depth > 0 {
        return Err("unexpected EOF".to_string());
    }
    Ok(())
}

struct Checker<'a> {
    funcs: &'a HashSet<&'a str>,
    scopes: Vec<Vec<String>>,
    /// How many `{{range}}` bodies enclose the current node.
    ranges: usize,
}

impl Checker<'_> {
    fn list(&mut self, list: &ListNode) -> Result<(), String> {
        for node in &list.nodes {
            self.node(node)?;
        }
        Ok(())
    }

    fn node(&mut self, node: &Node) -> Result<(), String> {
        match node {
            Node::List(list) => self.list(list),
            Node::Action(action) => self.pipe(&action.pipe),
            Node::If(branch) | Node::With(branch) => self.branch(branch),
            Node::Range(branch) => {
                self.ranges += 1;
                let result = self.branch(branch);
                self.ranges -= 1;
                result
            }
            Node::Template(t) => t.pipe.as_ref().map_or(Ok(()), |p| self.pipe(p)),
            Node::Define(define) => {
                let saved = std::mem::replace(&mut self.scopes, vec![vec!["$".to_string()]]);
                let ranges = std::mem::take(&mut self.ranges);
                let result = self.list(&define.body);
                self.scopes = saved;
                self.ranges = ranges;
                result
            }
            Node::Break(_) if self.ranges == 0 => Err("{{break}} outside {{range}}".to_string()),
            Node::Continue(_) if self.ranges == 0 => {
                Err("{{continue}} outside {{range}}".to_string())
            }
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => Ok(()),
        }
    }

    fn branch(&mut self, branch: &BranchNode) -> Result<(), String> {
        self.scopes.push(Vec::new());
        let result = self.pipe(&branch.pipe).and_then(|()| {
            self.list(&branch.body)?;
            branch.else_body.as_ref().map_or(Ok(()), |e| self.list(e))
        });
        self.scopes.pop();
        result
    }

    fn pipe(&mut self, pipe: &PipeNode) -> Result<(), String> {
        // Go declares the variables before parsing the commands of the pipeline.
        if !pipe.is_assign
            && let Some(scope) = self.scopes.last_mut()
        {
            scope.extend(pipe.decl.iter().map(|d| d.to_string()));
        }
        for command in &pipe.commands {
            for arg in &command.args {
                self.expr(arg)?;
            }
        }
        Ok(())
    }

    fn expr(&mut self, expr: &Expr) -> Result<(), String> {
        match expr {
            Expr::Identifier(_, name) => {
                if self.funcs.contains(name.as_str()) {
                    Ok(())
                } else {
                    Err(format!("function {:?} not defined", name.as_str()))
                }
            }
            Expr::Variable(_, name, _) => {
                let defined = self.scopes.iter().flatten().any(|v| v == name.as_str());
                if defined {
                    Ok(())
                } else {
                    Err(format!("undefined variable {:?}", name.as_str()))
                }
            }
            Expr::Pipe(_, pipe) => self.pipe(pipe),
            Expr::Chain(_, inner, _) => self.expr(inner),
            _ => Ok(()),
        }
    }
}

/// Expands one alert template. Errors are returned; callers render them as Prometheus does
/// (`<error expanding template: …>`).
pub fn expand(
    name: &str,
    text: &str,
    data: &TemplateData,
    query: Option<TemplateQuery>,
) -> Result<String, String> {
    // Fast path: most label values are plain strings.
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let template = Template::new(name)
        .missing_key(MissingKey::ZeroValue)
        .funcs(functions(data.external_url.clone(), query))
        .parse(&format!("{DEFS}{text}"))
        .map_err(|e| format!("error parsing template {name}: {e}"))?;
    let value = Value::Map(Arc::new(BTreeMap::from([
        (Arc::from("Labels"), string_map(&data.labels)),
        (Arc::from("ExternalLabels"), string_map(&data.external_labels)),
        (Arc::from("ExternalURL"), Value::String(data.external_url.as_str().into())),
        (Arc::from("Value"), Value::Float(data.value)),
    ])));
    let out = template
        .execute_to_string(&value)
        .map_err(|e| format!("error executing template {name}: {e}"))?;
    // Prometheus: its data is `map[string]string` with `missingkey=zero`, so a missing label
    // prints as "", where gotmpl's nil prints Go's "<no value>".
    Ok(out.replace("<no value>", ""))
}

fn string_map(labels: &Labels) -> Value {
    let map: BTreeMap<Arc<str>, Value> = labels
        .iter()
        .map(|(k, v)| (Arc::from(k.as_str()), Value::String(v.as_str().into())))
        .collect();
    Value::Map(Arc::new(map))
}

fn sample_value(sample: &TemplateSample) -> Value {
    Value::Map(Arc::new(BTreeMap::from([
        (Arc::from("Labels"), string_map(&sample.labels)),
        (Arc::from("Value"), Value::Float(sample.value)),
    ])))
}

fn exec_err(msg: impl Into<String>) -> TemplateError {
    TemplateError::Exec(msg.into())
}

fn arg(args: &[Value], i: usize, func: &str) -> Result<Value, TemplateError> {
    args.get(i).cloned().ok_or_else(|| exec_err(format!("{func}: missing argument {}", i + 1)))
}

fn to_float(v: &Value) -> Result<f64, TemplateError> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        Value::String(s) => parse_go_float(s)
            .ok_or_else(|| exec_err(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))),
        other => Err(exec_err(format!("can't convert {} to float", other.type_name()))),
    }
}

fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn to_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Nil => String::new(),
        other => other.to_string(),
    }
}

fn string(s: impl AsRef<str>) -> Value {
    Value::String(s.as_ref().into())
}

fn float_fn(f: impl Fn(f64) -> String + Send + Sync + 'static) -> gotmpl::ValueFunc {
    Arc::new(move |args: &[Value]| Ok(string(f(to_float(&arg(args, 0, "humanize")?)?))))
}

fn functions(external_url: String, query: Option<TemplateQuery>) -> gotmpl::FuncMap {
    let mut m = gotmpl::FuncMap::new();
    m.insert(
        "query".into(),
        Arc::new(move |args: &[Value]| {
            let expr = to_str(&arg(args, 0, "query")?);
            let Some(query) = &query else {
                return Err(exec_err("query: no query function available"));
            };
            let samples = query(&expr).map_err(exec_err)?;
            Ok(Value::List(samples.iter().map(sample_value).collect::<Vec<_>>().into()))
        }),
    );
    m.insert(
        "first".into(),
        Arc::new(|args: &[Value]| match arg(args, 0, "first")? {
            Value::List(list) if !list.is_empty() => Ok(list[0].clone()),
            _ => Err(exec_err("first() called on vector with no elements")),
        }),
    );
    m.insert(
        "label".into(),
        Arc::new(|args: &[Value]| {
            let name = to_str(&arg(args, 0, "label")?);
            let sample = arg(args, 1, "label")?;
            let value = sample.field("Labels").and_then(|l| l.field(&name)).cloned();
            Ok(value.unwrap_or_else(|| string("")))
        }),
    );
    m.insert(
        "value".into(),
        Arc::new(|args: &[Value]| {
            let sample = arg(args, 0, "value")?;
            Ok(sample.field("Value").cloned().unwrap_or(Value::Float(0.0)))
        }),
    );
    m.insert(
        "strvalue".into(),
        Arc::new(|args: &[Value]| {
            let sample = arg(args, 0, "strvalue")?;
            let value = sample.field("Labels").and_then(|l| l.field("__value__")).cloned();
            Ok(value.unwrap_or_else(|| string("")))
        }),
    );
    m.insert(
        "args".into(),
        Arc::new(|args: &[Value]| {
            let map: BTreeMap<Arc<str>, Value> = args
                .iter()
                .enumerate()
                .map(|(i, v)| (Arc::from(format!("arg{i}").as_str()), v.clone()))
                .collect();
            Ok(Value::Map(Arc::new(map)))
        }),
    );
    m.insert(
        "reReplaceAll".into(),
        Arc::new(|args: &[Value]| {
            let pattern = to_str(&arg(args, 0, "reReplaceAll")?);
            let replacement = to_str(&arg(args, 1, "reReplaceAll")?);
            let text = to_str(&arg(args, 2, "reReplaceAll")?);
            let re = regex::Regex::new(&pattern).map_err(|e| exec_err(e.to_string()))?;
            Ok(string(re.replace_all(&text, replacement.as_str())))
        }),
    );
    m.insert(
        "match".into(),
        Arc::new(|args: &[Value]| {
            let pattern = to_str(&arg(args, 0, "match")?);
            let text = to_str(&arg(args, 1, "match")?);
            let re = regex::Regex::new(&pattern).map_err(|e| exec_err(e.to_string()))?;
            Ok(Value::Bool(re.is_match(&text)))
        }),
    );
    m.insert(
        "safeHtml".into(),
        Arc::new(|args: &[Value]| Ok(string(to_str(&arg(args, 0, "safeHtml")?)))),
    );
    m.insert(
        "title".into(),
        Arc::new(|args: &[Value]| Ok(string(title(&to_str(&arg(args, 0, "title")?))))),
    );
    m.insert(
        "toUpper".into(),
        Arc::new(|args: &[Value]| Ok(string(to_str(&arg(args, 0, "toUpper")?).to_uppercase()))),
    );
    m.insert(
        "toLower".into(),
        Arc::new(|args: &[Value]| Ok(string(to_str(&arg(args, 0, "toLower")?).to_lowercase()))),
    );
    m.insert(
        "graphLink".into(),
        Arc::new(|args: &[Value]| Ok(string(graph_link(&to_str(&arg(args, 0, "graphLink")?), 0)))),
    );
    m.insert(
        "tableLink".into(),
        Arc::new(|args: &[Value]| Ok(string(graph_link(&to_str(&arg(args, 0, "tableLink")?), 1)))),
    );
    m.insert(
        "sortByLabel".into(),
        Arc::new(|args: &[Value]| {
            let name = to_str(&arg(args, 0, "sortByLabel")?);
            let Value::List(list) = arg(args, 1, "sortByLabel")? else {
                return Err(exec_err("sortByLabel: not a query result"));
            };
            let mut items: Vec<Value> = list.to_vec();
            let key = |v: &Value| {
                v.field("Labels").and_then(|l| l.field(&name)).map(to_str).unwrap_or_default()
            };
            items.sort_by_key(key);
            Ok(Value::List(items.into()))
        }),
    );
    m.insert("humanize".into(), float_fn(humanize));
    m.insert("humanize1024".into(), float_fn(humanize_1024));
    m.insert("humanizeDuration".into(), float_fn(humanize_duration));
    m.insert("humanizePercentage".into(), float_fn(|v| format!("{}%", format_g(v * 100.0, 4))));
    m.insert("humanizeTimestamp".into(), float_fn(humanize_timestamp));
    m.insert("toTime".into(), float_fn(humanize_timestamp));
    m.insert(
        "parseDuration".into(),
        Arc::new(|args: &[Value]| {
            let text = to_str(&arg(args, 0, "parseDuration")?);
            let d = crate::duration::parse_duration(&text).map_err(exec_err)?;
            Ok(Value::Float(d.as_secs_f64()))
        }),
    );
    m.insert(
        "toDuration".into(),
        float_fn(|v| {
            crate::duration::format_duration(std::time::Duration::from_secs_f64(v.max(0.0)))
        }),
    );
    m.insert(
        "now".into(),
        Arc::new(|_: &[Value]| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            Ok(Value::Float(now))
        }),
    );
    let url = external_url.clone();
    m.insert("externalURL".into(), Arc::new(move |_: &[Value]| Ok(string(&url))));
    m.insert(
        "pathPrefix".into(),
        Arc::new(move |_: &[Value]| Ok(string(path_of_url(&external_url)))),
    );
    m.insert(
        "stripPort".into(),
        Arc::new(|args: &[Value]| Ok(string(strip_port(&to_str(&arg(args, 0, "stripPort")?))))),
    );
    m.insert(
        "stripDomain".into(),
        Arc::new(|args: &[Value]| Ok(string(strip_domain(&to_str(&arg(args, 0, "stripDomain")?))))),
    );
    m
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Prometheus' `/graph` link for an expression (`tab` 0 = graph, 1 = table).
pub fn graph_link(expr: &str, tab: u8) -> String {
    format!("/graph?g0.expr={}&g0.tab={tab}", query_escape(expr))
}

fn path_of_url(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or(String::new(), |i| after_scheme[i..].to_string())
}

fn title(s: &str) -> String {
    // Go's strings.Title: upper-case the first letter of each word.
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter {
            out.extend(c.to_uppercase())
        } else {
            out.push(c)
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

fn strip_port(host_port: &str) -> String {
    if let Some(rest) = host_port.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once(']')
            && port.starts_with(':')
        {
            return host.to_string();
        }
        return host_port.to_string();
    }
    match host_port.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host.to_string(),
        _ => host_port.to_string(),
    }
}

fn strip_domain(host_port: &str) -> String {
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (host_port, None),
    };
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return host_port.to_string();
    }
    let short = host.split('.').next().unwrap_or(host);
    match port {
        Some(p) => format!("{short}:{p}"),
        None => short.to_string(),
    }
}

/// Go's `fmt.Sprintf("%.<prec>g", v)`.
pub fn format_g(v: f64, prec: usize) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".to_string() } else { "-Inf".to_string() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".to_string() } else { "0".to_string() };
    }
    let prec = prec.max(1);
    let sci = format!("{:.*e}", prec - 1, v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut eprec = prec as i32;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let mut out = String::new();
    if v < 0.0 {
        out.push('-');
    }
    let digit =
        |i: i32| -> char { if i >= 0 && i < nd { digits[i as usize] as char } else { '0' } };
    if exp < -4 || exp >= eprec {
        let p = (prec as i32).min(nd) - 1;
        out.push(digit(0));
        if p > 0 {
            out.push('.');
            for i in 1..=p {
                out.push(digit(i));
            }
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else {
        let p = if prec as i32 > dp { nd } else { prec as i32 };
        let decimals = (p - dp).max(0);
        if dp > 0 {
            for i in 0..dp {
                out.push(digit(i));
            }
        } else {
            out.push('0');
        }
        if decimals > 0 {
            out.push('.');
            for i in 0..decimals {
                out.push(digit(dp + i));
            }
        }
    }
    out
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return format_g(v, 4);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_g(v, 4))
}

/// Prometheus' `humanize1024`: binary prefixes.
pub fn humanize_1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return format_g(v, 4);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_g(v, 4))
}

/// Prometheus' `humanizeDuration`: `1d 2h 3m 4s`, or sub-second prefixes.
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_g(v, 4);
    }
    if v == 0.0 {
        return format!("{}s", format_g(v, 4));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let total = v as i64;
        let (seconds, minutes, hours, days) =
            (total % 60, (total / 60) % 60, (total / 3600) % 24, total / 86400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", format_g(v, 4))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_g(v, 4))
}

/// Prometheus' `humanizeTimestamp`: Go's `time.Time` default format in UTC.
pub fn humanize_timestamp(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_g(v, 4);
    }
    let nanos_total = (v * 1e9) as i128;
    let secs = nanos_total.div_euclid(1_000_000_000) as i64;
    let nanos = nanos_total.rem_euclid(1_000_000_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    let mut out =
        format!("{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}", sod / 3600, (sod / 60) % 60, sod % 60);
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(labels: &[(&str, &str)], value: f64) -> TemplateData {
        TemplateData {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            external_labels: Labels::from([("cluster".to_string(), "eu1".to_string())]),
            external_url: "http://alerter.example:9093/basin".to_string(),
            value,
        }
    }

    #[test]
    fn go_g_format() {
        assert_eq!(format_g(1.5, 4), "1.5");
        assert_eq!(format_g(1234567.0, 4), "1.235e+06");
        assert_eq!(format_g(100.0, 4), "100");
        assert_eq!(format_g(1000.0, 4), "1000");
        assert_eq!(format_g(10000.0, 4), "1e+04");
        assert_eq!(format_g(0.0001234, 4), "0.0001234");
        assert_eq!(format_g(0.00001234, 4), "1.234e-05");
        assert_eq!(format_g(-2.5, 4), "-2.5");
        assert_eq!(format_g(f64::INFINITY, 4), "+Inf");
        assert_eq!(format_g(123.456, 4), "123.5");
    }

    #[test]
    fn humanize_functions() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.001), "1m");
        assert_eq!(humanize(12.0), "12");
        assert_eq!(humanize_1024(1024.0), "1ki");
        assert_eq!(humanize_1024(1_048_576.0 * 3.0), "3Mi");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_timestamp(1_435_065_584.128), "2015-06-23 13:19:44.128 +0000 UTC");
        assert_eq!(humanize_timestamp(0.0), "1970-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn renders_prometheus_style_templates() {
        let d = data(&[("instance", "host:9100"), ("job", "node")], 0.4234);
        let got = expand(
            "t",
            "{{ $labels.instance }} of {{ $labels.job }} is {{ $value | humanizePercentage }} in {{ $externalLabels.cluster }}",
            &d,
            None,
        )
        .unwrap();
        assert_eq!(got, "host:9100 of node is 42.34% in eu1");
        let got = expand("t", r#"{{ printf "%.2f" $value }}/{{ .Value }}"#, &d, None).unwrap();
        assert_eq!(got, "0.42/0.4234");
        let got =
            expand("t", "{{ $labels.instance | stripPort }} {{ pathPrefix }}", &d, None).unwrap();
        assert_eq!(got, "host /basin");
        let got = expand("t", "[{{ $labels.missing }}]", &d, None).unwrap();
        assert_eq!(got, "[]");
    }

    #[test]
    fn query_function() {
        let query: TemplateQuery = Arc::new(|expr: &str| {
            assert_eq!(expr, "up");
            Ok(vec![TemplateSample {
                labels: Labels::from([("job".to_string(), "a".to_string())]),
                value: 3.0,
            }])
        });
        let got = expand(
            "t",
            r#"{{ with query "up" }}{{ . | first | value }} {{ . | first | label "job" }}{{ end }}"#,
            &data(&[], 0.0),
            Some(query),
        )
        .unwrap();
        assert_eq!(got, "3 a");
    }

    #[test]
    fn check_rejects_what_go_rejects() {
        assert!(check_template("{{ $labels.x }} {{ humanize $value }}").is_ok());
        assert!(
            check_template("{{ range $i, $e := query \"up\" }}{{ $e.Value }}{{ end }}").is_ok()
        );
        assert!(check_template("{{ $labels.x").is_err());
        assert!(check_template("{{ nosuchfunc 1 }}").is_err());
        assert!(check_template("{{ $undefined }}").is_err());
        assert!(check_template("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}").is_err());
        assert!(check_template("a {{ end }} b").is_err());
        assert!(check_template("{{ else }}").is_err());
        assert!(check_template("{{ if 1 }}a{{ else if 2 }}b{{ else }}c{{ end }}").is_ok());
    }
}
