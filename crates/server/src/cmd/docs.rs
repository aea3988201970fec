//! COMMAND DOCS: one entry per command and subcommand of the TABLE, in
//! Redis 7's reply shape (summary, since, group, complexity, arguments),
//! which is what redis-cli builds its help and hints from.
//!
//! Each entry is one line of [`DOCS`]; its arguments are written in a small
//! syntax ([`parse_args`]) close to Redis's usage lines:
//!
//! - `name` is an argument (a string); `name:type` gives its type
//!   (`integer`, `double`, `key`, `pattern`, `unix-time`); an argument
//!   named `key` is a key.
//! - `WORD` (starting with a capital) is a token; `WORD arg` is an
//!   argument introduced by the token; `WORD a b` a block of them.
//! - `[...]` is optional, `(...)` groups, `a|b` is one of, `...` after an
//!   item repeats it; `label=[...]` or `label=(...)` names a group.
//!
//! Strata's own commands and subcommands are in group `strata`, since
//! Strata's version that added them. A test checks that every TABLE entry
//! and subcommand has exactly one entry here and that every argument line
//! parses.

use bytes::Bytes;
use strata_protocol::resp::Reply;

use super::{Spec, SubSpec, TABLE};

pub struct Doc {
    /// `get`, or `client|kill` for a subcommand.
    pub name: &'static str,
    pub group: &'static str,
    pub since: &'static str,
    pub complexity: &'static str,
    pub summary: &'static str,
    /// The arguments, in the syntax above ("" for none).
    pub args: &'static str,
}

macro_rules! doc {
    ($name:literal, $group:literal, $since:literal, $complexity:literal, $summary:literal, $args:literal) => {
        Doc {
            name: $name,
            group: $group,
            since: $since,
            complexity: $complexity,
            summary: $summary,
            args: $args,
        }
    };
}

