//! `--format` and `--template`, as the ORAS CLI reads them: a command's own
//! formats (`text`, `json`, `tree`, ...) or `go-template`, given as
//! `--format go-template --template T` or `--format go-template=T`. A
//! template runs over the command's JSON document, so its field names are
//! the JSON's (docs/cli-json.md), with Go's text/template syntax and the
//! sprig functions scripts use most (`toJson`, `toPrettyJson`, `keys`,
//! `sortAlpha`). One difference from Go: ranging over a map visits its
//! keys in no fixed order; `range $k := keys .m | sortAlpha` sorts them in
//! both.

use anyhow::{bail, Context};
use gtmpl::{FuncError, Value};
use gtmpl_value::Number;

/// A command's chosen output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// One of the command's own formats, by name.
    Named(String),
    /// A Go template over the JSON document.
    Template(String),
}

impl Format {
    /// Reads `--format` and `--template` for a command whose own formats
    /// are `allowed` (the first is its default).
    pub fn parse(format: &str, template: Option<&str>, allowed: &[&str]) -> anyhow::Result<Format> {
        if let Some(t) = template.filter(|t| !t.is_empty()) {
            if format != "go-template" {
                bail!("--template must be used with --format go-template");
            }
            return Ok(Format::Template(t.to_string()));
        }
        if let Some(t) = format.strip_prefix("go-template=") {
            return Ok(Format::Template(t.to_string()));
        }
        if format == "go-template" {
            bail!("--format go-template needs a template: --template TEMPLATE");
        }
        if !allowed.contains(&format) {
            bail!(
                "unknown --format {format:?}: use {} or go-template",
                allowed.join(", ")
            );
        }
        Ok(Format::Named(format.to_string()))
    }

    /// Whether this is the command's format `name`.
    pub fn is(&self, name: &str) -> bool {
        matches!(self, Format::Named(n) if n == name)
    }

    /// Whether the output is a document (JSON or a template), which
    /// progress must not interleave with.
    pub fn is_document(&self) -> bool {
        !self.is("text") && !self.is("tree")
    }

    /// The template, if one was given.
    pub fn template(&self) -> Option<&str> {
        match self {
            Format::Template(t) => Some(t),
            Format::Named(_) => None,
        }
    }
}

/// Prints a command's JSON document as `format` asks: indented JSON, or
/// the template's output.
pub fn emit(format: &Format, doc: &serde_json::Value) -> anyhow::Result<()> {
    match format.template() {
        Some(t) => print!("{}", render(t, doc)?),
        None => println!("{}", serde_json::to_string_pretty(doc)?),
    }
    Ok(())
}

/// Runs `template` over `doc`, as ORAS runs text/template over its JSON
/// model: the output exactly, no newline added.
pub fn render(template: &str, doc: &serde_json::Value) -> anyhow::Result<String> {
    let mut t = gtmpl::Template::default();
    t.add_funcs(&[
        ("toJson", to_json as gtmpl::Func),
        ("toPrettyJson", to_pretty_json as gtmpl::Func),
        ("keys", keys as gtmpl::Func),
        ("sortAlpha", sort_alpha as gtmpl::Func),
    ]);
    t.parse(template)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("bad --template")?;
    t.render(&gtmpl::Context::from(value(doc)))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("--template failed")
}

/// JSON as Go's `encoding/json` decodes it into `any`.
fn value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::Number(Number::from(u)),
            (None, Some(i)) => Value::Number(Number::from(i)),
            _ => Value::Number(Number::from(n.as_f64().unwrap_or(0.0))),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(value).collect()),
        serde_json::Value::Object(o) => {
            Value::Map(o.iter().map(|(k, v)| (k.clone(), value(v))).collect())
        }
    }
}

/// The reverse of [`value`], for `toJson`; map keys sorted, as Go's.
fn json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::String(s) => s.clone().into(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.into(),
            (None, Some(i), _) => i.into(),
            (None, None, Some(f)) => f.into(),
            _ => serde_json::Value::Null,
        },
        Value::Array(a) => a.iter().map(json).collect(),
        Value::Object(m) | Value::Map(m) => {
            let sorted: std::collections::BTreeMap<_, _> =
                m.iter().map(|(k, v)| (k.clone(), json(v))).collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
    }
}

fn one_arg(args: &[Value]) -> Result<&Value, FuncError> {
    match args {
        [v] => Ok(v),
        _ => Err(FuncError::ExactlyXArgs("toJson".into(), 1)),
    }
}

/// sprig's `keys`: a map's keys (here sorted already).
fn keys(args: &[Value]) -> Result<Value, FuncError> {
    match one_arg(args)? {
        Value::Map(m) | Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Ok(Value::Array(
                keys.into_iter().map(|k| Value::String(k.clone())).collect(),
            ))
        }
        _ => Err(FuncError::Generic("keys needs a map".into())),
    }
}

/// sprig's `sortAlpha`: a list's items as strings, sorted.
fn sort_alpha(args: &[Value]) -> Result<Value, FuncError> {
    match one_arg(args)? {
        Value::Array(items) => {
            let mut text: Vec<String> = items.iter().map(|v| v.to_string()).collect();
            text.sort();
            Ok(Value::Array(text.into_iter().map(Value::String).collect()))
        }
        _ => Err(FuncError::Generic("sortAlpha needs a list".into())),
    }
}

fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    let v = one_arg(args)?;
    Ok(Value::String(json(v).to_string()))
}

fn to_pretty_json(args: &[Value]) -> Result<Value, FuncError> {
    let v = one_arg(args)?;
    let text = serde_json::to_string_pretty(&json(v)).unwrap_or_default();
    Ok(Value::String(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_as_oras_reads_them() {
        let allowed = ["text", "json"];
        let p = |f, t| Format::parse(f, t, &allowed);
        assert_eq!(p("json", None).unwrap(), Format::Named("json".into()));
        assert_eq!(
            p("go-template", Some("{{.digest}}")).unwrap(),
            Format::Template("{{.digest}}".into())
        );
        assert_eq!(
            p("go-template={{.size}}", None).unwrap(),
            Format::Template("{{.size}}".into())
        );
        assert!(p("go-template", None).is_err());
        assert!(p("json", Some("{{.digest}}")).is_err());
        assert!(p("yaml", None).is_err());
    }

    #[test]
    fn templates_see_the_json_document() {
        let doc = serde_json::json!({
            "digest": "sha256:abc",
            "size": 1234,
            "referrers": [{"digest": "d1"}, {"digest": "d2"}],
            "annotations": {"z": "1", "a": "2"},
        });
        let r = |t| render(t, &doc).unwrap();
        assert_eq!(r("{{.digest}} {{.size}}"), "sha256:abc 1234");
        assert_eq!(r("{{range .referrers}}{{.digest}}\n{{end}}"), "d1\nd2\n");
        // Ranging over a map gives its keys in no fixed order here (Go
        // sorts them); sprig's keys and sortAlpha give the order in both.
        let ranged = r("{{range $k, $v := .annotations}}{{$k}}={{$v}};{{end}}");
        assert!(ranged == "a=2;z=1;" || ranged == "z=1;a=2;", "{ranged}");
        assert_eq!(
            r("{{range $k := keys .annotations | sortAlpha}}{{$k}}={{index $.annotations $k}};{{end}}"),
            "a=2;z=1;"
        );
        assert_eq!(r("{{toJson .annotations}}"), r#"{"a":"2","z":"1"}"#);
        assert!(render("{{.digest", &doc).is_err());
    }
}
