//! Request parameters as Prometheus reads them: URL query plus form-encoded POST body, times
//! (RFC 3339 or Unix seconds), durations (Prometheus durations or float seconds), `limit` and
//! `match[]` series selectors.
//!
//! Prometheus: `r.FormValue` prefers a form body value over the URL's; `r.Form["match[]"]`
//! holds both, body first. Error texts follow Prometheus' (`cannot parse "x" to a valid
//! timestamp`), wrapped by the caller into `invalid parameter "<name>": …`.

use super::error::ApiError;
use basin_proto::METRIC_NAME;
use basin_proto::storage::{MatchType, Matcher};
use promql_parser::label::{MatchOp, Matcher as PromMatcher};
use promql_parser::parser::{self, Expr};

/// Prometheus' `MinTime`: the earliest representable timestamp, in milliseconds.
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974_000;
/// Prometheus' `MaxTime`: the latest representable timestamp, in milliseconds.
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974_999;
/// `MinTime` formatted as Prometheus formats it; clients send it back as a time.
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
/// `MaxTime` formatted as Prometheus formats it.
const MAX_TIME_FORMATTED: &str = "292277025-08-18T07:12:54.999999999Z";

/// The parameters of `/series`, `/labels` and `/label/<name>/values`.
#[derive(Debug, Clone)]
pub struct MetadataQuery {
    /// Most results (0: no limit).
    pub limit: usize,
    /// Range start in milliseconds (`MinTime` when absent).
    pub start: i64,
    /// Range end in milliseconds (`MaxTime` when absent).
    pub end: i64,
    /// `match[]` matcher sets (empty: all series).
    pub sets: Vec<Vec<Matcher>>,
}

/// Decoded request parameters, in Prometheus' precedence order (body first, then URL).
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Decodes a form body (when `body_is_form`) and then the URL query string.
    pub fn decode(query: Option<&str>, body: &[u8], body_is_form: bool) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        if body_is_form && !body.is_empty() {
            let body = std::str::from_utf8(body).map_err(|_| {
                ApiError::BadData("error parsing form values: body is not valid UTF-8".into())
            })?;
            decode_into(body, &mut pairs)?;
        }
        if let Some(q) = query {
            decode_into(q, &mut pairs)?;
        }
        Ok(Self { pairs })
    }

    /// Builds parameters from pairs (tests, internal callers).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self { pairs: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The first value of `name`; `""` when absent (Prometheus' `FormValue`).
    pub fn get(&self, name: &str) -> &str {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// Time parameter `name` in milliseconds, `default` when absent or empty.
    pub fn time_or(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            "" => Ok(default),
            v => parse_time(v).map_err(|e| {
                ApiError::invalid_param(name, format!("invalid time value for '{name}': {e}"))
            }),
        }
    }

    /// Required time parameter `name` in milliseconds.
    pub fn time(&self, name: &str) -> Result<i64, ApiError> {
        parse_time(self.get(name)).map_err(|e| ApiError::invalid_param(name, e))
    }

    /// Optional duration parameter in milliseconds.
    pub fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            "" => Ok(None),
            v => parse_duration(v).map(Some).map_err(|e| ApiError::invalid_param(name, e)),
        }
    }

    /// The `limit` parameter: 0 (no limit) when absent.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            "" => Ok(0),
            v => match v.parse::<i64>() {
                Ok(n) if n < 0 => {
                    Err(ApiError::invalid_param("limit", "limit must be non-negative"))
                }
                Ok(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
                Err(_) => Err(ApiError::invalid_param(
                    "limit",
                    format!("strconv.Atoi: parsing {v:?}: invalid syntax"),
                )),
            },
        }
    }

    /// What the series and label endpoints share: `limit`, `start`, `end` and `match[]`,
    /// read in that order (so the first bad one is the one reported, as in Prometheus).
    pub fn metadata_query(&self) -> Result<MetadataQuery, ApiError> {
        Ok(MetadataQuery {
            limit: self.limit()?,
            start: self.time_or("start", MIN_TIME_MS)?,
            end: self.time_or("end", MAX_TIME_MS)?,
            sets: self.match_sets()?,
        })
    }

    /// The `match[]` selectors as matcher sets (a series matches if it matches any set).
    /// The required `match[]` selectors with the optional `start`/`end` range (all time by
    /// default), as `export` and `delete_series` take them.
    pub fn required_matches_in_range(&self) -> Result<(Vec<Vec<Matcher>>, i64, i64), ApiError> {
        if self.all("match[]").is_empty() {
            return Err(ApiError::BadData("no match[] parameter provided".into()));
        }
        let start = self.time_or("start", MIN_TIME_MS)?;
        let end = self.time_or("end", MAX_TIME_MS)?;
        if end < start {
            return Err(ApiError::BadData("end timestamp must not be before start time".into()));
        }
        Ok((self.match_sets()?, start, end))
    }

    pub fn match_sets(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        let mut sets = Vec::new();
        for selector in self.all("match[]") {
            let parsed =
                parse_selector(selector).map_err(|e| ApiError::invalid_param("match[]", e))?;
            sets.extend(parsed);
        }
        Ok(sets)
    }
}

