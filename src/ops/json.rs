//! JSON that keeps its keys in the order written, as Grafana's own exports do (serde_json's
//! `Value` sorts them), printed like Python's `json.dumps(indent=2)`.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Bool(bool),
    Int(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    /// This object with `key` set to `value` at the end (replacing an earlier one in place).
    pub fn with(mut self, key: &'static str, value: J) -> J {
        if let J::Obj(fields) = &mut self {
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(field) => field.1 = value,
                None => fields.push((key, value)),
            }
        }
        self
    }

    /// Takes `key` out of this object.
    pub fn take(&mut self, key: &str) -> Option<J> {
        let J::Obj(fields) = self else { return None };
        let at = fields.iter().position(|(k, _)| *k == key)?;
        Some(fields.remove(at).1)
    }

    /// Pretty-printed, two spaces, with a final newline.
    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("JSON of strings and integers") + "\n"
    }
}

impl From<&str> for J {
    fn from(s: &str) -> J {
        J::Str(s.to_string())
    }
}

impl From<String> for J {
    fn from(s: String) -> J {
        J::Str(s)
    }
}

impl From<bool> for J {
    fn from(b: bool) -> J {
        J::Bool(b)
    }
}

impl From<i64> for J {
    fn from(n: i64) -> J {
        J::Int(n)
    }
}

impl Serialize for J {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::Bool(b) => s.serialize_bool(*b),
            J::Int(n) => s.serialize_i64(*n),
            J::Str(text) => s.serialize_str(text),
            J::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            J::Obj(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// An object: `obj! { "key" => value, ... }`, each value anything `Into<J>`.
macro_rules! obj {
    ($($k:literal => $v:expr),* $(,)?) => {
        $crate::ops::json::J::Obj(vec![$(($k, $crate::ops::json::J::from($v))),*])
    };
}
pub(crate) use obj;

impl From<Vec<J>> for J {
    fn from(items: Vec<J>) -> J {
        J::Arr(items)
    }
}