/// Every command's documentation, in TABLE order, each container followed
/// by its subcommands. One line per entry (not reformatted): adding a
/// command's documentation is adding one line.
#[rustfmt::skip]
pub static DOCS: &[Doc] = &[
    // Connection
    doc!("ping", "connection", "1.0.0", "O(1)", "Answer PONG, or echo the message", "[message]"),
    doc!("echo", "connection", "1.0.0", "O(1)", "Return the message", "message"),
    doc!("hello", "connection", "6.0.0", "O(1)", "Choose the protocol (RESP2 or RESP3) and name the connection", "arguments=[protover:integer [AUTH username password] [SETNAME clientname]]"),
    doc!("select", "connection", "1.0.0", "O(1)", "Select a database (Strata has database 0 only)", "index:integer"),
    doc!("quit", "connection", "1.0.0", "O(1)", "Reply OK, then close the connection", ""),
    doc!("client", "connection", "2.4.0", "Depends on subcommand.", "A container for connection commands", ""),
    doc!("client|caching", "connection", "6.0.0", "O(1)", "Refused: Strata has no client-side caching", "mode=(YES|NO)"),
    doc!("client|getname", "connection", "2.6.9", "O(1)", "Return the connection's name", ""),
    doc!("client|getredir", "connection", "6.0.0", "O(1)", "Return -1: tracking is always off in Strata", ""),
    doc!("client|help", "connection", "5.0.0", "O(1)", "Describe CLIENT's subcommands", ""),
    doc!("client|id", "connection", "5.0.0", "O(1)", "Return the connection's ID", ""),
    doc!("client|info", "connection", "6.2.0", "O(1)", "Describe this connection, as its CLIENT LIST line", ""),
    doc!("client|kill", "connection", "2.4.0", "O(N) where N is the number of client connections", "Close client connections: the old form by address, or every connection matching all filters given", "filter=(ip:port|new-format=([ID client-id:integer]|[TYPE (NORMAL|MASTER|SLAVE|REPLICA|PUBSUB)]|[USER username]|[ADDR ip:port]|[LADDR ip:port]|[SKIPME (YES|NO)]|[MAXAGE maxage:integer])...)"),
    doc!("client|list", "connection", "2.4.0", "O(N) where N is the number of client connections", "List client connections, RESP and text protocol (resp=0)", "[TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID client-id:integer...]"),
    doc!("client|no-evict", "connection", "7.0.0", "O(1)", "Protect this connection from being closed when client buffers are full", "enabled=(ON|OFF)"),
    doc!("client|no-touch", "connection", "7.2.0", "O(1)", "Accepted: Strata keeps no access times to leave untouched", "enabled=(ON|OFF)"),
    doc!("client|reply", "connection", "3.2.0", "O(1)", "Accept ON only: OFF and SKIP are not supported by Strata", "action=(ON|OFF|SKIP)"),
    doc!("client|setinfo", "connection", "7.2.0", "O(1)", "Record the client library's name or version", "attr=(LIB-NAME libname|LIB-VER libver)"),
    doc!("client|setname", "connection", "2.6.9", "O(1)", "Name the connection", "connection-name"),
    doc!("client|tracking", "connection", "6.0.0", "O(1)", "Accept OFF only: client-side caching is not supported by Strata", "status=(ON|OFF) [REDIRECT client-id:integer] [(PREFIX prefix)...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]"),
    doc!("client|trackinginfo", "connection", "6.2.0", "O(1)", "Report tracking as off", ""),
    doc!("client|unblock", "connection", "5.0.0", "O(1)", "Return 0: Strata has no blocking commands", "client-id:integer [unblock-type=(TIMEOUT|ERROR)]"),
    doc!("client|unpause", "connection", "6.2.0", "O(1)", "Accepted: nothing is ever paused (CLIENT PAUSE is not supported by Strata)", ""),
    doc!("readonly", "cluster", "3.0.0", "O(1)", "Serve this connection's reads from the local node without a ReadIndex round (possibly stale)", ""),
    doc!("readwrite", "cluster", "3.0.0", "O(1)", "Return this connection to linearizable reads", ""),
    doc!("asking", "cluster", "3.0.0", "O(1)", "Accepted from cluster clients after an -ASK redirect", ""),
    // Transactions
    doc!("multi", "transactions", "1.2.0", "O(1)", "Start a transaction: commands are queued until EXEC", ""),
    doc!("exec", "transactions", "1.2.0", "Depends on commands in the transaction", "Apply the queued commands as one atomic, durable group", ""),
    doc!("discard", "transactions", "2.0.0", "O(N), when N is the number of queued commands", "Drop a transaction's queued commands", ""),
    doc!("watch", "transactions", "2.2.0", "O(1) for every key.", "Make the next EXEC apply nothing if one of the keys changes first", "key..."),
    doc!("unwatch", "transactions", "2.2.0", "O(1)", "Forget every watched key", ""),
    // Server
    doc!("command", "server", "2.8.13", "O(N) where N is the total number of commands", "Describe every command", ""),
    doc!("command|count", "server", "2.8.13", "O(1)", "Return the number of commands", ""),
    doc!("command|docs", "server", "7.0.0", "O(N) where N is the number of commands to look up", "Document commands: summary, group, arguments", "[command-name...]"),
    doc!("command|getkeys", "server", "2.8.13", "O(N) where N is the number of arguments to the command", "Return the keys of a full command", "command arg..."),
    doc!("command|help", "server", "5.0.0", "O(1)", "Describe COMMAND's subcommands", ""),
    doc!("command|info", "server", "2.8.13", "O(N) where N is the number of commands to look up", "Describe commands: arity, flags, key positions", "[command-name...]"),
    doc!("command|list", "server", "7.0.0", "O(N) where N is the total number of commands", "List command names", "[FILTERBY filterby=(MODULE module-name|ACLCAT category|PATTERN pattern:pattern)]"),
    doc!("config", "server", "2.0.0", "Depends on subcommand.", "A container for configuration commands", ""),
    doc!("config|get", "server", "2.0.0", "O(N) when N is the number of configuration parameters provided", "Return the settings matching the patterns", "parameter..."),
    doc!("config|help", "server", "5.0.0", "O(1)", "Describe CONFIG's subcommands", ""),
    doc!("config|resetstat", "server", "2.0.0", "O(1)", "Reset the statistics INFO reports", ""),
    doc!("config|set", "server", "2.0.0", "O(N) when N is the number of configuration parameters provided", "Set slowlog-log-slower-than or slowlog-max-len; Strata's other settings are flags, environment or config file entries, read at start", "data=(parameter value)..."),
    doc!("slowlog", "server", "2.2.12", "Depends on subcommand.", "A container for slow log commands", ""),
    doc!("slowlog|get", "server", "2.2.12", "O(N) where N is the number of entries returned", "Return the slow log's newest entries", "[count:integer]"),
    doc!("slowlog|help", "server", "6.2.0", "O(1)", "Describe SLOWLOG's subcommands", ""),
    doc!("slowlog|len", "server", "2.2.12", "O(1)", "Return the number of entries in the slow log", ""),
    doc!("slowlog|reset", "server", "2.2.12", "O(N) where N is the number of entries in the slow log", "Clear the slow log", ""),
    doc!("info", "server", "1.0.0", "O(1)", "Report server information and statistics", "[section...]"),
    doc!("dbsize", "server", "1.0.0", "O(1)", "Return the number of keys", ""),
    doc!("flushdb", "server", "1.0.0", "O(1)", "Remove every key (Strata has one database)", "[flush-type=(ASYNC|SYNC)]"),
    doc!("flushall", "server", "1.0.0", "O(1)", "Remove every key", "[flush-type=(ASYNC|SYNC)]"),
    doc!("time", "server", "2.6.0", "O(1)", "Return the server's clock", ""),
    doc!("cluster", "cluster", "3.0.0", "Depends on subcommand.", "A container for cluster commands: Redis Cluster's view and Strata's membership", ""),
    doc!("cluster|info", "cluster", "3.0.0", "O(1)", "Report the cluster's state", ""),
    doc!("cluster|keyslot", "cluster", "3.0.0", "O(N) where N is the number of bytes in the key", "Return a key's hash slot", "key:string"),
    doc!("cluster|myid", "cluster", "3.0.0", "O(1)", "Return this node's Redis Cluster node id", ""),
    doc!("cluster|nodes", "cluster", "3.0.0", "O(N) where N is the total number of Cluster nodes", "Describe the nodes in Redis Cluster's format (one shard)", ""),
    doc!("cluster|shards", "cluster", "7.0.0", "O(N) where N is the total number of cluster nodes", "Describe the shard (all slots, the leader as master)", ""),
    doc!("cluster|slots", "cluster", "3.0.0", "O(N) where N is the total number of Cluster nodes", "Map the slots to nodes (all slots, the leader as master)", ""),
    doc!("cluster|addlearner", "strata", "0.1.0", "O(1)", "Strata: add a non-voting member", "node-id:integer peer-address"),
    doc!("cluster|addnode", "strata", "0.1.0", "O(1)", "Strata: add a voting member", "node-id:integer peer-address"),
    doc!("cluster|leader", "strata", "0.1.0", "O(1)", "Strata: return the leader's id, peer and client addresses", ""),
    doc!("cluster|members", "strata", "0.1.0", "O(N) where N is the number of members", "Strata: list the members in Strata's format", ""),
    doc!("cluster|promote", "strata", "0.1.0", "O(1)", "Strata: make a learner a voter", "node-id:integer"),
    doc!("cluster|removenode", "strata", "0.1.0", "O(1)", "Strata: remove a member", "node-id:integer"),
    doc!("cluster|status", "strata", "0.1.0", "O(N) where N is the number of members", "Strata: CLUSTER INFO with each follower's progress", ""),
    doc!("cluster|stepdown", "strata", "0.1.0", "O(1)", "Strata: hand leadership to the most up-to-date voter, if this node leads", ""),
    doc!("role", "server", "2.8.12", "O(1)", "Report this node's replication role", ""),
    doc!("backup", "strata", "0.1.0", "Depends on subcommand.", "Strata: an online backup of the whole store, a chunk per request (strata backup save)", ""),
    doc!("backup|begin", "strata", "0.1.0", "O(1)", "Strata: start a backup of a consistent snapshot; answer its id, version, time and chunk size", "[STALE]"),
    doc!("backup|end", "strata", "0.1.0", "O(1)", "Strata: drop a backup and its snapshot", "id"),
    doc!("backup|list", "strata", "0.1.0", "O(N) where N is the number of backups in progress", "Strata: list the backups in progress", ""),
    doc!("backup|next", "strata", "0.1.0", "O(N) where N is the size of the chunk", "Strata: the backup file's bytes from an offset, at most one chunk; nil once complete", "id offset:integer"),
    // Strings
    doc!("get", "string", "1.0.0", "O(1)", "Return a key's value", "key"),
    doc!("set", "string", "1.0.0", "O(1)", "Set a key's value, with an optional condition and expiry", "key value [condition=(NX|XX)] [GET] [expiration=(EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|KEEPTTL)]"),
    doc!("setnx", "string", "1.0.0", "O(1)", "Set a key only if it does not exist", "key value"),
    doc!("setex", "string", "2.0.0", "O(1)", "Set a key's value and its time to live in seconds", "key seconds:integer value"),
    doc!("psetex", "string", "2.6.0", "O(1)", "Set a key's value and its time to live in milliseconds", "key milliseconds:integer value"),
    doc!("getset", "string", "1.0.0", "O(1)", "Set a key's value and return the old one", "key value"),
    doc!("getdel", "string", "6.2.0", "O(1)", "Return a key's value and delete the key", "key"),
    doc!("getex", "string", "6.2.0", "O(1)", "Return a key's value and optionally change its expiry", "key [expiration=(EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|PERSIST)]"),
    doc!("mget", "string", "1.0.0", "O(N) where N is the number of keys to retrieve.", "Return the values of several keys", "key..."),
    doc!("mset", "string", "1.0.1", "O(N) where N is the number of keys to set.", "Set several keys at once, atomically", "data=(key value)..."),
    doc!("msetnx", "string", "1.0.1", "O(N) where N is the number of keys to set.", "Set several keys at once, only if none of them exists", "data=(key value)..."),
    doc!("append", "string", "2.0.0", "O(1)", "Append to a key's value", "key value"),
    doc!("strlen", "string", "2.2.0", "O(1)", "Return the length of a key's value", "key"),
    doc!("incr", "string", "1.0.0", "O(1)", "Add one to a key's integer value", "key"),
    doc!("decr", "string", "1.0.0", "O(1)", "Subtract one from a key's integer value", "key"),
    doc!("incrby", "string", "1.0.0", "O(1)", "Add to a key's integer value", "key increment:integer"),
    doc!("decrby", "string", "1.0.0", "O(1)", "Subtract from a key's integer value", "key decrement:integer"),
    doc!("incrbyfloat", "string", "2.6.0", "O(1)", "Add to a key's floating-point value", "key increment:double"),
    doc!("getrange", "string", "2.4.0", "O(N) where N is the length of the returned string.", "Return part of a key's value", "key start:integer end:integer"),
    doc!("substr", "string", "1.0.0", "O(N) where N is the length of the returned string.", "Return part of a key's value (GETRANGE's old name)", "key start:integer end:integer"),
    doc!("setrange", "string", "2.2.0", "O(1), not counting the time taken to copy the new string in place.", "Overwrite part of a key's value from an offset", "key offset:integer value"),
    // Keys
    doc!("del", "generic", "1.0.0", "O(N) where N is the number of keys that will be removed.", "Delete keys", "key..."),
    doc!("unlink", "generic", "4.0.0", "O(1) for each key removed.", "Delete keys (the same as DEL in Strata)", "key..."),
    doc!("exists", "generic", "1.0.0", "O(N) where N is the number of keys to check.", "Count how many of the keys exist", "key..."),
    doc!("type", "generic", "1.0.0", "O(1)", "Return a key's type: string, or none", "key"),
    doc!("rename", "generic", "1.0.0", "O(1)", "Rename a key", "key newkey:key"),
    doc!("renamenx", "generic", "1.0.0", "O(1)", "Rename a key only if the new name is free", "key newkey:key"),
    doc!("keys", "generic", "1.0.0", "O(N) with N being the number of keys in the database", "Return every key matching a glob pattern", "pattern:pattern"),
    doc!("scan", "generic", "2.8.0", "O(1) for every call. O(N) for a complete iteration.", "Iterate over the keys with a cursor", "cursor:integer [MATCH pattern:pattern] [COUNT count:integer] [TYPE type]"),
    // Expiry
    doc!("expire", "generic", "1.0.0", "O(1)", "Set a key's time to live in seconds", "key seconds:integer [condition=(NX|XX|GT|LT)]"),
    doc!("pexpire", "generic", "2.6.0", "O(1)", "Set a key's time to live in milliseconds", "key milliseconds:integer [condition=(NX|XX|GT|LT)]"),
    doc!("expireat", "generic", "1.2.0", "O(1)", "Make a key expire at a Unix time in seconds", "key unix-time-seconds:unix-time [condition=(NX|XX|GT|LT)]"),
    doc!("pexpireat", "generic", "2.6.0", "O(1)", "Make a key expire at a Unix time in milliseconds", "key unix-time-milliseconds:unix-time [condition=(NX|XX|GT|LT)]"),
    doc!("ttl", "generic", "1.0.0", "O(1)", "Return a key's time to live in seconds", "key"),
    doc!("pttl", "generic", "2.6.0", "O(1)", "Return a key's time to live in milliseconds", "key"),
    doc!("expiretime", "generic", "7.0.0", "O(1)", "Return the Unix time in seconds at which a key expires", "key"),
    doc!("pexpiretime", "generic", "7.0.0", "O(1)", "Return the Unix time in milliseconds at which a key expires", "key"),
    doc!("persist", "generic", "2.2.0", "O(1)", "Remove a key's expiry", "key"),
    // Strata's own
    doc!("range", "strata", "0.1.0", "O(log(N)+M) where M is the number of pairs returned", "Strata: return the pairs from start to end (both included) in key order", "start:key end:key [LIMIT count:integer]"),
    doc!("readrange", "strata", "0.1.0", "O(log(N)+M) where M is the number of pairs returned", "Strata: RANGE, under the text protocol's name", "start:key end:key [LIMIT count:integer]"),
    doc!("put", "strata", "0.1.0", "O(1)", "Strata: set a key's value (the text protocol's PUT)", "key value"),
    doc!("read", "strata", "0.1.0", "O(1)", "Strata: return a key's value (the text protocol's READ)", "key"),
    doc!("delete", "strata", "0.1.0", "O(N) where N is the number of keys", "Strata: delete keys (the text protocol's DELETE)", "key..."),
    doc!("batchput", "strata", "0.1.0", "O(N) where N is the number of keys", "Strata: set several keys at once, atomically (the text protocol's BATCHPUT)", "data=(key value)..."),
    doc!("kv.get", "strata", "0.1.0", "O(1)", "Strata: return a key's value, modification version and expiry time (the HTTP API's GET)", "key"),
    doc!("kv.prefix", "strata", "0.1.0", "O(log(N)+M) where M is the number of entries returned", "Strata: return the entries under a prefix with versions and expiry times, or only those changed after a version (the HTTP API's ?recurse)", "key [LIMIT count:integer] [KEYSONLY] [CHANGED version:integer]"),
    doc!("kv.range", "strata", "0.1.0", "O(log(N)+M) where M is the number of entries returned", "Strata: return the entries from start to end (both included) with versions and expiry times", "start:key end:key [LIMIT count:integer] [KEYSONLY]"),
    doc!("kv.txn", "strata", "0.1.0", "O(N) where N is the number of ops", "Strata: apply SET, CAS, GET, DEL, DELCAS and CHECK ops all or nothing, comparing exact versions (the HTTP API's transactions)", "op..."),
    // Search
    doc!("ft.create", "module", "1.0.0", "O(K) at creation where K is the number of fields; the existing keys are indexed in the background", "Create a search index over string or JSON values (RediSearch's FT.CREATE; ON STRING and EMBED are Strata's)", "index [ON (STRING|JSON)] [PREFIX count:integer prefix...] [LANGUAGE language] SCHEMA field..."),
    doc!("ft.search", "module", "1.0.0", "O(N) where N is the number of index entries the query reads", "Search an index: full text (BM25), tags, numeric ranges, KNN (RediSearch's FT.SEARCH)", "index query [NOCONTENT] [WITHSCORES] [SCORER scorer] [RETURN count:integer field...] [LIMIT offset:integer num:integer] [SORTBY field [ASC|DESC]] [PARAMS count:integer param...] [DIALECT dialect:integer] [TIMEOUT timeout:integer]"),
    doc!("ft.info", "module", "1.0.0", "O(1)", "Describe an index: definition, fields, documents, indexing progress (RediSearch's FT.INFO)", "index"),
    doc!("ft._list", "module", "2.0.0", "O(N) where N is the number of indexes", "List the indexes (RediSearch's FT._LIST)", ""),
    doc!("ft.dropindex", "module", "2.0.0", "O(1), or O(N) with DD where N is the number of documents", "Drop an index; with DD, delete its documents first, in pages (not atomic)", "index [DD]"),
    doc!("search", "strata", "0.1.0", "O(N) where N is the number of index entries the query reads", "Strata: search an index by exact value (a TAG field), by text (BM25) or by meaning (an EMBED field): [[key, score, value]...] and whether the index is still being built", "mode=(VALUE|TEXT|SEMANTIC) index query [LIMIT count:integer] [THRESHOLD threshold:double]"),
];

