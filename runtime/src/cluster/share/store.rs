//! A field's commands, by the kind of its [`Layout`]: integers and floats are decimal strings,
//! strings are strings, sequences lists, maps hashes, sets sets, anything else one encoded
//! string. Reading and writing a field whole (for transactions and the first value), and the
//! built-in operations that are one native command.
//!
//! Every native operation is sent in one pipeline after `EXISTS <share key>`: a share whose
//! keys are gone is an error, not a fresh value (the key an operation made then is deleted).

use redis::{Connection, Pipeline, Value};

use crate::cluster::link;
use crate::cluster::share::failure::Failure;
use crate::protocol::share::FieldOp;
use crate::share::layout::{Incr, Kind, Layout, Parts, sequence};
use crate::transport::frame;

/// How a native command's reply becomes the operation's result.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// Nothing (a write).
    Unit,
    /// The field read whole.
    Whole,
    /// An integer as `usize`.
    Len,
    /// An integer as "is zero".
    IsZero,
    /// An integer as "is not zero".
    Bool,
    /// A string or nil as `Option<element>`.
    Maybe,
}

/// Adds the command that reads the field whole.
pub(super) fn read_field(pipe: &mut Pipeline, kind: Kind, key: &str) {
    match kind {
        Kind::List => pipe.cmd("LRANGE").arg(key).arg(0).arg(-1),
        Kind::Map => pipe.cmd("HGETALL").arg(key),
        Kind::Set => pipe.cmd("SMEMBERS").arg(key),
        Kind::Integer(_) | Kind::Float | Kind::Text | Kind::Value => pipe.cmd("GET").arg(key),
    };
}

/// The parts of a field from the reply of [`read_field`]; `None` when a field that is one
/// string is missing (collections are empty when missing: the server drops empty ones).
pub(super) fn parse_field(kind: Kind, value: &Value) -> Option<Parts> {
    match kind {
        Kind::List | Kind::Set => Some(Parts::Many(
            link::items(value).iter().filter_map(link::bytes).collect(),
        )),
        Kind::Map => Some(Parts::Pairs(pairs(value))),
        Kind::Integer(_) | Kind::Float | Kind::Text | Kind::Value => match value {
            Value::Nil => None,
            other => link::bytes(other).map(Parts::One),
        },
    }
}

fn pairs(value: &Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    match value {
        Value::Map(map) => map
            .iter()
            .filter_map(|(k, v)| Some((link::bytes(k)?, link::bytes(v)?)))
            .collect(),
        other => link::items(other)
            .chunks_exact(2)
            .filter_map(|pair| Some((link::bytes(&pair[0])?, link::bytes(&pair[1])?)))
            .collect(),
    }
}

/// Adds the commands that replace the field with `parts`; nothing they answer is kept.
pub(super) fn write_field(pipe: &mut Pipeline, kind: Kind, key: &str, parts: Parts) {
    match parts {
        Parts::One(bytes) => {
            pipe.cmd("SET").arg(key).arg(bytes).arg("KEEPTTL").ignore();
        }
        Parts::Many(elements) => {
            pipe.cmd("DEL").arg(key).ignore();
            if !elements.is_empty() {
                let command = if kind == Kind::Set { "SADD" } else { "RPUSH" };
                pipe.cmd(command).arg(key).arg(elements).ignore();
            }
        }
        Parts::Pairs(pairs) => {
            pipe.cmd("DEL").arg(key).ignore();
            if !pairs.is_empty() {
                pipe.cmd("HSET").arg(key).arg(pairs).ignore();
            }
        }
    }
}

/// Applies `op` on the field at `key` with one native command (or one `MULTI` of two), and
/// returns its encoded result; `None` when the operation has no native form here (it runs
/// as a transaction instead).
pub(super) fn native(
    c: &mut Connection,
    share: &str,
    key: &str,
    layout: &Layout,
    op: FieldOp,
    args: &[u8],
) -> Option<Result<Vec<u8>, Failure>> {
    let mut pipe = redis::pipe();
    pipe.cmd("EXISTS").arg(share);
    let reply = match plan(&mut pipe, layout, op, key, args)? {
        Ok(reply) => reply,
        Err(failure) => return Some(Err(failure)),
    };
    Some(send(c, key, layout, pipe, reply))
}

