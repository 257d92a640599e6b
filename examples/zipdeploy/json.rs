//! A minimal JSON writer for the one-line reports.

/// Builds one JSON object. Keys are literals in this program; string values
/// are escaped.
pub struct JsonObject(String);

impl JsonObject {
    pub fn new() -> Self {
        JsonObject(String::from("{"))
    }

    pub fn key(mut self, key: &str) -> Self {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(key);
        self.0.push_str("\":");
        self
    }

    pub fn string(self, key: &str, value: &str) -> Self {
        let mut this = self.key(key);
        escape_json(value, &mut this.0);
        this
    }

    pub fn number(self, key: &str, value: u64) -> Self {
        let mut this = self.key(key);
        this.0.push_str(&value.to_string());
        this
    }

    pub fn boolean(self, key: &str, value: bool) -> Self {
        let mut this = self.key(key);
        this.0.push_str(if value { "true" } else { "false" });
        this
    }

    /// A value already in JSON (`null`, an array built here).
    pub fn raw(self, key: &str, json: &str) -> Self {
        let mut this = self.key(key);
        this.0.push_str(json);
        this
    }

    pub fn object(self, key: &str, value: JsonObject) -> Self {
        let mut this = self.key(key);
        this.0.push_str(&value.finish());
        this
    }

    pub fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// Writes `text` as a JSON string literal (RFC 8259: quote, backslash and
/// control characters escaped; everything else is valid UTF-8 as is).
pub fn escape_json(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
