//! Seeds: one `u64` replays a whole simulation.
//!
//! Invariants:
//! - `seed_from_env` prints `LCFS_SEED=<n>` for the seed it returns, so the output of a failing
//!   test (cargo shows it only for failures) says how to replay it;
//! - a set but malformed `LCFS_SEED` is never replaced by another seed: replaying the wrong run
//!   would be worse than stopping.

/// The environment variable that fixes the seed of a random test.
pub const SEED_VAR: &str = "LCFS_SEED";

/// The seed of a random test: `LCFS_SEED` if set (decimal, or hexadecimal after `0x`), else
/// `default`. Prints `LCFS_SEED=<n>` to the test's output.
///
/// # Panics
///
/// If `LCFS_SEED` is set but is not a `u64`.
pub fn seed_from_env(default: u64) -> u64 {
    let seed = match std::env::var(SEED_VAR) {
        Ok(text) => match parse_seed(&text) {
            Some(seed) => seed,
            None => bad_seed(&text),
        },
        Err(std::env::VarError::NotPresent) => default,
        Err(std::env::VarError::NotUnicode(text)) => bad_seed(&text.to_string_lossy()),
    };
    eprintln!("{SEED_VAR}={seed}");
    seed
}

/// A seed from the operating system's entropy, for tests that explore a new run each time
/// (pass it to [`seed_from_env`] as the default so it is printed and can be replayed).
pub fn fresh_seed() -> u64 {
    rand::random()
}

fn parse_seed(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[expect(
    clippy::panic,
    reason = "a malformed LCFS_SEED must stop the test, not pick a seed"
)]
fn bad_seed(text: &str) -> ! {
    panic!("{SEED_VAR}={text:?} is not a u64 seed (decimal, or hexadecimal after 0x)")
}

#[cfg(test)]
mod tests {
    use super::parse_seed;

    #[test]
    fn seeds_parse_in_decimal_and_hexadecimal() {
        assert_eq!(parse_seed("42"), Some(42));
        assert_eq!(parse_seed(" 18446744073709551615 "), Some(u64::MAX));
        assert_eq!(parse_seed("0x2a"), Some(42));
        assert_eq!(parse_seed("0X2A"), Some(42));
        assert_eq!(parse_seed("-1"), None);
        assert_eq!(parse_seed("18446744073709551616"), None);
        assert_eq!(parse_seed("seed"), None);
        assert_eq!(parse_seed(""), None);
    }
}