/// Adds the commands of `op` to `pipe` and says how to read the answer; `None` when there is
/// no native form.
fn plan(
    pipe: &mut Pipeline,
    layout: &Layout,
    op: FieldOp,
    key: &str,
    args: &[u8],
) -> Option<Result<Reply, Failure>> {
    let one = || match (layout.split)(args) {
        Ok(Parts::One(bytes)) => Ok(bytes),
        Ok(_) => Err(Failure::Failed("an argument of the wrong shape".into())),
        Err(e) => Err(Failure::Failed(e.to_string())),
    };
    let split = |bytes: &[u8]| (layout.split)(bytes).map_err(|e| Failure::Failed(e.to_string()));
    let kind = layout.kind;
    let reply = match (kind, op) {
        (_, FieldOp::Get) => {
            read_field(pipe, kind, key);
            Reply::Whole
        }
        (_, FieldOp::Set) => {
            let parts = match split(args) {
                Ok(parts) => parts,
                Err(failure) => return Some(Err(failure)),
            };
            pipe.atomic();
            write_field(pipe, kind, key, parts);
            Reply::Unit
        }
        (Kind::Integer(Incr::Signed64 | Incr::Unsigned64), FieldOp::Add) => {
            return Some(one().map(|n| {
                pipe.cmd("INCRBY").arg(key).arg(n);
                Reply::Unit
            }));
        }
        (Kind::Integer(Incr::Signed64), FieldOp::Sub) => {
            return Some(one().map(|n| {
                pipe.cmd("DECRBY").arg(key).arg(n);
                Reply::Unit
            }));
        }
        (Kind::Float, FieldOp::Add | FieldOp::Sub) => {
            return Some(one().map(|n| {
                let n = if op == FieldOp::Sub { negate(n) } else { n };
                pipe.cmd("INCRBYFLOAT").arg(key).arg(n);
                Reply::Unit
            }));
        }
        (Kind::Text, FieldOp::Push) => {
            return Some(one().map(|text| {
                pipe.cmd("APPEND").arg(key).arg(text);
                Reply::Unit
            }));
        }
        (Kind::Text, FieldOp::Len | FieldOp::IsEmpty) => {
            pipe.cmd("STRLEN").arg(key);
            len_or_empty(op)
        }
        (Kind::Text, FieldOp::Clear) => {
            pipe.cmd("SET").arg(key).arg("").arg("KEEPTTL");
            Reply::Unit
        }
        (Kind::List | Kind::Map | Kind::Set, FieldOp::Clear) => {
            pipe.cmd("DEL").arg(key);
            Reply::Unit
        }
        (Kind::List, _) => return list(pipe, key, op, args, split),
        (Kind::Map, _) => return map(pipe, key, op, args, split),
        (Kind::Set, _) => return set(pipe, key, op, args, split),
        _ => return None,
    };
    Some(Ok(reply))
}

fn list(
    pipe: &mut Pipeline,
    key: &str,
    op: FieldOp,
    args: &[u8],
    split: impl Fn(&[u8]) -> Result<Parts, Failure>,
) -> Option<Result<Reply, Failure>> {
    let reply = match op {
        FieldOp::Push => {
            pipe.cmd("RPUSH").arg(key).arg(args);
            Reply::Unit
        }
        FieldOp::PushFront => {
            pipe.cmd("LPUSH").arg(key).arg(args);
            Reply::Unit
        }
        FieldOp::Pop => {
            pipe.cmd("RPOP").arg(key);
            Reply::Maybe
        }
        FieldOp::PopFront => {
            pipe.cmd("LPOP").arg(key);
            Reply::Maybe
        }
        FieldOp::Len | FieldOp::IsEmpty => {
            pipe.cmd("LLEN").arg(key);
            len_or_empty(op)
        }
        FieldOp::GetAt => {
            let index = match frame::decode_owned::<usize>(args) {
                Ok(index) => i64::try_from(index).unwrap_or(i64::MAX),
                Err(e) => return Some(Err(Failure::Failed(e.to_string()))),
            };
            pipe.cmd("LINDEX").arg(key).arg(index);
            Reply::Maybe
        }
        FieldOp::Extend => match split(args) {
            Ok(Parts::Many(elements)) if elements.is_empty() => Reply::Unit,
            Ok(Parts::Many(elements)) => {
                pipe.cmd("RPUSH").arg(key).arg(elements);
                Reply::Unit
            }
            Ok(_) => return None,
            Err(failure) => return Some(Err(failure)),
        },
        FieldOp::Truncate => match frame::decode_owned::<usize>(args) {
            Ok(0) => {
                pipe.cmd("DEL").arg(key);
                Reply::Unit
            }
            Ok(len) => {
                let last = i64::try_from(len).unwrap_or(i64::MAX).saturating_sub(1);
                pipe.cmd("LTRIM").arg(key).arg(0).arg(last);
                Reply::Unit
            }
            Err(e) => return Some(Err(Failure::Failed(e.to_string()))),
        },
        _ => return None,
    };
    Some(Ok(reply))
}

