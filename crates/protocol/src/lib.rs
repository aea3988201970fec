//! Wire protocols spoken by Strata.
//!
//! * [`resp`]: the Redis serialization protocol (RESP2 and RESP3), both the
//!   server side (request parsing, reply encoding) and the client side
//!   (request encoding, reply parsing).
//! * [`text`]: Strata's line-oriented text protocol (`PUT k v`, `READ k`, ...).
//! * [`pipe`]: its pipe-delimited dialect on the same port (`PUT|k|v`,
//!   `GET|k`, ...), told apart per line.
//!
//! Everything here is sans-I/O: functions take and fill [`bytes::BytesMut`]
//! buffers so the same code serves the async server and the blocking client.
//! Nothing on a parsing path panics on untrusted input, and every length
//! taken from the wire is checked against a caller-supplied limit before it
//! is used to size an allocation.

pub mod pipe;
pub mod resp;
pub mod text;

/// Whether a request's first word is `POST` or `Host:` (any case): the
/// first words of an HTTP request, never of a real Strata command. A web
/// page can make a browser send an HTTP POST to any loopback port, and its
/// body lines would otherwise run as commands (cross-protocol scripting),
/// so servers close such connections unread, as Redis's
/// `securityWarningCommand` does.
pub fn is_http_probe_word(word: &[u8]) -> bool {
    word.eq_ignore_ascii_case(b"POST") || word.eq_ignore_ascii_case(b"Host:")
}

/// Index of the first `needle` byte in `haystack`.
///
/// The line framers scan for `\n` in client data; a word-at-a-time scan is
/// several times faster than a byte loop and avoids a `memchr` dependency.
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    const LOW_BITS: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let pattern = LOW_BITS.wrapping_mul(u64::from(needle));
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0usize;
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(word) ^ pattern;
        // Classic "has zero byte" test. Borrows can only create false
        // positives *above* a real zero byte, so the lowest flagged byte is
        // always a genuine match.
        let found = x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use super::{find_byte, is_http_probe_word};

    #[test]
    fn http_probe_words_match_in_any_case() {
        for word in [&b"POST"[..], b"post", b"PoSt", b"Host:", b"HOST:", b"host:"] {
            assert!(is_http_probe_word(word), "{word:?}");
        }
        for word in [&b"GET"[..], b"SET", b"Host", b"POSTS", b"", b"host: "] {
            assert!(!is_http_probe_word(word), "{word:?}");
        }
    }

    #[test]
    fn find_byte_matches_naive_search() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7 % 251) as u8).collect();
        for needle in 0..=255u8 {
            for start in 0..20 {
                let hay = &data[start..];
                assert_eq!(
                    find_byte(needle, hay),
                    hay.iter().position(|&b| b == needle),
                    "needle {needle} start {start}"
                );
            }
        }
        assert_eq!(find_byte(b'\n', b""), None);
        assert_eq!(find_byte(0x80, &[0x7f, 0x80]), Some(1));
        assert_eq!(find_byte(0x00, &[1, 1, 1, 1, 1, 1, 1, 1, 0]), Some(8));
    }
}
