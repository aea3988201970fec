//! Search commands (issue 21): RediSearch's FT.CREATE, FT.SEARCH, FT.INFO,
//! FT._LIST and FT.DROPINDEX, and Strata's SEARCH (the CLI's and the text
//! protocol's `search value|text|semantic`).
//!
//! Storage owns the indexes: FT.CREATE and FT.DROPINDEX are writes
//! (`Op::CreateIndex`, `Op::DropIndex`) through the write path, so every
//! replica holds the same catalog; FT.SEARCH and FT.INFO read the store
//! after the same read barrier as GET. This module parses, checks what it
//! can before anything is read, and shapes replies as RediSearch 2.10
//! does (RESP2 shapes, also under RESP3).
//!
//! Choices (see README's Search section):
//! - Errors: RediSearch's texts, sent as RediSearch sends them: a module's
//!   `RedisModule_ReplyWithError("Unknown Index name")` reaches the client
//!   as `-Unknown Index name`, without `ERR` ([`FT_ERROR_PREFIX`]).
//! - DIALECT 2, 3, 4 are accepted and the query is DIALECT 2's; DIALECT 1
//!   is refused. TIMEOUT is accepted and ignored (queries are bounded by
//!   the entries they read). SCORER BM25 is Strata's BM25 (b = 0.75),
//!   BM25STD RediSearch's (b = 0.5).
//! - SORTBY sorts at most [`SORT_CANDIDATES_MAX`] matches, by the field's
//!   value in each hit's record; more is refused (narrow the query).
//! - FT.DROPINDEX DD deletes the index's documents in pages, then drops
//!   the index: not atomic (a write between pages may survive).

mod modes;
mod options;
mod reply;

use std::borrow::Cow;

use bytes::Bytes;
use strata_protocol::resp::Reply;
use strata_search::query::{Knn, Node};
use strata_search::schema::{FieldKind, IndexDef};
use strata_search::{Params, Query, SearchOptions};
use strata_storage::{Mutation, MutationError, Op, SearchError};

use super::{Action, Ctx, storage_error};
use crate::shared::Shared;
use crate::write_path::Pending;

pub use modes::search;
pub use options::SearchArgs;

/// What a search error starts with. RediSearch's are bare (a module's
/// error without a code); one change here gives them `ERR `.
pub const FT_ERROR_PREFIX: &str = "";

/// Most matches SORTBY sorts (each is read and its value extracted).
pub const SORT_CANDIDATES_MAX: usize = 10_000;
/// FT.DROPINDEX DD: keys deleted per write, and pages at most (then the
/// index is dropped all the same, and the reply says what was left).
const DD_PAGE_KEYS: usize = 1_000;
const DD_PAGES_MAX: usize = 100_000;

/// A search error as RediSearch sends it.
pub fn ft_error(text: impl Into<Cow<'static, str>>) -> Reply {
    let text = text.into();
    if FT_ERROR_PREFIX.is_empty() {
        Reply::Error(text)
    } else {
        Reply::Error(format!("{FT_ERROR_PREFIX}{text}").into())
    }
}

/// FT.SEARCH's refusal of an index that does not exist (RediSearch's text,
/// as `SearchError::UnknownIndex` words it; FT.INFO and FT.DROPINDEX say
/// "Unknown Index name").
fn no_such_index(name: &str) -> Reply {
    search_error(&SearchError::UnknownIndex(name.to_string()))
}

fn search_error(e: &SearchError) -> Reply {
    ft_error(e.to_string())
}

/// The reply to a storage refusal of a search op, if it is one.
pub fn refusal(e: &MutationError) -> Option<Reply> {
    match e {
        MutationError::IndexExists
        | MutationError::UnknownIndex
        | MutationError::IndexLimit { .. }
        | MutationError::BadIndexDefinition { .. } => Some(ft_error(e.to_string())),
        _ => None,
    }
}

