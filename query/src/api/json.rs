//! Prometheus' JSON response format, written byte-for-byte as Prometheus writes it.
//!
//! - Envelope: `{"status":"success","data":…,"warnings":[…],"infos":[…]}` or
//!   `{"status":"error","errorType":…,"error":…}`; `warnings` and `infos` only when non-empty.
//! - Timestamps: seconds as a JSON number with the milliseconds as up to three decimals, no
//!   trailing-zero trimming (`1700000000.5` s is written `1700000000.500`, as Prometheus'
//!   `jsonutil.MarshalTimestamp` does; whole seconds have no decimals).
//! - Values: strings formatted like Go's `strconv.FormatFloat(v, 'f', -1, 64)`, switching to
//!   `'e'` below 1e-6 and from 1e21 on (`jsonutil.MarshalFloat`); `NaN`, `+Inf`, `-Inf`.
//! - Strings escaped like Go's `encoding/json` (including `<`, `>`, `&`, U+2028, U+2029).
//!
//! Results are written straight into a `String` rather than through `serde`: range query
//! answers can hold millions of points.

use crate::promql::{Series, Value};
use basin_proto::storage::Label;
use std::fmt::Write;

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '<' => "\\u003c",
            '>' => "\\u003e",
            '&' => "\\u0026",
            '\u{2028}' => "\\u2028",
            '\u{2029}' => "\\u2029",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push_str(escaped);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a millisecond timestamp as Prometheus' seconds number.
pub fn write_timestamp(out: &mut String, ms: i64) {
    let abs = ms.unsigned_abs();
    if ms < 0 {
        out.push('-');
    }
    write_u64(out, abs / 1000);
    let frac = abs % 1000;
    if frac != 0 {
        out.push('.');
        for d in [frac / 100, frac / 10 % 10, frac % 10] {
            out.push(char::from(b'0' + d as u8));
        }
    }
}

/// Appends `n` in decimal.
pub fn write_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    write_u64(out, n.unsigned_abs());
}

/// Appends `n` in decimal without going through `fmt`.
fn write_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Formats a sample value as Prometheus does (without quotes).
pub fn format_value(v: f64) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

/// Appends a sample value as Prometheus formats it (without quotes).
pub fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's shortest `{:e}` is `1.5e-7`; Go's is `1.5e-07`: sign always, two digits min.
        let s = format!("{v:e}");
        if let Some((mantissa, exp)) = s.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
            return;
        }
        out.push_str(&s);
        return;
    }
    if v.fract() == 0.0 && abs < 1e15 && v != 0.0 {
        // Whole numbers (most counters): exact as integers, no float formatting needed.
        if v < 0.0 {
            out.push('-');
        }
        write_u64(out, abs as u64);
        return;
    }
    // The shortest round-trip digits without exponent, like Go's 'f' with precision -1:
    // ryu's when it prints no exponent (it is several times faster), else Rust's `Display`
    // (`-0` included). Both are shortest and exact; at a rare exact tie between two
    // shortest forms they may differ in the last digit.
    if v.fract() != 0.0 {
        let mut buf = ryu::Buffer::new();
        let s = buf.format_finite(v);
        if !s.contains('e') {
            out.push_str(s);
            return;
        }
    }
    let _ = write!(out, "{v}");
}

/// Appends a `[<seconds>,"<value>"]` point.
pub fn write_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t);
    out.push_str(",\"");
    write_value(out, v);
    out.push_str("\"]");
}

/// Appends a label set as a JSON object in label order.
pub fn write_labels(out: &mut String, labels: &[Label]) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &l.name);
        out.push(':');
        write_str(out, &l.value);
    }
    out.push('}');
}

/// Appends a JSON array of strings.
pub fn write_str_list<S: AsRef<str>>(out: &mut String, items: &[S]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, s.as_ref());
    }
    out.push(']');
}