/// The entry for `name` (`get`, `client|kill`), case-insensitively.
pub fn find(name: &str) -> Option<&'static Doc> {
    DOCS.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// COMMAND DOCS's entry for a command, its subcommands nested.
pub fn command_docs(spec: &Spec) -> Option<Reply> {
    let doc = find(spec.name)?;
    let subs: Vec<(Reply, Reply)> = spec
        .subcommands
        .iter()
        .filter_map(|s| sub_docs(spec, s))
        .collect();
    Some(entry(doc, (!subs.is_empty()).then_some(subs)))
}

/// COMMAND DOCS's `(name, entry)` for one subcommand.
pub fn sub_docs(spec: &Spec, sub: &SubSpec) -> Option<(Reply, Reply)> {
    let name = format!("{}|{}", spec.name, sub.name);
    let doc = find(&name)?;
    Some((bulk(name), entry(doc, None)))
}

fn bulk(s: impl Into<String>) -> Reply {
    Reply::Bulk(Bytes::from(s.into()))
}

fn entry(doc: &Doc, subcommands: Option<Vec<(Reply, Reply)>>) -> Reply {
    let mut fields = vec![
        (bulk("summary"), bulk(doc.summary)),
        (bulk("since"), bulk(doc.since)),
        (bulk("group"), bulk(doc.group)),
        (bulk("complexity"), bulk(doc.complexity)),
    ];
    // A line that does not parse is caught by the tests; a server answers
    // without its arguments rather than fail.
    match parse_args(doc.args) {
        Ok(args) if !args.is_empty() => fields.push((
            bulk("arguments"),
            Reply::Array(args.iter().map(Arg::reply).collect()),
        )),
        _ => {}
    }
    if let Some(subs) = subcommands {
        fields.push((bulk("subcommands"), Reply::Map(subs)));
    }
    Reply::Map(fields)
}

