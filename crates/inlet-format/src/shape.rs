//! The fast path's gate: a JSON record that fits the schema exactly as written (known keys
//! once each, values of the columns' own kinds) can go to arrow-json's decoder as raw bytes.

use arrow::datatypes::{DataType, Fields, Schema};

/// A column's type as the check sees it; `Other` never passes (the fitting path decides).
#[derive(Debug)]
pub(crate) enum Shape {
    Str,
    Bool,
    Int { min: i64, max: i64 },
    Float,
    List(Box<Shape>),
    Struct(Vec<(Name, Shape)>),
    Other,
}

/// A column name, with its first eight bytes as one number: most keys are told apart, or
/// matched whole, by one comparison instead of a call to `memcmp`.
#[derive(Debug)]
pub(crate) struct Name {
    text: String,
    head: u64,
}

impl Name {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_string(),
            head: head(text.as_bytes()),
        }
    }

    fn is(&self, key: &[u8], key_head: u64) -> bool {
        self.head == key_head
            && self.text.len() == key.len()
            // Names are short: a loop, not a call to `memcmp`.
            && (key.len() <= 8 || self.text.bytes().skip(8).zip(&key[8..]).all(|(a, &b)| a == b))
    }
}

/// Up to the first eight bytes of `bytes`, zero-padded, as a number.
fn head(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .rev()
        .fold(0, |v, &b| (v << 8) | u64::from(b))
}

impl Shape {
    /// The shape of a record of `schema`, leaving out the rescued data column (a record
    /// naming it goes through the fitting path).
    pub fn of_schema(schema: &Schema, rescued: Option<&str>) -> Self {
        Self::Struct(
            schema
                .fields()
                .iter()
                .filter(|f| Some(f.name().as_str()) != rescued)
                .map(|f| (Name::new(f.name()), Self::of(f.data_type())))
                .collect(),
        )
    }

    fn of(dtype: &DataType) -> Self {
        use DataType::*;
        match dtype {
            Utf8 | LargeUtf8 => Self::Str,
            Boolean => Self::Bool,
            Int8 => Self::Int {
                min: i8::MIN.into(),
                max: i8::MAX.into(),
            },
            Int16 => Self::Int {
                min: i16::MIN.into(),
                max: i16::MAX.into(),
            },
            Int32 => Self::Int {
                min: i32::MIN.into(),
                max: i32::MAX.into(),
            },
            Int64 => Self::Int {
                min: i64::MIN,
                max: i64::MAX,
            },
            Float32 | Float64 => Self::Float,
            List(f) | LargeList(f) => Self::List(Box::new(Self::of(f.data_type()))),
            Struct(fields) => Self::Struct(struct_shapes(fields)),
            // Null (a position seen only as null while inferring) and the rest.
            _ => Self::Other,
        }
    }

    /// True when every value this shape accepts, `wider` accepts too.
    pub fn within(&self, wider: &Shape) -> bool {
        use Shape::*;
        match (self, wider) {
            // A column seen only as null: every shape takes null.
            (Other, _) => true,
            (Str, Str) | (Bool, Bool) | (Float, Float) | (Int { .. }, Float) => true,
            (Int { min, max }, Int { min: lo, max: hi }) => lo <= min && max <= hi,
            (List(item), List(wider)) => item.within(wider),
            (Struct(fields), Struct(wider)) => fields.iter().all(|(name, shape)| {
                wider
                    .iter()
                    .any(|(other, w)| other.text == name.text && shape.within(w))
            }),
            _ => false,
        }
    }

    /// True when `raw` is one JSON object that fits exactly (whitespace around it allowed).
    /// One pass over the bytes, stricter than JSON where a case is rare and costly to check
    /// here (an escaped key, a `\u` surrogate, a long exponent, `-0` for an integer): such a
    /// record only takes the fitting path, which decides it as it decides any other.
    pub fn accepts(&self, raw: &str) -> bool {
        let mut scan = Scan::new(raw);
        scan.ws();
        scan.peek() == Some(b'{') && scan.value(self).is_some() && scan.at_end()
    }
}

