//! Redis glob patterns (`KEYS`, `SCAN MATCH`), byte-exact like Redis's
//! `stringmatchlen`: `*`, `?`, `[abc]`, `[^a-z]`, and `\` escapes.
//!
//! Patterns arrive from the network, so matching is iterative with
//! backtracking over the last `*` only: linear memory, and worst case
//! O(pattern × key) time, never exponential.

pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0usize, 0usize);
    // Where to resume after the most recent `*`: (pattern index after it, key index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    // Collapse runs of stars.
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, k));
                    continue;
                }
                b'?' if k < key.len() => {
                    p += 1;
                    k += 1;
                    continue;
                }
                b'[' if k < key.len() => {
                    let (matched, next_p) = match_class(pattern, p, key[k]);
                    if matched {
                        p = next_p;
                        k += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() && k < key.len() && pattern[p + 1] == key[k] => {
                    p += 2;
                    k += 1;
                    continue;
                }
                c if k < key.len() && c == key[k] && c != b'?' && c != b'[' => {
                    p += 1;
                    k += 1;
                    continue;
                }
                _ => {}
            }
        } else if k == key.len() {
            return true;
        }
        // Mismatch: let the last star swallow one more key byte.
        match star {
            Some((sp, sk)) if sk < key.len() => {
                star = Some((sp, sk + 1));
                p = sp;
                k = sk + 1;
            }
            _ => return false,
        }
    }
}

/// Matches one byte against the class starting at `pattern[start] == b'['`.
/// Returns (matched, index after the class). An unterminated class runs to
/// the end of the pattern, as in Redis.
fn match_class(pattern: &[u8], start: usize, c: u8) -> (bool, usize) {
    let mut i = start + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(i) {
            None => break,
            Some(b']') => {
                i += 1;
                break;
            }
            Some(b'\\') if i + 1 < pattern.len() => {
                if pattern[i + 1] == c {
                    matched = true;
                }
                i += 2;
            }
            Some(&lo) if pattern.get(i + 1) == Some(&b'-') && i + 2 < pattern.len() => {
                let hi = pattern[i + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                if (lo..=hi).contains(&c) {
                    matched = true;
                }
                i += 3;
            }
            Some(&b) => {
                if b == c {
                    matched = true;
                }
                i += 1;
            }
        }
    }
    (matched != negate, i)
}

/// The literal prefix of a pattern (bytes before the first special
/// character), used to narrow a scan to a key range.
pub fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let end = pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    &pattern[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn redis_examples() {
        let m = |p: &str, k: &str| glob_match(p.as_bytes(), k.as_bytes());
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("user:*:name", "user:42:name"));
        assert!(!m("user:*:name", "user:42:age"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("[b-a]", "a"));
        assert!(!m("abc", "abcd"));
        assert!(!m("abcd", "abc"));
    }

    #[test]
    fn prefix() {
        assert_eq!(literal_prefix(b"user:*"), b"user:");
        assert_eq!(literal_prefix(b"*"), b"");
        assert_eq!(literal_prefix(b"abc"), b"abc");
        assert_eq!(literal_prefix(b"a?c"), b"a");
    }

    proptest! {
        #[test]
        fn never_panics(p in proptest::collection::vec(any::<u8>(), 0..20), k in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = glob_match(&p, &k);
        }

        #[test]
        fn literal_patterns_match_only_themselves(k in "[a-z0-9:]{0,12}", other in "[a-z0-9:]{0,12}") {
            prop_assert!(glob_match(k.as_bytes(), k.as_bytes()));
            prop_assert_eq!(glob_match(k.as_bytes(), other.as_bytes()), k == other);
        }

        #[test]
        fn star_suffix_is_prefix_match(prefix in "[a-z]{0,6}", k in "[a-z]{0,10}") {
            let p = format!("{prefix}*");
            prop_assert_eq!(glob_match(p.as_bytes(), k.as_bytes()), k.starts_with(&prefix));
        }
    }
}