/// One argument in COMMAND DOCS's shape.
#[derive(Debug, PartialEq)]
pub struct Arg {
    pub name: String,
    /// `string`, `integer`, `double`, `key`, `pattern`, `unix-time`,
    /// `pure-token`, `oneof` or `block`.
    pub kind: &'static str,
    pub token: Option<String>,
    pub optional: bool,
    pub multiple: bool,
    /// The token repeats with each value (`[PREFIX p [PREFIX p ...]]`).
    pub multiple_token: bool,
    pub arguments: Vec<Arg>,
}

impl Arg {
    fn reply(&self) -> Reply {
        let mut fields = vec![
            (bulk("name"), bulk(self.name.as_str())),
            (bulk("type"), bulk(self.kind)),
        ];
        if let Some(token) = &self.token {
            fields.push((bulk("token"), bulk(token.as_str())));
        }
        let flags: Vec<Reply> = [
            (self.optional, "optional"),
            (self.multiple, "multiple"),
            (self.multiple_token, "multiple_token"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| Reply::status(*f))
        .collect();
        if !flags.is_empty() {
            fields.push((bulk("flags"), Reply::Set(flags)));
        }
        if !self.arguments.is_empty() {
            fields.push((
                bulk("arguments"),
                Reply::Array(self.arguments.iter().map(Arg::reply).collect()),
            ));
        }
        Reply::Map(fields)
    }
}

/// A mistake in an argument line (only ever in [`DOCS`] itself).
#[derive(Debug, thiserror::Error)]
#[error("bad argument syntax at item {at}: {what}")]
pub struct SyntaxError {
    at: usize,
    what: &'static str,
}

const TYPES: &[&str] = &["string", "integer", "double", "key", "pattern", "unix-time"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Open(bool),
    Close(bool),
    Bar,
    Repeat,
    Word(&'a str),
}

fn tokens(line: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let (tok, len) = match c {
            ' ' => {
                rest = &rest[1..];
                continue;
            }
            '[' => (Tok::Open(true), 1),
            '(' => (Tok::Open(false), 1),
            ']' => (Tok::Close(true), 1),
            ')' => (Tok::Close(false), 1),
            '|' => (Tok::Bar, 1),
            _ if rest.starts_with("...") => (Tok::Repeat, 3),
            _ => {
                let end = rest
                    .find(|c: char| " []()|".contains(c))
                    .unwrap_or(rest.len());
                let end = rest[..end].find("...").unwrap_or(end);
                // A label ends at its `=`; the group follows.
                let end = rest[..end].find('=').map_or(end, |eq| eq + 1);
                (Tok::Word(&rest[..end]), end)
            }
        };
        out.push(tok);
        rest = &rest[len..];
    }
    out
}

/// Parses an argument line into COMMAND DOCS's argument tree.
pub fn parse_args(line: &str) -> Result<Vec<Arg>, SyntaxError> {
    let toks = tokens(line);
    let mut p = Parser { toks: &toks, at: 0 };
    let items = p.sequence()?;
    if p.at != toks.len() {
        return Err(p.error("unbalanced bracket or stray |"));
    }
    items.into_iter().map(|item| item.into_arg()).collect()
}

/// An item before conversion: a word or a group, maybe repeated.
enum Item<'a> {
    Word(&'a str, bool),
    Group {
        label: Option<&'a str>,
        alternatives: Vec<Vec<Item<'a>>>,
        optional: bool,
        repeated: bool,
    },
}

struct Parser<'t, 'a> {
    toks: &'t [Tok<'a>],
    at: usize,
}