/// What the connection runs for a search command that waits (on the
/// embedder, or on writes).
pub enum Call {
    /// FT.CREATE: the definition, then the first backfill page.
    Create { name: String, mutation: Mutation },
    /// A search whose KNN text must be embedded first.
    Embed(Box<Request>),
    /// FT.DROPINDEX name DD.
    DropWithDocs(String),
}

/// Whether `name` can name an index at all: a longer one is an unknown
/// index, answered without a read (a storage key holds at most 64 KiB).
fn nameable(name: &[u8]) -> bool {
    name.len() <= strata_search::limits::INDEX_NAME_SIZE_BYTES_MAX
}

/// A search ready to run.
pub struct Request {
    pub index: String,
    pub def: IndexDef,
    pub query: Query,
    pub args: SearchArgs,
    /// Strata's SEARCH: its reply shape and its threshold.
    pub strata: Option<modes::Shape>,
    /// The connection speaks RESP3: FT.SEARCH answers RediSearch's map.
    pub resp3: bool,
}

fn resp3(ctx: &Ctx<'_>) -> bool {
    ctx.session.protocol == strata_protocol::resp::ProtocolVersion::Resp3
}

pub async fn run(shared: &Shared, pending: &mut Pending, call: Call) -> Reply {
    match call {
        Call::Create { name, mutation } => create(shared, pending, name, mutation).await,
        Call::Embed(mut req) => {
            if let Err(e) = embed_knn(shared, &mut req).await {
                return e;
            }
            execute(shared, &req, strata_storage::now_ms())
        }
        Call::DropWithDocs(name) => drop_with_docs(shared, pending, name).await,
    }
}

fn text_args(a: &[Bytes]) -> Vec<&[u8]> {
    a.iter().map(|b| &b[..]).collect()
}

pub fn ft_create(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    let def = match IndexDef::parse(&text_args(&a[1..])) {
        Ok(def) => def,
        Err(e) => return ft_error(e.to_string()).into(),
    };
    if let Err(e) = check_embed_fields(ctx.shared, &def) {
        return e.into();
    }
    Action::Search(Call::Create {
        name: def.name.clone(),
        mutation: Mutation {
            now_ms: ctx.now_ms,
            op: Op::CreateIndex {
                definition: Bytes::from(def.encode(0)),
            },
        },
    })
}

/// FT.CREATE: the definition goes through the write path; then, as
/// storage asks, one first backfill page of at most
/// `CREATE_BACKFILL_KEYS_MAX` keys, so that an index over a few keys is
/// whole when FT.CREATE answers (larger ones: the background driver).
async fn create(shared: &Shared, pending: &mut Pending, name: String, m: Mutation) -> Reply {
    let created = shared.write_path.write(pending, m).await;
    if !matches!(created, Ok(strata_storage::Outcome::Ok)) {
        return super::write_reply(created);
    }
    // This node's state has the index once a read point passes it.
    if shared.write_path.read_barrier().await.is_err() {
        return Reply::ok();
    }
    let Ok(Some(info)) = shared.store.index_info(&name) else {
        return Reply::ok();
    };
    if info.building {
        let keys_max = strata_storage::CREATE_BACKFILL_KEYS_MAX;
        // A page not embedded, refused or lost here is the driver's to redo.
        let _ = crate::search_driver::backfill_page(shared, pending, info.id, keys_max).await;
    }
    Reply::ok()
}

/// An EMBED field needs the server's model, of the field's DIM.
fn check_embed_fields(shared: &Shared, def: &IndexDef) -> Result<(), Reply> {
    for f in &def.fields {
        let FieldKind::Vector(v) = &f.kind else {
            continue;
        };
        if v.embed.is_none() {
            continue;
        }
        let Some(embedder) = shared.embedder.as_ref() else {
            return Err(ft_error(format!(
                "EMBED field `{}` needs an embedding model: start the server with --embedding-model <dir>",
                f.name
            )));
        };
        if v.dim as usize != embedder.dim() {
            return Err(ft_error(format!(
                "EMBED field `{}` has DIM {} but the embedding model makes vectors of {}",
                f.name,
                v.dim,
                embedder.dim()
            )));
        }
    }
    Ok(())
}

