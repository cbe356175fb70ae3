//! Plain text: one row per line in the column `value` (line ends `\n` or `\r\n` removed;
//! empty lines are empty strings, as Spark's text source reads them).

use serde_json::{Map, Value};

use crate::fit::{Fitter, Origin};

/// The column `text` files decode into.
pub const TEXT_COLUMN: &str = "value";

/// Each line with where it starts; the empty piece after a final newline is no line.
fn lines(text: &str) -> impl Iterator<Item = Origin<'_>> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut offset = 0;
    body.split('\n').enumerate().filter_map(move |(i, line)| {
        let start = offset;
        offset += line.len() + 1;
        (!text.is_empty()).then_some(Origin {
            line: i as u64 + 1,
            offset: start,
            raw: line.strip_suffix('\r').unwrap_or(line),
        })
    })
}

fn record(line: &str) -> Map<String, Value> {
    Map::from_iter([(TEXT_COLUMN.to_string(), Value::String(line.to_string()))])
}

pub(crate) fn feed(text: &str, fitter: &mut Fitter<'_>) {
    for at in lines(text) {
        fitter.record(record(at.raw), at);
    }
}

pub(crate) fn sample(
    text: &str,
    max_records: usize,
    mut add: impl FnMut(Map<String, Value>),
) -> usize {
    let mut n = 0;
    for at in lines(text).take(max_records) {
        add(record(at.raw));
        n += 1;
    }
    // Even an empty file says the table has a `value` column.
    if n == 0 {
        add(Map::from_iter([(
            TEXT_COLUMN.to_string(),
            Value::String(String::new()),
        )]));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_empty_ones_and_drop_line_ends() {
        let got: Vec<&str> = lines("a\r\n\nb\n").map(|o| o.raw).collect();
        assert_eq!(got, vec!["a", "", "b"]);
        assert_eq!(lines("").count(), 0);
        assert_eq!(
            lines("x").map(|o| (o.line, o.offset)).collect::<Vec<_>>(),
            vec![(1, 0)]
        );
    }
}