impl<'a> Parser<'_, 'a> {
    fn error(&self, what: &'static str) -> SyntaxError {
        SyntaxError { at: self.at, what }
    }

    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.at).copied()
    }

    fn repeated(&mut self) -> bool {
        let r = self.peek() == Some(Tok::Repeat);
        self.at += usize::from(r);
        r
    }

    /// Items up to a `|`, a closing bracket or the end.
    fn sequence(&mut self) -> Result<Vec<Item<'a>>, SyntaxError> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Word(w)) if w.ends_with('=') => {
                    self.at += 1;
                    let Some(Tok::Open(optional)) = self.peek() else {
                        return Err(self.error("a label must precede a group"));
                    };
                    self.at += 1;
                    items.push(self.group(Some(w.trim_end_matches('=')), optional)?);
                }
                Some(Tok::Word(w)) => {
                    self.at += 1;
                    items.push(Item::Word(w, self.repeated()));
                }
                Some(Tok::Open(optional)) => {
                    self.at += 1;
                    items.push(self.group(None, optional)?);
                }
                Some(Tok::Repeat) => return Err(self.error("... after nothing")),
                _ => return Ok(items),
            }
        }
    }

    /// After the opening bracket: alternatives, the closing bracket, `...`.
    fn group(&mut self, label: Option<&'a str>, optional: bool) -> Result<Item<'a>, SyntaxError> {
        let mut alternatives = vec![self.sequence()?];
        while self.peek() == Some(Tok::Bar) {
            self.at += 1;
            alternatives.push(self.sequence()?);
        }
        if self.peek() != Some(Tok::Close(optional)) {
            return Err(self.error("unclosed or mismatched bracket"));
        }
        self.at += 1;
        if alternatives.iter().any(Vec::is_empty) {
            return Err(self.error("empty group or alternative"));
        }
        Ok(Item::Group {
            label,
            alternatives,
            optional,
            repeated: self.repeated(),
        })
    }
}

