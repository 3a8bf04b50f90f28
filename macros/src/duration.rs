//! Duration literals such as `"250ms"` or `"1.5s"`, checked at compile time.

use std::time::Duration;

use syn::LitStr;

/// Units accepted after the number, longest suffix first so `ms` wins over `s`.
const UNITS: [(&str, f64); 6] = [
    ("us", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("µs", 1e-6),
];

/// Parses a positive duration literal, with an error spanned on the literal.
pub(crate) fn parse(lit: &LitStr) -> syn::Result<Duration> {
    let text = lit.value();
    parse_text(text.trim()).ok_or_else(|| {
        syn::Error::new(
            lit.span(),
            format!(
                "invalid duration `{text}`: expected a positive number followed by `us`, `ms`, `s`, `m` or `h`, such as `\"250ms\"`"
            ),
        )
    })
}

fn parse_text(text: &str) -> Option<Duration> {
    let (number, scale) = UNITS
        .iter()
        .filter_map(|(unit, scale)| Some((text.strip_suffix(unit)?, *scale)))
        .min_by_key(|(number, _)| number.len())?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let seconds = number.parse::<f64>().ok()? * scale;
    (seconds > 0.0 && seconds.is_finite()).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::parse_text;
    use std::time::Duration;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_text("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_text("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_text("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_text("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_text("500us"), Some(Duration::from_micros(500)));
    }

    #[test]
    fn rejects_negative_zero_and_garbage() {
        for bad in ["-1s", "0ms", "ms", "1", "abc", "1.5", "1 s", "1e3ms", ""] {
            assert_eq!(parse_text(bad), None, "{bad}");
        }
    }
}
