//! Hugging Face chat templates, rendered with minijinja.
//!
//! A model's `tokenizer_config.json` holds a Jinja template that turns a
//! list of messages into the prompt text the model was trained on. The
//! Python `transformers` library renders it with `trim_blocks` and
//! `lstrip_blocks`, a `tojson` filter that writes JSON as Python's
//! `json.dumps` does (no ASCII escaping, `", "` and `": "` separators), the
//! functions `raise_exception` and `strftime_now`, the special tokens of the
//! config (`bos_token`, `eos_token`, ...) and `tools`/`documents` set to
//! none. This module sets up the same environment, plus the Python string
//! and dict methods templates call (`.strip()`, `.split()`, `.items()`, ...),
//! which Jinja has and minijinja leaves to the embedder.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template with the special tokens it is rendered with.
pub struct ChatTemplate {
    env: Environment<'static>,
    specials: BTreeMap<String, Value>,
}

impl ChatTemplate {
    /// Compiles `source`; `specials` are the config's `*_token` values.
    pub fn new(source: &str, specials: BTreeMap<String, Option<String>>) -> Result<Self, Error> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.set_unknown_method_callback(python_method);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())?;
        let specials = specials
            .into_iter()
            .map(|(k, v)| (k, v.map_or(Value::from(()), Value::from)))
            .collect();
        Ok(ChatTemplate { env, specials })
    }

    /// Renders the prompt of `messages` (values made by [`message_value`]).
    pub fn render(&self, messages: &[Value], add_generation_prompt: bool) -> Result<String, Error> {
        let template = self.env.get_template(TEMPLATE_NAME)?;
        let mut ctx: BTreeMap<String, Value> = self.specials.clone();
        ctx.insert("messages".into(), Value::from(messages.to_vec()));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        ctx.insert("tools".into(), Value::from(()));
        ctx.insert("documents".into(), Value::from(()));
        template.render(Value::from(ctx))
    }
}

/// A JSON object that keeps its keys in their order (minijinja's own maps
/// sort them), so that `tojson` writes them as Python would.
#[derive(Debug)]
struct OrderedMap(Vec<(Arc<str>, Value)>);

impl Object for OrderedMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        self.0
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.iter().map(|(k, _)| Value::from(k.clone())).collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.0.len())
    }
}

/// Parses JSON text into a template value, keeping object keys in the
/// order of the text (as Python's `json.loads` does).
pub fn parse_json(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<OrderedJson>(text).map(|j| j.0)
}

/// A template value deserialised from JSON with its key order kept.
struct OrderedJson(Value);

impl<'de> serde::Deserialize<'de> for OrderedJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OrderedJsonVisitor).map(OrderedJson)
    }
}

struct OrderedJsonVisitor;

impl<'de> serde::de::Visitor<'de> for OrderedJsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::from(()))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::from(()))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(OrderedJson(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::from(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields: Vec<(Arc<str>, Value)> = Vec::new();
        while let Some((k, OrderedJson(v))) = map.next_entry::<String, OrderedJson>()? {
            // A repeated key keeps its first place and its last value, as in Python.
            match fields.iter_mut().find(|(name, _)| name.as_ref() == k) {
                Some(slot) => slot.1 = v,
                None => fields.push((Arc::from(k), v)),
            }
        }
        Ok(Value::from_object(OrderedMap(fields)))
    }
}

/// A message as templates see it: `role`, `content`, and `tool_calls` /
/// `tool_call_id` only when the message has them (templates test `'tool_calls'
/// in message`).
pub fn message_value(
    role: &str,
    content: &str,
    tool_calls: Option<&Value>,
    tool_call_id: Option<&str>,
) -> Value {
    let mut fields: Vec<(Arc<str>, Value)> = vec![
        (Arc::from("role"), Value::from(role)),
        (Arc::from("content"), Value::from(content)),
    ];
    if let Some(calls) = tool_calls {
        fields.push((Arc::from("tool_calls"), calls.clone()));
    }
    if let Some(id) = tool_call_id {
        fields.push((Arc::from("tool_call_id"), Value::from(id)));
    }
    Value::from_object(OrderedMap(fields))
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

// ---- tojson, as Python's json.dumps(ensure_ascii=False) writes it ---------

fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match v.kind() {
            ValueKind::Number => {
                Some(" ".repeat(usize::try_from(v.as_i64().unwrap_or(0)).unwrap_or(0)))
            }
            ValueKind::String => Some(v.as_str().unwrap_or("").to_string()),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be a number or a string",
                ));
            }
        },
    };
    let mut out = String::new();
    write_json(
        &mut out,
        &value,
        indent.as_deref(),
        0,
        sort_keys.unwrap_or(false),
    )?;
    Ok(Value::from_safe_string(out))
}

