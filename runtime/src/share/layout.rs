//! How a field's value splits into parts, for backends that keep each field apart in a native
//! structure of their own (the Redis share keeps a `u64` as an integer string that `INCRBY`
//! changes, a `Vec` as a list that `RPUSH` appends to, a map as a hash, …).
//!
//! A field's [`Layout`] is a constant of its [`SharedField`](super::SharedField) type
//! (`SharedField::LAYOUT`): its [`Kind`] and two conversions between the field's encoding (the
//! bytes its `Get` answers and its `Set` takes) and its [`Parts`]. Parts are plain bytes:
//! numbers and strings as text, collections as the encodings of their elements (of their keys
//! and values), so a backend needs no type to store them. A type of the user's own is one
//! opaque value ([`Layout::VALUE`]).

use std::fmt::Display;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::share::ApplyError;
use crate::transport::frame;

/// How a field is kept by a backend that keeps fields apart (see the module).
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Layout {
    /// What the parts are.
    pub kind: Kind,
    /// The field's encoding → its parts.
    pub split: fn(&[u8]) -> Result<Parts, ApplyError>,
    /// Parts → the field's encoding.
    pub join: fn(Parts) -> Result<Vec<u8>, ApplyError>,
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layout").field("kind", &self.kind).finish()
    }
}

/// What a field's parts are.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer, as decimal text; which `+=`/`-=` a backend may apply natively.
    Integer(Incr),
    /// A float, as decimal text.
    Float,
    /// A string, as its UTF-8 bytes.
    Text,
    /// A sequence (`Vec`, `VecDeque`): the encodings of its elements, in order.
    List,
    /// A map: the encodings of its keys and values.
    Map,
    /// A set: the encodings of its elements.
    Set,
    /// One opaque value: the field's encoding.
    Value,
}

/// Which additions a backend with 64-bit signed integers (Redis's `INCRBY`) can apply
/// exactly as the checked arithmetic of the local share does.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incr {
    /// The type's range is the backend's (`i64`): `+=` and `-=`, overflow refused by it.
    Signed64,
    /// An unsigned 64-bit type: `+=` only (it never goes below 0; past `i64::MAX` the backend
    /// refuses it like an overflow).
    Unsigned64,
    /// Neither: the backend must check the range itself.
    Checked,
}

/// A field's value as parts (see [`Kind`]).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parts {
    /// A number's text, a string's bytes, or an opaque value's encoding.
    One(Vec<u8>),
    /// A sequence's or a set's elements.
    Many(Vec<Vec<u8>>),
    /// A map's keys and values.
    Pairs(Vec<(Vec<u8>, Vec<u8>)>),
}

impl Layout {
    /// An opaque value: parts are the field's encoding itself.
    pub const VALUE: Layout = Layout {
        kind: Kind::Value,
        split: |bytes| Ok(Parts::One(bytes.to_vec())),
        join: |parts| match parts {
            Parts::One(bytes) => Ok(bytes),
            other => Err(mismatch(&other)),
        },
    };

    /// A number kept as decimal text.
    pub(crate) const fn number<F: Serialize + DeserializeOwned + Display + FromStr>(
        kind: Kind,
    ) -> Layout {
        Layout {
            kind,
            split: |bytes| {
                let value: F = decode(bytes)?;
                Ok(Parts::One(value.to_string().into_bytes()))
            },
            join: |parts| {
                let text = one_text(parts)?;
                let value: F = text.parse().map_err(|_| {
                    ApplyError::Failed(format!("{text:?} is not a {}", std::any::type_name::<F>()))
                })?;
                encode(&value)
            },
        }
    }

    /// A string kept as its bytes.
    pub(crate) const TEXT: Layout = Layout {
        kind: Kind::Text,
        split: |bytes| Ok(Parts::One(decode::<String>(bytes)?.into_bytes())),
        join: |parts| encode(&one_text(parts)?),
    };

    /// A sequence or a set of `T` kept as its elements' encodings.
    pub(crate) const fn elements<C, T>(kind: Kind) -> Layout
    where
        C: DeserializeOwned + IntoIterator<Item = T>,
        T: Serialize,
    {
        Layout {
            kind,
            split: |bytes| {
                let collection: C = decode(bytes)?;
                let parts = collection
                    .into_iter()
                    .map(|element| encode(&element))
                    .collect::<Result<_, _>>()?;
                Ok(Parts::Many(parts))
            },
            join: |parts| match parts {
                Parts::Many(elements) => Ok(sequence(elements.len(), elements.concat())),
                other => Err(mismatch(&other)),
            },
        }
    }

