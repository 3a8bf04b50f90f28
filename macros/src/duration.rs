//! Duration literals such as `"250ms"` or `"1.5s"`, checked at compile time.
//!
//! The number is read exactly, digit by digit, never through `f64`: the value is a whole number
//! of nanoseconds (digits below a nanosecond are dropped), it must fit in a `u64` so that the
//! generated `Duration::from_nanos` cannot overflow, and it must be at least one millisecond,
//! the precision of hook timeouts and `join_in`.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::LitStr;

/// The smallest accepted duration, in nanoseconds.
const MIN_NANOS: u64 = 1_000_000;

/// A unit: its suffix and its length in nanoseconds, written `factor * 10^shift` so that the
/// fractional digits can be scaled without overflow or rounding.
struct Unit {
    suffix: &'static str,
    factor: u64,
    shift: usize,
}

impl Unit {
    fn nanos(&self) -> u64 {
        self.factor * 10u64.pow(self.shift as u32)
    }
}

/// The accepted units; the shortest number wins, so `ms` is preferred over `s` for `"5ms"`.
const UNITS: [Unit; 6] = [
    Unit {
        suffix: "us",
        factor: 1,
        shift: 3,
    },
    Unit {
        suffix: "µs",
        factor: 1,
        shift: 3,
    },
    Unit {
        suffix: "ms",
        factor: 1,
        shift: 6,
    },
    Unit {
        suffix: "s",
        factor: 1,
        shift: 9,
    },
    Unit {
        suffix: "m",
        factor: 6,
        shift: 10,
    },
    Unit {
        suffix: "h",
        factor: 36,
        shift: 11,
    },
];

/// A checked duration literal: a whole number of nanoseconds, at least one millisecond.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct DurationLit {
    nanos: u64,
}

