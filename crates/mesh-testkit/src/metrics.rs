//! The bootstrap server's `/metrics` text (Prometheus/OpenMetrics exposition), parsed into
//! typed samples.
//!
//! A series is named as it is written in the text: `name` or `name{label="value",...}`;
//! labels match in any order. A family the text declares (`# TYPE`) but for which no sample
//! exists yet (a labelled counter never incremented) reads as 0; a series of a family the
//! text does not declare is a mistake in the test and panics, listing what there is.

use std::fmt;
use std::str::FromStr;

/// One sample line: `name{label="value",...} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name, e.g. `bootstrap_frames_in_total`.
    pub name: String,
    /// The labels in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// A `/metrics` text that did not parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A line is not a comment and not a well-formed sample.
    #[error("line {line} of the metrics text is not a sample ({why}): {text:?}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        why: &'static str,
        /// The line.
        text: String,
    },
}

/// A parsed `/metrics` text: its samples and its declared families.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    samples: Vec<Sample>,
    /// Names from the `# TYPE` lines.
    families: Vec<String>,
    text: String,
}

impl Metrics {
    /// Parses exposition text: `# TYPE` lines declare families, other `#` lines and blank
    /// lines are skipped, every other line must be a sample.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut samples = Vec::new();
        let mut families = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                if words.next() == Some("TYPE")
                    && let Some(name) = words.next()
                {
                    families.push(name.to_owned());
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let sample = parse_sample(line).map_err(|why| Error::Line {
                line: i + 1,
                why,
                text: line.to_owned(),
            })?;
            samples.push(sample);
        }
        Ok(Self {
            samples,
            families,
            text: text.to_owned(),
        })
    }

    /// The value of `series` (`name` or `name{label="value"}`), if the text has that sample.
    ///
    /// # Panics
    ///
    /// If `series` itself is malformed.
    pub fn get(&self, series: &str) -> Option<f64> {
        let wanted =
            parse_series(series).unwrap_or_else(|why| panic!("malformed series {series:?}: {why}"));
        self.samples
            .iter()
            .find(|s| s.name == wanted.name && same_labels(&s.labels, &wanted.labels))
            .map(|s| s.value)
    }

    /// The value of `series`; 0 if its family is declared but has no such sample yet.
    ///
    /// # Panics
    ///
    /// If the text declares no family for `series` (a misspelt name), with the text.
    pub fn value(&self, series: &str) -> f64 {
        if let Some(value) = self.get(series) {
            return value;
        }
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            self.declares(name),
            "no family declares {series} in /metrics:\n{}",
            self.text
        );
        0.0
    }

    /// The value of a counter or a count-like gauge `series`, as a whole number (see
    /// [`Metrics::value`] for a missing sample).
    ///
    /// # Panics
    ///
    /// As [`Metrics::value`], and if the value is not a whole number ≥ 0.
    pub fn count(&self, series: &str) -> u64 {
        let value = self.value(series);
        assert!(
            value >= 0.0 && value.fract() == 0.0 && value < u64::MAX as f64,
            "{series} is {value}, not a count"
        );
        value as u64
    }

    /// Every sample, in the text's order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The text as scraped (for failure messages).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether a `# TYPE` line declares the family of the sample `name`: the name itself,
    /// or it without an OpenMetrics suffix (`_total`, `_bucket`, `_sum`, `_count`, ...).
    fn declares(&self, name: &str) -> bool {
        const SUFFIXES: [&str; 6] = ["_total", "_created", "_bucket", "_sum", "_count", "_info"];
        self.families.iter().any(|family| {
            family == name
                || SUFFIXES
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(family))
        })
    }
}

impl FromStr for Metrics {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text)
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A series as a test names it: a name and labels.
struct Series {
    name: String,
    labels: Vec<(String, String)>,
}

/// `name{labels} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let (series, rest) = match line.find('{') {
        Some(_) => {
            let close = closing_brace(line).ok_or("unclosed label set")?;
            line.split_at(close + 1)
        }
        None => line.split_at(line.find(char::is_whitespace).ok_or("no value")?),
    };
    let Series { name, labels } = parse_series(series)?;
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = value.parse().map_err(|_| "the value is not a number")?;
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// `name` or `name{a="x",b="y"}`.
fn parse_series(series: &str) -> Result<Series, &'static str> {
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => {
            let body = rest
                .strip_suffix('}')
                .ok_or("the label set does not end with }")?;
            (name, parse_labels(body)?)
        }
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    if name.is_empty() || !name.chars().all(valid) {
        return Err("not a metric name");
    }
    Ok(Series {
        name: name.to_owned(),
        labels,
    })
}

