//! PAX extended header records (POSIX.1-2001 `pax` format): decode and encode.
//!
//! A record is `"<length> <key>=<value>\n"`, where `<length>` is the decimal byte count of the
//! whole record, itself included. Keys lcfs reads: `path`, `linkpath`, `size`, `mtime`, `atime`,
//! `uid`, `gid`, `SCHILY.xattr.<name>`; `GNU.sparse.*` is refused; every other key is ignored.
//!
//! Invariants: a record's length must be a well-formed decimal number that ends exactly on the
//! record's newline inside the data; nothing is sliced before its bounds are checked.

use super::TarErrorKind;
use crate::types::Timespec;

/// The records of one PAX header, in stream order (a later duplicate key wins when applied).
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// The prefix of the keys that carry extended attributes.
pub const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// Decodes the data of a PAX header.
pub fn decode(mut data: &[u8]) -> Result<Records, TarErrorKind> {
    let bad = |what| TarErrorKind::Header(what);
    let mut records = Records::new();
    while !data.is_empty() {
        let space = data
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or(bad("a PAX record without a length"))?;
        let digits = data.get(..space).unwrap_or(&[]);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad("a PAX record length is not a decimal number"));
        }
        let length = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or(bad("a PAX record length overflows"))?;
        if length <= space + 1 || length > data.len() {
            return Err(bad("a PAX record length runs outside the header"));
        }
        let record = data
            .get(space + 1..length)
            .ok_or(bad("a PAX record length is wrong"))?;
        let Some((b'\n', body)) = record.split_last() else {
            return Err(bad("a PAX record does not end with a newline"));
        };
        let equals = body
            .iter()
            .position(|&b| b == b'=')
            .ok_or(bad("a PAX record without '='"))?;
        let key = body.get(..equals).unwrap_or(&[]);
        let value = body.get(equals + 1..).unwrap_or(&[]);
        if key.is_empty() || key.contains(&0) {
            return Err(bad("a PAX record key is empty or holds a NUL"));
        }
        if key.starts_with(b"GNU.sparse.") {
            return Err(TarErrorKind::Unsupported(
                "GNU sparse files (PAX GNU.sparse records)",
            ));
        }
        records.push((key.to_vec(), value.to_vec()));
        data = data.get(length..).unwrap_or(&[]);
    }
    Ok(records)
}

/// A decimal unsigned value (uid, gid, size).
pub fn parse_unsigned(value: &[u8]) -> Result<u64, TarErrorKind> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(TarErrorKind::Header("a PAX number is not a decimal number"));
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(TarErrorKind::Header("a PAX number overflows"))
}

/// A PAX time: `[-]seconds[.fraction]`, the fraction cut to nanoseconds.
pub fn parse_time(value: &[u8]) -> Result<Timespec, TarErrorKind> {
    let bad = TarErrorKind::Header("a PAX time is not [-]seconds[.fraction]");
    let (negative, rest) = match value.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, value),
    };
    let (whole, fraction) = match rest.iter().position(|&b| b == b'.') {
        Some(dot) => (
            rest.get(..dot).unwrap_or(&[]),
            rest.get(dot + 1..).unwrap_or(&[]),
        ),
        None => (rest, &[][..]),
    };
    if whole.is_empty() || !fraction.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    let sec = i64::try_from(parse_unsigned(whole).map_err(|_| bad)?)
        .map_err(|_| TarErrorKind::Header("a PAX time overflows"))?;
    let mut nsec: u32 = 0;
    for index in 0..9 {
        let digit = fraction.get(index).map_or(0, |d| u32::from(d - b'0'));
        nsec = nsec * 10 + digit;
    }
    if !negative {
        return Ok(Timespec::new(sec, nsec));
    }
    // -1.25 is 1.25 s before the epoch: second -2, plus 0.75 s.
    Ok(if nsec == 0 {
        Timespec::new(-sec, 0)
    } else {
        Timespec::new(-sec - 1, 1_000_000_000 - nsec)
    })
}

/// Formats a time for a PAX record (`sec` or `sec.nnnnnnnnn`).
pub fn format_time(t: Timespec) -> Vec<u8> {
    let text = if t.sec < 0 && t.nsec != 0 {
        // sec + nsec/1e9 with sec negative: write the magnitude.
        let whole = -(t.sec + 1);
        format!("-{}.{:09}", whole, 1_000_000_000 - t.nsec)
    } else if t.nsec != 0 {
        format!("{}.{:09}", t.sec, t.nsec)
    } else {
        format!("{}", t.sec)
    };
    text.into_bytes()
}

/// Encodes records as the data of a PAX header.
pub fn encode(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        // The length counts its own digits: grow it until it is stable.
        let body = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut length = body + 1;
        while length != body + length.to_string().len() {
            length = body + length.to_string().len();
        }
        out.extend_from_slice(length.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_round_trip_with_binary_values() {
        let records = vec![
            (b"path".to_vec(), vec![b'a'; 300]),
            (b"SCHILY.xattr.user.bin".to_vec(), vec![0, 10, 255, b'=']),
            (b"mtime".to_vec(), b"1.5".to_vec()),
        ];
        assert_eq!(decode(&encode(&records)).unwrap(), records);
    }

    #[test]
    fn bad_lengths_are_errors() {
        for data in [
            &b"5 a=b\n"[..],
            b"100 a=b\n",
            b"x a=b\n",
            b"7 a=b\nX",
            b"8 ab\n\n\n",
            b"99999999999999999999999 a=b\n",
            b"07 =b\n",
        ] {
            assert!(decode(data).is_err(), "{:?}", String::from_utf8_lossy(data));
        }
        assert_eq!(
            decode(b"6 a=b\n").unwrap(),
            vec![(b"a".to_vec(), b"b".to_vec())]
        );
    }

    #[test]
    fn times_with_fractions_and_signs() {
        assert_eq!(parse_time(b"12.5").unwrap(), Timespec::new(12, 500_000_000));
        assert_eq!(
            parse_time(b"-1.25").unwrap(),
            Timespec::new(-2, 750_000_000)
        );
        assert_eq!(
            parse_time(b"7.1234567891").unwrap(),
            Timespec::new(7, 123_456_789)
        );
        assert!(parse_time(b"1.2.3").is_err());
        assert!(parse_time(b"").is_err());
        for t in [
            Timespec::new(-2, 750_000_000),
            Timespec::new(5, 1),
            Timespec::new(-3, 0),
        ] {
            assert_eq!(parse_time(&format_time(t)).unwrap(), t);
        }
    }
}
