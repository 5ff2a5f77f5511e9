//! Exports `gpuwarden:plugin/checker@0.1.0` with `check: func() -> string` instead of
//! `func() -> report`: the agent must refuse it at load, not fail every run.
wit_bindgen::generate!({
    inline: "
        package gpuwarden:plugin@0.1.0;
        interface checker {
            check: func() -> string;
        }
        world health-check {
            export checker;
        }
    ",
    world: "health-check",
});

struct Wrong;

impl exports::gpuwarden::plugin::checker::Guest for Wrong {
    fn check() -> String {
        "healthy".into()
    }
}

export!(Wrong);