/// `a="x",b="y"` (a trailing comma allowed), with `\\`, `\"` and `\n` unescaped.
fn parse_labels(mut body: &str) -> Result<Vec<(String, String)>, &'static str> {
    let mut labels = Vec::new();
    loop {
        body = body.trim_start();
        if body.is_empty() {
            return Ok(labels);
        }
        let (key, rest) = body.split_once('=').ok_or("a label without =")?;
        let mut chars = rest
            .strip_prefix('"')
            .ok_or("an unquoted label value")?
            .chars();
        let mut value = String::new();
        loop {
            match chars.next().ok_or("an unterminated label value")? {
                '"' => break,
                '\\' => match chars.next().ok_or("an unterminated label value")? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        labels.push((key.trim().to_owned(), value));
        let rest = chars.as_str().trim_start();
        body = match rest.strip_prefix(',') {
            Some(next) => next,
            None if rest.is_empty() => rest,
            None => return Err("labels not separated by commas"),
        };
    }
}

/// The index of the `}` closing the label set (outside quoted values).
fn closing_brace(line: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn same_labels(a: &[(String, String)], b: &[(String, String)]) -> bool {
    a.len() == b.len() && a.iter().all(|label| b.contains(label))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP bootstrap_connections Open connections.
# TYPE bootstrap_connections gauge
bootstrap_connections 3
# TYPE bootstrap_frames_in counter
bootstrap_frames_in_total{kind="unicast"} 3
bootstrap_frames_in_total{kind="broadcast"} 1
# TYPE bootstrap_errors counter
# TYPE bootstrap_unicast_latency_seconds histogram
bootstrap_unicast_latency_seconds_sum 0.5
bootstrap_unicast_latency_seconds_count 2
bootstrap_unicast_latency_seconds_bucket{le="+Inf"} 2
odd{b="x,}y",a="say \"hi\"\n"} 1.5 1700000000
# EOF
"#;

    fn metrics() -> Metrics {
        TEXT.parse().expect("valid text")
    }

    #[test]
    fn samples_are_found_by_name_and_labels_in_any_order() {
        let m = metrics();
        assert_eq!(m.get("bootstrap_connections"), Some(3.0));
        assert_eq!(
            m.get(r#"bootstrap_frames_in_total{kind="broadcast"}"#),
            Some(1.0)
        );
        assert_eq!(
            m.get(r#"bootstrap_unicast_latency_seconds_bucket{le="+Inf"}"#),
            Some(2.0)
        );
        assert_eq!(m.get(r#"odd{a="say \"hi\"\n",b="x,}y"}"#), Some(1.5));
        assert_eq!(
            m.get("bootstrap_frames_in_total"),
            None,
            "labels must match"
        );
        assert_eq!(m.samples().len(), 7);
    }

    #[test]
    fn a_declared_family_without_the_sample_reads_as_zero() {
        let m = metrics();
        assert_eq!(m.count(r#"bootstrap_errors_total{code="unknown_peer"}"#), 0);
        assert_eq!(m.count(r#"bootstrap_frames_in_total{kind="transfer"}"#), 0);
        assert_eq!(m.count("bootstrap_unicast_latency_seconds_count"), 2);
        assert_eq!(m.value("bootstrap_unicast_latency_seconds_sum"), 0.5);
    }

    #[test]
    #[should_panic(expected = "no family declares bootstrap_conections")]
    fn an_undeclared_family_is_a_mistake() {
        metrics().value("bootstrap_conections");
    }

    #[test]
    #[should_panic(expected = "is 0.5, not a count")]
    fn a_fraction_is_not_a_count() {
        metrics().count("bootstrap_unicast_latency_seconds_sum");
    }

    #[test]
    fn malformed_lines_are_typed_errors_with_their_line() {
        for (text, why) in [
            ("a{b=\"c\" 1", "unclosed label set"),
            ("a", "no value"),
            ("a x", "the value is not a number"),
            ("a{b=c} 1", "an unquoted label value"),
            ("a{b=\"c\" d=\"e\"} 1", "labels not separated by commas"),
            ("a-b 1", "not a metric name"),
        ] {
            let text = format!("# TYPE a counter\n{text}\n");
            match Metrics::parse(&text) {
                Err(Error::Line { line, why: got, .. }) => {
                    assert_eq!((line, got), (2, why), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
