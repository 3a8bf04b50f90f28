//! Whether a user's type can cross the process boundary with postcard, said at the sender and
//! naming the type, instead of an opaque malformed message in the child.
//!
//! postcard is not self-describing: it writes values in the order the type's `Serialize`
//! visits them, with no field names, tags or lengths of structs, and reads them back by the
//! shape the type's `Deserialize` asks for. serde attributes that write a shape the reader
//! cannot predict, or that read by looking at the data (`deserialize_any`), cannot work (see
//! README, "What postcard cannot carry"). An encoding error that says so names the likely
//! attribute in every build. In debug builds (`cfg(debug_assertions)`), the first value of
//! each type a thread sends — a process's state at `start()`, a `tell`, a pool item, a share
//! write — is also decoded and encoded again, and must give as many bytes (the same bytes but
//! for the order of a `HashMap` or `HashSet`, which a decoded copy may change); a type that
//! passed is not checked again on that thread, so a value-dependent mistake (a field skipped
//! only when empty) is caught only when the first value shows it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::transport::frame::WireError;

/// What a value that serializes as a map or sequence of unknown length probably uses.
const FLATTEN: &str = "`#[serde(flatten)]` (it writes a map of unknown length), or a \
    `Serialize` impl that calls `serialize_map(None)`/`serialize_seq(None)`";

/// What a type whose decoding asks postcard to guess the shape probably uses.
const DESERIALIZE_ANY: &str = "`#[serde(untagged)]`, an internally tagged enum \
    (`#[serde(tag = \"…\")]`), `#[serde(flatten)]`, or a field that deserializes with \
    `deserialize_any` (such as `serde_json::Value`)";

/// What a type whose bytes do not read back as written probably uses.
const SKIPPED: &str = "`#[serde(skip_serializing_if = …)]` (a skipped field shifts every \
    field after it), or `Serialize` and `Deserialize` impls that disagree";

/// The error of a value of `T` that could not be encoded: [`Error::Encoding`] when postcard
/// says it cannot write such a shape, else the usual conversion.
pub(crate) fn encode_failed<T: ?Sized>(error: WireError) -> Error {
    match &error {
        WireError::Malformed(detail) if is_unknown_length(detail) => Error::Encoding {
            type_name: std::any::type_name::<T>(),
            likely: FLATTEN,
            detail: detail.clone(),
        },
        _ => Error::from(error),
    }
}

/// Whether postcard's message is its "length of a sequence must be known" error.
fn is_unknown_length(detail: &str) -> bool {
    detail == postcard::Error::SerializeSeqLengthUnknown.to_string()
}

/// Encodes `value`, checking in debug builds that its type reads back as written.
pub(crate) fn encode<T: Serialize + DeserializeOwned + 'static>(
    value: &T,
) -> Result<Vec<u8>, Error> {
    let encoded = crate::transport::frame::encode(value).map_err(encode_failed::<T>)?;
    check_encoded::<T>(&encoded)?;
    Ok(encoded)
}

/// In debug builds, the first time this thread checks a `T`: `value` must read back as
/// written (see [`check_encoded`]). Nothing in release builds.
pub(crate) fn check_value<T: Serialize + DeserializeOwned + 'static>(
    value: &T,
) -> Result<(), Error> {
    #[cfg(debug_assertions)]
    {
        checked::once::<T>(|| {
            let encoded = crate::transport::frame::encode(value).map_err(encode_failed::<T>)?;
            round_trip::<T>(&encoded)
        })
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = value;
        Ok(())
    }
}

/// In debug builds, the first time this thread sends a `T`: `encoded` (a `T` as encoded)
/// must decode, and encode again to as many bytes. Nothing in release builds.
pub(crate) fn check_encoded<T: Serialize + DeserializeOwned + 'static>(
    encoded: &[u8],
) -> Result<(), Error> {
    #[cfg(debug_assertions)]
    {
        checked::once::<T>(|| round_trip::<T>(encoded))
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = encoded;
        Ok(())
    }
}

/// Decodes `encoded` as a `T` and encodes it again.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
fn round_trip<T: Serialize + DeserializeOwned + 'static>(encoded: &[u8]) -> Result<(), Error> {
    let failed = |likely: &'static str, detail: String| Error::Encoding {
        type_name: std::any::type_name::<T>(),
        likely,
        detail,
    };
    let decoded: T = match postcard::take_from_bytes(encoded) {
        Ok((decoded, [])) => decoded,
        Ok((_, rest)) => {
            let detail = format!("{} bytes are left after reading it back", rest.len());
            return Err(failed(SKIPPED, detail));
        }
        Err(postcard::Error::WontImplement) => {
            let detail = "reading it back needs a self-describing format".to_owned();
            return Err(failed(DESERIALIZE_ANY, detail));
        }
        Err(e) => return Err(failed(SKIPPED, format!("it does not read back: {e}"))),
    };
    let again = postcard::to_stdvec(&decoded).map_err(|e| failed(SKIPPED, e.to_string()))?;
    // Same length, other bytes: a map or set whose order is not fixed (`HashMap`) reads
    // back in another order. A skipped field changes the length, or fails to read back.
    if again.len() != encoded.len() {
        let detail = format!(
            "it reads back as a different value ({} bytes written, {} bytes after reading it \
             back and writing it again)",
            encoded.len(),
            again.len()
        );
        return Err(failed(SKIPPED, detail));
    }
    Ok(())
}

/// The types this thread already checked.
#[cfg(debug_assertions)]
mod checked {
    use std::any::TypeId;
    use std::cell::RefCell;
    use std::collections::HashSet;

    use crate::error::Error;

    thread_local! {
        static PASSED: RefCell<HashSet<TypeId>> = RefCell::new(HashSet::new());
    }

    /// Runs `check` unless `T` passed it on this thread before; remembers a pass.
    pub(super) fn once<T: 'static>(check: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
        let id = TypeId::of::<T>();
        if PASSED.with_borrow(|passed| passed.contains(&id)) {
            return Ok(());
        }
        check()?;
        PASSED.with_borrow_mut(|passed| passed.insert(id));
        Ok(())
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize)]
    struct Plain {
        a: u32,
        b: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    struct Skips {
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<u32>,
        b: u32,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        Number(u32),
    }

    #[test]
    fn a_hash_map_that_reads_back_in_another_order_passes() {
        let map: std::collections::HashMap<u32, u32> = (0..64).map(|i| (i, i)).collect();
        for _ in 0..8 {
            round_trip::<std::collections::HashMap<u32, u32>>(&postcard::to_stdvec(&map).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn a_plain_type_passes_and_the_others_name_their_attribute() {
        encode(&Plain { a: 1, b: None }).unwrap();
        let Err(Error::Encoding { likely, .. }) = encode(&Skips { a: None, b: 7 }) else {
            panic!("a skipped field must fail");
        };
        assert!(likely.contains("skip_serializing_if"), "{likely}");
        let Err(Error::Encoding { likely, .. }) = encode(&Untagged::Number(3)) else {
            panic!("an untagged enum must fail");
        };
        assert!(likely.contains("untagged"), "{likely}");
    }
}