fn map(
    pipe: &mut Pipeline,
    key: &str,
    op: FieldOp,
    args: &[u8],
    split: impl Fn(&[u8]) -> Result<Parts, Failure>,
) -> Option<Result<Reply, Failure>> {
    let reply = match op {
        // The old value and the change in one `MULTI`: what std's `insert`/`remove` answer.
        FieldOp::Insert => match split(&sequence(1, args.to_vec())) {
            Ok(Parts::Pairs(pairs)) => {
                let (field, value) = pairs.into_iter().next()?;
                pipe.atomic().cmd("HGET").arg(key).arg(&field);
                pipe.cmd("HSET").arg(key).arg(field).arg(value).ignore();
                Reply::Maybe
            }
            Ok(_) => return None,
            Err(failure) => return Some(Err(failure)),
        },
        FieldOp::Remove => {
            pipe.atomic().cmd("HGET").arg(key).arg(args);
            pipe.cmd("HDEL").arg(key).arg(args).ignore();
            Reply::Maybe
        }
        FieldOp::GetAt => {
            pipe.cmd("HGET").arg(key).arg(args);
            Reply::Maybe
        }
        FieldOp::Contains => {
            pipe.cmd("HEXISTS").arg(key).arg(args);
            Reply::Bool
        }
        FieldOp::Len | FieldOp::IsEmpty => {
            pipe.cmd("HLEN").arg(key);
            len_or_empty(op)
        }
        FieldOp::Extend => match split(args) {
            Ok(Parts::Pairs(pairs)) if pairs.is_empty() => Reply::Unit,
            Ok(Parts::Pairs(pairs)) => {
                pipe.cmd("HSET").arg(key).arg(pairs);
                Reply::Unit
            }
            Ok(_) => return None,
            Err(failure) => return Some(Err(failure)),
        },
        _ => return None,
    };
    Some(Ok(reply))
}

fn set(
    pipe: &mut Pipeline,
    key: &str,
    op: FieldOp,
    args: &[u8],
    split: impl Fn(&[u8]) -> Result<Parts, Failure>,
) -> Option<Result<Reply, Failure>> {
    let (command, reply) = match op {
        FieldOp::Insert => ("SADD", Reply::Bool),
        FieldOp::Remove => ("SREM", Reply::Bool),
        FieldOp::Contains => ("SISMEMBER", Reply::Bool),
        FieldOp::Len | FieldOp::IsEmpty => {
            pipe.cmd("SCARD").arg(key);
            return Some(Ok(len_or_empty(op)));
        }
        FieldOp::Extend => {
            return Some(match split(args) {
                Ok(Parts::Many(elements)) if elements.is_empty() => Ok(Reply::Unit),
                Ok(Parts::Many(elements)) => {
                    pipe.cmd("SADD").arg(key).arg(elements);
                    Ok(Reply::Unit)
                }
                Ok(_) => Err(Failure::Failed("an argument of the wrong shape".into())),
                Err(failure) => Err(failure),
            });
        }
        _ => return None,
    };
    pipe.cmd(command).arg(key).arg(args);
    Some(Ok(reply))
}

fn len_or_empty(op: FieldOp) -> Reply {
    if op == FieldOp::IsEmpty {
        Reply::IsZero
    } else {
        Reply::Len
    }
}

/// `n` with its sign flipped, as text.
fn negate(n: Vec<u8>) -> Vec<u8> {
    match n.split_first() {
        Some((b'-', rest)) => rest.to_vec(),
        _ => [b"-".as_slice(), &n].concat(),
    }
}

/// Sends the pipeline (`EXISTS <share>` and the planned commands) and reads the answer. A
/// share found gone loses the key the commands may have made afresh.
fn send(
    c: &mut Connection,
    key: &str,
    layout: &Layout,
    pipe: Pipeline,
    reply: Reply,
) -> Result<Vec<u8>, Failure> {
    let answers: Value = pipe.query(c)?;
    let answers = link::items(&answers);
    if answers.first().and_then(link::int) != Some(1) {
        let _ = redis::cmd("DEL").arg(key).query::<()>(c);
        return Err(Failure::Gone);
    }
    let first = answers.get(1).cloned().unwrap_or(Value::Nil);
    match reply {
        Reply::Unit => encode(&()),
        Reply::Whole => {
            let parts = parse_field(layout.kind, &first).ok_or(Failure::Gone)?;
            (layout.join)(parts).map_err(|e| Failure::Failed(e.to_string()))
        }
        Reply::Len => encode(&usize::try_from(link::int(&first).unwrap_or(0)).unwrap_or(0)),
        Reply::IsZero => encode(&(link::int(&first).unwrap_or(0) == 0)),
        Reply::Bool => encode(&(link::int(&first).unwrap_or(0) != 0)),
        Reply::Maybe => Ok(match link::bytes(&first) {
            Some(bytes) => [&[1u8][..], &bytes].concat(),
            None => vec![0],
        }),
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Failure> {
    frame::encode(value).map_err(|e| Failure::Failed(e.to_string()))
}
