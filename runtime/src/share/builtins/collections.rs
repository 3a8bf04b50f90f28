//! `String`, `Option`, `Vec`, `VecDeque`, `HashMap`, `HashSet`, `BTreeMap` and `BTreeSet` as
//! shared fields. Proxy methods follow std's names; where std returns a value, the proxy waits
//! for it and returns `Result<_, Error>`; where std returns nothing, it is a fire-and-forget
//! write. Element access by index or key is `at` (`get` reads the whole field).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::ops::AddAssign;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::protocol::share::FieldOp;
use crate::share::ApplyError;
use crate::share::field::{Field, SharedField, decode_args, encode_reply, get_or_set};
use crate::share::layout::{Kind, Layout};

/// What a shared collection's elements need.
pub trait Element: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> Element for T {}

fn out_of_range(index: usize, len: usize) -> ApplyError {
    ApplyError::Failed(format!("index {index} out of range for length {len}"))
}

impl SharedField for String {
    const LAYOUT: Layout = Layout::TEXT;

    fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
        match op {
            FieldOp::Push => self.push_str(&decode_args::<String>(args)?),
            FieldOp::Len => encode_reply(&self.len(), reply)?,
            FieldOp::IsEmpty => encode_reply(&self.is_empty(), reply)?,
            FieldOp::Clear => self.clear(),
            op => return get_or_set(self, op, args, reply),
        }
        Ok(())
    }
}

impl Field<String> {
    /// Appends `text` (a write).
    pub fn push_str(&self, text: &str) {
        self.write(FieldOp::Push, text)
    }
    /// The length in bytes.
    pub fn len(&self) -> Result<usize, Error> {
        self.call(FieldOp::Len, &())
    }
    /// Whether the string is empty.
    pub fn is_empty(&self) -> Result<bool, Error> {
        self.call(FieldOp::IsEmpty, &())
    }
    /// Empties the string (a write).
    pub fn clear(&self) {
        self.write(FieldOp::Clear, &())
    }
}

/// `share.name += "text"`: one write.
impl AddAssign<&str> for Field<String> {
    fn add_assign(&mut self, text: &str) {
        self.push_str(text)
    }
}

impl<T: Element> SharedField for Option<T> {}

impl<T: Element> SharedField for Vec<T> {
    const LAYOUT: Layout = Layout::elements::<Vec<T>, T>(Kind::List);

    fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
        match op {
            FieldOp::Push => self.push(decode_args(args)?),
            FieldOp::Pop => encode_reply(&self.pop(), reply)?,
            FieldOp::Len => encode_reply(&self.len(), reply)?,
            FieldOp::IsEmpty => encode_reply(&self.is_empty(), reply)?,
            FieldOp::Clear => self.clear(),
            FieldOp::Insert => {
                let (index, element): (usize, T) = decode_args(args)?;
                if index > self.len() {
                    return Err(out_of_range(index, self.len()));
                }
                self.insert(index, element)
            }
            FieldOp::Remove => {
                let index: usize = decode_args(args)?;
                if index >= self.len() {
                    return Err(out_of_range(index, self.len()));
                }
                encode_reply(&self.remove(index), reply)?
            }
            FieldOp::Extend => self.extend(decode_args::<Vec<T>>(args)?),
            FieldOp::GetAt => encode_reply(&self.get(decode_args::<usize>(args)?), reply)?,
            FieldOp::Truncate => self.truncate(decode_args(args)?),
            op => return get_or_set(self, op, args, reply),
        }
        Ok(())
    }
}

