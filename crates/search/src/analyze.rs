//! The analyzer: text to terms, and tag values to tags.
//!
//! Text: Unicode word boundaries (UAX #29, `unicode-segmentation`), Unicode
//! lower case, RediSearch's default English stop words (for every
//! language, as RediSearch does), terms cut to [`TERM_SIZE_BYTES_MAX`], and
//! a Snowball stem (`rust-stemmers`) for words of at least
//! [`STEM_WORD_SIZE_BYTES_MIN`] bytes whose stem differs, unless the field
//! is NOSTEM. Positions count the words kept, so a phrase matches across a
//! stop word, as in RediSearch.
//!
//! Deliberate difference from RediSearch: RediSearch splits words on ASCII
//! punctuation; UAX #29 keeps `don't`, `3.14` and `e.g` whole. Queries go
//! through the same analyzer, so both sides agree.
//!
//! Everything here decides which entries a value writes, and a delete
//! recomputes them from the old value: it must stay the same function for
//! as long as entries written with it exist (see `ANALYZER_VERSION`).

use unicode_segmentation::UnicodeSegmentation;

use crate::limits::{
    STEM_WORD_SIZE_BYTES_MIN, TAG_SIZE_BYTES_MAX, TAGS_PER_FIELD_MAX, TERM_SIZE_BYTES_MAX,
    TOKENS_PER_FIELD_MAX,
};
use crate::schema::Language;

/// RediSearch's `DEFAULT_STOPWORDS` (`src/stopwords.h`), sorted.
pub const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// Bytes of the longest stop word: a longer term needs no search.
const STOP_WORD_SIZE_BYTES_MAX: usize = 5;

/// A word of at most [`STOP_WORD_SIZE_BYTES_MAX`] bytes as one integer:
/// its bytes big-endian, zero-padded, then its length. Distinct words
/// get distinct keys, and words without NUL keep their order, so the
/// keys of [`STOP_WORDS`] are sorted: one search compares integers, not
/// strings (it ran for every word of every document).
const fn stop_word_key(word: &[u8]) -> u64 {
    let mut key = 0u64;
    let mut i = 0;
    while i < STOP_WORD_SIZE_BYTES_MAX {
        let b = if i < word.len() { word[i] } else { 0 };
        key = (key << 8) | b as u64;
        i += 1;
    }
    (key << 8) | word.len() as u64
}

const STOP_WORD_KEYS: [u64; STOP_WORDS.len()] = {
    let mut keys = [0u64; STOP_WORDS.len()];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = stop_word_key(STOP_WORDS[i].as_bytes());
        i += 1;
    }
    keys
};

pub fn is_stop_word(term: &str) -> bool {
    term.len() <= STOP_WORD_SIZE_BYTES_MAX
        && STOP_WORD_KEYS
            .binary_search(&stop_word_key(term.as_bytes()))
            .is_ok()
}

/// One indexed word of a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Lower case, at most [`TERM_SIZE_BYTES_MAX`] bytes, never empty, no NUL.
    pub term: String,
    /// Its stem, when stemming applies and changes it.
    pub stem: Option<String>,
    /// 0 for the field's first kept word.
    pub position: u32,
}

/// Words whose stems an analyzer remembers: Snowball was a fifth of the
/// cost of indexing a document (perf, 110-word documents), and text
/// repeats its words. Cleared whole when full, so memory stays bounded.
const STEM_CACHE_WORDS_MAX: usize = 65_536;

/// A language's analyzer: cheap to build. Its only state is a cache of
/// stems, which never changes an answer.
pub struct Analyzer {
    stemmer: rust_stemmers::Stemmer,
    stems: std::sync::Mutex<std::collections::HashMap<String, Option<String>>>,
}

