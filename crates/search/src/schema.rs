//! Index definitions: [`IndexDef`], parsed from `FT.CREATE`'s arguments
//! with RediSearch 2.10's error messages where it has one, and encoded in
//! a strict, versioned binary form (a definition is replicated state: it
//! lives in the data keyspace and travels in snapshots).
//!
//! Accepted: `idx [ON STRING|JSON] [PREFIX n p...] [LANGUAGE l] SCHEMA`
//! then fields `path [AS name] type [options] [SORTABLE [UNF]]` with types
//! `TEXT [WEIGHT w] [NOSTEM]`, `TAG [SEPARATOR c] [CASESENSITIVE]`,
//! `NUMERIC` and `VECTOR FLAT n TYPE FLOAT32 DIM d DISTANCE_METRIC
//! COSINE|L2|IP [EMBED field]` (`EMBED` is Strata's: the server computes
//! the vector from the named TEXT field). RediSearch options Strata does
//! not implement are refused by name, never ignored.

use crate::codec::{DecodeError, Reader, put_bytes, put_varint};
use crate::limits::{
    CREATE_ARGS_MAX, DEFINITION_SIZE_BYTES_MAX, FIELD_NAME_SIZE_BYTES_MAX, FIELDS_MAX,
    INDEX_NAME_SIZE_BYTES_MAX, JSON_PATH_STEPS_MAX, PREFIX_SIZE_BYTES_MAX, PREFIXES_MAX,
    VECTOR_DIM_MAX,
};

/// An index's number: assigned by storage at `FT.CREATE`, never reused, so
/// that the entries of a dropped index (one key range) cannot be mistaken
/// for a new index of the same name. 0 is the catalog's (see `keys.rs`).
pub type IndexId = u32;
/// A field's position in its definition.
pub type FieldId = u16;

/// The field every `ON STRING` index reads: the whole value.
pub const STRING_FIELD: &str = "value";

/// The encoding's version, first byte of every encoded definition.
pub const DEFINITION_FORMAT_VERSION: u8 = 1;
/// The analyzer's version, second byte: which tokenizer, stop words and
/// stemmer wrote an index's entries. A future analyzer keeps this one for
/// the indexes written with it (their deletes must recompute the same
/// entries).
pub const ANALYZER_VERSION: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    /// Strata's extension: the whole string value is the field `value`.
    String,
    /// String values holding a JSON object; fields named by JSON paths.
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Cosine,
    L2,
    Ip,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VectorDef {
    pub dim: u32,
    pub metric: Metric,
    /// `EMBED field`: the TEXT field whose text the server embeds.
    pub embed: Option<FieldId>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FieldKind {
    Text { weight: f64, nostem: bool },
    Tag { separator: u8, case_sensitive: bool },
    Numeric,
    Vector(VectorDef),
}

/// One step of a JSON path: `.name` / `["name"]`, or `[n]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldDef {
    /// What queries call it (`AS name`, else the path).
    pub name: String,
    /// Where it is in a document: `value` (ON STRING) or a JSON path.
    pub path: String,
    pub kind: FieldKind,
    pub sortable: bool,
    /// `path` parsed (ON JSON only; derived, not encoded).
    pub steps: Vec<PathStep>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexDef {
    pub name: String,
    pub on: DocKind,
    /// Keys this index covers; empty means every key.
    pub prefixes: Vec<Vec<u8>>,
    pub language: Language,
    pub fields: Vec<FieldDef>,
}

macro_rules! languages {
    ($($variant:ident = $code:literal, $name:literal;)*) => {
        /// Snowball stemmers (`LANGUAGE`), with stable codes for the encoding.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Language { $($variant = $code,)* }

        impl Language {
            pub const ALL: &'static [Language] = &[$(Language::$variant,)*];
            pub fn name(self) -> &'static str {
                match self { $(Language::$variant => $name,)* }
            }
            fn from_code(code: u8) -> Option<Language> {
                match code { $($code => Some(Language::$variant),)* _ => None }
            }
            pub(crate) fn algorithm(self) -> rust_stemmers::Algorithm {
                match self { $(Language::$variant => rust_stemmers::Algorithm::$variant,)* }
            }
        }
    };
}

