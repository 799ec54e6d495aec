//! The stdio wire of `swarm mcp`, in front of rmcp's transport: every line
//! the client sends is checked before rmcp sees it, so a request that can
//! be identified is always answered.
//!
//! rmcp drops a line it cannot parse without a word, and the client waits
//! forever. Here, as JSON-RPC 2.0 says:
//!
//! | line | answer |
//! |---|---|
//! | not JSON (invalid UTF-8 in a string, a syntax error, nested deeper than the parser goes, e.g. 10,000 levels) | `-32700` parse error |
//! | JSON but not a request (an `id` without a string `method`) | `-32600` invalid request |
//! | over [`MAX_LINE_BYTES`] (16 MiB, rmcp's own cap) | `-32600`, saying the limit |
//! | `tools/call` whose `arguments` is not an object (a string, say) | `-32602` invalid params |
//!
//! The id is recovered from the raw bytes (the top-level `"id"` member,
//! found by a scanner that keeps no stack, so depth costs nothing); when it
//! cannot be found the answer carries `"id": null`, as the spec says. Lines
//! that pass go to rmcp unchanged; rmcp's answers and these errors share
//! one writer, a whole line at a time.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

/// The longest line accepted (rmcp's `DEFAULT_MAX_LINE_LENGTH`).
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// How much of an oversize line is kept to find its id.
const ID_PREFIX_BYTES: usize = 64 * 1024;

/// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

/// The stdio transport of `swarm mcp`: rmcp reads the checked lines from
/// the first stream and writes its answers to the second.
pub(crate) fn stdio() -> (DuplexStream, DuplexStream) {
    wrap(tokio::io::stdin(), tokio::io::stdout())
}

/// [`stdio`] over any pair of streams (tests).
pub(crate) fn wrap<R, W>(input: R, output: W) -> (DuplexStream, DuplexStream)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (to_rmcp, rmcp_in) = tokio::io::duplex(256 * 1024);
    let (rmcp_out, from_rmcp) = tokio::io::duplex(256 * 1024);
    let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(write_lines(output, rx));
    tokio::spawn(forward_answers(from_rmcp, tx.clone()));
    tokio::spawn(check_requests(input, to_rmcp, tx));
    (rmcp_in, rmcp_out)
}

/// One writer: whole lines, in the order they come.
async fn write_lines<W: AsyncWrite + Unpin>(mut out: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(line) = rx.recv().await {
        if out.write_all(&line).await.is_err() || out.flush().await.is_err() {
            return;
        }
    }
}

/// rmcp's answers, line by line, to the writer.
async fn forward_answers(from_rmcp: DuplexStream, tx: mpsc::Sender<Vec<u8>>) {
    let mut lines = BufReader::new(from_rmcp);
    loop {
        let mut line = Vec::new();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A line read with the cap: whole, or too long (its start and length).
enum Line {
    Whole(Vec<u8>),
    TooLong { prefix: Vec<u8>, len: usize },
}

/// Reads one line of at most [`MAX_LINE_BYTES`] (without its newline);
/// `None` at the end of input.
async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Option<Line> {
    let mut line = Vec::new();
    let mut len = 0usize;
    let mut too_long = false;
    loop {
        let buf = match r.fill_buf().await {
            Ok(b) => b,
            Err(_) => return None,
        };
        if buf.is_empty() {
            if len == 0 {
                return None;
            }
            break;
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1),
            None => (buf, buf.len()),
        };
        let ends = done > chunk.len();
        len = len.saturating_add(chunk.len());
        if len > MAX_LINE_BYTES {
            too_long = true;
        }
        let keep = if too_long {
            ID_PREFIX_BYTES.saturating_sub(line.len()).min(chunk.len())
        } else {
            chunk.len()
        };
        line.extend_from_slice(&chunk[..keep]);
        if too_long && line.len() > ID_PREFIX_BYTES {
            line.truncate(ID_PREFIX_BYTES);
        }
        r.consume(done);
        if ends {
            break;
        }
    }
    Some(if too_long {
        Line::TooLong { prefix: line, len }
    } else {
        Line::Whole(line)
    })
}

/// Checks each line: passes it to rmcp, or answers the error itself.
async fn check_requests<R: AsyncRead + Unpin>(
    input: R,
    mut to_rmcp: DuplexStream,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let mut r = BufReader::with_capacity(64 * 1024, input);
    while let Some(line) = read_line(&mut r).await {
        let verdict = match line {
            Line::TooLong { prefix, len } => Err(error_line(
                recover_id(&prefix),
                INVALID_REQUEST,
                &format!(
                    "the message is {len} bytes, over the limit of {MAX_LINE_BYTES} bytes for one line: send less (store large content as a finding and pass its id)"
                ),
            )),
            Line::Whole(line) => check(&line).map(|()| line),
        };
        match verdict {
            Ok(mut line) => {
                line.push(b'\n');
                if to_rmcp.write_all(&line).await.is_err() {
                    return;
                }
            }
            Err(Some(answer)) => {
                if tx.send(answer).await.is_err() {
                    return;
                }
            }
            Err(None) => {}
        }
    }
    // End of input: rmcp sees it and the session ends.
    let _ = to_rmcp.shutdown().await;
}

/// `Ok` to pass the line on; `Err(Some(answer))` to answer it here;
/// `Err(None)` to drop it (a blank line).
fn check(line: &[u8]) -> Result<(), Option<Vec<u8>>> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(None);
    }
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            let why = if e.to_string().contains("recursion limit") {
                "the message is nested too deeply to read".to_owned()
            } else {
                format!("the message is not JSON: {e}")
            };
            return Err(error_line(recover_id(line), PARSE_ERROR, &why));
        }
    };
    let Value::Object(msg) = &value else {
        // Batches and other shapes: rmcp's to judge.
        return Ok(());
    };
    let id = msg.get("id").cloned();
    let is_reply = msg.contains_key("result") || msg.contains_key("error");
    let method = msg.get("method");
    if let Some(id) = &id
        && !is_reply
    {
        match method {
            Some(Value::String(m)) => {
                if m == "tools/call"
                    && let Some(args) = msg.get("params").and_then(|p| p.get("arguments"))
                    && !(args.is_object() || args.is_null())
                {
                    return Err(error_line(
                        Some(id.clone()),
                        INVALID_PARAMS,
                        &format!(
                            "tools/call: `arguments` must be an object, not {}",
                            kind(args)
                        ),
                    ));
                }
            }
            Some(other) => {
                return Err(error_line(
                    Some(id.clone()),
                    INVALID_REQUEST,
                    &format!("`method` must be a string, not {}", kind(other)),
                ));
            }
            None => {
                return Err(error_line(
                    Some(id.clone()),
                    INVALID_REQUEST,
                    "a request needs a `method`",
                ));
            }
        }
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON-RPC error answer, as one line.
fn error_line(id: Option<Value>, code: i64, message: &str) -> Option<Vec<u8>> {
    let answer = json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": {"code": code, "message": message},
    });
    let mut line = serde_json::to_vec(&answer).ok()?;
    line.push(b'\n');
    Some(line)
}

