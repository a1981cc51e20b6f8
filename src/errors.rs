//! The one place an error becomes the line the user reads.

/// The error and its causes, each said once. Many library errors already include their source in
/// their own text (`cannot read FILE: No such file or directory`) and also report it as their
/// cause; anyhow's `{:#}` would then print it twice.
pub fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if cause.is_empty() || text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use anyhow::Context;

    /// A library error in the common style: its text names its source, which it also returns.
    #[derive(Debug)]
    struct ReadError(std::io::Error);

    impl std::fmt::Display for ReadError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read /nonexistent: {}", self.0)
        }
    }

    impl std::error::Error for ReadError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_in_the_text_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let error = anyhow::Error::new(ReadError(io));
        let text = message(&error);
        assert_eq!(text.matches("entity not found").count(), 1, "{text}");
        assert_eq!(text, "cannot read /nonexistent: entity not found");
    }

    #[test]
    fn distinct_causes_are_all_said() {
        let error = Err::<(), _>(std::io::Error::other("disk full")).context("writing results").unwrap_err();
        assert_eq!(message(&error), "writing results: disk full");
    }
}