/// Appends a query result as `{"resultType":…,"result":…}`.
pub fn write_query_data(out: &mut String, value: &Value) {
    match value {
        Value::Scalar { t, v } => {
            out.push_str(r#"{"resultType":"scalar","result":"#);
            write_point(out, *t, *v);
        }
        Value::String { t, s } => {
            out.push_str(r#"{"resultType":"string","result":["#);
            write_timestamp(out, *t);
            out.push(',');
            write_str(out, s);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push_str(r#"{"resultType":"vector","result":["#);
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(out, &s.labels);
                out.push_str(r#","value":"#);
                write_point(out, s.t, s.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            // About 24 bytes a point and 100 a label set: one allocation for big answers.
            let points: usize = series.iter().map(|s| s.points.len()).sum();
            out.reserve(points.saturating_mul(24).saturating_add(series.len() * 100));
            out.push_str(MATRIX_HEAD);
            for (i, s) in series.iter().enumerate() {
                write_matrix_series(out, i, s);
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// What a matrix result starts with, up to its first series.
pub const MATRIX_HEAD: &str = r#"{"resultType":"matrix","result":["#;

/// Appends the `i`-th series of a matrix result (with its separating comma).
pub fn write_matrix_series(out: &mut String, i: usize, s: &Series) {
    if i > 0 {
        out.push(',');
    }
    out.push_str(r#"{"metric":"#);
    write_labels(out, &s.labels);
    out.push_str(r#","values":["#);
    for (j, (t, v)) in s.points.iter().enumerate() {
        if j > 0 {
            out.push(',');
        }
        write_point(out, *t, *v);
    }
    out.push_str("]}");
}

/// The head of a success envelope, up to its `data`.
pub const SUCCESS_HEAD: &str = r#"{"status":"success","data":"#;

/// Appends the end of a success envelope after its `data`: warnings, infos and the `}`.
pub fn write_success_tail(out: &mut String, warnings: &[String], infos: &[String]) {
    write_warnings(out, warnings);
    if !infos.is_empty() {
        out.push_str(r#","infos":"#);
        write_str_list(out, infos);
    }
    out.push('}');
}

/// A success envelope around already-encoded `data`.
pub fn success(data: &str, warnings: &[String], infos: &[String]) -> String {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str(SUCCESS_HEAD);
    out.push_str(data);
    write_success_tail(&mut out, warnings, infos);
    out
}

/// An error envelope.
pub fn error(error_type: &str, message: &str, warnings: &[String]) -> String {
    let mut out = String::with_capacity(message.len() + 64);
    out.push_str(r#"{"status":"error","errorType":"#);
    write_str(&mut out, error_type);
    out.push_str(r#","error":"#);
    write_str(&mut out, message);
    write_warnings(&mut out, warnings);
    out.push('}');
    out
}

fn write_warnings(out: &mut String, warnings: &[String]) {
    if !warnings.is_empty() {
        out.push_str(r#","warnings":"#);
        write_str_list(out, warnings);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_float_path_prints_the_same_digits_as_display() {
        // Random bit patterns and short decimals: ryu's output, where used, has as few digits
        // as Rust's shortest `Display` and reads back as the same value. (At an exact tie
        // between two shortest forms the two may pick different last digits; both are exact.)
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = if i % 2 == 0 { f64::from_bits(x) } else { (x % 1_000_000) as f64 / 1000.0 };
            if !v.is_finite() || v.abs() < 1e-6 || v.abs() >= 1e21 {
                continue;
            }
            let mut got = String::new();
            write_value(&mut got, v);
            if v.fract() != 0.0 {
                let display = format!("{v}");
                assert_eq!(got.len(), display.len(), "{got} vs {display}");
                assert!(!got.contains('e'), "{got}");
                assert_eq!(got.parse::<f64>().map(f64::to_bits), Ok(v.to_bits()), "{got}");
            }
        }
    }

    use super::*;
    use crate::promql::Sample;

    #[test]
    fn values_format_like_go() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (100.0, "100"),
            (1700000000.0, "1700000000"),
            (123456789.125, "123456789.125"),
            (1e-6, "0.000001"),
            (1.5e-7, "1.5e-07"),
            (-3.0, "-3"),
            (123456.0, "123456"),
            (1e15, "1000000000000000"),
            (999999999999999.0, "999999999999999"),
            (0.5, "0.5"),
            (-2e-10, "-2e-10"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.2345e100, "1.2345e+100"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::from_bits(basin_proto::STALE_NAN_BITS), "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(*v), *want, "{v:?}");
        }
    }

    #[test]
    fn timestamps_as_prometheus_writes_them() {
        let mut s = String::new();
        for ms in
            [1_700_000_000_000, 1_700_000_000_500, 1_700_000_000_005, 1_700_000_000_050, -1500, 0]
        {
            write_timestamp(&mut s, ms);
            s.push(' ');
        }
        assert_eq!(s, "1700000000 1700000000.500 1700000000.005 1700000000.050 -1.500 0 ");
    }

    #[test]
    fn strings_escape_like_go() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\n<&>\u{1}é\u{2028}");
        assert_eq!(s, r#""a\"b\\c\n\u003c\u0026\u003e\u0001é\u2028""#);
    }

    #[test]
    fn query_data_shapes() {
        let labels = vec![
            Label { name: "__name__".into(), value: "up".into() },
            Label { name: "job".into(), value: "x".into() },
        ];
        let mut out = String::new();
        write_query_data(
            &mut out,
            &Value::Vector(vec![Sample { labels: labels.clone(), t: 1_000, v: 1.0 }]),
        );
        assert_eq!(
            out,
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"x"},"value":[1,"1"]}]}"#
        );
        out.clear();
        write_query_data(
            &mut out,
            &Value::Matrix(vec![Series { labels, points: vec![(1_000, 1.0), (1_500, f64::NAN)] }]),
        );
        assert_eq!(
            out,
            r#"{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"x"},"values":[[1,"1"],[1.500,"NaN"]]}]}"#
        );
        out.clear();
        write_query_data(&mut out, &Value::Scalar { t: 2_000, v: -1.25 });
        assert_eq!(out, r#"{"resultType":"scalar","result":[2,"-1.25"]}"#);
        out.clear();
        write_query_data(&mut out, &Value::String { t: 2_000, s: "hi".into() });
        assert_eq!(out, r#"{"resultType":"string","result":[2,"hi"]}"#);
    }

    #[test]
    fn envelopes() {
        assert_eq!(success("[]", &[], &[]), r#"{"status":"success","data":[]}"#);
        assert_eq!(
            success("{}", &["w".into()], &["i".into()]),
            r#"{"status":"success","data":{},"warnings":["w"],"infos":["i"]}"#
        );
        assert_eq!(
            error("bad_data", "oops", &[]),
            r#"{"status":"error","errorType":"bad_data","error":"oops"}"#
        );
    }
}