pub fn ft_search(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    if a.len() < 3 {
        return ft_error("No query string provided").into();
    }
    let args = match options::parse(&a[3..]) {
        Ok(args) => args,
        Err(e) => return e.into(),
    };
    let index = String::from_utf8_lossy(&a[1]).into_owned();
    let params = match Params::from_pairs(&text_args(&args.params)) {
        Ok(p) => p,
        Err(e) => return ft_error(e.to_string()).into(),
    };
    let query = match strata_search::query::parse(&a[2], &params) {
        Ok(q) => q,
        Err(e) => return ft_error(e.to_string()).into(),
    };
    if !nameable(&a[1]) {
        return no_such_index(&index).into();
    }
    let def = match ctx.shared.store.index_info(&index) {
        Ok(Some(info)) => info.def,
        Ok(None) => return no_such_index(&index).into(),
        Err(e) => return storage_error(&e).into(),
    };
    prepared(
        ctx,
        Request {
            index,
            def,
            query,
            args,
            strata: None,
            resp3: resp3(ctx),
        },
    )
}

/// Runs a request now, or hands it to the connection when its KNN text
/// must be embedded first.
fn prepared(ctx: &Ctx<'_>, req: Request) -> Action {
    if let Err(e) = check_sortby(&req) {
        return e.into();
    }
    if knn_embed_field(&req).is_some() {
        return Action::Search(Call::Embed(Box::new(req)));
    }
    execute(ctx.shared, &req, ctx.now_ms).into()
}

fn check_sortby(req: &Request) -> Result<(), Reply> {
    let knn_score = req.query.knn.as_ref().map(|k| k.score_name.as_str());
    match &req.args.sortby {
        Some(s) if Some(s.field.as_str()) == knn_score => Ok(()),
        Some(s) if req.def.field_id(&s.field).is_none() => Err(ft_error(format!(
            "Property `{}` not loaded nor in schema",
            s.field
        ))),
        _ => Ok(()),
    }
}

/// The KNN's field when it is an EMBED field (its PARAMS value is text).
fn knn_embed_field<'a>(req: &'a Request) -> Option<&'a Knn> {
    let knn = req.query.knn.as_ref()?;
    let id = req.def.field_id(&knn.field)?;
    match &req.def.fields[usize::from(id)].kind {
        FieldKind::Vector(v) if v.embed.is_some() => Some(knn),
        _ => None,
    }
}

/// Replaces an EMBED KNN's text with its vector (FLOAT32 LE).
async fn embed_knn(shared: &Shared, req: &mut Request) -> Result<(), Reply> {
    let Some(embedder) = shared.embedder.clone() else {
        return Err(ft_error(
            "KNN on an EMBED field needs an embedding model: start the server with --embedding-model <dir>",
        ));
    };
    let Some(knn) = req.query.knn.as_mut() else {
        return Ok(());
    };
    let Ok(text) = String::from_utf8(std::mem::take(&mut knn.vector)) else {
        return Err(ft_error(format!(
            "The KNN text of EMBED field `{}` (PARAMS `{}`) must be UTF-8",
            knn.field, knn.param
        )));
    };
    let vector = match embedder.embed(vec![text]).await {
        Ok(mut vectors) if vectors.len() == 1 => vectors.remove(0),
        Ok(_) => return Err(ft_error("embedding failed: no vector")),
        Err(e) => return Err(Reply::error(format!("ERR {e}"))),
    };
    knn.vector = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    Ok(())
}

