//! `SortedMap`: an ordered map kept as a sorted `Vec` of `(key, value)`
//! pairs, found by binary search. The one map (and, with `()` values, set)
//! the connections use.
//!
//! Why not `BTreeMap`: a B-tree is monomorphized per key/value type into
//! several kilobytes of node-balancing code, which a statically linked
//! binary pays once for every map type (about 50 KB of text for the
//! thirteen maps this workspace had). Here each instantiation is a binary
//! search plus `Vec::insert`/`Vec::remove`, a few hundred bytes. The maps a
//! connection holds are small, and one contiguous slice is also kinder to
//! the cache than tree nodes.
//!
//! Cost: lookups are `O(log n)`; inserting or removing moves the entries
//! after the position, `O(n)` (one `memmove`). The access patterns keep
//! that cheap: stream ids are allocated increasing, so a new call or
//! stream is an append, and a deadline `now + timeout` is usually the
//! latest; removing the oldest entry (the common completion order) moves
//! the whole rest. The server's maps are bounded by
//! [`Config::max_in_flight`] (64 by default): at that size a front removal
//! moves about 1.5 KiB. The client bounds its calls only by what the peer
//! answers; even 10 000 calls in flight move ~240 KiB per completion, some
//! microseconds, beside the system calls each call costs anyway.
//!
//! [`Config::max_in_flight`]: crate::Config::max_in_flight

use std::borrow::Borrow;
use std::fmt;

/// An ordered map over a sorted `Vec`: iteration is in key order, like
/// `BTreeMap`'s. See the [module docs](self) for why and what it costs.
pub(crate) struct SortedMap<K, V> {
    /// Sorted by key, keys unique.
    entries: Vec<(K, V)>,
}

/// An ordered set: a [`SortedMap`] without values.
pub(crate) type SortedSet<T> = SortedMap<T, ()>;

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SortedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    /// An empty map (allocates nothing).
    pub(crate) const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Where `key` is (`Ok`), or where it would go (`Err`).
    fn find<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.find(key).ok()?;
        self.entries.get(i).map(|(_, v)| v)
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.find(key).ok()?;
        self.entries.get_mut(i).map(|(_, v)| v)
    }

    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_ok()
    }

    /// Inserts or replaces; returns the value replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => {
                let (_, old) = self.entries.get_mut(i)?;
                Some(std::mem::replace(old, value))
            }
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// Inserts `key` with the value `make` returns, unless present.
    pub(crate) fn insert_absent(&mut self, key: K, make: impl FnOnce() -> V) {
        if let Err(i) = self.find(&key) {
            self.entries.insert(i, (key, make()));
        }
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.find(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// The entry with the smallest key.
    pub(crate) fn first(&self) -> Option<&(K, V)> {
        self.entries.first()
    }
}

impl<K, V> SortedMap<K, V> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The entries in key order, values mutable (keys are not: they keep
    /// the order).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }
}

impl<K, V> IntoIterator for SortedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    /// The entries in key order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Remove(u8),
        InsertAbsent(u8, u32),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => any::<u8>().prop_map(Op::Remove),
            2 => (any::<u8>(), any::<u32>()).prop_map(|(k, v)| Op::InsertAbsent(k, v)),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Behaves as `BTreeMap` for every operation the connections use.
        #[test]
        fn matches_btreemap(ops in proptest::collection::vec(op(), 0..200)) {
            let mut model = BTreeMap::new();
            let mut map = SortedMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                    Op::InsertAbsent(k, v) => {
                        map.insert_absent(k, || v);
                        model.entry(k).or_insert(v);
                    }
                    Op::Clear => {
                        map.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(map.first().map(|e| e.0), model.first_key_value().map(|e| *e.0));
                prop_assert!(map.iter().eq(model.iter()));
                for k in [0u8, 1, 127, 255] {
                    prop_assert_eq!(map.get(&k), model.get(&k));
                    prop_assert_eq!(map.contains_key(&k), model.contains_key(&k));
                }
            }
            prop_assert!(map.into_iter().eq(model));
        }
    }

    #[test]
    fn looks_up_strings_by_str() {
        let mut map = SortedMap::new();
        map.insert("b".to_owned(), 2);
        map.insert("a".to_owned(), 1);
        assert_eq!(map.get("a"), Some(&1));
        *map.get_mut("b").unwrap() += 1;
        assert_eq!(map.iter().map(|e| e.0).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(map.values().copied().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(format!("{map:?}"), r#"{"a": 1, "b": 3}"#);
    }
}