languages! {
    Arabic = 1, "arabic"; Danish = 2, "danish"; Dutch = 3, "dutch";
    English = 4, "english"; Finnish = 5, "finnish"; French = 6, "french";
    German = 7, "german"; Greek = 8, "greek"; Hungarian = 9, "hungarian";
    Italian = 10, "italian"; Norwegian = 11, "norwegian";
    Portuguese = 12, "portuguese"; Romanian = 13, "romanian";
    Russian = 14, "russian"; Spanish = 15, "spanish"; Swedish = 16, "swedish";
    Tamil = 17, "tamil"; Turkish = 18, "turkish";
}

impl Language {
    /// RediSearch's names, any case.
    pub fn parse(name: &str) -> Option<Language> {
        Language::ALL
            .iter()
            .copied()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }
}

/// A refused `FT.CREATE`. The texts are RediSearch 2.10's where it has
/// one (`spec.c`, `rules.c`, `rmutil/args.h`); the server sends them after
/// `ERR `, as Redis does for a module's error without a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("wrong number of arguments for 'FT.CREATE' command")]
    Arity,
    #[error("Unknown argument `{0}`")]
    UnknownArgument(String),
    #[error("No schema found")]
    NoSchema,
    #[error("Fields arguments are missing")]
    FieldsMissing,
    #[error("Schema is limited to {0} fields")]
    TooManyFields(usize),
    #[error("AS requires an argument")]
    AsWithoutName,
    #[error("Duplicate field in schema - {0}")]
    DuplicateField(String),
    #[error("Field `{0}` does not have a type")]
    NoType(String),
    #[error("Invalid field type for field `{0}`")]
    InvalidFieldType(String),
    /// RediSearch's `Bad arguments for <what>: <AC_Strerror>`.
    #[error("Bad arguments for {what}: {why}")]
    BadArguments {
        what: &'static str,
        why: &'static str,
    },
    #[error("SEPARATOR requires an argument")]
    SeparatorWithoutArgument,
    #[error("Tag separator must be a single character. Got `{0}`")]
    BadSeparator(String),
    #[error("Invalid rule type: {0}")]
    InvalidRuleType(String),
    #[error("Invalid language")]
    InvalidLanguage,
    #[error(
        "Bad number of arguments for vector similarity index: got {0} but expected even number as algorithm parameters (should be submitted as named arguments)"
    )]
    VectorOddArguments(usize),
    #[error("Bad arguments for algorithm FLAT: {0}")]
    VectorUnknownParameter(String),
    #[error("Expected {expected} parameters but got {got}")]
    VectorMissingParameters { expected: usize, got: usize },
    #[error(
        "Missing mandatory parameter: cannot create FLAT index without specifying {0} argument"
    )]
    VectorMandatory(&'static str),
    // Strata's own (RediSearch has no such limit or option).
    #[error("`{0}` is not supported by Strata's FT.CREATE")]
    Unsupported(String),
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("{0} must be valid UTF-8")]
    NotUtf8(&'static str),
    #[error("PREFIX takes at most {0} prefixes")]
    TooManyPrefixes(usize),
    #[error("Vector DIM must be between 1 and {0}")]
    BadDim(usize),
    #[error("Invalid JSONPath `{0}`: use $.name, $.name.sub, $[\"name\"] or $.name[0]")]
    BadJsonPath(String),
    #[error("An ON STRING index has one field, `value`; got `{0}` (name other fields with AS)")]
    NotStringField(String),
    #[error("EMBED field `{0}` must be a TEXT field of this schema")]
    BadEmbedField(String),
    #[error("FT.CREATE has more than {0} arguments")]
    TooManyArguments(usize),
}

/// `AC_Strerror`'s texts.
const AC_NOARG: &str = "Expected an argument, but none provided";
const AC_PARSE: &str = "Could not convert argument to expected type";
const AC_ELIMIT: &str = "Value is outside acceptable bounds";
const AC_ENOENT: &str = "Unknown argument";

/// RediSearch options Strata refuses by name rather than call unknown.
const UNSUPPORTED_OPTIONS: &[&str] = &[
    "FILTER",
    "SCORE",
    "SCORE_FIELD",
    "LANGUAGE_FIELD",
    "PAYLOAD_FIELD",
    "MAXTEXTFIELDS",
    "TEMPORARY",
    "NOOFFSETS",
    "NOHL",
    "NOFIELDS",
    "NOFREQS",
    "STOPWORDS",
    "SKIPINITIALSCAN",
    "ASYNC",
    "NOSCOREIDX",
];