/// Runs a search and shapes its reply.
fn execute(shared: &Shared, req: &Request, now_ms: u64) -> Reply {
    let mut opts = SearchOptions {
        bm25: req.args.bm25,
        offset: req.args.offset,
        count: req.args.count,
        ..SearchOptions::default()
    };
    if req.args.sortby.is_some() {
        opts.offset = 0;
        opts.count = SORT_CANDIDATES_MAX;
    }
    let answer = match shared.store.search(&req.index, &req.query, &opts, now_ms) {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return search_error(&e),
        Err(e) => return storage_error(&e),
    };
    match &req.strata {
        Some(shape) => modes::reply(shape, answer),
        None => reply::search(req, answer),
    }
}

/// FT.INFO (RediSearch ignores arguments after the name).
pub fn ft_info(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    // RediSearch's text here has a lower-case i (FT.DROPINDEX's has not).
    const UNKNOWN: &str = "Unknown index name";
    if !nameable(&a[1]) {
        return ft_error(UNKNOWN).into();
    }
    let name = String::from_utf8_lossy(&a[1]);
    match ctx.shared.store.index_info(&name) {
        Ok(Some(info)) => reply::info(&info).into(),
        Ok(None) => ft_error(UNKNOWN).into(),
        Err(e) => storage_error(&e).into(),
    }
}

pub fn ft_list(ctx: &mut Ctx<'_>, _: &[Bytes]) -> Action {
    match ctx.shared.store.search_indexes() {
        // Simple strings, a set under RESP3 (RediSearch's).
        Ok(indexes) => Reply::Set(
            indexes
                .into_iter()
                .map(|ix| Reply::Status(ix.name.into()))
                .collect(),
        )
        .into(),
        Err(e) => storage_error(&e).into(),
    }
}

/// FT.DROPINDEX index [DD]: as RediSearch, a third argument other than
/// DD is ignored (the documents are kept), a fourth is an arity error.
pub fn ft_dropindex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    if a.len() > 3 {
        return super::args::wrong_arity("FT.DROPINDEX").into();
    }
    if !nameable(&a[1]) {
        return ft_error("Unknown Index name").into();
    }
    let name = String::from_utf8_lossy(&a[1]).into_owned();
    match a.get(2) {
        Some(dd) if dd.eq_ignore_ascii_case(b"DD") => Action::Search(Call::DropWithDocs(name)),
        _ => Action::Write(Mutation {
            now_ms: ctx.now_ms,
            op: Op::DropIndex { name },
        }),
    }
}

/// FT.DROPINDEX DD: deletes the documents the index holds, a page of
/// DELs at a time through the write path (each page after a read barrier,
/// so a follower sees its own deletes), then drops the index. Not atomic:
/// a document written between pages or before the drop survives it.
async fn drop_with_docs(shared: &Shared, pending: &mut Pending, name: String) -> Reply {
    let everything = Query {
        root: Node::All,
        knn: None,
    };
    let opts = SearchOptions {
        offset: 0,
        count: DD_PAGE_KEYS,
        ..SearchOptions::default()
    };
    for _ in 0..DD_PAGES_MAX {
        if let Err(e) = shared.write_path.read_barrier().await {
            return super::path_error(&e);
        }
        let now_ms = strata_storage::now_ms();
        let keys: Vec<Bytes> = match shared.store.search(&name, &everything, &opts, now_ms) {
            Ok(Ok(answer)) => answer.hits.into_iter().map(|h| h.key).collect(),
            Ok(Err(SearchError::UnknownIndex(_))) => return ft_error("Unknown Index name"),
            Ok(Err(e)) => return search_error(&e),
            Err(e) => return storage_error(&e),
        };
        if keys.is_empty() {
            break;
        }
        let delete = Mutation {
            now_ms,
            op: Op::Delete { keys },
        };
        if let Err(e) = shared.write_path.write(pending, delete).await {
            return super::path_error(&e);
        }
    }
    let drop = Mutation {
        now_ms: strata_storage::now_ms(),
        op: Op::DropIndex { name },
    };
    super::write_reply(shared.write_path.write(pending, drop).await)
}
