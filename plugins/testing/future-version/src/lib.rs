//! Built against `gpuwarden:plugin@0.2.0`, which no agent provides yet: the agent must refuse
//! it and say which version it provides.
wit_bindgen::generate!({
    inline: "
        package gpuwarden:plugin@0.2.0;
        interface checker {
            record report { healthy: bool, message: string }
            check: func() -> report;
        }
        world health-check {
            export checker;
        }
    ",
    world: "health-check",
});

struct Future;

impl exports::gpuwarden::plugin::checker::Guest for Future {
    fn check() -> exports::gpuwarden::plugin::checker::Report {
        exports::gpuwarden::plugin::checker::Report {
            healthy: true,
            message: "from the future".into(),
        }
    }
}

export!(Future);
