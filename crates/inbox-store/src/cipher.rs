//! Encryption at rest for account credentials, inbound secrets and webhook endpoint secrets:
//! AES-256-GCM with the key from `INBOX_ENCRYPTION_KEY` (32 random bytes, standard base64).
//!
//! A stored value is text: `v1:` + base64(96-bit random nonce || ciphertext with its tag). The
//! version prefix leaves room for another scheme (or key rotation) later; a fresh nonce per
//! value makes two encryptions of the same secret differ.

use std::{fmt, io::Write, path::Path};

use aes_gcm::{
    Aes256Gcm, KeyInit,
    aead::{Aead, Nonce},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use inbox_core::{Error, Result};
use rand::RngCore;

/// The version prefix of every stored value.
const PREFIX: &str = "v1:";
/// AES-GCM's standard nonce length.
const NONCE_LEN: usize = 12;

/// Encrypts and decrypts secrets at rest. Cheap to clone.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher([REDACTED])")
    }
}

impl Cipher {
    /// A cipher from the base64 key (`INBOX_ENCRYPTION_KEY`).
    ///
    /// # Errors
    /// `InvalidInput` on `INBOX_ENCRYPTION_KEY` when the text is not standard base64 of
    /// exactly 32 bytes.
    pub fn from_base64_key(b64: &str) -> Result<Cipher> {
        let invalid = |what: String| {
            Error::invalid(
                "INBOX_ENCRYPTION_KEY",
                format!(
                    "INBOX_ENCRYPTION_KEY must be 32 random bytes in standard base64 \
                     (e.g. `openssl rand -base64 32`); {what}"
                ),
            )
        };
        let bytes = STANDARD
            .decode(b64.trim())
            .map_err(|err| invalid(format!("it is not valid base64 ({err})")))?;
        if bytes.len() != 32 {
            return Err(invalid(format!("it decodes to {} bytes", bytes.len())));
        }
        let aead = Aes256Gcm::new_from_slice(&bytes)
            .map_err(|_| invalid("it has the wrong length".to_owned()))?;
        Ok(Cipher { aead })
    }

