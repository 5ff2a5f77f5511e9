//! Exports `gpuwarden:plugin/diagnostics@0.1.0` whose `run` returns a report without its
//! `metrics` field: the agent must compare the whole shape at load and refuse it.
wit_bindgen::generate!({
    inline: "
        package gpuwarden:plugin@0.1.0;
        interface diagnostics {
            enum status { healthy, degraded, unhealthy, unknown }
            record report { status: status, message: string }
            run: func(params: list<tuple<string, string>>) -> report;
        }
        world diagnostic {
            export diagnostics;
        }
    ",
    world: "diagnostic",
});

use exports::gpuwarden::plugin::diagnostics::{Guest, Report, Status};

struct Wrong;

impl Guest for Wrong {
    fn run(_: Vec<(String, String)>) -> Report {
        Report {
            status: Status::Healthy,
            message: "no metrics field".into(),
        }
    }
}

export!(Wrong);