fn write_json(
    out: &mut String,
    v: &Value,
    indent: Option<&str>,
    depth: usize,
    sort_keys: bool,
) -> Result<(), Error> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string());
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                out.push_str(&python_float(f));
            }
        }
        ValueKind::String => write_json_str(out, v.as_str().unwrap_or("")),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json(out, item, indent, depth + 1, sort_keys)?;
            }
            newline(out, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if sort_keys {
                keys.sort();
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                match key.as_str() {
                    Some(s) => write_json_str(out, s),
                    None => write_json_str(out, &key.to_string()),
                }
                out.push_str(": ");
                let item = v.get_item(key)?;
                write_json(out, &item, indent, depth + 1, sort_keys)?;
            }
            newline(out, depth);
            out.push('}');
        }
        _ => write_json_str(out, &v.to_string()),
    }
    Ok(())
}

/// Python's `repr` of a float as JSON writes it.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---- strftime_now ----------------------------------------------------------

/// The current UTC time formatted with a subset of C's `strftime`
/// (`%Y %m %d %e %H %M %S %y %b %B %a %A %j %p %I %%`).
fn strftime_now(format: String) -> Result<Value, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(Value::from(format_time(secs, &format)))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// (year, month 1-12, day 1-31) of a count of days since 1970-01-01.
fn civil_date(days: i64) -> (i64, u32, u32) {
    // Shift the era to start on 0000-03-01 so that leap days end a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn format_time(secs: u64, format: &str) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let (year, month, day) = civil_date(days);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[(month - 1) as usize] + day + u32::from(month > 2 && is_leap(year));
    let month_name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:>2}")),
            Some('H') => out.push_str(&format!("{hour:02}")),
            Some('I') => out.push_str(&format!("{:02}", (hour + 11) % 12 + 1)),
            Some('p') => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            Some('M') => out.push_str(&format!("{minute:02}")),
            Some('S') => out.push_str(&format!("{second:02}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('b') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('a') => out.push_str(&WEEKDAYS[weekday][..3]),
            Some('A') => out.push_str(WEEKDAYS[weekday]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

// ---- Python methods on strings, dicts and lists ---------------------------

fn python_method(
    _state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    match value.kind() {
        ValueKind::String => string_method(value.as_str().unwrap_or(""), method, args),
        ValueKind::Map => map_method(value, method, args),
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}

fn arg_str(args: &[Value], i: usize) -> Option<&str> {
    args.get(i)
        .filter(|v| !v.is_none())
        .and_then(|v| v.as_str())
}

fn bad_args(method: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("str.{method}(): wrong arguments"),
    )
}

fn strip_with(s: &str, chars: Option<&str>, left: bool, right: bool) -> String {
    let pred = |c: char| chars.map_or(c.is_whitespace(), |set| set.contains(c));
    let mut out = s;
    if left {
        out = out.trim_start_matches(pred);
    }
    if right {
        out = out.trim_end_matches(pred);
    }
    out.to_string()
}

fn string_method(s: &str, method: &str, args: &[Value]) -> Result<Value, Error> {
    let max_split = |i: usize| -> Option<usize> {
        args.get(i)
            .and_then(|v| v.as_i64())
            .and_then(|n| usize::try_from(n).ok())
    };
    let v = match method {
        "strip" => Value::from(strip_with(s, arg_str(args, 0), true, true)),
        "lstrip" => Value::from(strip_with(s, arg_str(args, 0), true, false)),
        "rstrip" => Value::from(strip_with(s, arg_str(args, 0), false, true)),
        "upper" => Value::from(s.to_uppercase()),
        "lower" => Value::from(s.to_lowercase()),
        "title" => {
            let mut out = String::with_capacity(s.len());
            let mut prev_letter = false;
            for c in s.chars() {
                if prev_letter {
                    out.extend(c.to_lowercase());
                } else {
                    out.extend(c.to_uppercase());
                }
                prev_letter = c.is_alphabetic();
            }
            Value::from(out)
        }
        "capitalize" => {
            let mut chars = s.chars();
            let out: String = match chars.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(chars.flat_map(|c| c.to_lowercase()))
                    .collect(),
                None => String::new(),
            };
            Value::from(out)
        }
        "startswith" | "endswith" => {
            let prefixes: Vec<String> = match args.first() {
                Some(v) if v.kind() == ValueKind::String => vec![v.as_str().unwrap_or("").into()],
                Some(v) if v.kind() == ValueKind::Seq => v
                    .try_iter()?
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect(),
                _ => return Err(bad_args(method)),
            };
            let hit = prefixes.iter().any(|p| {
                if method == "startswith" {
                    s.starts_with(p.as_str())
                } else {
                    s.ends_with(p.as_str())
                }
            });
            Value::from(hit)
        }
        "split" | "rsplit" => {
            let limit = max_split(1);
            let parts: Vec<String> = match arg_str(args, 0) {
                Some("") => return Err(bad_args(method)),
                Some(sep) => match (method, limit) {
                    ("split", Some(n)) => s.splitn(n + 1, sep).map(str::to_string).collect(),
                    ("rsplit", Some(n)) => {
                        let mut v: Vec<String> =
                            s.rsplitn(n + 1, sep).map(str::to_string).collect();
                        v.reverse();
                        v
                    }
                    _ => s.split(sep).map(str::to_string).collect(),
                },
                None => s.split_whitespace().map(str::to_string).collect(),
            };
            Value::from(parts)
        }
        "replace" => {
            let (Some(old), Some(new)) = (arg_str(args, 0), arg_str(args, 1)) else {
                return Err(bad_args(method));
            };
            match max_split(2) {
                Some(n) => Value::from(s.replacen(old, new, n)),
                None => Value::from(s.replace(old, new)),
            }
        }
        "find" | "rfind" | "index" => {
            let Some(needle) = arg_str(args, 0) else {
                return Err(bad_args(method));
            };
            let at = if method == "rfind" {
                s.rfind(needle)
            } else {
                s.find(needle)
            };
            match at {
                Some(byte) => Value::from(s[..byte].chars().count() as i64),
                None if method == "index" => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "substring not found",
                    ));
                }
                None => Value::from(-1),
            }
        }
        "count" => {
            let Some(needle) = arg_str(args, 0) else {
                return Err(bad_args(method));
            };
            if needle.is_empty() {
                Value::from(s.chars().count() as i64 + 1)
            } else {
                Value::from(s.matches(needle).count() as i64)
            }
        }
        "join" => {
            let Some(items) = args.first() else {
                return Err(bad_args(method));
            };
            let parts: Vec<String> = items.try_iter()?.map(|v| v.to_string()).collect();
            Value::from(parts.join(s))
        }
        "isdigit" => Value::from(!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())),
        "isspace" => Value::from(!s.is_empty() && s.chars().all(char::is_whitespace)),
        "isalpha" => Value::from(!s.is_empty() && s.chars().all(char::is_alphabetic)),
        _ => return Err(Error::from(ErrorKind::UnknownMethod)),
    };
    Ok(v)
}

