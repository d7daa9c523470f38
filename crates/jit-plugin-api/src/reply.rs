//! Results across the boundary: a status code ([`STATUS_OK`], [`STATUS_ERROR`],
//! [`STATUS_PANIC`]) with JSON bytes, turned into `Result<Value, PluginError>` and back, the
//! same way on both sides.

use serde_json::Value;

use crate::abi::{OutputSink, STATUS_ERROR, STATUS_OK, STATUS_PANIC, write_output};
use crate::error::PluginError;

/// Turns a status code and the bytes a sink collected into a result.
pub fn decode_reply(status: u32, bytes: &[u8]) -> Result<Value, PluginError> {
    match status {
        STATUS_OK => serde_json::from_slice(bytes).map_err(|error| {
            PluginError::new(
                PluginError::PROTOCOL,
                format!("result is not valid JSON: {error}"),
            )
        }),
        STATUS_ERROR | STATUS_PANIC => Err(PluginError::from_wire(bytes)),
        other => Err(PluginError::new(
            PluginError::PROTOCOL,
            format!("unknown status code {other} from across the plugin boundary"),
        )),
    }
}

/// Turns a caught panic's payload into a message.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// The status code and bytes that answer `result` across the boundary: the inverse of
/// [`decode_reply`]. A value that cannot be serialised becomes a
/// [`PROTOCOL`](PluginError::PROTOCOL) error.
pub fn encode_reply(result: Result<Value, PluginError>) -> (u32, Vec<u8>) {
    match result {
        Ok(value) => match serde_json::to_vec(&value) {
            Ok(bytes) => (STATUS_OK, bytes),
            Err(error) => (
                STATUS_ERROR,
                PluginError::new(
                    PluginError::PROTOCOL,
                    format!("result not serialisable: {error}"),
                )
                .to_wire(),
            ),
        },
        Err(error) => (STATUS_ERROR, error.to_wire()),
    }
}

/// Writes `result` to `out` and returns the matching status code.
///
/// # Safety
/// `out` must be null or a live [`OutputSink`].
pub(crate) unsafe fn write_reply(
    out: *const OutputSink,
    result: Result<Value, PluginError>,
) -> u32 {
    let (status, bytes) = encode_reply(result);
    // SAFETY: the caller guarantees `out` is null or a live sink, all `write_output` needs.
    unsafe { write_output(out, &bytes) };
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reply_distinguishes_statuses() {
        assert_eq!(decode_reply(STATUS_OK, b"{\"a\":1}").unwrap()["a"], 1);
        let error = decode_reply(STATUS_ERROR, &PluginError::rejected("no").to_wire()).unwrap_err();
        assert_eq!(error, PluginError::rejected("no"));
        let garbled = decode_reply(STATUS_ERROR, b"not json").unwrap_err();
        assert_eq!(garbled.code, PluginError::PROTOCOL);
        assert!(garbled.message.contains("not json"));
        let (status, bytes) = encode_reply(Ok(serde_json::json!({"a": 1})));
        assert_eq!(decode_reply(status, &bytes).unwrap()["a"], 1);
        let (status, bytes) = encode_reply(Err(PluginError::rejected("no")));
        assert_eq!(
            decode_reply(status, &bytes).unwrap_err(),
            PluginError::rejected("no")
        );
        let unknown = decode_reply(7, b"").unwrap_err();
        assert!(unknown.message.contains("unknown status code 7"));
    }
}