struct Args<'a> {
    args: &'a [&'a [u8]],
    at: usize,
}

impl<'a> Args<'a> {
    fn peek(&self) -> Option<&'a [u8]> {
        self.args.get(self.at).copied()
    }
    fn next(&mut self) -> Option<&'a [u8]> {
        let a = self.peek()?;
        self.at += 1;
        Some(a)
    }
    fn at_end(&self) -> bool {
        self.at >= self.args.len()
    }
    /// Consumes the next argument if it is `word` (any case).
    fn eat(&mut self, word: &str) -> bool {
        let hit = self
            .peek()
            .is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()));
        if hit {
            self.at += 1;
        }
        hit
    }
    fn size(&mut self, what: &'static str) -> Result<usize, SchemaError> {
        let raw = self.next().ok_or(SchemaError::BadArguments {
            what,
            why: AC_NOARG,
        })?;
        let text = std::str::from_utf8(raw).ok();
        // RediSearch: a negative integer is out of bounds, not unreadable.
        let why = if text
            .and_then(|s| s.parse::<i64>().ok())
            .is_some_and(|n| n < 0)
        {
            AC_ELIMIT
        } else {
            AC_PARSE
        };
        text.and_then(|s| s.parse::<usize>().ok())
            .ok_or(SchemaError::BadArguments { what, why })
    }
    fn text(&mut self, what: &'static str) -> Result<&'a str, SchemaError> {
        let raw = self.next().ok_or(SchemaError::BadArguments {
            what,
            why: AC_NOARG,
        })?;
        std::str::from_utf8(raw).map_err(|_| SchemaError::NotUtf8(what))
    }
}

fn lossy(raw: &[u8]) -> String {
    crate::echo(raw)
}

impl IndexDef {
    /// Parses `FT.CREATE`'s arguments, from the index name on.
    pub fn parse(args: &[&[u8]]) -> Result<IndexDef, SchemaError> {
        if args.is_empty() {
            return Err(SchemaError::Arity);
        }
        if args.len() > CREATE_ARGS_MAX {
            return Err(SchemaError::TooManyArguments(CREATE_ARGS_MAX));
        }
        let name = std::str::from_utf8(args[0]).map_err(|_| SchemaError::NotUtf8("index name"))?;
        check_len("index name", name.len(), INDEX_NAME_SIZE_BYTES_MAX)?;
        let mut def = IndexDef {
            name: name.to_string(),
            on: DocKind::String,
            prefixes: Vec::new(),
            language: Language::English,
            fields: Vec::new(),
        };
        let mut a = Args {
            args: &args[1..],
            at: 0,
        };
        def.parse_options(&mut a)?;
        if a.at_end() {
            return Err(SchemaError::FieldsMissing);
        }
        let mut pending_embeds = Vec::new();
        while !a.at_end() {
            if def.fields.len() == FIELDS_MAX {
                return Err(SchemaError::TooManyFields(FIELDS_MAX));
            }
            let (field, embed) = parse_field(&mut a, &def)?;
            pending_embeds.push(embed);
            def.fields.push(field);
        }
        def.resolve_embeds(&pending_embeds)?;
        def.validate()?;
        Ok(def)
    }

    /// The options before `SCHEMA`, in any order.
    fn parse_options(&mut self, a: &mut Args) -> Result<(), SchemaError> {
        loop {
            let Some(arg) = a.peek() else {
                return Err(SchemaError::NoSchema);
            };
            if a.eat("SCHEMA") {
                return Ok(());
            } else if a.eat("ON") {
                let kind = a.text("ON")?;
                self.on = match kind.to_ascii_uppercase().as_str() {
                    "STRING" => DocKind::String,
                    "JSON" => DocKind::Json,
                    _ => return Err(SchemaError::InvalidRuleType(lossy(kind.as_bytes()))),
                };
            } else if a.eat("PREFIX") {
                self.parse_prefixes(a)?;
            } else if a.eat("LANGUAGE") {
                let l = a.text("LANGUAGE")?;
                self.language = Language::parse(l).ok_or(SchemaError::InvalidLanguage)?;
            } else if let Some(opt) = UNSUPPORTED_OPTIONS
                .iter()
                .find(|o| arg.eq_ignore_ascii_case(o.as_bytes()))
            {
                return Err(SchemaError::Unsupported(opt.to_string()));
            } else {
                return Err(SchemaError::UnknownArgument(lossy(arg)));
            }
        }
    }

