//! The corpus: every case `prometheus-parse` gets wrong, escapes, special values, timestamps,
//! histograms and summaries, repeated labels and series, family grouping, broken and truncated
//! bodies; and a differential check against `prometheus-parse` on the inputs it handles correctly.

use super::*;
use std::borrow::Cow;

fn one(body: &str) -> Sample<'_> {
    let s = parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    assert_eq!(s.len(), 1, "{body:?}");
    s[0]
}

fn labels(s: &Sample<'_>) -> Vec<(String, String)> {
    s.labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.into_owned()))
        .collect()
}

fn err(body: &str) -> ParseError {
    parse(body.as_bytes()).expect_err(body)
}

#[test]
fn names_with_colons_are_kept() {
    let s = one("job:requests:rate5m{job=\"a\"} 3\n");
    assert_eq!(s.name, "job:requests:rate5m");
    assert_eq!(labels(&s), [("job".into(), "a".into())]);
}

#[test]
fn commas_equals_and_braces_inside_values_are_values() {
    let s = one("x{k=\"v\",path=\"/a,b\",args=\"a=b\",set=\"{a}\"} 1\n");
    assert_eq!(
        labels(&s),
        [
            ("k".into(), "v".into()),
            ("path".into(), "/a,b".into()),
            ("args".into(), "a=b".into()),
            ("set".into(), "{a}".into())
        ]
    );
}

#[test]
fn escapes_are_unescaped_and_plain_values_borrowed() {
    let s = one("x{msg=\"say \\\"hi\\\"\",path=\"C:\\\\dir\",nl=\"a\\nb\",plain=\"p\"} 1\n");
    assert_eq!(s.labels.get("msg").as_deref(), Some("say \"hi\""));
    assert_eq!(s.labels.get("path").as_deref(), Some("C:\\dir"));
    assert_eq!(s.labels.get("nl").as_deref(), Some("a\nb"));
    assert!(matches!(s.labels.get("plain"), Some(Cow::Borrowed("p"))));
    assert_eq!(s.labels.get("absent"), None);
}

#[test]
fn special_values_and_timestamps() {
    let v =
        parse(b"a NaN\nb +Inf\nc -Inf\nd 1e3\ne -0.5 1700000000000\nf 12 -5\ng 0x10\n").map(|_| ());
    assert!(
        v.is_err(),
        "Go's ParseFloat accepts hex, but Prometheus bodies never carry it; we refuse it"
    );
    let s = parse(b"a NaN\nb +Inf\nc -Inf\nd 1e3\ne -0.5 1700000000000\nf 12 -5\n").unwrap();
    assert!(s[0].value.is_nan());
    assert_eq!(s[1].value, f64::INFINITY);
    assert_eq!(s[2].value, f64::NEG_INFINITY);
    assert_eq!(s[3].value, 1000.0);
    assert_eq!(
        (s[4].value, s[4].timestamp_ms),
        (-0.5, Some(1_700_000_000_000))
    );
    assert_eq!(s[5].timestamp_ms, Some(-5));
    assert_eq!(s[0].timestamp_ms, None);
}

#[test]
fn histograms_and_summaries_are_their_sample_lines() {
    let body = "# HELP lat Latency.\n# TYPE lat histogram\nlat_bucket{op=\"r\",le=\"0.1\"} 1\nlat_bucket{op=\"r\",le=\"+Inf\"} 3\nlat_sum{op=\"r\"} 0.5\nlat_count{op=\"r\"} 3\n# TYPE rpc summary\nrpc{quantile=\"0.99\"} 0.2\nrpc_sum 9\nrpc_count 40\n";
    let entries: Vec<Entry<'_>> = Parser::new(body.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        entries[0],
        Entry::Help {
            name: "lat",
            text: "Latency."
        }
    );
    assert_eq!(
        entries[1],
        Entry::Type {
            name: "lat",
            kind: MetricType::Histogram
        }
    );
    let samples = parse(body.as_bytes()).unwrap();
    assert_eq!(samples.len(), 7);
    assert_eq!(samples[1].labels.get("le").as_deref(), Some("+Inf"));
    assert_eq!(samples[4].labels.get("quantile").as_deref(), Some("0.99"));
}

