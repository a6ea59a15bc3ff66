//! The `Range` request header, for one byte range (RFC 9110 §14).

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// The whole file (no header, another unit, or several ranges, which we answer in full).
    Full,
    /// Bytes `start..end` (end exclusive), answered with 206.
    Partial {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Nothing of it can be served: 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Interprets `header` for a file of `size` bytes.
pub fn parse(header: Option<&str>, size: u64) -> Requested {
    let Some(header) = header else { return Requested::Full };
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Requested::Full };
    if spec.contains(',') {
        return Requested::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Requested::Unsatisfiable };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse().ok() }
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(suffix)) if suffix > 0 && size > 0 => {
            Requested::Partial { start: size.saturating_sub(suffix), end: size }
        }
        // bytes=A- : from A to the end.
        (false, Some(start), None) if last.trim().is_empty() && start < size => {
            Requested::Partial { start, end: size }
        }
        // bytes=A-B
        (false, Some(start), Some(end)) if start <= end && start < size => {
            Requested::Partial { start, end: end.saturating_add(1).min(size) }
        }
        _ => Requested::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use Requested::*;
        let size = 1000;
        let cases = [
            (None, Full),
            (Some("bytes=0-"), Partial { start: 0, end: 1000 }),
            (Some("bytes=0-0"), Partial { start: 0, end: 1 }),
            (Some("bytes=100-199"), Partial { start: 100, end: 200 }),
            (Some("bytes=900-5000"), Partial { start: 900, end: 1000 }),
            (Some("bytes=-16"), Partial { start: 984, end: 1000 }),
            (Some("bytes=-5000"), Partial { start: 0, end: 1000 }),
            (Some("bytes=999-"), Partial { start: 999, end: 1000 }),
            (Some("bytes=1000-"), Unsatisfiable),
            (Some("bytes=200-100"), Unsatisfiable),
            (Some("bytes=-0"), Unsatisfiable),
            (Some("bytes=abc"), Unsatisfiable),
            (Some("bytes=1-2-3"), Unsatisfiable),
            (Some("bytes=+1-2"), Unsatisfiable),
            (Some("bytes=18446744073709551616-"), Unsatisfiable),
            (Some("bytes=0-1,5-6"), Full),
            (Some("items=0-1"), Full),
        ];
        for (header, expected) in cases {
            assert_eq!(parse(header, size), expected, "{header:?}");
        }
        assert_eq!(parse(Some("bytes=-1"), 0), Unsatisfiable);
    }
}