    fn parse_prefixes(&mut self, a: &mut Args) -> Result<(), SchemaError> {
        let n = a.size("PREFIX")?;
        if n > PREFIXES_MAX {
            return Err(SchemaError::TooManyPrefixes(PREFIXES_MAX));
        }
        for _ in 0..n {
            let p = a.next().ok_or(SchemaError::BadArguments {
                what: "PREFIX",
                why: AC_NOARG,
            })?;
            check_len("a prefix", p.len(), PREFIX_SIZE_BYTES_MAX)?;
            self.prefixes.push(p.to_vec());
        }
        Ok(())
    }

    fn resolve_embeds(&mut self, pending: &[Option<String>]) -> Result<(), SchemaError> {
        debug_assert_eq!(pending.len(), self.fields.len());
        for (i, embed) in pending.iter().enumerate() {
            let Some(source) = embed else { continue };
            let id = self
                .field_id(source)
                .filter(|&id| matches!(self.fields[id as usize].kind, FieldKind::Text { .. }))
                .ok_or_else(|| SchemaError::BadEmbedField(lossy(source.as_bytes())))?;
            if let FieldKind::Vector(v) = &mut self.fields[i].kind {
                v.embed = Some(id);
            }
        }
        Ok(())
    }

    /// Everything a definition must satisfy, whether parsed or decoded.
    fn validate(&self) -> Result<(), SchemaError> {
        check_len("index name", self.name.len(), INDEX_NAME_SIZE_BYTES_MAX)?;
        if self.fields.is_empty() {
            return Err(SchemaError::FieldsMissing);
        }
        if self.fields.len() > FIELDS_MAX {
            return Err(SchemaError::TooManyFields(FIELDS_MAX));
        }
        if self.prefixes.len() > PREFIXES_MAX {
            return Err(SchemaError::TooManyPrefixes(PREFIXES_MAX));
        }
        for (i, f) in self.fields.iter().enumerate() {
            if self.fields[..i].iter().any(|g| g.name == f.name) {
                return Err(SchemaError::DuplicateField(lossy(f.name.as_bytes())));
            }
            check_len("a field name", f.name.len(), FIELD_NAME_SIZE_BYTES_MAX)?;
            check_len("a field path", f.path.len(), FIELD_NAME_SIZE_BYTES_MAX)?;
            match self.on {
                DocKind::String if f.path != STRING_FIELD => {
                    return Err(SchemaError::NotStringField(lossy(f.path.as_bytes())));
                }
                DocKind::Json if f.steps != parse_json_path(&f.path)? => {
                    return Err(SchemaError::BadJsonPath(lossy(f.path.as_bytes())));
                }
                _ => {}
            }
            self.validate_kind(&f.kind)?;
        }
        Ok(())
    }

    fn validate_kind(&self, kind: &FieldKind) -> Result<(), SchemaError> {
        match kind {
            FieldKind::Text { weight, .. } if !(weight.is_finite() && *weight >= 0.0) => {
                Err(SchemaError::BadArguments {
                    what: "weight",
                    why: AC_ELIMIT,
                })
            }
            FieldKind::Tag { separator, .. } if !is_separator(*separator) => {
                Err(SchemaError::BadSeparator(lossy(&[*separator])))
            }
            FieldKind::Vector(v) if v.dim == 0 || v.dim as usize > VECTOR_DIM_MAX => {
                Err(SchemaError::BadDim(VECTOR_DIM_MAX))
            }
            FieldKind::Vector(VectorDef { embed: Some(e), .. }) => {
                match self.fields.get(*e as usize).map(|f| &f.kind) {
                    Some(FieldKind::Text { .. }) => Ok(()),
                    _ => Err(SchemaError::BadEmbedField(e.to_string())),
                }
            }
            _ => Ok(()),
        }
    }

    /// The field queries call `name`.
    pub fn field_id(&self, name: &str) -> Option<FieldId> {
        self.fields
            .iter()
            .position(|f| f.name == name)
            .map(|i| i as FieldId)
    }

    /// Whether this index covers `key` (its prefixes; none: every key).
    pub fn covers(&self, key: &[u8]) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| key.starts_with(p))
    }
}

fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), SchemaError> {
    if len > max {
        return Err(SchemaError::TooLong { what, max });
    }
    Ok(())
}