impl<T: Element> Field<Vec<T>> {
    /// Appends an element (a write).
    pub fn push(&self, element: T) {
        self.write(FieldOp::Push, &element)
    }
    /// Removes and returns the last element.
    pub fn pop(&self) -> Result<Option<T>, Error> {
        self.call(FieldOp::Pop, &())
    }
    /// The number of elements.
    pub fn len(&self) -> Result<usize, Error> {
        self.call(FieldOp::Len, &())
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> Result<bool, Error> {
        self.call(FieldOp::IsEmpty, &())
    }
    /// Removes every element (a write).
    pub fn clear(&self) {
        self.write(FieldOp::Clear, &())
    }
    /// Inserts at `index` (a write; an index past the end is recorded as the coordinator's
    /// last error and inserts nothing).
    pub fn insert(&self, index: usize, element: T) {
        self.write(FieldOp::Insert, &(index, element))
    }
    /// Removes and returns the element at `index`; an index out of range is an error.
    pub fn remove(&self, index: usize) -> Result<T, Error> {
        self.call(FieldOp::Remove, &index)
    }
    /// Appends every element (one write).
    pub fn extend(&self, elements: impl IntoIterator<Item = T>) {
        self.write(FieldOp::Extend, &elements.into_iter().collect::<Vec<T>>())
    }
    /// A copy of the element at `index`.
    pub fn at(&self, index: usize) -> Result<Option<T>, Error> {
        self.call(FieldOp::GetAt, &index)
    }
    /// Keeps the first `len` elements (a write).
    pub fn truncate(&self, len: usize) {
        self.write(FieldOp::Truncate, &len)
    }
}

impl<T: Element> SharedField for VecDeque<T> {
    const LAYOUT: Layout = Layout::elements::<VecDeque<T>, T>(Kind::List);

    fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
        match op {
            FieldOp::Push => self.push_back(decode_args(args)?),
            FieldOp::PushFront => self.push_front(decode_args(args)?),
            FieldOp::Pop => encode_reply(&self.pop_back(), reply)?,
            FieldOp::PopFront => encode_reply(&self.pop_front(), reply)?,
            FieldOp::Len => encode_reply(&self.len(), reply)?,
            FieldOp::IsEmpty => encode_reply(&self.is_empty(), reply)?,
            FieldOp::Clear => self.clear(),
            FieldOp::GetAt => encode_reply(&self.get(decode_args::<usize>(args)?), reply)?,
            op => return get_or_set(self, op, args, reply),
        }
        Ok(())
    }
}

impl<T: Element> Field<VecDeque<T>> {
    /// Appends at the back (a write).
    pub fn push_back(&self, element: T) {
        self.write(FieldOp::Push, &element)
    }
    /// Prepends at the front (a write).
    pub fn push_front(&self, element: T) {
        self.write(FieldOp::PushFront, &element)
    }
    /// Removes and returns the last element.
    pub fn pop_back(&self) -> Result<Option<T>, Error> {
        self.call(FieldOp::Pop, &())
    }
    /// Removes and returns the first element.
    pub fn pop_front(&self) -> Result<Option<T>, Error> {
        self.call(FieldOp::PopFront, &())
    }
    /// The number of elements.
    pub fn len(&self) -> Result<usize, Error> {
        self.call(FieldOp::Len, &())
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> Result<bool, Error> {
        self.call(FieldOp::IsEmpty, &())
    }
    /// Removes every element (a write).
    pub fn clear(&self) {
        self.write(FieldOp::Clear, &())
    }
    /// A copy of the element at `index`.
    pub fn at(&self, index: usize) -> Result<Option<T>, Error> {
        self.call(FieldOp::GetAt, &index)
    }
}

/// Maps: `HashMap` and `BTreeMap` share one implementation.
macro_rules! map {
    ($map:ident, $($bound:tt)*) => {
        impl<K: Element + $($bound)*, V: Element> SharedField for $map<K, V> {
            const LAYOUT: Layout = Layout::pairs::<$map<K, V>, K, V>();

            fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
                match op {
                    FieldOp::Insert => {
                        let (key, value): (K, V) = decode_args(args)?;
                        encode_reply(&self.insert(key, value), reply)?
                    }
                    FieldOp::Remove => encode_reply(&self.remove(&decode_args::<K>(args)?), reply)?,
                    FieldOp::GetAt => encode_reply(&self.get(&decode_args::<K>(args)?), reply)?,
                    FieldOp::Contains => encode_reply(&self.contains_key(&decode_args::<K>(args)?), reply)?,
                    FieldOp::Len => encode_reply(&self.len(), reply)?,
                    FieldOp::IsEmpty => encode_reply(&self.is_empty(), reply)?,
                    FieldOp::Clear => self.clear(),
                    FieldOp::Extend => self.extend(decode_args::<Vec<(K, V)>>(args)?),
                    op => return get_or_set(self, op, args, reply),
                }
                Ok(())
            }
        }

        impl<K: Element + $($bound)*, V: Element> Field<$map<K, V>> {
            /// Inserts and returns the value the key had.
            pub fn insert(&self, key: K, value: V) -> Result<Option<V>, Error> {
                self.call(FieldOp::Insert, &(key, value))
            }
            /// Removes a key and returns its value.
            pub fn remove<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>, Error>
            where
                K: Borrow<Q>,
            {
                self.call(FieldOp::Remove, key)
            }
            /// A copy of the key's value.
            pub fn at<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>, Error>
            where
                K: Borrow<Q>,
            {
                self.call(FieldOp::GetAt, key)
            }
            /// Whether the key is present.
            pub fn contains_key<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<bool, Error>
            where
                K: Borrow<Q>,
            {
                self.call(FieldOp::Contains, key)
            }
            /// The number of entries.
            pub fn len(&self) -> Result<usize, Error> {
                self.call(FieldOp::Len, &())
            }
            /// Whether there are no entries.
            pub fn is_empty(&self) -> Result<bool, Error> {
                self.call(FieldOp::IsEmpty, &())
            }
            /// Removes every entry (a write).
            pub fn clear(&self) {
                self.write(FieldOp::Clear, &())
            }
            /// Inserts every entry, replacing existing keys (one write).
            pub fn extend(&self, entries: impl IntoIterator<Item = (K, V)>) {
                self.write(FieldOp::Extend, &entries.into_iter().collect::<Vec<(K, V)>>())
            }
        }
    };
}