fn is_token(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_uppercase())
}

impl Item<'_> {
    fn into_arg(self) -> Result<Arg, SyntaxError> {
        match self {
            Item::Word(w, repeated) => Ok(word_arg(w, repeated)),
            Item::Group {
                label,
                alternatives,
                optional,
                repeated,
            } => {
                let mut arg = if alternatives.len() == 1 {
                    let only = alternatives.into_iter().next().unwrap_or_default();
                    sequence_arg(only)?
                } else {
                    let arguments = alternatives
                        .into_iter()
                        .map(sequence_arg)
                        .collect::<Result<Vec<_>, _>>()?;
                    let name = arguments
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join("-");
                    Arg {
                        name,
                        kind: "oneof",
                        token: None,
                        optional: false,
                        multiple: false,
                        multiple_token: false,
                        arguments,
                    }
                };
                if let Some(label) = label {
                    arg.name = label.to_string();
                }
                // `(TOKEN value)...`: the token comes with every value.
                arg.multiple_token |= repeated && arg.token.is_some() && arg.kind != "block";
                arg.optional |= optional;
                arg.multiple |= repeated;
                Ok(arg)
            }
        }
    }
}

fn word_arg(word: &str, repeated: bool) -> Arg {
    let (name, kind) = if is_token(word) {
        (word.to_ascii_lowercase(), "pure-token")
    } else {
        match word.rsplit_once(':') {
            Some((name, ty)) if TYPES.contains(&ty) => (
                name.to_string(),
                TYPES
                    .iter()
                    .find(|t| **t == ty)
                    .copied()
                    .unwrap_or("string"),
            ),
            _ if word == "key" => (word.to_string(), "key"),
            _ => (word.to_string(), "string"),
        }
    };
    Arg {
        token: is_token(word).then(|| word.to_string()),
        name,
        kind,
        optional: false,
        multiple: repeated,
        multiple_token: false,
        arguments: Vec::new(),
    }
}