/// The top-level `"id"` of a message that may not parse: a string or a
/// number. Scans once, counting depth, so any nesting is cheap.
pub(crate) fn recover_id(line: &[u8]) -> Option<Value> {
    let n = line.len();
    let mut depth = 0usize;
    let mut expect_key = false;
    let mut i = 0;
    while i < n {
        match line[i] {
            b'"' => {
                let end = string_end(line, i)?;
                if depth == 1 && expect_key {
                    expect_key = false;
                    let mut j = skip_ws(line, end + 1);
                    if line.get(j) == Some(&b':') {
                        j = skip_ws(line, j + 1);
                        if &line[i..=end] == b"\"id\"" {
                            return id_value(line, j);
                        }
                    }
                }
                i = end;
            }
            b'{' => {
                depth += 1;
                expect_key = depth == 1;
            }
            b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the quote closing the string opening at `start`.
fn string_end(line: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < line.len() {
        match line[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn skip_ws(line: &[u8], mut i: usize) -> usize {
    while line.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// A string or number id starting at `i`.
fn id_value(line: &[u8], i: usize) -> Option<Value> {
    match line.get(i)? {
        b'"' => {
            let end = string_end(line, i)?;
            serde_json::from_slice::<String>(&line[i..=end])
                .ok()
                .map(Value::String)
        }
        b'-' | b'0'..=b'9' => {
            let end = line[i..]
                .iter()
                .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                .map_or(line.len(), |p| i + p);
            match serde_json::from_slice::<Value>(&line[i..end]).ok()? {
                v @ Value::Number(_) => Some(v),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_level_id_is_found_in_lines_that_do_not_parse() {
        assert_eq!(
            recover_id(
                b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"x\",\"params\":{\"a\":\"\xff\"}}"
            ),
            Some(json!(7))
        );
        assert_eq!(
            recover_id(br#"{"params":{"id":1},"id":"req-2","method":"#),
            Some(json!("req-2"))
        );
        assert_eq!(recover_id(br#"{"method":"x","params":{"id":3}}"#), None);
        let deep = format!(
            "{{\"id\":9,\"params\":{}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(recover_id(deep.as_bytes()), Some(json!(9)));
        assert_eq!(recover_id(br#"{"a":"\"id\":4","id":5}"#), Some(json!(5)));
    }

    #[test]
    fn each_bad_line_gets_its_code() {
        let code = |line: &[u8]| -> Option<i64> {
            match check(line) {
                Ok(()) => None,
                Err(Some(a)) => {
                    serde_json::from_slice::<Value>(&a).unwrap()["error"]["code"].as_i64()
                }
                Err(None) => Some(0),
            }
        };
        assert_eq!(
            code(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{\"s\":\"\xff\"}}"),
            Some(PARSE_ERROR)
        );
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1}"#), Some(INVALID_REQUEST));
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"swarm_status","arguments":"{}"}}"#),
            Some(INVALID_PARAMS)
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            None
        );
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#), None);
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            None
        );
        assert_eq!(code(b"   "), Some(0));
    }
}