/// A tag separator: one printable ASCII character that is not a letter or
/// digit (Strata's rule; RediSearch only asks for one byte).
fn is_separator(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

/// One field: `path [AS name] TYPE options...`, and its `EMBED` source.
fn parse_field(a: &mut Args, def: &IndexDef) -> Result<(FieldDef, Option<String>), SchemaError> {
    let path_raw = a.next().ok_or(SchemaError::FieldsMissing)?;
    let path = std::str::from_utf8(path_raw).map_err(|_| SchemaError::NotUtf8("a field path"))?;
    let name = if a.eat("AS") {
        let raw = a.next().ok_or(SchemaError::AsWithoutName)?;
        std::str::from_utf8(raw).map_err(|_| SchemaError::NotUtf8("a field name"))?
    } else {
        path
    };
    check_len("a field name", name.len(), FIELD_NAME_SIZE_BYTES_MAX)?;
    check_len("a field path", path.len(), FIELD_NAME_SIZE_BYTES_MAX)?;
    if def.field_id(name).is_some() {
        return Err(SchemaError::DuplicateField(lossy(name.as_bytes())));
    }
    let steps = match def.on {
        DocKind::Json => parse_json_path(path)?,
        DocKind::String if path == STRING_FIELD => Vec::new(),
        DocKind::String => return Err(SchemaError::NotStringField(lossy(path.as_bytes()))),
    };
    let Some(type_arg) = a.next() else {
        return Err(SchemaError::NoType(lossy(name.as_bytes())));
    };
    let mut embed = None;
    let kind = match type_arg.to_ascii_uppercase().as_slice() {
        b"TEXT" => parse_text(a)?,
        b"TAG" => parse_tag(a)?,
        b"NUMERIC" => FieldKind::Numeric,
        b"VECTOR" => {
            let (v, e) = parse_vector(a)?;
            embed = e;
            FieldKind::Vector(v)
        }
        b"GEO" | b"GEOSHAPE" => return Err(SchemaError::Unsupported(lossy(type_arg))),
        _ => return Err(SchemaError::InvalidFieldType(lossy(name.as_bytes()))),
    };
    let mut field = FieldDef {
        name: name.to_string(),
        path: path.to_string(),
        kind,
        sortable: false,
        steps,
    };
    // As in RediSearch, a VECTOR field takes no SORTABLE: the next word
    // starts the next field.
    if !matches!(field.kind, FieldKind::Vector(_)) {
        parse_field_flags(a, &mut field)?;
    }
    Ok((field, embed))
}

fn parse_field_flags(a: &mut Args, field: &mut FieldDef) -> Result<(), SchemaError> {
    loop {
        if a.eat("SORTABLE") {
            field.sortable = true;
            a.eat("UNF");
        } else if a.eat("NOINDEX") {
            return Err(SchemaError::Unsupported("NOINDEX".to_string()));
        } else {
            return Ok(());
        }
    }
}

fn parse_text(a: &mut Args) -> Result<FieldKind, SchemaError> {
    let (mut weight, mut nostem) = (1.0f64, false);
    loop {
        if a.eat("NOSTEM") {
            nostem = true;
        } else if a.eat("WEIGHT") {
            let raw = a.next().ok_or(SchemaError::BadArguments {
                what: "weight",
                why: AC_NOARG,
            })?;
            // A number too large for a double (`1e400`) does not convert, as
            // in RediSearch.
            weight = std::str::from_utf8(raw)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|w| !w.is_infinite())
                .ok_or(SchemaError::BadArguments {
                    what: "weight",
                    why: AC_PARSE,
                })?;
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(SchemaError::BadArguments {
                    what: "weight",
                    why: AC_ELIMIT,
                });
            }
        } else if let Some(opt) = ["PHONETIC", "WITHSUFFIXTRIE", "INDEXEMPTY", "INDEXMISSING"]
            .into_iter()
            .find(|o| {
                a.peek()
                    .is_some_and(|p| p.eq_ignore_ascii_case(o.as_bytes()))
            })
        {
            return Err(SchemaError::Unsupported(opt.to_string()));
        } else {
            return Ok(FieldKind::Text { weight, nostem });
        }
    }
}