/// A sequence as one argument: itself if alone; `TOKEN arg` as the
/// argument with its token; otherwise a block (introduced by its leading
/// token, if any).
fn sequence_arg(items: Vec<Item<'_>>) -> Result<Arg, SyntaxError> {
    let mut items = items.into_iter();
    let Some(first) = items.next() else {
        return Err(SyntaxError {
            at: 0,
            what: "empty sequence",
        });
    };
    let rest: Vec<Arg> = items.map(Item::into_arg).collect::<Result<_, _>>()?;
    if rest.is_empty() {
        return first.into_arg();
    }
    let leading_token = match &first {
        Item::Word(w, false) if is_token(w) => Some(w.to_string()),
        _ => None,
    };
    match leading_token {
        Some(token) if rest.len() == 1 => {
            let mut arg = rest
                .into_iter()
                .next()
                .unwrap_or_else(|| word_arg("x", false));
            if arg.token.is_some() {
                // Already a token of its own: keep both, as a block.
                return Ok(block(token.to_ascii_lowercase(), Some(token), vec![arg]));
            }
            arg.token = Some(token);
            Ok(arg)
        }
        Some(token) => Ok(block(token.to_ascii_lowercase(), Some(token), rest)),
        None => {
            let mut arguments = vec![first.into_arg()?];
            arguments.extend(rest);
            let name = arguments
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join("-");
            Ok(block(name, None, arguments))
        }
    }
}

