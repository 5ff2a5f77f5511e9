//! The functions policies may call besides CEL's own: `xid_severity(code[, message])` and
//! `xid_action(code[, message])`, both read from the one XID table
//! (`gpuwarden_wire::xid::classify`, after NVIDIA's XID catalog).

use cel::Context;

/// The XID an expression names, with the driver's message when it passes one:
/// `xid_severity(code)` or `xid_severity(code, message)`.
fn xid_args(name: &str, args: &[cel::Value]) -> Result<(u32, Option<String>), cel::ExecutionError> {
    let code = match args.first() {
        Some(cel::Value::Int(c)) => u32::try_from(*c).unwrap_or(u32::MAX),
        Some(cel::Value::UInt(c)) => u32::try_from(*c).unwrap_or(u32::MAX),
        _ => {
            return Err(cel::ExecutionError::function_error(
                name,
                "takes an XID code (int) and, optionally, the event's message (string)",
            ))
        }
    };
    match args.get(1..) {
        Some([]) | None => Ok((code, None)),
        Some([cel::Value::String(m)]) => Ok((code, Some(m.to_string()))),
        Some(_) => Err(cel::ExecutionError::function_error(
            name,
            "takes an XID code (int) and, optionally, the event's message (string)",
        )),
    }
}

fn register_functions(ctx: &mut Context<'_, '_>) {
    use cel::extractors::Arguments;
    // Both read `gpuwarden_wire::xid::classify`, the classification the agent uses: with the
    // message, XIDs decided by their text (NVLink5 144–150, 154) are read as the agent reads them.
    let _ = ctx.add_function(
        "xid_severity",
        |Arguments(args): Arguments| -> Result<cel::Value, cel::ExecutionError> {
            let (code, message) = xid_args("xid_severity", &args)?;
            let v = gpuwarden_wire::xid::classify(code, message.as_deref()).0;
            Ok(cel::Value::String(std::sync::Arc::new(
                v.as_str().to_string(),
            )))
        },
    );
    let _ = ctx.add_function(
        "xid_action",
        |Arguments(args): Arguments| -> Result<cel::Value, cel::ExecutionError> {
            let (code, message) = xid_args("xid_action", &args)?;
            let v = gpuwarden_wire::xid::classify(code, message.as_deref()).1;
            Ok(cel::Value::String(std::sync::Arc::new(
                v.as_str().to_string(),
            )))
        },
    );
}

/// A fresh context with the policy functions.
pub(crate) fn base_context() -> Context<'static, 'static> {
    let mut ctx = Context::default();
    register_functions(&mut ctx);
    ctx
}
