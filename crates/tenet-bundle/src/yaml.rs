//! YAML data files into JSON values under a size budget.
//!
//! A YAML alias repeats a node wherever it is written, so a few KiB of YAML
//! can describe gigabytes of data: `a: &a [1, 1, …]` followed by a list of
//! `*a` is quadratic, and passes serde_yaml_ng's repetition limit (which caps
//! alias jumps at 100 per event, not the size they expand to). Building the
//! value here charges every node and every byte of every string and key, and
//! stops as soon as the document grows past a multiple of the file's size,
//! which no alias-free document can reach.

use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Parses YAML into a JSON value whose size (nodes plus string bytes) may not
/// exceed `4 × bytes.len() + 4096`.
pub(crate) fn from_slice(bytes: &[u8]) -> Result<Value, String> {
    let left = Cell::new((bytes.len() as u64).saturating_mul(4).saturating_add(4096));
    Bounded { left: &left }
        .deserialize(serde_yaml_ng::Deserializer::from_slice(bytes))
        .map_err(|e| e.to_string())
}

#[derive(Clone, Copy)]
struct Bounded<'a> {
    left: &'a Cell<u64>,
}

impl Bounded<'_> {
    fn charge<E: Error>(self, cost: usize) -> Result<(), E> {
        match self.left.get().checked_sub(cost as u64) {
            Some(rest) => {
                self.left.set(rest);
                Ok(())
            }
            None => Err(E::custom(
                "YAML aliases expand the document past 4 times the file size",
            )),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: Error>(self, v: bool) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Value, E> {
        self.charge(1 + v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: Error>(self, v: String) -> Result<Value, E> {
        self.charge(1 + v.len())?;
        Ok(Value::String(v))
    }

    fn visit_none<E: Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_unit<E: Error>(self) -> Result<Value, E> {
        self.charge(1)?;
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(1)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(1)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.charge(key.len())?;
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}