#[test]
fn a_label_name_repeated_in_one_sample_is_refused_where_it_repeats() {
    // The issue's body: before, the first value won silently.
    let e = err("m{gpu=\"0\",gpu=\"1\"} 99\n");
    assert_eq!((e.line, e.column), (1, 11), "{e}"); // the second `gpu`
    assert!(e.message.contains("label name repeated"), "{e}");
    // Past the small-set path too.
    let many: String = (0..40).map(|i| format!("l{i}=\"v\",")).collect();
    let e = err(&format!("m{{{many}l7=\"w\"}} 1\n"));
    assert!(e.message.contains("label name repeated"), "{e}");
    // Different names, same values: fine.
    assert_eq!(labels(&one("m{a=\"1\",b=\"1\"} 1\n")).len(), 2);
}

/// The parser compares a line's metric and label names with the previous line's first (a
/// family's lines repeat them): a name that starts like the previous one is still read whole.
#[test]
fn names_that_extend_the_previous_lines_names_are_read_whole() {
    let body =
        "m 1\nm_total 2\nmm{a=\"1\"} 3\nmm{ab=\"1\"} 4\nmm{a=\"1\",b=\"2\"} 5\nmm{b=\"2\"} 6\n";
    let got: Vec<(String, Vec<(String, String)>)> = parse(body.as_bytes())
        .unwrap()
        .iter()
        .map(|s| (s.name.to_string(), labels(s)))
        .collect();
    let l = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        got,
        vec![
            ("m".to_string(), l(&[])),
            ("m_total".to_string(), l(&[])),
            ("mm".to_string(), l(&[("a", "1")])),
            ("mm".to_string(), l(&[("ab", "1")])),
            ("mm".to_string(), l(&[("a", "1"), ("b", "2")])),
            ("mm".to_string(), l(&[("b", "2")])),
        ]
    );
    // A bad byte right after a repeated name is still an error at its column.
    let e = err("mm{a=\"1\"} 1\nmm{a-=\"1\"} 2\n");
    assert_eq!((e.line, e.column), (2, 5), "{e}");
}