    /// A map of `K` to `V` kept as its keys' and values' encodings.
    pub(crate) const fn pairs<C, K, V>() -> Layout
    where
        C: DeserializeOwned + IntoIterator<Item = (K, V)>,
        K: Serialize,
        V: Serialize,
    {
        Layout {
            kind: Kind::Map,
            split: |bytes| {
                let map: C = decode(bytes)?;
                let parts = map
                    .into_iter()
                    .map(|(key, value)| Ok((encode(&key)?, encode(&value)?)))
                    .collect::<Result<_, ApplyError>>()?;
                Ok(Parts::Pairs(parts))
            },
            join: |parts| match parts {
                Parts::Pairs(pairs) => {
                    let count = pairs.len();
                    let mut body = Vec::new();
                    for (key, value) in pairs {
                        body.extend_from_slice(&key);
                        body.extend_from_slice(&value);
                    }
                    Ok(sequence(count, body))
                }
                other => Err(mismatch(&other)),
            },
        }
    }
}

/// A sequence's encoding from its length and its elements' encodings, back to back (how the
/// codec writes a sequence, a string or a map).
pub(crate) fn sequence(count: usize, body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len().saturating_add(10));
    let mut n = count as u64;
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    out.extend_from_slice(&body);
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApplyError> {
    frame::decode_owned(bytes).map_err(|e| ApplyError::Arguments(e.to_string()))
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ApplyError> {
    frame::encode(value).map_err(|e| ApplyError::Arguments(e.to_string()))
}

fn one_text(parts: Parts) -> Result<String, ApplyError> {
    match parts {
        Parts::One(bytes) => String::from_utf8(bytes)
            .map_err(|_| ApplyError::Failed("a stored text is not UTF-8".to_owned())),
        other => Err(mismatch(&other)),
    }
}

fn mismatch(parts: &Parts) -> ApplyError {
    let shape = match parts {
        Parts::One(_) => "one value",
        Parts::Many(_) => "elements",
        Parts::Pairs(_) => "pairs",
    };
    ApplyError::Failed(format!(
        "the stored field holds {shape}, not what its type keeps"
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;
    use crate::share::SharedField;

    fn round_trip<F: SharedField + PartialEq + std::fmt::Debug>(value: F) -> Parts {
        let bytes = frame::encode(&value).unwrap();
        let parts = (F::LAYOUT.split)(&bytes).unwrap();
        let back = (F::LAYOUT.join)(parts.clone()).unwrap();
        assert_eq!(frame::decode_owned::<F>(&back).unwrap(), value);
        parts
    }

    #[test]
    fn every_kind_splits_and_joins_back() {
        assert_eq!(round_trip(42u64), Parts::One(b"42".to_vec()));
        assert_eq!(round_trip(-7i8), Parts::One(b"-7".to_vec()));
        assert_eq!(round_trip(0.1f64), Parts::One(b"0.1".to_vec()));
        assert_eq!(
            round_trip("héllo".to_owned()),
            Parts::One("héllo".as_bytes().to_vec())
        );
        let long: Vec<u32> = (0..300).collect();
        let Parts::Many(elements) = round_trip(long) else {
            panic!("a list")
        };
        assert_eq!(elements.len(), 300);
        round_trip(BTreeMap::from([(1u8, "a".to_owned()), (2, "b".to_owned())]));
        round_trip(HashSet::from([3i64, -3]));
        round_trip(Some(5u8));
        assert_eq!(
            <u64 as SharedField>::LAYOUT.kind,
            Kind::Integer(Incr::Unsigned64)
        );
        assert_eq!(
            <i64 as SharedField>::LAYOUT.kind,
            Kind::Integer(Incr::Signed64)
        );
        assert_eq!(
            <u8 as SharedField>::LAYOUT.kind,
            Kind::Integer(Incr::Checked)
        );
        assert_eq!(<Option<u8> as SharedField>::LAYOUT.kind, Kind::Value);
    }

    #[test]
    fn stored_text_that_is_not_the_type_is_an_error() {
        let error = (<u8 as SharedField>::LAYOUT.join)(Parts::One(b"300".to_vec())).unwrap_err();
        assert!(error.to_string().contains("not a u8"), "{error}");
    }
}