/// Where `bytes` first holds a quote, a backslash or a control character: eight bytes at a
/// time, by the carry tricks that find a zero byte in a word.
fn special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().ok()?);
        let quote = x ^ (ONES * u64::from(b'"'));
        let slash = x ^ (ONES * u64::from(b'\\'));
        // A byte below 0x20, or equal to one of the two: its high bit set in `hits`.
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        if hits & HIGH != 0 {
            // The lowest hit is exact; carries only reach bytes above it.
            return Some(at + ((hits & HIGH).trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

/// A cursor over one record's bytes; each step answers `None` for "does not fit". The
/// direct decoder (`direct.rs`) walks with it too, building columns as it goes.
pub(crate) struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

/// A JSON number as the scan read it, valid by JSON's grammar (and the scan's limits).
pub(crate) struct Num<'a> {
    /// The whole number as written.
    pub text: &'a [u8],
    negative: bool,
    /// The digits before any fraction or exponent.
    whole: &'a [u8],
    integer: bool,
    exponent: bool,
}

impl Num<'_> {
    /// The number as an integer in `min..=max`; `None` for a fraction, an exponent, `-0`
    /// (serde reads it as a float) or a value out of range.
    pub fn int(&self, min: i64, max: i64) -> Option<i64> {
        let n = self.whole.len();
        let zero = self.whole.first() == Some(&b'0');
        if !self.integer || self.exponent || (self.negative && zero) || n > 19 {
            return None;
        }
        // At most 19 digits fit in an i128 with room; the range check does the rest.
        let magnitude = self
            .whole
            .iter()
            .fold(0i128, |v, &d| v * 10 + i128::from(d - b'0'));
        let v = if self.negative { -magnitude } else { magnitude };
        if (i128::from(min)..=i128::from(max)).contains(&v) {
            i64::try_from(v).ok()
        } else {
            None
        }
    }
}

/// Something with a column name: what an object's keys are matched against.
pub(crate) trait Named {
    fn name(&self) -> &Name;
}

impl Named for Name {
    fn name(&self) -> &Name {
        self
    }
}

impl<T> Named for (Name, T) {
    fn name(&self) -> &Name {
        &self.0
    }
}

impl<'a> Scan<'a> {
    pub fn new(raw: &'a str) -> Self {
        Self {
            b: raw.as_bytes(),
            i: 0,
        }
    }

    /// True when only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    pub fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn value(&mut self, shape: &Shape) -> Option<()> {
        self.ws();
        match (self.peek()?, shape) {
            // Null fits every column.
            (b'n', _) => self.literal(b"null"),
            (b't', Shape::Bool) => self.literal(b"true"),
            (b'f', Shape::Bool) => self.literal(b"false"),
            (b'"', Shape::Str) => self.string().map(|_| ()),
            (b'[', Shape::List(item)) => self.list(item),
            (b'{', Shape::Struct(fields)) => self.object(fields),
            (b'-' | b'0'..=b'9', Shape::Float) => self.number().map(|_| ()),
            (b'-' | b'0'..=b'9', Shape::Int { min, max }) => {
                self.number()?.int(*min, *max).map(|_| ())
            }
            _ => None,
        }
    }

    pub fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A string at its `"`: the raw bytes between the quotes, and whether any is escaped.
    pub fn string(&mut self) -> Option<(&'a [u8], bool)> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            let rest = self.b.get(self.i..)?;
            let at = special(rest)?;
            // A control character must be escaped.
            if rest[at] < 0x20 {
                return None;
            }
            self.i += at + 1;
            if rest[at] == b'"' {
                let b: &'a [u8] = self.b;
                return Some((b.get(start..self.i - 1)?, escaped));
            }
            escaped = true;
            match self.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    let hex = self.b.get(self.i..self.i + 4)?;
                    let code = std::str::from_utf8(hex)
                        .ok()
                        .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                        .and_then(|h| u16::from_str_radix(h, 16).ok())?;
                    // Surrogate halves, paired or not: the fitting path decides.
                    if (0xD800..=0xDFFF).contains(&code) {
                        return None;
                    }
                    self.i += 4;
                }
                _ => return None,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    /// A number at its first byte.
    pub fn number(&mut self) -> Option<Num<'a>> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let whole = self.i;
        let n = self.digits();
        let zero = self.b.get(whole) == Some(&b'0');
        // No leading zeros.
        if n == 0 || (n > 1 && zero) {
            return None;
        }
        let integer = self.peek() != Some(b'.');
        if !integer {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        let mut exponent = false;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            exponent = true;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            // Short exponents only: a number out of a double's range is serde's to refuse.
            let e = self.digits();
            if e == 0 || e > 2 || n > 200 {
                return None;
            }
        }
        let b: &'a [u8] = self.b;
        Some(Num {
            text: b.get(start..self.i)?,
            negative,
            whole: b.get(whole..whole + n)?,
            integer,
            exponent,
        })
    }

    fn list(&mut self, item: &Shape) -> Option<()> {
        self.items(|scan| scan.value(item))
    }

    /// A list at its `[`, each item read by `item`.
    pub fn items(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.i += 1;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.ws();
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn object(&mut self, fields: &[(Name, Shape)]) -> Option<()> {
        self.members(fields, |scan, at| scan.value(&fields[at].1))
    }

    /// An object at its `{` whose keys each name one of `fields` once; `value` reads the
    /// value of the field at the index it is given.
    pub fn members<N: Named>(
        &mut self,
        fields: &[N],
        mut value: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        // Keys seen: a bit each up to 64 columns, a vector beyond.
        let mut few = 0u64;
        let mut many = (fields.len() > 64).then(|| vec![false; fields.len()]);
        // Records of one producer list keys in one order: try the next field first.
        let mut hint = 0;
        loop {
            self.ws();
            if self.peek()? != b'"' {
                return None;
            }
            // A key with an escape may still name a column: the fitting path decides.
            let (key, escaped) = self.string()?;
            if escaped {
                return None;
            }
            // The key's head, read as one word when the line has eight bytes from there on.
            let start = self.i - key.len() - 1;
            let key_head = match self.b.get(start..start + 8) {
                Some(word) if key.len() >= 8 => u64::from_le_bytes(word.try_into().ok()?),
                Some(word) => {
                    u64::from_le_bytes(word.try_into().ok()?) & ((1u64 << (key.len() * 8)) - 1)
                }
                None => head(key),
            };
            let at = match fields.get(hint) {
                Some(field) if field.name().is(key, key_head) => hint,
                _ => fields
                    .iter()
                    .position(|field| field.name().is(key, key_head))?,
            };
            hint = at + 1;
            // A key given twice: serde and arrow may keep different ones.
            let again = match many.as_mut() {
                Some(seen) => std::mem::replace(&mut seen[at], true),
                None => {
                    let bit = 1u64 << at;
                    let again = few & bit != 0;
                    few |= bit;
                    again
                }
            };
            if again {
                return None;
            }
            self.ws();
            if self.next()? != b':' {
                return None;
            }
            value(self, at)?;
            self.ws();
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }
}

/// True when every record that fits `file` as written (`SchemaSample::fitted`) also fits
/// `schema` as written, so decoding the file against `schema` may skip the check.
pub fn fits_within(file: &Schema, schema: &Schema, rescued: Option<&str>) -> bool {
    Shape::of_schema(file, None).within(&Shape::of_schema(schema, rescued))
}

fn struct_shapes(fields: &Fields) -> Vec<(Name, Shape)> {
    fields
        .iter()
        .map(|f| (Name::new(f.name()), Shape::of(f.data_type())))
        .collect()
}

/// The reference the scan is tested against: serde_json's own parser walking the shape.
#[cfg(test)]
mod serde_walk {
    use super::{Name, Shape};
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// What `Shape::accepts` must never exceed: true when serde reads one object that fits.
    pub fn accepts(shape: &Shape, raw: &str) -> bool {
        if !raw.trim_start().starts_with('{') {
            return false;
        }
        let mut de = serde_json::Deserializer::from_str(raw);
        Check(shape).deserialize(&mut de).is_ok() && de.end().is_ok()
    }

    /// Walks one JSON value against a shape without building it; any mismatch is an error.
    struct Check<'s>(&'s Shape);

    fn unfit<E: de::Error>() -> E {
        E::custom("does not fit as written")
    }

    impl<'de> DeserializeSeed<'de> for Check<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Check<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a value of shape {:?}", self.0)
        }

        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_none<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            matches!(self.0, Shape::Bool)
                .then_some(())
                .ok_or_else(unfit)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
            match self.0 {
                Shape::Int { min, max } if (*min..=*max).contains(&v) => Ok(()),
                Shape::Float => Ok(()),
                _ => Err(unfit()),
            }
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
            match self.0 {
                Shape::Int { max, .. } if i64::try_from(v).is_ok_and(|v| v <= *max) => Ok(()),
                Shape::Float => Ok(()),
                _ => Err(unfit()),
            }
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            matches!(self.0, Shape::Float)
                .then_some(())
                .ok_or_else(unfit)
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            matches!(self.0, Shape::Str).then_some(()).ok_or_else(unfit)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let Shape::List(item) = self.0 else {
                return Err(unfit());
            };
            while seq.next_element_seed(Check(item))?.is_some() {}
            Ok(())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let Shape::Struct(fields) = self.0 else {
                return Err(unfit());
            };
            let mut seen = vec![false; fields.len()];
            // Records of one producer list keys in one order: try the next field first.
            let mut hint = 0;
            while let Some(i) = map.next_key_seed(Key(fields, hint))? {
                hint = i + 1;
                // A key given twice: serde and arrow may keep different ones.
                if std::mem::replace(&mut seen[i], true) {
                    return Err(unfit());
                }
                map.next_value_seed(Check(&fields[i].1))?;
            }
            Ok(())
        }
    }

    /// A key, as the index of the field it names exactly (the field at the hint tried first).
    struct Key<'s>(&'s [(Name, Shape)], usize);

    impl<'de> DeserializeSeed<'de> for Key<'_> {
        type Value = usize;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Key<'_> {
        type Value = usize;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a column name")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
            if self.0.get(self.1).is_some_and(|(name, _)| name.text == v) {
                return Ok(self.1);
            }
            self.0
                .iter()
                .position(|(name, _)| name.text == v)
                .ok_or_else(unfit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use std::sync::Arc;

    #[test]
    fn only_records_that_fit_as_written_pass() {
        let inner = Fields::from(vec![Field::new("k", DataType::Utf8, true)]);
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
            Field::new("n", DataType::Struct(inner), true),
            Field::new("small", DataType::Int8, true),
            Field::new("_rescued_data", DataType::Utf8, true),
        ]);
        let shape = Shape::of_schema(&schema, Some("_rescued_data"));
        for ok in [
            r#"{"id": 1, "x": 2, "s": "a\"b", "tags": ["p", null], "n": {"k": "v"}, "small": -128}"#,
            r#"{"x": 1.5e3, "id": null}"#,
            "{}",
            "  {\"id\": 9223372036854775807}  ",
        ] {
            assert!(shape.accepts(ok), "{ok}");
        }
        for slow in [
            r#"{"id": 1.0}"#,
            r#"{"id": "1"}"#,
            r#"{"id": 9223372036854775808}"#,
            r#"{"s": 5}"#,
            r#"{"tags": "p"}"#,
            r#"{"n": {"k": "v", "extra": 1}}"#,
            r#"{"ID": 1}"#,
            r#"{"new": 1}"#,
            r#"{"_rescued_data": "{}"}"#,
            r#"{"id": 1, "id": 2}"#,
            r#"{"small": 128}"#,
            r#"{"id": 1} {"id": 2}"#,
            r#"[1]"#,
            r#"{"id": 1"#,
        ] {
            assert!(!shape.accepts(slow), "{slow}");
        }
    }

    #[test]
    fn the_scan_never_accepts_what_serde_refuses() {
        use crate::testing::{MIXED_KEYS, MIXED_VALUES};
        let schema = crate::testing::mixed_schema();
        let shape = Shape::of_schema(&schema, None);
        let (mut both, mut serde_only) = (0, 0);
        let records = crate::testing::random_records(7, &MIXED_KEYS, &MIXED_VALUES, 6, 20_000);
        for raw in crate::testing::with_mutations(records) {
            let (scan, serde) = (shape.accepts(&raw), serde_walk::accepts(&shape, &raw));
            assert!(
                !scan || serde,
                "the scan accepted what serde refuses: {raw}"
            );
            both += usize::from(scan && serde);
            serde_only += usize::from(serde && !scan);
        }
        // Not vacuous: thousands pass both, and the stricter cases stay few.
        assert!(both > 2_000, "{both} accepted by both");
        assert!(
            serde_only * 5 < both,
            "{serde_only} only by serde, {both} by both"
        );
    }
}