#[test]
fn a_series_repeated_in_one_body_is_refused_whatever_its_label_order() {
    for body in [
        "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",
        "x{a = \"1\",b=\"2\"} 1\nx{b=\"2\", a=\"1\"} 1\n",
        "x{a=\"1\",b=\"2\"} 1\nx{b =\"2\",a= \"1\"} 1\n",
        "x{a=\"1\",b=\"2\"} 1\nx{b=\"2\",a=\"1\"} 1\n",
        "x 1\nx{} 2\n",
        "x{a=\"q\\\"\"} 1\nx{ a = \"q\\\"\" , } 2\n",
        // The same series in two groups: `x_sum` is a family of its own until the TYPE
        // line makes it the summary `x`'s.
        "x_sum{a=\"1\"} 1\n# TYPE x summary\nx_sum{a=\"1\"} 2\n",
        "x_count 1\ny 1\n# TYPE x histogram\nx_count 2\n",
    ] {
        let e = err(body);
        assert_eq!(e.line, body.lines().count(), "{body:?}: {e}");
        assert!(e.message.contains("series repeated"), "{body:?}: {e}");
    }
    // Same labels, other value; same name, other labels: distinct series.
    assert_eq!(
        parse(b"x{a=\"1\"} 1\nx{a=\"2\"} 1\nx{a=\"1\",b=\"\"} 1\nx{b=\"1\"} 1\n")
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn families_are_one_group_with_one_help_and_one_type_before_their_samples() {
    let cases: &[(&str, usize, &str)] = &[
        ("a 1\nb 1\na{x=\"1\"} 1\n", 3, "not grouped"),
        (
            "# TYPE a gauge\na 1\n# TYPE b gauge\n# HELP a late\n",
            4,
            "not grouped",
        ),
        ("# HELP a x\n# HELP a y\na 1\n", 2, "second HELP"),
        ("# TYPE a gauge\n# TYPE a counter\n", 2, "second TYPE"),
        (
            "a 1\n# TYPE a gauge\n",
            2,
            "after the metric's first sample",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
            2,
            "numeric le",
        ),
        ("# TYPE h histogram\nh_bucket 1\n", 2, "numeric le"),
        ("# TYPE s summary\ns 1\n", 2, "numeric quantile"),
        (
            "# TYPE h histogram\nh_sum 1\nother 1\nh_count 1\n",
            4,
            "not grouped",
        ),
        ("# HELP a bad \\t escape\n", 1, "invalid escape in HELP"),
    ];
    for (body, line, what) in cases {
        let e = err(body);
        assert_eq!(e.line, *line, "{body:?}: {e}");
        assert!(e.message.contains(what), "{body:?}: {e}");
    }
    // A histogram's and a summary's suffixed series are one family with their base.
    let ok = "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n\
# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n# HELP c C \\\\ \\n.\nc_total 1\nc_sum 2\n";
    assert_eq!(parse(ok.as_bytes()).unwrap().len(), 9);
    // A TYPE line changes what the next line's name belongs to (the parser remembers the
    // last name's family between lines, and must forget it there): `x_sum` is first a
    // family of its own, then the summary `x`'s sum.
    let retyped = "x_sum 1\n# TYPE x summary\nx_sum{a=\"1\"} 2\n";
    assert_eq!(parse(retyped.as_bytes()).unwrap().len(), 2);
}

#[test]
fn blanks_trailing_commas_empty_sets_and_comments() {
    let s = parse(b"\n# just a comment\nx { a = \"1\" , b=\"2\", } 7 \ny{} 8\n  z\t9\n").unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(
        labels(&s[0]),
        [("a".into(), "1".into()), ("b".into(), "2".into())]
    );
    assert!(s[1].labels.is_empty());
    assert_eq!(s[2].value, 9.0);
}

#[test]
fn broken_lines_are_errors_with_their_position_never_skipped() {
    let cases: &[(&str, usize, &str)] = &[
        ("x{a=\"1\"} 1\ngarbage{ 1\ny 2\n", 2, "label name"),
        ("x{a=1} 1\n", 1, "'\"'"),
        ("x{a=\"1} 1\n", 1, "unterminated"),
        ("x{a=\"1\" b=\"2\"} 1\n", 1, "',' or '}'"),
        ("x{a=\"\\t\"} 1\n", 1, "invalid escape"),
        ("x\n", 1, "missing value"),
        ("x abc\n", 1, "not a number"),
        ("x 1 12.5\n", 1, "timestamp"),
        ("x 1 2 3\n", 1, "after the timestamp"),
        ("9x 1\n", 1, "metric name"),
        ("x{9=\"1\"} 1\n", 1, "label name"),
        ("# TYPE x gauges\n", 1, "unknown metric type"),
        ("# TYPE 9 gauge\n", 1, "metric name"),
        ("x 1\r\n", 1, "not a number"),
    ];
    for (body, line, what) in cases {
        let e = err(body);
        assert_eq!(e.line, *line, "{body:?}: {e}");
        assert!(e.message.contains(what), "{body:?}: {e}");
    }
    assert_eq!(err("x{a=\"1\"} 1\ngarbage{ 1\n").column, 10);
}

#[test]
fn truncated_bodies_are_reported() {
    let e = err("x 1\ny 2");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("truncated"), "{e}");
    let e = err("x{a=\"1\",b=\"");
    assert!(e.message.contains("truncated"), "{e}");
    assert!(parse(b"").unwrap().is_empty());
}

#[test]
fn non_utf8_is_an_error_where_it_appears() {
    let e = parse(b"x{a=\"\xff\"} 1\n").expect_err("non-UTF-8");
    assert!(e.message.contains("UTF-8"), "{e}");
    let e = parse(b"x 1\n# HELP x \xfe\n").expect_err("non-UTF-8 help");
    assert_eq!(e.line, 2);
}

/// A realistic body in the agent's shape: 8 GPUs, node labels, counters with extra labels.
pub(crate) fn gpu_body(gpus: usize) -> String {
    let mut s = String::new();
    for (fam, kind) in [
        ("gpuwarden_gpu_temperature_celsius", "gauge"),
        ("gpuwarden_gpu_power_watts", "gauge"),
        ("gpuwarden_gpu_ecc_errors_total", "counter"),
    ] {
        s.push_str(&format!(
            "# HELP {fam} Help for {fam}.\n# TYPE {fam} {kind}\n"
        ));
        for g in 0..gpus {
            let base = format!("gpu=\"{g}\",uuid=\"GPU-5a3bb63d-4b7f-28db-76c0-6a42272ad0f{g}\",model=\"NVIDIA H100 80GB HBM3\",cluster=\"c1\",rack=\"r{g}\"");
            if kind == "counter" {
                s.push_str(&format!(
                    "{fam}{{{base},type=\"corrected\",counter=\"volatile\"}} {}\n",
                    g * 3
                ));
            } else {
                s.push_str(&format!("{fam}{{{base}}} {}.25\n", 40 + g));
            }
        }
    }
    s
}

#[test]
fn agrees_with_prometheus_parse_where_that_parser_is_correct() {
    let body = gpu_body(8);
    let ours = parse(body.as_bytes()).unwrap();
    let theirs = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    assert_eq!(ours.len(), theirs.samples.len());
    for (a, b) in ours.iter().zip(&theirs.samples) {
        assert_eq!(a.name, b.metric);
        let v = match b.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("unexpected {:?}", b.value),
        };
        assert_eq!(a.value, v);
        let mut ours_l = labels(a);
        ours_l.sort();
        let mut theirs_l: Vec<(String, String)> = b
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        theirs_l.sort();
        assert_eq!(ours_l, theirs_l);
    }
}

