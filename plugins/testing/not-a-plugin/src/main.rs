//! A plain WASI command: the agent must refuse it as "not a gpuwarden plugin".
fn main() {
    println!("hello from a command, not a plugin");
}