map!(HashMap, Eq + Hash);
map!(BTreeMap, Ord);

/// Sets: `HashSet` and `BTreeSet` share one implementation.
macro_rules! set {
    ($set:ident, $($bound:tt)*) => {
        impl<T: Element + $($bound)*> SharedField for $set<T> {
            const LAYOUT: Layout = Layout::elements::<$set<T>, T>(Kind::Set);

            fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
                match op {
                    FieldOp::Insert => encode_reply(&self.insert(decode_args(args)?), reply)?,
                    FieldOp::Remove => encode_reply(&self.remove(&decode_args::<T>(args)?), reply)?,
                    FieldOp::Contains => encode_reply(&self.contains(&decode_args::<T>(args)?), reply)?,
                    FieldOp::Len => encode_reply(&self.len(), reply)?,
                    FieldOp::IsEmpty => encode_reply(&self.is_empty(), reply)?,
                    FieldOp::Clear => self.clear(),
                    FieldOp::Extend => self.extend(decode_args::<Vec<T>>(args)?),
                    op => return get_or_set(self, op, args, reply),
                }
                Ok(())
            }
        }

        impl<T: Element + $($bound)*> Field<$set<T>> {
            /// Inserts; whether the element was new.
            pub fn insert(&self, element: T) -> Result<bool, Error> {
                self.call(FieldOp::Insert, &element)
            }
            /// Removes; whether the element was present.
            pub fn remove<Q: Serialize + ?Sized>(&self, element: &Q) -> Result<bool, Error>
            where
                T: Borrow<Q>,
            {
                self.call(FieldOp::Remove, element)
            }
            /// Whether the element is present.
            pub fn contains<Q: Serialize + ?Sized>(&self, element: &Q) -> Result<bool, Error>
            where
                T: Borrow<Q>,
            {
                self.call(FieldOp::Contains, element)
            }
            /// The number of elements.
            pub fn len(&self) -> Result<usize, Error> {
                self.call(FieldOp::Len, &())
            }
            /// Whether there are no elements.
            pub fn is_empty(&self) -> Result<bool, Error> {
                self.call(FieldOp::IsEmpty, &())
            }
            /// Removes every element (a write).
            pub fn clear(&self) {
                self.write(FieldOp::Clear, &())
            }
            /// Inserts every element (one write).
            pub fn extend(&self, elements: impl IntoIterator<Item = T>) {
                self.write(FieldOp::Extend, &elements.into_iter().collect::<Vec<T>>())
            }
        }
    };
}

set!(HashSet, Eq + Hash);
set!(BTreeSet, Ord);