    /// A new random key: 32 bytes, standard base64.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// The embedded mode's key file: reads the base64 key from `path`, or creates the file
    /// (and its directories) with a new key, readable by the owner only. Returns the cipher and
    /// whether the file was created now (the caller warns: losing that file loses every stored
    /// credential).
    ///
    /// # Errors
    /// `InvalidInput` when the file holds no valid key; `Internal` when it cannot be read or
    /// written.
    pub fn load_or_create_key_file(path: &Path) -> Result<(Cipher, bool)> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::key_from_file_text(path, &text)?, false)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|err| {
                        Error::internal(format!("cannot create {}", dir.display()), err)
                    })?;
                }
                let key = Self::generate_key();
                match create_private_file(path) {
                    Ok(mut file) => {
                        file.write_all(format!("{key}\n").as_bytes())
                            .and_then(|()| file.sync_all())
                            .map_err(|err| {
                                Error::internal(format!("cannot write {}", path.display()), err)
                            })?;
                        Ok((Self::from_base64_key(&key)?, true))
                    }
                    // Another process created it between our read and our create: use theirs.
                    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                        let text = std::fs::read_to_string(path).map_err(|err| {
                            Error::internal(format!("cannot read {}", path.display()), err)
                        })?;
                        Ok((Self::key_from_file_text(path, &text)?, false))
                    }
                    Err(err) => Err(Error::internal(
                        format!("cannot create {}", path.display()),
                        err,
                    )),
                }
            }
            Err(err) => Err(Error::internal(
                format!("cannot read {}", path.display()),
                err,
            )),
        }
    }

    fn key_from_file_text(path: &Path, text: &str) -> Result<Cipher> {
        Self::from_base64_key(text).map_err(|err| {
            Error::invalid(
                "INBOX_ENCRYPTION_KEY",
                format!("the key file {} is not usable: {err}", path.display()),
            )
        })
    }

    /// Encrypts `plaintext` into its stored text form.
    pub(crate) fn encrypt(&self, plaintext: &str) -> Result<String> {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce_bytes);
        let nonce = Nonce::<Aes256Gcm>::from(nonce_bytes);
        let ciphertext = self
            .aead
            .encrypt(&nonce, plaintext.as_bytes())
            .map_err(|_| Error::internal_msg("AES-GCM encryption failed"))?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{PREFIX}{}", STANDARD.encode(sealed)))
    }

    /// Decrypts a stored value. `what` names it for the error (`credentials of acc_…`).
    ///
    /// # Errors
    /// `Internal`, saying that `INBOX_ENCRYPTION_KEY` does not match the key the value was
    /// written with, when authentication fails; `Internal` for a malformed value.
    pub(crate) fn decrypt(&self, stored: &str, what: &str) -> Result<String> {
        let malformed = || {
            Error::internal_msg(format!(
                "the stored {what} is not in the store's encrypted format (`{PREFIX}…`)"
            ))
        };
        let body = stored.strip_prefix(PREFIX).ok_or_else(malformed)?;
        let sealed = STANDARD.decode(body).map_err(|_| malformed())?;
        if sealed.len() < NONCE_LEN {
            return Err(malformed());
        }
        let (nonce_bytes, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce_array: [u8; NONCE_LEN] = nonce_bytes.try_into().map_err(|_| malformed())?;
        let plaintext = self
            .aead
            .decrypt(&Nonce::<Aes256Gcm>::from(nonce_array), ciphertext)
            .map_err(|_| {
                Error::internal_msg(format!(
                    "cannot decrypt the stored {what}: INBOX_ENCRYPTION_KEY does not match the \
                     key the data was written with (restore the original key; the data cannot \
                     be read without it)"
                ))
            })?;
        String::from_utf8(plaintext).map_err(|_| malformed())
    }
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_a_fresh_nonce_each_time() {
        let cipher = Cipher::from_base64_key(&Cipher::generate_key()).unwrap();
        let a = cipher.encrypt("{\"botToken\":\"123:abc\"}").unwrap();
        let b = cipher.encrypt("{\"botToken\":\"123:abc\"}").unwrap();
        assert!(a.starts_with("v1:"));
        assert_ne!(a, b);
        assert!(!a.contains("123:abc"));
        assert_eq!(
            cipher.decrypt(&a, "credentials").unwrap(),
            "{\"botToken\":\"123:abc\"}"
        );
    }

    #[test]
    fn a_different_key_gives_a_clear_error() {
        let stored = Cipher::from_base64_key(&Cipher::generate_key())
            .unwrap()
            .encrypt("secret")
            .unwrap();
        let other = Cipher::from_base64_key(&Cipher::generate_key()).unwrap();
        let message = other
            .decrypt(&stored, "credentials")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("INBOX_ENCRYPTION_KEY does not match"),
            "{message}"
        );
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        for bad in [
            "",
            "not base64!",
            &STANDARD.encode([0u8; 16]),
            &STANDARD.encode([0u8; 33]),
        ] {
            match Cipher::from_base64_key(bad) {
                Err(Error::InvalidInput { message, .. }) => {
                    assert!(message.contains("INBOX_ENCRYPTION_KEY"), "{message}");
                }
                other => panic!("{bad:?} was accepted: {other:?}"),
            }
        }
        assert!(Cipher::from_base64_key(&format!(" {}\n", Cipher::generate_key())).is_ok());
    }

    #[test]
    fn the_key_file_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/encryption.key");
        let (first, created) = Cipher::load_or_create_key_file(&path).unwrap();
        assert!(created);
        let (second, created_again) = Cipher::load_or_create_key_file(&path).unwrap();
        assert!(!created_again);
        let sealed = first.encrypt("hello").unwrap();
        assert_eq!(second.decrypt(&sealed, "value").unwrap(), "hello");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            Cipher::load_or_create_key_file(&path),
            Err(Error::InvalidInput { .. })
        ));
    }
}
