//! Kubernetes quantities (`resource.Quantity`) as plain numbers, both ways. Metric targets and
//! values are quantities in the API; the autoscaler works on `f64`.
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Parses a quantity (`"250m"`, `"1.5"`, `"2k"`, `"128Mi"`, `"1e3"`) into a number. `None` for
/// anything that is not a quantity; never panics.
pub fn parse(q: &Quantity) -> Option<f64> {
    parse_str(&q.0)
}

/// [`parse`] on a string.
pub fn parse_str(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    // The number: optional sign, digits with at most one '.', at least one digit.
    let bytes = s.as_bytes();
    let mut end = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        end = 1;
    }
    let mut digits = 0;
    let mut dots = 0;
    while let Some(&b) = bytes.get(end) {
        if b.is_ascii_digit() {
            digits += 1;
        } else if b == b'.' {
            dots += 1;
        } else {
            break;
        }
        end += 1;
    }
    if digits == 0 || dots > 1 {
        return None;
    }
    let number: f64 = s.get(..end)?.parse().ok()?;
    let suffix = s.get(end..)?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "Pi" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "Ei" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        exp => {
            let rest = exp.strip_prefix('e').or_else(|| exp.strip_prefix('E'))?;
            let body = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let e: i32 = rest.parse().ok()?;
            10f64.powi(e)
        }
    };
    let value = number * multiplier;
    value.is_finite().then_some(value)
}

/// Formats a number as a quantity, to the milli-unit (as the HPA reports metric values):
/// `42`, `1500m`, `-3`. Non-finite numbers become `0`.
pub fn format(value: f64) -> Quantity {
    if !value.is_finite() {
        return Quantity("0".to_string());
    }
    let milli = (value * 1000.0).round();
    // Saturating casts: values beyond ±9.2e15 units are not meaningful metric values anyway.
    let milli = milli as i64;
    if milli % 1000 == 0 {
        Quantity(format!("{}", milli / 1000))
    } else {
        Quantity(format!("{milli}m"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Option<f64> {
        parse_str(s)
    }

    #[test]
    fn parses_the_suffixes() {
        assert_eq!(q("5000"), Some(5000.0));
        assert_eq!(q("250m"), Some(0.25));
        assert_eq!(q("1.5"), Some(1.5));
        assert_eq!(q("2k"), Some(2000.0));
        assert_eq!(q("128Mi"), Some(128.0 * 1024.0 * 1024.0));
        assert_eq!(q("1e3"), Some(1000.0));
        assert_eq!(q("1E-3"), Some(0.001));
        assert_eq!(q("+3"), Some(3.0));
        assert_eq!(q("-2"), Some(-2.0));
        assert_eq!(q(".5"), Some(0.5));
        assert_eq!(q(" 7 "), Some(7.0));
    }

    #[test]
    fn rejects_what_is_not_a_quantity() {
        for bad in [
            "", "m", "abc", "1.2.3", "5x", "1e", "1e+", "--1", "NaN", "inf", "1Kb", "1e400",
        ] {
            assert_eq!(q(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_to_the_milli_unit() {
        assert_eq!(format(42.0).0, "42");
        assert_eq!(format(1.5).0, "1500m");
        assert_eq!(format(0.0004).0, "0");
        assert_eq!(format(-3.0).0, "-3");
        assert_eq!(format(f64::NAN).0, "0");
        assert_eq!(parse(&format(12.345)), Some(12.345));
    }
}
