//! A user record, and the validation of what a person or a file typed.

use super::AppError;
use chrono::NaiveDateTime;
use serde::Serialize;

/// Longest accepted name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest accepted email, in bytes (RFC 5321's path limit, in octets).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Oldest accepted age.
pub const MAX_AGE: i32 = 150;

/// A decrypted record.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Primary key.
    pub id: i64,
    /// Name (decrypted).
    pub name: String,
    /// Email (decrypted), if any.
    pub email: Option<String>,
    /// Age.
    pub age: i32,
    /// Creation time, UTC.
    pub created_at: NaiveDateTime,
    /// Data key that sealed the row.
    pub key_id: i64,
}

impl std::fmt::Debug for Record {
    /// Shows the id only: records hold plaintext of encrypted fields.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Validated input for a new record.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordInput {
    /// Trimmed, non-empty name.
    pub name: String,
    /// Trimmed valid email, if any.
    pub email: Option<String>,
    /// Age 0–150.
    pub age: i32,
}

impl std::fmt::Debug for RecordInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordInput(<redacted>)")
    }
}

impl RecordInput {
    /// Validates raw text for each field.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for the first field that is wrong.
    pub fn parse(name: &str, email: Option<&str>, age: &str) -> Result<Self, AppError> {
        Ok(RecordInput {
            name: parse_name(name)?,
            email: email.map(parse_email).transpose()?.flatten(),
            age: parse_age(age)?,
        })
    }
}

/// A name: trimmed, 1–200 characters, no control characters but line
/// breaks.
///
/// # Errors
/// [`AppError::Invalid`] naming `name`.
pub fn parse_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(AppError::invalid("name", "name must not be empty"));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(AppError::invalid(
            "name",
            format!("name is {chars} characters long; the limit is {MAX_NAME_CHARS}"),
        ));
    }
    // Line breaks are accepted (a quoted CSV field may hold them); other
    // control characters, terminal escapes among them, are not.
    if name
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        return Err(AppError::invalid(
            "name",
            "name must not contain control characters other than line breaks",
        ));
    }
    Ok(name.to_owned())
}

/// An email: empty means none; otherwise a valid address (RFC 5322
/// addr-spec, with a dot in the domain), at most 254 bytes.
///
/// # Errors
/// [`AppError::Invalid`] naming `email`; the address is not repeated.
pub fn parse_email(raw: &str) -> Result<Option<String>, AppError> {
    let email = raw.trim();
    if email.is_empty() {
        return Ok(None);
    }
    if email.len() > MAX_EMAIL_BYTES {
        return Err(AppError::invalid(
            "email",
            format!("email is longer than {MAX_EMAIL_BYTES} bytes"),
        ));
    }
    let domain_has_dot = email
        .rsplit_once('@')
        .is_some_and(|(_, d)| d.contains('.') && !d.starts_with('.') && !d.ends_with('.'));
    if !email_address::EmailAddress::is_valid(email) || !domain_has_dot || email.contains(' ') {
        return Err(AppError::invalid(
            "email",
            "email is not a valid address (expected something like name@example.org)",
        ));
    }
    Ok(Some(email.to_owned()))
}

/// An age: a whole number from 0 to 150.
///
/// # Errors
/// [`AppError::Invalid`] naming `age` (not what was typed).
pub fn parse_age(raw: &str) -> Result<i32, AppError> {
    // What was typed is not repeated: in a misaligned CSV line the age
    // column may hold a name or an email.
    match raw.trim().parse::<i64>() {
        Ok(age) if (0..=i64::from(MAX_AGE)).contains(&age) => Ok(age as i32),
        Ok(_) => Err(AppError::invalid(
            "age",
            format!("age must be from 0 to {MAX_AGE}"),
        )),
        Err(_) => Err(AppError::invalid(
            "age",
            format!("age must be a whole number from 0 to {MAX_AGE}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("  Ada ").unwrap(), "Ada");
        assert_eq!(parse_name(" ").unwrap_err().field(), Some("name"));
        assert!(parse_name(&"x".repeat(201)).is_err());
        assert!(parse_name(&"é".repeat(200)).is_ok());
        assert!(parse_name("a\nb").is_ok());
        assert!(parse_name("a\u{1b}[2Jb").is_err());
        assert!(parse_name("a\tb").is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(parse_email("").unwrap(), None);
        assert_eq!(
            parse_email(" a.b+c@ex-ample.org ").unwrap().as_deref(),
            Some("a.b+c@ex-ample.org")
        );
        for bad in ["nope", "a@b", "@x.org", "a@@x.org", "a b@x.org", "a@x.org."] {
            let err = parse_email(bad).unwrap_err();
            assert_eq!(err.field(), Some("email"), "{bad}");
            assert!(!err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("0").unwrap(), 0);
        assert_eq!(parse_age(" 150 ").unwrap(), 150);
        for bad in ["151", "-1", "abc", "4.5", "", "99999999999999999999"] {
            assert_eq!(parse_age(bad).unwrap_err().field(), Some("age"), "{bad}");
        }
    }
}
