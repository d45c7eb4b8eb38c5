//! Wall-time durations as people write them on a command line or in a config: a number and a
//! unit, repeated (`90s`, `45m`, `2h`, `1h30m`, `1.5h`). Used by `--time-budget` and by the
//! experiment configs' budgets.

use std::time::Duration;

/// `90s`, `45m`, `2h`, `1h30m`, `1.5h` -> a duration; the error says what is wrong with `s`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let mut total = 0.0f64;
    let mut number = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => {
                return Err(format!(
                    "`{s}`: unknown unit `{c}` (use h, m or s, e.g. 1h30m)"
                ));
            }
        };
        let v: f64 = number
            .parse()
            .map_err(|_| format!("`{s}`: expected a number before `{c}`"))?;
        total += v * unit;
        number.clear();
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(format!("`{s}`: give a unit, e.g. 90s, 45m, 2h or 1h30m"));
    }
    if !(total > 0.0 && total.is_finite()) {
        return Err(format!("`{s}`: must be positive"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// `d` in the shortest of those forms that is exact to the second (`1h30m`, `45m`, `90s`).
pub fn format(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_without() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse("10").is_err());
        assert!(parse("2d").is_err());
        assert!(parse("0s").is_err());
    }

    #[test]
    fn formatted_durations_parse_back() {
        for secs in [1u64, 59, 60, 61, 3599, 3600, 5400, 7322] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
    }
}