fn map_method(value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    match method {
        "items" => {
            let mut out = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                out.push(Value::from(vec![key, item]));
            }
            Ok(Value::from(out))
        }
        "keys" => Ok(Value::from(value.try_iter()?.collect::<Vec<_>>())),
        "values" => {
            let mut out = Vec::new();
            for key in value.try_iter()? {
                out.push(value.get_item(&key)?);
            }
            Ok(Value::from(out))
        }
        "get" => {
            let Some(key) = args.first() else {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "dict.get(): no key",
                ));
            };
            let item = value.get_item(key)?;
            if item.is_undefined() {
                Ok(args.get(1).cloned().unwrap_or(Value::from(())))
            } else {
                Ok(item)
            }
        }
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specials() -> BTreeMap<String, Option<String>> {
        BTreeMap::from([
            ("bos_token".to_string(), Some("<s>".to_string())),
            ("unk_token".to_string(), None),
        ])
    }

    fn render(src: &str, messages: &[Value]) -> String {
        ChatTemplate::new(src, specials())
            .expect("compiles")
            .render(messages, true)
            .expect("renders")
    }

    #[test]
    fn tojson_writes_like_python() {
        let calls = parse_json(
            r#"[{"id":"c1","type":"function","function":{"name":"f","arguments":{"z":1,"a":"é\n","b":[true,null,1.5,2.0]}}}]"#,
        )
        .expect("json");
        let m = message_value("assistant", "", Some(&calls), None);
        let out = render(
            "{{ messages[0].tool_calls | tojson }}",
            std::slice::from_ref(&m),
        );
        assert_eq!(
            out,
            r#"[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"z": 1, "a": "é\n", "b": [true, null, 1.5, 2.0]}}}]"#
        );
        let out = render(
            "{{ messages[0].tool_calls[0].function.arguments | tojson(indent=2) }}",
            &[m],
        );
        assert_eq!(
            out,
            "{\n  \"z\": 1,\n  \"a\": \"é\\n\",\n  \"b\": [\n    true,\n    null,\n    1.5,\n    2.0\n  ]\n}"
        );
    }

    #[test]
    fn python_methods_and_membership() {
        let m = message_value("user", "  Hi there </think> end ", None, None);
        let out = render(
            "{% for m in messages %}{{ bos_token }}[{{ m.content.strip() }}]\
             [{{ m.content.split('</think>')[-1].lstrip() }}]\
             [{{ 'tool_calls' in m }}][{{ m.role.upper() }}][{{ unk_token is none }}]\
             {% for k, v in m.items() %}{{ k }}={{ v|length }};{% endfor %}{% endfor %}",
            &[m],
        );
        assert_eq!(
            out,
            "<s>[Hi there </think> end][end ][False][USER][True]role=4;content=24;"
        );
    }

    #[test]
    fn raise_exception_is_an_error() {
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'system' %}{{ raise_exception('need a system message') }}{% endif %}",
            specials(),
        )
        .expect("compiles");
        let err = t
            .render(&[message_value("user", "x", None, None)], true)
            .expect_err("raises");
        assert!(err.to_string().contains("need a system message"), "{err}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(ChatTemplate::new("{% for %}", specials()).is_err());
    }

    #[test]
    fn trim_and_lstrip_blocks_like_transformers() {
        let src = "{% for m in messages %}\n  {% if true %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}\n";
        let msgs = [message_value("user", "a", None, None)];
        assert_eq!(render(src, &msgs), "[a]\n");
    }

    #[test]
    fn dates() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        let t = 1_709_211_909;
        assert_eq!(
            format_time(t, "%d %b %Y %H:%M:%S %A %j %B %y %%"),
            "29 Feb 2024 13:05:09 Thursday 060 February 24 %"
        );
        assert_eq!(format_time(0, "%Y-%m-%d %a"), "1970-01-01 Thu");
        assert_eq!(civil_date(-1), (1969, 12, 31));
    }
}