fn block(name: String, token: Option<String>, arguments: Vec<Arg>) -> Arg {
    Arg {
        name,
        kind: "block",
        token,
        optional: false,
        multiple: false,
        multiple_token: false,
        arguments,
    }
}

/// Every name COMMAND DOCS can be asked for: the TABLE's commands and
/// their subcommands (`client|kill`).
pub fn documented_names() -> impl Iterator<Item = String> {
    TABLE.iter().flat_map(|spec| {
        std::iter::once(spec.name.to_string()).chain(
            spec.subcommands
                .iter()
                .map(move |s| format!("{}|{}", spec.name, s.name)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_and_subcommand_has_docs_and_every_doc_a_command() {
        let names: Vec<String> = documented_names().collect();
        for name in &names {
            let count = DOCS.iter().filter(|d| d.name == name.as_str()).count();
            assert_eq!(
                count, 1,
                "{name}: {count} COMMAND DOCS entries (add one line to DOCS)"
            );
        }
        for doc in DOCS {
            assert!(
                names.iter().any(|n| n == doc.name),
                "DOCS has {} but the TABLE has no such command",
                doc.name
            );
        }
    }

    #[test]
    fn every_argument_line_parses() {
        for doc in DOCS {
            if let Err(e) = parse_args(doc.args) {
                panic!("{}: {e} in {:?}", doc.name, doc.args);
            }
        }
    }

    #[test]
    fn strata_commands_are_marked_as_strata() {
        for name in [
            "range",
            "put",
            "read",
            "delete",
            "batchput",
            "readrange",
            "cluster|members",
        ] {
            let doc = find(name).expect(name);
            assert_eq!(doc.group, "strata", "{name}");
            assert!(doc.summary.starts_with("Strata: "), "{name}");
        }
    }

    #[test]
    fn the_syntax_builds_redis_shaped_arguments() {
        let args = parse_args(
            "key value [condition=(NX|XX)] [GET] [EX seconds:integer|KEEPTTL] data=(key value)...",
        )
        .expect("parses");
        let shape: Vec<(&str, &str, Option<&str>, bool, bool)> = args
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.kind,
                    a.token.as_deref(),
                    a.optional,
                    a.multiple,
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("key", "key", None, false, false),
                ("value", "string", None, false, false),
                ("condition", "oneof", None, true, false),
                ("get", "pure-token", Some("GET"), true, false),
                ("seconds-keepttl", "oneof", None, true, false),
                ("data", "block", None, false, true),
            ]
        );
        let ex = &args[4].arguments[0];
        assert_eq!(
            (ex.name.as_str(), ex.kind, ex.token.as_deref()),
            ("seconds", "integer", Some("EX"))
        );
        let hello = parse_args("[protover:integer [AUTH username password] [SETNAME clientname]]")
            .expect("parses");
        assert_eq!(hello.len(), 1);
        assert_eq!((hello[0].kind, hello[0].optional), ("block", true));
        let auth = &hello[0].arguments[1];
        assert_eq!(
            (auth.kind, auth.token.as_deref(), auth.arguments.len()),
            ("block", Some("AUTH"), 2)
        );
        assert_eq!(parse_args("ip:port").expect("parses")[0].name, "ip:port");
        assert!(parse_args("[a").is_err());
        assert!(parse_args("a)").is_err());
        assert!(parse_args("...").is_err());
    }
}
