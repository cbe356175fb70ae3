//! Where each field of a JSON object, or item of an array, lies in the text it was read from:
//! rescued values and bad records keep what was written (serde_json keeps no number's text).

use std::ops::Range;

/// One member of a JSON object (with its key) or array (without), as byte ranges of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key as written, quotes and escapes included.
    pub key: Option<Range<usize>>,
    /// The value as written.
    pub value: Range<usize>,
}

/// The members of `text`, one JSON object or array (whitespace around it allowed), in the
/// order written; `None` when `text` is not one. Meant for text serde_json has read already:
/// it follows the structure (strings, brackets, commas) without checking every token.
pub fn members(text: &str) -> Option<Vec<Member>> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    let (object, close) = match *b.get(i)? {
        b'{' => (true, b'}'),
        b'[' => (false, b']'),
        _ => return None,
    };
    let mut out = Vec::new();
    i = skip_ws(b, i + 1);
    if *b.get(i)? == close {
        return (skip_ws(b, i + 1) == b.len()).then_some(out);
    }
    loop {
        i = skip_ws(b, i);
        let key = if object {
            if *b.get(i)? != b'"' {
                return None;
            }
            let end = skip_string(b, i)?;
            let key = i..end;
            i = skip_ws(b, end);
            if *b.get(i)? != b':' {
                return None;
            }
            i = skip_ws(b, i + 1);
            Some(key)
        } else {
            None
        };
        let end = skip_value(b, i)?;
        out.push(Member { key, value: i..end });
        i = skip_ws(b, end);
        match *b.get(i)? {
            b',' => i += 1,
            c if c == close => return (skip_ws(b, i + 1) == b.len()).then_some(out),
            _ => return None,
        }
    }
}

/// The member of the JSON object `text` (its `members`) whose key is `key`: the last one,
/// as serde_json keeps the last of a repeated key.
pub fn field<'m>(text: &str, members: &'m [Member], key: &str) -> Option<&'m Member> {
    members.iter().rev().find(|m| {
        let Some(written) = m.key.clone().and_then(|k| text.get(k)) else {
            return false;
        };
        match written.get(1..written.len().saturating_sub(1)) {
            Some(plain) if !plain.contains('\\') => plain == key,
            _ => serde_json::from_str::<String>(written).is_ok_and(|k| k == key),
        }
    })
}

/// The text of the value of `key` in the JSON object `text` (see [`field`]).
pub fn field_text<'t>(text: &'t str, members: &[Member], key: &str) -> Option<&'t str> {
    text.get(field(text, members, key)?.value.clone())
}

/// `text` (JSON) without the whitespace outside strings, as serde_json writes values.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// From a string's opening quote, the index after its closing quote.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// From a value's first byte, the index after its last.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let start = i;
            while b
                .get(i)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn members_are_found_as_serde_reads_them() {
        let text = r#" { "a" : -9223372036854775809 , "b\"q":[1, {"x":"]}\\"}], "c":{"d":[]},"e":"\u00e9", "f": true } "#;
        let parsed: Value = serde_json::from_str(text).expect("json");
        let m = members(text).expect("an object");
        assert_eq!(m.len(), 5);
        for member in &m {
            let key: String =
                serde_json::from_str(&text[member.key.clone().expect("key")]).expect("key");
            let written: Value = serde_json::from_str(&text[member.value.clone()]).expect("value");
            assert_eq!(written, parsed[key.as_str()], "{key}");
        }
        assert_eq!(field_text(text, &m, "a"), Some("-9223372036854775809"));
        assert_eq!(field_text(text, &m, "b\"q"), Some(r#"[1, {"x":"]}\\"}]"#));
        assert_eq!(field_text(text, &m, "z"), None);
        let items = members("[{\"a\":1} ,2,\"x\",[ ]]").expect("an array");
        let spans: Vec<_> = items.iter().map(|m| m.value.clone()).collect();
        assert_eq!(spans, vec![1..8, 10..11, 12..15, 16..19]);
        for not_one in ["1", "{\"a\":1} x", "{\"a\" 1}", "[1", ""] {
            assert_eq!(members(not_one), None, "{not_one}");
        }
    }

    #[test]
    fn compact_drops_whitespace_outside_strings_only() {
        assert_eq!(
            compact("[ 1.50 , {\"a b\" : \" x \\\" y \"} ]"),
            "[1.50,{\"a b\":\" x \\\" y \"}]"
        );
    }
}
