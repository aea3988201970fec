//! Argument parsing helpers with Redis's exact error texts.

use bytes::Bytes;
use strata_protocol::resp::Reply;

pub const ERR_SYNTAX: &str = "ERR syntax error";
pub const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const ERR_NOT_FLOAT: &str = "ERR value is not a valid float";

pub fn err(text: &'static str) -> Reply {
    Reply::error(text)
}

pub fn syntax() -> Reply {
    err(ERR_SYNTAX)
}

pub fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

pub fn invalid_expire(name: &str) -> Reply {
    Reply::error(format!("ERR invalid expire time in '{name}' command"))
}

pub fn int(arg: &Bytes) -> Result<i64, Reply> {
    strata_storage::mutation::parse_i64(arg).ok_or_else(|| err(ERR_NOT_INTEGER))
}

pub fn float(arg: &Bytes) -> Result<f64, Reply> {
    strata_storage::mutation::parse_f64(arg).ok_or_else(|| err(ERR_NOT_FLOAT))
}

/// Case-insensitive comparison of an option word.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// The text of an argument for an error message: lossy, bounded.
pub fn show(arg: &[u8], max_bytes: usize) -> String {
    let cut = &arg[..arg.len().min(max_bytes)];
    String::from_utf8_lossy(cut).replace(['\r', '\n'], " ")
}
