//! A hash table whose values live in a slab: the index holds keys and 4-byte slot numbers (so it
//! stays small and cache-resident however large the values are, and a lookup compares keys without
//! touching the slab), values never move once stored, and a freed slot is the next one reused (still
//! warm in the cache, and no allocation per value). The slab grows in
//! fixed chunks rather than by reallocation, so growing never copies the values nor asks the OS for
//! a fresh, larger region to fault in and zero.

use std::hash::{BuildHasher, Hash};

use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// Where a value is stored; valid until the value is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(u32);

struct Entry<K, V> {
    key: K,
    value: V,
}

/// Slots per chunk of the slab.
const CHUNK: usize = 256;

pub(crate) struct SlotTable<K, V> {
    index: HashTable<(K, u32)>,
    /// Each chunk is allocated with room for `CHUNK` slots and never grows past it.
    chunks: Vec<Vec<Option<Entry<K, V>>>>,
    free: Vec<u32>,
    /// Seeded per process, so crafted traffic cannot aim at collisions.
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone, V> SlotTable<K, V> {
    pub fn new() -> Self {
        SlotTable { index: HashTable::new(), chunks: Vec::new(), free: Vec::new(), hasher: RandomState::default() }
    }

    fn entry(chunks: &[Vec<Option<Entry<K, V>>>], slot: u32) -> Option<&Entry<K, V>> {
        let slot = slot as usize;
        chunks.get(slot / CHUNK)?.get(slot % CHUNK)?.as_ref()
    }

    fn entry_mut(&mut self, slot: u32) -> Option<&mut Option<Entry<K, V>>> {
        let slot = slot as usize;
        self.chunks.get_mut(slot / CHUNK)?.get_mut(slot % CHUNK)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Most values the table can hold (slot numbers are 32-bit).
    pub const MAX_LEN: usize = u32::MAX as usize;

    pub fn find(&self, key: &K) -> Option<Slot> {
        let hash = self.hasher.hash_one(key);
        self.index.find(hash, |(k, _)| k == key).map(|&(_, s)| Slot(s))
    }

    pub fn get(&self, slot: Slot) -> Option<&V> {
        Self::entry(&self.chunks, slot.0).map(|e| &e.value)
    }

    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut V> {
        self.entry_mut(slot.0)?.as_mut().map(|e| &mut e.value)
    }

    /// Stores a value under a key that is not in the table (the caller looked it up first). `None`
    /// only when the table already holds [`Self::MAX_LEN`] values.
    pub fn insert(&mut self, key: K, value: V) -> Option<Slot> {
        let hash = self.hasher.hash_one(&key);
        let indexed = key.clone();
        let entry = Some(Entry { key, value });
        let slot = match self.free.pop() {
            Some(s) => {
                *self.entry_mut(s)? = entry;
                s
            }
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                let used = (self.chunks.len() - 1) * CHUNK;
                let last = self.chunks.last_mut()?;
                let s = u32::try_from(used + last.len()).ok().filter(|&s| s < u32::MAX)?;
                last.push(entry);
                s
            }
        };
        let SlotTable { index, hasher, .. } = self;
        index.insert_unique(hash, (indexed, slot), |(k, _)| hasher.hash_one(k));
        Some(Slot(slot))
    }

    /// Drops the value in its slot (values are large: they are closed where they lie, never moved
    /// out). False when the slot was empty.
    pub fn remove(&mut self, slot: Slot) -> bool {
        let Some(entry) = Self::entry(&self.chunks, slot.0) else { return false };
        let hash = self.hasher.hash_one(&entry.key);
        if let Ok(found) = self.index.find_entry(hash, |&(_, s)| s == slot.0) {
            found.remove();
        }
        if let Some(place) = self.entry_mut(slot.0) {
            *place = None;
        }
        self.free.push(slot.0);
        true
    }

    pub fn iter(&self) -> impl Iterator<Item = (Slot, &V)> {
        self.chunks.iter().flatten().enumerate().filter_map(|(i, e)| e.as_ref().map(|e| (Slot(i as u32), &e.value)))
    }

    /// Drops every value, leaving the table empty.
    pub fn clear(&mut self) {
        self.index.clear();
        self.free.clear();
        self.chunks.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Any sequence of inserts and removes leaves the table agreeing with a `HashMap`.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u16..64), 0..400)) {
            let mut table: SlotTable<u16, u32> = SlotTable::new();
            let mut model: HashMap<u16, u32> = HashMap::new();
            for (n, (insert, key)) in ops.into_iter().enumerate() {
                match (insert, table.find(&key)) {
                    (true, None) => {
                        let slot = table.insert(key, n as u32).unwrap();
                        prop_assert_eq!(table.get(slot), Some(&(n as u32)));
                        model.insert(key, n as u32);
                    }
                    (true, Some(slot)) => {
                        *table.get_mut(slot).unwrap() = n as u32;
                        model.insert(key, n as u32);
                    }
                    (false, Some(slot)) => {
                        prop_assert_eq!(table.get(slot), model.get(&key));
                        prop_assert!(table.remove(slot));
                        prop_assert!(!table.remove(slot));
                        model.remove(&key);
                    }
                    (false, None) => prop_assert!(!model.contains_key(&key)),
                }
            }
            prop_assert_eq!(table.len(), model.len());
            for (key, value) in &model {
                let slot = table.find(key).unwrap();
                prop_assert_eq!(table.get(slot), Some(value));
            }
            let mut all: Vec<u32> = table.iter().map(|(_, v)| *v).collect();
            all.sort_unstable();
            let mut expected: Vec<u32> = model.values().copied().collect();
            expected.sort_unstable();
            prop_assert_eq!(all, expected);
            table.clear();
            prop_assert_eq!(table.len(), 0);
            prop_assert_eq!(table.iter().count(), 0);
        }
    }

    #[test]
    fn spans_many_chunks() {
        let mut table: SlotTable<u32, u32> = SlotTable::new();
        let slots: Vec<Slot> = (0..(CHUNK as u32 * 5 + 7)).map(|k| table.insert(k, k * 2).unwrap()).collect();
        for k in (0..slots.len() as u32).step_by(3) {
            assert_eq!(table.get(slots[k as usize]), Some(&(k * 2)));
            assert!(table.remove(slots[k as usize]));
        }
        for k in 0..slots.len() as u32 {
            let found = table.find(&k).map(|s| *table.get(s).unwrap());
            assert_eq!(found, if k % 3 == 0 { None } else { Some(k * 2) }, "key {k}");
        }
        assert_eq!(table.iter().count(), table.len());
    }

    #[test]
    fn freed_slot_is_reused_first() {
        let mut table: SlotTable<u8, &str> = SlotTable::new();
        let a = table.insert(1, "a").unwrap();
        table.insert(2, "b").unwrap();
        table.remove(a);
        assert_eq!(table.insert(3, "c"), Some(a));
        assert_eq!(table.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec!["c", "b"]);
    }
}