fn parse_tag(a: &mut Args) -> Result<FieldKind, SchemaError> {
    let (mut separator, mut case_sensitive) = (b',', false);
    loop {
        if a.eat("SEPARATOR") {
            let sep = a.next().ok_or(SchemaError::SeparatorWithoutArgument)?;
            if sep.len() != 1 || !is_separator(sep[0]) {
                return Err(SchemaError::BadSeparator(lossy(sep)));
            }
            separator = sep[0];
        } else if a.eat("CASESENSITIVE") {
            case_sensitive = true;
        } else if let Some(opt) = ["WITHSUFFIXTRIE", "INDEXEMPTY", "INDEXMISSING"]
            .into_iter()
            .find(|o| {
                a.peek()
                    .is_some_and(|p| p.eq_ignore_ascii_case(o.as_bytes()))
            })
        {
            return Err(SchemaError::Unsupported(opt.to_string()));
        } else {
            return Ok(FieldKind::Tag {
                separator,
                case_sensitive,
            });
        }
    }
}

/// `FLAT n TYPE t DIM d DISTANCE_METRIC m [INITIAL_CAP c] [BLOCK_SIZE b]`
/// then Strata's `[EMBED field]`, outside the `n` counted parameters so
/// the rest stays RediSearch's syntax.
fn parse_vector(a: &mut Args) -> Result<(VectorDef, Option<String>), SchemaError> {
    let algo = a.text("vector similarity algorithm")?;
    if algo.eq_ignore_ascii_case("HNSW") {
        return Err(SchemaError::Unsupported("HNSW".to_string()));
    }
    if !algo.eq_ignore_ascii_case("FLAT") {
        return Err(SchemaError::BadArguments {
            what: "vector similarity algorithm",
            why: AC_ENOENT,
        });
    }
    let n = a.size("vector similarity number of parameters")?;
    if n % 2 == 1 {
        return Err(SchemaError::VectorOddArguments(n));
    }
    let (mut dim, mut metric, mut typed, mut got) = (None, None, false, 0);
    while got < n / 2 && !a.at_end() {
        if a.eat("TYPE") {
            parse_vector_type(a)?;
            typed = true;
        } else if a.eat("DIM") {
            dim = Some(parse_dim(a)?);
        } else if a.eat("DISTANCE_METRIC") {
            metric = Some(parse_metric(a)?);
        } else if a.eat("INITIAL_CAP") {
            a.size("vector similarity FLAT index initial cap")?;
        } else if a.eat("BLOCK_SIZE") {
            a.size("vector similarity FLAT index blocksize")?;
        } else {
            return Err(SchemaError::VectorUnknownParameter(lossy(
                a.peek().unwrap_or_default(),
            )));
        }
        got += 1;
    }
    if got < n / 2 {
        return Err(SchemaError::VectorMissingParameters {
            expected: n,
            got: got * 2,
        });
    }
    if !typed {
        return Err(SchemaError::VectorMandatory("TYPE"));
    }
    let dim = dim.ok_or(SchemaError::VectorMandatory("DIM"))?;
    let metric = metric.ok_or(SchemaError::VectorMandatory("DISTANCE_METRIC"))?;
    let embed = if a.eat("EMBED") {
        Some(a.text("EMBED")?.to_string())
    } else {
        None
    };
    Ok((
        VectorDef {
            dim,
            metric,
            embed: None,
        },
        embed,
    ))
}

/// FLOAT32 only: the other types RediSearch knows are refused by name.
fn parse_vector_type(a: &mut Args) -> Result<(), SchemaError> {
    let what = "vector similarity FLAT index type";
    let t = a.text(what)?;
    if ["FLOAT64", "FLOAT16", "BFLOAT16"]
        .iter()
        .any(|o| t.eq_ignore_ascii_case(o))
    {
        return Err(SchemaError::Unsupported(lossy(
            format!("TYPE {t}").as_bytes(),
        )));
    }
    if !t.eq_ignore_ascii_case("FLOAT32") {
        return Err(SchemaError::BadArguments {
            what,
            why: AC_ENOENT,
        });
    }
    Ok(())
}

fn parse_dim(a: &mut Args) -> Result<u32, SchemaError> {
    let what = "vector similarity FLAT index dim";
    let d = a.size(what)?;
    if d == 0 {
        return Err(SchemaError::BadArguments {
            what,
            why: AC_ELIMIT,
        });
    }
    if d > VECTOR_DIM_MAX {
        return Err(SchemaError::BadDim(VECTOR_DIM_MAX));
    }
    Ok(d as u32)
}

