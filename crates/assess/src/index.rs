//! Which keys are exposed across the whole inventory: a key is exposed once any endpoint was seen
//! vulnerable while presenting it (Heartbleed leaks the server's memory, and with it the key of
//! the certificate it serves).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{Observation, Verdict};

/// What the inventory knows about one exposed key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposedKey {
    /// The first vulnerable observation presenting the key, Unix milliseconds.
    pub first_exposed_ms: i64,
    /// Endpoints seen vulnerable while presenting the key.
    pub exposed_on: BTreeSet<String>,
    /// Certificates presented with the key while vulnerable.
    pub exposed_certs: BTreeSet<String>,
    /// Every endpoint that presented the key in a conclusive observation, at any time.
    pub presented_on: BTreeSet<String>,
}

/// Exposed keys by SPKI SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposureIndex {
    keys: BTreeMap<String, ExposedKey>,
}

impl ExposureIndex {
    /// Builds the index from every endpoint's history (label, observations in any order).
    /// Inconclusive observations are ignored, like everywhere in the assessment.
    pub fn build<'a, I>(histories: I) -> ExposureIndex
    where
        I: IntoIterator<Item = (&'a str, &'a [Observation])> + Clone,
    {
        let mut keys: BTreeMap<String, ExposedKey> = BTreeMap::new();
        for (label, observations) in histories.clone() {
            for observation in observations.iter().filter(|o| o.verdict == Verdict::Vulnerable) {
                let Some(leaf) = &observation.leaf else { continue };
                let key = keys.entry(leaf.spki_sha256.clone()).or_insert_with(|| ExposedKey {
                    first_exposed_ms: observation.at_ms,
                    ..ExposedKey::default()
                });
                key.first_exposed_ms = key.first_exposed_ms.min(observation.at_ms);
                key.exposed_on.insert(label.to_owned());
                key.exposed_certs.insert(leaf.cert_sha256.clone());
            }
        }
        for (label, observations) in histories {
            for observation in observations.iter().filter(|o| o.verdict.is_conclusive()) {
                let Some(leaf) = &observation.leaf else { continue };
                if let Some(key) = keys.get_mut(&leaf.spki_sha256) {
                    key.presented_on.insert(label.to_owned());
                }
            }
        }
        ExposureIndex { keys }
    }

    /// Whether any endpoint was ever seen vulnerable with this key.
    pub fn is_exposed(&self, spki_sha256: &str) -> bool {
        self.keys.contains_key(spki_sha256)
    }

    /// Whether the key had been exposed at or before `at_ms`.
    pub fn exposed_by(&self, spki_sha256: &str, at_ms: i64) -> bool {
        self.keys.get(spki_sha256).is_some_and(|key| key.first_exposed_ms <= at_ms)
    }

    pub fn get(&self, spki_sha256: &str) -> Option<&ExposedKey> {
        self.keys.get(spki_sha256)
    }

    /// Exposed keys, by SPKI SHA-256.
    pub fn keys(&self) -> impl Iterator<Item = (&String, &ExposedKey)> {
        self.keys.iter()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::Leaf;

    fn obs(id: i64, verdict: Verdict, spki: &str, cert: &str) -> Observation {
        Observation {
            id,
            at_ms: id * 1000,
            verdict,
            vulnerable_versions: BTreeSet::new(),
            leaf: Some(Leaf { cert_sha256: cert.into(), spki_sha256: spki.into(), not_after_unix: 0 }),
        }
    }

    #[test]
    fn keys_are_exposed_only_by_vulnerable_observations() {
        let a = vec![obs(2, Verdict::Vulnerable, "k1", "c1"), obs(3, Verdict::NotVulnerable, "k2", "c2")];
        let b = vec![obs(1, Verdict::NotVulnerable, "k1", "c1b"), obs(4, Verdict::Inconclusive, "k2", "c2")];
        let index = ExposureIndex::build([("a", a.as_slice()), ("b", b.as_slice())]);
        assert_eq!(index.len(), 1);
        let k1 = index.get("k1").unwrap();
        assert_eq!(k1.first_exposed_ms, 2000);
        assert_eq!(k1.exposed_on, BTreeSet::from(["a".to_owned()]));
        assert_eq!(k1.exposed_certs, BTreeSet::from(["c1".to_owned()]));
        assert_eq!(k1.presented_on, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
        assert!(!index.is_exposed("k2"));
        assert!(!index.exposed_by("k1", 1999));
        assert!(index.exposed_by("k1", 2000));
    }

    #[test]
    fn first_exposure_is_the_earliest_over_all_endpoints() {
        let a = vec![obs(9, Verdict::Vulnerable, "k", "c")];
        let b = vec![obs(5, Verdict::Vulnerable, "k", "c")];
        let index = ExposureIndex::build([("a", a.as_slice()), ("b", b.as_slice())]);
        assert_eq!(index.get("k").unwrap().first_exposed_ms, 5000);
    }
}
