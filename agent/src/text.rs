//! A small writer for the Prometheus text exposition format (version 0.0.4).
//!
//! Families are declared with [`Text::family`]; the `# HELP` / `# TYPE` header is written
//! when the family's first sample is, so a family with no samples leaves no trace. Label
//! values are escaped (`\\`, `\"`, `\n`); values print `NaN`, `+Inf`, `-Inf` as the format
//! wants. Label sets are pre-rendered strings so a GPU's labels are escaped once per
//! collection, not once per sample.

use std::fmt::Write;

/// Metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up.
    Counter,
}

/// The writer.
#[derive(Debug, Default)]
pub struct Text {
    out: String,
    pending: Option<(&'static str, &'static str, Kind)>,
}

impl Text {
    /// A writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Text {
            out: String::with_capacity(capacity),
            pending: None,
        }
    }

    /// Starts a family; its header is written with its first sample.
    pub fn family(&mut self, name: &'static str, help: &'static str, kind: Kind) {
        self.pending = Some((name, help, kind));
    }

    fn header(&mut self) {
        if let Some((name, help, kind)) = self.pending.take() {
            let t = match kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            // Writing to a String cannot fail.
            let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {t}\n");
        }
    }

    /// Writes `name{labels,extra} value`. `labels` is a pre-rendered label list (see
    /// [`push_label`]) or empty; `extra` is one more pre-rendered label list or empty.
    pub fn sample(&mut self, name: &str, labels: &str, extra: &str, value: f64) {
        self.header();
        self.out.push_str(name);
        if !labels.is_empty() || !extra.is_empty() {
            self.out.push('{');
            self.out.push_str(labels);
            if !labels.is_empty() && !extra.is_empty() {
                self.out.push(',');
            }
            self.out.push_str(extra);
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Appends `name="value"` (with a leading comma when `out` is not empty), escaping the value.
pub fn push_label(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A label list built from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (k, v) in pairs {
        push_label(&mut s, k, v);
    }
    s
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_comes_once_with_the_first_sample_and_empty_families_vanish() {
        let mut t = Text::default();
        t.family("a_total", "A things.", Kind::Counter);
        t.family("b", "B.", Kind::Gauge);
        t.sample("b", "x=\"1\"", "", 1.0);
        t.sample("b", "x=\"2\"", "y=\"3\"", 2.5);
        assert_eq!(
            t.finish(),
            "# HELP b B.\n# TYPE b gauge\nb{x=\"1\"} 1\nb{x=\"2\",y=\"3\"} 2.5\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&[("a", "q\"b\\s\nn"), ("c", "ok")]),
            r#"a="q\"b\\s\nn",c="ok""#
        );
    }

    #[test]
    fn special_values_use_the_exposition_spelling() {
        let mut s = String::new();
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            3.0,
            -2.0,
            0.25,
            1e20,
            1.5e-9,
        ] {
            push_value(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "NaN +Inf -Inf 3 -2 0.25 1e20 1.5e-9 ");
    }
}
