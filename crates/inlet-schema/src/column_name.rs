//! Column names as Delta compares and accepts them: one column whatever the case, and the
//! characters a name may not hold without column mapping.

use arrow::datatypes::Schema;

/// Whether Delta can hold a column of this name without column mapping: not empty, and
/// none of ` ,;{}()\n\t=`. Other names are rescued instead of added.
pub fn is_valid_column_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| " ,;{}()\n\t=".contains(c))
}

/// Whether two column names are one column to Delta, which compares names case-insensitively
/// by Unicode lowercase (`str::to_lowercase`, as the Delta kernel's "Duplicate field name
/// (case-insensitive)" check does): `Äx` and `äx` are one column, as are `Qq` and `qQ`.
pub fn same_column_name(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// The schema's column names, comma-separated, as messages and `validate` list them.
pub fn column_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_compare_by_unicode_lowercase() {
        assert!(same_column_name("Qq", "qQ"));
        assert!(same_column_name("Äx", "äx"));
        // The Kelvin sign lowercases to an ASCII k.
        assert!(same_column_name("\u{212a}m", "km"));
        assert!(!same_column_name("a", "b"));
        assert!(!same_column_name("ß", "ss"));
    }
}
