//! The header line: which column is name, email and age, with `--map`
//! for other names.

use super::error::{ImportError, ImportErrorKind, Position};
use std::io::Read;
use std::path::Path;

/// Where a CSV column goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The record's name.
    Name,
    /// The record's email.
    Email,
    /// The record's age.
    Age,
    /// Ignored.
    Skip,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Name => "name",
            Field::Email => "email",
            Field::Age => "age",
            Field::Skip => "skip",
        })
    }
}

impl std::str::FromStr for Field {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "name" => Ok(Field::Name),
            "email" => Ok(Field::Email),
            "age" => Ok(Field::Age),
            "skip" | "-" => Ok(Field::Skip),
            _ => Err("a column maps to name, email, age or skip".into()),
        }
    }
}

/// The column positions of the three fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Columns {
    pub name: usize,
    pub email: usize,
    pub age: usize,
    pub count: usize,
}

/// Reads and checks the header: the columns name, email and age in any
/// order, nothing else unless mapped. Returns the positions and the
/// header's own fields (for the rejects file).
pub(super) fn read_header<R: Read>(
    reader: &mut csv::Reader<R>,
    path: &Path,
    mapping: &[(String, Field)],
) -> Result<(Columns, Vec<Vec<u8>>), ImportError> {
    let at_header = Position { line: 1, record: 0 };
    let mut header = csv::ByteRecord::new();
    match reader.read_byte_record(&mut header) {
        Ok(true) => {}
        Ok(false) => return Err(ImportError::new(ImportErrorKind::Empty, path)),
        Err(e) => {
            return Err(ImportError::new(ImportErrorKind::Csv(csv_reason(&e)), path).at(at_header))
        }
    }
    let mut fields: Vec<Vec<u8>> = header.iter().map(<[u8]>::to_vec).collect();
    if let Some(first) = fields.first_mut() {
        if first.starts_with(b"\xEF\xBB\xBF") {
            first.drain(..3);
        }
    }
    let labels: Result<Vec<&str>, usize> = fields
        .iter()
        .enumerate()
        .map(|(i, raw)| std::str::from_utf8(raw).map_err(|_| i + 1))
        .collect();
    let labels = labels.map_err(|column| {
        ImportError::new(ImportErrorKind::HeaderNotUtf8 { column }, path).at(at_header)
    })?;
    let columns =
        map_columns(&labels, mapping).map_err(|kind| ImportError::new(kind, path).at(at_header))?;
    Ok((columns, fields))
}

/// Which column holds which field, from the header's labels.
fn map_columns(labels: &[&str], mapping: &[(String, Field)]) -> Result<Columns, ImportErrorKind> {
    let (mut name, mut email, mut age) = (None, None, None);
    for (i, label) in labels.iter().enumerate() {
        let label = label.trim().to_ascii_lowercase();
        let target = mapping
            .iter()
            .find(|(from, _)| from.trim().eq_ignore_ascii_case(&label))
            .map(|(_, to)| *to)
            .or_else(|| label.parse::<Field>().ok().filter(|f| *f != Field::Skip));
        let slot = match target {
            Some(Field::Name) => &mut name,
            Some(Field::Email) => &mut email,
            Some(Field::Age) => &mut age,
            Some(Field::Skip) => continue,
            None => return Err(ImportErrorKind::UnknownColumn { column: i + 1 }),
        };
        if slot.replace(i).is_some() {
            return Err(ImportErrorKind::DuplicateColumn { column: i + 1 });
        }
    }
    match (name, email, age) {
        (Some(name), Some(email), Some(age)) => Ok(Columns {
            name,
            email,
            age,
            count: labels.len(),
        }),
        _ => Err(ImportErrorKind::MissingColumns(
            [("name", name), ("email", email), ("age", age)]
                .iter()
                .filter(|(_, pos)| pos.is_none())
                .map(|(label, _)| *label)
                .collect(),
        )),
    }
}

/// What a csv error says, without positions (the caller adds the line).
pub(super) fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(e) => e.to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(labels: &[&str], mapping: &[(&str, Field)]) -> Result<Columns, ImportErrorKind> {
        let mapping: Vec<(String, Field)> =
            mapping.iter().map(|(a, b)| ((*a).to_owned(), *b)).collect();
        map_columns(labels, &mapping)
    }

    #[test]
    fn columns_in_any_order_and_case() {
        let c = map(&["Age", " email ", "NAME"], &[]).unwrap();
        assert_eq!((c.name, c.email, c.age, c.count), (2, 1, 0, 3));
    }

    #[test]
    fn mapping_renames_and_skips() {
        let c = map(
            &["full_name", "mail", "age", "notes"],
            &[
                ("full_name", Field::Name),
                ("MAIL", Field::Email),
                ("notes", Field::Skip),
            ],
        )
        .unwrap();
        assert_eq!((c.name, c.email, c.age, c.count), (0, 1, 2, 4));
    }

    #[test]
    fn unknown_duplicate_and_missing_columns_are_named() {
        assert!(matches!(
            map(&["name", "email", "age", "x"], &[]),
            Err(ImportErrorKind::UnknownColumn { column: 4 })
        ));
        assert!(matches!(
            map(&["name", "name", "email", "age"], &[]),
            Err(ImportErrorKind::DuplicateColumn { column: 2 })
        ));
        match map(&["email"], &[]) {
            Err(ImportErrorKind::MissingColumns(m)) => assert_eq!(m, ["name", "age"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn header_with_bom_and_crlf() {
        let data = b"\xEF\xBB\xBFname,email,age\r\nAda,,36\r\n";
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&data[..]);
        let (c, fields) = read_header(&mut reader, Path::new("x.csv"), &[]).unwrap();
        assert_eq!(c.name, 0);
        assert_eq!(fields[0], b"name");
    }

    #[test]
    fn field_parses_its_names() {
        assert_eq!("Email".parse::<Field>(), Ok(Field::Email));
        assert_eq!("-".parse::<Field>(), Ok(Field::Skip));
        assert!("nope".parse::<Field>().is_err());
    }
}
