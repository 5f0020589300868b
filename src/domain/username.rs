//! Usernames as the contract defines them: compared after Unicode NFKC normalisation and
//! case folding; control, format (zero-width, bidi), private-use and unassigned characters,
//! and white space, are refused. So `admin\u{200b}` cannot sit beside `admin`, and fullwidth
//! `ａｄｍｉｎ` is `admin`.

use caseless::default_case_fold_str;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// A valid username: its NFKC form, as shown, and the key it is unique and looked up by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username {
    display: String,
    key: String,
}

/// Why a text is not a username.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("must not be empty")]
    Empty,
    #[error("at most {0} characters")]
    TooLong(usize),
    #[error("must not hold white space, control, invisible, private-use or unassigned characters")]
    Forbidden,
}

impl Username {
    pub fn parse(text: &str, max_chars: usize) -> Result<Self, UsernameError> {
        let display: String = text.nfkc().collect();
        if display.is_empty() {
            return Err(UsernameError::Empty);
        }
        if display.chars().count() > max_chars {
            return Err(UsernameError::TooLong(max_chars));
        }
        if display.chars().any(is_forbidden) {
            return Err(UsernameError::Forbidden);
        }
        let key = Self::key_of(&display);
        Ok(Self { display, key })
    }

    /// The name as shown: the NFKC form of what was given, its case kept.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// NFKC of the case fold: equal for names that must not coexist.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn into_string(self) -> String {
        self.display
    }

    /// The key of any text: NFKC of its case fold. For a shown name it is that name's
    /// [`key`](Self::key); for a listing's prefix, the prefix of the keys it matches. The
    /// stores index and compare this, never a case-insensitive comparison of their own.
    pub fn key_of(text: &str) -> String {
        default_case_fold_str(text).nfkc().collect()
    }
}

fn is_forbidden(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::Surrogate
                | GeneralCategory::PrivateUse
                | GeneralCategory::Unassigned
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
                | GeneralCategory::SpaceSeparator
        )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(text: &str) -> String {
        Username::parse(text, 191).unwrap().key().to_owned()
    }

    #[test]
    fn names_that_look_alike_share_one_key() {
        assert_eq!(key("Admin"), key("admin"));
        assert_eq!(key("ａｄｍｉｎ"), key("admin"));
        assert_eq!(key("Straße"), key("STRASSE"));
        assert_eq!(key("ﬁnn"), key("finn"));
        assert_ne!(key("admin"), key("admin2"));
    }

    #[test]
    fn the_shown_name_keeps_its_case_in_nfkc() {
        let name = Username::parse("Ｊｏｓé", 191).unwrap();
        assert_eq!(name.as_str(), "José");
        assert_eq!(name.key(), "josé");
    }

    #[test]
    fn invisible_control_and_unassigned_characters_are_refused() {
        for text in [
            "admin\u{200b}",
            "\u{202e}nimda",
            "ad\u{00ad}min",
            "nul\0",
            "tab\tname",
            "new\nline",
            "two words",
            "nbsp\u{00a0}x",
            "private\u{e000}",
            "unassigned\u{0378}",
            "bom\u{feff}",
        ] {
            assert_eq!(
                Username::parse(text, 191),
                Err(UsernameError::Forbidden),
                "{text:?}"
            );
        }
        assert_eq!(Username::parse("", 191), Err(UsernameError::Empty));
        assert_eq!(
            Username::parse(&"é".repeat(192), 191),
            Err(UsernameError::TooLong(191))
        );
        assert!(Username::parse(&"é".repeat(191), 191).is_ok());
        assert!(Username::parse("émilie.o'brien@example.org", 191).is_ok());
    }
}
