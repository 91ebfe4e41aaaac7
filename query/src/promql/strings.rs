//! PromQL string literals with Go's escape rules.
//!
//! `promql-parser` decodes `\xNN` as a code point, Go as a byte: `"\xff"` is invalid UTF-8
//! in Prometheus (so an invalid label name) but `ÿ` for the parser. The engine rewrites such
//! literals before parsing so that they decode as Prometheus decodes them.

/// Unquotes a PromQL string literal with Go's rules (double/single quotes with escapes, where
/// `\xNN` and octal escapes are bytes, or backticks). Invalid UTF-8 becomes U+FFFD.
pub(crate) fn unquote_go(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let q = chars.next().ok_or("empty string literal")?;
    if !s.ends_with(q) || s.len() < 2 || !matches!(q, '"' | '\'' | '`') {
        return Err(format!("bad string literal {s}"));
    }
    let inner = &s[1..s.len() - 1];
    if q == '`' {
        return Ok(inner.to_string());
    }
    let mut bytes: Vec<u8> = Vec::with_capacity(inner.len());
    let mut it = inner.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = it.next().ok_or("dangling escape")?;
        match e {
            'n' => bytes.push(b'\n'),
            't' => bytes.push(b'\t'),
            'r' => bytes.push(b'\r'),
            'a' => bytes.push(7),
            'b' => bytes.push(8),
            'f' => bytes.push(12),
            'v' => bytes.push(11),
            '\\' => bytes.push(b'\\'),
            '"' => bytes.push(b'"'),
            '\'' => bytes.push(b'\''),
            'x' => {
                let h: String = it.by_ref().take(2).collect();
                bytes.push(u8::from_str_radix(&h, 16).map_err(|e| e.to_string())?);
            }
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let h: String = it.by_ref().take(n).collect();
                let cp = u32::from_str_radix(&h, 16).map_err(|e| e.to_string())?;
                let ch = char::from_u32(cp).ok_or("bad unicode escape")?;
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            d @ '0'..='7' => {
                let mut o = String::from(d);
                o.extend(it.by_ref().take(2));
                bytes.push(u8::from_str_radix(&o, 8).map_err(|e| e.to_string())?);
            }
            other => return Err(format!("unknown escape \\{other}")),
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Rewrites string literals that use byte escapes so `promql-parser` decodes them as Go does.
pub(crate) fn normalize_literals(query: &str) -> String {
    let b = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        let q = b[i];
        if q == b'`' {
            i += 1;
            while i < b.len() && b[i] != b'`' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if q != b'"' && q != b'\'' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        let mut bytes_escape = false;
        while i < b.len() && b[i] != q {
            if b[i] == b'\\' {
                if matches!(b.get(i + 1), Some(b'x') | Some(b'0'..=b'7')) {
                    bytes_escape = true;
                }
                i += 1;
            }
            i += 1;
        }
        let end = (i + 1).min(b.len());
        i = end;
        if !bytes_escape {
            continue;
        }
        let Ok(decoded) = unquote_go(&query[start..end]) else {
            continue;
        };
        out.push_str(&query[last..start]);
        out.push('"');
        for c in decoded.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
        out.push('"');
        last = end;
    }
    out.push_str(&query[last..]);
    out
}
