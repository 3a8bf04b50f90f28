//! How long a failure's text may be when it crosses the boundary, and how it is cut: one
//! rule for hook errors (`protocol::fit_message`) and panic reports (`panics`). A leaf, so
//! both reach it without importing each other.

/// Longest failure message that crosses the boundary; longer ones are cut, so a report always
/// fits in a frame.
pub(crate) const MAX_FAILURE_MESSAGE: usize = 8 * 1024;

/// `text` cut to at most `limit` bytes on a character boundary, plus a note of what was cut
/// (nothing is noted when all of it was cut).
pub(crate) fn cut(mut text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    if end > 0 {
        text.push_str(&format!("… ({cut} more bytes cut)"));
    }
    text
}
