//! Test-only: deterministic random JSON records, for the tests that check a fast path
//! against the slow one it stands in for.

/// `count` JSON objects of up to `max_fields - 1` fields, each a key from `keys` (repeats
/// allowed) with a value from `values` (JSON text), drawn by a fixed-seed xorshift.
pub(crate) fn random_records(
    seed: u64,
    keys: &[&str],
    values: &[&str],
    max_fields: usize,
    count: usize,
) -> Vec<String> {
    let mut state = seed;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    (0..count)
        .map(|_| {
            let fields: Vec<String> = (0..next(max_fields))
                .map(|_| {
                    format!(
                        "\"{}\":{}",
                        keys[next(keys.len())],
                        values[next(values.len())]
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        })
        .collect()
}
