//! The super-user created at start-up.

use std::{fmt, io::ErrorKind, path::PathBuf};

use clap::Args;
use zeroize::Zeroizing;

use super::Redacted;

#[derive(Clone, Args)]
pub struct BootstrapConfig {
    /// At start-up, create this super-user if no user has that name.
    #[arg(long, env = "SSOD_SUPER_USER", global = true)]
    pub super_user: Option<String>,
    /// The start-up super-user's password; generated when absent (see
    /// `--super-user-password-file` for where a generated one goes).
    #[arg(
        long,
        env = "SSOD_SUPER_USER_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub super_user_password: Option<String>,
    /// A file holding the start-up super-user's password on its first line (a mounted
    /// Secret). When the file does not exist and a password is generated while stderr is not a
    /// terminal, the generated password is written there (mode 0600, never overwritten).
    #[arg(long, env = "SSOD_SUPER_USER_PASSWORD_FILE", global = true)]
    pub super_user_password_file: Option<PathBuf>,
}

impl BootstrapConfig {
    /// The start-up super-user's password, from the setting or the file; `None`: generate
    /// one. Both settings at once, an unreadable or empty file are configuration errors.
    pub fn password(&self) -> Result<Option<Zeroizing<String>>, String> {
        match (&self.super_user_password, &self.super_user_password_file) {
            (Some(_), Some(_)) => Err(
                "set SSOD_SUPER_USER_PASSWORD or SSOD_SUPER_USER_PASSWORD_FILE, not both".into(),
            ),
            (Some(password), None) => Ok(Some(Zeroizing::new(password.clone()))),
            (None, Some(path)) => read_password_file(path),
            (None, None) => Ok(None),
        }
    }
}

/// The first line of `path` without its line ending; `None` when the file does not exist.
fn read_password_file(path: &PathBuf) -> Result<Option<Zeroizing<String>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(format!(
                "cannot read SSOD_SUPER_USER_PASSWORD_FILE {}: {error}",
                path.display()
            ));
        }
    };
    let first_line = text.split('\n').next().unwrap_or_default();
    let password = first_line.strip_suffix('\r').unwrap_or(first_line);
    if password.is_empty() {
        return Err(format!(
            "SSOD_SUPER_USER_PASSWORD_FILE {} has an empty first line",
            path.display()
        ));
    }
    Ok(Some(Zeroizing::new(password.to_owned())))
}

impl fmt::Debug for BootstrapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            super_user,
            super_user_password,
            super_user_password_file,
        } = self;
        f.debug_struct("BootstrapConfig")
            .field("super_user", super_user)
            .field("super_user_password", &Redacted(super_user_password))
            .field("super_user_password_file", super_user_password_file)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn config(password: Option<&str>, file: Option<PathBuf>) -> BootstrapConfig {
        BootstrapConfig {
            super_user: Some("root".into()),
            super_user_password: password.map(str::to_owned),
            super_user_password_file: file,
        }
    }

    fn password(config: &BootstrapConfig) -> Result<Option<String>, String> {
        config
            .password()
            .map(|password| password.map(|password| password.to_string()))
    }

    #[test]
    fn the_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        for (content, expected) in [
            ("from-file\n", "from-file"),
            ("from-file", "from-file"),
            ("crlf\r\nsecond line\n", "crlf"),
            (" spaces kept \n", " spaces kept "),
        ] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(
                password(&config(None, Some(path.clone()))),
                Ok(Some(expected.to_owned())),
                "{content:?}"
            );
        }
        std::fs::write(&path, "\nsecond").unwrap();
        assert!(password(&config(None, Some(path))).is_err(), "empty line");
    }

    #[test]
    fn a_missing_file_means_generate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        assert_eq!(password(&config(None, Some(missing))), Ok(None));
        assert_eq!(password(&config(None, None)), Ok(None));
        assert_eq!(
            password(&config(Some("given"), None)),
            Ok(Some("given".into()))
        );
    }

    #[test]
    fn both_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error =
            password(&config(Some("given"), Some(dir.path().join("absent")))).expect_err("both");
        assert!(error.contains("not both"), "{error}");
    }
}