fn parse_metric(a: &mut Args) -> Result<Metric, SchemaError> {
    let what = "vector similarity FLAT index metric";
    let m = a.text(what)?;
    match m.to_ascii_uppercase().as_str() {
        "COSINE" => Ok(Metric::Cosine),
        "L2" => Ok(Metric::L2),
        "IP" => Ok(Metric::Ip),
        _ => Err(SchemaError::BadArguments {
            what,
            why: AC_ENOENT,
        }),
    }
}

/// The JSON path subset: `$`, then `.name`, `["name"]` or `[n]` steps; a
/// bare `name` means `$.name` (RediSearch's legacy paths). Names in dot
/// form are letters, digits, `_` and `-` (and any non-ASCII character).
pub fn parse_json_path(path: &str) -> Result<Vec<PathStep>, SchemaError> {
    let bad = || SchemaError::BadJsonPath(lossy(path.as_bytes()));
    let mut rest = match path.strip_prefix('$') {
        Some(r) => r,
        None if !path.is_empty() && path.chars().all(is_name_char) => {
            return Ok(vec![PathStep::Key(path.to_string())]);
        }
        None => return Err(bad()),
    };
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if steps.len() == JSON_PATH_STEPS_MAX {
            return Err(bad());
        }
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(|c: char| !is_name_char(c)).unwrap_or(r.len());
            if end == 0 {
                return Err(bad());
            }
            steps.push(PathStep::Key(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let inner = &r[..end];
            let quoted = inner
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
            let step = match quoted {
                Some(name) if !name.contains(['"', '\'', '\\']) => PathStep::Key(name.to_string()),
                Some(_) => return Err(bad()),
                None if !inner.is_empty()
                    && inner.len() <= 9
                    && inner.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    PathStep::Index(inner.parse().map_err(|_| bad())?)
                }
                None => return Err(bad()),
            };
            steps.push(step);
            rest = &r[end + 1..];
        } else {
            return Err(bad());
        }
    }
    Ok(steps)
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || !c.is_ascii()
}

// ---- encoding ---------------------------------------------------------

const FLAG_SORTABLE: u8 = 1;
const FLAG_NOSTEM: u8 = 1;
const FLAG_CASE_SENSITIVE: u8 = 1;