/// `::core::time::Duration::from_nanos(N)`, which cannot overflow: `N` is a `u64`.
impl ToTokens for DurationLit {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let nanos = proc_macro2::Literal::u64_suffixed(self.nanos);
        tokens.extend(quote!(::core::time::Duration::from_nanos(#nanos)));
    }
}

/// Why a literal was refused.
#[derive(PartialEq, Eq, Debug)]
enum Refusal {
    /// Not a positive number followed by a unit.
    Invalid,
    /// More than `u64::MAX` nanoseconds; holds the largest whole number of the unit written.
    TooLarge { max: u64, suffix: &'static str },
    /// Less than one millisecond (zero included).
    BelowMillisecond,
}

/// Parses a duration literal, with an error spanned on the literal.
///
/// `precision_of` names what the duration is for, as in "the millisecond precision of
/// timeouts".
pub(crate) fn parse(lit: &LitStr, precision_of: &str) -> syn::Result<DurationLit> {
    let text = lit.value();
    let message = match parse_text(text.trim()) {
        Ok(nanos) => return Ok(DurationLit { nanos }),
        Err(Refusal::Invalid) => format!(
            "invalid duration `{text}`: expected a positive number followed by `us`, `ms`, `s`, `m` or `h`, such as `\"250ms\"`"
        ),
        Err(Refusal::TooLarge { max, suffix }) => {
            format!(
                "duration `{text}` is too large: expected at most `{max}{suffix}`, about 584 years"
            )
        }
        Err(Refusal::BelowMillisecond) => format!(
            "duration `{text}` is below the millisecond precision of {precision_of}: expected at least `1ms`"
        ),
    };
    Err(syn::Error::new(lit.span(), message))
}

/// The literal in nanoseconds.
fn parse_text(text: &str) -> Result<u64, Refusal> {
    let (number, unit) = UNITS
        .iter()
        .filter_map(|unit| Some((text.strip_suffix(unit.suffix)?, unit)))
        .min_by_key(|(number, _)| number.len())
        .ok_or(Refusal::Invalid)?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_only = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits_only(whole) || !digits_only(fraction) {
        return Err(Refusal::Invalid);
    }
    let nanos = scale(whole, fraction, unit).ok_or(Refusal::TooLarge {
        max: u64::MAX / unit.nanos(),
        suffix: unit.suffix,
    })?;
    if nanos < MIN_NANOS {
        return Err(Refusal::BelowMillisecond);
    }
    Ok(nanos)
}

/// `whole.fraction` units in nanoseconds, rounded down; `None` when that overflows `u64`.
///
/// With a unit of `factor * 10^shift` nanoseconds, shifting the decimal point `shift` digits to
/// the right leaves an integer `scaled` and a remainder below one; the result is
/// `factor * scaled + floor(factor * remainder)`. The last term is the carry out of multiplying
/// the remainder's digits by `factor` from the right, so no digit is ever lost.
fn scale(whole: &str, fraction: &str, unit: &Unit) -> Option<u64> {
    let (shifted, remainder) = fraction.split_at(fraction.len().min(unit.shift));
    let padding = std::iter::repeat_n(b'0', unit.shift - shifted.len());
    let scaled = whole
        .bytes()
        .chain(shifted.bytes())
        .chain(padding)
        .try_fold(0u64, |value, digit| {
            value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
        })?;
    let carry = remainder.bytes().rev().fold(0, |carry, digit| {
        (unit.factor * u64::from(digit - b'0') + carry) / 10
    });
    scaled.checked_mul(unit.factor)?.checked_add(carry)
}

#[cfg(test)]
mod tests {
    use super::{Refusal, UNITS, parse_text};
    use std::time::Duration;

    fn duration(text: &str) -> Result<Duration, Refusal> {
        parse_text(text).map(Duration::from_nanos)
    }

    fn too_large(suffix: &'static str) -> Refusal {
        let unit = UNITS.iter().find(|u| u.suffix == suffix).unwrap();
        Refusal::TooLarge {
            max: u64::MAX / unit.nanos(),
            suffix,
        }
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("1500us"), Ok(Duration::from_micros(1500)));
        assert_eq!(duration("1500µs"), Ok(Duration::from_micros(1500)));
    }

    #[test]
    fn fractions_are_exact() {
        assert_eq!(parse_text("1.5ms"), Ok(1_500_000));
        assert_eq!(parse_text("0.001s"), Ok(1_000_000));
        assert_eq!(parse_text("1.000000001s"), Ok(1_000_000_001));
        assert_eq!(parse_text(".5s"), Ok(500_000_000));
        assert_eq!(parse_text("2.s"), Ok(2_000_000_000));
        assert_eq!(parse_text("0.1h"), Ok(360_000_000_000));
        assert_eq!(
            parse_text("0.0000000000001h"),
            Err(Refusal::BelowMillisecond)
        );
        // 1/3 of a minute and of an hour, far past a nanosecond: rounded down, never up.
        assert_eq!(parse_text("0.33333333333333333333333m"), Ok(19_999_999_999));
        assert_eq!(parse_text("0.3333333333333333333h"), Ok(1_199_999_999_999));
        // The carry out of digits far below a nanosecond still reaches the result.
        assert_eq!(parse_text("0.01666666666666666667m"), Ok(1_000_000_000));
        assert_eq!(parse_text("0.0166666666666666666m"), Ok(999_999_999));
        assert_eq!(parse_text("0.000277777777777777777778h"), Ok(1_000_000_000));
        assert_eq!(parse_text("1.9999999999999ms"), Ok(1_999_999));
        assert_eq!(parse_text("007ms"), Ok(7_000_000));
    }

    #[test]
    fn rejects_values_below_a_millisecond() {
        for small in [
            "500us",
            "999µs",
            "0.999ms",
            "0.0009999999s",
            "0ms",
            "0.0s",
            "0h",
        ] {
            assert_eq!(parse_text(small), Err(Refusal::BelowMillisecond), "{small}");
        }
        assert_eq!(parse_text("1000us"), Ok(1_000_000));
        assert_eq!(parse_text("1ms"), Ok(1_000_000));
    }

    #[test]
    fn rejects_values_beyond_u64_nanoseconds() {
        assert_eq!(parse_text("18446744073.709551615s"), Ok(u64::MAX));
        assert_eq!(parse_text("18446744073.7095516159s"), Ok(u64::MAX));
        assert_eq!(
            parse_text("18446744073709551615000ps"),
            Err(Refusal::Invalid)
        );
        assert_eq!(parse_text("18446744073.709551616s"), Err(too_large("s")));
        assert_eq!(parse_text("18446744074s"), Err(too_large("s")));
        assert_eq!(parse_text("5124095h"), Ok(5_124_095 * 3_600_000_000_000));
        assert_eq!(parse_text("5124096h"), Err(too_large("h")));
        assert_eq!(parse_text("99999999999999999999999h"), Err(too_large("h")));
        assert_eq!(
            parse_text("307445734.5m"),
            Ok(307_445_734 * 60_000_000_000 + 30_000_000_000)
        );
        assert_eq!(parse_text("307445735m"), Err(too_large("m")));
        assert_eq!(
            parse_text("18446744073709551us"),
            Ok(18_446_744_073_709_551_000)
        );
        assert_eq!(parse_text("18446744073709552us"), Err(too_large("us")));
        let digits = "9".repeat(400);
        assert_eq!(parse_text(&format!("{digits}ms")), Err(too_large("ms")));
        assert_eq!(parse_text(&format!("1.{digits}ms")), Ok(1_999_999));
    }

    #[test]
    fn stated_maximum_is_accepted_in_every_unit() {
        for unit in &UNITS {
            let max = u64::MAX / unit.nanos();
            assert!(
                parse_text(&format!("{max}{}", unit.suffix)).is_ok(),
                "{}",
                unit.suffix
            );
            assert_eq!(
                parse_text(&format!("{}{}", max + 1, unit.suffix)),
                Err(too_large(unit.suffix)),
            );
        }
    }

    #[test]
    fn rejects_negative_and_garbage() {
        for bad in [
            "-1s", "ms", "1", "abc", "1.5", "1 s", "1e3ms", "", ".s", "1..5s", "1.5.2s", "1e400s",
            "+1s", "inf s", "NaNs", "1_000ms", "1sm",
        ] {
            assert_eq!(parse_text(bad), Err(Refusal::Invalid), "{bad}");
        }
    }
}
