//! Exact money: [`Money`] (US dollars in whole pico-dollars) and [`Rate`]
//! (pico-dollars per token): the unit of the accounting seam
//! ([`crate::accounting::Meter`]), so no float crosses it.
//!
//! Why pico-dollars: every price the providers publish has at most six
//! decimals in dollars per million tokens, which is a whole number of
//! pico-dollars (10⁻¹² USD) per token. A call's cost is then a sum of
//! integer products, so summing, splitting and re-summing calls never drifts
//! and never rounds. Floats appear only where the brief's tools demand them
//! (the `cost:<tier>` keys), through [`Money::to_f64_lossy`].

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Pico-dollars in one dollar.
const PICOS_PER_USD: i128 = 1_000_000_000_000;
/// Decimal places of a pico-dollar amount.
const MONEY_SCALE: u32 = 12;
/// Decimal places of a rate in dollars per million tokens that still make
/// whole pico-dollars per token.
const RATE_SCALE: u32 = 6;

/// An amount of US dollars, exact to the pico-dollar (10⁻¹² USD).
///
/// Arithmetic saturates at about ±1.7 × 10¹⁴ dollars instead of panicking.
/// `Display` prints the exact decimal with at least two decimals
/// (`0.00555`, `3.50`, `-0.25`); with a precision (`{:.4}`) it rounds half
/// away from zero to that many decimals. Serialized as that exact decimal
/// string, so JSON never carries a float.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i128);

impl Money {
    /// No money.
    pub const ZERO: Money = Money(0);

    /// An amount in pico-dollars.
    pub const fn from_picos(picos: i128) -> Self {
        Self(picos)
    }

    /// The amount in pico-dollars.
    pub const fn picos(self) -> i128 {
        self.0
    }

    /// Whole dollars.
    pub const fn from_usd(dollars: i64) -> Self {
        Self(dollars as i128 * PICOS_PER_USD)
    }

    /// An amount in micro-dollars (10⁻⁶ USD), the unit of budget counters.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros as i128 * 1_000_000)
    }

    /// The amount in micro-dollars, rounded up (towards +∞), saturating at the
    /// bounds of `i64`. Budgets round up so that they never under-count.
    pub fn to_micros_ceil(self) -> i64 {
        let micros = self.0.div_euclid(1_000_000) + i128::from(self.0.rem_euclid(1_000_000) != 0);
        i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
    }

    /// The amount in micro-dollars, rounded down (towards −∞), saturating at
    /// the bounds of `i64`. Budget limits round down so that they never allow
    /// more than asked.
    pub fn to_micros_floor(self) -> i64 {
        let micros = self.0.div_euclid(1_000_000);
        i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
    }

    /// Parses an exact decimal amount of dollars (`"0.00555"`, `"-3"`,
    /// `"12.5"`): at most 12 decimals, no exponent, no `$`.
    pub fn parse(input: &str) -> Result<Self, ParseMoneyError> {
        parse_scaled(input, MONEY_SCALE).map(Self)
    }

    /// The amount as the nearest `f64` of dollars. Lossy: only for the brief's
    /// float keys (`cost:<tier>`) and other float consumers, never for sums.
    pub fn to_f64_lossy(self) -> f64 {
        // Parsing the exact decimal gives the correctly rounded float.
        self.to_string().parse().unwrap_or(0.0)
    }

    /// True for exactly zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// True below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Adds, or `None` on overflow.
    pub const fn checked_add(self, other: Money) -> Option<Money> {
        match self.0.checked_add(other.0) {
            Some(v) => Some(Money(v)),
            None => None,
        }
    }

    /// This amount in tenths of a percent of `whole` (0 when `whole` is not
    /// positive), rounded half up. `Money(1)` of `Money(3)` is 333.
    pub fn permille_of(self, whole: Money) -> u32 {
        permille(self.0, whole.0)
    }
}

