//! Strategies by name, each built from typed parameters (serde); an unknown name fails with
//! the list of known ones.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ContextError;
use crate::strategy::ContextStrategy;

type Factory = Box<dyn Fn(Value) -> Result<Box<dyn ContextStrategy>, ContextError> + Send + Sync>;

/// The strategies a program can select by name (from its config).
#[derive(Default)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("strategies", &self.names())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `make` under `name`; its parameters `P` are read from the config (an absent
    /// or `null` config reads as `{}`, so `#[serde(default)]` fields take their defaults).
    pub fn register<P, F>(&mut self, name: &str, make: F) -> Result<(), ContextError>
    where
        P: DeserializeOwned + 'static,
        F: Fn(P) -> Box<dyn ContextStrategy> + Send + Sync + 'static,
    {
        if self.factories.contains_key(name) {
            return Err(ContextError::Duplicate(name.to_owned()));
        }
        let owned = name.to_owned();
        self.factories.insert(
            name.to_owned(),
            Box::new(move |params: Value| {
                let params = if params.is_null() {
                    Value::Object(Default::default())
                } else {
                    params
                };
                let p: P = serde_json::from_value(params).map_err(|e| ContextError::BadParams {
                    name: owned.clone(),
                    reason: e.to_string(),
                })?;
                Ok(make(p))
            }),
        );
        Ok(())
    }

    /// Builds the strategy `name` with `params`.
    pub fn build(
        &self,
        name: &str,
        params: Value,
    ) -> Result<Box<dyn ContextStrategy>, ContextError> {
        match self.factories.get(name) {
            Some(f) => f(params),
            None => Err(ContextError::UnknownStrategy {
                name: name.to_owned(),
                known: self.names(),
            }),
        }
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.factories.keys().cloned().collect()
    }
}