/// Decodes `application/x-www-form-urlencoded` text into `out`, rejecting bad `%` escapes as
/// Go's `url.ParseQuery` does.
fn decode_into(s: &str, out: &mut Vec<(String, String)>) -> Result<(), ApiError> {
    for part in s.split('&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((unescape(k)?, unescape(v)?));
    }
    Ok(())
}

fn unescape(s: &str) -> Result<String, ApiError> {
    if !s.contains(['%', '+']) {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    u8::from_str_radix(h, 16).ok()
                });
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => {
                        let bad: String = s[i..].chars().take(3).collect();
                        return Err(ApiError::BadData(format!(
                            "error parsing form values: invalid URL escape {bad:?}"
                        )));
                    }
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Parses a time like Prometheus: Unix seconds as a float (rounded to milliseconds) or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let cannot = || format!("cannot parse {s:?} to a valid timestamp");
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() {
            return Err(cannot());
        }
        let whole = secs.trunc();
        let frac_ms = ((secs - whole) * 1000.0).round();
        let ms = whole * 1000.0 + frac_ms;
        // Out-of-range times clamp to Prometheus' MinTime/MaxTime rather than overflowing.
        return Ok(ms.clamp(MIN_TIME_MS as f64, MAX_TIME_MS as f64) as i64);
    }
    match s {
        MIN_TIME_FORMATTED => return Ok(MIN_TIME_MS),
        MAX_TIME_FORMATTED => return Ok(MAX_TIME_MS),
        _ => {}
    }
    parse_rfc3339(s).ok_or_else(cannot)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into milliseconds (fraction truncated to
/// milliseconds, as Prometheus' timestamps are).
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        let digits = &s[start..end];
        let first3: String = digits.chars().chain(std::iter::repeat('0')).take(3).collect();
        millis = first3.parse::<i64>().ok()?;
        i = end;
    }
    let offset_secs = match b.get(i..)? {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |c: &u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
            let oh = digit(h1)? * 10 + digit(h2)?;
            let om = digit(m1)? * 10 + digit(m2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1000 + millis)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (March-based era arithmetic).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a duration like Prometheus: float seconds or a Prometheus duration (`1h30m`, `5m`,
/// `250ms`), into milliseconds (sub-millisecond parts truncated). Negative float seconds are
/// accepted here; callers reject them where Prometheus does.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<f64>() {
        let ns = secs * 1e9;
        if ns.is_nan() {
            return Err(format!("cannot parse {s:?} to a valid duration"));
        }
        if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!("cannot parse {s:?} to a valid duration. It overflows int64"));
        }
        return Ok((ns as i64) / 1_000_000);
    }
    parse_prometheus_duration(s).ok_or_else(|| format!("cannot parse {s:?} to a valid duration"))
}

/// `[0-9]+(y|w|d|h|m|s|ms)` parts in that order, each at most once; `0` alone is allowed.
fn parse_prometheus_duration(s: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        // "ms" before "m": the longest unit name that matches.
        let (idx, (unit, scale)) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (u, _))| rest.starts_with(u))
            .max_by_key(|(_, (u, _))| u.len())?;
        rest = &rest[unit.len()..];
        next_unit = idx + 1;
        total = total.checked_add(n.checked_mul(*scale)?)?;
    }
    Some(total)
}