impl Analyzer {
    pub fn new(language: Language) -> Self {
        Analyzer {
            stemmer: rust_stemmers::Stemmer::create(language.algorithm()),
            stems: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The tokens of `text`, at most [`TOKENS_PER_FIELD_MAX`].
    pub fn tokens(&self, text: &str, stem: bool) -> Vec<Token> {
        let mut out = Vec::new();
        let mut lower = String::new();
        let mut stems = stem.then(|| self.stems());
        self.each_term(text, &mut lower, |term| {
            if out.len() == TOKENS_PER_FIELD_MAX {
                return false;
            }
            let mut s = String::new();
            let stem = match &mut stems {
                Some(stems) => stems.stem_into(term, &mut s).then_some(s),
                None => None,
            };
            let position = out.len() as u32;
            out.push(Token {
                term: term.to_string(),
                stem,
                position,
            });
            true
        });
        debug_assert!(
            out.iter()
                .all(|t| !t.term.is_empty() && t.term.len() <= TERM_SIZE_BYTES_MAX)
        );
        out
    }

    /// Calls `each` with every term of `text`, in order, as
    /// [`Analyzer::tokens`] finds them (normalized, stop words dropped),
    /// until `each` returns false. `lower` is the caller's buffer for the
    /// lower-cased word, reused so that a word costs no allocation (unless
    /// it is not ASCII). What indexing a document uses; `tokens` is the
    /// same walk, kept for the query side and tests.
    pub fn each_term(&self, text: &str, lower: &mut String, mut each: impl FnMut(&str) -> bool) {
        let term = |word: &str| {
            if !normalize_into(word, lower) || is_stop_word(lower) {
                return true;
            }
            each(lower)
        };
        if text.is_ascii() {
            for word in AsciiWords::new(text) {
                // What `normalize_into` does, less its checks: an ASCII
                // word holds no NUL (a UAX #29 word never does) and
                // lowers in place.
                lower.clear();
                lower.push_str(&word[..word.len().min(TERM_SIZE_BYTES_MAX)]);
                lower.make_ascii_lowercase();
                if !is_stop_word(lower) && !each(lower) {
                    return;
                }
            }
        } else {
            text.unicode_words().all(term);
        }
    }

    /// The stem cache, locked once for a whole document rather than once
    /// per word.
    pub fn stems(&self) -> Stems<'_> {
        Stems {
            stemmer: &self.stemmer,
            // A poisoned lock only means another thread panicked
            // mid-insert; the map is still a valid cache.
            cache: self.stems.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// The stem of a normalized term, if it applies and differs.
    pub fn stem(&self, term: &str) -> Option<String> {
        let mut out = String::new();
        self.stems().stem_into(term, &mut out).then_some(out)
    }

    /// The stem a query word expands to among the stem entries: always,
    /// whatever the word's length and even when equal to it, as
    /// RediSearch's query expander does (`StemmerExpander`): `run` finds
    /// the `+run` written for `running`.
    pub fn query_stem(&self, term: &str) -> Option<String> {
        let stem = self.stemmer.stem(term);
        (!stem.is_empty() && !stem.contains('\0')).then(|| cut(&stem).to_string())
    }

    /// The terms of a query word, normalized as at indexing (a query word
    /// may hold several Unicode words: `e-mail` is `e` and `mail`). Stop
    /// words are dropped.
    pub fn query_terms(&self, word: &str) -> Vec<String> {
        word.unicode_words()
            .filter_map(normalize)
            .filter(|t| !is_stop_word(t))
            .collect()
    }
}

/// [`Analyzer::stem`] for many terms under one lock.
pub struct Stems<'a> {
    stemmer: &'a rust_stemmers::Stemmer,
    cache: std::sync::MutexGuard<'a, std::collections::HashMap<String, Option<String>>>,
}

impl Stems<'_> {
    /// Appends the stem of a normalized term to `out` and says whether
    /// there is one: the answer of [`Analyzer::stem`], without its copy.
    pub fn stem_into(&mut self, term: &str, out: &mut String) -> bool {
        if term.len() < STEM_WORD_SIZE_BYTES_MIN {
            return false;
        }
        if let Some(known) = self.cache.get(term) {
            if let Some(s) = known {
                out.push_str(s);
            }
            return known.is_some();
        }
        let stem = self.stemmer.stem(term);
        let stem = (stem != term && !stem.is_empty() && !stem.contains('\0'))
            .then(|| cut(&stem).to_string());
        if let Some(s) = &stem {
            out.push_str(s);
        }
        let found = stem.is_some();
        if self.cache.len() >= STEM_CACHE_WORDS_MAX {
            self.cache.clear();
        }
        self.cache.insert(term.to_string(), stem);
        found
    }
}

/// What UAX #29 says of an ASCII character, for word boundaries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WordClass {
    /// `ALetter`: A-Z, a-z.
    Letter,
    /// `Numeric`: 0-9.
    Digit,
    /// `ExtendNumLet`: `_`.
    Connector,
    /// `MidLetter`: `:`.
    MidLetter,
    /// `MidNumLet` and `Single_Quote`: `.` and `'`.
    MidNumLet,
    /// `MidNum`: `,` and `;`.
    MidNum,
    Other,
}

/// [`word_class`] of every byte, looked up once per byte of a document.
const WORD_CLASSES: [WordClass; 256] = {
    let mut t = [WordClass::Other; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = word_class(b as u8);
        b += 1;
    }
    t
};

const fn word_class(b: u8) -> WordClass {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => WordClass::Letter,
        b'0'..=b'9' => WordClass::Digit,
        b'_' => WordClass::Connector,
        b':' => WordClass::MidLetter,
        b'.' | b'\'' => WordClass::MidNumLet,
        b',' | b';' => WordClass::MidNum,
        _ => WordClass::Other,
    }
}