/// `part` in tenths of a percent of `whole`, rounded half up, clamped to
/// 0..=1000; 0 when `whole` is not positive.
pub fn permille(part: i128, whole: i128) -> u32 {
    if whole <= 0 || part <= 0 {
        return 0;
    }
    let part = part.min(whole);
    // part ≤ whole, so part × 2000 fits unless whole is near i128::MAX; scale
    // both down first in that (theoretical) case.
    let (part, whole) = if whole > i128::MAX / 2000 {
        (part / 1_000_000, (whole / 1_000_000).max(1))
    } else {
        (part, whole)
    };
    let value = (part * 2000 + whole) / (2 * whole);
    u32::try_from(value.min(1000)).unwrap_or(1000)
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = *self + rhs;
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0.saturating_sub(rhs.0))
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        *self = *self - rhs;
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(self.0.saturating_neg())
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Money {
        iter.copied().sum()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match f.precision() {
            Some(decimals) => f.write_str(&format_rounded(self.0, MONEY_SCALE, decimals)),
            None => f.write_str(&format_scaled(self.0, MONEY_SCALE, 2)),
        }
    }
}

impl FromStr for Money {
    type Err = ParseMoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Money::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A price per token, exact to the pico-dollar. Written and shown in
/// dollars per million tokens (`"0.30"`), as the providers publish it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

impl Rate {
    /// A rate of so many pico-dollars per token.
    pub const fn from_picos_per_token(picos: u64) -> Self {
        Self(picos)
    }

    /// The rate in pico-dollars per token.
    pub const fn picos_per_token(self) -> u64 {
        self.0
    }

    /// Parses dollars per million tokens (`"3"`, `"0.028"`, `"22.50"`): not
    /// negative, at most six decimals.
    pub fn per_million(input: &str) -> Result<Self, ParseMoneyError> {
        let scaled = parse_scaled(input, RATE_SCALE)?;
        u64::try_from(scaled).map(Self).map_err(|_| {
            ParseMoneyError::new(
                input,
                "a rate must be between 0 and 2^64 pico-dollars per token",
            )
        })
    }

    /// The cost of `tokens` tokens at this rate, or `None` on overflow.
    pub fn cost(self, tokens: u64) -> Option<Money> {
        i128::from(self.0)
            .checked_mul(i128::from(tokens))
            .map(Money)
    }
}

impl fmt::Display for Rate {
    /// Dollars per million tokens, exact (`0.30`, `22.50`, `0.028`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_scaled(i128::from(self.0), RATE_SCALE, 2))
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rate::per_million(&s).map_err(serde::de::Error::custom)
    }
}

/// A decimal amount that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an exact decimal amount \"{input}\": {reason}")]
pub struct ParseMoneyError {
    /// The rejected text, escaped and cut to 40 characters.
    pub input: String,
    /// Why.
    pub reason: &'static str,
}

impl ParseMoneyError {
    fn new(input: &str, reason: &'static str) -> Self {
        let mut shown: String = input.chars().take(40).collect();
        if input.chars().count() > 40 {
            shown.push('…');
        }
        Self {
            input: shown.escape_debug().to_string(),
            reason,
        }
    }
}

/// Parses `[-]digits[.digits]` into the integer `value × 10^scale`, exactly.
fn parse_scaled(input: &str, scale: u32) -> Result<i128, ParseMoneyError> {
    let bad = |reason| ParseMoneyError::new(input, reason);
    let (negative, unsigned) = match input.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((i, f)) => (i, f),
        None => (unsigned, ""),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected digits before the decimal point"));
    }
    if unsigned.contains('.') && frac_part.is_empty() {
        return Err(bad("expected digits after the decimal point"));
    }
    if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected only digits after the decimal point"));
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > scale as usize {
        return Err(bad("more decimals than the unit can hold exactly"));
    }
    let overflow = || bad("too large");
    let mut value: i128 = 0;
    for b in int_part.bytes().chain(frac_trimmed.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or_else(overflow)?;
    }
    let pad = scale - frac_trimmed.len() as u32;
    value = value.checked_mul(10_i128.pow(pad)).ok_or_else(overflow)?;
    Ok(if negative { -value } else { value })
}

/// Formats `value × 10^-scale` exactly, trailing zeros trimmed but keeping at
/// least `min_decimals` decimals.
fn format_scaled(value: i128, scale: u32, min_decimals: usize) -> String {
    let unit = 10_u128.pow(scale);
    let magnitude = value.unsigned_abs();
    let int_part = magnitude / unit;
    let frac = format!("{:0width$}", magnitude % unit, width = scale as usize);
    let trimmed = frac.trim_end_matches('0');
    let keep = trimmed.len().max(min_decimals.min(scale as usize));
    let sign = if value < 0 { "-" } else { "" };
    if keep == 0 {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{}", &frac[..keep])
    }
}

