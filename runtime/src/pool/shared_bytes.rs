//! [`SharedBytes`]: a slice of a buffer that many items share — a batch of encoded inputs, or
//! a frame of results — so an item costs no allocation of its own on its way through the pool.

use std::ops::{Deref, Range};
use std::sync::Arc;

/// An immutable byte range of a shared buffer; cloning it shares the buffer.
#[derive(Clone)]
pub(crate) struct SharedBytes {
    buffer: Arc<[u8]>,
    range: Range<usize>,
}

impl SharedBytes {
    /// The bytes `range` of `buffer`; an out-of-bounds range is cut to the buffer.
    pub(crate) fn new(buffer: Arc<[u8]>, range: Range<usize>) -> Self {
        let end = range.end.min(buffer.len());
        let start = range.start.min(end);
        Self {
            buffer,
            range: start..end,
        }
    }

    /// The range that `part`, a slice borrowed from `buffer`, covers in it; `None` when it
    /// is not part of it.
    pub(crate) fn range_in(buffer: &[u8], part: &[u8]) -> Option<Range<usize>> {
        let start = (part.as_ptr() as usize).checked_sub(buffer.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        (end <= buffer.len()).then_some(start..end)
    }
}

impl From<Vec<u8>> for SharedBytes {
    fn from(bytes: Vec<u8>) -> Self {
        let range = 0..bytes.len();
        Self {
            buffer: Arc::from(bytes),
            range,
        }
    }
}

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buffer[self.range.clone()]
    }
}

impl PartialEq for SharedBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for SharedBytes {}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_of_a_buffer_is_found_and_shared() {
        let buffer: Arc<[u8]> = Arc::from(vec![1u8, 2, 3, 4, 5]);
        let range = SharedBytes::range_in(&buffer, &buffer[1..3]).unwrap();
        assert_eq!(range, 1..3);
        assert_eq!(&*SharedBytes::new(Arc::clone(&buffer), range), &[2, 3]);
        assert_eq!(SharedBytes::range_in(&buffer, &[9u8, 9]), None);
        assert_eq!(&*SharedBytes::new(buffer, 4..9), &[5]);
    }
}