/// `unicode_words` for ASCII text, without the tables: a quarter of the
/// cost of indexing a document was finding its words. The rules of UAX
/// #29 that ASCII can meet: letters, digits and `_` hold together
/// (WB5, WB8-WB10, WB13a/b); `:` `.` `'` join two letters (WB6/7); `.`
/// `'` `,` `;` join two digits (WB11/12); anything else is a boundary,
/// and a segment without a letter or digit is no word. A proptest checks
/// it against `unicode_words`.
pub struct AsciiWords<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> AsciiWords<'a> {
    pub fn new(text: &'a str) -> Self {
        debug_assert!(text.is_ascii());
        AsciiWords { text, pos: 0 }
    }
}

impl<'a> Iterator for AsciiWords<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        use WordClass::*;
        let b = self.text.as_bytes();
        let class = |i: usize| b.get(i).map_or(Other, |&c| WORD_CLASSES[usize::from(c)]);
        loop {
            while self.pos < b.len() && !matches!(class(self.pos), Letter | Digit | Connector) {
                self.pos += 1;
            }
            if self.pos == b.len() {
                return None;
            }
            let start = self.pos;
            let mut prev = class(start);
            self.pos += 1;
            loop {
                let c = class(self.pos);
                if matches!(c, Letter | Digit | Connector) {
                    prev = c;
                    self.pos += 1;
                    continue;
                }
                let next = class(self.pos + 1);
                let joins = match c {
                    MidLetter => prev == Letter && next == Letter,
                    MidNumLet => prev == next && matches!(prev, Letter | Digit),
                    MidNum => prev == Digit && next == Digit,
                    _ => false,
                };
                if !joins {
                    break;
                }
                prev = next;
                self.pos += 2;
            }
            let word = &self.text[start..self.pos];
            // Only a word of `_` alone is no word.
            if b[start] != b'_' || word.bytes().any(|c| c.is_ascii_alphanumeric()) {
                return Some(word);
            }
        }
    }
}

/// [`normalize`] into `out` (cleared first), without allocating for an
/// ASCII word; false where `normalize` gives None.
pub fn normalize_into(word: &str, out: &mut String) -> bool {
    out.clear();
    if word.contains('\0') {
        return false;
    }
    if word.is_ascii() {
        // Unicode's lower case of ASCII is ASCII's.
        out.push_str(word);
        out.make_ascii_lowercase();
    } else {
        out.push_str(&word.to_lowercase());
    }
    let kept = cut(out).len();
    out.truncate(kept);
    !out.is_empty()
}

/// Lower case, cut to [`TERM_SIZE_BYTES_MAX`] bytes at a character
/// boundary; None for a word that is empty or holds NUL (never a term: keys
/// escape NUL, but no word needs it).
pub fn normalize(word: &str) -> Option<String> {
    if word.contains('\0') {
        return None;
    }
    let lower = word.to_lowercase();
    let term = cut(&lower);
    (!term.is_empty()).then(|| term.to_string())
}

/// The longest prefix of `s` of at most [`TERM_SIZE_BYTES_MAX`] bytes that
/// ends on a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= TERM_SIZE_BYTES_MAX {
        return s;
    }
    let mut end = TERM_SIZE_BYTES_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The tags of a string: split at `separator`, trimmed, lower case unless
/// `case_sensitive`; empty tags and tags over [`TAG_SIZE_BYTES_MAX`] bytes
/// are not indexed; sorted and deduplicated (a tag is a set member), at
/// most [`TAGS_PER_FIELD_MAX`].
pub fn split_tags(value: &str, separator: u8, case_sensitive: bool) -> Vec<String> {
    debug_assert!(separator.is_ascii());
    let mut out: Vec<String> = value
        .split(char::from(separator))
        .map(|t| normalize_tag(t, case_sensitive))
        .filter(|t| !t.is_empty() && t.len() <= TAG_SIZE_BYTES_MAX)
        .collect();
    out.sort();
    out.dedup();
    out.truncate(TAGS_PER_FIELD_MAX);
    out
}