/// Formats `value × 10^-scale` rounded half away from zero to `decimals`.
fn format_rounded(value: i128, scale: u32, decimals: usize) -> String {
    let decimals_u32 = u32::try_from(decimals).unwrap_or(u32::MAX);
    if decimals_u32 >= scale {
        let exact = format_scaled(value, scale, scale as usize);
        let pad = decimals - scale as usize;
        return format!("{exact}{}", "0".repeat(pad));
    }
    let drop = 10_u128.pow(scale - decimals_u32);
    let magnitude = value.unsigned_abs();
    let rounded = (magnitude / drop) + u128::from(magnitude % drop >= drop / 2);
    let unit = 10_u128.pow(decimals_u32);
    let sign = if value < 0 && rounded != 0 { "-" } else { "" };
    if decimals == 0 {
        format!("{sign}{rounded}")
    } else {
        format!(
            "{sign}{}.{:0width$}",
            rounded / unit,
            rounded % unit,
            width = decimals
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_exact_decimal() {
        assert_eq!(Money::from_picos(5_550_000_000).to_string(), "0.00555");
        assert_eq!(Money::ZERO.to_string(), "0.00");
        assert_eq!(Money::from_usd(3).to_string(), "3.00");
        assert_eq!(Money::from_picos(1).to_string(), "0.000000000001");
        assert_eq!(Money::from_picos(-250_000_000_000).to_string(), "-0.25");
    }

    #[test]
    fn precision_rounds_half_away_from_zero() {
        let m = Money::parse("0.02345").unwrap();
        assert_eq!(format!("{m:.4}"), "0.0235");
        assert_eq!(format!("{:.4}", -m), "-0.0235");
        assert_eq!(format!("{:.2}", Money::parse("0.004").unwrap()), "0.00");
        assert_eq!(format!("{:.0}", Money::parse("2.5").unwrap()), "3");
        assert_eq!(
            format!("{:.14}", Money::parse("1.5").unwrap()),
            "1.50000000000000"
        );
    }

    #[test]
    fn parse_round_trips_and_refuses_inexact_input() {
        for s in ["0.00555", "3.00", "-0.25", "123456.000000000001"] {
            assert_eq!(Money::parse(s).unwrap().to_string(), s);
        }
        assert!(Money::parse("0.0000000000001").is_err());
        assert!(Money::parse("1e3").is_err());
        assert!(Money::parse(".5").is_err());
        assert!(Money::parse("5.").is_err());
        assert!(Money::parse("").is_err());
        assert!(Money::parse("$1").is_err());
    }

    #[test]
    fn rates_are_whole_picos_per_token() {
        assert_eq!(
            Rate::per_million("0.028").unwrap().picos_per_token(),
            28_000
        );
        assert_eq!(
            Rate::per_million("22.50").unwrap().picos_per_token(),
            22_500_000
        );
        assert_eq!(Rate::per_million("1.875").unwrap().to_string(), "1.875");
        assert_eq!(Rate::per_million("0.30").unwrap().to_string(), "0.30");
        assert!(Rate::per_million("0.0000001").is_err());
        assert!(Rate::per_million("-1").is_err());
    }

    #[test]
    fn micros_round_up() {
        assert_eq!(Money::from_picos(1).to_micros_ceil(), 1);
        assert_eq!(Money::from_picos(1_000_000).to_micros_ceil(), 1);
        assert_eq!(Money::from_picos(1_000_001).to_micros_ceil(), 2);
        assert_eq!(Money::ZERO.to_micros_ceil(), 0);
        assert_eq!(Money::from_picos(-1).to_micros_ceil(), 0);
    }

    #[test]
    fn permille_rounds_half_up() {
        assert_eq!(Money::from_picos(1).permille_of(Money::from_picos(3)), 333);
        assert_eq!(Money::from_picos(2).permille_of(Money::from_picos(3)), 667);
        assert_eq!(Money::from_picos(1).permille_of(Money::ZERO), 0);
    }

    #[test]
    fn floats_only_on_request() {
        assert_eq!(Money::parse("0.0234").unwrap().to_f64_lossy(), 0.0234);
    }
}
