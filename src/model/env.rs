//! `${ENV_VAR}` and `${ENV_VAR:-default}` references in project settings.
//!
//! Secrets never live in project files: a setting refers to an environment variable and the
//! reference is expanded when the project runs, never written back.

/// A reference to an environment variable that is not set and has no default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "environment variable `{name}` is not set (referenced as `${{{name}}}`; set it or write `${{{name}:-default}}`)"
)]
pub struct MissingEnvVar {
    pub name: String,
}

/// Expands `${NAME}` and `${NAME:-default}` using `lookup`; `$$` is a literal `$`.
pub fn expand_with(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, MissingEnvVar> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let Some(end) = body_start.find('}') else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let body = &body_start[..end];
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            match lookup(name).filter(|v| !v.is_empty()).or(default.map(str::to_owned)) {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(MissingEnvVar { name: name.to_owned() });
                }
            }
            rest = &body_start[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands references from the process environment.
pub fn expand(text: &str) -> Result<String, MissingEnvVar> {
    expand_with(text, |name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "BROKER").then(|| "kafka:9092".to_owned())
    }

    #[test]
    fn expands_set_default_and_literal() {
        assert_eq!(expand_with("${BROKER}", lookup).unwrap(), "kafka:9092");
        assert_eq!(
            expand_with("x ${NOPE:-localhost:9092} y", lookup).unwrap(),
            "x localhost:9092 y"
        );
        assert_eq!(expand_with("a$$b $c", lookup).unwrap(), "a$b $c");
        assert_eq!(expand_with("${BROKER:-other}", lookup).unwrap(), "kafka:9092");
    }

    #[test]
    fn missing_variable_is_named() {
        let err = expand_with("${SECRET}", lookup).unwrap_err();
        assert_eq!(err.name, "SECRET");
        assert!(err.to_string().contains("`SECRET` is not set"));
    }
}