/// Parses one `match[]` series selector into matcher sets (one per `or` alternative of
/// promql-parser's extension; plain Prometheus selectors give exactly one).
pub fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let expr = parser::parse(s)?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("{s:?} is not a series selector"));
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err(format!("series selector {s:?} must not use offset or @"));
    }
    let name = vs.name.map(|n| PromMatcher::new(MatchOp::Equal, METRIC_NAME, &n));
    let groups: Vec<Vec<PromMatcher>> = if vs.matchers.or_matchers.is_empty() {
        vec![vs.matchers.matchers]
    } else {
        vs.matchers.or_matchers
    };
    let mut sets = Vec::with_capacity(groups.len());
    for group in groups {
        if name.iter().chain(group.iter()).all(|m| m.is_match("")) {
            return Err("match[] must contain at least one non-empty matcher".into());
        }
        sets.push(name.iter().chain(group.iter()).map(to_wire).collect());
    }
    Ok(sets)
}

/// Converts a parsed PromQL matcher to the storage wire form (regexes keep their source text;
/// storage anchors them).
pub fn to_wire(m: &PromMatcher) -> Matcher {
    let t = match m.op {
        MatchOp::Equal => MatchType::Equal,
        MatchOp::NotEqual => MatchType::NotEqual,
        MatchOp::Re(_) => MatchType::Regex,
        MatchOp::NotRe(_) => MatchType::NotRegex,
    };
    Matcher { r#type: t as i32, name: m.name.clone(), value: m.value.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_and_rfc3339_times() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(parse_time("1700000000.0004"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("-1.5"), Ok(-1500));
        // 2023-11-14T22:13:20Z is 1700000000.
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.123456Z"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-15T00:13:20+02:00"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
        assert_eq!(parse_time(MAX_TIME_FORMATTED), Ok(MAX_TIME_MS));
        for bad in ["", "now", "2023-02-29T00:00:00Z", "2023-11-14 22:13:20Z", "NaN", "2023-11-14"]
        {
            assert_eq!(
                parse_time(bad),
                Err(format!("cannot parse {bad:?} to a valid timestamp")),
                "{bad}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15"), Ok(15_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("-1"), Ok(-1000));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1m30s250ms"), Ok(90_250));
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "5x", "30s1m", "1m1m", "m", "1.5m"] {
            assert_eq!(
                parse_duration(bad),
                Err(format!("cannot parse {bad:?} to a valid duration")),
                "{bad}"
            );
        }
        assert!(parse_duration("1e30").unwrap_err().contains("overflows int64"));
    }

    #[test]
    fn form_decoding_body_first_and_escapes() {
        let p = Params::decode(Some("query=b&x=%7Bjob%3D%22a%22%7D"), b"query=a+1", true)
            .expect("valid form");
        assert_eq!(p.get("query"), "a 1");
        assert_eq!(p.all("query"), vec!["a 1", "b"]);
        assert_eq!(p.get("x"), r#"{job="a"}"#);
        assert_eq!(p.get("missing"), "");
        let err = Params::decode(Some("query=%zz"), b"", false).unwrap_err();
        assert_eq!(
            err,
            ApiError::BadData(r#"error parsing form values: invalid URL escape "%zz""#.into())
        );
        // A body that is not a form is ignored.
        let p = Params::decode(None, b"query=x", false).expect("no query");
        assert_eq!(p.get("query"), "");
    }

    #[test]
    fn selectors_become_wire_matcher_sets() {
        let sets = parse_selector(r#"up{job=~"a.*",env!="dev"}"#).expect("valid selector");
        assert_eq!(sets.len(), 1);
        let set = &sets[0];
        assert_eq!(set[0], basin_proto::matcher::wire(MatchType::Equal, "__name__", "up"));
        assert!(set.contains(&basin_proto::matcher::wire(MatchType::Regex, "job", "a.*")));
        assert!(set.contains(&basin_proto::matcher::wire(MatchType::NotEqual, "env", "dev")));
        assert!(parse_selector("up{").is_err());
        assert!(parse_selector("sum(up)").is_err());
        assert!(parse_selector("up offset 5m").is_err());
        assert!(parse_selector(r#"{job=~".*"}"#).is_err());
    }
}