/// One tag as stored and as queried: trimmed, case-folded unless
/// `case_sensitive`.
pub fn normalize_tag(tag: &str, case_sensitive: bool) -> String {
    let t = tag.trim();
    if case_sensitive {
        t.to_string()
    } else {
        t.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stop_words_are_sorted() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(STOP_WORD_KEYS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(STOP_WORDS.len(), 33);
        for w in STOP_WORDS {
            assert!(is_stop_word(w) && !is_stop_word(&format!("{w}q")));
        }
        for w in ["", "\0", "a\0", "\0a", "th", "thes", "wit", "i"] {
            assert!(!is_stop_word(w), "{w:?}");
        }
    }

    #[test]
    fn words_are_lowered_stemmed_and_stop_words_dropped() {
        let a = Analyzer::new(Language::English);
        let t = a.tokens("The Running dogs, and a CAT's toys!", true);
        let terms: Vec<_> = t
            .iter()
            .map(|t| (t.term.as_str(), t.stem.as_deref(), t.position))
            .collect();
        assert_eq!(
            terms,
            [
                ("running", Some("run"), 0),
                ("dogs", Some("dog"), 1),
                ("cat's", Some("cat"), 2),
                ("toys", Some("toy"), 3)
            ]
        );
        // Short words are not stemmed; NOSTEM stems nothing.
        assert_eq!(a.tokens("ran", true)[0].stem, None);
        assert!(
            a.tokens("running jumps", false)
                .iter()
                .all(|t| t.stem.is_none())
        );
    }

    #[test]
    fn long_words_are_cut_at_a_char_boundary() {
        let a = Analyzer::new(Language::English);
        let word = "é".repeat(100); // 200 bytes
        let t = a.tokens(&word, false);
        assert_eq!(t[0].term.len(), 128);
        assert_eq!(t[0].term, "é".repeat(64));
    }

    #[test]
    fn tags_split_trim_fold_and_dedupe() {
        assert_eq!(
            split_tags(" Red, blue ,RED,,", b',', false),
            ["blue", "red"]
        );
        assert_eq!(split_tags("Red|red", b'|', true), ["Red", "red"]);
        assert!(split_tags(&"x".repeat(TAG_SIZE_BYTES_MAX + 1), b',', false).is_empty());
    }

    #[test]
    fn other_languages_stem_with_their_own_rules() {
        let a = Analyzer::new(Language::French);
        assert_eq!(
            a.tokens("continuellement", true)[0].stem.as_deref(),
            Some("continuel")
        );
    }

    /// Text where every UAX #29 rule ASCII can meet comes up often.
    fn ascii_text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-cA-C0-2_.,;:' \"\t\r\n!?-]{0,40}", "[\\x00-\\x7f]{0,60}",]
    }

    #[test]
    fn ascii_words_of_known_cases() {
        for text in [
            "don't 3.14 e.g. a_b _ __x 1,000 a,b a:b 1:2 a.1 1.a x'",
            "",
            "  ",
        ] {
            let fast: Vec<_> = AsciiWords::new(text).collect();
            let slow: Vec<_> = text.unicode_words().collect();
            assert_eq!(fast, slow, "{text:?}");
        }
    }

    #[test]
    fn normalize_into_is_normalize() {
        let mut buf = String::new();
        for word in [
            "Hello",
            "ÉCOLE",
            "ΣΑΣ",
            "a\0b",
            "",
            &"É".repeat(100),
            &"x".repeat(200),
        ] {
            let ok = normalize_into(word, &mut buf);
            assert_eq!(normalize(word), ok.then(|| buf.clone()), "{word:?}");
        }
    }

    proptest! {
        #[test]
        fn ascii_words_are_unicode_words(text in ascii_text()) {
            let fast: Vec<_> = AsciiWords::new(&text).collect();
            let slow: Vec<_> = text.unicode_words().collect();
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn stop_words_are_found_by_key(word in "[a-z\\x00]{0,6}") {
            prop_assert_eq!(is_stop_word(&word), STOP_WORDS.contains(&word.as_str()));
        }

        #[test]
        fn normalize_into_agrees(word in "\\PC{0,20}|[a-zA-Z\\x00]{0,10}") {
            let mut buf = String::from("left over");
            let ok = normalize_into(&word, &mut buf);
            prop_assert_eq!(normalize(&word), ok.then(|| buf.clone()));
        }

        #[test]
        fn any_text_tokenizes_within_limits(text in "\\PC{0,200}", stem in any::<bool>()) {
            let a = Analyzer::new(Language::English);
            for (i, t) in a.tokens(&text, stem).iter().enumerate() {
                prop_assert_eq!(t.position as usize, i);
                prop_assert!(!t.term.is_empty() && t.term.len() <= TERM_SIZE_BYTES_MAX);
                prop_assert!(!t.term.contains('\0'));
                prop_assert!(!is_stop_word(&t.term));
                if let Some(s) = &t.stem { prop_assert!(s != &t.term && !s.is_empty()); }
            }
            for t in split_tags(&text, b',', false) {
                prop_assert!(!t.is_empty() && t.len() <= TAG_SIZE_BYTES_MAX);
            }
        }
    }
}