/// Deterministic mutation testing (a bounded stand-in until `cargo fuzz` runs in CI): random
/// byte edits of valid bodies must never panic, and whatever parses must re-read consistently.
#[test]
fn mutated_bodies_never_panic() {
    let seed_body = gpu_body(2)
        + "a:b{x=\"q\\\"\\\\\\n\",}\t+Inf 17\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n";
    let bytes = seed_body.as_bytes();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"{}\",=\\ \t\n#:_aZ09.+-eINfna\xff\r";
    for _ in 0..20_000 {
        let mut b = bytes.to_vec();
        for _ in 0..(1 + rand() % 4) {
            let at = (rand() as usize) % b.len();
            match rand() % 3 {
                0 => b[at] = alphabet[(rand() as usize) % alphabet.len()],
                1 => {
                    b.remove(at);
                }
                _ => b.insert(at, alphabet[(rand() as usize) % alphabet.len()]),
            }
        }
        if let Ok(samples) = parse(&b) {
            for s in samples {
                for (k, v) in s.labels.iter() {
                    assert!(
                        !k.is_empty(),
                        "empty label name parsed from {:?}",
                        String::from_utf8_lossy(&b)
                    );
                    let _ = v;
                }
            }
        }
    }
}

#[test]
fn a_label_read_through_the_parsers_index_equals_one_read_from_the_text() {
    let nine: String = (0..9).map(|i| format!("l{i}=\"v{i}\",")).collect();
    for body in [
        "m{gpu=\"0\",uuid=\"GPU-1\",model=\"H100\",link=\"17\",type=\"crc_data\"} 1\n".to_string(),
        "m{ a = \"x,y=\\\"}\" , b=\"\\\\n\\n\" ,} 1\n".to_string(),
        "m{} 1\n".to_string(),
        format!("m{{{nine}}} 1\n"),
    ] {
        let s = one(&body);
        let text = Labels::new(s.labels.raw(), None);
        assert_eq!(s.labels, text);
        let all = labels(&s);
        assert!(!all.is_empty() || body.starts_with("m{}"), "{body}");
        for (name, value) in &all {
            assert_eq!(
                s.labels.get(name).as_deref(),
                Some(value.as_str()),
                "{body}: {name}"
            );
            assert_eq!(
                text.get(name).as_deref(),
                Some(value.as_str()),
                "{body}: {name}"
            );
        }
        for absent in ["", "gp", "gpu0", "zz", "v0"] {
            assert_eq!(s.labels.get(absent), None, "{body}: {absent}");
        }
    }
}
