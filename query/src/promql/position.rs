//! Approximate source positions for annotations.
//!
//! Prometheus suffixes each warning/info with the `(line:column)` of the expression it is
//! about. `promql-parser` keeps no positions, so they are recovered from the query text: the
//! first call of the named function or aggregation, and its n-th argument.

/// Byte index of the first call of `name` (a function or an aggregation, possibly with a
/// `by (...)`/`without (...)` clause before its arguments), and of its opening parenthesis.
fn find_call(query: &str, name: &str) -> Option<(usize, usize)> {
    let b = query.as_bytes();
    let mut from = 0;
    while let Some(i) = query[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
        if at > 0 && ident(b[at - 1]) {
            continue;
        }
        if from < b.len() && ident(b[from]) {
            continue;
        }
        let mut j = skip_ws(b, from);
        for kw in ["by", "without"] {
            if query[j..].starts_with(kw) {
                let k = skip_ws(b, j + kw.len());
                if b.get(k) == Some(&b'(') {
                    j = skip_ws(b, close_paren(b, k)? + 1);
                }
            }
        }
        if b.get(j) == Some(&b'(') {
            return Some((at, j));
        }
    }
    None
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The bytes of `b` from `from` outside quoted strings (which are skipped with their
/// escapes), each with its index and the bracket depth before it (relative to `from`).
fn unquoted(b: &[u8], from: usize) -> impl Iterator<Item = (usize, u8, i32)> + '_ {
    let (mut i, mut depth, mut quote) = (from, 0i32, None::<u8>);
    std::iter::from_fn(move || {
        while i < b.len() {
            let (at, c) = (i, b[i]);
            i += 1;
            if let Some(q) = quote {
                if c == b'\\' && q != b'`' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
                continue;
            }
            let before = depth;
            match c {
                b'"' | b'\'' | b'`' => {
                    quote = Some(c);
                    continue;
                }
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                _ => {}
            }
            return Some((at, c, before));
        }
        None
    })
}

fn is_closer(c: u8) -> bool {
    matches!(c, b')' | b']' | b'}')
}

/// Index of the parenthesis closing the one at `open`.
fn close_paren(b: &[u8], open: usize) -> Option<usize> {
    unquoted(b, open).find(|&(_, c, before)| is_closer(c) && before == 1).map(|(i, _, _)| i)
}

/// Byte index where argument `k` of the call whose `(` is at `open` starts.
fn arg_start(b: &[u8], open: usize, k: usize) -> Option<usize> {
    if k == 0 {
        return Some(skip_ws(b, open + 1));
    }
    let mut n = 0;
    for (i, c, before) in unquoted(b, open + 1) {
        match c {
            _ if is_closer(c) && before == 0 => return None,
            b',' if before == 0 => {
                n += 1;
                if n == k {
                    return Some(skip_ws(b, i + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// `(line, column)` (1-based) of the call `name`, or of its argument `arg`.
pub(crate) fn of_call(query: &str, name: &str, arg: Option<usize>) -> Option<(usize, usize)> {
    let (at, open) = find_call(query, name)?;
    let idx = match arg {
        None => at,
        Some(k) => arg_start(query.as_bytes(), open, k)?,
    };
    let line = query[..idx].matches('\n').count() + 1;
    let col = idx - query[..idx].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    Some((line, col))
}

#[cfg(test)]
mod tests {
    use super::of_call;

    #[test]
    fn finds_calls_and_arguments() {
        assert_eq!(
            of_call("histogram_quantile(0.5, x)", "histogram_quantile", Some(1)),
            Some((1, 25))
        );
        assert_eq!(of_call("sum(sort(series))", "sort", None), Some((1, 5)));
        assert_eq!(
            of_call("quantile without(point)(NaN, data)", "quantile", Some(0)),
            Some((1, 25))
        );
        assert_eq!(of_call("f(g(a, b), c)", "f", Some(1)), Some((1, 12)));
        assert_eq!(of_call("x", "f", None), None);
    }
}