/// Why stored definition bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionDecodeError {
    #[error(transparent)]
    Bytes(#[from] DecodeError),
    #[error("search index definition format {0} is not known to this build")]
    Version(u8),
    #[error("search index analyzer version {0} is not known to this build")]
    Analyzer(u8),
    #[error("stored search index definition is invalid: {0}")]
    Invalid(#[from] SchemaError),
}

impl IndexDef {
    /// The stored form (docs/format.md, "Search"): strict, versioned, and
    /// canonical (one definition, one encoding).
    pub fn encode(&self, id: IndexId) -> Vec<u8> {
        let mut out = vec![DEFINITION_FORMAT_VERSION, ANALYZER_VERSION];
        out.extend_from_slice(&id.to_le_bytes());
        put_bytes(&mut out, self.name.as_bytes());
        out.push(match self.on {
            DocKind::String => 0,
            DocKind::Json => 1,
        });
        out.push(self.language as u8);
        put_varint(&mut out, self.prefixes.len() as u64);
        for p in &self.prefixes {
            put_bytes(&mut out, p);
        }
        put_varint(&mut out, self.fields.len() as u64);
        for f in &self.fields {
            encode_field(&mut out, f);
        }
        debug_assert!(out.len() <= DEFINITION_SIZE_BYTES_MAX);
        out
    }

    /// Strict: any unknown version, tag or flag, any limit exceeded, any
    /// byte left over, or a definition `parse` would refuse is an error.
    pub fn decode(raw: &[u8]) -> Result<(IndexId, IndexDef), DefinitionDecodeError> {
        if raw.len() > DEFINITION_SIZE_BYTES_MAX {
            return Err(DecodeError("definition too large").into());
        }
        let mut r = Reader::new(raw);
        let version = r.u8()?;
        if version != DEFINITION_FORMAT_VERSION {
            return Err(DefinitionDecodeError::Version(version));
        }
        let analyzer = r.u8()?;
        if analyzer != ANALYZER_VERSION {
            return Err(DefinitionDecodeError::Analyzer(analyzer));
        }
        let id = u32::from_le_bytes(r.array()?);
        let name = r.string(INDEX_NAME_SIZE_BYTES_MAX)?.to_string();
        let on = match r.u8()? {
            0 => DocKind::String,
            1 => DocKind::Json,
            _ => return Err(DecodeError("unknown document kind").into()),
        };
        let language = Language::from_code(r.u8()?).ok_or(DecodeError("unknown language"))?;
        let n = r.varint_max(PREFIXES_MAX as u64)? as usize;
        let prefixes = (0..n)
            .map(|_| r.bytes(PREFIX_SIZE_BYTES_MAX).map(<[u8]>::to_vec))
            .collect::<Result<Vec<_>, _>>()?;
        let n = r.varint_max(FIELDS_MAX as u64)? as usize;
        let mut fields = Vec::with_capacity(n);
        for _ in 0..n {
            fields.push(decode_field(&mut r, on)?);
        }
        r.finish()?;
        let def = IndexDef {
            name,
            on,
            prefixes,
            language,
            fields,
        };
        def.validate()?;
        debug_assert_eq!(def.encode(id), raw, "decoding is canonical");
        Ok((id, def))
    }
}

fn encode_field(out: &mut Vec<u8>, f: &FieldDef) {
    put_bytes(out, f.name.as_bytes());
    put_bytes(out, f.path.as_bytes());
    match &f.kind {
        FieldKind::Text { weight, nostem } => {
            out.push(0);
            out.extend_from_slice(&weight.to_le_bytes());
            out.push(if *nostem { FLAG_NOSTEM } else { 0 });
        }
        FieldKind::Tag {
            separator,
            case_sensitive,
        } => {
            out.push(1);
            out.push(*separator);
            out.push(if *case_sensitive {
                FLAG_CASE_SENSITIVE
            } else {
                0
            });
        }
        FieldKind::Numeric => out.push(2),
        FieldKind::Vector(v) => {
            out.push(3);
            put_varint(out, u64::from(v.dim));
            out.push(match v.metric {
                Metric::Cosine => 0,
                Metric::L2 => 1,
                Metric::Ip => 2,
            });
            match v.embed {
                None => out.push(0),
                Some(e) => {
                    out.push(1);
                    put_varint(out, u64::from(e));
                }
            }
        }
    }
    out.push(if f.sortable { FLAG_SORTABLE } else { 0 });
}

fn decode_field(r: &mut Reader, on: DocKind) -> Result<FieldDef, DefinitionDecodeError> {
    let name = r.string(FIELD_NAME_SIZE_BYTES_MAX)?.to_string();
    let path = r.string(FIELD_NAME_SIZE_BYTES_MAX)?.to_string();
    let kind = match r.u8()? {
        0 => {
            let weight = f64::from_le_bytes(r.array()?);
            FieldKind::Text {
                weight,
                nostem: flag(r.u8()?, FLAG_NOSTEM)?,
            }
        }
        1 => FieldKind::Tag {
            separator: r.u8()?,
            case_sensitive: flag(r.u8()?, FLAG_CASE_SENSITIVE)?,
        },
        2 => FieldKind::Numeric,
        3 => {
            let dim = r.varint_max(VECTOR_DIM_MAX as u64)? as u32;
            let metric = match r.u8()? {
                0 => Metric::Cosine,
                1 => Metric::L2,
                2 => Metric::Ip,
                _ => return Err(DecodeError("unknown metric").into()),
            };
            let embed = match r.u8()? {
                0 => None,
                1 => Some(r.varint_max(FIELDS_MAX as u64 - 1)? as FieldId),
                _ => return Err(DecodeError("bad EMBED marker").into()),
            };
            FieldKind::Vector(VectorDef { dim, metric, embed })
        }
        _ => return Err(DecodeError("unknown field type").into()),
    };
    let sortable = flag(r.u8()?, FLAG_SORTABLE)?;
    let steps = match on {
        DocKind::Json => parse_json_path(&path)?,
        DocKind::String => Vec::new(),
    };
    Ok(FieldDef {
        name,
        path,
        kind,
        sortable,
        steps,
    })
}

/// A flags byte with only `bit` allowed.
fn flag(b: u8, bit: u8) -> Result<bool, DecodeError> {
    if b & !bit != 0 {
        return Err(DecodeError("unknown flag bits"));
    }
    Ok(b & bit != 0)
}
