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

pub fn is_stop_word(term: &str) -> bool {
    STOP_WORDS.binary_search(&term).is_ok()
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
        for word in text.unicode_words() {
            if out.len() == TOKENS_PER_FIELD_MAX {
                break;
            }
            let Some(term) = normalize(word) else {
                continue;
            };
            if is_stop_word(&term) {
                continue;
            }
            let stem = if stem { self.stem(&term) } else { None };
            let position = out.len() as u32;
            out.push(Token {
                term,
                stem,
                position,
            });
        }
        debug_assert!(
            out.iter()
                .all(|t| !t.term.is_empty() && t.term.len() <= TERM_SIZE_BYTES_MAX)
        );
        out
    }

    /// The stem of a normalized term, if it applies and differs.
    pub fn stem(&self, term: &str) -> Option<String> {
        if term.len() < STEM_WORD_SIZE_BYTES_MIN {
            return None;
        }
        // A poisoned lock only means another thread panicked mid-insert;
        // the map is still a valid cache.
        let mut stems = self.stems.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = stems.get(term) {
            return known.clone();
        }
        let stem = self.stemmer.stem(term);
        let stem = (stem != term && !stem.is_empty() && !stem.contains('\0'))
            .then(|| cut(&stem).to_string());
        if stems.len() >= STEM_CACHE_WORDS_MAX {
            stems.clear();
        }
        stems.insert(term.to_string(), stem.clone());
        stem
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
        assert_eq!(STOP_WORDS.len(), 33);
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

    proptest! {
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
